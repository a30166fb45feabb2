// The op harness (ggml's tests/test-backend-ops.cpp is the model): every op on every backend
// present, against the plain-loop reference backend (tensor/reference.cpp).
//   values: each case of tests/backend_cases.h runs through the public op on the backend and on
//           Device::Reference; every output (argmax, saved and running statistics, in-place
//           results included) must satisfy |got - ref| <= atol + rtol |ref| elementwise, NaN
//           meeting NaN and inf the same inf. The first mismatches are printed with their indices.
//   grads:  each backward entry's result on the backend against central finite differences IN
//           DOUBLE of the reference forward kernel instantiated for double: the gradient of
//           L = sum(w f(x)) with a fixed random cotangent w. Tolerance: atol 1e-6 of the
//           gradient's largest entry, rtol 1e-5 (finite-difference error ~1e-10; the rest is the
//           backend's float32 rounding).
//   perf:   bench/bench_backend_ops.cpp (µs per call, GB/s, GFLOP/s) from the same case table.
// Coverage: a test fails when an Op, UnaryOp or BinaryOp has no case, when a backward entry has no
// finite-difference case, and when the reference backend lacks an entry.
// CUDA: without a GPU (or a CUDA build) its test cases print "SKIPPED: <why>", which ctest reports
// as skipped (SKIP_REGULAR_EXPRESSION), never as passed.
// NORMAD_OPS_REPORT=1 prints, per case and output, the largest error as a fraction of the allowed
// one (how much of its tolerance each case uses).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>

#include "tensor/reference.h"

#include "tests/backend_cases.h"
#include "tests/helpers.h"

using namespace normad;
using cases::OpCase;
using cases::Output;

namespace {

bool report_enabled() { return std::getenv("NORMAD_OPS_REPORT") != nullptr; }

// "[i, j, k]" of flat index i in shape s.
std::string coords(int64_t i, const Shape& s) {
  Shape c(s.size());
  for (int64_t d = int64_t(s.size()) - 1; d >= 0; --d) c[d] = i % s[d], i /= s[d];
  return shape_str(c);
}

// |got - ref| <= atol + rtol |ref| per element; NaN must meet NaN and an infinity the same
// infinity. Returns the mismatch report (empty when all agree) and the largest error as a fraction
// of the allowed one in *used.
std::string compare(const Tensor& got_any, const Tensor& ref_any, double atol, double rtol,
                    double* used, const char* ref_name = "reference") {
  const Tensor got = got_any.to(Device::CPU), ref = ref_any.to(Device::CPU);
  std::ostringstream os;
  *used = 0;
  if (got.shape() != ref.shape()) {
    os << "shape " << shape_str(got.shape()) << " vs " << ref_name << " " << shape_str(ref.shape());
    return os.str();
  }
  int64_t bad = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const double g = got.data()[i], r = ref.data()[i];
    bool ok;
    double frac = 0;
    if (std::isnan(r) || std::isnan(g)) {
      ok = std::isnan(r) && std::isnan(g);
    } else if (std::isinf(r) || std::isinf(g)) {
      ok = g == r;
    } else {
      const double err = std::fabs(g - r), allowed = atol + rtol * std::fabs(r);
      frac = allowed > 0 ? err / allowed : (err > 0 ? INFINITY : 0);
      ok = err <= allowed;
    }
    *used = std::max(*used, ok ? frac : INFINITY);
    if (!ok) {
      if (bad < 5)
        os << "    [" << i << "] " << coords(i, got.shape()) << ": got " << g << ", " << ref_name << " " << r
           << ", |err| " << std::fabs(g - r) << "\n";
      ++bad;
    }
  }
  if (bad) os << "    " << bad << " of " << got.numel() << " elements differ";
  return os.str();
}

// ---- values: one backend against the reference on every case ----------------------------------

// Ops a backend leaves null (a backend in progress; the CUDA table is complete, test_cuda.cpp) are
// counted and named, not run: the complete backends (cpu, reference) must support every op
// (checked below and by "the reference backend implements every op").
bool lacks(Device d, Op op, std::map<std::string, int>& missing) {
  if (supports(backend_for(d), op)) return false;
  ++missing[op_name(op)];
  return true;
}

