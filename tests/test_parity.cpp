// PyTorch parity: normad's ops, layers and optimisers against fixtures written by
// tests/make_fixtures.py (python3-torch), in the spirit of llm.c's test_gpt2.c.
// Math: each case runs out = op(inputs) through autograd, then loss = sum(out * wt) with the stored
// wt, and compares out and every gradient with torch's: |got - ref| <= atol + rtol |ref|.
// Tolerance: rtol 1e-5 with atol 1e-5 (values and gradients are O(1)-O(10); the reference is float64
// rounded to float32, so the slack is normad's own float32 rounding); optimisers atol 1e-6.
// Each TEST_CASE returns early when its fixture is absent (no torch), after test::skip_or_fail
// reported it: ctest lists it as skipped, and under CI=true it fails.
//
// Shapes: N batch, C channels, H, W spatial, G row groups (grouped batch norm).
#include <cmath>
#include <string>
#include <vector>

#include "models/deep_svdd.h"
#include "nn/layers.h"
#include "nn/optim.h"
#include "nn/safetensors.h"
#include "tests/helpers.h"

namespace {

using namespace normad;
using normad::test::expect_close;

constexpr double kAtol = 1e-5;
constexpr double kRtol = 1e-5;

// One fixture file; operator[] throws naming the missing key (a fixture/test mismatch).
struct Fixture {
  std::string name;
  nn::Safetensors f;

  bool has(const std::string& k) const { return f.tensors.count(k) != 0; }
  const Tensor& operator[](const std::string& k) const {
    auto it = f.tensors.find(k);
    if (it == f.tensors.end()) throw Error(name + ": no tensor '" + k + "'");
    return it->second;
  }
  std::vector<int64_t> ints(const std::string& k) const {
    std::vector<int64_t> v;
    for (float a : (*this)[k].to_vector()) v.push_back(std::lround(a));
    return v;
  }
};

// False (after fixture() printed the SKIPPED warning) when the file is absent.
bool load(const std::string& file, Fixture& fx) {
  std::string path = test::fixture(file);
  if (path.empty()) return false;
  fx.name = file;
  fx.f = nn::load_safetensors(path);
  return true;
}

// A leaf requiring grad, with its own copy of the fixture values.
Var leaf(const Tensor& t) { return Var(t.clone(), true); }

// loss = sum(out * wt), backpropagated.
void backward_weighted(const Var& out, const Tensor& wt) { sum(mul(out, Var(wt))).backward(); }

// The grad of v, or zeros when nothing flowed into it (so the comparison reports it).
Tensor grad_of(const Var& v) { return v.grad().defined() ? v.grad() : Tensor::zeros(v.shape()); }

// Compares out and the gradients of the listed inputs ("x" -> "<p>.dx") for case prefix p.
void check_case(const Fixture& fx, const std::string& p, const Var& out,
                const std::vector<std::pair<std::string, Var>>& inputs, double atol = kAtol,
                double rtol = kRtol) {
  expect_close(out.data(), fx[p + ".out"], atol, rtol, p + ".out");
  for (const auto& [name, v] : inputs)
    expect_close(grad_of(v), fx[p + ".d" + name], atol, rtol, p + ".d" + name);
}

}  // namespace

// ---- conv2d ----------------------------------------------------------------------------------

