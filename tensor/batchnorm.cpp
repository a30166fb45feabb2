// normad batch normalisation: training (batch statistics, optionally per row group), evaluation
// (running statistics) and the training-mode backward (see tensor/ops.h).
// Math: per group g and channel c over its M = Q*H*W values: mu = mean(x), var = mean((x - mu)^2)
// (biased), xhat = (x - mu) / sqrt(var + eps), y = gamma xhat + beta;
// dx = invstd / M * (M dy - sum(dy) - xhat sum(dy xhat)) with dy = gamma dout.
// Tested by tests/test_batchnorm.cpp (grouped = per-group loop, finite differences) and
// tests/test_parity.cpp (PyTorch F.batch_norm).
//
// Shapes: x [N, C] or [N, C, H, W]; S = H*W (1 for [N, C]); G groups of Q = N / G rows.
#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

#include "tensor/cpu.h"
#include "tensor/parallel.h"

namespace normad::cpu {

namespace {

struct BnShape {
  int64_t N, C, S;
};

// x [N, C] or [N, C, H, W], validated by the dispatch (tensor/ops.cpp).
BnShape bn_shape(const Tensor& x) {
  BnShape s{x.size(0), x.size(1), x.dim() == 4 ? x.size(2) * x.size(3) : 1};
  return s;
}

constexpr int64_t kChanBlock = 64;  // channels per task when S == 1 (rows are contiguous in c)

// out[p][g * C + c] = sum over the group's rows n and positions k of f(i, g * C + c)[p], i the flat
// index of x[n, c, k], for P sums from one pass over the data (f returns std::array<double, P>).
// Each (g, c) is summed by one task in a fixed order (deterministic), each of the P sums in the
// same order whatever P. [N, C] inputs walk rows (contiguous channels); [N, C, H, W] inputs walk
// (n, c) planes.
template <size_t P, class F>
std::array<std::vector<double>, P> group_channel_sums(const BnShape& s, int64_t G, F f) {
  const int64_t C = s.C, S = s.S, Q = s.N / G;
  std::array<std::vector<double>, P> out;
  for (auto& o : out) o.assign(G * C, 0.0);
  if (S == 1) {
    const int64_t blocks = (C + kChanBlock - 1) / kChanBlock;
    parallel_for(G * blocks, 1, [&](int64_t b, int64_t e) {
      double acc[P][kChanBlock];
      for (int64_t t = b; t < e; ++t) {
        const int64_t g = t / blocks, c0 = (t % blocks) * kChanBlock;
        const int64_t c1 = std::min(C, c0 + kChanBlock);
        for (size_t p = 0; p < P; ++p) std::fill(acc[p], acc[p] + kChanBlock, 0.0);
        for (int64_t n = g * Q; n < (g + 1) * Q; ++n)
          for (int64_t c = c0; c < c1; ++c) {
            const std::array<double, P> v = f(n * C + c, g * C + c);
            for (size_t p = 0; p < P; ++p) acc[p][c - c0] += v[p];
          }
        for (size_t p = 0; p < P; ++p)
          for (int64_t c = c0; c < c1; ++c) out[p][g * C + c] = acc[p][c - c0];
      }
    });
  } else {
    parallel_for(G * C, 1, [&](int64_t b, int64_t e) {
      for (int64_t gc = b; gc < e; ++gc) {
        const int64_t g = gc / C, c = gc % C;
        // 8 independent lanes per sum break the add dependency chain and let the compiler
        // vectorise, while the summation order stays fixed.
        double lane[P][8] = {};
        for (int64_t n = g * Q; n < (g + 1) * Q; ++n) {
          const int64_t i0 = (n * C + c) * S;
          int64_t k = 0;
          for (; k + 8 <= S; k += 8)
            for (int j = 0; j < 8; ++j) {
              const std::array<double, P> v = f(i0 + k + j, gc);
              for (size_t p = 0; p < P; ++p) lane[p][j] += v[p];
            }
          for (; k < S; ++k) {
            const std::array<double, P> v = f(i0 + k, gc);
            for (size_t p = 0; p < P; ++p) lane[p][k % 8] += v[p];
          }
        }
        for (size_t p = 0; p < P; ++p) {
          const double* l = lane[p];
          out[p][gc] = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
        }
      }
    });
  }
  return out;
}

// out[i] = a[gc] * u[i] + b[gc] * v[i] + c[gc] for every element, gc its (group, channel);
// v may be null. This one affine form covers normalisation (u = x) and the backward (u = dout,
// v = x).
void group_channel_affine(float* out, const BnShape& s, int64_t G, const float* u,
                          const float* v, const std::vector<float>& a,
                          const std::vector<float>& b, const std::vector<float>& c) {
  const int64_t C = s.C, S = s.S, Q = s.N / G;
  parallel_for(s.N, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, C * S)), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const int64_t base = (n / Q) * C;
      if (S == 1) {  // [N, C]: one contiguous row, vectorised over channels
        const float *A = &a[base], *B = &b[base], *K = &c[base];
        const float* un = u + n * C;
        float* on = out + n * C;
        if (v) {
          const float* vn = v + n * C;
          for (int64_t ch = 0; ch < C; ++ch) on[ch] = A[ch] * un[ch] + B[ch] * vn[ch] + K[ch];
        } else {
          for (int64_t ch = 0; ch < C; ++ch) on[ch] = A[ch] * un[ch] + K[ch];
        }
        continue;
      }
      for (int64_t ch = 0; ch < C; ++ch) {
        const float A = a[base + ch], B = b[base + ch], K = c[base + ch];
        const int64_t i0 = (n * C + ch) * S;
        if (v) {
          for (int64_t k = 0; k < S; ++k) out[i0 + k] = A * u[i0 + k] + B * v[i0 + k] + K;
        } else {
          for (int64_t k = 0; k < S; ++k) out[i0 + k] = A * u[i0 + k] + K;
        }
      }
    }
  });
}

}  // namespace