void report_missing(Device d, const std::map<std::string, int>& missing) {
  if (missing.empty()) return;
  std::string names;
  for (const auto& [n, k] : missing) names += (names.empty() ? "" : ", ") + n + " (" + std::to_string(k) + ")";
  WARN(device_name(d) << " backend lacks these ops; their cases did not run: " << names);
  CHECK(d != Device::CPU);  // the CPU backend implements every op
}

void run_values(Device d) {
  const std::vector<OpCase> table = cases::op_cases();
  int64_t ran = 0, failed = 0, unsupported = 0;
  std::map<std::string, int> missing;
  double worst = 0;
  std::string worst_case;
  for (const OpCase& c : table) {
    if (lacks(d, c.op, missing)) {
      ++unsupported;
      continue;
    }
    std::vector<Output> got, want;
    try {
      std::vector<Tensor> in = cases::inputs_on(c, d);
      got = c.run(in);
    } catch (const std::exception& e) {
      FAIL_CHECK(c.name << " on " << device_name(d) << " threw: " << e.what());
      ++failed;
      continue;
    }
    try {
      std::vector<Tensor> in = cases::inputs_on(c, Device::Reference);
      want = c.run(in);
    } catch (const std::exception& e) {
      FAIL_CHECK(c.name << " on reference threw: " << e.what());
      ++failed;
      continue;
    }
    ++ran;
    if (got.size() != want.size()) {
      FAIL_CHECK(c.name << ": " << got.size() << " outputs vs the reference's " << want.size());
      ++failed;
      continue;
    }
    for (size_t k = 0; k < got.size(); ++k) {
      const Tensor& g = got[k].value;
      // an output on another device is a dispatch bug, whatever its values
      if (g.device() != d || want[k].value.device() != Device::Reference) {
        FAIL_CHECK(c.name << " output " << got[k].name << " is on " << device_name(g.device())
                          << " / reference output on " << device_name(want[k].value.device()));
        ++failed;
        continue;
      }
      double used = 0;
      const std::string rep = compare(g, want[k].value, c.atol, c.rtol, &used);
      if (report_enabled())
        std::printf("ops-report %-10s %-70s %-16s %.3f of tolerance\n", device_name(d), c.name.c_str(),
                    got[k].name.c_str(), used);
      if (used > worst && std::isfinite(used)) worst = used, worst_case = c.name + " " + got[k].name;
      if (!rep.empty()) {
        FAIL_CHECK(device_name(d) << " vs reference, case \"" << c.name << "\", output " << got[k].name
                                  << " (atol " << c.atol << ", rtol " << c.rtol << "):\n"
                                  << rep);
        ++failed;
      }
    }
  }
  std::printf("backend ops %s vs reference: %lld cases, %lld failed, %lld not implemented; largest error %.3g of its tolerance (%s)\n",
              device_name(d), (long long)ran, (long long)failed, (long long)unsupported, worst, worst_case.c_str());
  report_missing(d, missing);
  CHECK(ran + unsupported == int64_t(table.size()));
  CHECK(failed == 0);
}

// ---- gradients: backward entries against finite differences in double ---------------------------

using DVec = std::vector<double>;

DVec dvec(const Tensor& t) {
  if (!t.defined()) return {};
  const std::vector<float> v = t.to_vector();
  return DVec(v.begin(), v.end());
}

struct GradCase {
  std::string name;
  Op op = Op::count;             // the backward entry checked
  int sub = -1;                  // its BinaryOp for Op::binary
  std::vector<Tensor> inputs;    // float values, used exactly in double by the forward
  std::vector<int> wrt;          // the inputs differentiated
  Shape out_shape;               // shape of f(x) (and of the cotangent w)
  // f(x) through the reference kernels in double
  std::function<DVec(const std::vector<DVec>& x)> forward;
  // the backend's gradients of sum(w f(x)) for each input in wrt, through the public ops
  std::function<std::vector<Tensor>(std::vector<Tensor>& in, const Tensor& w)> backward;
  // atol is relative to the gradient's largest entry
  double atol = 1e-6, rtol = 1e-5;
};

GradCase grad_case(std::string name, Op op, int sub, std::vector<Tensor> inputs, std::vector<int> wrt,
                   Shape out_shape) {
  GradCase c;
  c.name = std::move(name), c.op = op, c.sub = sub, c.inputs = std::move(inputs), c.wrt = std::move(wrt);
  c.out_shape = std::move(out_shape);
  return c;
}

