// Batch norm's per-plane moments on the CPU: the first value k of one (n, c) plane of S values
// and the sums of d and d^2 over it, d = double(x) - double(k). Batch norm's training-mode
// statistics of [N, C, H, W] inputs are these, per (group, channel) moved to the group's first
// plane's k and added in sample order (tensor/batchnorm.cpp): the per-plane part runs in parallel
// over planes in memory order, and a producer of the planes could compute it as it writes them.
// Math: about K (the group's first plane's k): sum(x - K) = sum d + S delta, sum (x - K)^2 =
// sum d^2 + 2 delta sum d + S delta^2, delta = k - K (identities exact in real arithmetic; each term
// rounded in double, so these are not the bits of one chain over the values).
// Tested by tests/test_batchnorm.cpp (statistics against double loops on 1 and many threads, a
// mean of 1e6 with unit spread, infinite first values and NaN in [N, C, H, W] planes).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512DQ__)
#include <immintrin.h>
#define NORMAD_PLANE_MOMENTS_AVX512 1
#endif

namespace normad::cpu {

struct PlaneMoments {
  float first;       // the plane's first value, 0 where it is infinite (d would be NaN)
  double sum, sumsq;  // sum of d and of d^2 over the plane
};

// A sum's 8 lanes added in a fixed tree (batch norm's per-channel lanes, tensor/batchnorm.cpp, and
// plane_moments below).
inline double lanes_total(const double* l) {
  return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

// The moments of the S values at x (S >= 1). The order, fixed: value i goes into lane i % 16 of
// each sum (d^2 by a fused multiply-add), lane j + lane j + 8, then lanes_total's tree; the scalar
// form below (targets without AVX-512 F, VL and DQ) is that order too. With AVX-512: two 8-double
// vectors per sum (two chains: one was latency-bound), the last partial vectors masked to +0 (no
// change: a lane starts at +0 and so is never -0). GCC had left the scalar form of 8 lanes (batch
// norm's add_plane) unvectorised here: 0.44 ns a value.
inline PlaneMoments plane_moments(const float* x, int64_t S) {
  const float k = std::isinf(x[0]) ? 0.f : x[0];
#if defined(NORMAD_PLANE_MOMENTS_AVX512)
  const __m512d kd = _mm512_set1_pd(double(k));
  __m512d s0 = _mm512_setzero_pd(), s1 = s0, q0 = s0, q1 = s0;
  int64_t i = 0;
  for (; i + 16 <= S; i += 16) {
    const __m512d d0 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + i)), kd);
    const __m512d d1 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8)), kd);
    s0 = _mm512_add_pd(s0, d0);
    q0 = _mm512_fmadd_pd(d0, d0, q0);
    s1 = _mm512_add_pd(s1, d1);
    q1 = _mm512_fmadd_pd(d1, d1, q1);
  }
  if (i < S) {
    const int64_t r = S - i;
    const __mmask8 m0 = __mmask8((1u << std::min<int64_t>(r, 8)) - 1), m1 = __mmask8(r > 8 ? (1u << (r - 8)) - 1 : 0);
    const __m512d d0 = _mm512_maskz_sub_pd(m0, _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m0, x + i)), kd);
    const __m512d d1 = _mm512_maskz_sub_pd(m1, _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m1, x + i + 8)), kd);
    s0 = _mm512_add_pd(s0, d0);
    q0 = _mm512_fmadd_pd(d0, d0, q0);
    s1 = _mm512_add_pd(s1, d1);
    q1 = _mm512_fmadd_pd(d1, d1, q1);
  }
  // lanes_total's tree on the vectors: pairs (an add is commutative, bit for bit), pairs of pairs
  // within each 256-bit half, then the two halves
  auto tree = [](__m512d t) {
    const __m512d a = _mm512_add_pd(t, _mm512_permute_pd(t, 0x55));
    const __m512d b = _mm512_add_pd(a, _mm512_permutex_pd(a, 0x4e));
    return _mm_cvtsd_f64(_mm_add_sd(_mm512_castpd512_pd128(b), _mm512_extractf64x2_pd(b, 2)));
  };
  return {k, tree(_mm512_add_pd(s0, s1)), tree(_mm512_add_pd(q0, q1))};
#else
  double lane_s[16] = {}, lane_q[16] = {};
  for (int64_t i = 0; i < S; ++i) {
    const double d = double(x[i]) - double(k);
    lane_s[i % 16] += d;
    lane_q[i % 16] = std::fma(d, d, lane_q[i % 16]);
  }
  double l0[8], l1[8];
  for (int j = 0; j < 8; ++j) {
    l0[j] = lane_s[j] + lane_s[j + 8];
    l1[j] = lane_q[j] + lane_q[j + 8];
  }
  return {k, lanes_total(l0), lanes_total(l1)};
#endif
}

// Adds plane m's sums, moved from its own first value to K, to (sum, sumsq) about K.
inline void add_moments_about(double& sum, double& sumsq, const PlaneMoments& m, float K, int64_t S) {
  const double delta = double(m.first) - double(K);
  sum += m.sum + double(S) * delta;
  sumsq += m.sumsq + 2.0 * delta * m.sum + double(S) * delta * delta;
}

}  // namespace normad::cpu