TEST_CASE("parity: conv2d forward and backward vs F.conv2d", "[parity]") {
  Fixture fx;
  if (!load("conv2d.safetensors", fx)) return;
  int cases = 0;
  for (int i = 0; fx.has("c" + std::to_string(i) + ".x"); ++i, ++cases) {
    std::string c = "c" + std::to_string(i);
    // args = [stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups, has_bias]
    std::vector<int64_t> a = fx.ints(c + ".args");
    Conv2dArgs args;
    args.stride_h = a[0], args.stride_w = a[1];
    args.pad_h = a[2], args.pad_w = a[3];
    args.dil_h = a[4], args.dil_w = a[5];
    args.groups = a[6];
    bool has_bias = a[7] != 0;
    INFO(c << ": x " << shape_str(fx[c + ".x"].shape()) << " w " << shape_str(fx[c + ".w"].shape())
           << " stride " << a[0] << "," << a[1] << " pad " << a[2] << "," << a[3] << " dil "
           << a[4] << "," << a[5] << " groups " << a[6] << " bias " << has_bias);

    Var x = leaf(fx[c + ".x"]), w = leaf(fx[c + ".w"]);
    Var b = has_bias ? leaf(fx[c + ".b"]) : Var();
    Var out = conv2d(x, w, b, args);
    backward_weighted(out, fx[c + ".wt"]);
    std::vector<std::pair<std::string, Var>> ins = {{"x", x}, {"w", w}};
    if (has_bias) ins.emplace_back("b", b);
    check_case(fx, c, out, ins);

    // the plain-loop reference backend must agree with torch too
    Tensor ref = conv2d(fx[c + ".x"].to(Device::Reference), fx[c + ".w"].to(Device::Reference),
                        has_bias ? fx[c + ".b"].to(Device::Reference) : Tensor(), args);
    expect_close(ref, fx[c + ".out"], kAtol, kRtol, c + ".out (conv2d on the reference backend)");
  }
  CHECK(cases == 7);
}

// ---- transposed convolution and nearest upsampling ---------------------------------------------

TEST_CASE("parity: conv_transpose2d and nearest upsampling vs F.conv_transpose2d, F.interpolate", "[parity]") {
  Fixture fx;
  if (!load("conv_transpose.safetensors", fx)) return;
  int cases = 0;
  for (int i = 0; fx.has("t" + std::to_string(i) + ".x"); ++i, ++cases) {
    std::string c = "t" + std::to_string(i);
    std::vector<int64_t> a = fx.ints(c + ".args");  // stride, pad, output_padding, groups, has_bias
    Conv2dArgs args;
    args.stride_h = args.stride_w = a[0];
    args.pad_h = args.pad_w = a[1];
    args.groups = a[3];
    INFO(c << ": x " << shape_str(fx[c + ".x"].shape()) << " w " << shape_str(fx[c + ".w"].shape()));
    Var x = leaf(fx[c + ".x"]), w = leaf(fx[c + ".w"]);
    Var b = a[4] ? leaf(fx[c + ".b"]) : Var();
    Var out = conv_transpose2d(x, w, b, args, a[2], a[2]);
    backward_weighted(out, fx[c + ".wt"]);
    std::vector<std::pair<std::string, Var>> ins = {{"x", x}, {"w", w}};
    if (a[4]) ins.emplace_back("b", b);
    check_case(fx, c, out, ins);
  }
  CHECK(cases == 4);
  for (const char* c : {"up0", "up1"}) {
    Var x = leaf(fx[std::string(c) + ".x"]);
    Var out = upsample_nearest2d(x, fx.ints(std::string(c) + ".args")[0]);
    backward_weighted(out, fx[std::string(c) + ".wt"]);
    check_case(fx, c, out, {{"x", x}});
  }
}

TEST_CASE("parity: Fashion-MNIST autoencoder (A.5) loss, gradients and running stats vs PyTorch", "[parity]") {
  Fixture fx;
  if (!load("dsvdd_ae.safetensors", fx)) return;
  auto ae = models::lenet_autoencoder("fmnist");
  nn::LoadReport rep = nn::load_state(*ae, fx.f, false);  // the file also holds x and the grads
  INFO(rep.str());
  REQUIRE(rep.missing.empty());
  REQUIRE(rep.mismatched.empty());
  ae->train();
  Var x(fx["x"]);
  Var loss = models::reconstruction_loss((*ae)(x), x);
  loss.backward();
  // float64 reference from the same float32 weights: 1e-4 relative, as for the ACR golden step
  CHECK(loss.item() == Approx(fx["loss"].item()).epsilon(1e-4));
  for (auto& [name, p] : ae->named_parameters())
    expect_close(p.grad(), fx["grad." + name], 1e-4 * (1 + std::fabs(loss.item())), 1e-4, "grad." + name);
  for (auto& [name, t] : ae->named_buffers())
    if (name.find("running") != std::string::npos) expect_close(t, fx["after." + name], 1e-5, 1e-4, "after." + name);
}

