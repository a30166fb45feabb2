// Deep SVDD tests (models/deep_svdd.h): weight counts and names of ntl_dsvdd.md A.4, bias-freeness,
// the centre rule of A.2 on a closed form, and a synthetic one-class problem it must separate.
#include "data/image_norm.h"
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

namespace {
// Synthetic 28x28 image classes: class k is a random pattern plus N(0, 0.1) noise, clamped to [0, 1].
struct SyntheticImages {
  Generator g;
  std::vector<Tensor> proto;
  SyntheticImages(uint64_t seed, int classes) : g(seed) {
    for (int k = 0; k < classes; ++k) proto.push_back(g.uniform({1, 1, 28, 28}));
  }
  Tensor draw(int k, int n) {
    std::vector<Tensor> r;
    for (int i = 0; i < n; ++i) r.push_back(clamp(add(proto[k], g.normal({1, 1, 28, 28}, 0.f, 0.1f)), 0.f, 1.f));
    return concat(r, 0);
  }
  // 60 rows of class 0 then 20 each of classes 1 and 2, labels 0 / 1.
  Tensor test_set(std::vector<int>& y) {
    y.assign(100, 0);
    for (int i = 60; i < 100; ++i) y[i] = 1;
    return concat({draw(0, 60), draw(1, 20), draw(2, 20)}, 0);
  }
};
}  // namespace

TEST_CASE("deep_svdd: trained on one synthetic class, it ranks other classes as anomalies", "[deep_svdd]") {
  SyntheticImages data(3, 4);
  Generator& g = data.g;
  manual_seed(4);
  models::DeepSvdd svdd(models::lenet("mnist"));
  models::SvddTrainConfig cfg;
  cfg.epochs = 10;
  cfg.batch = 50;
  cfg.lr = 1e-3f;
  auto losses = svdd.fit(data.draw(0, 200), cfg, g);
  CHECK(losses.back() < losses.front());
  std::vector<int> y;
  Tensor test = data.test_set(y);
  const double auc = eval::auroc(svdd.score(test), y);
  INFO("AUROC " << auc);
  CHECK(auc > 0.9);
}

TEST_CASE("deep_svdd: autoencoders mirror their encoders (A.5 shapes, names, bias-free)", "[deep_svdd]") {
  struct Case {
    const char* name;
    Shape in;
  };
  for (Case c : {Case{"mnist", {3, 1, 28, 28}}, Case{"fmnist", {3, 1, 28, 28}}, Case{"cifar10", {3, 3, 32, 32}}}) {
    INFO(c.name);
    auto ae = models::lenet_autoencoder(c.name);
    CHECK((*ae)(Var(Generator(1).uniform(c.in))).shape() == c.in);
    for (auto& [n, p] : ae->named_parameters()) {
      CHECK(n.find("bias") == std::string::npos);
      CHECK(n.find(".weight") != std::string::npos);
    }
  }
  // Deep SAD's FashionMNIST_LeNet_Decoder: fc3 64x128, deconv1 [8, 32, 5, 5], deconv2 [32, 16, 5, 5], deconv3 [16, 1, 5, 5]
  std::vector<std::pair<std::string, Shape>> got;
  for (auto& [n, p] : models::lenet_decoder("fmnist")->named_parameters()) got.emplace_back(n, p.shape());
  CHECK(got == std::vector<std::pair<std::string, Shape>>{{"fc3.weight", {128, 64}},
                                                          {"deconv1.weight", {8, 32, 5, 5}},
                                                          {"deconv2.weight", {32, 16, 5, 5}},
                                                          {"deconv3.weight", {16, 1, 5, 5}}});
  CHECK(models::ae_defaults("fmnist").weight_decay == Approx(0.5e-3));
  CHECK(models::ae_defaults("cifar10").epochs == 350);
  CHECK_THROWS_WITH(models::lenet_decoder("vgg"), Catch::Contains("vgg"));
}

TEST_CASE("deep_svdd: GCN-L1 and min-max scaling (A.6) on closed forms", "[deep_svdd]") {
  // row 0: mean 2.5, |x - mean| = 1.5, 0.5, 0.5, 1.5 -> scale 1; row 1 constant -> zeros
  Tensor x = Tensor::from({2, 1, 2, 2}, {1.f, 2.f, 3.f, 4.f, 7.f, 7.f, 7.f, 7.f});
  Tensor g = data::gcn_l1(x);
  CHECK(g.to_vector() == std::vector<float>{-1.5f, -0.5f, 0.5f, 1.5f, 0.f, 0.f, 0.f, 0.f});
  CHECK(x.to_vector()[0] == 1.f);  // the input is left alone
  Tensor y = Tensor::from({1, 3}, {-2.f, 0.f, 2.f});
  CHECK(data::gcn_l1(y).to_vector() == std::vector<float>{-1.5f, 0.f, 1.5f});  // scale 4/3
  data::MinMax mm = data::MinMax::fit(g);
  CHECK(mm.lo == -1.5f);
  CHECK(mm.hi == 1.5f);
  CHECK(mm.apply(Tensor::from({1, 2}, {-1.5f, 3.f})).to_vector() == std::vector<float>{0.f, 1.5f});
  CHECK_THROWS_WITH(data::MinMax::fit(Tensor({2, 2}, 3.f)), Catch::Contains("all values equal"));
}

TEST_CASE("deep_svdd: pretraining lowers the reconstruction error and hands its encoder to Deep SVDD", "[deep_svdd]") {
  SyntheticImages data(21, 3);
  Generator& g = data.g;
  manual_seed(22);
  auto ae = models::lenet_autoencoder("mnist");
  Tensor before = ae->encoder->state_dict()[0].second.clone();
  models::SvddTrainConfig ac = models::ae_defaults("mnist");
  ac.epochs = 8, ac.batch = 50, ac.lr = 1e-3f;
  Tensor train = data.draw(0, 200);
  auto losses = models::pretrain_autoencoder(*ae, train, ac, g);
  INFO("reconstruction loss " << losses.front() << " -> " << losses.back());
  CHECK(losses.back() < 0.8 * losses.front());
  CHECK(ae->encoder->state_dict()[0].second.to_vector() != before.to_vector());
  models::DeepSvdd svdd(ae->encoder);
  models::SvddTrainConfig cfg;
  cfg.epochs = 5, cfg.batch = 50, cfg.lr = 1e-3f;
  svdd.fit(train, cfg, g);
  std::vector<int> y;
  Tensor test = data.test_set(y);
  const double auc = eval::auroc(svdd.score(test), y);
  INFO("AUROC " << auc);
  CHECK(auc > 0.9);
}