// Central differences in double: h = 1e-6 max(1, |x|) leaves a truncation error ~h^2 |f'''| ~ 1e-12
// and a rounding error ~1e-16 |L| / h ~ 1e-10 |L|, both far below the float32 rounding of the
// backend's gradient (~1e-7 relative), which the tolerances are set for.
std::vector<DVec> finite_differences(const GradCase& c, const DVec& w) {
  std::vector<DVec> x;
  for (const Tensor& t : c.inputs) x.push_back(dvec(t));
  auto loss = [&]() {
    const DVec y = c.forward(x);
    double s = 0;
    for (size_t i = 0; i < y.size(); ++i) s += w[i] * y[i];
    return s;
  };
  std::vector<DVec> grads;
  for (int k : c.wrt) {
    DVec g(x[k].size());
    for (size_t i = 0; i < x[k].size(); ++i) {
      const double keep = x[k][i], h = 1e-6 * std::max(1.0, std::fabs(keep));
      x[k][i] = keep + h;
      const double lp = loss();
      x[k][i] = keep - h;
      const double lm = loss();
      x[k][i] = keep;
      g[i] = (lp - lm) / ((keep + h) - (keep - h));
    }
    grads.push_back(std::move(g));
  }
  return grads;
}

// Shape helpers for the double forwards.
void outer_r_inner(const Shape& s, int64_t d, int64_t* o, int64_t* r, int64_t* in) {
  d = d < 0 ? d + int64_t(s.size()) : d;
  *o = 1, *in = 1, *r = s[d];
  for (int64_t i = 0; i < d; ++i) *o *= s[i];
  for (size_t i = d + 1; i < s.size(); ++i) *in *= s[i];
}
ref::PoolSize pool_size_of(const Shape& x, const Pool2dArgs& a) {
  const Shape o = pool2d_shape(x, a);
  return {x[0], x[1], x[2], x[3], o[2], o[3]};
}