// ---- batch norm ------------------------------------------------------------------------------

// Training-mode cases: args = [eps, momentum, groups, affine]; rm0/rv0 before, rm1/rv1 after.
// grp* are torch's per-group loop (F.batch_norm on each group of rows, concatenated), and their
// rm1/rv1 are torch's running statistics after that loop (one update per group, in order).
struct BnArgs {
  float eps, momentum;
  int64_t groups;
  bool affine;
};
BnArgs bn_args(Fixture& fx, const std::string& p) {
  std::vector<float> a = fx[p + ".args"].to_vector();
  return {a[0], a[1], std::lround(a[2]), a[3] != 0};
}

static const char* kBnTrain[] = {"bn1d", "bn2d", "grp1d", "grp2d", "noaff1d", "noaff2d"};

TEST_CASE("parity: batch_norm_train (1d, 2d, grouped, no affine) vs F.batch_norm", "[parity]") {
  Fixture fx;
  if (!load("batchnorm.safetensors", fx)) return;
  for (const char* pc : kBnTrain) {
    std::string p = pc;
    auto [eps, momentum, groups, affine] = bn_args(fx, p);
    INFO(p << ": x " << shape_str(fx[p + ".x"].shape()) << " eps " << eps << " groups " << groups
           << " affine " << affine);

    Var x = leaf(fx[p + ".x"]);
    Var gamma = affine ? leaf(fx[p + ".gamma"]) : Var();
    Var beta = affine ? leaf(fx[p + ".beta"]) : Var();
    Tensor rm = fx[p + ".rm0"].clone(), rv = fx[p + ".rv0"].clone();
    Var out = batch_norm_train(x, gamma, beta, eps, groups, &rm, &rv, momentum);
    backward_weighted(out, fx[p + ".wt"]);
    std::vector<std::pair<std::string, Var>> ins = {{"x", x}};
    if (affine) ins.insert(ins.end(), {{"gamma", gamma}, {"beta", beta}});
    check_case(fx, p, out, ins);
    expect_close(rm, fx[p + ".rm1"], kAtol, kRtol, p + ".running_mean");
    expect_close(rv, fx[p + ".rv1"], kAtol, kRtol, p + ".running_var");
  }
}

TEST_CASE("parity: nn::BatchNorm1d/2d training step vs torch", "[parity]") {
  Fixture fx;
  if (!load("batchnorm.safetensors", fx)) return;
  for (const char* pc : kBnTrain) {
    std::string p = pc;
    auto [eps, momentum, groups, affine] = bn_args(fx, p);
    const Tensor& xt = fx[p + ".x"];
    int64_t C = xt.size(1);
    INFO(p << ": x " << shape_str(xt.shape()) << " eps " << eps << " groups " << groups
           << " affine " << affine);

    std::shared_ptr<nn::BatchNorm> bn;
    if (xt.dim() == 2)
      bn = std::make_shared<nn::BatchNorm1d>(C, eps, momentum, affine);
    else
      bn = std::make_shared<nn::BatchNorm2d>(C, eps, momentum, affine);
    bn->groups = groups;
    if (affine) {
      bn->weight.data().copy_(fx[p + ".gamma"]);
      bn->bias.data().copy_(fx[p + ".beta"]);
    }
    bn->running_mean.copy_(fx[p + ".rm0"]);
    bn->running_var.copy_(fx[p + ".rv0"]);
    REQUIRE(bn->is_training());

    Var x = leaf(xt);
    Var out = bn->forward(x);
    backward_weighted(out, fx[p + ".wt"]);
    std::vector<std::pair<std::string, Var>> ins = {{"x", x}};
    if (affine) ins.insert(ins.end(), {{"gamma", bn->weight}, {"beta", bn->bias}});
    check_case(fx, p, out, ins);
    expect_close(bn->running_mean, fx[p + ".rm1"], kAtol, kRtol, p + ".running_mean");
    expect_close(bn->running_var, fx[p + ".rv1"], kAtol, kRtol, p + ".running_var");
    if (bn->num_batches_tracked.defined()) CHECK(bn->num_batches_tracked.item() == float(groups));  // torch: one count per group pass
  }
}

