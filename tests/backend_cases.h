// The op table of the backend harness (ggml's tests/test-backend-ops.cpp is the model): one entry
// per case, each tagged with the backend Op it exercises (and its UnaryOp / BinaryOp), seeded
// inputs with odd and size-1 dims, and a `run` that calls the PUBLIC op (tensor/ops.h) on whatever
// device its inputs live on and returns every output it produces (argmax, saved statistics,
// running statistics and in-place results included).
// Math: none here; tests/test_backend_ops.cpp compares run() on each backend with run() on the
// reference backend, |got - ref| <= atol + rtol |ref| per element (NaN must meet NaN, inf the same
// inf), and bench/bench_backend_ops.cpp times run() on the cases of op_perf_cases() (µs per call,
// GB/s and GFLOP/s).
// Tested by itself: tests/test_backend_ops.cpp fails when an Op, UnaryOp or BinaryOp has no case.
//
// Inputs are made on demand (OpCase::inputs()) from a generator seeded by the case's position, so
// building a table is cheap (the bench registers the large perf cases at start-up) and every call,
// on every backend, sees the same numbers.
//
// To add a case: append an `add(...)` to op_cases() with a unique "op/what" name, the Op tag (and
// sub-op: add_unary / add_binary), one input maker per input (normal({3, 4}), values(...), ...) and
// a run lambda; state a tolerance when the default (same float formula: 1e-6) does not fit.
// docs/backends.md has the guide.
//
// Shapes: N batch, C channels, H, W spatial, F filters, M, K, N matrix sizes, B batch of matrices.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "tensor/backend.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace normad::cases {

// One named output of a case (the harness reports mismatches by case and output name).
struct Output {
  std::string name;
  Tensor value;
};
using RunFn = std::function<std::vector<Output>(std::vector<Tensor>& in)>;
// One input, drawn from the case's generator; the inputs of a case are drawn in order.
using Make = std::function<Tensor(Generator& g)>;

struct OpCase {
  std::string name;  // unique, "op/what", e.g. "conv2d/depthwise x[2, 6, 8, 7] ..."
  Op op;             // the backend entry this case exercises
  int sub = -1;      // the UnaryOp / BinaryOp (as int) for Op::unary / Op::binary
  std::function<std::vector<Tensor>()> make;  // fresh CPU inputs, the same numbers on every call
  RunFn run;         // the public op(s) on the inputs' device; may write into them (in-place ops)
  double atol = 1e-6, rtol = 1e-6;
  double flops = 0;  // floating-point operations per call (0: the perf mode reports GB/s only)
};

// Fresh inputs of `c` on device d (undefined ones stay undefined: optional arguments).
inline std::vector<Tensor> inputs_on(const OpCase& c, Device d) {
  std::vector<Tensor> in = c.make();
  for (Tensor& t : in)
    if (t.defined()) t = t.to(d);
  return in;
}

// Bytes an op call reads and writes (inputs + outputs), for the perf mode's GB/s.
inline double bytes_moved(const std::vector<Tensor>& in, const std::vector<Output>& out) {
  double b = 0;
  for (const Tensor& t : in) b += 4.0 * double(t.numel());
  for (const Output& o : out) b += 4.0 * double(o.value.numel());
  return b;
}

// ---- input makers ----------------------------------------------------------------------------

inline Make normal(Shape s, float mean = 0.f, float std = 1.f) {
  return [=](Generator& g) { return g.normal(s, mean, std); };
}
inline Make uniform(Shape s, float lo, float hi) {
  return [=](Generator& g) { return g.uniform(s, lo, hi); };
}
// Integers in [lo, hi) as floats: ties, for the first-maximum rules.
inline Make ints(Shape s, int64_t lo, int64_t hi) {
  return [=](Generator& g) {
    Tensor t(s);
    for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = float(g.randint(lo, hi));
    return t;
  };
}
// A permutation of n evenly spaced values in (-1, 1) times `scale`: no ties, any two values at
// least 2 scale / n apart (max and max-pool gradients stay away from their kinks).
inline Make distinct(Shape s, float scale = 1.f) {
  return [=](Generator& g) {
    Tensor t(s);
    const int64_t n = t.numel();
    std::vector<int64_t> p = g.permutation(n);
    for (int64_t i = 0; i < n; ++i)
      t.data()[i] = scale * (2.f * float(p[i]) / float(n) - 1.f + 0.5f / float(n));
    return t;
  };
}
// Normal values pushed at least `margin` away from each of the `kinks` (relu at 0, clamp bounds).
inline Make away_from(Shape s, std::vector<float> kinks, float margin = 1e-2f) {
  return [=](Generator& g) {
    Tensor t = g.normal(s);
    for (int64_t i = 0; i < t.numel(); ++i)
      for (float k : kinks) {
        float& v = t.data()[i];
        if (std::fabs(v - k) < margin) v = k + (v >= k ? margin : -margin);
      }
    return t;
  };
}
// Fixed values.
inline Make values(Shape s, std::vector<float> v) {
  return [=](Generator&) { return Tensor::from(s, v); };
}
inline Make zeros(Shape s) {
  return [=](Generator&) { return Tensor::zeros(s); };
}
// An undefined tensor (an optional argument left out).
inline Make none() {
  return [](Generator&) { return Tensor(); };
}
// Random row indices in [0, rows) as floats (the argmax inputs of the backward ops).
inline Make index(Shape s, int64_t rows) { return ints(std::move(s), 0, rows); }
// Sets listed flat positions to given values (zeros, bounds, NaN, inf) to pin the edge rules.
inline Make poke(Make m, std::vector<std::pair<int64_t, float>> vals) {
  return [=](Generator& g) {
    Tensor t = m(g);
    for (auto [i, v] : vals) t.data()[i] = v;
    return t;
  };
}
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// The public op of a UnaryOp / BinaryOp (what run() calls).
inline Tensor call_unary(UnaryOp op, const Tensor& a, float p0, float p1) {
  switch (op) {
    case UnaryOp::neg: return normad::neg(a);
    case UnaryOp::exp: return normad::exp(a);
    case UnaryOp::log: return normad::log(a);
    case UnaryOp::sqrt: return normad::sqrt(a);
    case UnaryOp::abs: return normad::abs(a);
    case UnaryOp::sign: return normad::sign(a);
    case UnaryOp::pow: return normad::pow(a, p0);
    case UnaryOp::clamp: return normad::clamp(a, p0, p1);
    case UnaryOp::relu: return normad::relu(a);
    case UnaryOp::leaky_relu: return normad::leaky_relu(a, p0);
    case UnaryOp::sigmoid: return normad::sigmoid(a);
    case UnaryOp::silu: return normad::silu(a);
    case UnaryOp::add_scalar: return normad::add_scalar(a, p0);
    case UnaryOp::mul_scalar: return normad::mul_scalar(a, p0);
    case UnaryOp::count: break;
  }
  throw Error("call_unary: no such op");
}
inline Tensor call_binary(BinaryOp op, const Tensor& a, const Tensor& b, float p0, float p1) {
  switch (op) {
    case BinaryOp::add: return normad::add(a, b);
    case BinaryOp::sub: return normad::sub(a, b);
    case BinaryOp::mul: return normad::mul(a, b);
    case BinaryOp::div: return normad::div(a, b);
    case BinaryOp::maximum: return normad::maximum(a, b);
    case BinaryOp::leaky_relu_backward: return normad::leaky_relu_backward(a, b, p0);
    case BinaryOp::clamp_backward: return normad::clamp_backward(a, b, p0, p1);
    case BinaryOp::count: break;
  }
  throw Error("call_binary: no such op");
}

// ---- argument helpers ------------------------------------------------------------------------

inline Conv2dArgs conv_args(int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh = 1,
                            int64_t dw = 1, int64_t groups = 1) {
  Conv2dArgs a;
  a.stride_h = sh, a.stride_w = sw, a.pad_h = ph, a.pad_w = pw, a.dil_h = dh, a.dil_w = dw;
  a.groups = groups;
  return a;
}
inline std::string conv_str(const Conv2dArgs& a) {
  std::ostringstream os;
  os << "s" << a.stride_h << "x" << a.stride_w << " p" << a.pad_h << "x" << a.pad_w << " d"
     << a.dil_h << "x" << a.dil_w << " g" << a.groups;
  return os.str();
}
// 2 N F OH OW Cg KH KW: one multiply-add per weight per output position.
inline double conv_flops(const Shape& x, const Shape& w, const Conv2dArgs& a) {
  const Shape o = conv2d_shape(x, w, a);
  return 2.0 * double(o[0] * o[1] * o[2] * o[3]) * double(w[1] * w[2] * w[3]);
}
inline Pool2dArgs pool_args(int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
                            int64_t pw, bool ceil_mode = false, bool count_include_pad = true) {
  Pool2dArgs a;
  a.kh = kh, a.kw = kw, a.stride_h = sh, a.stride_w = sw, a.pad_h = ph, a.pad_w = pw;
  a.ceil_mode = ceil_mode, a.count_include_pad = count_include_pad;
  return a;
}
inline std::string pool_str(const Pool2dArgs& a) {
  std::ostringstream os;
  os << "k" << a.kh << "x" << a.kw << " s" << a.stride_h << "x" << a.stride_w << " p" << a.pad_h
     << "x" << a.pad_w << (a.ceil_mode ? " ceil" : "") << (a.count_include_pad ? "" : " exclude_pad");
  return os.str();
}
// One output named "out".
inline std::vector<Output> out1(Tensor t) { return {{"out", std::move(t)}}; }

