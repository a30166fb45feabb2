// normad's own single-threaded GEMM, the "native" engine (tensor/gemm.h), in float (SGEMM) and
// double (DGEMM, Gaussian-AD's moments and precision): the register tile of the implicit
// convolutions (tensor/register_tile.h, 6 rows x 4 vectors of 16 floats or 8 doubles on AVX-512)
// over operands packed in cache-sized blocks, as BLIS and OpenBLAS block theirs.
// Math: C[M, N] (+)= bias[N] + op(A) op(B), or C -= op(A) op(B); each depth block (<= 384 terms)
// one chain of multiply-adds over k in order, the first started from its column's bias, the blocks
// added into C one after another (gemm() may split a deep product further and add the chunks in
// order). Subtraction packs B negated (exact), so C -= AB rounds as C += A(-B).
// Tested by tests/test_ops.cpp: gemm under each engine against a plain triple loop (all four
// transpositions, accumulate, edges of every block: M, N, K not multiples of the tile or the
// blocks), native_sgemm and native_dgemm directly on strided operands (native_sgemm also with B
// packed beforehand by native_pack_b: the same bits), gemm_f64 (store, add,
// subtract) and cholesky_f64 under each engine, 1 vs 2 threads, and the models' tests run on it
// wherever it is the automatic engine.
//
// Blocking (L1 48 KiB and L2 1 MiB on the Zen 5 machine this was tuned on):
//   for each block of kColumnBlock columns of C (jc):
//     for each block of depth, K cut into equal blocks of at most kDepthBlock (pc):
//       pack B[pc.., jc..] as panels of kMaxFV vectors of columns, [depth][panel width], zero-padded
//       (or take them from a B packed beforehand, or read whole panels of a B [K, N] in place)
//       for each block of kRowBlock rows (ic):
//         A read in place: row by row when stored [M, K], column by column when [K, M] (the
//         tile's 6 values at one depth then sit side by side in one row of A)
//         for each panel: for each 6 rows: the register tile sums the depth block into C
// A panel (depth x 64 floats or 32 doubles, <= 96 KiB) is read from L2 by every tile of the row
// block; the row block of A (132 x depth values, <= 396 KiB) from L2 by every panel.
// Software prefetch (into L2; round 15, on a Zen 4 core, whose 32 KiB L1 the blocks above were
// not tuned for): each tile's rows of C before it writes them, the next tile's rows of A on the
// first panel, and an in-place B's next panel a slice per tile. ACR-NTL's 40960-row products,
// one core: 40960 x 570 x 128 88.9 -> 99.7 GFLOP/s, 128 x 570 x 40960 (A transposed) 88.4 -> 95.8,
// 40960 x 128 x 128 80.3 -> 97.8; the hot 2048-row ones and 1024^3 unchanged (~103-110).
// Round 16 (Zen 4, one core; bench gemm/ hot, gemm_cold/ with operands and C in DRAM as in a
// training step): a transposed A read in place instead of transposed into a packed copy, hot
// 570 x 128 x 2048 3.28 -> 2.71 ms; the next block of A prefetched a slice per tile, and the next
// depth block's packed columns of B with its first panel: cold 570 x 128 x 2048 3.16 -> 2.84-2.90,
// 128 x 570 x 40960 62.3 -> 59-60 ms; row blocks of 132 (ACR-NTL's M = 128 in one: B's depth
// block read once) instead of 96: 128 x 570 x 40960 hot 62.1 -> 60.4. Prefetching C a tile ahead
// (for writing into L1, or into L2) lost or did nothing.
#include <algorithm>
#include <cassert>
#include <cstdint>
#include <cstring>
#include <vector>

#include "tensor/aligned.h"
#include "tensor/gemm.h"
#include "tensor/register_tile.h"