Tensor batch_norm_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                        int64_t groups, BatchNormSaved* saved, Tensor* running_mean,
                        Tensor* running_var, float momentum) {
  const BnShape s = bn_shape(x);
  const int64_t C = s.C;
  const int64_t G = groups, M = s.N / G * s.S;
  const float* px = x.data();
  // Statistics per (g, c) from one pass in double over d = x - k, k the (g, c)'s first value:
  // mu = k + sum(d) / M, var = (sum(d^2) - sum(d)^2 / M) / M. The shift keeps the subtraction from
  // cancelling when |mu| >> std: the relative error of var is about double's 1e-16 times
  // (mu - k)^2 / var, and for a value k of the data (mu - k)^2 / var <= M - 1 (Samuelson), so at
  // most ~1e-10 for a million values. Two passes (mean, then squared deviations) would read x once
  // more for no accuracy a float output could show. An infinite k would make every d NaN; 0 then
  // keeps the mean infinite, as the sum of the values is.
  std::vector<double> shift_k(G * C);
  for (int64_t gc = 0; gc < G * C; ++gc) {
    shift_k[gc] = px[((gc / C) * (s.N / G) * C + gc % C) * s.S];  // row g Q, channel c, position 0
    if (std::isinf(shift_k[gc])) shift_k[gc] = 0.0;
  }
  auto [sum_d, sum_d2] = group_channel_sums<2>(s, G, [&](int64_t i, int64_t gc) {
    const double d = px[i] - shift_k[gc];
    return std::array<double, 2>{d, d * d};
  });
  std::vector<double> mu(G * C), var(G * C);
  for (int64_t gc = 0; gc < G * C; ++gc) {
    mu[gc] = shift_k[gc] + sum_d[gc] / M;
    // biased variance normalises; clipped at 0 against rounding (a NaN stays NaN)
    const double v = (sum_d2[gc] - sum_d[gc] * sum_d[gc] / M) / M;
    var[gc] = v < 0 ? 0.0 : v;
  }
  Tensor mean({G, C}), invstd({G, C});
  std::vector<float> scale(G * C), zero(G * C, 0.f), shift(G * C);
  for (int64_t gc = 0; gc < G * C; ++gc) {
    const int64_t c = gc % C;
    mean.data()[gc] = static_cast<float>(mu[gc]);
    invstd.data()[gc] = static_cast<float>(1.0 / std::sqrt(var[gc] + eps));
    // y = (x - mu) invstd gamma + beta = x scale + shift
    scale[gc] = invstd.data()[gc] * (gamma.defined() ? gamma.data()[c] : 1.f);
    shift[gc] = (beta.defined() ? beta.data()[c] : 0.f) - mean.data()[gc] * scale[gc];
  }
  Tensor y = Tensor::empty(x.shape());
  group_channel_affine(y.data(), s, G, px, nullptr, scale, zero, shift);
  // Running statistics (PyTorch: unbiased variance): one momentum update per group, in group
  // order, exactly as a per-task loop of G forward passes would leave them (fmnist_zs.md §4).
  if (running_mean || running_var) {
    const double unbias = M > 1 ? double(M) / (M - 1) : 1.0;
    for (int64_t g = 0; g < G; ++g)
      for (int64_t c = 0; c < C; ++c) {
        if (running_mean) {
          float& r = running_mean->data()[c];
          r = static_cast<float>((1 - momentum) * r + momentum * mu[g * C + c]);
        }
        if (running_var) {
          float& r = running_var->data()[c];
          r = static_cast<float>((1 - momentum) * r + momentum * var[g * C + c] * unbias);
        }
      }
  }
  if (saved) *saved = BatchNormSaved{mean, invstd};
  return y;
}

