// normad CUDA pairwise squared distances and L2 row normalisation: bodies, HD helpers and launch
// declarations (kernels and version switches in cuda/distance.cu, table entries in cuda/distance.h).
// Shapes: a [M, D], b [N, D] -> dist [M, N]; x, y, dout [M, D] for the normalisation.
// Math: dist_ij = sum_k (a_ik - b_jk)^2, never negative, NaN propagates (tensor/reference.cpp);
//       the GEMM form |a_i|^2 + |b_j|^2 - 2 a_i.b_j is clamped at 0 (tensor/distance.cpp).
//       backward: G = dout where dist > 0 or NaN, 0 where dist <= 0 (the clamp was active);
//       da_i = 2 sum_j G_ij (a_i - b_j) = 2 (rowsum(G) a - G b), db_j = 2 (colsum(G) b - G^T a).
//       normalise: y_i = x_i / max(|x_i|, eps); dx_i = (g_i - y_i (g_i.y_i)) / |x_i|, g_i / eps
//       where |x_i| <= eps. Norms and dot products in double, as the CPU.
// Versions (cuda/distance.cu):
//   pairwise_sqdist v1 one thread per output, direct sum of (a - b)^2 in double (the reference)
//                   v2 64 x 64 output tile per block, K-steps of 16 over D through shared memory,
//                      a 4 x 4 register micro-tile per thread, (a - b)^2 accumulated in float
//                      (no cancellation, so no clamp needed)
//                   v3 the GEMM form (the yardstick, as FAISS): row norms in double, cuBLAS sgemm
//                      for a b^T, one epilogue body adding the norms and clamping at 0 (the CPU's)
//   pairwise_sqdist_backward v1 one thread per (i, k) of da over j, per (j, k) of db over i
//                   v2 cuBLAS: mask G (a body), row / column sums (cuda/reduce), two sgemms,
//                      one axpy-like body 2 (r x - Gx)
//   l2_normalize(_backward) v1 one thread per row, sequential sums
//                   v2 one warp per row: lane l sums k = l, l + 32, ..., then a butterfly of
//                      warp shuffles in a fixed order (every lane ends with the same bits)
// Deterministic: every output has one fixed summation order; no atomics.
// Tested by tests/test_cuda_distance.cpp: [cuda_body] runs the v1 bodies, v2's tile steps (the
// block emulated thread by thread), v3's norm and epilogue bodies and v2's lane sums on the host
// against the CPU / reference ops; [cuda] every version on a GPU against the reference.
#pragma once

#include <math.h>

#include "cuda/common.cuh"

