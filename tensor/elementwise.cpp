// normad elementwise ops with NumPy/PyTorch broadcasting (see tensor/ops.h).
// Math: out[i] = f(a[ia(i)], b[ib(i)]) where ia/ib map an output index to the inputs with stride 0
// along broadcast dims; unary ops are out[i] = f(a[i]).
// Tested by tests/test_ops.cpp (closed forms, broadcasting, errors) and tests/test_grad.cpp.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "tensor/broadcast.h"
#include "tensor/cpu.h"
#include "tensor/parallel.h"
#include "tensor/select.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace normad::cpu {

namespace {

constexpr int64_t kGrain = 1 << 15;  // elements per parallel chunk for cheap elementwise work

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
// The dims merged (merge_dims, tensor/broadcast.h); the innermost runs as a plain loop, specialised
// for unit and zero strides so that it vectorises; outer indices advance like an odometer, divided
// out once per chunk. A single merged dim is itself split into pieces.
template <class F>
void for_each_broadcast(const Shape& out_shape, const std::vector<int64_t>& strides_a,
                        const std::vector<int64_t>& strides_b, F f) {
  if (shape_numel(out_shape) == 0) return;
  const MergedDims m = merge_dims(out_shape, strides_a, strides_b);
  if (m.size.empty()) {  // a single element
    f(0, 0, 0);
    return;
  }
  const int64_t outer_dims = static_cast<int64_t>(m.size.size()) - 1;
  const int64_t inner = m.size.back(), ia_in = m.stride_a.back(), ib_in = m.stride_b.back();
  // columns [j0, j1) of the row whose first output is o, first inputs oa and ob
  auto span = [&](int64_t o, int64_t oa, int64_t ob, int64_t j0, int64_t j1) {
    if (ia_in == 1 && ib_in == 0)
      for (int64_t j = j0; j < j1; ++j) f(o + j, oa + j, ob);
    else if (ia_in == 0 && ib_in == 1)
      for (int64_t j = j0; j < j1; ++j) f(o + j, oa, ob + j);
    else if (ia_in == 1 && ib_in == 1)
      for (int64_t j = j0; j < j1; ++j) f(o + j, oa + j, ob + j);
    else
      for (int64_t j = j0; j < j1; ++j) f(o + j, oa + j * ia_in, ob + j * ib_in);
  };
  if (outer_dims == 0) {  // one merged dim (a fill from a [1] tensor, equal sizes of other ranks)
    parallel_for(inner, kGrain, [&](int64_t j0, int64_t j1) { span(0, 0, 0, j0, j1); });
    return;
  }
  const std::vector<int64_t>&size = m.size, &sa = m.stride_a, &sb = m.stride_b;
  parallel_for(shape_numel(out_shape) / inner, std::max<int64_t>(1, kGrain / inner), [&](int64_t r0, int64_t r1) {
    // the outer coordinates of row r0, then stepped row by row
    std::vector<int64_t> coord(outer_dims);
    int64_t oa = 0, ob = 0;
    for (int64_t d = outer_dims - 1, rem = r0; d >= 0; --d) {
      coord[d] = rem % size[d];
      rem /= size[d];
      oa += coord[d] * sa[d];
      ob += coord[d] * sb[d];
    }
    for (int64_t r = r0; r < r1; ++r) {
      span(r * inner, oa, ob, 0, inner);
      for (int64_t d = outer_dims - 1; d >= 0; --d) {  // the odometer: next row's offsets
        oa += sa[d];
        ob += sb[d];
        if (++coord[d] < size[d]) break;
        oa -= sa[d] * size[d];
        ob -= sb[d] * size[d];
        coord[d] = 0;
      }
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

#if defined(__AVX512F__)
namespace {
// glibc's expf table (sysdeps/ieee754/flt-32/e_exp2f_data.c): bits of 2^(i/32) minus i << 47
alignas(64) constexpr uint64_t kExpTable[32] = {
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51,
    0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
    0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585,
    0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
    0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
    0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069,
    0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540};

// e^x for 8 floats, in double as glibc's expf computes one: x 32/ln2 = k + r (k rounded to an
// integer by adding 1.5 2^52), 2^(k/32) from the table and the exponent bits, 2^(r/32) by a cubic;
// the same operations in the same order, the multiply-adds fused where glibc's FMA build fuses them.
inline __m256 exp8_glibc(__m256 xf) {
  const __m512d inv_ln2_n = _mm512_set1_pd(0x1.71547652b82fep+5), shift = _mm512_set1_pd(0x1.8p52);
  const __m512d c0 = _mm512_set1_pd(0x1.c6af84b912394p-20), c1 = _mm512_set1_pd(0x1.ebfce50fac4f3p-13);
  const __m512d c2 = _mm512_set1_pd(0x1.62e42ff0c52d6p-6), one = _mm512_set1_pd(1.0);
  const __m512d xd = _mm512_cvtps_pd(xf);
  const __m512d kd_shifted = _mm512_fmadd_pd(inv_ln2_n, xd, shift);
  const __m512i ki = _mm512_castpd_si512(kd_shifted);
  const __m512d kd = _mm512_sub_pd(kd_shifted, shift);
  const __m512d r = _mm512_fmsub_pd(inv_ln2_n, xd, kd);
  const __m512d z = _mm512_fmadd_pd(r, c0, c1);
  // table[ki % 32]: entries 0-15 or 16-31 by bit 4, each a two-register permute on bits 0-3
  const __m512i* table = reinterpret_cast<const __m512i*>(kExpTable);
  const __m512i low = _mm512_permutex2var_epi64(_mm512_load_si512(table), ki, _mm512_load_si512(table + 1));
  const __m512i high = _mm512_permutex2var_epi64(_mm512_load_si512(table + 2), ki, _mm512_load_si512(table + 3));
  const __m512i t = _mm512_add_epi64(_mm512_mask_blend_epi64(_mm512_test_epi64_mask(ki, _mm512_set1_epi64(16)), low, high),
                                     _mm512_slli_epi64(ki, 47));
  const __m512d r2 = _mm512_mul_pd(r, r);
  __m512d y = _mm512_fmadd_pd(r, c2, one);
  y = _mm512_fmadd_pd(z, r2, y);
  return _mm512_cvtpd_ps(_mm512_mul_pd(y, _mm512_castsi512_pd(t)));
}

// 16 values at y from x (y == x or no overlap).
inline void exp16(float* y, const float* x) {
  const __m512 xv = _mm512_loadu_ps(x);
  const __m256 lo = exp8_glibc(_mm512_castps512_ps256(xv));
  const __m256 hi = exp8_glibc(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(xv), 1)));
  // |x| >= 88 (the float's top 12 bits from 0x42b on: overflow, underflow, inf) or NaN: glibc's
  // special cases, from std::exp itself
  const __m512i top = _mm512_and_si512(_mm512_srli_epi32(_mm512_castps_si512(xv), 20), _mm512_set1_epi32(0x7ff));
  const __mmask16 special = _mm512_cmpge_epu32_mask(top, _mm512_set1_epi32(0x42b));
  const __m512 e = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(lo)), _mm256_castps_pd(hi), 1));
  if (special) {  // (from a copy of the inputs: y may be x)
    alignas(64) float in[16], out[16];
    _mm512_store_ps(in, xv);
    _mm512_store_ps(out, e);
    for (int l = 0; l < 16; ++l)
      if (special >> l & 1) out[l] = std::exp(in[l]);
    std::memcpy(y, out, sizeof out);
  } else {
    _mm512_storeu_ps(y, e);
  }
}
}  // namespace

void exp_floats(float* y, const float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) exp16(y + i, x + i);
  if (i < n) {  // the last values padded to a whole vector: every value through the same code
    alignas(64) float buf[16] = {};
    std::copy(x + i, x + n, buf);
    exp16(buf, buf);
    std::copy(buf, buf + (n - i), y + i);
  }
}
#else
void exp_floats(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i]);
}
#endif

// in chunks of kGrain values: each chunk one exp_floats call (tensor/cpu.h)
Tensor exp(const Tensor& a) {
  Tensor out = Tensor::empty(a.shape());
  const float* x = a.data();
  float* y = out.data();
  parallel_for(a.numel(), kGrain, [&](int64_t b, int64_t e) { exp_floats(y + b, x + b, e - b); });
  return out;
}
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
