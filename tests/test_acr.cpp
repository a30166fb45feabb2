// ACR-DSVDD tests (models/acr.h, models/omniglot_net.h): the parameter count of acr.md §7.1, a
// golden iteration against a PyTorch per-task loop (tests/make_fixtures.py make_acr), the grouped
// pass against normad's own per-task loop, and a synthetic zero-shot problem it must separate.
#include "eval/metrics.h"
#include "models/acr.h"
#include "models/omniglot_net.h"
#include "nn/safetensors.h"
#include "tests/helpers.h"

using namespace normad;

TEST_CASE("acr: trainable parameters with c: 114,112 (Omniglot net) and 111,104 (tabular MLP, 570 features)", "[acr]") {
  Generator g(1);
  auto count = [](const models::AcrDsvdd& m) {
    int64_t n = 0;
    for (auto& p : m.parameters()) n += p.numel();
    return n;
  };
  models::AcrDsvdd m(std::make_shared<models::OmniglotNet>(g), 32, g);
  CHECK(count(m) == 114112);  // acr.md §7.1
  CHECK((*m.net)(Var(Tensor({3, 1, 28, 28}, 0.5f))).shape() == Shape{3, 32});
  // The tabular MLP's weights come from `init` alone, not from the global generator.
  Generator i1(9), i2(9);
  auto t1 = models::tabular_mlp(20, i1);
  manual_seed(123);
  default_generator().normal(Shape{100});
  auto t2 = models::tabular_mlp(20, i2);
  auto p1 = t1->parameters(), p2 = t2->parameters();
  for (size_t i = 0; i < p1.size(); ++i) REQUIRE(p1[i].data().to_vector() == p2[i].data().to_vector());
  models::AcrDsvdd tab(models::tabular_mlp(570, g), 32, g);
  CHECK(count(tab) == 111104);  // acr.md §7.3
  CHECK((*tab.net)(Var(g.normal({4, 570}))).shape() == Shape{4, 32});
}

TEST_CASE("acr: one ACR-DSVDD iteration matches PyTorch's per-task loop (loss, gradients, running stats)", "[acr][parity]") {
  std::string path = test::fixture("acr.safetensors");
  if (path.empty()) return;
  auto f = nn::load_safetensors(path);
  Generator g(2);
  models::AcrDsvdd m(std::make_shared<models::OmniglotNet>(g), 32, g);
  nn::LoadReport rep = nn::load_state(*m.net, f, false);  // the file also holds x, y, grads
  INFO(rep.str());
  REQUIRE(rep.missing.empty());
  REQUIRE(rep.mismatched.empty());
  m.c.data().copy_(f.tensors.at("c"));
  auto yf = f.tensors.at("y").to_vector();
  std::vector<int> y(yf.begin(), yf.end());
  Var loss = m.loss(f.tensors.at("x"), y, 4);  // one grouped pass, 4 tasks of 30
  loss.backward();
  // The reference ran in float64 from the same float32 values; 1e-4 relative as the issue asks.
  CHECK(loss.item() == Approx(f.tensors.at("loss").item()).epsilon(1e-4));
  for (auto& [name, p] : m.net->named_parameters())
    test::expect_close(p.grad(), f.tensors.at("grad." + name), 1e-4 * (1 + std::fabs(loss.item())), 1e-4, "grad." + name);
  test::expect_close(m.c.grad(), f.tensors.at("grad.c"), 1e-5, 1e-4, "grad.c");
  for (auto& [name, t] : m.net->named_buffers())
    if (name.find("running") != std::string::npos)
      test::expect_close(t, f.tensors.at("after." + name), 1e-5, 1e-4, "after." + name);
}

namespace {
// One grouped pass of T tasks of Q rows against T separate passes of two identically initialised
// models: equal loss and gradients (acr.md §3: the grouped pass is allowed only if it equals them).
void check_grouped_equals_loop(models::AcrModel& grouped, models::AcrModel& looped, const Tensor& x,
                               const std::vector<int>& y, int64_t T, int64_t Q) {
  Var lg = grouped.loss(x, y, T);
  lg.backward();
  Var total(Tensor::scalar(0.f));
  for (int64_t k = 0; k < T; ++k) {
    std::vector<int> yk(y.begin() + k * Q, y.begin() + (k + 1) * Q);
    total = add(total, looped.loss(slice(x, 0, k * Q, (k + 1) * Q), yk, 1));
  }
  Var ll = total / float(T);
  ll.backward();
  CHECK(lg.item() == Approx(ll.item()).epsilon(1e-5));
  auto pg = grouped.parameters(), pl = looped.parameters();
  for (size_t i = 0; i < pg.size(); ++i)
    test::expect_close(pg[i].grad(), pl[i].grad(), 1e-5, 1e-3, "parameter " + std::to_string(i));
}
}  // namespace