// Collects cases. Case k draws its inputs from Generator(1000 + k), so appending a case leaves the
// inputs of every earlier case unchanged.
class Table {
 public:
  // A case whose inputs are drawn one per maker, in order.
  OpCase& add(std::string name, Op op, std::vector<Make> makers, RunFn run, double atol = 1e-6,
              double rtol = 1e-6) {
    const uint64_t seed = 1000 + cases_.size();
    auto make = [seed, makers] {
      Generator g(seed);
      std::vector<Tensor> in;
      for (const Make& m : makers) in.push_back(m(g));
      return in;
    };
    return push(std::move(name), op, make, std::move(run), atol, rtol);
  }
  // A case whose inputs depend on each other (saved statistics, distances of the inputs).
  OpCase& add_derived(std::string name, Op op, std::function<std::vector<Tensor>(Generator&)> f,
                      RunFn run, double atol = 1e-6, double rtol = 1e-6) {
    const uint64_t seed = 1000 + cases_.size();
    auto make = [seed, f] {
      Generator g(seed);
      return f(g);
    };
    return push(std::move(name), op, make, std::move(run), atol, rtol);
  }
  std::vector<OpCase> take() { return std::move(cases_); }

 private:
  OpCase& push(std::string name, Op op, std::function<std::vector<Tensor>()> make, RunFn run,
               double atol, double rtol) {
    cases_.push_back(OpCase{std::move(name), op, -1, std::move(make), std::move(run), atol, rtol, 0});
    return cases_.back();
  }
  std::vector<OpCase> cases_;
};

// ---- case families -----------------------------------------------------------------------------

inline void add_unary(Table& t, const std::string& what, UnaryOp op, Make a, float p0 = 0.f,
                      float p1 = 0.f, double atol = 1e-6, double rtol = 1e-6) {
  t.add(std::string(unary_op_name(op)) + "/" + what, Op::unary, {std::move(a)},
        [=](std::vector<Tensor>& in) { return out1(call_unary(op, in[0], p0, p1)); }, atol, rtol)
      .sub = int(op);
}
inline void add_binary(Table& t, const std::string& what, BinaryOp op, Make a, Make b,
                       float p0 = 0.f, float p1 = 0.f, double atol = 1e-6, double rtol = 1e-6) {
  t.add(std::string(binary_op_name(op)) + "/" + what, Op::binary, {std::move(a), std::move(b)},
        [=](std::vector<Tensor>& in) { return out1(call_binary(op, in[0], in[1], p0, p1)); }, atol,
        rtol)
      .sub = int(op);
}

// One convolution shape: forward (bias optional), backward input, backward weight.
inline void add_conv(Table& t, const std::string& what, Shape xs, Shape ws, Conv2dArgs a,
                     bool bias) {
  const std::string tag = what + " x" + shape_str(xs) + " w" + shape_str(ws) + " " + conv_str(a);
  const Shape os = conv2d_shape(xs, ws, a);
  const double flops = conv_flops(xs, ws, a);
  // float GEMM (CPU) against double accumulation over Cg KH KW <= 75 terms of size ~1: the CPU
  // uses up to 0.07 of these tolerances (NORMAD_OPS_REPORT=1)
  t.add("conv2d/" + tag + (bias ? " bias" : ""), Op::conv2d,
        {normal(xs), normal(ws, 0.f, 0.5f), bias ? normal({ws[0]}) : none()},
        [a](std::vector<Tensor>& in) { return out1(conv2d(in[0], in[1], in[2], a)); }, 1e-5, 1e-5)
      .flops = flops;
  t.add("conv2d_backward_input/" + tag, Op::conv2d_backward_input, {normal(os), normal(ws, 0.f, 0.5f)},
        [a, xs](std::vector<Tensor>& in) {
          return std::vector<Output>{{"dx", conv2d_backward_input(in[0], in[1], xs, a)}};
        },
        1e-5, 1e-5)
      .flops = flops;
  // dw sums N OH OW terms, more than the forward's: a little more room
  t.add("conv2d_backward_weight/" + tag, Op::conv2d_backward_weight, {normal(os), normal(xs)},
        [a, ws](std::vector<Tensor>& in) {
          Tensor db;  // with the bias gradient from the same pass
          Tensor dw = conv2d_backward_weight(in[0], in[1], ws, a, &db);
          return std::vector<Output>{{"dw", dw}, {"db", db}};
        },
        2e-5, 2e-5)
      .flops = flops;
}

inline void add_conv_affine(Table& t, const std::string& what, Shape xs, Shape ws, Conv2dArgs a,
                            Activation act, bool with_scale) {
  const char* act_name = act == Activation::none ? "none" : act == Activation::relu ? "relu" : "silu";
  t.add("conv2d_affine_act/" + what + " " + act_name + (with_scale ? "" : " no scale") + " x" +
            shape_str(xs) + " w" + shape_str(ws) + " " + conv_str(a),
        Op::conv2d_affine_act,
        {normal(xs), normal(ws, 0.f, 0.5f), with_scale ? uniform({ws[0]}, -2.f, 2.f) : none(),
         normal({ws[0]})},
        [a, act](std::vector<Tensor>& in) { return out1(conv2d_affine_act(in[0], in[1], in[2], in[3], a, act)); },
        5e-5, 5e-5)
      .flops = conv_flops(xs, ws, a);
}

// One pooling shape: max (values and argmax, both CPU paths) and its backward; average and its
// backward (unless `nan`: a max-pool NaN case only).
inline void add_pool(Table& t, Shape xs, Pool2dArgs a, bool nan = false) {
  const std::string tag = "x" + shape_str(xs) + " " + pool_str(a) + (nan ? " nan" : "");
  const Shape os = pool2d_shape(xs, a);
  const int64_t n = shape_numel(xs);
  // small integers: ties inside windows, so the first-maximum rule is checked
  Make x = ints(xs, -4, 5);
  if (nan) x = poke(x, {{1, kNaN}, {n / 2, kNaN}, {n / 2 + 1, kNaN}});
  t.add("max_pool2d/" + tag, Op::max_pool2d, {x}, [a](std::vector<Tensor>& in) {
    Tensor am;
    Tensor with = max_pool2d(in[0], a, &am);
    // the value-only path (the CPU's tap loop without indices) must give the same values
    Tensor without = max_pool2d(in[0], a);
    return std::vector<Output>{{"out", with}, {"argmax", am}, {"out (no argmax)", without}};
  });
  // any in-range argmax, repeats included (overlapping windows send two gradients to one input)
  t.add("max_pool2d_backward/" + tag, Op::max_pool2d_backward, {normal(os), index(os, xs[2] * xs[3])},
        [xs](std::vector<Tensor>& in) {
          return std::vector<Output>{{"dx", max_pool2d_backward(in[0], in[1], xs)}};
        });
  if (nan) return;
  // float sums of <= 9 terms against double
  t.add("avg_pool2d/" + tag, Op::avg_pool2d, {normal(xs)},
        [a](std::vector<Tensor>& in) { return out1(avg_pool2d(in[0], a)); }, 1e-6, 1e-5);
  t.add("avg_pool2d_backward/" + tag, Op::avg_pool2d_backward, {normal(os)},
        [a, xs](std::vector<Tensor>& in) {
          return std::vector<Output>{{"dx", avg_pool2d_backward(in[0], xs, a)}};
        },
        1e-6, 1e-5);
}

// Batch norm training forward (saved and running statistics) and backward on one shape; with a
// relu_slope (not NaN), the fused batch norm + leaky ReLU of that slope (0: ReLU) instead, against
// the reference's two ops in sequence.
inline void add_batch_norm(Table& t, Shape xs, int64_t groups, bool affine, bool running,
                           float offset = 0.f, double atol = 1e-5, float relu_slope = NAN) {
  const int64_t C = xs[1];
  const bool relu = !std::isnan(relu_slope);
  const float slope = relu ? relu_slope : 0.f;
  const std::string tag = "x" + shape_str(xs) + " G" + std::to_string(groups) +
                          (affine ? "" : " no affine") + (running ? " running" : "") +
                          (offset != 0.f ? " offset" : "") +
                          (relu && slope != 0.f ? " slope " + std::to_string(slope) : "");
  // the CPU normalises as x scale + shift in float: with an offset mean, cancellation costs a few
  // ulp of |offset scale|
  t.add(std::string(relu ? "batch_norm_relu_train/" : "batch_norm_train/") + tag,
        relu ? Op::batch_norm_relu_train : Op::batch_norm_train,
        {normal(xs, offset, 1.f), affine ? uniform({C}, 0.5f, 1.5f) : none(), affine ? normal({C}) : none(),
         running ? normal({C}) : none(), running ? uniform({C}, 0.5f, 2.f) : none()},
        [groups, running, relu, slope](std::vector<Tensor>& in) {
          BatchNormSaved saved;
          Tensor* rm = running ? &in[3] : nullptr;
          Tensor* rv = running ? &in[4] : nullptr;
          Tensor y = relu ? batch_norm_relu_train(in[0], in[1], in[2], 1e-5f, groups, slope, &saved, rm, rv, 0.1f)
                          : batch_norm_train(in[0], in[1], in[2], 1e-5f, groups, &saved, rm, rv, 0.1f);
          std::vector<Output> out{{"y", y}, {"saved.mean", saved.mean}, {"saved.invstd", saved.invstd}};
          if (running) out.push_back({"running_mean", in[3]}), out.push_back({"running_var", in[4]});
          return out;
        },
        offset != 0.f ? std::max(atol, 3e-5) : atol, 1e-5);
  t.add_derived(std::string(relu ? "batch_norm_relu_backward/" : "batch_norm_backward/") + tag,
                relu ? Op::batch_norm_relu_backward : Op::batch_norm_backward,
                [=](Generator& g) {
                  Tensor dout = g.normal(xs), x = g.normal(xs, offset, 1.f);
                  Tensor gamma = affine ? g.uniform({C}, 0.5f, 1.5f) : Tensor();
                  Tensor beta = affine && relu ? g.normal({C}) : Tensor();  // only the ReLU's mask reads it
                  // saved statistics as the CPU forward leaves them (both backends read the same)
                  BatchNormSaved saved;
                  batch_norm_train(x, gamma, beta, 1e-5f, groups, &saved);
                  return std::vector<Tensor>{dout, x, gamma, beta, saved.mean, saved.invstd};
                },
                [groups, relu, slope](std::vector<Tensor>& in) {
                  Tensor dg, db;
                  const BatchNormSaved saved{in[4], in[5]};
                  Tensor dx = relu ? batch_norm_relu_backward(in[0], in[1], in[2], in[3], saved, groups, slope, &dg, &db)
                                   : batch_norm_backward(in[0], in[1], in[2], saved, groups, &dg, &db);
                  return std::vector<Output>{{"dx", dx}, {"dgamma", dg}, {"dbeta", db}};
                },
                atol, 1e-5);
}