TEST_CASE("parity: batch norm eval mode (running statistics) vs F.batch_norm", "[parity]") {
  Fixture fx;
  if (!load("batchnorm.safetensors", fx)) return;
  for (std::string p : {"eval1d", "eval2d"}) {
    float eps = fx[p + ".args"].to_vector()[0];
    const Tensor& xt = fx[p + ".x"];
    INFO(p << ": x " << shape_str(xt.shape()) << " eps " << eps);
    {  // autograd op
      Var x = leaf(xt), gamma = leaf(fx[p + ".gamma"]), beta = leaf(fx[p + ".beta"]);
      Var out = batch_norm_eval(x, gamma, beta, fx[p + ".rm"], fx[p + ".rv"], eps);
      backward_weighted(out, fx[p + ".wt"]);
      check_case(fx, p, out, {{"x", x}, {"gamma", gamma}, {"beta", beta}});
    }
    {  // module in eval(): running stats used and left unchanged
      int64_t C = xt.size(1);
      std::shared_ptr<nn::BatchNorm> bn;
      if (xt.dim() == 2)
        bn = std::make_shared<nn::BatchNorm1d>(C, eps);
      else
        bn = std::make_shared<nn::BatchNorm2d>(C, eps);
      bn->weight.data().copy_(fx[p + ".gamma"]);
      bn->bias.data().copy_(fx[p + ".beta"]);
      bn->running_mean.copy_(fx[p + ".rm"]);
      bn->running_var.copy_(fx[p + ".rv"]);
      bn->eval();
      Var x = leaf(xt);
      Var out = bn->forward(x);
      backward_weighted(out, fx[p + ".wt"]);
      check_case(fx, p, out, {{"x", x}, {"gamma", bn->weight}, {"beta", bn->bias}});
      expect_close(bn->running_mean, fx[p + ".rm"], 0, 0, p + ".running_mean unchanged");
      expect_close(bn->running_var, fx[p + ".rv"], 0, 0, p + ".running_var unchanged");
    }
  }
}

// ---- linear ----------------------------------------------------------------------------------

TEST_CASE("parity: nn::Linear vs F.linear", "[parity]") {
  Fixture fx;
  if (!load("linear.safetensors", fx)) return;
  nn::Linear lin(5, 3);
  lin.weight.data().copy_(fx["lin.W"]);
  lin.bias.data().copy_(fx["lin.b"]);
  Var x = leaf(fx["lin.x"]);
  Var out = lin(x);
  backward_weighted(out, fx["lin.wt"]);
  check_case(fx, "lin", out, {{"x", x}, {"W", lin.weight}, {"b", lin.bias}});
}

// ---- pooling ---------------------------------------------------------------------------------

// args = [kh, kw, stride_h, stride_w, pad_h, pad_w, ceil_mode, count_include_pad]
static Pool2dArgs pool_args(const Fixture& fx, const std::string& p) {
  std::vector<int64_t> a = fx.ints(p + ".args");
  Pool2dArgs r;
  r.kh = a[0], r.kw = a[1];
  r.stride_h = a[2], r.stride_w = a[3];
  r.pad_h = a[4], r.pad_w = a[5];
  r.ceil_mode = a[6] != 0;
  r.count_include_pad = a[7] != 0;
  return r;
}

