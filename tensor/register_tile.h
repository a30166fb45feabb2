// The register tile under normad's CPU convolutions and its own GEMM: kTileP rows x FV vectors of
// lanes summed in registers over taps x depth (the implicit GEMM of tensor/conv.cpp, the GEMM
// engine of tensor/sgemm.cpp in float and double), and the transposed copies both use to reorder
// operands (floats through 16 x 16 register blocks).
// Math: rows[p][lane] (+)= init[lane] + sum_t sum_c px[p][tap_off[t] + c px_step] wb[t][c][lane]; dst = src^T.
// Tested through its callers: tests/test_conv.cpp (the implicit passes against double loops) and
// tests/test_ops.cpp (gemm under each engine against a triple loop, transposed operands, edges;
// native_dgemm against a long double loop).
#pragma once

#include <algorithm>
#include <cstdint>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace normad::cpu {

#if defined(__AVX512F__)
constexpr int64_t kVec = 16;  // floats per vector register
constexpr int kMaxFV = 4;     // tile 6 x 4 vectors: 24 sums + 4 weights of 32 registers
#else
constexpr int64_t kVec = 8;   // AVX2: 16 registers (narrower ISAs split each vector: correct, slower)
constexpr int kMaxFV = 2;     // tile 6 x 2: 12 sums + 2 weights
#endif
constexpr int kTileP = 6;
static_assert(kMaxFV <= 4, "the tile switches dispatch 1 to 4 vectors of lanes");
constexpr int64_t kVecBytes = kVec * int64_t(sizeof(float));
// One vector register of T (float: kVec lanes, double: half as many), and the same type at any T
// address (packed weights and results are not vector-aligned).
template <class T>
struct simd {
  static constexpr int64_t lanes = kVecBytes / int64_t(sizeof(T));
  typedef T vec __attribute__((vector_size(kVecBytes)));
  typedef T vec_unaligned __attribute__((vector_size(kVecBytes), aligned(sizeof(T))));
};
typedef simd<float>::vec vecf;
typedef simd<float>::vec_unaligned vecf_unaligned;

// n rounded up to whole vectors of T (the filters of the forward, the channels of the input gradient).
template <class T = float>
inline int64_t whole_vectors(int64_t n) {
  constexpr int64_t L = simd<T>::lanes;
  return (n + L - 1) / L * L;
}

#if defined(__AVX512F__)
// r[j][i] = r[i][j] for a 16 x 16 block in registers: pairs of rows interleaved by floats, then by
// pairs of floats, then 128-bit quarters exchanged twice.
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  auto pd = [](__m512 v) { return _mm512_castps_pd(v); };
  for (int i = 0; i < 4; ++i) {
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(t[4 * i]), pd(t[4 * i + 2])));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(t[4 * i]), pd(t[4 * i + 2])));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(t[4 * i + 1]), pd(t[4 * i + 3])));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(t[4 * i + 1]), pd(t[4 * i + 3])));
  }
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0x88);
    t[4 + i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0xdd);
    t[8 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0x88);
    t[12 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0xdd);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
    r[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xdd);
    r[4 + i] = _mm512_shuffle_f32x4(t[4 + i], t[12 + i], 0x88);
    r[12 + i] = _mm512_shuffle_f32x4(t[4 + i], t[12 + i], 0xdd);
  }
}
#endif

// dst[j ldd + i] = src[i lds + j] for i < rows, j < cols: a transposed copy of any element type, in
// 8 x 8 blocks (the native double GEMM's transposed operands).
template <class T>
inline void transpose_copy(T* dst, int64_t ldd, const T* src, int64_t lds, int64_t rows, int64_t cols) {
  for (int64_t i0 = 0; i0 < rows; i0 += 8)
    for (int64_t j0 = 0; j0 < cols; j0 += 8) {
      const int64_t i1 = std::min<int64_t>(i0 + 8, rows), j1 = std::min<int64_t>(j0 + 8, cols);
      for (int64_t j = j0; j < j1; ++j)
        for (int64_t i = i0; i < i1; ++i) dst[j * ldd + i] = src[i * lds + j];
    }
}

// The same for floats (preferred over the template): with AVX-512 in 16 x 16 blocks through
// registers (masked at the edges); the strided scalar copy took half as long as the multiply-adds
// of the Omniglot net's 64 -> 64 layer.
inline void transpose_copy(float* dst, int64_t ldd, const float* src, int64_t lds, int64_t rows, int64_t cols) {
#if defined(__AVX512F__)
  for (int64_t i0 = 0; i0 < rows; i0 += 16) {
    const int64_t nr = std::min<int64_t>(16, rows - i0);
    for (int64_t j0 = 0; j0 < cols; j0 += 16) {
      const int64_t nc = std::min<int64_t>(16, cols - j0);
      const __mmask16 col_mask = __mmask16((1u << nc) - 1), row_mask = __mmask16((1u << nr) - 1);
      __m512 r[16];
      for (int64_t i = 0; i < 16; ++i)
        r[i] = i < nr ? _mm512_maskz_loadu_ps(col_mask, src + (i0 + i) * lds + j0) : _mm512_setzero_ps();
      // the same columns two row blocks on, into L1 ahead of their loads (rows that exist only: the
      // convolutions' copies of <= 32 rows prefetch nothing). Measured when the GEMM transposed its
      // A ([K, M] over 40960 rows read from memory 16 rows at a time: 148 -> 162 GFLOP/s on [128,
      // 128] products); since round 16 the GEMM reads A in place, and the copies of more than 32 rows
      // left are B's panels (<= 64 rows of a B stored [N, K]) and the convolutions' write-backs
      for (int64_t i = 32; i < 48 && i0 + i < rows; ++i)
        _mm_prefetch(reinterpret_cast<const char*>(src + (i0 + i) * lds + j0), _MM_HINT_T0);
      transpose16(r);
      for (int64_t j = 0; j < nc; ++j) _mm512_mask_storeu_ps(dst + (j0 + j) * ldd + i0, row_mask, r[j]);
    }
  }
#else
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) dst[j * ldd + i] = src[i * lds + j];
#endif
}

