// normad CUDA batch normalisation: grouped training forward (G groups of Q = N / G consecutive rows,
// each with its own statistics, all in one launch: the ACR method's per-task BN), evaluation with
// running statistics, the grouped backward and the fold of an eval BN into a conv's affine.
// Math (tensor/reference.cpp is the spec, followed formula for formula in double):
//   per (g, c) over its M = Q*S values: mu = mean(x), var = mean((x - mu)^2) (biased),
//   inv = 1 / sqrt(var + eps), y = gamma (x - mu) inv + beta; saved mean/invstd [G, C] in float;
//   running r = (1 - momentum) r + momentum stat, once per group in group order, unbiased variance
//   (M > 1 ? M2 / (M - 1) : M2);
//   backward: sd = sum(dout), sdx = sum(dout xhat) per (g, c),
//   dx = gamma inv (dout - sd / M - xhat sdx / M); dgamma[c] = sum_g sdx, dbeta[c] = sum_g sd
//   (added in group order).
// Versions (cuda/batchnorm.cu):
//   v1 bodies: one thread per (g, c) for the statistics (two passes in double, the reference's
//      order), one thread per element to normalise; backward: one thread per (g, c) for the two
//      sums, one per element for dx, one per channel for dgamma/dbeta in group order.
//   v2 one block per (g, c): each thread a Welford state (count, mean, M2) in double over a strided
//      slice of the group's values (rows are contiguous runs of S floats: consecutive threads read
//      consecutive floats), merged by the fixed warp-shuffle / shared-memory tree of
//      cuda/block_tree.cuh; the same block then normalises its slice (a second read). Backward: one
//      block per (g, c) reduces sum(dout) and sum(dout xhat) by the same tree, then writes dx;
//      dgamma/dbeta by v1's per-channel body.
//   eval and fold: v1 only (elementwise / per channel; memory bound, nothing to win).
// Not here: BN fused with the following ReLU (no table entry asks for it). It would take a
// `relu` flag in bn_normalize_value (max(y, 0) with the reference's NaN rule) and, for training, the
// backward's mask dout * (y > 0) applied before the two sums (y kept or recomputed from x).
// Tested by tests/test_cuda_batchnorm.cpp: [cuda_body] runs the v1 bodies on the host against the
// reference backend, and every helper of v2 (slice iteration, Welford push and merge, the emulated
// block tree) against two-pass double statistics; [cuda] runs every version on a GPU.
//
// Shapes: x [N, C] or [N, C, H, W]; S = H*W (1 for [N, C]); G groups, Q = N / G rows per group,
// M = Q*S values per (g, c); gc = g*C + c indexes [G, C].
#pragma once

#include <math.h>

#include "cuda/common.cuh"

