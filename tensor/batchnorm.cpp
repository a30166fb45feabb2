// normad batch normalisation: training (batch statistics, optionally per row group), evaluation
// (running statistics) and the training-mode backward (see tensor/ops.h); also training mode fused
// with a following (leaky) ReLU, forward and backward; the statistics alone
// (batch_norm_statistics) and the helpers conv2d_bn_relu_input (tensor/conv.cpp) normalises with.
// Math: per group g and channel c over its M = Q*H*W values: mu = mean(x), var = mean((x - mu)^2)
// (biased), xhat = (x - mu) / sqrt(var + eps), y = gamma xhat + beta;
// dx = invstd / M * (M dy - sum(dy) - xhat sum(dy xhat)) with dy = gamma dout; fused with the ReLU:
// y = relu_slope(z), dout replaced by dz = z > 0 ? dout : slope dout (z recomputed from x).
// Tested by tests/test_batchnorm.cpp (grouped = per-group loop, fused = composed bit for bit,
// finite differences), tests/test_conv.cpp (the statistics alone = batch_norm_train's, bit for bit), tests/test_backend_ops.cpp (vs the reference backend) and
// tests/test_parity.cpp (PyTorch F.batch_norm).
//
// Shapes: x [N, C] or [N, C, H, W]; S = H*W (1 for [N, C]); G groups of Q = N / G rows.
#include <algorithm>
#include <array>
#include <cmath>
#include <memory>
#include <utility>
#include <vector>

#include "tensor/aligned.h"
#include "tensor/cpu.h"
#include "tensor/parallel.h"
#include "tensor/plane_moments.h"
#include "tensor/select.h"

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

// lane[p][k % 8] += f(i0 + k, gc)[p] for the S values of one (n, c) plane: 8 independent lanes
// per sum break the add dependency chain and let the compiler vectorise, while the summation order
// stays fixed. lanes_total (tensor/plane_moments.h) adds a sum's 8 lanes in a fixed tree.
template <size_t P, class F>
inline void add_plane(double (&lane)[P][8], F& f, int64_t i0, int64_t gc, int64_t S) {
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

// The sums of group g's channels [c0, c1) of [N, C, H, W] planes, walked in memory order (each
// sample's planes of those channels one after another), each (g, c) summed with the same 8 lanes in
// the same order as add_plane's plane-by-plane walk.
template <size_t P, class F>
void plane_sums(const BnShape& s, int64_t G, int64_t g, int64_t c0, int64_t c1, F f,
                std::array<std::vector<double>, P>& out) {
  const int64_t C = s.C, S = s.S, Q = s.N / G;
  thread_local aligned_doubles lanes;  // [c1 - c0][P][8]
  lanes.assign((c1 - c0) * P * 8, 0.0);
  for (int64_t n = g * Q; n < (g + 1) * Q; ++n)
    for (int64_t c = c0; c < c1; ++c) {
      double lane[P][8];  // the channel's lanes in registers over its plane
      std::copy_n(lanes.data() + (c - c0) * P * 8, P * 8, &lane[0][0]);
      add_plane<P>(lane, f, (n * C + c) * S, g * C + c, S);
      std::copy_n(&lane[0][0], P * 8, lanes.data() + (c - c0) * P * 8);
    }
  for (int64_t c = c0; c < c1; ++c)
    for (size_t p = 0; p < P; ++p) out[p][g * C + c] = lanes_total(lanes.data() + ((c - c0) * P + p) * 8);
}

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
  } else if (S < 16) {
    // planes shorter than a cache line: a task a channel, its lanes in registers across the samples
    // (plane_sums's lanes through memory per plane cost more than the strided reads: [1000, 64, 2,
    // 2] 0.46 -> 0.86 ms walked in memory order)
    parallel_for(G * C, 1, [&](int64_t b, int64_t e) {
      for (int64_t gc = b; gc < e; ++gc) {
        const int64_t g = gc / C, c = gc % C;
        double lane[P][8] = {};
        for (int64_t n = g * Q; n < (g + 1) * Q; ++n) add_plane<P>(lane, f, (n * C + c) * S, gc, S);
        for (size_t p = 0; p < P; ++p) out[p][gc] = lanes_total(lane[p]);
      }
    });
  } else {
    // Tasks of at least a thread's share of the (g, c), each group's channels of the task walked in
    // memory order (plane_sums): one channel a task read 784-byte planes 50 KB apart, at a third of
    // the sequential rate (the Omniglot scoring's ungrouped batch norm + ReLU, one Zen 4 core:
    // [1000, 64, 14, 14] 9.8 -> 6.1 ms, [1000, 64, 4, 4] 1.29 -> 0.47). The same sums in the same
    // order as a task a channel: no value changes.
    parallel_for(G * C, std::max<int64_t>(1, thread_share(G * C)), [&](int64_t b, int64_t e) {
      for (int64_t gc = b; gc < e;) {
        const int64_t g = gc / C, c1 = std::min(e - g * C, C);
        plane_sums<P>(s, G, g, gc % C, c1, f, out);
        gc = g * C + c1;
      }
    });
  }
  return out;
}

