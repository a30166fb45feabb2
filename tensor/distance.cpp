// normad pairwise squared Euclidean distances and L2 row normalisation (see tensor/ops.h).
// Math: D_ij = |a_i|^2 + |b_j|^2 - 2 a_i.b_j (one GEMM), clamped at 0 against rounding;
// normalize: y_i = x_i / max(|x_i|, eps).
// Tested by tests/test_ops.cpp (against the direct sum of squares) and tests/test_parity.cpp.
#include <algorithm>
#include <cmath>

#include "tensor/cpu.h"
#include "tensor/parallel.h"

namespace normad::cpu {

namespace {
// Squared norm of each row of a [M, D], accumulated in double.
std::vector<double> row_sqnorms(const Tensor& a) {
  const int64_t M = a.size(0), D = a.size(1);
  std::vector<double> out(M);
  const float* pa = a.data();  // (data() per element checked the device each time)
  parallel_for(M, 256, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      double s = 0;
      for (int64_t k = 0; k < D; ++k) s += double(pa[i * D + k]) * pa[i * D + k];
      out[i] = s;
    }
  });
  return out;
}
}  // namespace

Tensor pairwise_sqdist(const Tensor& a, const Tensor& b) {
  Tensor d = cpu::matmul(a, b, false, true);  // a_i . b_j
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
  auto n = row_sqnorms(a);
  const int64_t M = a.size(0), D = a.size(1);
  Tensor y = Tensor::empty(a.shape());
  const float* pa = a.data();
  float* py = y.data();
  parallel_for(M, std::max<int64_t>(1, 16384 / std::max<int64_t>(D, 1)), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float inv = 1.f / std::max(static_cast<float>(std::sqrt(n[i])), eps);
      for (int64_t k = 0; k < D; ++k) py[i * D + k] = pa[i * D + k] * inv;
    }
  });
  return y;
}

// G = dout with 0 where the clamp at 0 was active (dist <= 0; NaN keeps its gradient), then
// da = 2 (rowsum(G) a - G b) and db = 2 (colsum(G) b - G^T a), each with one GEMM.
void pairwise_sqdist_backward(const Tensor& dout, const Tensor& a, const Tensor& b,
                              const Tensor& dist, Tensor* da, Tensor* db) {
  Tensor G = Tensor::empty(dout.shape());
  const float* g = dout.data();
  const float* dp = dist.data();
  float* gm = G.data();
  for (int64_t i = 0; i < G.numel(); ++i) gm[i] = dp[i] <= 0.f ? 0.f : g[i];
  if (da) {
    Tensor r = cpu::sum(G, {1}, true);  // [M, 1]
    *da = cpu::mul_scalar(cpu::sub(cpu::mul(r, a), cpu::matmul(G, b, false, false)), 2.f);
  }
  if (db) {
    Tensor c = cpu::sum(G, {0}, false).reshape({b.size(0), 1});  // [N, 1]
    *db = cpu::mul_scalar(cpu::sub(cpu::mul(c, b), cpu::matmul(G, a, true, false)), 2.f);
  }
}

// Per row: dx = (g - y (g.y)) / |x| with the norm and g.y in double; below eps the op is the
// linear map x / eps, so dx = g / eps.
Tensor l2_normalize_backward(const Tensor& dout, const Tensor& x, const Tensor& y, float eps) {
  const int64_t M = x.size(0), D = x.size(1);
  Tensor dx = Tensor::empty(x.shape());
  const float *px = x.data(), *py = y.data(), *pg = dout.data();
  float* pdx = dx.data();
  parallel_for(M, std::max<int64_t>(1, 16384 / std::max<int64_t>(D, 1)), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float* xi = px + i * D;
      const float* yi = py + i * D;
      const float* gi = pg + i * D;
      double n2 = 0, gy = 0;
      for (int64_t k = 0; k < D; ++k) n2 += double(xi[k]) * xi[k], gy += double(gi[k]) * yi[k];
      const double n = std::sqrt(n2);
      float* o = pdx + i * D;
      if (n > eps) {
        for (int64_t k = 0; k < D; ++k) o[k] = static_cast<float>((gi[k] - yi[k] * gy) / n);
      } else {
        for (int64_t k = 0; k < D; ++k) o[k] = gi[k] / eps;
      }
    }
  });
  return dx;
}

}  // namespace normad::cpu
