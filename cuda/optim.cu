// normad CUDA optimiser steps: the launchers of cuda/optim.cuh (bodies and math there) and the
// fused Adam entry of cuda/optim.h.
// Versions: v1 one thread per weight, grid-stride, one launch per parameter tensor (sgd_step,
// adam_step); adam_step_multi: one launch over all parameters, each thread finding its tensor by
// binary search over prefix offsets (log2(tensors) probes of a table that stays in cache).
// Tested by tests/test_cuda.cpp and tests/test_cuda_optim.cpp ([cuda_body] on the host) and
// tests/test_backend_ops.cpp on a GPU.
#include "cuda/optim.h"

#include <cmath>

#include "cuda/check.h"
#include "cuda/device.h"
#include "tensor/tensor.h"

namespace normad::cuda {

void launch(int64_t n, const SgdBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const AdamBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const AdamMultiBody& body) { launch_for_each(n, body); }

AdamBody adam_body(float* w, float* m, float* v, const float* g, const AdamParams& p) {
  // nn/optim.cpp's constants: 1 - beta as a double rounded to float, bias corrections in double.
  const double bc1 = 1.0 - std::pow(double(p.beta1), double(p.step));
  const double bc2 = 1.0 - std::pow(double(p.beta2), double(p.step));
  return AdamBody{w, m, v, g, p.beta1, p.beta2, p.eps, p.weight_decay,
                  static_cast<float>(1.0 - double(p.beta1)), static_cast<float>(1.0 - double(p.beta2)),
                  p.lr / bc1, std::sqrt(bc2)};
}

void adam_step_multi(const std::vector<AdamSlot>& slots, const AdamParams& p) {
  // 1) on the host: one descriptor per tensor with its own step constants, and the prefix offsets
  const int count = static_cast<int>(slots.size());
  std::vector<AdamTensor> tensors(count);
  std::vector<int64_t> offsets(count + 1, 0);
  for (int t = 0; t < count; ++t) {
    const AdamSlot& s = slots[t];
    AdamParams q = p;
    q.step = s.step;
    const AdamBody b = adam_body(s.w->device_data(), s.m->device_data(), s.v->device_data(),
                                 s.g->device_data(), q);
    tensors[t] = AdamTensor{b.w, b.m, b.v, b.g, s.w->numel(), b.step, b.sqrt_bc2};
    offsets[t + 1] = offsets[t] + s.w->numel();
  }
  const int64_t total = offsets[count];
  if (total == 0) return;
  // 2) both tables in one scratch block: descriptors first (8-byte aligned), then the offsets;
  // the copy is ordered before the launch on stream(), and pageable host memory is staged by the
  // time cudaMemcpyAsync returns, so the host vectors may go
  const size_t desc_bytes = sizeof(AdamTensor) * count, off_bytes = sizeof(int64_t) * (count + 1);
  Scratch buf(desc_bytes + off_bytes);
  char* base = static_cast<char*>(buf.get());
  NORMAD_CUDA_CHECK(cudaMemcpyAsync(base, tensors.data(), desc_bytes, cudaMemcpyHostToDevice, stream()));
  NORMAD_CUDA_CHECK(cudaMemcpyAsync(base + desc_bytes, offsets.data(), off_bytes, cudaMemcpyHostToDevice, stream()));
  // 3) one launch over every weight of every parameter
  AdamMultiBody body{adam_body(nullptr, nullptr, nullptr, nullptr, p), reinterpret_cast<const AdamTensor*>(base),
                     reinterpret_cast<const int64_t*>(base + desc_bytes), count};
  launch(total, body);
}

}  // namespace normad::cuda