// Large grouped inputs (ACR's per-task batch norm: 32 groups of 30 images, 1.5 MB per group and
// 48 MB in all for 64 channels on 14x14) go group by group instead: one task takes a group's
// statistics and then, while its rows are still in cache, the affine pass over them, so the input
// comes from memory once instead of twice. Whether a call does so depends on the shapes only; both
// ways give the same bits (the same sums in the same order, the same affine per element).
// [N, C] rows (S = 1) go group by group from 2 groups on (ACR-NTL's 4 groups of 10240 x 128: the
// backward's dout and x, 10 MB a group, then come back from the last-level cache, not memory).
bool group_by_group(const BnShape& s, int64_t G) { return s.S > 1 ? G >= 8 : G >= 2; }

// group_channel_sums for the one group g, every channel: [N, C, H, W] planes walked in memory
// order (plane_sums); [N, C] rows in order.
template <size_t P, class F>
void one_group_sums(const BnShape& s, int64_t G, int64_t g, F f, std::array<std::vector<double>, P>& out) {
  const int64_t C = s.C, S = s.S, Q = s.N / G;
  thread_local aligned_doubles lanes;  // [P][C] (rows of whole vectors)
  if (S == 1) {  // rows in order, each channel's sums as group_channel_sums's row walk adds them
    lanes.assign(P * C, 0.0);
    for (int64_t n = g * Q; n < (g + 1) * Q; ++n)
      for (int64_t c = 0; c < C; ++c) {
        const std::array<double, P> v = f(n * C + c, g * C + c);
        for (size_t p = 0; p < P; ++p) lanes[p * C + c] += v[p];
      }
    for (size_t p = 0; p < P; ++p) std::copy_n(lanes.data() + p * C, C, out[p].data() + g * C);
    return;
  }
  plane_sums<P>(s, G, g, 0, C, f, out);
}

// bn_affine (tensor/select.h), a x + k: the normalisation's affine map, one expression for the
// forward's z (affine_rows), the fused backward's recomputed z and conv2d_bn_relu_input's input,
// so all compile to the same operations (one FMA where the target has it) and give the same float.

// out[i] = act(a[gc] * u(i, gc) + b[gc] * v[i] + c[gc]) for the rows [n0, n1), gc = (n / Q) * C +
// channel; v may be null. This one affine form covers normalisation (u = x, act the optional ReLU)
// and the backward (u = dout or the ReLU-masked dout, v = x).
template <class U, class Act>
void affine_rows(float* out, const BnShape& s, int64_t Q, int64_t n0, int64_t n1, U u,
                 const float* v, const float* a, const float* b, const float* c, Act act) {
  const int64_t C = s.C, S = s.S;
  for (int64_t n = n0; n < n1; ++n) {
    const int64_t base = (n / Q) * C;
    if (S == 1) {  // [N, C]: one contiguous row, vectorised over channels
      const float *A = a + base, *B = b + base, *K = c + base;
      float* on = out + n * C;
      if (v) {
        const float* vn = v + n * C;
        for (int64_t ch = 0; ch < C; ++ch)
          on[ch] = act(A[ch] * u(n * C + ch, base + ch) + B[ch] * vn[ch] + K[ch]);
      } else {
        for (int64_t ch = 0; ch < C; ++ch)
          on[ch] = act(bn_affine(A[ch], u(n * C + ch, base + ch), K[ch]));
      }
      continue;
    }
    for (int64_t ch = 0; ch < C; ++ch) {
      const float A = a[base + ch], B = b[base + ch], K = c[base + ch];
      const int64_t i0 = (n * C + ch) * S, gc = base + ch;
      if (v) {
        for (int64_t k = 0; k < S; ++k) out[i0 + k] = act(A * u(i0 + k, gc) + B * v[i0 + k] + K);
      } else {
        for (int64_t k = 0; k < S; ++k) out[i0 + k] = act(bn_affine(A, u(i0 + k, gc), K));
      }
    }
  }
}

