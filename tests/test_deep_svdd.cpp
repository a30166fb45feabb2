// Deep SVDD tests (models/deep_svdd.h): weight counts and names of ntl_dsvdd.md A.4, bias-freeness,
// the centre rule of A.2 on a closed form, and a synthetic one-class problem it must separate.
#include "eval/metrics.h"
#include "models/deep_svdd.h"
#include "tests/helpers.h"

using namespace normad;

TEST_CASE("deep_svdd: LeNets have the reference weight counts, names and no bias", "[deep_svdd]") {
  auto count = [](nn::Module& m) {
    int64_t n = 0;
    for (auto& p : m.parameters()) n += p.numel();
    return n;
  };
  auto mn = models::lenet("mnist"), fm = models::lenet("fmnist"), cf = models::lenet("cifar10");
  CHECK(count(*mn) == 7272);
  CHECK(count(*fm) == 222096);
  CHECK(count(*cf) == 520544);
  std::vector<std::string> names;
  for (auto& [n, t] : mn->state_dict()) names.push_back(n);
  CHECK(names == std::vector<std::string>{"conv1.weight", "conv2.weight", "fc1.weight", "bn1.running_mean",
                                          "bn1.running_var", "bn1.num_batches_tracked", "bn2.running_mean",
                                          "bn2.running_var", "bn2.num_batches_tracked"});
  CHECK((*fm)(Var(Tensor({2, 1, 28, 28}, 0.3f))).shape() == Shape{2, 64});
  CHECK((*cf)(Var(Tensor({2, 3, 32, 32}, 0.3f))).shape() == Shape{2, 128});
  CHECK_THROWS_WITH(models::lenet("vgg"), Catch::Contains("vgg"));
}

namespace {
// phi(x) = x for rows [N, 3]: the centre is then the data mean, pushed away from 0.
struct Identity : nn::Module {
  Var forward(const Var& x) override { return x; }
};
}  // namespace

TEST_CASE("deep_svdd: centre = mean, coordinates below 0.1 pushed to +-0.1, exact 0 stays 0", "[deep_svdd]") {
  Identity id;
  Tensor x = Tensor::from({2, 4}, {1.f, 0.02f, -0.06f, 0.f, 3.f, 0.04f, 0.02f, 0.f});
  Tensor c = models::svdd_center(id, x, 1);  // batch 1: the sum over batches is exercised
  CHECK(c.to_vector() == std::vector<float>{2.f, 0.1f, -0.1f, 0.f});
}

TEST_CASE("deep_svdd: trained on one synthetic class, it ranks other classes as anomalies", "[deep_svdd]") {
  Generator g(3);
  std::vector<Tensor> proto;
  for (int k = 0; k < 4; ++k) proto.push_back(g.uniform({1, 1, 28, 28}));
  auto draw = [&](int k, int n) {
    std::vector<Tensor> r;
    for (int i = 0; i < n; ++i) r.push_back(add(proto[k], g.normal({1, 1, 28, 28}, 0.f, 0.1f)));
    return concat(r, 0);
  };
  manual_seed(4);
  models::DeepSvdd svdd(models::lenet("mnist"));
  models::SvddTrainConfig cfg;
  cfg.epochs = 10;
  cfg.batch = 50;
  cfg.lr = 1e-3f;
  auto losses = svdd.fit(draw(0, 200), cfg, g);
  CHECK(losses.back() < losses.front());
  Tensor test = concat({draw(0, 60), draw(1, 20), draw(2, 20)}, 0);
  std::vector<int> y(100, 0);
  for (int i = 60; i < 100; ++i) y[i] = 1;
  const double auc = eval::auroc(svdd.score(test), y);
  INFO("AUROC " << auc);
  CHECK(auc > 0.9);
}
