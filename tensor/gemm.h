// normad's GEMM on raw row-major buffers (Eigen kernels, oneTBB over fixed blocks), shared by
// matmul, bmm and conv2d.
// Math: C[M, N] = op(A) op(B) (+ C when accumulate), op = identity or transpose; A is stored
// [M, K] or [K, M] (trans_a), B [K, N] or [N, K] (trans_b).
// Determinism: large products are split into fixed 64-row (or 64-column) blocks that depend only
// on the shapes, each block one Eigen call, so the result is bit-identical for any thread count.
// Tested by tests/test_ops.cpp (plain triple loop, 1 vs 2 threads) and tests/test_conv.cpp.
#pragma once

#include <cstdint>

namespace normad::cpu {

void gemm(float* c, const float* a, const float* b, int64_t M, int64_t N, int64_t K, bool trans_a,
          bool trans_b, bool accumulate = false);

}  // namespace normad::cpu