// Rows per task of the affine pass: about 8192 values.
int64_t affine_row_grain(const BnShape& s) { return std::max<int64_t>(1, 8192 / std::max<int64_t>(1, s.C * s.S)); }

// affine_rows over every row, G groups of rows, in parallel over rows (memory order: a walk of one
// channel's planes at a time would write short runs far apart; measured slower in an ACR step).
template <class U, class Act>
void group_channel_affine(float* out, const BnShape& s, int64_t G, U u, const float* v,
                          const float* a, const float* b, const float* c, Act act) {
  parallel_for(s.N, affine_row_grain(s), [&](int64_t n0, int64_t n1) {
    affine_rows(out, s, s.N / G, n0, n1, u, v, a, b, c, act);
  });
}

// The two passes of a training-mode forward or backward: per-(g, c) sums of f into `sums` (G C
// each), finish(gc0, gc1) turning a range of them into coefficients, then rows(n0, n1) writing the
// output rows -- group by group where group_by_group says so, else each pass over all groups.
template <class F, class Finish, class Rows>
void sums_then_rows(const BnShape& s, int64_t G, F f, std::array<std::vector<double>, 2>& sums,
                    Finish finish, Rows rows) {
  const int64_t C = s.C, Q = s.N / G;
  if (group_by_group(s, G)) {
    for (auto& v : sums) v.resize(G * C);
    parallel_for(G, 1, [&](int64_t g0, int64_t g1) {
      for (int64_t g = g0; g < g1; ++g) {
        one_group_sums<2>(s, G, g, f, sums);
        finish(g * C, (g + 1) * C);
        rows(g * Q, (g + 1) * Q);  // the group's rows normalised while in cache
      }
    });
    return;
  }
  sums = group_channel_sums<2>(s, G, f);
  finish(0, G * C);
  parallel_for(s.N, affine_row_grain(s), rows);
}


// The activations after the normalisation, written as the elementwise ops write them
// (tensor/elementwise.cpp), so that the fused op is bit for bit the composed one.
struct NoAct {
  float operator()(float z) const { return z; }
};
struct Relu {  // NaN passes, as in PyTorch
  float operator()(float z) const { return relu_of(z); }
};
struct LeakyRelu {
  float slope;
  float operator()(float z) const { return select(z > 0, z, slope * z); }
};

// The per-(group, channel) affine of the normalisation, y = x scale + shift, from the statistics
// the forward saves: scale = invstd gamma, shift = beta - mean scale, [G, C] (entries gc0 .. gc1 - 1
// of them). The forward and the
// fused backward both take it from here, so the backward recomputes the forward's z exactly.
void bn_scale_shift(const float* mean, const float* invstd, const Tensor& gamma,
                    const Tensor& beta, int64_t gc0, int64_t gc1, int64_t C, float* scale, float* shift) {
  for (int64_t gc = gc0; gc < gc1; ++gc) {
    const int64_t c = gc % C;
    scale[gc] = invstd[gc] * (gamma.defined() ? gamma.data()[c] : 1.f);
    shift[gc] = (beta.defined() ? beta.data()[c] : 0.f) - mean[gc] * scale[gc];
  }
}

