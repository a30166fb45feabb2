// normad CUDA optimiser steps, elementwise and in place (torch.optim's rules, as nn/optim.cpp).
// Math: SGD d = g + wd w; with momentum v = first ? d : mu v + d, d = v; w -= lr d.
//       Adam gk = g + wd w; m = b1 m + (1 - b1) gk; v = b2 v + (1 - b2) gk^2;
//            w -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps) in double, bc = 1 - beta^t.
// The float operations are the CPU's (tensor/optim.cpp) in the same order. Both compilers may fuse
// a * b + c into one FMA (g++ with -march=native, nvcc by default) and need not pick the same
// pairs, so a GPU step can differ from the CPU's in the last bit; tests/test_cuda.cpp runs these
// bodies compiled by g++, so it checks the formulas, not the GPU's rounding.
// Versions (cuda/optim.cu): v1 one thread per weight, grid-stride.
// Tested by tests/test_cuda.cpp ([cuda_body] on the host against the CPU steps) and
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

void launch(int64_t n, const SgdBody& body);
void launch(int64_t n, const AdamBody& body);

}  // namespace normad::cuda