namespace normad::cpu {

namespace {

// columns per packed panel of B (64 floats or 32 doubles on AVX-512)
template <class T>
constexpr int64_t kPanel = kMaxFV * simd<T>::lanes;
// Swept on the bench gemm/ shapes (one Zen 5 core): depth 256 / 384 / 512, columns 256 / 640, rows
// 96 / 192 all within ~5% on the untransposed products; 512-deep blocks lost 10-20% on the
// transposed-A ones, 640 columns (all of ACR-NTL's 570 in one block: A, then transposed into a
// packed copy, transposed once) gained ~7%.
// Again on a Zen 4 core (round 16): depth 192 / 256 lost 2-10% against 384; rows 132 (22 tiles)
// and 192 equal on all but ACR-NTL's M = 128 weight gradients, where 96 cut B's reuse in two.
constexpr int64_t kDepthBlock = 384;
constexpr int64_t kColumnBlock = 640;
constexpr int64_t kRowBlock = 132;
// native_packed_b_floats counts whole vectors of N: every column block but the last is whole panels
static_assert(kColumnBlock % kPanel<float> == 0 && kColumnBlock % kPanel<double> == 0);

// dst [depth][panel width] panels for columns j0 .. j0 + cols of op(B), depth k0 .. k0 + depth:
// panel q holds columns q kPanel .. + width (width = whole vectors), starting at q kPanel depth;
// columns past `cols` are zero; negated when `negate` (C -= AB).
// Only the panels from column `from` on (a multiple of kPanel; the ones before it are read in place).
template <class T>
void pack_b(T* dst, const T* b, int64_t ldb, bool tb, int64_t k0, int64_t depth, int64_t j0, int64_t cols,
            bool negate, int64_t from) {
  for (int64_t q0 = from; q0 < cols; q0 += kPanel<T>) {
    const int64_t width = std::min(kPanel<T>, whole_vectors<T>(cols - q0)), valid = std::min(width, cols - q0);
    T* panel = dst + q0 * depth;
    if (!tb) {  // B [K, N]: each depth row of the panel is a contiguous run of row k of B
      for (int64_t k = 0; k < depth; ++k) {
        const T* src = b + (k0 + k) * ldb + j0 + q0;
        std::copy(src, src + valid, panel + k * width);
        std::fill(panel + k * width + valid, panel + (k + 1) * width, T(0));
      }
    } else {  // B stored [N, K]: the panel is the transpose of `valid` rows of it
      if (valid < width) std::fill(panel, panel + depth * width, T(0));
      transpose_copy(panel, width, b + (j0 + q0) * ldb + k0, ldb, valid, depth);
    }
    if (negate)
      for (int64_t i = 0; i < depth * width; ++i) panel[i] = -panel[i];
  }
}

// Every cache line of begin[0 .. n) requested into L2 (for writing when `write`: a prefetchw where
// the target has it, which takes no level hint): C's rows before a
// tile writes them (the read-for-ownership from DRAM hidden behind the tile's multiply-adds), rows
// of A and B at strides the hardware prefetcher does not follow.
template <class T>
inline void prefetch_lines(const T* begin, int64_t n, bool write) {
  const auto first = reinterpret_cast<uintptr_t>(begin) & ~uintptr_t(63);
  const auto end = reinterpret_cast<uintptr_t>(begin + n);
  for (uintptr_t line = first; line < end; line += 64) {
    if (write) __builtin_prefetch(reinterpret_cast<const void*>(line), 1, 2);
    else __builtin_prefetch(reinterpret_cast<const void*>(line), 0, 2);
  }
}

// The blocks of K: equal, of at most kDepthBlock (570 -> 2 x 285, not 384 + 186).
inline int64_t depth_step_of(int64_t K) {
  const int64_t depth_blocks = (K + kDepthBlock - 1) / kDepthBlock;
  return (K + depth_blocks - 1) / depth_blocks;
}

// acc: 0 stores C, 1 adds to it, -1 subtracts from it (bias only with 0 or 1).
// prepacked (or null): every (column block, depth block) of op(B) packed in loop order (native_pack_b).
template <class T>
void native_gemm(T* c, int64_t ldc, const T* a, int64_t lda, const T* b, int64_t ldb, int64_t M, int64_t N,
                 int64_t K, bool ta, bool tb, int acc, const T* column_bias, const T* prepacked = nullptr) {
  constexpr int64_t kLanes = simd<T>::lanes, kWidth = kPanel<T>;
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {  // an empty sum: C = bias (or 0), or C + bias (or unchanged) when accumulating
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j)
        c[i * ldc + j] = (acc ? c[i * ldc + j] : T(0)) + (column_bias ? column_bias[j] : T(0));
    return;
  }
  // the bias zero-padded to whole vectors: the tiles of the first depth block start from it
  thread_local std::vector<T, LineAligned<T>> bias_padded;
  if (column_bias) {
    bias_padded.assign(whole_vectors<T>(N), T(0));
    std::copy(column_bias, column_bias + N, bias_padded.begin());
  }
  const int64_t depth_step = depth_step_of(K);
  assert(!prepacked || acc >= 0);  // a prepacked B is not negated (C -= AB packs it negated)
  // reused across calls on this thread; B's panels line-aligned (tensor/aligned.h: from malloc's
  // 16-byte alignment every vector load of a panel row straddled two cache lines)
  thread_local std::vector<T, LineAligned<T>> b_packed;
  if (!prepacked) b_packed.resize(std::max<size_t>(b_packed.size(), depth_step * whole_vectors<T>(std::min(N, kColumnBlock))));
  alignas(64) T edge[kTileP * kWidth];  // a tile's sums where its panel runs past N