std::vector<GradCase> grad_cases() {
  std::vector<GradCase> cs;
  uint64_t seed = 5000;

  // ---- elementwise backward rules ----
  for (float slope : {0.1f, 0.f}) {
    Generator g(seed++);
    GradCase c = grad_case("leaky_relu_backward/slope " + std::to_string(slope).substr(0, 3) + " [3, 5]", Op::binary,
               int(BinaryOp::leaky_relu_backward), {cases::away_from({3, 5}, {0.f})(g)}, {0}, {3, 5});
    c.forward = [slope](const std::vector<DVec>& x) {
      DVec y(x[0].size());
      ref::unary_forward<double>(y.data(), x[0].data(), int64_t(y.size()), UnaryOp::leaky_relu, slope, 0);
      return y;
    };
    c.backward = [slope](std::vector<Tensor>& in, const Tensor& w) {
      return std::vector<Tensor>{leaky_relu_backward(w, in[0], slope)};
    };
    cs.push_back(c);
  }
  {
    Generator g(seed++);
    const float lo = -0.6f, hi = 0.8f;
    GradCase c = grad_case("clamp_backward/[4, 5]", Op::binary, int(BinaryOp::clamp_backward),
               {cases::away_from({4, 5}, {lo, hi})(g)}, {0}, {4, 5});
    c.forward = [=](const std::vector<DVec>& x) {
      DVec y(x[0].size());
      ref::unary_forward<double>(y.data(), x[0].data(), int64_t(y.size()), UnaryOp::clamp, lo, hi);
      return y;
    };
    c.backward = [=](std::vector<Tensor>& in, const Tensor& w) {
      return std::vector<Tensor>{clamp_backward(w, in[0], lo, hi)};
    };
    cs.push_back(c);
  }

  // ---- max over a dim ----
  struct MaxArgs {
    Shape s;
    int64_t dim;
    bool keepdim;
  };
  for (MaxArgs m : {MaxArgs{{3, 4, 5}, 1, false}, MaxArgs{{2, 3, 7}, -1, true}}) {
    Generator g(seed++);
    Shape os = m.s;
    const int64_t d = m.dim < 0 ? m.dim + int64_t(m.s.size()) : m.dim;
    if (m.keepdim) os[d] = 1;
    else os.erase(os.begin() + d);
    GradCase c = grad_case("max_backward/" + shape_str(m.s) + " dim " + std::to_string(m.dim), Op::max_backward, -1,
               {cases::distinct(m.s)(g)}, {0}, os);
    c.forward = [m](const std::vector<DVec>& x) {
      int64_t o, r, in;
      outer_r_inner(m.s, m.dim, &o, &r, &in);
      DVec y(o * in);
      ref::max_forward<double>(y.data(), nullptr, x[0].data(), o, r, in);
      return y;
    };
    c.backward = [m](std::vector<Tensor>& in, const Tensor& w) {
      Tensor am;
      max(in[0], m.dim, m.keepdim, &am);
      return std::vector<Tensor>{max_backward(w, am, in[0].shape(), m.dim)};
    };
    cs.push_back(c);
  }

  // ---- convolution: the input and the weight gradient of one conv each ----
  struct ConvG {
    const char* what;
    Shape xs, ws;
    Conv2dArgs a;
  };
  for (ConvG k : {ConvG{"basic", {2, 3, 5, 4}, {4, 3, 3, 3}, cases::conv_args(1, 1, 1, 1)},
                  ConvG{"grouped strided", {2, 4, 7, 6}, {6, 2, 3, 3}, cases::conv_args(2, 2, 1, 1, 1, 1, 2)},
                  ConvG{"depthwise", {2, 3, 6, 5}, {3, 1, 3, 3}, cases::conv_args(2, 2, 1, 1, 1, 1, 3)},
                  ConvG{"asymmetric dilated", {1, 2, 6, 7}, {3, 2, 2, 3}, cases::conv_args(2, 1, 1, 0, 1, 2)},
                  ConvG{"pointwise", {1, 4, 3, 3}, {2, 4, 1, 1}, cases::conv_args(1, 1, 0, 0)}}) {
    const Shape os = conv2d_shape(k.xs, k.ws, k.a);
    auto forward = [k](const std::vector<DVec>& x) {
      const ref::ConvSize s = ref::conv_size(k.xs, k.ws, k.a);
      DVec y(s.N * s.F * s.OH * s.OW);
      ref::conv2d_forward<double>(y.data(), x[0].data(), x[1].data(), nullptr, s, k.a);
      return y;
    };
    const std::string tag = std::string(k.what) + " x" + shape_str(k.xs) + " w" + shape_str(k.ws);
    Generator g(seed++);
    Tensor x = g.normal(k.xs), w = g.normal(k.ws, 0.f, 0.5f);
    GradCase ci = grad_case("conv2d_backward_input/" + tag, Op::conv2d_backward_input, -1, {x, w}, {0}, os);
    ci.forward = forward;
    ci.backward = [k](std::vector<Tensor>& in, const Tensor& cot) {
      return std::vector<Tensor>{conv2d_backward_input(cot, in[1], k.xs, k.a)};
    };
    cs.push_back(ci);
    GradCase cw = grad_case("conv2d_backward_weight/" + tag, Op::conv2d_backward_weight, -1, {x, w}, {1}, os);
    cw.forward = forward;
    cw.backward = [k](std::vector<Tensor>& in, const Tensor& cot) {
      return std::vector<Tensor>{conv2d_backward_weight(cot, in[0], k.ws, k.a)};
    };
    cs.push_back(cw);
  }

  // ---- pooling and upsampling ----
  for (Pool2dArgs a : {cases::pool_args(3, 3, 2, 2, 1, 1), cases::pool_args(3, 3, 2, 2, 0, 0, true),
                       cases::pool_args(2, 3, 1, 2, 1, 1)}) {
    const Shape xs{2, 2, 6, 7};
    Generator g(seed++);
    GradCase c = grad_case("max_pool2d_backward/x" + shape_str(xs) + " " + cases::pool_str(a), Op::max_pool2d_backward, -1,
               {cases::distinct(xs)(g)}, {0}, pool2d_shape(xs, a));
    c.forward = [a, xs](const std::vector<DVec>& x) {
      const ref::PoolSize s = pool_size_of(xs, a);
      DVec y(s.N * s.C * s.OH * s.OW);
      ref::max_pool2d_forward<double>(y.data(), nullptr, x[0].data(), s, a);
      return y;
    };
    c.backward = [a](std::vector<Tensor>& in, const Tensor& w) {
      Tensor am;
      max_pool2d(in[0], a, &am);
      return std::vector<Tensor>{max_pool2d_backward(w, am, in[0].shape())};
    };
    cs.push_back(c);
  }
  for (Pool2dArgs a : {cases::pool_args(3, 3, 2, 2, 1, 1), cases::pool_args(3, 3, 2, 2, 1, 1, true, false),
                       cases::pool_args(3, 3, 2, 2, 1, 1, true, true), cases::pool_args(2, 2, 2, 2, 0, 0)}) {
    const Shape xs{1, 3, 6, 5};
    Generator g(seed++);
    GradCase c = grad_case("avg_pool2d_backward/x" + shape_str(xs) + " " + cases::pool_str(a), Op::avg_pool2d_backward, -1,
               {g.normal(xs)}, {0}, pool2d_shape(xs, a));
    c.forward = [a, xs](const std::vector<DVec>& x) {
      const ref::PoolSize s = pool_size_of(xs, a);
      DVec y(s.N * s.C * s.OH * s.OW);
      ref::avg_pool2d_forward<double>(y.data(), x[0].data(), s, a);
      return y;
    };
    c.backward = [a, xs](std::vector<Tensor>& in, const Tensor& w) {
      return std::vector<Tensor>{avg_pool2d_backward(w, xs, a)};
    };
    cs.push_back(c);
  }
  for (int64_t scale : {2, 3}) {
    const Shape xs{2, 2, 3, 2};
    Generator g(seed++);
    GradCase c = grad_case("upsample_nearest2d_backward/x" + shape_str(xs) + " scale " + std::to_string(scale),
               Op::upsample_nearest2d_backward, -1, {g.normal(xs)}, {0},
               {xs[0], xs[1], xs[2] * scale, xs[3] * scale});
    c.forward = [xs, scale](const std::vector<DVec>& x) {
      DVec y(shape_numel(xs) * scale * scale);
      ref::upsample_nearest2d_forward<double>(y.data(), x[0].data(), xs[0] * xs[1], xs[2], xs[3], scale);
      return y;
    };
    c.backward = [scale](std::vector<Tensor>& in, const Tensor& w) {
      return std::vector<Tensor>{upsample_nearest2d_backward(w, scale)};
    };
    cs.push_back(c);
  }

  // ---- batch norm: dx, dgamma, dbeta through the batch statistics ----
  struct BnG {
    Shape xs;
    int64_t groups;
    bool affine;
  };
  // At least 3 rows per group: with 2 the normalised pair is +-1 up to eps and the gradient is a
  // difference of nearly equal float terms, ill-conditioned for any float32 backend.
  for (BnG b : {BnG{{6, 4}, 1, true}, BnG{{12, 4}, 3, true}, BnG{{4, 3, 2, 3}, 2, true}, BnG{{4, 2, 3, 3}, 1, false}}) {
    const int64_t C = b.xs[1];
    Generator g(seed++);
    Tensor x = g.normal(b.xs), gamma = g.uniform({C}, 0.5f, 1.5f), beta = g.normal({C});
    GradCase c = grad_case("batch_norm_backward/x" + shape_str(b.xs) + " G" + std::to_string(b.groups) +
                   (b.affine ? "" : " no affine"),
               Op::batch_norm_backward, -1,
               {x, b.affine ? gamma : Tensor(), b.affine ? beta : Tensor()},
               b.affine ? std::vector<int>{0, 1, 2} : std::vector<int>{0},
               b.xs);
    c.forward = [b](const std::vector<DVec>& x) {
      const int64_t N = b.xs[0], C = b.xs[1], S = b.xs.size() == 4 ? b.xs[2] * b.xs[3] : 1;
      DVec y(x[0].size()), mean(b.groups * C), invstd(b.groups * C);
      ref::batch_norm_train_forward<double>(y.data(), mean.data(), invstd.data(), nullptr, nullptr, x[0].data(),
                                            b.affine ? x[1].data() : nullptr, b.affine ? x[2].data() : nullptr, N,
                                            C, S, b.groups, 1e-5, 0.1);
      return y;
    };
    c.backward = [b](std::vector<Tensor>& in, const Tensor& w) {
      BatchNormSaved saved;
      batch_norm_train(in[0], in[1], in[2], 1e-5f, b.groups, &saved);
      Tensor dg, db;
      Tensor dx = batch_norm_backward(w, in[0], in[1], saved, b.groups, &dg, &db);
      return b.affine ? std::vector<Tensor>{dx, dg, db} : std::vector<Tensor>{dx};
    };
    cs.push_back(c);
  }

  // ---- batch norm + leaky ReLU: dx, dgamma, dbeta through the statistics and the ReLU's mask ----
  for (BnG b : {BnG{{6, 4}, 1, true}, BnG{{4, 3, 2, 3}, 2, true}, BnG{{4, 2, 3, 3}, 1, false}}) {
    for (float slope : {0.f, 0.1f}) {
      const int64_t C = b.xs[1];
      Generator g(seed++);
      Tensor x = g.normal(b.xs), gamma = g.uniform({C}, 0.5f, 1.5f), beta = g.normal({C});
      GradCase c = grad_case("batch_norm_relu_backward/x" + shape_str(b.xs) + " G" + std::to_string(b.groups) +
                                 (b.affine ? "" : " no affine") + " slope " + std::to_string(slope),
                             Op::batch_norm_relu_backward, -1,
                             {x, b.affine ? gamma : Tensor(), b.affine ? beta : Tensor()},
                             b.affine ? std::vector<int>{0, 1, 2} : std::vector<int>{0}, b.xs);
      c.forward = [b, slope](const std::vector<DVec>& x) {
        const int64_t N = b.xs[0], C = b.xs[1], S = b.xs.size() == 4 ? b.xs[2] * b.xs[3] : 1;
        DVec y(x[0].size()), mean(b.groups * C), invstd(b.groups * C);
        ref::batch_norm_relu_train_forward<double>(y.data(), mean.data(), invstd.data(), nullptr, nullptr,
                                                   x[0].data(), b.affine ? x[1].data() : nullptr,
                                                   b.affine ? x[2].data() : nullptr, N, C, S, b.groups, 1e-5,
                                                   0.1, slope);
        return y;
      };
      c.backward = [b, slope](std::vector<Tensor>& in, const Tensor& w) {
        BatchNormSaved saved;
        batch_norm_relu_train(in[0], in[1], in[2], 1e-5f, b.groups, slope, &saved);
        Tensor dg, db;
        Tensor dx = batch_norm_relu_backward(w, in[0], in[1], in[2], saved, b.groups, slope, &dg, &db);
        return b.affine ? std::vector<Tensor>{dx, dg, db} : std::vector<Tensor>{dx};
      };
      cs.push_back(c);
    }
  }

  // ---- distances and normalisation ----
  {
    Generator g(seed++);
    GradCase c = grad_case("pairwise_sqdist_backward/[4, 3] [5, 3]", Op::pairwise_sqdist_backward, -1,
               {g.normal({4, 3}), g.normal({5, 3})}, {0, 1}, {4, 5});
    c.forward = [](const std::vector<DVec>& x) {
      DVec y(20);
      ref::pairwise_sqdist_forward<double>(y.data(), x[0].data(), x[1].data(), 4, 5, 3);
      return y;
    };
    c.backward = [](std::vector<Tensor>& in, const Tensor& w) {
      Tensor dist = pairwise_sqdist(in[0], in[1]), da, db;
      pairwise_sqdist_backward(w, in[0], in[1], dist, &da, &db);
      return std::vector<Tensor>{da, db};
    };
    cs.push_back(c);
  }
  {
    Generator g(seed++);
    GradCase c = grad_case("l2_normalize_backward/[3, 5]", Op::l2_normalize_backward, -1, {g.normal({3, 5})}, {0}, {3, 5});
    c.forward = [](const std::vector<DVec>& x) {
      DVec y(15);
      ref::l2_normalize_forward<double>(y.data(), x[0].data(), 3, 5, 1e-12);
      return y;
    };
    c.backward = [](std::vector<Tensor>& in, const Tensor& w) {
      Tensor y = l2_normalize(in[0], 1e-12f);
      return std::vector<Tensor>{l2_normalize_backward(w, in[0], y, 1e-12f)};
    };
    cs.push_back(c);
  }

  // ---- slice_add and index_add as the backwards of slice and index_select ----
  {
    Generator g(seed++);
    GradCase c = grad_case("slice_add/backward of slice [4, 5, 3] dim 1 [1, 4)", Op::slice_add, -1, {g.normal({4, 5, 3})}, {0},
               {4, 3, 3});
    c.forward = [](const std::vector<DVec>& x) {
      DVec y(36);
      ref::slice_forward<double>(y.data(), x[0].data(), 4, 5, 3, 1, 3);
      return y;
    };
    c.backward = [](std::vector<Tensor>& in, const Tensor& w) {
      Tensor dx = Tensor::zeros(in[0].shape(), in[0].device());
      slice_add_(dx, w, 1, 1);
      return std::vector<Tensor>{dx};
    };
    cs.push_back(c);
  }
  {
    Generator g(seed++);
    const std::vector<int64_t> idx{4, 0, 4, 1};
    GradCase c = grad_case("index_add/backward of index_select [5, 2, 3] rows 4 0 4 1", Op::index_add, -1,
               {g.normal({5, 2, 3})}, {0}, {4, 2, 3});
    c.forward = [idx](const std::vector<DVec>& x) {
      DVec y(24);
      ref::index_select_forward<double>(y.data(), x[0].data(), idx.data(), 4, 6);
      return y;
    };
    c.backward = [idx](std::vector<Tensor>& in, const Tensor& w) {
      Tensor dx = Tensor::zeros(in[0].shape(), in[0].device());
      index_add_(dx, idx, w);
      return std::vector<Tensor>{dx};
    };
    cs.push_back(c);
  }
  return cs;
}

