// normad elementwise ops with NumPy/PyTorch broadcasting (see tensor/ops.h).
// Math: out[i] = f(a[ia(i)], b[ib(i)]) where ia/ib map an output index to the inputs with stride 0
// along broadcast dims; unary ops are out[i] = f(a[i]).
// Tested by tests/test_ops.cpp (closed forms, broadcasting, errors) and tests/test_grad.cpp.
#include <algorithm>
#include <cmath>

#include "tensor/cpu.h"
#include "tensor/parallel.h"
#include "tensor/select.h"

namespace normad::cpu {

namespace {

constexpr int64_t kGrain = 1 << 15;  // elements per parallel chunk for cheap elementwise work

// Strides of `s` aligned to the right of a rank-`rank` output, 0 along broadcast (size 1) dims.
std::vector<int64_t> broadcast_strides(const Shape& s, size_t rank) {
  std::vector<int64_t> st(rank, 0);
  int64_t stride = 1;
  for (size_t k = 0; k < s.size(); ++k) {
    size_t i = s.size() - 1 - k, o = rank - 1 - k;
    st[o] = s[i] == 1 ? 0 : stride;
    stride *= s[i];
  }
  return st;
}

template <class F>
Tensor map_unary(const Tensor& a, F f) {
  Tensor out = Tensor::empty(a.shape());
  const float* x = a.data();
  float* y = out.data();
  parallel_for(a.numel(), kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] = f(x[i]);
  });
  return out;
}

// Visits every output element of a broadcast of inputs with the given strides: f(out_i, ia, ib).
// The innermost dim runs as a plain loop; outer indices advance like an odometer.
template <class F>
void for_each_broadcast(const Shape& out_shape, const std::vector<int64_t>& sa,
                        const std::vector<int64_t>& sb, F f) {
  const int64_t rank = static_cast<int64_t>(out_shape.size());
  const int64_t n = shape_numel(out_shape);
  if (n == 0) return;
  if (rank == 0) {
    f(0, 0, 0);
    return;
  }
  const int64_t inner = out_shape[rank - 1], ia_in = sa[rank - 1], ib_in = sb[rank - 1];
  const int64_t rows = n / inner;
  parallel_for(rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(inner, 1)),
               [&](int64_t r0, int64_t r1) {
                 for (int64_t r = r0; r < r1; ++r) {
                   // Decompose the row index into outer coordinates.
                   int64_t rem = r, oa = 0, ob = 0;
                   for (int64_t d = rank - 2; d >= 0; --d) {
                     int64_t c = rem % out_shape[d];
                     rem /= out_shape[d];
                     oa += c * sa[d];
                     ob += c * sb[d];
                   }
                   for (int64_t j = 0; j < inner; ++j)
                     f(r * inner + j, oa + j * ia_in, ob + j * ib_in);
                 }
               });
}

template <class F>
Tensor map_binary(const Tensor& a, const Tensor& b, F f) {
  if (a.shape() == b.shape()) {  // fast path: no broadcasting
    Tensor out = Tensor::empty(a.shape());
    const float *x = a.data(), *y = b.data();
    float* z = out.data();
    parallel_for(a.numel(), kGrain, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) z[i] = f(x[i], y[i]);
    });
    return out;
  }
  Shape os = broadcast_shape(a.shape(), b.shape());
  Tensor out = Tensor::empty(os);
  auto sa = broadcast_strides(a.shape(), os.size()), sb = broadcast_strides(b.shape(), os.size());
  const float *x = a.data(), *y = b.data();
  float* z = out.data();
  for_each_broadcast(os, sa, sb, [&](int64_t i, int64_t ia, int64_t ib) { z[i] = f(x[ia], y[ib]); });
  return out;
}

}  // namespace


Tensor add(const Tensor& a, const Tensor& b) { return map_binary(a, b, [](float x, float y) { return x + y; }); }
Tensor sub(const Tensor& a, const Tensor& b) { return map_binary(a, b, [](float x, float y) { return x - y; }); }
Tensor mul(const Tensor& a, const Tensor& b) { return map_binary(a, b, [](float x, float y) { return x * y; }); }
Tensor div(const Tensor& a, const Tensor& b) { return map_binary(a, b, [](float x, float y) { return x / y; }); }
Tensor maximum(const Tensor& a, const Tensor& b) {
  return map_binary(a, b, [](float x, float y) { return x >= y ? x : y; });
}