// batch_norm_statistics (the statistics and running statistics alone) and conv2d_bn_relu_input
// (the convolution of the batch norm + ReLU of x for those statistics) and its weight gradient on
// one shape, G groups;
// on each backend the statistics come from its own batch_norm_statistics.
inline void add_conv_bn_relu_input(Table& t, const std::string& what, Shape xs, Shape ws, Conv2dArgs a,
                                   int64_t groups) {
  const int64_t C = xs[1];
  const std::string tag = what + " x" + shape_str(xs) + " w" + shape_str(ws) + " " + conv_str(a) + " G" +
                          std::to_string(groups);
  t.add("batch_norm_statistics/" + tag, Op::batch_norm_statistics,
        {normal(xs, 2.f, 1.f), normal({C}), uniform({C}, 0.5f, 2.f)},
        [groups](std::vector<Tensor>& in) {
          const BatchNormSaved s = batch_norm_statistics(in[0], 1e-5f, groups, &in[1], &in[2], 0.1f);
          return std::vector<Output>{{"mean", s.mean}, {"invstd", s.invstd}, {"running_mean", in[1]},
                                     {"running_var", in[2]}};
        },
        1e-5, 1e-5);
  t.add("conv2d_bn_relu_input/" + tag, Op::conv2d_bn_relu_input,
        {normal(xs, 0.5f, 1.f), uniform({C}, 0.5f, 1.5f), normal({C}), normal(ws, 0.f, 0.5f), normal({ws[0]})},
        [a, groups](std::vector<Tensor>& in) {
          const BatchNormSaved s = batch_norm_statistics(in[0], 1e-5f, groups);
          return out1(conv2d_bn_relu_input(in[0], in[1], in[2], s, groups, in[3], in[4], a));
        },
        5e-5, 5e-5)
      .flops = conv_flops(xs, ws, a);
  // its weight gradient for a given dout (of the output's shape)
  const Shape os = conv2d_shape(xs, ws, a);
  t.add("conv2d_bn_relu_input_backward_weight/" + tag, Op::conv2d_bn_relu_input_backward_weight,
        {normal(os), normal(xs, 0.5f, 1.f), uniform({C}, 0.5f, 1.5f), normal({C})},
        [a, groups, ws](std::vector<Tensor>& in) {
          const BatchNormSaved s = batch_norm_statistics(in[1], 1e-5f, groups);
          return out1(conv2d_bn_relu_input_backward_weight(in[0], in[1], in[2], in[3], s, groups, ws, a));
        },
        1e-4, 1e-4)
      .flops = conv_flops(xs, ws, a);
  // conv2d_statistics, with the input's batch norm + ReLU and without: the output, its statistics
  // for G groups and the running statistics moved (the output's groups: the input's)
  const int64_t F = ws[0];
  for (const bool normalised : {true, false})
    t.add(std::string("conv2d_statistics/") + (normalised ? "bn relu input " : "") + tag, Op::conv2d_statistics,
          {normal(xs, 0.5f, 1.f), uniform({C}, 0.5f, 1.5f), normal({C}), normal(ws, 0.f, 0.5f), normal({F}),
           normal({F}), uniform({F}, 0.5f, 2.f)},
          [a, groups, normalised](std::vector<Tensor>& in) {
            std::optional<BnReluInput> bn;
            if (normalised) bn = BnReluInput{in[1], in[2], batch_norm_statistics(in[0], 1e-5f, groups), groups};
            BatchNormSaved s;
            Tensor y = conv2d_statistics(in[0], bn ? &*bn : nullptr, in[3], in[4], a, 1e-5f, groups, &in[5], &in[6],
                                         0.1f, &s);
            return std::vector<Output>{{"y", y}, {"mean", s.mean}, {"invstd", s.invstd}, {"running_mean", in[5]},
                                       {"running_var", in[6]}};
          },
          5e-5, 5e-5)
        .flops = conv_flops(xs, ws, a);
}

// One fused Adam step over parameters shaped `shapes` (inputs w, g, m, v per parameter, in that
// order), slot k at step steps[k]. Outputs w, m, v of every slot; with `vs_single` also
// "w<k> multi - single": the difference from adam_step on a copy of slot k on the same backend
// (0 where the fused step is the per-tensor step, as it must be).
inline OpCase& add_adam_multi(Table& t, const std::string& what, const std::vector<Shape>& shapes,
                              std::vector<int64_t> steps, AdamParams p, bool vs_single) {
  std::vector<Make> makers;
  for (const Shape& s : shapes)
    makers.insert(makers.end(), {normal(s), normal(s), normal(s, 0.f, 0.1f), uniform(s, 0.f, 0.1f)});
  return t.add("adam_step_multi/" + what, Op::adam_step_multi, makers,
               [steps, p, vs_single](std::vector<Tensor>& in) {
                 std::vector<Tensor> single;  // copies stepped one tensor at a time
                 if (vs_single)
                   for (const Tensor& x : in) single.push_back(x.clone());
                 std::vector<AdamSlot> slots;
                 for (size_t k = 0; k < steps.size(); ++k)
                   slots.push_back(AdamSlot{&in[4 * k], &in[4 * k + 1], &in[4 * k + 2], &in[4 * k + 3], steps[k]});
                 adam_step_multi(slots, p);
                 std::vector<Output> out;
                 for (size_t k = 0; k < steps.size(); ++k) {
                   const std::string n = std::to_string(k);
                   out.insert(out.end(), {{"w" + n, in[4 * k]}, {"m" + n, in[4 * k + 2]}, {"v" + n, in[4 * k + 3]}});
                 }
                 for (size_t k = 0; vs_single && k < steps.size(); ++k) {
                   AdamParams q = p;
                   q.step = steps[k];
                   adam_step(single[4 * k], single[4 * k + 1], single[4 * k + 2], single[4 * k + 3], q);
                   out.push_back({"w" + std::to_string(k) + " multi - single", sub(in[4 * k], single[4 * k])});
                 }
                 return out;
               },
               1e-7, 1e-6);
}