void run_grads(Device d) {
  const std::vector<GradCase> table = grad_cases();
  int64_t ran = 0, failed = 0, unsupported = 0;
  std::map<std::string, int> missing;
  double worst = 0;
  for (const GradCase& c : table) {
    if (lacks(d, c.op, missing)) {
      ++unsupported;
      continue;
    }
    Generator g(777);
    const Tensor w = g.normal(c.out_shape);
    std::vector<Tensor> analytic;
    try {
      std::vector<Tensor> in;
      for (const Tensor& t : c.inputs) in.push_back(t.defined() ? t.to(d) : Tensor());
      analytic = c.backward(in, w.to(d));
    } catch (const std::exception& e) {
      FAIL_CHECK(c.name << " on " << device_name(d) << " threw: " << e.what());
      ++failed;
      continue;
    }
    const std::vector<DVec> numeric = finite_differences(c, dvec(w));
    ++ran;
    REQUIRE(analytic.size() == c.wrt.size());
    for (size_t k = 0; k < c.wrt.size(); ++k) {
      const Tensor& input = c.inputs[c.wrt[k]];
      Tensor num(input.shape());
      double scale = 1;
      for (size_t i = 0; i < numeric[k].size(); ++i) {
        num.data()[i] = float(numeric[k][i]);
        scale = std::max(scale, std::fabs(numeric[k][i]));
      }
      double used = 0;
      const std::string rep = compare(analytic[k], num, c.atol * scale, c.rtol, &used, "finite differences");
      if (report_enabled())
        std::printf("grad-report %-10s %-70s input %d: %.3f of tolerance\n", device_name(d), c.name.c_str(),
                    c.wrt[k], used);
      if (std::isfinite(used)) worst = std::max(worst, used);
      if (!rep.empty()) {
        FAIL_CHECK(device_name(d) << " backward vs finite differences, case \"" << c.name << "\", d/dinput"
                                  << c.wrt[k] << " (atol " << c.atol << " x max|grad| " << scale << ", rtol "
                                  << c.rtol << "):\n"
                                  << rep);
        ++failed;
      }
    }
  }
  std::printf("backend grads %s vs finite differences: %lld cases, %lld failed, %lld not implemented; largest error %.3g of its tolerance\n",
              device_name(d), (long long)ran, (long long)failed, (long long)unsupported, worst);
  report_missing(d, missing);
  CHECK(ran + unsupported == int64_t(table.size()));
  CHECK(failed == 0);
}

