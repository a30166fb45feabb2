// normad CUDA distance and normalisation entries of the backend table (tensor/backend.h), with a
// version knob per family so GPU tests and benchmarks can run every version (cuda/distance.cuh
// lists them with their ideas).
// Math: as tensor/ops.h: pairwise_sqdist a [M, D], b [N, D] -> [M, N] squared Euclidean distances
// (clamped at 0, NaN propagates), its backward, l2_normalize by rows and its backward.
// Tested by tests/test_cuda_distance.cpp ([cuda_body] on the host; [cuda] every version on a GPU)
// and tests/test_backend_ops.cpp on a GPU.
//   pairwise_sqdist(a [1000, 64], b [700, 64]) -> [1000, 700]
#pragma once

#include "tensor/tensor.h"

namespace normad::cuda {

// ---- table entries (arguments validated by tensor/ops.cpp, tensors on the GPU) ----
Tensor pairwise_sqdist(const Tensor& a,   // [M, D]
                       const Tensor& b);  // [N, D] -> [M, N]
void pairwise_sqdist_backward(const Tensor& dout,  // [M, N]
                              const Tensor& a,     // [M, D]
                              const Tensor& b,     // [N, D]
                              const Tensor& dist,  // [M, N], the forward's output
                              Tensor* da,          // [M, D] when not null
                              Tensor* db);         // [N, D] when not null
Tensor l2_normalize(const Tensor& x,  // [M, D] -> [M, D]
                    float eps);       // floor of the row norm
Tensor l2_normalize_backward(const Tensor& dout,  // [M, D]
                             const Tensor& x,     // [M, D]
                             const Tensor& y,     // [M, D], l2_normalize(x, eps)
                             float eps);

// ---- version knobs: 0 = auto (the default pick), 1..count = that version; process-wide ----
void set_pairwise_sqdist_version(int v);
int pairwise_sqdist_version_count();           // 3: direct, tiled, GEMM form
void set_pairwise_sqdist_backward_version(int v);
int pairwise_sqdist_backward_version_count();  // 2: direct, cuBLAS
void set_l2_normalize_version(int v);          // forward and backward
int l2_normalize_version_count();              // 2: thread per row, warp per row

}  // namespace normad::cuda