// ---- the test table ---------------------------------------------------------------------------
// Small shapes (the whole harness runs in seconds), odd and size-1 dims, and the edge values each
// op documents (NaN, +-inf, exact kinks and bounds).
inline std::vector<OpCase> op_cases() {
  Table t;
  using U = UnaryOp;
  using B = BinaryOp;

  // ---- unary ----
  add_unary(t, "[7, 3]", U::neg, normal({7, 3}));
  add_unary(t, "[4, 5]", U::exp, normal({4, 5}, 0.f, 3.f));
  add_unary(t, "-inf [1]", U::exp, values({1}, {-kInf}));
  add_unary(t, "[4, 5]", U::log, uniform({4, 5}, 0.01f, 5.f));
  add_unary(t, "zero, negative [3]", U::log, values({3}, {0.f, -1.f, 1.f}));
  add_unary(t, "[4, 5]", U::sqrt, uniform({4, 5}, 0.f, 4.f));
  add_unary(t, "[2, 3, 1]", U::abs, poke(normal({2, 3, 1}), {{0, -0.f}, {1, kNaN}}));
  add_unary(t, "zeros nan [5, 4]", U::sign, poke(normal({5, 4}), {{0, 0.f}, {3, -0.f}, {7, kNaN}}));
  add_unary(t, "p=2 [3, 4]", U::pow, normal({3, 4}), 2.f);
  add_unary(t, "p=0.5 [3, 4]", U::pow, uniform({3, 4}, 0.f, 3.f), 0.5f);
  add_unary(t, "p=3 [1, 6]", U::pow, normal({1, 6}), 3.f);
  add_unary(t, "p=-1.5 [6]", U::pow, uniform({6}, 0.2f, 3.f), -1.5f);
  add_unary(t, "bounds nan inf [4, 6]", U::clamp,
            poke(normal({4, 6}), {{0, -0.5f}, {1, 0.7f}, {2, kNaN}, {3, kInf}}), -0.5f, 0.7f);
  add_unary(t, "one-sided [9]", U::clamp, normal({9}), -kInf, 0.3f);
  add_unary(t, "zeros nan [4, 6]", U::relu, poke(normal({4, 6}), {{0, 0.f}, {1, -0.f}, {5, kNaN}}));
  add_unary(t, "slope 0.1 [1, 13]", U::leaky_relu, poke(normal({1, 13}), {{2, kNaN}}), 0.1f);
  // two formulas (the CPU's e / (1 + e) below 0): a few ulp apart
  add_unary(t, "wide [3, 7]", U::sigmoid, poke(normal({3, 7}, 0.f, 30.f), {{0, 100.f}, {1, -100.f}}), 0, 0,
            1e-7, 1e-6);
  add_unary(t, "wide [3, 7]", U::silu, poke(normal({3, 7}, 0.f, 30.f), {{0, 100.f}, {1, -100.f}}), 0, 0,
            1e-7, 1e-6);
  add_unary(t, "[2, 5]", U::add_scalar, normal({2, 5}), 1.5f);
  add_unary(t, "scalar []", U::add_scalar, values({}, {2.25f}), -0.75f);
  add_unary(t, "[5, 1]", U::mul_scalar, normal({5, 1}), -2.5f);

  // ---- binary, with broadcasting ----
  add_binary(t, "same [3, 4]", B::add, normal({3, 4}), normal({3, 4}));
  add_binary(t, "[2, 3, 1] + [4]", B::add, normal({2, 3, 1}), normal({4}));
  add_binary(t, "[1] + [2, 3]", B::add, normal({1}), normal({2, 3}));
  add_binary(t, "[4, 1, 3] - [2, 1]", B::sub, normal({4, 1, 3}), normal({2, 1}));
  add_binary(t, "[2, 3, 4] * [3, 1]", B::mul, normal({2, 3, 4}), normal({3, 1}));
  add_binary(t, "[1, 3] * scalar []", B::mul, normal({1, 3}), values({}, {-1.5f}));
  add_binary(t, "[5, 3] / [1, 3]", B::div, normal({5, 3}), away_from({1, 3}, {0.f}, 0.1f));
  add_binary(t, "by zero [3]", B::div, values({3}, {1.f, -1.f, 0.f}), zeros({3}));
  // ties (a >= b keeps a) and NaN on either side (the documented a >= b ? a : b rule)
  add_binary(t, "ties nan [3, 4]", B::maximum, poke(normal({3, 4}), {{0, 1.f}, {1, kNaN}, {2, 2.f}}),
             poke(normal({3, 4}), {{0, 1.f}, {1, 0.f}, {2, kNaN}}));
  add_binary(t, "[2, 1, 5] vs [3, 1]", B::maximum, normal({2, 1, 5}), normal({3, 1}));
  add_binary(t, "slope 0.2 [4, 5]", B::leaky_relu_backward, normal({4, 5}),
             poke(normal({4, 5}), {{0, 0.f}, {1, -0.f}, {2, kNaN}}), 0.2f);
  add_binary(t, "relu [1, 7]", B::leaky_relu_backward, normal({1, 7}), normal({1, 7}), 0.f);
  // x exactly at a bound passes the gradient (PyTorch's convention); NaN blocks it
  add_binary(t, "bounds nan [4, 5]", B::clamp_backward, normal({4, 5}),
             poke(normal({4, 5}), {{0, -0.5f}, {1, 0.5f}, {2, kNaN}}), -0.5f, 0.5f);
  // a NaN or infinite gradient outside the range is blocked (torch: where(mask, g, 0)), inside it passes
  add_binary(t, "non-finite dout [2, 3]", B::clamp_backward, values({2, 3}, {kNaN, kInf, -kInf, kNaN, 1.f, 2.f}),
             values({2, 3}, {2.f, -2.f, 2.f, 0.f, 0.f, 3.f}), -1.f, 1.f);

  // ---- expand, fill, copy ----
  t.add("expand/[3, 1] -> [2, 3, 4]", Op::expand, {normal({3, 1})},
        [](std::vector<Tensor>& in) { return out1(expand_to(in[0], {2, 3, 4})); });
  t.add("expand/[1] -> [5]", Op::expand, {normal({1})},
        [](std::vector<Tensor>& in) { return out1(expand_to(in[0], {5})); });
  t.add("expand/[4] -> [2, 1, 4]", Op::expand, {normal({4})},
        [](std::vector<Tensor>& in) { return out1(expand_to(in[0], {2, 1, 4})); });
  t.add("fill/[3, 5]", Op::fill, {normal({3, 5})}, [](std::vector<Tensor>& in) {
    in[0].fill_(2.5f);
    return out1(in[0]);
  });
  t.add("copy/clone and copy_ [2, 7]", Op::copy, {normal({2, 7}), zeros({2, 7})},
        [](std::vector<Tensor>& in) {
          Tensor c = in[0].clone();
          in[1].copy_(in[0].reshape({7, 2}));  // same numel, another shape
          return std::vector<Output>{{"clone", c}, {"copy_", in[1]}};
        });
  t.add("copy/host round trip [3, 1, 2]", Op::copy, {normal({3, 1, 2})}, [](std::vector<Tensor>& in) {
    // to_vector: device -> host; from: host -> device
    return out1(Tensor::from(in[0].shape(), in[0].to_vector(), in[0].device()));
  });

  // ---- matrix products (float GEMM against double sums of K <= 33 terms) ----
  struct Mm {
    int64_t M, K, N;
    bool ta, tb;
  };
  for (Mm m : {Mm{5, 3, 4, false, false}, Mm{5, 3, 4, true, false}, Mm{5, 3, 4, false, true},
               Mm{5, 3, 4, true, true}, Mm{1, 7, 1, false, false}, Mm{4, 1, 6, false, true},
               Mm{17, 33, 9, false, false}, Mm{17, 33, 9, true, true}}) {
    std::ostringstream name;
    name << "matmul/" << m.M << "x" << m.K << "x" << m.N << (m.ta ? " ta" : "") << (m.tb ? " tb" : "");
    t.add(name.str(), Op::matmul,
          {normal(m.ta ? Shape{m.K, m.M} : Shape{m.M, m.K}), normal(m.tb ? Shape{m.N, m.K} : Shape{m.K, m.N})},
          [m](std::vector<Tensor>& in) { return out1(matmul(in[0], in[1], m.ta, m.tb)); }, 1e-5, 1e-5)
        .flops = 2.0 * m.M * m.N * m.K;
  }
  // linear: x [N, K] w [F, K]^T + b [F]; K = 0 is the bias alone, N = 1 and F = 1 size-1 dims
  for (Mm m : {Mm{5, 3, 4, false, true}, Mm{1, 7, 1, false, true}, Mm{17, 33, 9, false, true},
               Mm{6, 0, 5, false, true}}) {
    std::ostringstream name;
    name << "linear/" << m.M << "x" << m.K << "x" << m.N;
    t.add(name.str(), Op::linear, {normal({m.M, m.K}), normal({m.N, m.K}), normal({m.N})},
          [](std::vector<Tensor>& in) { return out1(linear(in[0], in[1], in[2])); }, 1e-5, 1e-5)
        .flops = 2.0 * m.M * m.N * m.K;
  }
  struct Bm {
    int64_t Ba, Bb, M, K, N;
    bool ta, tb;
  };
  for (Bm m : {Bm{2, 2, 3, 4, 5, false, false}, Bm{1, 3, 3, 4, 2, false, false}, Bm{2, 1, 4, 3, 5, true, false},
               Bm{3, 3, 2, 4, 5, false, true}, Bm{1, 1, 1, 6, 1, true, true}}) {
    std::ostringstream name;
    name << "bmm/" << m.Ba << "|" << m.Bb << " " << m.M << "x" << m.K << "x" << m.N << (m.ta ? " ta" : "")
         << (m.tb ? " tb" : "");
    t.add(name.str(), Op::bmm,
          {normal(m.ta ? Shape{m.Ba, m.K, m.M} : Shape{m.Ba, m.M, m.K}),
           normal(m.tb ? Shape{m.Bb, m.N, m.K} : Shape{m.Bb, m.K, m.N})},
          [m](std::vector<Tensor>& in) { return out1(bmm(in[0], in[1], m.ta, m.tb)); }, 1e-5, 1e-5)
        .flops = 2.0 * std::max(m.Ba, m.Bb) * m.M * m.N * m.K;
  }

  // ---- reductions ----
  struct Red {
    Shape s;
    std::vector<int64_t> dims;
    bool keepdim;
  };
  for (Red r : {Red{{3, 4, 5}, {1}, false}, Red{{3, 4, 5}, {0, 2}, true}, Red{{3, 4, 5}, {}, false},
                Red{{1, 7}, {0}, false}, Red{{2, 1, 3, 2}, {1, 3}, true}, Red{{4, 6}, {-1}, true}}) {
    std::ostringstream name;
    name << "sum/" << shape_str(r.s) << " dims " << shape_str(r.dims) << (r.keepdim ? " keepdim" : "");
    // the CPU rounds to float between dims: an ulp per reduced dim
    t.add(name.str(), Op::sum, {normal(r.s)},
          [r](std::vector<Tensor>& in) { return out1(sum(in[0], r.dims, r.keepdim)); });
  }
  auto max_run = [](int64_t dim, bool keepdim) {
    return [=](std::vector<Tensor>& in) {
      Tensor am;
      Tensor m = max(in[0], dim, keepdim, &am);
      return std::vector<Output>{{"out", m}, {"argmax", am}};
    };
  };
  t.add("max/ties [3, 4, 5] dim 1", Op::max, {ints({3, 4, 5}, -2, 3)}, max_run(1, false));
  t.add("max/[3, 4, 5] dim -1 keepdim", Op::max, {normal({3, 4, 5})}, max_run(-1, true));
  t.add("max/[1, 6] dim 0", Op::max, {normal({1, 6})}, max_run(0, false));
  // NaN first in its row wins; a later NaN is skipped (the CPU's rule, see tensor/reference.h)
  t.add("max/nan [2, 4] dim 1", Op::max, {values({2, 4}, {kNaN, 1.f, 3.f, 2.f, 1.f, kNaN, 3.f, -kInf})},
        max_run(1, false));
  t.add("max_backward/[3, 4, 5] dim 1", Op::max_backward, {normal({3, 5}), index({3, 5}, 4)},
        [](std::vector<Tensor>& in) {
          return std::vector<Output>{{"dx", max_backward(in[0], in[1], {3, 4, 5}, 1)}};
        });
  t.add("max_backward/[2, 3, 7] dim -1 keepdim", Op::max_backward, {normal({2, 3, 1}), index({2, 3, 1}, 7)},
        [](std::vector<Tensor>& in) {
          return std::vector<Output>{{"dx", max_backward(in[0], in[1], {2, 3, 7}, -1)}};
        });
  t.add("logsumexp/[3, 4, 5] dim 1", Op::logsumexp, {normal({3, 4, 5}, 0.f, 3.f)},
        [](std::vector<Tensor>& in) { return out1(logsumexp(in[0], 1)); });
  t.add("logsumexp/large [2, 6] dim -1 keepdim", Op::logsumexp, {normal({2, 6}, 200.f, 50.f)},
        [](std::vector<Tensor>& in) { return out1(logsumexp(in[0], -1, true)); });
  t.add("logsumexp/inf rows [3, 2] dim 1", Op::logsumexp, {values({3, 2}, {-kInf, -kInf, -kInf, 1.f, kInf, 0.f})},
        [](std::vector<Tensor>& in) { return out1(logsumexp(in[0], 1)); });

  // ---- layout ----
  struct Perm {
    Shape s;
    std::vector<int64_t> p;
  };
  for (Perm p : {Perm{{2, 3, 4}, {2, 0, 1}}, Perm{{2, 1, 3, 5}, {3, 1, 0, 2}}, Perm{{5}, {0}}, Perm{{4, 6}, {1, 0}},
                 Perm{{3, 1, 2}, {-1, 0, 1}}})
    t.add("permute/" + shape_str(p.s) + " by " + shape_str(p.p), Op::permute, {normal(p.s)},
          [p](std::vector<Tensor>& in) { return out1(permute(in[0], p.p)); });
  t.add("concat/[2, 3] [2, 1] [2, 4] dim 1", Op::concat, {normal({2, 3}), normal({2, 1}), normal({2, 4})},
        [](std::vector<Tensor>& in) { return out1(concat(in, 1)); });
  t.add("concat/[1, 3] [2, 3] dim 0", Op::concat, {normal({1, 3}), normal({2, 3})},
        [](std::vector<Tensor>& in) { return out1(concat(in, 0)); });
  t.add("concat/[2, 3, 2] x2 dim -1", Op::concat, {normal({2, 3, 2}), normal({2, 3, 2})},
        [](std::vector<Tensor>& in) { return out1(concat(in, -1)); });
  struct Sl {
    Shape s;
    int64_t dim, start, end;
  };
  for (Sl s : {Sl{{5, 4}, 0, 1, 4}, Sl{{3, 7, 2}, 1, 2, 7}, Sl{{3, 7, 2}, -1, 0, 1}, Sl{{6, 3}, 0, -3, -1},
               Sl{{2, 5}, 1, 3, 100}})
    t.add("slice/" + shape_str(s.s) + " dim " + std::to_string(s.dim) + " [" + std::to_string(s.start) + ", " +
              std::to_string(s.end) + ")",
          Op::slice, {normal(s.s)}, [s](std::vector<Tensor>& in) { return out1(slice(in[0], s.dim, s.start, s.end)); });
  t.add("slice_add/[5, 4] += [2, 4] dim 0 at 2", Op::slice_add, {normal({5, 4}), normal({2, 4})},
        [](std::vector<Tensor>& in) {
          slice_add_(in[0], in[1], 0, 2);
          return out1(in[0]);
        });
  t.add("slice_add/[3, 7, 2] += [3, 3, 2] dim -2 at 4", Op::slice_add, {normal({3, 7, 2}), normal({3, 3, 2})},
        [](std::vector<Tensor>& in) {
          slice_add_(in[0], in[1], -2, 4);
          return out1(in[0]);
        });
  t.add("index_select/[6, 3] rows 5 0 0 2", Op::index_select, {normal({6, 3})},
        [](std::vector<Tensor>& in) { return out1(index_select(in[0], {5, 0, 0, 2})); });
  t.add("index_select/[4, 2, 3] row 3", Op::index_select, {normal({4, 2, 3})},
        [](std::vector<Tensor>& in) { return out1(index_select(in[0], {3})); });
  t.add("index_add/[6, 3] rows 5 0 0 2", Op::index_add, {normal({6, 3}), normal({4, 3})},
        [](std::vector<Tensor>& in) {
          index_add_(in[0], {5, 0, 0, 2}, in[1]);
          return out1(in[0]);
        });
  t.add("index_add/[1, 2, 2] rows 0 0 0", Op::index_add, {normal({1, 2, 2}), normal({3, 2, 2})},
        [](std::vector<Tensor>& in) {
          index_add_(in[0], {0, 0, 0}, in[1]);
          return out1(in[0]);
        });

  // ---- convolution (each shape: forward, backward input, backward weight) ----
  add_conv(t, "basic", {2, 3, 7, 6}, {4, 3, 3, 3}, conv_args(1, 1, 1, 1), true);
  add_conv(t, "strided", {1, 2, 9, 8}, {3, 2, 3, 3}, conv_args(2, 2, 0, 0), false);
  add_conv(t, "dilated", {2, 2, 9, 9}, {2, 2, 3, 3}, conv_args(1, 1, 2, 2, 2, 2), true);
  add_conv(t, "grouped", {2, 4, 7, 6}, {6, 2, 3, 3}, conv_args(2, 2, 1, 1, 1, 1, 2), true);
  add_conv(t, "depthwise", {2, 6, 8, 7}, {6, 1, 3, 3}, conv_args(2, 2, 1, 1, 1, 1, 6), true);
  add_conv(t, "depthwise 5x5", {1, 5, 6, 6}, {5, 1, 5, 5}, conv_args(1, 1, 2, 2, 1, 1, 5), false);
  add_conv(t, "depthwise stride 3", {1, 3, 10, 11}, {3, 1, 3, 3}, conv_args(3, 3, 1, 1, 1, 1, 3), false);
  // wide rows at stride 2 (the phase split's vector body: 34 columns a phase) and 7 output rows
  // (a block of four, then three one by one), SiLU over the block's rows at once
  add_conv(t, "depthwise wide stride 2", {1, 3, 13, 67}, {3, 1, 3, 3}, conv_args(2, 2, 1, 1, 1, 1, 3), false);
  add_conv_affine(t, "depthwise wide", {1, 3, 13, 67}, {3, 1, 3, 3}, conv_args(2, 2, 1, 1, 1, 1, 3), Activation::silu,
                  false);
  add_conv(t, "pointwise one sample", {1, 5, 4, 4}, {3, 5, 1, 1}, conv_args(1, 1, 0, 0), true);
  add_conv(t, "pointwise", {3, 5, 4, 4}, {3, 5, 1, 1}, conv_args(1, 1, 0, 0), false);
  add_conv(t, "asymmetric", {2, 3, 5, 8}, {2, 3, 2, 4}, conv_args(2, 1, 1, 0, 1, 2), true);
  add_conv(t, "1x1 input", {3, 4, 1, 1}, {2, 4, 1, 1}, conv_args(1, 1, 0, 0), true);
  add_conv(t, "1x1 input padded", {2, 2, 1, 1}, {3, 2, 3, 3}, conv_args(1, 1, 1, 1), false);
  add_conv(t, "5x5 lenet", {2, 1, 12, 12}, {4, 1, 5, 5}, conv_args(1, 1, 2, 2), false);
  add_conv_affine(t, "basic", {2, 3, 7, 6}, {4, 3, 3, 3}, conv_args(1, 1, 1, 1), Activation::none, true);
  add_conv_affine(t, "basic", {2, 3, 7, 6}, {4, 3, 3, 3}, conv_args(1, 1, 1, 1), Activation::relu, true);
  add_conv_affine(t, "strided", {2, 3, 9, 8}, {5, 3, 3, 3}, conv_args(2, 2, 1, 1), Activation::silu, true);
  add_conv_affine(t, "pointwise", {1, 5, 4, 4}, {3, 5, 1, 1}, conv_args(1, 1, 0, 0), Activation::silu, false);
  add_conv_affine(t, "depthwise", {2, 6, 8, 7}, {6, 1, 3, 3}, conv_args(2, 2, 1, 1, 1, 1, 6), Activation::silu, true);
  add_conv_affine(t, "depthwise", {1, 4, 5, 5}, {4, 1, 3, 3}, conv_args(1, 1, 1, 1, 1, 1, 4), Activation::relu, false);
  add_conv_affine(t, "grouped", {2, 4, 6, 6}, {6, 2, 3, 3}, conv_args(1, 1, 1, 1, 1, 1, 2), Activation::none, false);

  // ---- pooling ----
  add_pool(t, {2, 3, 7, 7}, pool_args(3, 3, 2, 2, 1, 1));
  add_pool(t, {1, 2, 6, 6}, pool_args(3, 3, 2, 2, 0, 0, true));
  add_pool(t, {1, 2, 6, 6}, pool_args(3, 3, 2, 2, 1, 1, true));
  add_pool(t, {1, 2, 6, 6}, pool_args(3, 3, 2, 2, 1, 1, true, false));
  add_pool(t, {2, 2, 5, 5}, pool_args(2, 2, 2, 2, 0, 0));
  add_pool(t, {2, 2, 5, 5}, pool_args(2, 2, 2, 2, 0, 0, true));
  add_pool(t, {1, 3, 7, 5}, pool_args(3, 2, 1, 2, 1, 1, false, false));
  add_pool(t, {1, 1, 1, 1}, pool_args(1, 1, 1, 1, 0, 0));
  add_pool(t, {1, 2, 5, 6}, pool_args(3, 3, 2, 2, 1, 1), true);
  // the CPU's 2x2 stride-2 path (every window inside): even and odd (floor-mode) maps, NaNs
  add_pool(t, {2, 3, 8, 6}, pool_args(2, 2, 2, 2, 0, 0));
  add_pool(t, {2, 3, 8, 6}, pool_args(2, 2, 2, 2, 0, 0), true);
  add_pool(t, {2, 2, 5, 7}, pool_args(2, 2, 2, 2, 0, 0), true);
  add_pool(t, {1, 1, 6, 6}, pool_args(2, 2, 2, 2, 0, 0), true);  // NaNs at 18, 19: a window's bottom row
  // rows of more than 8 outputs (AVX-512: the second load of 16 inputs), of 14 (LeNet's, odd W),
  // 17 and 20 (a second vector of 1 and 4 lanes)
  add_pool(t, {2, 2, 6, 29}, pool_args(2, 2, 2, 2, 0, 0), true);
  add_pool(t, {1, 2, 5, 34}, pool_args(2, 2, 2, 2, 0, 0));
  add_pool(t, {2, 3, 4, 40}, pool_args(2, 2, 2, 2, 0, 0), true);
  // the backward of that pooling with its own argmax (the CPU then writes each window directly):
  // odd H and W (an input row and column in no window), rows of 14 and 20 outputs, ties (small
  // integers), a NaN and a -0 gradient
  for (Shape xs : {Shape{2, 3, 7, 9}, Shape{2, 2, 6, 29}, Shape{1, 2, 4, 40}}) {
    const Pool2dArgs pa = pool_args(2, 2, 2, 2, 0, 0);
    t.add("max_pool2d_backward/own argmax x" + shape_str(xs) + " " + pool_str(pa), Op::max_pool2d_backward,
          {ints(xs, -4, 5), poke(normal(pool2d_shape(xs, pa)), {{0, kNaN}, {3, -0.f}})},
          [xs, pa](std::vector<Tensor>& in) {
            Tensor am;
            max_pool2d(in[0], pa, &am);
            return std::vector<Output>{{"dx", max_pool2d_backward(in[1], am, xs)}};
          });
  }
  // windows holding only -inf (padding never wins): the argmax is the window's first in-bounds input
  for (Pool2dArgs pa : {pool_args(2, 2, 2, 2, 0, 0), pool_args(3, 3, 2, 2, 1, 1)})
    t.add("max_pool2d/-inf windows " + pool_str(pa), Op::max_pool2d,
          {poke(values({1, 1, 5, 5}, std::vector<float>(25, -kInf)), {{12, 1.f}, {9, 2.f}})},
          [pa](std::vector<Tensor>& in) {
            Tensor am;
            Tensor with = max_pool2d(in[0], pa, &am);
            return std::vector<Output>{{"out", with}, {"argmax", am}, {"out (no argmax)", max_pool2d(in[0], pa)}};
          });
  t.add("global_avg_pool/[2, 3, 5, 7]", Op::global_avg_pool, {normal({2, 3, 5, 7})},
        [](std::vector<Tensor>& in) { return out1(global_avg_pool(in[0])); });
  t.add("global_avg_pool/[1, 1, 1, 1]", Op::global_avg_pool, {normal({1, 1, 1, 1})},
        [](std::vector<Tensor>& in) { return out1(global_avg_pool(in[0])); });
  for (auto [s, scale] : std::vector<std::pair<Shape, int64_t>>{{{2, 3, 3, 4}, 2}, {{1, 1, 2, 1}, 3}, {{1, 2, 2, 2}, 1}}) {
    const std::string tag = shape_str(s) + " scale " + std::to_string(scale);
    const int64_t sc = scale;
    t.add("upsample_nearest2d/" + tag, Op::upsample_nearest2d, {normal(s)},
          [sc](std::vector<Tensor>& in) { return out1(upsample_nearest2d(in[0], sc)); });
    t.add("upsample_nearest2d_backward/" + tag, Op::upsample_nearest2d_backward,
          {normal({s[0], s[1], s[2] * sc, s[3] * sc})},
          [sc](std::vector<Tensor>& in) { return std::vector<Output>{{"dx", upsample_nearest2d_backward(in[0], sc)}}; });
  }
  t.add("scale_planes/[2, 3, 4, 5]", Op::scale_planes, {normal({2, 3, 4, 5}), normal({2, 3})},
        [](std::vector<Tensor>& in) { return out1(scale_planes(in[0], in[1])); });
  t.add("scale_planes/[1, 1, 1, 1]", Op::scale_planes, {normal({1, 1, 1, 1}), normal({1, 1})},
        [](std::vector<Tensor>& in) { return out1(scale_planes(in[0], in[1])); });

  // ---- batch normalisation ----
  add_batch_norm(t, {6, 4}, 1, true, true);
  add_batch_norm(t, {12, 4}, 3, true, true);
  add_batch_norm(t, {4, 3, 3, 5}, 2, true, true);
  add_batch_norm(t, {4, 3, 3, 5}, 1, false, false);
  add_batch_norm(t, {9, 2, 1, 3}, 3, true, true, 3.f);
  // One row per group: var 0 and invstd = 1 / sqrt(eps) ~ 316, so y = beta and dx = 0 exactly.
  // The CPU's affine forms (y = x scale + shift, dx = p dout + q x + r) cancel terms of size
  // ~316 |x| in float: ulp(316) ~ 3e-5, hence atol 1e-4 here (the reference is exact).
  add_batch_norm(t, {2, 5}, 2, true, false, 0.f, 1e-4);
  // the convolution of a batch norm + ReLU's output, normalised as it is read: the CPU's implicit
  // kernel (16 channels and filters, narrow and wide rows) and the composed way (3 channels)
  add_conv_bn_relu_input(t, "implicit", {4, 16, 7, 7}, {16, 16, 3, 3}, conv_args(2, 2, 1, 1), 2);
  add_conv_bn_relu_input(t, "implicit wide", {2, 16, 3, 17}, {17, 16, 3, 3}, conv_args(1, 1, 1, 1), 1);
  add_conv_bn_relu_input(t, "composed", {3, 3, 7, 6}, {4, 3, 3, 3}, conv_args(1, 1, 1, 1), 3);
  // batch norm + leaky ReLU (slope 0: ReLU)
  add_batch_norm(t, {6, 4}, 1, true, true, 0.f, 1e-5, 0.f);
  add_batch_norm(t, {12, 4}, 3, true, false, 0.f, 1e-5, 0.01f);
  add_batch_norm(t, {4, 3, 3, 5}, 2, true, true, 0.f, 1e-5, 0.f);
  add_batch_norm(t, {4, 3, 3, 5}, 1, false, true, 0.f, 1e-5, 0.01f);
  add_batch_norm(t, {6, 2, 1, 3}, 3, true, false, 0.f, 1e-5, -0.5f);
  for (Shape s : {Shape{5, 3}, Shape{2, 3, 4, 4}})
    t.add("batch_norm_eval/" + shape_str(s), Op::batch_norm_eval,
          {normal(s), uniform({3}, 0.5f, 1.5f), normal({3}), normal({3}), uniform({3}, 0.5f, 2.f)},
          [](std::vector<Tensor>& in) { return out1(batch_norm_eval(in[0], in[1], in[2], in[3], in[4], 1e-5f)); },
          1e-6, 1e-5);
  // BN folded into a conv's affine (backbones at inference): with and without affine and conv bias
  for (bool affine : {true, false})
    for (bool conv_bias : {true, false})
      t.add(std::string("batch_norm_fold/[7]") + (affine ? " affine" : "") + (conv_bias ? " conv bias" : ""),
            Op::batch_norm_fold,
            {normal({7}), normal({7}), normal({7}), normal({7}), uniform({7}, 0.5f, 2.f)},
            [affine, conv_bias](std::vector<Tensor>& in) {
              Tensor scale, shift;
              batch_norm_fold(affine ? in[0] : Tensor(), affine ? in[1] : Tensor(), conv_bias ? in[2] : Tensor(),
                              in[3], in[4], 1e-5f, &scale, &shift);
              return std::vector<Output>{{"scale", scale}, {"shift", shift}};
            },
            1e-6, 1e-6);
  t.add("batch_norm_eval/no affine [3, 2, 1, 2]", Op::batch_norm_eval,
        {normal({3, 2, 1, 2}), normal({2}), uniform({2}, 0.5f, 2.f)},
        [](std::vector<Tensor>& in) { return out1(batch_norm_eval(in[0], Tensor(), Tensor(), in[1], in[2], 1e-5f)); },
        1e-6, 1e-5);

  // ---- distances and normalisation ----
  // the CPU's |a|^2 + |b|^2 - 2 a.b (float GEMM) loses ~1e-7 (|a|^2 + |b|^2) to cancellation, against
  // the reference's direct sum of squares: atol 1e-5 for |a|^2 ~ D ~ 10
  t.add("pairwise_sqdist/[5, 3] [4, 3]", Op::pairwise_sqdist, {normal({5, 3}), normal({4, 3})},
        [](std::vector<Tensor>& in) { return out1(pairwise_sqdist(in[0], in[1])); }, 1e-5, 1e-5);
  // a row of a equal to a row of b (distance 0: the CPU's clamp may act) and a NaN
  t.add_derived("pairwise_sqdist/equal rows nan [1, 7] [6, 7]", Op::pairwise_sqdist,
                [](Generator& g) {
                  Tensor a = g.normal({1, 7}), b = g.normal({6, 7});
                  for (int64_t k = 0; k < 7; ++k) b.data()[2 * 7 + k] = a.data()[k];
                  b.data()[4 * 7 + 3] = kNaN;
                  return std::vector<Tensor>{a, b};
                },
                [](std::vector<Tensor>& in) { return out1(pairwise_sqdist(in[0], in[1])); }, 1e-5, 1e-5);
  // offset 10, D 6: |a|^2 ~ 600, so ~1e-4 of cancellation error on the CPU
  t.add("pairwise_sqdist/offset [4, 6] [3, 6]", Op::pairwise_sqdist,
        {normal({4, 6}, 10.f, 1.f), normal({3, 6}, 10.f, 1.f)},
        [](std::vector<Tensor>& in) { return out1(pairwise_sqdist(in[0], in[1])); }, 3e-4, 1e-5);
  t.add_derived("pairwise_sqdist_backward/[5, 3] [4, 3] one zero", Op::pairwise_sqdist_backward,
                [](Generator& g) {
                  Tensor dout = g.normal({5, 4}), a = g.normal({5, 3}), b = g.normal({4, 3});
                  for (int64_t k = 0; k < 3; ++k) b.data()[1 * 3 + k] = a.data()[2 * 3 + k];  // D[2, 1] = 0
                  Tensor dist = pairwise_sqdist(a, b);
                  dist.data()[2 * 4 + 1] = 0.f;  // masked whatever the rounding gave
                  return std::vector<Tensor>{dout, a, b, dist};
                },
                [](std::vector<Tensor>& in) {
                  Tensor da, db, da_only;
                  pairwise_sqdist_backward(in[0], in[1], in[2], in[3], &da, &db);
                  pairwise_sqdist_backward(in[0], in[1], in[2], in[3], &da_only, nullptr);
                  return std::vector<Output>{{"da", da}, {"db", db}, {"da (db null)", da_only}};
                },
                1e-5, 1e-5);
  t.add("l2_normalize/[4, 5] zero row", Op::l2_normalize,
        {poke(normal({4, 5}), {{5, 0.f}, {6, 0.f}, {7, 0.f}, {8, 0.f}, {9, 0.f}})},
        [](std::vector<Tensor>& in) { return out1(l2_normalize(in[0])); }, 1e-7, 1e-6);
  t.add("l2_normalize/[1, 1] eps 0.5", Op::l2_normalize, {values({1, 1}, {0.25f})},
        [](std::vector<Tensor>& in) { return out1(l2_normalize(in[0], 0.5f)); });
  auto l2_backward_case = [&t](const std::string& name, Shape s, float eps, std::vector<std::pair<int64_t, float>> pins) {
    t.add_derived("l2_normalize_backward/" + name, Op::l2_normalize_backward,
                  [=](Generator& g) {
                    Tensor dout = g.normal(s), x = g.normal(s);
                    for (auto [i, v] : pins) x.data()[i] = v;
                    return std::vector<Tensor>{dout, x, l2_normalize(x, eps)};
                  },
                  [eps](std::vector<Tensor>& in) {
                    return std::vector<Output>{{"dx", l2_normalize_backward(in[0], in[1], in[2], eps)}};
                  },
                  1e-6, 1e-5);
  };
  l2_backward_case("[4, 5]", {4, 5}, 1e-12f, {});
  // a row below eps: the op is x / eps there
  l2_backward_case("below eps [2, 3]", {2, 3}, 0.1f, {{3, 0.01f}, {4, 0.f}, {5, -0.01f}});

  // ---- optimiser steps (w and state in place) ----
  struct Sgd {
    const char* what;
    SgdParams p;
  };
  for (Sgd s : {Sgd{"plain", {0.1f, 0.f, 0.f, false}}, Sgd{"momentum first", {0.05f, 0.9f, 0.f, true}},
                Sgd{"momentum wd", {0.05f, 0.9f, 1e-2f, false}}})
    t.add(std::string("sgd_step/") + s.what + " [3, 5]", Op::sgd_step,
          {normal({3, 5}), normal({3, 5}), s.p.momentum != 0.f ? normal({3, 5}) : none()},
          [p = s.p](std::vector<Tensor>& in) {
            sgd_step(in[0], in[1], in[2], p);
            std::vector<Output> out{{"w", in[0]}};
            if (p.momentum != 0.f) out.push_back({"velocity", in[2]});
            return out;
          });
  struct Adam {
    const char* what;
    AdamParams p;
    Shape s;
  };
  for (Adam a : {Adam{"step 1", {1e-3f, 0.9f, 0.999f, 1e-8f, 0.f, 1}, {3, 4}},
                 Adam{"step 7 wd", {3e-3f, 0.8f, 0.99f, 1e-6f, 1e-2f, 7}, {1}},
                 Adam{"step 1000", {1e-2f, 0.9f, 0.999f, 1e-8f, 0.f, 1000}, {2, 1, 3}}}) {
    const bool fresh = a.p.step == 1;  // torch's state starts at zero
    t.add(std::string("adam_step/") + a.what + " " + shape_str(a.s), Op::adam_step,
          {normal(a.s), normal(a.s), fresh ? zeros(a.s) : normal(a.s, 0.f, 0.1f),
           fresh ? zeros(a.s) : uniform(a.s, 0.f, 0.1f)},
          [p = a.p](std::vector<Tensor>& in) {
            adam_step(in[0], in[1], in[2], in[3], p);
            return std::vector<Output>{{"w", in[0]}, {"m", in[2]}, {"v", in[3]}};
          },
          1e-7, 1e-6);
  }
  // several parameters of odd sizes, weight decay on, each slot at its own step (a parameter that
  // gets no grad in some iterations counts fewer steps)
  add_adam_multi(t, "[3, 5] [1] [7] [2, 1, 3] steps 3 3 2 5 wd", {{3, 5}, {1}, {7}, {2, 1, 3}}, {3, 3, 2, 5},
                 AdamParams{3e-3f, 0.8f, 0.99f, 1e-6f, 1e-2f, 1}, true);
  return t.take();
}