Tensor batch_norm_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                       const Tensor& running_mean, const Tensor& running_var, float eps) {
  const BnShape s = bn_shape(x);
  const int64_t C = s.C;
  std::vector<float> scale(C), zero(C, 0.f), shift(C);
  for (int64_t c = 0; c < C; ++c) {
    const float inv = 1.f / std::sqrt(running_var.data()[c] + eps);
    scale[c] = inv * (gamma.defined() ? gamma.data()[c] : 1.f);
    shift[c] = (beta.defined() ? beta.data()[c] : 0.f) - running_mean.data()[c] * scale[c];
  }
  Tensor y = Tensor::empty(x.shape());
  group_channel_affine(y.data(), s, 1, x.data(), nullptr, scale, zero, shift);
  return y;
}

Tensor batch_norm_backward(const Tensor& dout, const Tensor& x, const Tensor& gamma,
                           const BatchNormSaved& saved, int64_t groups, Tensor* dgamma,
                           Tensor* dbeta) {
  const BnShape s = bn_shape(x);
  const int64_t C = s.C, G = groups, M = s.N / G * s.S;
  const float *px = x.data(), *pd = dout.data();
  const float *mean = saved.mean.data(), *inv = saved.invstd.data();
  // Per (g, c): sum(dout) and sum(dout * xhat), in double, from one pass over dout and x.
  auto [sdy, sdyx] = group_channel_sums<2>(s, G, [&](int64_t i, int64_t gc) {
    return std::array<double, 2>{double(pd[i]), double(pd[i]) * (px[i] - mean[gc]) * inv[gc]};
  });
  // dx = gamma invstd / M * (M dout - sum(dout) - xhat sum(dout xhat)), written as
  // dx = p dout + q x + r with p = gamma invstd, q = -p invstd sdyx / M, r = -p sdy / M - q mu.
  std::vector<float> p(G * C), q(G * C), r(G * C);
  for (int64_t gc = 0; gc < G * C; ++gc) {
    const double pg = (gamma.defined() ? gamma.data()[gc % C] : 1.f) * double(inv[gc]);
    const double qg = -pg * inv[gc] * sdyx[gc] / M;
    p[gc] = static_cast<float>(pg);
    q[gc] = static_cast<float>(qg);
    r[gc] = static_cast<float>(-pg * sdy[gc] / M - qg * mean[gc]);
  }
  Tensor dx = Tensor::empty(x.shape());
  group_channel_affine(dx.data(), s, G, pd, px, p, q, r);
  // Parameter gradients sum over the groups.
  if (dgamma || dbeta) {
    Tensor dg({C}), db({C});
    for (int64_t c = 0; c < C; ++c) {
      double sg = 0, sb = 0;
      for (int64_t g = 0; g < G; ++g) sg += sdyx[g * C + c], sb += sdy[g * C + c];
      dg.data()[c] = static_cast<float>(sg);
      db.data()[c] = static_cast<float>(sb);
    }
    if (dgamma) *dgamma = dg;
    if (dbeta) *dbeta = db;
  }
  return dx;
}

// One pass over the C channels. The shift's multiply-add may be contracted into one FMA by the
// compiler (GCC's default for C++), as it was when this loop lived in models/backbones.cpp.
void batch_norm_fold(const Tensor& gamma, const Tensor& beta, const Tensor& bias,
                     const Tensor& running_mean, const Tensor& running_var, float eps,
                     Tensor* scale, Tensor* shift) {
  const int64_t C = running_mean.numel();
  *scale = Tensor::empty({C});
  *shift = Tensor::empty({C});
  const float* rm = running_mean.data();
  const float* rv = running_var.data();
  for (int64_t c = 0; c < C; ++c) {
    const float g = gamma.defined() ? gamma.data()[c] : 1.f;
    const float b = beta.defined() ? beta.data()[c] : 0.f;
    const float conv_bias = bias.defined() ? bias.data()[c] : 0.f;
    const float s = g / std::sqrt(rv[c] + eps);
    scale->data()[c] = s;
    shift->data()[c] = b + (conv_bias - rm[c]) * s;
  }
}

}  // namespace normad::cpu