// Training-mode batch norm with the activation `act` applied to its output (NoAct: plain BN).
// normalise false: the statistics (and running statistics) only, y undefined
// (batch_norm_statistics).
// given: x's plane moments (plane_moments of every (n, c) plane, [N, C]) when its producer computed
// them (conv2d with moments, tensor/conv.cpp); null: computed here. Only for [N, C, H, W].
template <class Act>
Tensor batch_norm_train_act(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                            int64_t groups, BatchNormSaved* saved, Tensor* running_mean,
                            Tensor* running_var, float momentum, Act act, bool normalise = true,
                            const PlaneMoments* given = nullptr) {
  const BnShape s = bn_shape(x);
  const int64_t C = s.C;
  const int64_t G = groups, M = s.N / G * s.S;
  const float* px = x.data();
  // Statistics per (g, c) in double over d = x - k, k the (g, c)'s first value ([N, C] rows in one
  // pass; [N, C, H, W] planes by plane moments, below):
  // mu = k + sum(d) / M, var = (sum(d^2) - sum(d)^2 / M) / M. The shift keeps the subtraction from
  // cancelling when |mu| >> std: the relative error of var is about double's 1e-16 times
  // (mu - k)^2 / var, and for a value k of the data (mu - k)^2 / var <= M - 1 (Samuelson), so at
  // most ~1e-10 for a million values. Two passes (mean, then squared deviations) would read x once
  // more for no accuracy a float output could show. An infinite k would make every d NaN; 0 then
  // keeps the mean infinite, as the sum of the values is.
  // k is a value of the data, a float: kept as one, the compiler widens 8 values at a time for
  // the same double subtraction d = double(x) - double(k).
  // [N, C, H, W] planes: each plane's sums about its own first value first (plane_moments, in
  // parallel over planes in memory order), then per (g, c) moved to k and added in sample order
  // (add_moments_about; tensor/plane_moments.h), so a convolution can hand over the per-plane part
  // computed as it wrote its output, and the statistics are the same bits either way. (Until round
  // 15 the sums ran over each channel's planes in one chain; that split the work by channel: on two
  // cores each read half of every sample, much of it just written by the other core.)
  const int64_t Q = s.N / G;
  std::vector<float> shift_k(G * C);
  for (int64_t gc = 0; gc < G * C; ++gc) {
    shift_k[gc] = px[((gc / C) * Q * C + gc % C) * s.S];  // row g Q, channel c, position 0
    if (std::isinf(shift_k[gc])) shift_k[gc] = 0.f;
  }
  auto deviations = [&](int64_t i, int64_t gc) {
    const double d = double(px[i]) - double(shift_k[gc]);
    return std::array<double, 2>{d, d * d};
  };
  std::array<std::vector<double>, 2> sums;  // sum(d), sum(d^2) per (g, c)
  std::vector<double> mu(G * C), var(G * C);
  Tensor mean({G, C}), invstd({G, C});
  std::vector<float> scale(G * C), shift(G * C), zero(G * C, 0.f);
  // the statistics of (g, c) in gc0 .. gc1 - 1 from their sums, then y's scale and shift
  auto statistics = [&](int64_t gc0, int64_t gc1) {
    for (int64_t gc = gc0; gc < gc1; ++gc) {
      mu[gc] = double(shift_k[gc]) + sums[0][gc] / M;
      // biased variance normalises; clipped at 0 against rounding (a NaN stays NaN)
      const double v = (sums[1][gc] - sums[0][gc] * sums[0][gc] / M) / M;
      var[gc] = v < 0 ? 0.0 : v;
      mean.data()[gc] = static_cast<float>(mu[gc]);
      invstd.data()[gc] = static_cast<float>(1.0 / std::sqrt(var[gc] + eps));
    }
    bn_scale_shift(mean.data(), invstd.data(), gamma, beta, gc0, gc1, C, scale.data(), shift.data());
  };
  // y = act((x - mu) invstd gamma + beta) = act(x scale + shift), one pass over x
  Tensor y = normalise ? Tensor::empty(x.shape()) : Tensor();
  auto x_at = [px](int64_t i, int64_t) { return px[i]; };
  auto rows = [&](int64_t n0, int64_t n1) {
    if (normalise)
      affine_rows(y.data(), s, Q, n0, n1, x_at, nullptr, scale.data(), zero.data(), shift.data(), act);
  };
  if (s.S == 1) {
    sums_then_rows(s, G, deviations, sums, statistics, rows);
  } else {
    // (left uninitialised: each entry is written before it is read)
    std::unique_ptr<PlaneMoments[]> own(given ? nullptr : new PlaneMoments[s.N * C]);
    const PlaneMoments* moments = given ? given : own.get();
    auto plane_range = [&](int64_t n0, int64_t n1) {  // rows [n0, n1)'s planes
      if (!given)
        for (int64_t i = n0 * C; i < n1 * C; ++i) own[i] = plane_moments(px + i * s.S, s.S);
    };
    for (auto& v : sums) v.assign(G * C, 0.0);
    // group g's sums about k of channels [c0, c1), sample by sample, then their statistics
    auto combine = [&](int64_t g, int64_t c0, int64_t c1) {
      double* sum = sums[0].data() + g * C;
      double* sumsq = sums[1].data() + g * C;
      for (int64_t n = g * Q; n < (g + 1) * Q; ++n)
        for (int64_t c = c0; c < c1; ++c)
          add_moments_about(sum[c], sumsq[c], moments[n * C + c], shift_k[g * C + c], s.S);
      statistics(g * C + c0, g * C + c1);
    };
    if (group_by_group(s, G)) {
      parallel_for(G, 1, [&](int64_t g0, int64_t g1) {
        for (int64_t g = g0; g < g1; ++g) {
          plane_range(g * Q, (g + 1) * Q);
          combine(g, 0, C);
          rows(g * Q, (g + 1) * Q);  // the group's planes normalised while in cache
        }
      });
    } else {
      if (!given) parallel_for(s.N, std::max<int64_t>(1, 16384 / (C * s.S)), plane_range);
      // channels in blocks of 16 in parallel (each (g, c) still summed in sample order by one task)
      const int64_t blocks = (C + 15) / 16;
      parallel_for(G * blocks, 1, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b)
          combine(b / blocks, b % blocks * 16, std::min(C, b % blocks * 16 + 16));
      });
      if (normalise) parallel_for(s.N, affine_row_grain(s), rows);
    }
  }
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