// ---- the perf table ------------------------------------------------------------------------------
// bench/bench_backend_ops.cpp: larger shapes, about the sizes the models run, one or two per op
// family. Each runs on every backend present, the reference included (its cost is shown too).
inline std::vector<OpCase> op_perf_cases() {
  Table t;
  const int64_t n = 1 << 20;
  add_unary(t, "1M", UnaryOp::relu, normal({n}));
  add_unary(t, "1M", UnaryOp::exp, normal({n}));
  add_unary(t, "1M", UnaryOp::silu, normal({n}));
  add_unary(t, "1M", UnaryOp::leaky_relu, normal({n}), 0.01f);
  add_binary(t, "1M", BinaryOp::leaky_relu_backward, normal({n}), normal({n}), 0.01f);
  add_binary(t, "[1024, 1024]", BinaryOp::add, normal({1024, 1024}), normal({1024, 1024}));
  add_binary(t, "[1024, 1024] * [1024]", BinaryOp::mul, normal({1024, 1024}), normal({1024}));
  t.add("expand/[1024] -> [1024, 1024]", Op::expand, {normal({1024})},
        [](std::vector<Tensor>& in) { return out1(expand_to(in[0], {1024, 1024})); });
  t.add("fill/1M", Op::fill, {normal({n})}, [](std::vector<Tensor>& in) {
    in[0].fill_(1.f);
    return out1(in[0]);
  });
  t.add("copy/clone 1M", Op::copy, {normal({n})}, [](std::vector<Tensor>& in) { return out1(in[0].clone()); });
  for (int64_t s : {64, 256, 512})
    t.add("matmul/" + std::to_string(s) + "^3", Op::matmul, {normal({s, s}), normal({s, s})},
          [](std::vector<Tensor>& in) { return out1(matmul(in[0], in[1])); })
        .flops = 2.0 * s * s * s;
  // ACR-NTL's transformation layer 128 -> 570 on a task's 2048 rows (fused bias)
  t.add("linear/[2048, 128] -> 570", Op::linear, {normal({2048, 128}), normal({570, 128}), normal({570})},
        [](std::vector<Tensor>& in) { return out1(linear(in[0], in[1], in[2])); })
      .flops = 2.0 * 2048 * 570 * 128;
  t.add("bmm/32 x 64^3", Op::bmm, {normal({32, 64, 64}), normal({32, 64, 64})},
        [](std::vector<Tensor>& in) { return out1(bmm(in[0], in[1])); })
      .flops = 2.0 * 32 * 64 * 64 * 64;
  t.add("sum/[1024, 1024] dim 1", Op::sum, {normal({1024, 1024})},
        [](std::vector<Tensor>& in) { return out1(sum(in[0], {1})); });
  t.add("sum/[1024, 1024] dim 0", Op::sum, {normal({1024, 1024})},
        [](std::vector<Tensor>& in) { return out1(sum(in[0], {0})); });
  t.add("max/[1024, 1024] dim 1", Op::max, {normal({1024, 1024})}, [](std::vector<Tensor>& in) {
    Tensor am;
    Tensor m = max(in[0], 1, false, &am);
    return std::vector<Output>{{"out", m}, {"argmax", am}};
  });
  t.add("max_backward/[1024, 1024] dim 1", Op::max_backward, {normal({1024}), index({1024}, 1024)},
        [](std::vector<Tensor>& in) { return out1(max_backward(in[0], in[1], {1024, 1024}, 1)); });
  t.add("logsumexp/[1024, 1024] dim 1", Op::logsumexp, {normal({1024, 1024})},
        [](std::vector<Tensor>& in) { return out1(logsumexp(in[0], 1)); });
  t.add("permute/[64, 128, 128] by [2, 0, 1]", Op::permute, {normal({64, 128, 128})},
        [](std::vector<Tensor>& in) { return out1(permute(in[0], {2, 0, 1})); });
  // ACR-NTL's views: [T, V, Q, D] -> [V, T, Q, D], whole [Q, D] rows moving
  t.add("permute/[4, 20, 64, 570] by [1, 0, 2, 3]", Op::permute, {normal({4, 20, 64, 570})},
        [](std::vector<Tensor>& in) { return out1(permute(in[0], {1, 0, 2, 3})); });
  t.add("concat/2 x [512, 1024] dim 1", Op::concat, {normal({512, 1024}), normal({512, 1024})},
        [](std::vector<Tensor>& in) { return out1(concat(in, 1)); });
  t.add("slice/[1024, 1024] dim 1 [256, 768)", Op::slice, {normal({1024, 1024})},
        [](std::vector<Tensor>& in) { return out1(slice(in[0], 1, 256, 768)); });
  t.add("slice_add/[1024, 1024] dim 1 at 256", Op::slice_add, {normal({1024, 1024}), normal({1024, 512})},
        [](std::vector<Tensor>& in) {
          slice_add_(in[0], in[1], 1, 256);
          return out1(in[0]);
        });
  std::vector<int64_t> idx(4096);
  for (int64_t i = 0; i < 4096; ++i) idx[i] = (i * 7919) % 4096;
  t.add("index_select/[4096, 256]", Op::index_select, {normal({4096, 256})},
        [idx](std::vector<Tensor>& in) { return out1(index_select(in[0], idx)); });
  t.add("index_add/[4096, 256]", Op::index_add, {normal({4096, 256}), normal({4096, 256})},
        [idx](std::vector<Tensor>& in) {
          index_add_(in[0], idx, in[1]);
          return out1(in[0]);
        });
  // the Omniglot backbone's second conv at the task batch (bench/bench_ops.cpp's omni2_n30)
  add_conv(t, "omni2_n30", {30, 64, 14, 14}, {64, 64, 3, 3}, conv_args(2, 2, 1, 1), true);
  // its first conv at the ACR-DSVDD step's batch (small-depth kernels; a 48 MB output and gradient)
  add_conv(t, "omni1_n960", {960, 1, 28, 28}, {64, 1, 3, 3}, conv_args(2, 2, 1, 1), true);
  add_conv(t, "depthwise", {8, 96, 28, 28}, {96, 1, 3, 3}, conv_args(1, 1, 1, 1, 1, 1, 96), false);
  add_conv_affine(t, "omni2_n30", {30, 64, 14, 14}, {64, 64, 3, 3}, conv_args(2, 2, 1, 1), Activation::silu, true);
  add_pool(t, {30, 64, 28, 28}, pool_args(2, 2, 2, 2, 0, 0));
  add_pool(t, {30, 64, 28, 28}, pool_args(3, 3, 2, 2, 1, 1, true, false));
  t.add("global_avg_pool/[30, 256, 14, 14]", Op::global_avg_pool, {normal({30, 256, 14, 14})},
        [](std::vector<Tensor>& in) { return out1(global_avg_pool(in[0])); });
  t.add("upsample_nearest2d/[30, 64, 14, 14] scale 2", Op::upsample_nearest2d, {normal({30, 64, 14, 14})},
        [](std::vector<Tensor>& in) { return out1(upsample_nearest2d(in[0], 2)); });
  t.add("upsample_nearest2d_backward/[30, 64, 28, 28] scale 2", Op::upsample_nearest2d_backward,
        {normal({30, 64, 28, 28})}, [](std::vector<Tensor>& in) { return out1(upsample_nearest2d_backward(in[0], 2)); });
  t.add("scale_planes/[8, 672, 14, 14]", Op::scale_planes, {normal({8, 672, 14, 14}), normal({8, 672})},
        [](std::vector<Tensor>& in) { return out1(scale_planes(in[0], in[1])); });
  // ACR's grouped batch norm (32 tasks x 30 rows x 64) and a conv feature map
  add_batch_norm(t, {960, 64}, 32, true, true);
  add_batch_norm(t, {120, 64, 14, 14}, 1, true, true);
  // the ACR steps' largest: ACR-NTL's 4 tasks x 512 rows x 20 views x 128, ACR-DSVDD's first block
  add_batch_norm(t, {40960, 128}, 4, true, true);
  add_batch_norm(t, {960, 64, 14, 14}, 32, true, true);
  add_batch_norm(t, {960, 64, 14, 14}, 32, true, true, 0.f, 1e-5, 0.f);
  // the Omniglot net's scoring: its 14 x 14 layer's input normalised as it is read
  add_conv_bn_relu_input(t, "omniglot scoring", {1000, 64, 14, 14}, {64, 64, 3, 3}, conv_args(2, 2, 1, 1), 1);
  t.add("batch_norm_fold/[2048]", Op::batch_norm_fold,
        {normal({2048}), normal({2048}), normal({2048}), normal({2048}), uniform({2048}, 0.5f, 2.f)},
        [](std::vector<Tensor>& in) {
          Tensor scale, shift;
          batch_norm_fold(in[0], in[1], in[2], in[3], in[4], 1e-5f, &scale, &shift);
          return std::vector<Output>{{"scale", scale}, {"shift", shift}};
        });
  t.add("batch_norm_eval/[120, 64, 14, 14]", Op::batch_norm_eval,
        {normal({120, 64, 14, 14}), normal({64}), normal({64}), normal({64}), uniform({64}, 0.5f, 2.f)},
        [](std::vector<Tensor>& in) { return out1(batch_norm_eval(in[0], in[1], in[2], in[3], in[4], 1e-5f)); });
  t.add("pairwise_sqdist/[1024, 128] [1024, 128]", Op::pairwise_sqdist, {normal({1024, 128}), normal({1024, 128})},
        [](std::vector<Tensor>& in) { return out1(pairwise_sqdist(in[0], in[1])); })
      .flops = 2.0 * 1024 * 1024 * 128;
  t.add_derived("pairwise_sqdist_backward/[1024, 128] [1024, 128]", Op::pairwise_sqdist_backward,
                [](Generator& g) {
                  Tensor dout = g.normal({1024, 1024}), a = g.normal({1024, 128}), b = g.normal({1024, 128});
                  return std::vector<Tensor>{dout, a, b, pairwise_sqdist(a, b)};
                },
                [](std::vector<Tensor>& in) {
                  Tensor da, db;
                  pairwise_sqdist_backward(in[0], in[1], in[2], in[3], &da, &db);
                  return std::vector<Output>{{"da", da}, {"db", db}};
                })
      .flops = 4.0 * 1024 * 1024 * 128;
  t.add("l2_normalize/[4096, 128]", Op::l2_normalize, {normal({4096, 128})},
        [](std::vector<Tensor>& in) { return out1(l2_normalize(in[0])); });
  t.add_derived("l2_normalize_backward/[4096, 128]", Op::l2_normalize_backward,
                [](Generator& g) {
                  Tensor dout = g.normal({4096, 128}), x = g.normal({4096, 128});
                  return std::vector<Tensor>{dout, x, l2_normalize(x)};
                },
                [](std::vector<Tensor>& in) { return out1(l2_normalize_backward(in[0], in[1], in[2], 1e-12f)); });
  t.add("sgd_step/momentum 1M", Op::sgd_step, {normal({n}), normal({n}), normal({n})}, [](std::vector<Tensor>& in) {
    sgd_step(in[0], in[1], in[2], SgdParams{0.01f, 0.9f, 1e-4f, false});
    return std::vector<Output>{{"w", in[0]}, {"velocity", in[2]}};
  });
  t.add("adam_step/1M", Op::adam_step, {normal({n}), normal({n}), zeros({n}), zeros({n})},
        [](std::vector<Tensor>& in) {
          adam_step(in[0], in[1], in[2], in[3], AdamParams{});
          return std::vector<Output>{{"w", in[0]}, {"m", in[2]}, {"v", in[3]}};
        });
  // a model's parameters: 32 tensors of 62 to 557K weights (1M in all; weights and biases), one launch
  std::vector<Shape> params;
  std::vector<int64_t> steps;
  for (int64_t k = 0, left = n; k < 32; ++k) {
    const int64_t size = k == 31 ? left : std::min<int64_t>(left, (k % 2 ? 1 : 61) * (k + 1) * 31);
    params.push_back({size});
    steps.push_back(10);
    left -= size;
  }
  add_adam_multi(t, "32 tensors 1M", params, steps, AdamParams{}, false);
  return t.take();
}

}  // namespace normad::cases
