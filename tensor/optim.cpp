// normad CPU optimiser steps: torch.optim's SGD and Adam updates as fused in-place tensor ops
// (nn/optim.cpp keeps the bookkeeping: which parameters, step counts, state buffers).
// Math: SGD d = g + wd w, v = first ? d : mu v + d, w -= lr v (lr d without momentum);
// Adam m = b1 m + (1 - b1) gk, v = b2 v + (1 - b2) gk^2, w -= lr / bc1 m / (sqrt(v) / sqrt(bc2) + eps).
// Tested by tests/test_nn.cpp (hand-computed steps), tests/test_parity.cpp (torch.optim) and
// tests/test_backend_ops.cpp (against the reference backend).
#include <cmath>

#include "tensor/cpu.h"

namespace normad::cpu {

void sgd_step(Tensor& w_t, const Tensor& g_t, Tensor& velocity, const SgdParams& p) {
  float* w = w_t.data();
  const float* g = g_t.data();
  float* v = p.momentum != 0.f ? velocity.data() : nullptr;
  for (int64_t k = 0; k < w_t.numel(); ++k) {
    float d = g[k] + p.weight_decay * w[k];  // L2 penalty added to the gradient
    if (v) {
      // torch.optim.SGD: the first step sets the buffer to the gradient itself.
      v[k] = p.first ? d : p.momentum * v[k] + d;
      d = v[k];
    }
    w[k] -= p.lr * d;
  }
}

void adam_step(Tensor& w_t, const Tensor& g_t, Tensor& m_t, Tensor& v_t, const AdamParams& p) {
  // torch keeps (1 - beta) as the Python double, rounded to float only in the update.
  const float one_m_b1 = static_cast<float>(1.0 - double(p.beta1));
  const float one_m_b2 = static_cast<float>(1.0 - double(p.beta2));
  const double bc1 = 1.0 - std::pow(double(p.beta1), double(p.step));
  const double bc2 = 1.0 - std::pow(double(p.beta2), double(p.step));
  float* w = w_t.data();
  const float* g = g_t.data();
  float* m = m_t.data();
  float* v = v_t.data();
  for (int64_t k = 0; k < w_t.numel(); ++k) {
    const float gk = g[k] + p.weight_decay * w[k];  // L2 penalty added to the gradient
    m[k] = p.beta1 * m[k] + one_m_b1 * gk;
    v[k] = p.beta2 * v[k] + one_m_b2 * gk * gk;
    // torch: denom = sqrt(v) / sqrt(bc2) + eps; step = lr / bc1.
    const double denom = std::sqrt(double(v[k])) / std::sqrt(bc2) + p.eps;
    w[k] = static_cast<float>(w[k] - p.lr / bc1 * m[k] / denom);
  }
}

// One adam_step per slot, in order: the same float operations as stepping each parameter alone.
void adam_step_multi(const std::vector<AdamSlot>& slots, const AdamParams& p) { adam_step_each(adam_step, slots, p); }

}  // namespace normad::cpu