  // B stored [K, N] and not negated, for up to kInPlaceRows rows of C: a panel of whole vectors is
  // read in place (row stride ldb), only a last panel with a partial vector is packed (its zero
  // padding). Packing every panel cost 5-12% of the deep transposed-A products (ACR-NTL's weight
  // gradients, M = 128 or 570) and 8% of 1024^3; with tens of thousands of rows reusing each panel
  // the packed copy's locality won (40960 x 570 x 128: 200 -> 192 GFLOP/s in place).
  constexpr int64_t kInPlaceRows = 2048;
  const bool b_in_place = !prepacked && !tb && acc >= 0 && M <= kInPlaceRows;
  const T* next_prepacked = prepacked;
  for (int64_t j0 = 0; j0 < N; j0 += kColumnBlock) {
    const int64_t cols = std::min(kColumnBlock, N - j0);
    const int64_t packed_from = !b_in_place ? 0 : cols % kLanes == 0 ? cols : (cols - 1) / kWidth * kWidth;
    for (int64_t k0 = 0; k0 < K; k0 += depth_step) {
      const int64_t depth = std::min(depth_step, K - k0);
      const T* packed_block = b_packed.data();
      if (prepacked) {
        packed_block = next_prepacked;
        next_prepacked += depth * whole_vectors<T>(cols);
      } else {
        pack_b(b_packed.data(), b, ldb, tb, k0, depth, j0, cols, acc < 0, packed_from);
      }
      // the first depth block stores into C (unless accumulating), the later ones add to it
      const bool add = acc || k0 > 0;
      for (int64_t i0 = 0; i0 < M; i0 += kRowBlock) {
        const int64_t rows = std::min(kRowBlock, M - i0);
        // row r of this block of op(A), depth k0 ..: in place, A [M, K] row by row or A [K, M]
        // column by column (the tile steps lda between depths; was transposed into a packed copy)
        const T* a_rows = ta ? a + k0 * lda + i0 : a + i0 * lda + k0;
        const int64_t a_row_step = ta ? 1 : lda, a_depth_step = ta ? lda : 1;
        // the next block of A this will read (this depth block's next rows, or the next depth
        // block's first rows) prefetched into L2 a slice per tile of this block: `lines` runs of
        // `line_len` values at stride lda (A [M, K]: rows of the block; A [K, M]: its depths, at
        // a stride out of the hardware prefetcher's reach)
        const T* next_a = nullptr;
        int64_t next_a_lines = 0, next_a_len = 0;
        if (i0 + rows < M) {
          const int64_t next_rows = std::min(kRowBlock, M - i0 - rows);
          next_a = ta ? a + k0 * lda + i0 + rows : a + (i0 + rows) * lda + k0;
          next_a_lines = ta ? depth : next_rows, next_a_len = ta ? next_rows : depth;
        } else if (k0 + depth < K) {
          const int64_t next_rows = std::min(kRowBlock, M), next_depth = std::min(depth_step, K - k0 - depth);
          next_a = ta ? a + (k0 + depth) * lda : a + k0 + depth;
          next_a_lines = ta ? next_depth : next_rows, next_a_len = ta ? next_rows : next_depth;
        }
        const int64_t panels = (cols + kWidth - 1) / kWidth, block_tiles = (rows + kTileP - 1) / kTileP;
        for (int64_t q0 = 0; q0 < cols; q0 += kWidth) {
          const int64_t width = std::min(kWidth, whole_vectors<T>(cols - q0)), valid = std::min(width, cols - q0);
          const int fv = int(width / kLanes);
          const bool in_place = q0 < packed_from;
          const T* panel = in_place ? b + k0 * ldb + j0 + q0 : packed_block + q0 * depth;
          const int64_t ldw = in_place ? ldb : 0;
          const T* init = column_bias && k0 == 0 ? bias_padded.data() + j0 + q0 : nullptr;
          const int64_t tap0 = 0;
          // B read in place: the next panel's rows (or the next depth block's first panel, and the
          // columns past packed_from that pack_b will copy at its start) are prefetched into L2 a
          // slice per tile, their stride defeating the hardware's prefetcher
          const T* next_panel = nullptr;
          int64_t next_depth = depth, next_packed_cols = 0;
          if (in_place) {
            if (q0 + kWidth < packed_from) next_panel = panel + kWidth;
            else if (k0 + depth < K && packed_from > 0 && i0 + rows >= M) {  // (the last row block's)
              next_panel = b + (k0 + depth) * ldb + j0;
              next_depth = std::min(depth_step, K - k0 - depth);
              next_packed_cols = cols - packed_from;
            }
          }
          for (int64_t p0 = 0; p0 < rows; p0 += kTileP) {
            if (next_panel) {
              const int64_t t = p0 / kTileP;
              for (int64_t k = t * next_depth / block_tiles; k < (t + 1) * next_depth / block_tiles; ++k) {
                prefetch_lines(next_panel + k * ldb, kWidth, false);
                if (next_packed_cols > 0) prefetch_lines(next_panel + k * ldb + packed_from, next_packed_cols, false);
              }
            }
            if (next_a) {
              const int64_t t = q0 / kWidth * block_tiles + p0 / kTileP, all = panels * block_tiles;
              for (int64_t l = t * next_a_lines / all; l < (t + 1) * next_a_lines / all; ++l)
                prefetch_lines(next_a + l * lda, next_a_len, false);
            }
            // A [M, K], first panel: the next tile's rows as well (the first block's, which no
            // block before prefetched; on the others, measured, a little faster than without)
            if (!ta && q0 == 0)
              for (int64_t r = i0 + p0 + kTileP; r < std::min(M, i0 + p0 + 2 * kTileP); ++r)
                prefetch_lines(a + r * lda + k0, depth, false);
            const int64_t m = std::min<int64_t>(kTileP, rows - p0);
            const T* px[kTileP];
            T* out[kTileP];
            for (int64_t p = 0; p < kTileP; ++p) {
              const int64_t r = p0 + std::min(p, m - 1);  // past m: the last row again, not stored
              px[p] = a_rows + r * a_row_step;
              out[p] = valid == width ? c + (i0 + r) * ldc + j0 + q0 : edge + p * kWidth;
            }
            for (int64_t p = 0; p < m; ++p) prefetch_lines(c + (i0 + p0 + p) * ldc + j0 + q0, valid, true);
            if (valid == width) {
              register_tile_fv(fv, add, out, px, m, panel, &tap0, 1, depth, init, ldw, a_depth_step);
            } else {  // the last panel of a row of C: sums to `edge`, then its valid columns to C
              register_tile_fv(fv, false, out, px, m, panel, &tap0, 1, depth, init, ldw, a_depth_step);
              for (int64_t p = 0; p < m; ++p) {
                T* dst = c + (i0 + p0 + p) * ldc + j0 + q0;
                for (int64_t j = 0; j < valid; ++j) dst[j] = add ? dst[j] + edge[p * kWidth + j] : edge[p * kWidth + j];
              }
            }
          }
        }
      }
    }
  }
}

}  // namespace