// Runs `f` on d, or reports the test as skipped with the reason (never as passed).
template <class F>
void on_device(Device d, F f) {
  if (test::device_or_skip(d)) f(d);
}

}  // namespace

TEST_CASE("backend ops: cpu vs reference", "[backend_ops]") { on_device(Device::CPU, run_values); }
TEST_CASE("backend ops: cuda vs reference", "[backend_ops][cuda]") { on_device(Device::CUDA, run_values); }

TEST_CASE("backend grads: reference vs finite differences", "[backend_ops]") {
  on_device(Device::Reference, run_grads);
}
TEST_CASE("backend grads: cpu vs finite differences", "[backend_ops]") { on_device(Device::CPU, run_grads); }
TEST_CASE("backend grads: cuda vs finite differences", "[backend_ops][cuda]") {
  on_device(Device::CUDA, run_grads);
}

TEST_CASE("backend ops: every op has a case", "[backend_ops]") {
  const std::vector<OpCase> table = cases::op_cases();
  std::set<std::string> names;
  for (const OpCase& c : table) {
    INFO("case " << c.name);
    CHECK(names.insert(c.name).second);  // names are unique (the reports and bench use them)
  }
  for (int o = 0; o < int(Op::count); ++o) {
    if (Op(o) == Op::unary || Op(o) == Op::binary) continue;  // counted per sub-op below
    const bool covered = std::any_of(table.begin(), table.end(), [&](const OpCase& c) { return c.op == Op(o); });
    INFO("Op::" << op_name(Op(o)) << " has no case in tests/backend_cases.h op_cases()");
    CHECK(covered);
  }
  for (int u = 0; u < int(UnaryOp::count); ++u) {
    const bool covered = std::any_of(table.begin(), table.end(),
                                     [&](const OpCase& c) { return c.op == Op::unary && c.sub == u; });
    INFO("UnaryOp::" << unary_op_name(UnaryOp(u)) << " has no case in tests/backend_cases.h op_cases()");
    CHECK(covered);
  }
  for (int b = 0; b < int(BinaryOp::count); ++b) {
    const bool covered = std::any_of(table.begin(), table.end(),
                                     [&](const OpCase& c) { return c.op == Op::binary && c.sub == b; });
    INFO("BinaryOp::" << binary_op_name(BinaryOp(b)) << " has no case in tests/backend_cases.h op_cases()");
    CHECK(covered);
  }
  // the perf table covers every op family too (a missing one would be silently untimed)
  const std::vector<OpCase> perf = cases::op_perf_cases();
  for (int o = 0; o < int(Op::count); ++o) {
    const bool covered = std::any_of(perf.begin(), perf.end(), [&](const OpCase& c) { return c.op == Op(o); });
    INFO("Op::" << op_name(Op(o)) << " has no case in tests/backend_cases.h op_perf_cases()");
    CHECK(covered);
  }
}