Tensor add_scalar(const Tensor& a, float s) { return map_unary(a, [s](float x) { return x + s; }); }
Tensor mul_scalar(const Tensor& a, float s) { return map_unary(a, [s](float x) { return x * s; }); }
Tensor neg(const Tensor& a) { return map_unary(a, [](float x) { return -x; }); }
Tensor exp(const Tensor& a) { return map_unary(a, [](float x) { return std::exp(x); }); }
Tensor log(const Tensor& a) { return map_unary(a, [](float x) { return std::log(x); }); }
Tensor sqrt(const Tensor& a) { return map_unary(a, [](float x) { return std::sqrt(x); }); }
Tensor abs(const Tensor& a) { return map_unary(a, [](float x) { return std::fabs(x); }); }
Tensor sign(const Tensor& a) {
  return map_unary(a, [](float x) { return float((x > 0) - (x < 0)); });
}
Tensor pow(const Tensor& a, float p) {
  if (p == 2.f) return map_unary(a, [](float x) { return x * x; });
  return map_unary(a, [p](float x) { return std::pow(x, p); });
}
Tensor clamp(const Tensor& a, float lo, float hi) {
  return map_unary(a, [lo, hi](float x) { return std::min(std::max(x, lo), hi); });
}
// NaN passes through (as in PyTorch): `x > 0 ? x : 0` would turn it into a quiet 0.
Tensor relu(const Tensor& a) { return map_unary(a, [](float x) { return x < 0 ? 0.f : x; }); }
Tensor leaky_relu(const Tensor& a, float slope) {
  return map_unary(a, [slope](float x) { return select(x > 0, x, slope * x); });
}
Tensor leaky_relu_backward(const Tensor& g, const Tensor& x, float slope) {
  return map_binary(g, x, [slope](float gv, float xv) { return select(xv > 0, gv, slope * gv); });
}
// A select, as torch's clamp backward (where(lo <= x <= hi, g, 0)): outside the range the gradient
// is 0 even when g is NaN or infinite.
Tensor clamp_backward(const Tensor& g, const Tensor& x, float lo, float hi) {
  return map_binary(g, x, [lo, hi](float gv, float xv) { return (xv >= lo && xv <= hi) ? gv : 0.f; });
}
Tensor sigmoid(const Tensor& a) {
  // Two branches keep exp's argument <= 0, so neither overflows.
  return map_unary(a, [](float x) {
    if (x >= 0) return 1.f / (1.f + std::exp(-x));
    float e = std::exp(x);
    return e / (1.f + e);
  });
}
Tensor silu(const Tensor& a) {
  return map_unary(a, [](float x) {
    float s = x >= 0 ? 1.f / (1.f + std::exp(-x)) : std::exp(x) / (1.f + std::exp(x));
    return x * s;
  });
}


Tensor expand(const Tensor& a, const Shape& shape) {
  Tensor out = Tensor::empty(shape);
  auto sa = broadcast_strides(a.shape(), shape.size());
  std::vector<int64_t> zero(shape.size(), 0);
  const float* x = a.data();
  float* z = out.data();
  for_each_broadcast(shape, sa, zero, [&](int64_t i, int64_t ia, int64_t) { z[i] = x[ia]; });
  return out;
}

// The table's two elementwise entries: one switch per call, the loops above per element.
Tensor unary(UnaryOp op, const Tensor& a, float p0, float p1) {
  switch (op) {
    case UnaryOp::neg: return cpu::neg(a);
    case UnaryOp::exp: return cpu::exp(a);
    case UnaryOp::log: return cpu::log(a);
    case UnaryOp::sqrt: return cpu::sqrt(a);
    case UnaryOp::abs: return cpu::abs(a);
    case UnaryOp::sign: return cpu::sign(a);
    case UnaryOp::pow: return cpu::pow(a, p0);
    case UnaryOp::clamp: return cpu::clamp(a, p0, p1);
    case UnaryOp::relu: return cpu::relu(a);
    case UnaryOp::leaky_relu: return cpu::leaky_relu(a, p0);
    case UnaryOp::sigmoid: return cpu::sigmoid(a);
    case UnaryOp::silu: return cpu::silu(a);
    case UnaryOp::add_scalar: return cpu::add_scalar(a, p0);
    case UnaryOp::mul_scalar: return cpu::mul_scalar(a, p0);
    case UnaryOp::count: break;
  }
  throw Error("cpu: unknown unary op");
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b, float p0, float p1) {
  switch (op) {
    case BinaryOp::add: return cpu::add(a, b);
    case BinaryOp::sub: return cpu::sub(a, b);
    case BinaryOp::mul: return cpu::mul(a, b);
    case BinaryOp::div: return cpu::div(a, b);
    case BinaryOp::maximum: return cpu::maximum(a, b);
    case BinaryOp::leaky_relu_backward: return cpu::leaky_relu_backward(a, b, p0);
    case BinaryOp::clamp_backward: return cpu::clamp_backward(a, b, p0, p1);
    case BinaryOp::count: break;
  }
  throw Error("cpu: unknown binary op");
}

}  // namespace normad::cpu