namespace normad::cuda {

// ---- geometry ----------------------------------------------------------------------------------

struct BnDims {
  int64_t C, S, Q;  // channels, positions per row, rows per group
  NORMAD_HD int64_t values() const { return Q * S; }  // M
};

// Element i of x [N, C, S]: its channel in *c and its (g, c) index as the return value.
NORMAD_HD inline int64_t bn_group_channel(const BnDims& d, int64_t i, int64_t* c) {
  const int64_t row = i / (d.C * d.S);
  *c = (i / d.S) % d.C;
  return (row / d.Q) * d.C + *c;
}

// The M values of (g, c): rows g*Q .. g*Q + Q - 1, each a run of S floats, row r at
// base + r * row_stride. for_each(t, T, f) visits the flat indices j = r*S + k = t, t + T, ... < M
// (thread t of T) and calls f(offset from base); with t = 0, T = 1 it is the reference's order. The
// row and column advance by fixed steps: no division inside the loop.
struct GroupSlice {
  int64_t base, row_stride, S, M;
  template <class F>
  NORMAD_HD void for_each(int64_t t, int64_t T, F f) const {
    int64_t row = t / S, k = t % S;
    const int64_t drow = T / S, dk = T % S;
    for (int64_t j = t; j < M; j += T) {
      f(row * row_stride + k);
      row += drow, k += dk;
      if (k >= S) k -= S, ++row;
    }
  }
};

NORMAD_HD inline GroupSlice group_slice(const BnDims& d, int64_t gc) {
  const int64_t g = gc / d.C, c = gc % d.C;
  return {(g * d.Q * d.C + c) * d.S, d.C * d.S, d.S, d.values()};
}

// ---- Welford statistics (v2) -------------------------------------------------------------------

// count, mean and sum of squared deviations of the values seen. No member initialisers: the block
// tree keeps these in __shared__ memory; Welford{} is the empty state.
struct Welford {
  double n, mean, m2;
};

// One more value (Welford 1962).
NORMAD_HD inline void welford_push(Welford& w, double x) {
  w.n += 1;
  const double d = x - w.mean;
  w.mean += d / w.n;
  w.m2 += d * (x - w.mean);
}

// Two states of disjoint value sets as one (Chan, Golub, LeVeque); an empty side returns the other.
NORMAD_HD inline Welford welford_merge(const Welford& a, const Welford& b) {
  if (b.n == 0) return a;
  if (a.n == 0) return b;
  const double n = a.n + b.n, d = b.mean - a.mean;
  return {n, a.mean + d * (b.n / n), a.m2 + b.m2 + d * d * (a.n * b.n / n)};
}

struct WelfordMerge {
  NORMAD_HD Welford operator()(const Welford& a, const Welford& b) const { return welford_merge(a, b); }
};

// Thread t of T's state over its slice of (g, c) (v2's first read).
NORMAD_HD inline Welford welford_slice(const float* x, const GroupSlice& s, int64_t t, int64_t T) {
  Welford w{};
  s.for_each(t, T, [&](int64_t o) { welford_push(w, x[s.base + o]); });
  return w;
}

// The backward's two sums of one (g, c): a = sum(dout), b = sum(dout xhat).
struct SumPair {
  double a, b;
};
struct SumPairAdd {
  NORMAD_HD SumPair operator()(const SumPair& p, const SumPair& q) const { return {p.a + q.a, p.b + q.b}; }
};

// Thread t of T's part of those sums (v2; v1 with t = 0, T = 1), the reference's product order.
NORMAD_HD inline SumPair bn_backward_slice(const float* dout, const float* x, double mu, double inv,
                                           const GroupSlice& s, int64_t t, int64_t T) {
  SumPair p{0, 0};
  s.for_each(t, T, [&](int64_t o) {
    const int64_t i = s.base + o;
    p.a += dout[i];
    p.b += double(dout[i]) * (double(x[i]) - mu) * inv;
  });
  return p;
}

// v2's threads per block for M values per (g, c): more threads for long slices (a guess: no GPU has
// timed these). A multiple of 32; the tree's shape, hence the bits, follow from it.
inline int bn_block_threads(int64_t M) { return M >= 32768 ? 1024 : M >= 4096 ? 512 : 256; }

// ---- per-element formulas ----------------------------------------------------------------------

NORMAD_HD inline double bn_invstd(double m2, double M, double eps) { return 1.0 / ::sqrt(m2 / M + eps); }

// y = gamma (x - mu) inv + beta in double (gamma, beta may be null: 1 and 0).
NORMAD_HD inline float bn_normalize_value(float x, double mu, double inv, const float* gamma,
                                          const float* beta, int64_t c) {
  const double ga = gamma ? double(gamma[c]) : 1.0, be = beta ? double(beta[c]) : 0.0;
  return float(ga * (double(x) - mu) * inv + be);
}

// dx = gamma inv (dout - sd / M - xhat sdx / M).
NORMAD_HD inline float bn_dx_value(float dout, float x, double mu, double inv, double ga, const SumPair& s,
                                   double M) {
  const double xhat = (double(x) - mu) * inv;
  return float(ga * inv * (double(dout) - s.a / M - xhat * s.b / M));
}

// ---- training forward --------------------------------------------------------------------------

// Per-(g, c) statistics in double, [G*C] each (scratch): what normalisation and the running update
// read. The saved float copies go to the BatchNormSaved tensors.
struct BnStats {
  double* mu;
  double* inv;
  double* unbiased;
};

// Stores the statistics of (g, c) from its mean and sum of squared deviations m2.
NORMAD_HD inline void bn_store_stats(const BnStats& st, float* saved_mean, float* saved_invstd, int64_t gc,
                                     double mu, double m2, double M, double eps) {
  const double inv = bn_invstd(m2, M, eps);
  st.mu[gc] = mu;
  st.inv[gc] = inv;
  st.unbiased[gc] = M > 1 ? m2 / (M - 1) : m2;
  saved_mean[gc] = float(mu);
  saved_invstd[gc] = float(inv);
}

// v1 statistics: one thread per (g, c), mean then squared deviations (two passes in double).
struct BnStatsBody {
  BnStats st;
  float* saved_mean;
  float* saved_invstd;
  const float* x;
  BnDims d;
  double eps;
  NORMAD_HD void operator()(int64_t gc) const {
    const GroupSlice s = group_slice(d, gc);
    const double M = double(s.M);
    double sum = 0, sq = 0;
    s.for_each(0, 1, [&](int64_t o) { sum += x[s.base + o]; });
    const double mu = sum / M;
    s.for_each(0, 1, [&](int64_t o) {
      const double dev = double(x[s.base + o]) - mu;
      sq += dev * dev;
    });
    bn_store_stats(st, saved_mean, saved_invstd, gc, mu, sq, M, eps);
  }
};

// v1 normalisation: one thread per element of x.
struct BnNormalizeBody {
  float* out;
  const float* x;
  const float* gamma;  // may be null
  const float* beta;   // may be null
  const double* mu;
  const double* inv;
  BnDims d;
  NORMAD_HD void operator()(int64_t i) const {
    int64_t c;
    const int64_t gc = bn_group_channel(d, i, &c);
    out[i] = bn_normalize_value(x[i], mu[gc], inv[gc], gamma, beta, c);
  }
};

// Running statistics: one thread per channel walks the groups in order (both versions).
struct BnRunningBody {
  float* running_mean;  // may be null
  float* running_var;   // may be null
  const double* mu;
  const double* unbiased;
  int64_t G, C;
  double momentum;
  NORMAD_HD void operator()(int64_t c) const {
    for (int64_t g = 0; g < G; ++g) {
      if (running_mean)
        running_mean[c] = float((1.0 - momentum) * double(running_mean[c]) + momentum * mu[g * C + c]);
      if (running_var)
        running_var[c] = float((1.0 - momentum) * double(running_var[c]) + momentum * unbiased[g * C + c]);
    }
  }
};

// ---- backward ----------------------------------------------------------------------------------

// v1 sums: one thread per (g, c), over the saved statistics (not recomputed ones).
struct BnBackwardSumsBody {
  SumPair* sums;  // [G*C]
  const float* dout;
  const float* x;
  const float* mean;    // saved [G, C]
  const float* invstd;  // saved [G, C]
  BnDims d;
  NORMAD_HD void operator()(int64_t gc) const {
    sums[gc] = bn_backward_slice(dout, x, mean[gc], invstd[gc], group_slice(d, gc), 0, 1);
  }
};

// v1 dx: one thread per element.
struct BnBackwardDxBody {
  float* dx;
  const float* dout;
  const float* x;
  const float* gamma;  // may be null
  const float* mean;
  const float* invstd;
  const SumPair* sums;
  BnDims d;
  NORMAD_HD void operator()(int64_t i) const {
    int64_t c;
    const int64_t gc = bn_group_channel(d, i, &c);
    const double ga = gamma ? double(gamma[c]) : 1.0;
    dx[i] = bn_dx_value(dout[i], x[i], mean[gc], invstd[gc], ga, sums[gc], double(d.values()));
  }
};

// dgamma[c] = sum_g sdx[g, c], dbeta[c] = sum_g sd[g, c] in group order: one thread per channel.
struct BnParamGradBody {
  float* dgamma;
  float* dbeta;
  const SumPair* sums;
  int64_t G, C;
  NORMAD_HD void operator()(int64_t c) const {
    double dg = 0, db = 0;
    for (int64_t g = 0; g < G; ++g) dg += sums[g * C + c].b, db += sums[g * C + c].a;
    dgamma[c] = float(dg);
    dbeta[c] = float(db);
  }
};

// ---- evaluation and fold -----------------------------------------------------------------------

// y = gamma (x - running_mean) / sqrt(running_var + eps) + beta: one thread per element.
struct BnEvalBody {
  float* out;
  const float* x;
  const float* gamma;  // may be null
  const float* beta;   // may be null
  const float* running_mean;
  const float* running_var;
  int64_t C, S;
  double eps;
  NORMAD_HD void operator()(int64_t i) const {
    const int64_t c = (i / S) % C;
    out[i] = bn_normalize_value(x[i], running_mean[c], 1.0 / ::sqrt(double(running_var[c]) + eps), gamma, beta, c);
  }
};

// scale = gamma / sqrt(running_var + eps), shift = beta + (bias - running_mean) scale, in double:
// one thread per channel. gamma, beta, bias may be null.
struct BnFoldBody {
  float* scale;
  float* shift;
  const float* gamma;
  const float* beta;
  const float* bias;
  const float* running_mean;
  const float* running_var;
  double eps;
  NORMAD_HD void operator()(int64_t c) const {
    const double s = (gamma ? double(gamma[c]) : 1.0) / ::sqrt(double(running_var[c]) + eps);
    const double b = bias ? double(bias[c]) : 0.0;
    scale[c] = float(s);
    shift[c] = float((beta ? double(beta[c]) : 0.0) + (b - double(running_mean[c])) * s);
  }
};

// ---- launchers (cuda/batchnorm.cu) -------------------------------------------------------------

void launch(int64_t n, const BnStatsBody& body);
void launch(int64_t n, const BnNormalizeBody& body);
void launch(int64_t n, const BnRunningBody& body);
void launch(int64_t n, const BnBackwardSumsBody& body);
void launch(int64_t n, const BnBackwardDxBody& body);
void launch(int64_t n, const BnParamGradBody& body);
void launch(int64_t n, const BnEvalBody& body);
void launch(int64_t n, const BnFoldBody& body);

// v1 or v2 for G*C groups-channels of M values each (0 picks by shape; the pick is a guess).
int bn_default_version(int64_t group_channels, int64_t M);

}  // namespace normad::cuda