TEST_CASE("backend ops: every backward entry has a finite-difference case", "[backend_ops]") {
  const std::vector<GradCase> table = grad_cases();
  struct Entry {
    Op op;
    int sub;
  };
  for (Entry e : {Entry{Op::binary, int(BinaryOp::leaky_relu_backward)}, Entry{Op::binary, int(BinaryOp::clamp_backward)},
                  Entry{Op::max_backward, -1}, Entry{Op::conv2d_backward_input, -1},
                  Entry{Op::conv2d_backward_weight, -1}, Entry{Op::max_pool2d_backward, -1},
                  Entry{Op::avg_pool2d_backward, -1}, Entry{Op::upsample_nearest2d_backward, -1},
                  Entry{Op::batch_norm_backward, -1}, Entry{Op::batch_norm_relu_backward, -1},
                  Entry{Op::pairwise_sqdist_backward, -1},
                  Entry{Op::l2_normalize_backward, -1}, Entry{Op::slice_add, -1}, Entry{Op::index_add, -1}}) {
    const bool covered = std::any_of(table.begin(), table.end(),
                                     [&](const GradCase& c) { return c.op == e.op && c.sub == e.sub; });
    INFO(op_name(e.op) << (e.sub >= 0 ? std::string(" ") + binary_op_name(BinaryOp(e.sub)) : "")
                       << " has no finite-difference case in grad_cases()");
    CHECK(covered);
  }
}

TEST_CASE("backend ops: the reference backend implements every op", "[backend_ops]") {
  const Backend& r = reference_backend();
  CHECK(r.device == Device::Reference);
  CHECK(std::string(r.name) == "reference");
  for (int o = 0; o < int(Op::count); ++o) {
    INFO("reference backend lacks Op::" << op_name(Op(o)));
    CHECK(supports(r, Op(o)));
  }
  // and the CPU backend, since every other backend is checked against both
  for (int o = 0; o < int(Op::count); ++o) {
    INFO("cpu backend lacks Op::" << op_name(Op(o)));
    CHECK(supports(cpu_backend(), Op(o)));
  }
}
