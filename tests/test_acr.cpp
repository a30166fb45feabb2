// ACR-DSVDD tests (models/acr.h, models/acr_nets.h): the parameter counts of acr.md §7, a
// golden iteration against a PyTorch per-task loop (tests/make_fixtures.py make_acr), the grouped
// pass against normad's own per-task loop, a synthetic zero-shot problem it must separate, and the
// Omniglot net with each BN + ReLU fused into the next convolution (its forward without a graph, and
// a training step's output, gradients and running statistics) against its layer-by-layer forward,
// bit for bit.
#include <algorithm>
#include <functional>

#include "eval/metrics.h"
#include "models/acr.h"
#include "models/acr_nets.h"
#include "nn/safetensors.h"
#include "tests/helpers.h"

using namespace normad;

namespace {
// Trainable parameters of an ACR model, centre included.
int64_t count(const models::AcrModel& m) {
  int64_t n = 0;
  for (auto& p : m.parameters()) n += p.numel();
  return n;
}
}  // namespace

TEST_CASE("acr: trainable parameters with c: 114,112 (Omniglot net) and 111,104 (tabular MLP, 570 features)", "[acr]") {
  Generator g(1);
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

TEST_CASE("acr: the Omniglot net with each BN + ReLU fused into the next conv is its layer-by-layer forward, bit for bit", "[acr]") {
  // Without a graph (zero-shot scoring) against the layer-by-layer forward with a graph
  // (fuse_batch_norms false). Three modes of the BNs: evaluation with batch statistics (zero-shot
  // scoring), training with running statistics (moved the same way), grouped training; and
  // evaluation with running statistics (mode 3: the layer-by-layer way in both, so only its wiring
  // is checked). On 1 and many threads.
  const int mode = GENERATE(0, 1, 2, 3);
  INFO("mode " << mode);
  auto make = [] {
    Generator g(17);
    return std::make_shared<models::OmniglotNet>(g);
  };
  auto with_graph = make(), without = make();
  with_graph->fuse_batch_norms = false;
  Tensor x = Generator(18).uniform({24, 1, 28, 28});
  for (auto* net : {with_graph.get(), without.get()}) {
    if (mode == 0 || mode == 3) net->eval();
    nn::set_bn_batch_stats_in_eval(*net, mode == 0);
    nn::set_bn_groups(*net, mode == 2 ? 3 : 1);
    if (mode == 3)  // running statistics of some earlier batch
      for (nn::BatchNorm* bn : nn::batch_norms(*net)) bn->running_var.fill_(2.f), bn->running_mean.fill_(0.1f);
  }
  const Tensor ref = (*with_graph)(Var(x)).data();
  const auto fast = test::on_one_and_many_threads([&] {
    NoGradGuard ng;
    return (*without)(Var(x)).data();
  });
  CHECK(test::same_bits(fast[0], ref));
  CHECK(test::same_bits(fast[1], ref));
  // the running statistics moved as the graph forward moved them (twice: two calls)
  if (mode == 1 || mode == 2) {
    (*with_graph)(Var(x));
    auto a = nn::batch_norms(*with_graph), b = nn::batch_norms(*without);
    for (size_t i = 0; i < a.size(); ++i) {
      INFO("BN " << i);
      CHECK(test::same_bits(a[i]->running_mean, b[i]->running_mean));
      CHECK(test::same_bits(a[i]->running_var, b[i]->running_var));
      CHECK(test::same_bits(a[i]->num_batches_tracked, b[i]->num_batches_tracked));
    }
  }
}

TEST_CASE("acr: training the Omniglot net with each BN + ReLU fused into the next conv: the layer-by-layer step's bits", "[acr]") {
  // One forward and backward with a graph, fused (each convolution reads its input through the
  // previous BN + ReLU and hands its BN the statistics: autograd's conv2d_bn_relu_input) against
  // fuse_batch_norms false: the output, every parameter's gradient, every BN's running statistics
  // and batch count the same bits, plain and grouped (3 groups), on 1 and many threads.
  const int64_t groups = GENERATE(1, 3);
  INFO("groups " << groups);
  const Tensor x = Generator(18).uniform({24, 1, 28, 28}), seed = Generator(19).normal({24, 32});
  auto run = [&](bool fused) {
    Generator g(17);
    models::OmniglotNet net(g);
    net.fuse_batch_norms = fused;
    nn::set_bn_groups(net, groups);
    const Var y = net(Var(x));
    sum(mul(y, Var(seed))).backward();
    std::vector<Tensor> r{y.data()};
    for (const auto& [name, p] : net.named_parameters()) r.push_back(p.grad());
    for (nn::BatchNorm* bn : nn::batch_norms(net)) r.insert(r.end(), {bn->running_mean, bn->running_var, bn->num_batches_tracked});
    return r;
  };
  const auto want = run(false);
  const auto got = test::on_one_and_many_threads([&] { return run(true); });
  for (const auto& r : got) {
    REQUIRE(r.size() == want.size());
    for (size_t i = 0; i < r.size(); ++i) {
      INFO("output " << i);
      REQUIRE(r[i].defined());
      CHECK(test::same_bits(r[i], want[i]));
    }
  }
}

TEST_CASE("acr: a scoring chunk that is the whole batch is the batch itself, a part of it a copy", "[acr]") {
  Tensor x = Generator(5).uniform({6, 1, 4, 4});
  const std::vector<float> before = x.to_vector();
  CHECK(models::chunk_rows(x, 0, 6, Device::CPU).data() == x.data());
  Tensor part = models::chunk_rows(x, 2, 5, Device::CPU);
  CHECK(part.data() != x.data());
  CHECK(part.shape() == Shape{3, 1, 4, 4});
  CHECK(part.to_vector() == std::vector<float>(before.begin() + 2 * 16, before.begin() + 5 * 16));
  // scoring leaves the caller's batch as it was (the net reads the batch itself)
  Generator g(6);
  models::AcrDsvdd m(std::make_shared<models::OmniglotNet>(g), 32, g);
  Tensor imgs = Generator(7).uniform({8, 1, 28, 28});
  const std::vector<float> imgs_before = imgs.to_vector();
  m.score(imgs);
  CHECK(imgs.to_vector() == imgs_before);
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

namespace {
// Meta-trains `m` for 60 iterations of 8 tasks x 10 rows on classes 0..5 (`draw(k)` gives one row of
// class k), then scores batches of unseen class 6 or 7 with a few rows of classes 8 and 9 mixed in.
void check_unseen_classes_separate(models::AcrModel& m, const std::function<Tensor(int64_t)>& draw, Generator& g) {
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
}  // namespace

TEST_CASE("acr: meta-trained on some synthetic classes, it separates unseen ones in a batch", "[acr]") {
  // Classes are random 28x28 patterns plus noise (Omniglot net).
  Generator g(5);
  std::vector<Tensor> proto;
  for (int64_t k = 0; k < 10; ++k) proto.push_back(g.uniform({1, 1, 28, 28}));
  Generator init(6);
  models::AcrDsvdd m(std::make_shared<models::OmniglotNet>(init), 32, init);
  check_unseen_classes_separate(m, [&](int64_t k) { return add(proto[k], g.normal({1, 1, 28, 28}, 0.f, 0.1f)); }, g);
}

TEST_CASE("acr: FeatureSVDD on synthetic feature vectors separates unseen classes in a batch", "[acr]") {
  // Classes are random 64-d vectors plus noise, as pooled backbone features would be.
  Generator g(7);
  std::vector<Tensor> proto;
  for (int64_t k = 0; k < 10; ++k) proto.push_back(g.normal({1, 64}));
  Generator init(8);
  models::AcrDsvdd m(models::feature_svdd(64, init, 1), 32, init);
  check_unseen_classes_separate(m, [&](int64_t k) { return add(proto[k], g.normal({1, 64}, 0.f, 0.3f)); }, g);
}

TEST_CASE("acr: CNN4 (§7.2) and FeatureSVDD (§7.5) have the spec's parameter counts and init rules", "[acr]") {
  Generator g(11);
  models::AcrDsvdd cnn(std::make_shared<models::Cnn4>(g), 32, g);
  CHECK(count(cnn) == 463872);
  CHECK((*cnn.net)(Var(g.uniform({2, 3, 32, 32}))).shape() == Shape{2, 32});
  CHECK_THROWS_WITH((*cnn.net)(Var(Tensor({2, 1, 28, 28}))), Catch::Contains("[N, 3, 32, 32]"));
  models::AcrDsvdd feat(models::feature_svdd(1024, g), 32, g);
  CHECK(count(feat) == 702496);
  CHECK((*feat.net)(Var(g.normal({3, 1024}))).shape() == Shape{3, 32});
  CHECK_THROWS_WITH(models::feature_svdd(100, g, 5), Catch::Contains("cannot be halved"));
  for (auto& [name, t] : cnn.net->state_dict()) {
    INFO(name);
    auto v = t.to_vector();
    if (name.find("bias") != std::string::npos) CHECK(*std::max_element(v.begin(), v.end()) == 0.f);
    if (name.rfind("bn", 0) == 0 && name.find(".weight") != std::string::npos)  // gamma ~ U(0, 1)
      CHECK((*std::min_element(v.begin(), v.end()) >= 0.f && *std::max_element(v.begin(), v.end()) <= 1.f));
  }
  // FeatureSVDD: hidden BN gamma 1, final BN gamma ~ U(0, 1) (not all 1)
  auto param = [&](const std::string& n) {
    for (auto& [name, t] : feat.net->state_dict())
      if (name == n) return t.to_vector();
    FAIL("no " << n);
    return std::vector<float>{};
  };
  CHECK(param("1.weight") == std::vector<float>(512, 1.f));
  auto last = param("16.weight");
  CHECK(*std::max_element(last.begin(), last.end()) < 1.f);
  CHECK(*std::min_element(last.begin(), last.end()) >= 0.f);
}

TEST_CASE("acr: acr_backward in passes of 1, 2 or 4 tasks gives the loss and gradients of one pass", "[acr]") {
  Generator g(14);
  const int64_t T = 6, Q = 8;
  Tensor x = g.uniform({T * Q, 1, 28, 28});
  std::vector<int> y;
  for (int64_t i = 0; i < T * Q; ++i) y.push_back(i % 2);
  Generator g0(15);
  models::AcrDsvdd one(std::make_shared<models::OmniglotNet>(g0), 32, g0);
  Var l = one.loss(x, y, T);
  l.backward();
  for (int64_t per_pass : {1, 2, 4}) {
    INFO("tasks per pass " << per_pass);
    Generator gi(15);
    models::AcrDsvdd m(std::make_shared<models::OmniglotNet>(gi), 32, gi);
    CHECK(models::acr_backward(m, x, y, T, per_pass) == Approx(l.item()).epsilon(1e-5));
    auto pa = one.parameters(), pb = m.parameters();
    for (size_t i = 0; i < pa.size(); ++i) test::expect_close(pb[i].grad(), pa[i].grad(), 1e-5, 1e-3, "parameter " + std::to_string(i));
    auto ba = one.net->named_buffers(), bb = m.net->named_buffers();
    for (size_t i = 0; i < ba.size(); ++i) test::expect_close(bb[i].second, ba[i].second, 1e-6, 1e-5, ba[i].first);
  }
}

TEST_CASE("acr: grouped pass equals the per-task loop for CNN4 and FeatureSVDD", "[acr]") {
  Generator g(12);
  const int64_t T = 2, Q = 6;
  std::vector<int> y;
  for (int64_t i = 0; i < T * Q; ++i) y.push_back(i % 3 == 0);
  Generator ga(13), gb(13);
  models::AcrDsvdd cg(std::make_shared<models::Cnn4>(ga, 16), 32, ga), cl(std::make_shared<models::Cnn4>(gb, 16), 32, gb);
  check_grouped_equals_loop(cg, cl, g.uniform({T * Q, 3, 32, 32}), y, T, Q);
  models::AcrDsvdd fg(models::feature_svdd(256, ga), 32, ga), fl(models::feature_svdd(256, gb), 32, gb);
  check_grouped_equals_loop(fg, fl, g.normal({T * Q, 256}), y, T, Q);
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
