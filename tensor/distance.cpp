// normad pairwise squared Euclidean distances and L2 row normalisation (see tensor/ops.h).
// Math: D_ij = |a_i|^2 + |b_j|^2 - 2 a_i.b_j (one GEMM), clamped at 0 against rounding;
// normalize: y_i = x_i / max(|x_i|, eps).
// Tested by tests/test_ops.cpp (against the direct sum of squares) and tests/test_parity.cpp.
#include <algorithm>
#include <cmath>

#include "tensor/ops.h"
#include "tensor/parallel.h"

namespace normad {

namespace {
// Squared norm of each row of a [M, D], accumulated in double.
std::vector<double> row_sqnorms(const Tensor& a) {
  const int64_t M = a.size(0), D = a.size(1);
  std::vector<double> out(M);
  parallel_for(M, 256, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      double s = 0;
      for (int64_t k = 0; k < D; ++k) s += double(a.data()[i * D + k]) * a.data()[i * D + k];
      out[i] = s;
    }
  });
  return out;
}
}  // namespace

Tensor pairwise_sqdist(const Tensor& a, const Tensor& b) {
  check(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(1), "pairwise_sqdist",
        "expects [M, D] and [N, D], got " + shape_str(a.shape()) + " and " + shape_str(b.shape()));
  Tensor d = matmul(a, b, false, true);  // a_i . b_j
  auto na = row_sqnorms(a), nb = row_sqnorms(b);
  const int64_t M = a.size(0), N = b.size(0);
  parallel_for(M, std::max<int64_t>(1, 16384 / std::max<int64_t>(N, 1)), [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i)
      for (int64_t j = 0; j < N; ++j) {
        float& v = d.data()[i * N + j];
        const float sq = static_cast<float>(na[i] + nb[j] - 2.0 * v);
        v = sq < 0 ? 0.f : sq;  // rounding can make it slightly negative; NaN passes through
      }
  });
  return d;
}

Tensor l2_normalize(const Tensor& a, float eps) {
  check(a.dim() == 2, "l2_normalize", "expects [M, D], got " + shape_str(a.shape()));
  auto n = row_sqnorms(a);
  const int64_t M = a.size(0), D = a.size(1);
  Tensor y(a.shape());
  for (int64_t i = 0; i < M; ++i) {
    const float inv = 1.f / std::max(static_cast<float>(std::sqrt(n[i])), eps);
    for (int64_t k = 0; k < D; ++k) y.data()[i * D + k] = a.data()[i * D + k] * inv;
  }
  return y;
}

}  // namespace normad