// Training-mode backward of dz = mask(dout): dx, dgamma, dbeta. `dz(i, gc)` gives dz at flat
// index i of (group, channel) gc: dout itself, or dout masked by the recomputed ReLU input.
template <class Dz>
Tensor batch_norm_backward_of(const BnShape& s, const Tensor& x, const Tensor& gamma,
                              const BatchNormSaved& saved, int64_t groups, Tensor* dgamma,
                              Tensor* dbeta, Dz dz) {
  const int64_t C = s.C, G = groups, M = s.N / G * s.S;
  const float* px = x.data();
  const float *mean = saved.mean.data(), *inv = saved.invstd.data();
  // Per (g, c): sum(dz) and sum(dz * xhat), in double, from one pass over dz and x.
  auto terms = [&](int64_t i, int64_t gc) {
    const float d = dz(i, gc);
    return std::array<double, 2>{double(d), double(d) * (px[i] - mean[gc]) * inv[gc]};
  };
  std::array<std::vector<double>, 2> sums;
  const std::vector<double>& sdy = sums[0];
  const std::vector<double>& sdyx = sums[1];
  // dx = gamma invstd / M * (M dz - sum(dz) - xhat sum(dz xhat)), written as
  // dx = p dz + q x + r with p = gamma invstd, q = -p invstd sdyx / M, r = -p sdy / M - q mu
  // (for (g, c) in gc0 .. gc1 - 1).
  std::vector<float> p(G * C), q(G * C), r(G * C);
  auto coefficients = [&](int64_t gc0, int64_t gc1) {
    for (int64_t gc = gc0; gc < gc1; ++gc) {
      const double pg = (gamma.defined() ? gamma.data()[gc % C] : 1.f) * double(inv[gc]);
      const double qg = -pg * inv[gc] * sdyx[gc] / M;
      p[gc] = static_cast<float>(pg);
      q[gc] = static_cast<float>(qg);
      r[gc] = static_cast<float>(-pg * sdy[gc] / M - qg * mean[gc]);
    }
  };
  Tensor dx = Tensor::empty(x.shape());
  // each group's sums, then its dx while dz and x are in cache (group_by_group)
  sums_then_rows(s, G, terms, sums, coefficients, [&](int64_t n0, int64_t n1) {
    affine_rows(dx.data(), s, s.N / G, n0, n1, dz, px, p.data(), q.data(), r.data(), NoAct{});
  });
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

}  // namespace

