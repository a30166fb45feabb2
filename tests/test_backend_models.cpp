// Whole models on the reference backend: one training step of ACR-DSVDD (Omniglot net, grouped
// BN over tasks), Deep SVDD (MNIST LeNet) and NTL (tabular NeuTraL-AD) on Device::Reference gives
// the CPU backend's loss and gradients, and one Adam step the same parameters. This proves that
// autograd, the layers, the optimiser and the models run unchanged on another backend (every
// number flows through the dispatch table), and checks the fast kernels against the plain loops
// end to end.
// Tolerance: the reference accumulates in double and the CPU in float (GEMM blocks, im2col), so
// values differ by rounding, amplified by BN's division by small standard deviations:
// |got - ref| <= 1e-4 max|ref| + 1e-3 |ref| per tensor (measured worst cases are in the INFO lines).
#include <set>

#include "models/acr.h"
#include "models/acr_nets.h"
#include "models/deep_svdd.h"
#include "models/ntl.h"
#include "nn/optim.h"
#include "tests/helpers.h"

using namespace normad;

namespace {

// Copies every parameter and buffer of `from` into `to` (same architecture), then moves `to`.
void clone_to(nn::Module& to, const nn::Module& from, Device dev) {
  auto src = from.state_dict(), dst = to.state_dict();
  REQUIRE(src.size() == dst.size());
  for (size_t i = 0; i < src.size(); ++i) dst[i].second.copy_(src[i].second);
  to.to(dev);
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (float v : t.to_vector()) m = std::max(m, double(std::fabs(v)));
  return m;
}

// Loss and every parameter gradient of the two runs agree. atol is 1e-4 of the largest gradient
// entry over all parameters: a gradient that is 0 in exact arithmetic (a conv bias followed by
// training-mode BN) is rounding noise on both backends (~1e-7 of the scale) and is held to that
// scale, not to its own. Returns the names of such noise gradients (all entries below 1e-4 of
// the scale).
std::set<std::string> compare_step(const Var& loss_cpu, const Var& loss_ref,
                                   const std::vector<std::pair<std::string, Var>>& cpu,
                                   const std::vector<std::pair<std::string, Var>>& ref) {
  CHECK(loss_ref.data().device() == Device::Reference);
  CHECK(loss_ref.item() == Approx(loss_cpu.item()).epsilon(1e-4));
  REQUIRE(cpu.size() == ref.size());
  double scale = 0;
  for (const auto& [name, p] : cpu) scale = std::max(scale, p.grad().defined() ? max_abs(p.grad()) : 0.0);
  std::set<std::string> noise;
  for (size_t i = 0; i < cpu.size(); ++i) {
    INFO(cpu[i].first);
    REQUIRE(cpu[i].second.grad().defined());
    REQUIRE(ref[i].second.grad().defined());
    CHECK(ref[i].second.grad().device() == Device::Reference);
    const Tensor g = cpu[i].second.grad();
    if (max_abs(g) < 1e-4 * scale) noise.insert(cpu[i].first);
    test::expect_close(ref[i].second.grad().to(Device::CPU), g, 1e-4 * scale, 1e-3, "grad " + cpu[i].first);
  }
  return noise;
}

// Parameters and buffers after one optimiser step agree. Adam's first step moves each weight by
// about lr sign(g), so where g is rounding noise (`noise`, from compare_step) the two steps may
// go opposite ways: those tensors are only held to 2 lr.
void compare_params(const nn::Module& cpu, const nn::Module& ref, const std::set<std::string>& noise = {},
                    double lr = 0) {
  auto a = cpu.state_dict(), b = ref.state_dict();
  for (size_t i = 0; i < a.size(); ++i) {
    INFO(a[i].first);
    const bool is_noise = noise.count(a[i].first) > 0;
    test::expect_close(b[i].second.to(Device::CPU), a[i].second,
                       is_noise ? 2.0 * lr + 1e-6 : 1e-4 * max_abs(a[i].second), is_noise ? 0.0 : 1e-3,
                       "after the step: " + a[i].first + (is_noise ? " (noise gradient)" : ""));
  }
}

}  // namespace