// rows[p][0 .. FV L) (+)= for the first m of the tile's kTileP rows (L = simd<T>::lanes; row
// pointers px: a convolution's pixel windows, a GEMM's rows of A; past m they repeat the last one
// and their sums are dropped), wb the packed block of lanes [taps][C][FV L] (filters, channels,
// columns of B): sum over taps t and depth c of px[p][tap_off[t] + c] wb[t][c][lane], in that
// order, started from init[lane] (FV L values: a GEMM's bias per column) or from 0 (init null).
// T is float (the convolutions, the SGEMM) or double (the native engine's DGEMM).
// ldw: the distance between consecutive c's lanes in wb (0: packed, FV L; the GEMM passes B's row
// stride when it reads a full panel of B in place). px_step: the distance between consecutive c's
// of one row (1; the GEMM passes A's row stride when it reads a transposed A in place, its rows
// being A's columns), so that the sum is over px[p][tap_off[t] + c px_step].
template <int FV, bool Add, class T>
inline void register_tile(T* const* rows, const T* const* px, int64_t m, const T* wb, const int64_t* tap_off,
                          int64_t taps, int64_t C, const T* init, int64_t ldw = 0, int64_t px_step = 1) {
  using vec = typename simd<T>::vec;
  using vec_unaligned = typename simd<T>::vec_unaligned;
  // sums and weights are named registers only when every loop over them is unrolled (GCC kept
  // the arrays on the stack otherwise: 3x slower)
  vec acc[kTileP][FV];
#pragma GCC unroll 8
  for (int p = 0; p < kTileP; ++p)
#pragma GCC unroll 4
    for (int v = 0; v < FV; ++v) acc[p][v] = init ? reinterpret_cast<const vec_unaligned*>(init)[v] : vec{};
  const int64_t w_step = ldw ? ldw : FV * simd<T>::lanes;
  for (int64_t t = 0; t < taps; ++t) {
    const T* wt = wb + t * C * w_step;
    const T* q[kTileP];
#pragma GCC unroll 8
    for (int p = 0; p < kTileP; ++p) q[p] = px[p] + tap_off[t];
    for (int64_t c = 0, x_off = 0; c < C; ++c, wt += w_step, x_off += px_step) {
      vec wv[FV];
#pragma GCC unroll 4
      for (int v = 0; v < FV; ++v) wv[v] = reinterpret_cast<const vec_unaligned*>(wt)[v];
#pragma GCC unroll 8
      for (int p = 0; p < kTileP; ++p) {
        const T xv = q[p][x_off];
#pragma GCC unroll 4
        for (int v = 0; v < FV; ++v) acc[p][v] += xv * wv[v];
      }
    }
  }
  for (int64_t p = 0; p < m; ++p) {
    vec_unaligned* out = reinterpret_cast<vec_unaligned*>(rows[p]);
#pragma GCC unroll 4
    for (int v = 0; v < FV; ++v) {
      if constexpr (Add) out[v] += acc[p][v];
      else out[v] = acc[p][v];
    }
  }
}

// The tile above for fv = 1 .. kMaxFV vectors of lanes, storing (add false) or adding to the rows.
template <class T>
inline void register_tile_fv(int fv, bool add, T* const* rows, const T* const* px, int64_t m, const T* wb,
                             const int64_t* tap_off, int64_t taps, int64_t C, const T* init = nullptr,
                             int64_t ldw = 0, int64_t px_step = 1) {
  auto run = [&]<bool Add>() {
    switch (fv) {  // fv <= kMaxFV
      case 1: return register_tile<1, Add, T>(rows, px, m, wb, tap_off, taps, C, init, ldw, px_step);
      case 2: return register_tile<2, Add, T>(rows, px, m, wb, tap_off, taps, C, init, ldw, px_step);
      case 3: return register_tile<3, Add, T>(rows, px, m, wb, tap_off, taps, C, init, ldw, px_step);
      default: return register_tile<4, Add, T>(rows, px, m, wb, tap_off, taps, C, init, ldw, px_step);
    }
  };
  if (add) run.template operator()<true>();
  else run.template operator()<false>();
}

}  // namespace normad::cpu