Tensor batch_norm_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                        int64_t groups, BatchNormSaved* saved, Tensor* running_mean,
                        Tensor* running_var, float momentum) {
  return batch_norm_train_act(x, gamma, beta, eps, groups, saved, running_mean, running_var,
                              momentum, NoAct{});
}

Tensor batch_norm_relu_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                             int64_t groups, float slope, BatchNormSaved* saved,
                             Tensor* running_mean, Tensor* running_var, float momentum) {
  if (slope == 0.f)
    return batch_norm_train_act(x, gamma, beta, eps, groups, saved, running_mean, running_var,
                                momentum, Relu{});
  return batch_norm_train_act(x, gamma, beta, eps, groups, saved, running_mean, running_var,
                              momentum, LeakyRelu{slope});
}

BatchNormSaved batch_norm_statistics(const Tensor& x, float eps, int64_t groups, Tensor* running_mean,
                                     Tensor* running_var, float momentum) {
  BatchNormSaved saved;
  batch_norm_train_act(x, Tensor(), Tensor(), eps, groups, &saved, running_mean, running_var, momentum, NoAct{},
                       /*normalise=*/false);
  return saved;
}

BatchNormSaved batch_norm_statistics_of_moments(const Tensor& x, const PlaneMoments* moments, float eps, int64_t groups,
                                                Tensor* running_mean, Tensor* running_var, float momentum) {
  BatchNormSaved saved;
  batch_norm_train_act(x, Tensor(), Tensor(), eps, groups, &saved, running_mean, running_var, momentum, NoAct{},
                       /*normalise=*/false, moments);
  return saved;
}

void batch_norm_scale_shift(const BatchNormSaved& saved, const Tensor& gamma, const Tensor& beta, int64_t C,
                            float* scale, float* shift) {
  bn_scale_shift(saved.mean.data(), saved.invstd.data(), gamma, beta, 0, saved.mean.numel(), C, scale, shift);
}

Tensor batch_norm_relu_apply(const Tensor& x, const float* scale, const float* shift, int64_t groups) {
  const BnShape s = bn_shape(x);
  std::vector<float> zero(groups * s.C, 0.f);
  Tensor y = Tensor::empty(x.shape());
  const float* px = x.data();
  group_channel_affine(y.data(), s, groups, [px](int64_t i, int64_t) { return px[i]; }, nullptr, scale,
                       zero.data(), shift, Relu{});
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
  const float* px = x.data();
  group_channel_affine(y.data(), s, 1, [px](int64_t i, int64_t) { return px[i]; }, nullptr,
                       scale.data(), zero.data(), shift.data(), NoAct{});
  return y;
}

Tensor batch_norm_backward(const Tensor& dout, const Tensor& x, const Tensor& gamma,
                           const BatchNormSaved& saved, int64_t groups, Tensor* dgamma,
                           Tensor* dbeta) {
  const float* pd = dout.data();
  return batch_norm_backward_of(bn_shape(x), x, gamma, saved, groups, dgamma, dbeta,
                                [pd](int64_t i, int64_t) { return pd[i]; });
}

Tensor batch_norm_relu_backward(const Tensor& dout, const Tensor& x, const Tensor& gamma,
                                const Tensor& beta, const BatchNormSaved& saved, int64_t groups,
                                float slope, Tensor* dgamma, Tensor* dbeta) {
  const BnShape s = bn_shape(x);
  // The forward's z = x scale + shift, recomputed with its very operations (bn_scale_shift and
  // bn_affine, from the saved statistics and the same gamma and beta): the ReLU's gradient
  // mask z > 0 is the forward's (the composed ops read it from the ReLU's output: y > 0 exactly
  // where z > 0), and dz = z > 0 ? dout : slope dout as leaky_relu_backward writes it.
  std::vector<float> scale(groups * s.C), shift(groups * s.C);
  bn_scale_shift(saved.mean.data(), saved.invstd.data(), gamma, beta, 0, groups * s.C, s.C, scale.data(),
                 shift.data());
  const float *pd = dout.data(), *px = x.data(), *zs = scale.data(), *zk = shift.data();
  return batch_norm_backward_of(s, x, gamma, saved, groups, dgamma, dbeta,
                                [=](int64_t i, int64_t gc) {
                                  const float z = bn_affine(zs[gc], px[i], zk[gc]);
                                  return select(z > 0, pd[i], slope * pd[i]);
                                });
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