namespace normad::cuda {

// ---- pairwise_sqdist v1: one thread per output --------------------------------------------------

// out[i, j] = sum_k (a[i, k] - b[j, k])^2 with the difference and the sum in double, rounded once:
// the reference's loop, so v1 equals it bit for bit.
struct SqdistBody {
  float* out;
  const float* a;
  const float* b;
  int64_t N, D;
  NORMAD_HD void operator()(int64_t e) const {
    const float* ai = a + (e / N) * D;
    const float* bj = b + (e % N) * D;
    double acc = 0;
    for (int64_t k = 0; k < D; ++k) {
      const double d = double(ai[k]) - double(bj[k]);
      acc += d * d;
    }
    out[e] = static_cast<float>(acc);
  }
};

// ---- pairwise_sqdist v2: shared-memory tiles, register micro-tiles -------------------------------
// A block of kTileThreads = 256 threads computes the 64 x 64 outputs [row0, row0 + 64) x
// [col0, col0 + 64). Per K-step the block stages a [64 rows, 16 k] slice of a and of b in shared
// memory, transposed to [16 k][64 rows] so a thread's 4 rows (or columns) for one k sit in one
// shared row. Thread (ty, tx) = (tid / 16, tid % 16) owns rows row0 + ty + 16 r and columns
// col0 + tx + 16 c, r, c < 4: strided, so a warp's 32 threads read 2 a values (broadcast) and 16
// consecutive b values per k, and store 16 consecutive outputs per row.
// The three steps below are HD functions: the kernel calls them per thread, the host test calls
// them for every thread of a block in turn (the same arithmetic, in the same order).

constexpr int kTile = 64;          // output rows and columns per block
constexpr int kTileK = 16;         // D elements per K-step
constexpr int kMicro = 4;          // outputs per thread along each side
constexpr int kTileThreads = 256;  // (kTile / kMicro)^2
constexpr int kTilePad = kTile + 1;  // shared row length (the +1 spreads the transposed stores over banks)

// Stages rows [row0, row0 + 64) x k [k0, k0 + 16) of x [rows, D] into tile[k][r]; entries past the
// matrix are 0 (both a and b padded with 0 add (0 - 0)^2 = 0 to every sum). Thread tid loads 4 of
// the 1024 entries: e = tid + 256 q, r = e / 16, k = e % 16, so 16 consecutive threads read 16
// consecutive floats of one row of x (coalesced).
NORMAD_HD inline void sqdist_load_tile(float (*tile)[kTilePad], const float* x, int64_t rows, int64_t D,
                                       int64_t row0, int64_t k0, int tid) {
  for (int q = 0; q < kTile * kTileK / kTileThreads; ++q) {
    const int e = tid + kTileThreads * q;
    const int r = e / kTileK, k = e % kTileK;
    const int64_t gr = row0 + r, gk = k0 + k;
    tile[k][r] = gr < rows && gk < D ? x[gr * D + gk] : 0.f;
  }
}

// One K-step of thread (ty, tx): acc[r][c] += (a - b)^2 over the 16 staged k, in increasing k.
NORMAD_HD inline void sqdist_tile_step(float (&acc)[kMicro][kMicro], const float (*as)[kTilePad],
                                       const float (*bs)[kTilePad], int ty, int tx) {
  for (int k = 0; k < kTileK; ++k) {
    float ra[kMicro], rb[kMicro];
    for (int r = 0; r < kMicro; ++r) ra[r] = as[k][ty + 16 * r];
    for (int c = 0; c < kMicro; ++c) rb[c] = bs[k][tx + 16 * c];
    for (int r = 0; r < kMicro; ++r)
      for (int c = 0; c < kMicro; ++c) {
        const float d = ra[r] - rb[c];
        acc[r][c] += d * d;
      }
  }
}

// Writes thread (ty, tx)'s outputs that fall inside out [M, N]. A sum of squares is never negative,
// so there is nothing to clamp; a NaN stays.
NORMAD_HD inline void sqdist_tile_store(float* out, const float (&acc)[kMicro][kMicro], int64_t M, int64_t N,
                                        int64_t row0, int64_t col0, int ty, int tx) {
  for (int r = 0; r < kMicro; ++r)
    for (int c = 0; c < kMicro; ++c) {
      const int64_t i = row0 + ty + 16 * r, j = col0 + tx + 16 * c;
      if (i < M && j < N) out[i * N + j] = acc[r][c];
    }
}

// ---- pairwise_sqdist v3: the GEMM form -----------------------------------------------------------

// out[i] = |x_i|^2 in double (the CPU's row_sqnorms).
struct RowSqnormBody {
  double* out;
  const float* x;
  int64_t D;
  NORMAD_HD void operator()(int64_t i) const {
    double s = 0;
    for (int64_t k = 0; k < D; ++k) s += double(x[i * D + k]) * x[i * D + k];
    out[i] = s;
  }
};

// In place on d [M, N] = a b^T: d = |a_i|^2 + |b_j|^2 - 2 d in double, rounded, clamped at 0
// against the rounding (NaN passes: NaN < 0 is false). The CPU's formula, term for term.
struct SqdistEpilogueBody {
  float* d;
  const double* na;
  const double* nb;
  int64_t N;
  NORMAD_HD void operator()(int64_t e) const {
    const float sq = static_cast<float>(na[e / N] + nb[e % N] - 2.0 * d[e]);
    d[e] = sq < 0 ? 0.f : sq;
  }
};

// ---- pairwise_sqdist_backward --------------------------------------------------------------------

// G_ij as the reference reads it: 0 where the clamp was active (dist <= 0), dout elsewhere (a NaN
// distance keeps its gradient).
NORMAD_HD inline float masked_grad(float dout, float dist) { return dist <= 0.f ? 0.f : dout; }

// v1, one body for both gradients: dx[p, k] = 2 sum_q G(p, q) (x[p, k] - y[q, k]) over q < Q, with
// G(p, q) at dout[p * stride_p + q * stride_q]:
//   da: x = a, y = b, Q = N, strides (N, 1);   db: x = b, y = a, Q = M, strides (1, N).
// Products and sum in double, rounded once: the reference's loop.
struct SqdistGradBody {
  float* dx;
  const float* dout;
  const float* dist;
  const float* x;
  const float* y;
  int64_t Q, D, stride_p, stride_q;
  NORMAD_HD void operator()(int64_t e) const {
    const int64_t p = e / D, k = e % D;
    double acc = 0;
    for (int64_t q = 0; q < Q; ++q) {
      const int64_t at = p * stride_p + q * stride_q;
      acc += double(masked_grad(dout[at], dist[at])) * (double(x[p * D + k]) - double(y[q * D + k]));
    }
    dx[e] = static_cast<float>(2 * acc);
  }
};

// v2 step 1: G = dout masked (elementwise over [M, N]).
struct MaskGradBody {
  float* G;
  const float* dout;
  const float* dist;
  NORMAD_HD void operator()(int64_t e) const { G[e] = masked_grad(dout[e], dist[e]); }
};

// v2 last step, in place on gx [P, D] = G x or G^T x: gx = 2 (s_p x - gx) with s the row or column
// sums of G, in float as the CPU's mul, sub and mul_scalar.
struct ScaleSubBody {
  float* gx;
  const float* s;
  const float* x;
  int64_t D;
  NORMAD_HD void operator()(int64_t e) const { gx[e] = 2.f * (s[e / D] * x[e] - gx[e]); }
};

// ---- l2_normalize and its backward -------------------------------------------------------------

// sum_k p[k] q[k] in double over k = first, first + step, ... < D (v1: first 0, step 1; v2: lane
// l of a warp takes first l, step 32).
NORMAD_HD inline double strided_dot(const float* p, const float* q, int64_t D, int64_t first, int64_t step) {
  double s = 0;
  for (int64_t k = first; k < D; k += step) s += double(p[k]) * q[k];
  return s;
}

// 1 / max(|x|, eps) from |x|^2 in double, as the CPU: sqrt in double, rounded to float, floored at
// eps (a NaN norm stays NaN: std::max(NaN, eps) is NaN, fmaxf would not be).
NORMAD_HD inline float l2_inv_norm(double sq, float eps) {
  const float n = static_cast<float>(::sqrt(sq));
  return 1.f / (n < eps ? eps : n);
}

// dx of one element from g, y, the row's g.y and |x| (double): the CPU's two branches.
NORMAD_HD inline float l2_backward_value(float g, float y, double gy, double norm, float eps) {
  return norm > eps ? static_cast<float>((g - y * gy) / norm) : g / eps;
}

// v1 forward: one thread per row i.
struct L2NormalizeBody {
  float* y;
  const float* x;
  int64_t D;
  float eps;
  NORMAD_HD void operator()(int64_t i) const {
    const float* xi = x + i * D;
    const float inv = l2_inv_norm(strided_dot(xi, xi, D, 0, 1), eps);
    for (int64_t k = 0; k < D; ++k) y[i * D + k] = xi[k] * inv;
  }
};

// v1 backward: one thread per row i.
struct L2NormalizeBackwardBody {
  float* dx;
  const float* dout;
  const float* x;
  const float* y;
  int64_t D;
  float eps;
  NORMAD_HD void operator()(int64_t i) const {
    const int64_t o = i * D;
    const double norm = ::sqrt(strided_dot(x + o, x + o, D, 0, 1));
    const double gy = strided_dot(dout + o, y + o, D, 0, 1);
    for (int64_t k = 0; k < D; ++k) dx[o + k] = l2_backward_value(dout[o + k], y[o + k], gy, norm, eps);
  }
};

// v2's warp reduction on the host: lane l's value after the butterfly v_l += v_(l xor m) for m =
// 16, 8, 4, 2, 1, the order warp_sum (cuda/distance.cu) follows with __shfl_xor_sync. Addition is
// commutative in floating point, so every lane ends with the same bits; the tests read lane 0.
inline double butterfly_sum_host(const double (&lanes)[32]) {
  double v[32], next[32];
  for (int l = 0; l < 32; ++l) v[l] = lanes[l];
  for (int m = 16; m > 0; m >>= 1) {
    for (int l = 0; l < 32; ++l) next[l] = v[l] + v[l ^ m];
    for (int l = 0; l < 32; ++l) v[l] = next[l];
  }
  return v[0];
}

void launch(int64_t n, const SqdistBody& body);
void launch(int64_t n, const RowSqnormBody& body);
void launch(int64_t n, const SqdistEpilogueBody& body);
void launch(int64_t n, const SqdistGradBody& body);
void launch(int64_t n, const MaskGradBody& body);
void launch(int64_t n, const ScaleSubBody& body);
void launch(int64_t n, const L2NormalizeBody& body);
void launch(int64_t n, const L2NormalizeBackwardBody& body);

}  // namespace normad::cuda