TEST_CASE("acr: the grouped pass equals normad's own per-task loop", "[acr]") {
  Generator g(3);
  const int64_t T = 3, Q = 10;
  Tensor x = g.uniform({T * Q, 1, 28, 28});
  std::vector<int> y;
  for (int64_t i = 0; i < T * Q; ++i) y.push_back(i % 2);
  Generator ga(4), gb(4);  // identical weights in both models
  models::AcrDsvdd grouped(std::make_shared<models::OmniglotNet>(ga), 32, ga);
  models::AcrDsvdd looped(std::make_shared<models::OmniglotNet>(gb), 32, gb);
  check_grouped_equals_loop(grouped, looped, x, y, T, Q);
}

TEST_CASE("acr: meta-trained on some synthetic classes, it separates unseen ones in a batch", "[acr]") {
  // Classes are random 28x28 patterns plus noise. Train on classes 0..5, test on batches of class 6
  // or 7 with a few rows of classes 8 and 9 mixed in.
  Generator g(5);
  const int64_t K = 10;
  std::vector<Tensor> proto;
  for (int64_t k = 0; k < K; ++k) proto.push_back(g.uniform({1, 1, 28, 28}));
  auto draw = [&](int64_t k) { return add(proto[k], g.normal({1, 1, 28, 28}, 0.f, 0.1f)); };
  Generator init(6);
  models::AcrDsvdd m(std::make_shared<models::OmniglotNet>(init), 32, init);
  nn::Adam opt(m.parameters(), 1e-3f);
  const int64_t T = 8, Q = 10;
  for (int it = 0; it < 60; ++it) {
    std::vector<Tensor> rows;
    std::vector<int> y;
    for (int64_t t = 0; t < T; ++t) {
      const int64_t j = g.randint(0, 6);
      for (int64_t q = 0; q < Q; ++q) {
        const bool anomalous = q % 2 == 1;
        int64_t k = j;
        while (anomalous && k == j) k = g.randint(0, 6);
        rows.push_back(draw(k));
        y.push_back(anomalous);
      }
    }
    Var loss = m.loss(concat(rows, 0), y, T);
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  for (int64_t normal_class : {6, 7}) {
    std::vector<Tensor> rows;
    std::vector<int> y;
    for (int i = 0; i < 60; ++i) rows.push_back(draw(normal_class)), y.push_back(0);
    for (int i = 0; i < 6; ++i) rows.push_back(draw(8 + i % 2)), y.push_back(1);
    const double auc = eval::auroc(m.score(concat(rows, 0)), y);
    INFO("unseen normal class " << normal_class << ": AUROC " << auc);
    CHECK(auc > 0.9);
  }
}

TEST_CASE("acr-ntl: one iteration matches PyTorch's per-task loop (loss, gradients, running stats)", "[acr][parity]") {
  std::string path = test::fixture("acr_ntl.safetensors");
  if (path.empty()) return;
  auto f = nn::load_safetensors(path);
  Generator g(1);
  models::AcrNtl m(std::make_shared<models::TabNtl>(10, g, 5, 16, 8));
  nn::LoadReport rep = nn::load_state(*m.net, f, false);
  INFO(rep.str());
  REQUIRE(rep.missing.empty());
  REQUIRE(rep.mismatched.empty());
  auto yf = f.tensors.at("y").to_vector();
  std::vector<int> y(yf.begin(), yf.end());
  Var loss = m.loss(f.tensors.at("x"), y, 3);
  loss.backward();
  CHECK(loss.item() == Approx(f.tensors.at("loss").item()).epsilon(1e-4));
  for (auto& [name, p] : m.net->named_parameters())
    test::expect_close(p.grad(), f.tensors.at("grad." + name), 1e-5, 1e-4, "grad." + name);
  for (auto& [name, t] : m.net->named_buffers())
    if (name.find("running") != std::string::npos)
      test::expect_close(t, f.tensors.at("after." + name), 1e-5, 1e-4, "after." + name);
}

TEST_CASE("acr-ntl: the grouped pass equals the per-task loop and scoring uses batch statistics", "[acr]") {
  Generator g(2);
  const int64_t T = 3, Q = 6, D = 6;
  Tensor x = g.normal({T * Q, D});
  std::vector<int> y;
  for (int64_t i = 0; i < T * Q; ++i) y.push_back(i % 3 == 0);
  Generator ga(5), gb(5);
  models::AcrNtl grouped(std::make_shared<models::TabNtl>(D, ga, 4, 8, 4));
  models::AcrNtl looped(std::make_shared<models::TabNtl>(D, gb, 4, 8, 4));
  check_grouped_equals_loop(grouped, looped, x, y, T, Q);
  // Batch-level scores shift with the batch; stationary scores do not.
  Tensor batch = slice(x, 0, 0, 6), shifted = concat({slice(x, 0, 0, 3), add_scalar(slice(x, 0, 3, 6), 5.f)}, 0);
  CHECK(grouped.score(batch)[0] != grouped.score(shifted)[0]);
  CHECK(grouped.score(batch, true)[0] == grouped.score(shifted, true)[0]);
}