TEST_CASE("backend models: one ACR-DSVDD step on the reference backend equals the CPU backend", "[backend_models]") {
  Generator ga(21), gb(21);
  models::AcrDsvdd cpu(std::make_shared<models::OmniglotNet>(ga, 8, 6), 6, ga);
  models::AcrDsvdd ref(std::make_shared<models::OmniglotNet>(gb, 8, 6), 6, gb);
  clone_to(*ref.net, *cpu.net, Device::CPU);
  ref.c.data().copy_(cpu.c.data());
  ref.to(Device::Reference);  // AcrModel::to: the network and the centre c
  CHECK(ref.c.data().device() == Device::Reference);
  // T = 3 tasks of Q = 4 rows: 2 normal then 2 pseudo-anomalous each.
  Generator gx(4);
  Tensor x = gx.uniform({12, 1, 28, 28}, 0.f, 1.f);
  std::vector<int> y;
  for (int t = 0; t < 3; ++t) y.insert(y.end(), {0, 0, 1, 1});
  Var lc = cpu.loss(x, y, 3), lr = ref.loss(x.to(Device::Reference), y, 3);
  lc.backward();
  lr.backward();
  auto names = [](models::AcrDsvdd& m) {
    auto p = m.net->named_parameters();
    p.emplace_back("c", m.c);
    return p;
  };
  const std::set<std::string> noise = compare_step(lc, lr, names(cpu), names(ref));
  nn::Adam oc(cpu.parameters(), 1e-2f), orf(ref.parameters(), 1e-2f);
  oc.step();
  orf.step();
  // running statistics included (grouped BN, once per task); the conv biases before BN are noise
  compare_params(*cpu.net, *ref.net, noise, 1e-2);
}

TEST_CASE("backend models: one Deep SVDD step (LeNet) on the reference backend equals the CPU backend", "[backend_models]") {
  auto cpu = models::lenet("mnist"), ref = models::lenet("mnist");
  clone_to(*ref, *cpu, Device::Reference);
  Generator gx(8);
  Tensor x = gx.uniform({6, 1, 28, 28}, 0.f, 1.f);
  Tensor c_cpu = models::svdd_center(*cpu, x), c_ref = models::svdd_center(*ref, x.to(Device::Reference));
  CHECK(c_ref.device() == Device::Reference);
  test::expect_close(c_ref.to(Device::CPU), c_cpu, 1e-5, 1e-4, "centre");
  cpu->train(), ref->train();
  auto loss = [](nn::Module& net, const Tensor& xb, const Tensor& c) {
    return mean(sum(pow(sub(net(Var(xb)), Var(c)), 2.f), {1}));
  };
  Var lc = loss(*cpu, x, c_cpu), lr = loss(*ref, x.to(Device::Reference), c_ref);
  lc.backward();
  lr.backward();
  compare_step(lc, lr, cpu->named_parameters(), ref->named_parameters());
  nn::Adam oc(cpu->parameters(), 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-6f), orf(ref->parameters(), 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-6f);
  oc.step();
  orf.step();
  compare_params(*cpu, *ref);
}

TEST_CASE("backend models: one NTL step (tabular NeuTraL-AD) on the reference backend equals the CPU backend", "[backend_models]") {
  models::NtlConfig c;
  c.x_dim = 7, c.K = 4, c.trans_type = "mul", c.batch_norm = true;
  manual_seed(3);
  models::NeutralAD cpu(c), ref(c);
  clone_to(ref, cpu, Device::Reference);
  Generator gx(5);
  Tensor x = gx.normal({9, 7});
  Var lc = mean(cpu(Var(x))), lr = mean(ref(Var(x.to(Device::Reference))));
  lc.backward();
  lr.backward();
  compare_step(lc, lr, cpu.named_parameters(), ref.named_parameters());
  nn::SGD oc(cpu.parameters(), 0.1f, 0.9f, 1e-4f), orf(ref.parameters(), 0.1f, 0.9f, 1e-4f);
  oc.step();
  orf.step();
  compare_params(cpu, ref);
}
