// normad CUDA matrix products through cuBLAS (the yardstick the style guide names; no hand-written
// GEMM yet). Row-major normad matrices are column-major transposes to cuBLAS, so C = op(A) op(B)
// is computed as C^T = op(B)^T op(A)^T: the operands swap places, their flags stay.
// Math: C[M, N] = op(A)[M, K] op(B)[K, N]; bmm per batch entry, a batch of 1 broadcast (stride 0).
// Tested by tests/test_cuda.cpp ([cuda], a small product against the CPU) and
// tests/test_backend_ops.cpp on a GPU.
#pragma once

#include "tensor/tensor.h"

namespace normad::cuda {

// a [M, K] (or [K, M] with trans_a) x b [K, N] (or [N, K]) -> [M, N] on the GPU.
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b);
// a [Ba, ., .] x b [Bb, ., .] -> [max(Ba, Bb), M, N]; Ba or Bb may be 1.
Tensor bmm(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b);

}  // namespace normad::cuda
