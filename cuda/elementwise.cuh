// normad CUDA elementwise kernels: every UnaryOp, every BinaryOp with broadcasting, fill.
// Math: out[i] = f(a[i]; p0, p1) and out[i] = f(a[ia(i)], b[ib(i)]; p0, p1) with ia, ib from a
// StridedIndex (stride 0 along broadcast dims); each f is written exactly as the CPU's
// (tensor/elementwise.cpp), NaN behaviour included (relu and clamp pass NaN through).
// Versions (cuda/elementwise.cu): v1 one thread per element, grid-stride, a runtime switch on the
// op (uniform across the grid). Expand is the gather of cuda/layout.cuh.
// Tested by tests/test_cuda.cpp: the bodies on the host against the CPU ops ([cuda_body]); on a GPU
// by tests/test_backend_ops.cpp against the reference backend.
#pragma once

#include <math.h>

#include "cuda/common.cuh"
#include "tensor/backend.h"

namespace normad::cuda {

// The C names (expf, ...) resolve to the CUDA math library in device code and to libm on the host.
NORMAD_HD inline float unary_apply(UnaryOp op, float x, float p0, float p1) {
  switch (op) {
    case UnaryOp::neg: return -x;
    case UnaryOp::exp: return expf(x);
    case UnaryOp::log: return logf(x);
    case UnaryOp::sqrt: return sqrtf(x);
    case UnaryOp::abs: return fabsf(x);
    case UnaryOp::sign: return float((x > 0) - (x < 0));  // 0 for 0 and NaN
    case UnaryOp::pow: return p0 == 2.f ? x * x : powf(x, p0);  // the CPU squares exactly too
    case UnaryOp::clamp: {
      // std::min(std::max(x, lo), hi) spelled out: a NaN x survives both comparisons.
      const float t = x < p0 ? p0 : x;
      return p1 < t ? p1 : t;
    }
    case UnaryOp::relu: return x < 0 ? 0.f : x;
    case UnaryOp::leaky_relu: return x > 0 ? x : p0 * x;
    case UnaryOp::sigmoid:
      // Two branches keep exp's argument <= 0, so neither overflows.
      if (x >= 0) return 1.f / (1.f + expf(-x));
      return expf(x) / (1.f + expf(x));
    case UnaryOp::silu: {
      const float s = x >= 0 ? 1.f / (1.f + expf(-x)) : expf(x) / (1.f + expf(x));
      return x * s;
    }
    case UnaryOp::add_scalar: return x + p0;
    case UnaryOp::mul_scalar: return x * p0;
    case UnaryOp::count: break;
  }
  return NAN;  // not an op: loud in any comparison
}

NORMAD_HD inline float binary_apply(BinaryOp op, float a, float b, float p0, float p1) {
  switch (op) {
    case BinaryOp::add: return a + b;
    case BinaryOp::sub: return a - b;
    case BinaryOp::mul: return a * b;
    case BinaryOp::div: return a / b;
    case BinaryOp::maximum: return a >= b ? a : b;
    // a = dout, b = the forward input x
    case BinaryOp::leaky_relu_backward: return b > 0 ? a : p0 * a;
    // a select (torch's where): outside the range 0 even for a NaN or infinite dout
    case BinaryOp::clamp_backward: return p0 <= b && b <= p1 ? a : 0.f;
    case BinaryOp::count: break;
  }
  return NAN;
}

// out[i] = f(a[i]) over n elements.
struct UnaryBody {
  float* out;
  const float* a;
  UnaryOp op;
  float p0, p1;
  NORMAD_HD void operator()(int64_t i) const { out[i] = unary_apply(op, a[i], p0, p1); }
};

// out[i] = f(a[ia], b[ib]) over the elements of idx's output.
struct BinaryBody {
  float* out;
  const float* a;
  const float* b;
  StridedIndex idx;
  BinaryOp op;
  float p0, p1;
  NORMAD_HD void operator()(int64_t i) const {
    int64_t ia, ib;
    idx.offsets(i, ia, ib);
    out[i] = binary_apply(op, a[ia], b[ib], p0, p1);
  }
};

struct FillBody {
  float* out;
  float v;
  NORMAD_HD void operator()(int64_t i) const { out[i] = v; }
};

// Launchers (cuda/elementwise.cu): n elements on stream(), one thread each.
void launch(int64_t n, const UnaryBody& body);
void launch(int64_t n, const BinaryBody& body);
void launch(int64_t n, const FillBody& body);

}  // namespace normad::cuda
