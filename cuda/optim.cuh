// normad CUDA optimiser steps, elementwise and in place (torch.optim's rules, as nn/optim.cpp).
// Math: SGD d = g + wd w; with momentum v = first ? d : mu v + d, d = v; w -= lr d.
//       Adam gk = g + wd w; m = b1 m + (1 - b1) gk; v = b2 v + (1 - b2) gk^2;
//            w -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps) in double, bc = 1 - beta^t.
// The float operations are the CPU's (tensor/optim.cpp) in the same order. Both compilers may fuse
// a * b + c into one FMA (g++ with -march=native, nvcc by default) and need not pick the same
// pairs, so a GPU step can differ from the CPU's in the last bit; tests/test_cuda.cpp runs these
// bodies compiled by g++, so it checks the formulas, not the GPU's rounding.
// Versions (cuda/optim.cu): v1 one thread per weight, grid-stride; adam_step_multi: one launch over
// every parameter's weights (a descriptor table and prefix offsets, a binary search per thread).
// Tested by tests/test_cuda.cpp ([cuda_body] on the host against the CPU steps),
// tests/test_cuda_optim.cpp ([cuda_body]: the fused step and find_segment on the host) and
// tests/test_backend_ops.cpp on a GPU.
#pragma once

#include <math.h>

#include "cuda/common.cuh"

namespace normad::cuda {

struct SgdBody {
  float* w;
  float* velocity;  // null when momentum is 0
  const float* g;
  float lr, momentum, weight_decay;
  bool first;  // the velocity is set to d itself on the first step (torch)
  NORMAD_HD void operator()(int64_t k) const {
    float d = g[k] + weight_decay * w[k];
    if (velocity) {
      velocity[k] = first ? d : momentum * velocity[k] + d;
      d = velocity[k];
    }
    w[k] -= lr * d;
  }
};

struct AdamBody {
  float* w;
  float* m;
  float* v;
  const float* g;
  float beta1, beta2, eps, weight_decay;
  float one_m_b1, one_m_b2;  // (float)(1.0 - (double)beta): torch keeps 1 - beta as a double
  double step;               // lr / bc1
  double sqrt_bc2;           // sqrt(bc2)
  NORMAD_HD void operator()(int64_t k) const {
    const float gk = g[k] + weight_decay * w[k];  // L2 penalty added to the gradient
    m[k] = beta1 * m[k] + one_m_b1 * gk;
    v[k] = beta2 * v[k] + one_m_b2 * gk * gk;
    const double denom = ::sqrt(double(v[k])) / sqrt_bc2 + eps;
    w[k] = static_cast<float>(w[k] - step * m[k] / denom);
  }
};

// ---- one fused Adam over all parameters (adam_step_multi) ----
// The parameters' weights are viewed as one concatenated vector of offsets[count] elements:
// tensor t owns elements [offsets[t], offsets[t + 1]). One thread per element finds its tensor by
// binary search and applies AdamBody's math with that tensor's pointers and step constants.

// Per parameter tensor: its arrays, length and step constants (they differ when parameters have
// stepped different numbers of times).
struct AdamTensor {
  float* w;
  float* m;
  float* v;
  const float* g;
  int64_t n;        // elements
  double step;      // lr / bc1 of this tensor's t
  double sqrt_bc2;  // sqrt(1 - beta2^t)
};

// The tensor t holding element e of the concatenation: offsets[t] <= e < offsets[t + 1], where
// offsets has count + 1 non-decreasing entries, offsets[0] = 0 and 0 <= e < offsets[count].
// Empty tensors (equal neighbours) are never returned: the search takes the last t with
// offsets[t] <= e.
NORMAD_HD inline int find_segment(const int64_t* offsets, int count, int64_t e) {
  int lo = 0, hi = count;  // invariant: offsets[lo] <= e < offsets[hi]
  while (hi - lo > 1) {
    const int mid = lo + (hi - lo) / 2;
    if (offsets[mid] <= e) lo = mid;
    else hi = mid;
  }
  return lo;
}

struct AdamMultiBody {
  AdamBody shared;  // the scalars common to all tensors (its pointers and step constants unused)
  const AdamTensor* tensors;
  const int64_t* offsets;  // count + 1 prefix sums of the tensors' n
  int count;
  NORMAD_HD void operator()(int64_t e) const {
    const int t = find_segment(offsets, count, e);
    const AdamTensor& d = tensors[t];
    // AdamBody's update, re-pointed at tensor t: the math exists once, in AdamBody
    AdamBody b = shared;
    b.w = d.w, b.m = d.m, b.v = d.v, b.g = d.g;
    b.step = d.step, b.sqrt_bc2 = d.sqrt_bc2;
    b(e - offsets[t]);
  }
};

void launch(int64_t n, const SgdBody& body);
void launch(int64_t n, const AdamBody& body);
void launch(int64_t n, const AdamMultiBody& body);

}  // namespace normad::cuda