TEST_CASE("parity: max_pool2d, avg_pool2d, global/adaptive average pooling vs torch",
          "[parity]") {
  Fixture fx;
  if (!load("pool.safetensors", fx)) return;
  for (std::string p : {"mp0", "mp1", "mp2", "ap0", "ap1", "ap2", "aap", "gap"}) {
    INFO(p << ": x " << shape_str(fx[p + ".x"].shape()));
    Var x = leaf(fx[p + ".x"]);
    Var out;
    if (p == "gap") {
      out = global_avg_pool(x);  // adaptive_avg_pool2d(x, 1).flatten(1)
    } else {
      Pool2dArgs a = pool_args(fx, p);
      INFO("k " << a.kh << "x" << a.kw << " stride " << a.stride_h << " pad " << a.pad_h
                << " ceil " << a.ceil_mode << " count_include_pad " << a.count_include_pad);
      // aap: adaptive_avg_pool2d(x, (2, 3)) on 6x9 is a 3x3 window with stride 3
      out = p[0] == 'm' ? max_pool2d(x, a) : avg_pool2d(x, a);
    }
    backward_weighted(out, fx[p + ".wt"]);
    check_case(fx, p, out, {{"x", x}});
  }
}

// ---- distances, normalisation, logsumexp -----------------------------------------------------

TEST_CASE("parity: pairwise_sqdist, l2_normalize, logsumexp vs torch", "[parity]") {
  Fixture fx;
  if (!load("distance.safetensors", fx)) return;
  {  // torch.cdist(a, b)**2 (float64), gradients through sum((a_i - b_j)^2)
    Var a = leaf(fx["sq.a"]), b = leaf(fx["sq.b"]);
    Var out = pairwise_sqdist(a, b);
    backward_weighted(out, fx["sq.wt"]);
    check_case(fx, "sq", out, {{"a", a}, {"b", b}});
  }
  {  // F.normalize(x, p=2, dim=1)
    Var x = leaf(fx["l2.x"]);
    Var out = l2_normalize(x);
    backward_weighted(out, fx["l2.wt"]);
    check_case(fx, "l2", out, {{"x", x}});
  }
  {  // torch.logsumexp(x, 1)
    Var x = leaf(fx["lse.x"]);
    Var out = logsumexp(x, 1);
    backward_weighted(out, fx["lse.wt"]);
    check_case(fx, "lse", out, {{"x", x}});
  }
}

// ---- optimisers ------------------------------------------------------------------------------

// Three steps with the stored gradients g1..g3; p1..p3 are torch's parameters after each step.
// Tolerance atol 1e-6, rtol 1e-5: p is O(1) and each step moves it by ~lr, so this resolves a
// 1e-4 relative error in the update while allowing a few float32 ulps of differently ordered math.
static void check_optim_steps(const Fixture& fx, const std::string& p, Var& param,
                              nn::Optimizer& opt) {
  for (int k = 1; k <= 3; ++k) {
    std::string s = std::to_string(k);
    opt.zero_grad();
    param.node()->accumulate(fx[p + ".g" + s].clone());  // clone: the grad may alias it
    opt.step();
    expect_close(param.data(), fx[p + ".p" + s], 1e-6, 1e-5, p + " after step " + s);
  }
}

TEST_CASE("parity: nn::Adam (weight decay) three steps vs torch.optim.Adam", "[parity]") {
  Fixture fx;
  if (!load("adam.safetensors", fx)) return;
  std::vector<float> h = fx["adam.hparams"].to_vector();  // lr, beta1, beta2, eps, weight_decay
  Var p = leaf(fx["adam.p0"]);
  nn::Adam opt({p}, h[0], h[1], h[2], h[3], h[4]);
  check_optim_steps(fx, "adam", p, opt);
}

TEST_CASE("parity: nn::SGD (momentum, weight decay) three steps vs torch.optim.SGD",
          "[parity]") {
  Fixture fx;
  if (!load("adam.safetensors", fx)) return;
  std::vector<float> h = fx["sgd.hparams"].to_vector();  // lr, momentum, weight_decay
  Var p = leaf(fx["sgd.p0"]);
  nn::SGD opt({p}, h[0], h[1], h[2]);
  check_optim_steps(fx, "sgd", p, opt);
}
