// normad matrix products through Eigen's GEMM (see tensor/ops.h).
// Math: C[M, N] = op(A) op(B), op = identity or transpose; bmm does that per batch entry.
// Eigen runs single-threaded (EIGEN_DONT_PARALLELIZE); gemm() (tensor/gemm.h) splits the output
// into fixed blocks for oneTBB, so every element is computed identically for any thread count.
// Tested by tests/test_ops.cpp (against a plain triple loop) and tests/test_parity.cpp (Linear).
#include <algorithm>

#include <Eigen/Core>

#include "tensor/gemm.h"
#include "tensor/cpu.h"
#include "tensor/parallel.h"

namespace normad::cpu {

namespace {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using CMap = Eigen::Map<const RowMat>;
using OStride = Eigen::OuterStride<>;
using CMapS = Eigen::Map<const RowMat, 0, OStride>;
using MapS = Eigen::Map<RowMat, 0, OStride>;

// C = op(A) op(B) (or C += ...) for Eigen maps A, B stored untransposed-or-transposed as flagged.
template <class CM, class AM, class BM>
void product(CM&& C, const AM& A, const BM& B, bool ta, bool tb, bool acc) {
  if (acc) {
    if (!ta && !tb) C.noalias() += A * B;
    else if (ta && !tb) C.noalias() += A.transpose() * B;
    else if (!ta && tb) C.noalias() += A * B.transpose();
    else C.noalias() += A.transpose() * B.transpose();
    return;
  }
  if (!ta && !tb) C.noalias() = A * B;
  else if (ta && !tb) C.noalias() = A.transpose() * B;
  else if (!ta && tb) C.noalias() = A * B.transpose();
  else C.noalias() = A.transpose() * B.transpose();
}

}  // namespace

void gemm(float* c, const float* a, const float* b, int64_t M, int64_t N, int64_t K, bool ta,
          bool tb, bool acc) {
  const int64_t lda = ta ? M : K, ldb = tb ? K : N;
  // Small products: one Eigen call (a shape-only rule, so still thread-count independent).
  if (M * N * K < (int64_t(1) << 18)) {
    MapS C(c, M, N, OStride(N));
    product(C, CMapS(a, ta ? K : M, ta ? M : K, OStride(lda)),
            CMapS(b, tb ? N : K, tb ? K : N, OStride(ldb)), ta, tb, acc);
    return;
  }
  // Split the longer output side into blocks sized from the shape alone (about 8 of them, 64 to
  // 512 long, a multiple of 16); each block is one Eigen call whatever the thread count, so every
  // element sees the same kernel blocking. Eigen packs the other operand once per block, so blocks
  // much smaller than that re-pack it too often (64-row blocks cost 1.5x on 4096 x 4096 x 512).
  const bool by_rows = M >= N || M >= 256;
  const int64_t len = by_rows ? M : N;
  const int64_t kBlock = std::clamp<int64_t>((len / 8 + 15) / 16 * 16, 64, 512);
  const int64_t blocks = (len + kBlock - 1) / kBlock;
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t s = blk * kBlock, n = std::min(len, s + kBlock) - s;
      if (by_rows) {
        // Rows s..s+n of C use rows s..s+n of op(A) (columns of the stored [K, M] when ta).
        MapS C(c + s * N, n, N, OStride(N));
        CMapS B(b, tb ? N : K, tb ? K : N, OStride(ldb));
        if (ta) product(C, CMapS(a + s, K, n, OStride(M)), B, true, tb, acc);
        else product(C, CMapS(a + s * K, n, K, OStride(K)), B, false, tb, acc);
      } else {
        // Columns s..s+n of C use columns s..s+n of op(B) (rows of the stored [N, K] when tb).
        MapS C(c + s, M, n, OStride(N));
        CMapS A(a, ta ? K : M, ta ? M : K, OStride(lda));
        if (tb) product(C, A, CMapS(b + s * K, n, K, OStride(K)), ta, true, acc);
        else product(C, A, CMapS(b + s, K, n, OStride(N)), ta, false, acc);
      }
    }
  });
}

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  const int64_t M = trans_a ? a.size(1) : a.size(0), K = trans_a ? a.size(0) : a.size(1);
  const int64_t N = trans_b ? b.size(0) : b.size(1);  // shapes checked by tensor/ops.cpp
  // internal callers (pairwise distances) may pass empty rows or D = 0
  if (M * N == 0 || K == 0) return Tensor::zeros({M, N});
  Tensor c = Tensor::empty({M, N});  // the GEMM assigns every element
  gemm(c.data(), a.data(), b.data(), M, N, K, trans_a, trans_b);
  return c;
}

Tensor bmm(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  const int64_t Ba = a.size(0), Bb = b.size(0);
  const int64_t B = Ba == 1 ? Bb : Ba;  // a batch of 1 broadcasts (also against 0)
  const int64_t M = trans_a ? a.size(2) : a.size(1), K = trans_a ? a.size(1) : a.size(2);
  const int64_t N = trans_b ? b.size(1) : b.size(2);  // shapes checked, B M N K > 0 (tensor/ops.cpp)
  Tensor c = Tensor::empty({B, M, N});
  const int64_t sa = Ba == 1 ? 0 : M * K, sb = Bb == 1 ? 0 : K * N;
  parallel_for(B, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t i = b0; i < b1; ++i) {
      MapS C(c.data() + i * M * N, M, N, OStride(N));
      CMapS A(a.data() + i * sa, trans_a ? K : M, trans_a ? M : K, OStride(trans_a ? M : K));
      CMapS Bm(b.data() + i * sb, trans_b ? N : K, trans_b ? K : N, OStride(trans_b ? K : N));
      product(C, A, Bm, trans_a, trans_b, false);
    }
  });
  return c;
}

}  // namespace normad::cpu