void native_sgemm(float* c, int64_t ldc, const float* a, int64_t lda, const float* b, int64_t ldb, int64_t M,
                  int64_t N, int64_t K, bool ta, bool tb, bool acc, const float* column_bias, const float* packed_b) {
  native_gemm<float>(c, ldc, a, lda, b, ldb, M, N, K, ta, tb, acc ? 1 : 0, column_bias, packed_b);
}

int64_t native_packed_b_floats(int64_t K, int64_t N) {
  return K * whole_vectors<float>(N);  // each column block: depth x its whole vectors, over all depths
}

void native_pack_b(float* packed, const float* b, int64_t ldb, int64_t K, int64_t N, bool tb) {
  if (K <= 0 || N <= 0) return;  // nothing to pack (native_sgemm never reads it then)
  const int64_t depth_step = depth_step_of(K);
  for (int64_t j0 = 0; j0 < N; j0 += kColumnBlock) {
    const int64_t cols = std::min(kColumnBlock, N - j0);
    for (int64_t k0 = 0; k0 < K; k0 += depth_step) {
      const int64_t depth = std::min(depth_step, K - k0);
      pack_b(packed, b, ldb, tb, k0, depth, j0, cols, false, 0);
      packed += depth * whole_vectors<float>(cols);
    }
  }
}

void native_dgemm(double* c, int64_t ldc, const double* a, int64_t lda, const double* b, int64_t ldb, int64_t M,
                  int64_t N, int64_t K, bool ta, bool tb, int acc) {
  native_gemm<double>(c, ldc, a, lda, b, ldb, M, N, K, ta, tb, acc, nullptr);
}

}  // namespace normad::cpu
