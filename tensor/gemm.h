// normad's GEMM on raw row-major buffers, shared by matmul, bmm and conv2d: oneTBB over fixed
// blocks, each block one call of the engine: normad's own SGEMM, OpenBLAS's sgemm or Eigen's product.
// The double-precision calls (Gaussian-AD) take the same engine: native_dgemm, dgemm or Eigen.
// Math: C[M, N] = op(A) op(B) (+ C when accumulate), op = identity or transpose; A is stored
// [M, K] or [K, M] (trans_a), B [K, N] or [N, K] (trans_b).
// Engines: native (tensor/sgemm.cpp: the implicit convolutions' register tile over packed blocks),
// the automatic choice wherever normad is compiled for AVX-512 (-march=native on such a CPU);
// elsewhere OpenBLAS (Debian's libopenblas, single-threaded calls) where the build found it and its
// kernels match this CPU's vector unit, else Eigen (compiled for this CPU with -march=native).
// On the products of normad's models (bench gemm/, one Zen 5 core, docs/profiling.md) native ran
// at 149-209 GFLOP/s, Eigen at 110-141, OpenBLAS 0.3.21 at 159-194 with its SkylakeX kernels; in
// double on Gaussian-AD's SYRK blocks native 100, Eigen 65.
// OpenBLAS picks its kernels at run time and falls back to generic ones on processors it does not
// know (0.3.21 on Sapphire Rapids: "Prescott", 40 against 183 GFLOP/s on 2 threads as issue 14
// measured it); then the choice without native is Eigen.
// OpenBLAS was 1.2x to 2.3x faster than Eigen on every GEMM shape of normad's models on the
// 2-core AVX-512 development machine, one thread (docs/profiling.md). NORMAD_GEMM=eigen|openblas|native
// in the environment (any other value is an error), or set_gemm_engine(), overrides the choice.
// The double-precision calls below use native_dgemm under the native engine (the Cholesky's
// diagonal blocks, panel solves and SYRKs Eigen's), OpenBLAS under openblas, Eigen under eigen.
// OpenBLAS is set to one thread for the whole process (its pool stays idle), and the Debian build
// serves a bounded number of concurrent calls (about 2 x its MAX_THREADS of 64): normad calls it
// from at most as many oneTBB threads as cores, and chooses Eigen on machines of more than 64.
// Determinism: large products are split into blocks that depend only on the shapes, each block one
// single-threaded engine call (deep products with a small C, K >= 8192 and >= 16 max(M, N), at
// most 256K outputs: the depth in K / 2048 chunks, 2 to 16, whose products are added in chunk
// order), so the result is bit-identical for any thread count (for one engine on one machine: the
// engines, and OpenBLAS's kernel sets, round differently; native's blocks are fixed sizes, so its
// results depend on the compiled vector width only, not on the CPU's caches).
// Tested by tests/test_ops.cpp (plain triple loop and 1 vs 2 threads, under each engine built in;
// native_sgemm's and native_dgemm's block and tile edges on strided operands against double and
// long double loops;
// gemm_f64 and cholesky_f64 against plain loops under each engine) and tests/test_conv.cpp.
#pragma once

#include <cstdint>
#include <string>

namespace normad::cpu {

// column_bias [N] (or null): C[i, j] (+)= column_bias[j] + (op(A) op(B))[i, j], a Linear layer's
// bias added as C is written (native: the tiles start from it; Eigen and OpenBLAS: C set to it,
// then accumulated into).
void gemm(float* c, const float* a, const float* b, int64_t M, int64_t N, int64_t K, bool trans_a,
          bool trans_b, bool accumulate = false, const float* column_bias = nullptr);

// Double precision for the models' statistics (Gaussian-AD's moments and precision), column-major
// as Eigen's MatrixXd: one single-threaded call of the current engine (native_dgemm, OpenBLAS's
// dgemm or Eigen's product), no blocking (the caller splits the work into fixed blocks, so results do not depend on
// the thread count). C[M, N] (+)= op(A) op(B) with leading dimensions ldc, lda, ldb.
void gemm_f64(double* c, int64_t ldc, const double* a, int64_t lda, const double* b, int64_t ldb, int64_t M,
              int64_t N, int64_t K, bool trans_a, bool trans_b, bool accumulate);
// The Cholesky factor of the symmetric matrix a [n, n] (column-major, leading dimension n): its
// lower triangle is read and overwritten by L (a = L L^T), the strict upper triangle is left as it
// was. False when a is not positive definite (its contents then undefined). Blocked and parallel
// over shape-only blocks (bit-identical for any thread count): each diagonal block by LAPACK's
// dpotrf (in Debian's OpenBLAS) or Eigen's LLT, the panels and updates by the engine's dtrsm,
// dsyrk and dgemm (or Eigen's), each one single-threaded call.
bool cholesky_f64(double* a, int64_t n);

enum class GemmEngine { automatic, eigen, openblas, native };
// Chooses the engine for later products (automatic: the rule above). Throws when openblas is asked
// of a build without it.
void set_gemm_engine(GemmEngine e);
// The engine products use now (never automatic), and its name with OpenBLAS's kernel set, e.g.
// "native (6 x 64 tile, OpenBLAS Haswell and Eigen built in)", "openblas (Cooperlake)" or
// "eigen (OpenBLAS has generic Prescott kernels here)".
GemmEngine gemm_engine();
std::string gemm_engine_description();
bool openblas_built_in();

// The native engine's one single-threaded call (tensor/sgemm.cpp) on strided row-major operands:
// C[M, N] = column_bias + op(A) op(B), or += when acc (column_bias [N] or null: none).
// packed_b (or null): op(B) as native_pack_b packed it, read instead of b (which may be null then).
void native_sgemm(float* c, int64_t ldc, const float* a, int64_t lda, const float* b, int64_t ldb, int64_t M,
                  int64_t N, int64_t K, bool ta, bool tb, bool acc, const float* column_bias = nullptr,
                  const float* packed_b = nullptr);
// op(B) [K, N] packed as native_sgemm packs it where it does not read B in place (its column and
// depth blocks in loop order, each as panels), for the row blocks of one product to share: gemm()
// packed a transposed B once per row block (a Linear's weight 80 times on 40960 rows). Size:
// native_packed_b_floats(K, N); a line-aligned buffer (tensor/aligned.h) keeps the panels' vector
// loads within cache lines, as gemm() allocates it.
int64_t native_packed_b_floats(int64_t K, int64_t N);
void native_pack_b(float* packed, const float* b, int64_t ldb, int64_t K, int64_t N, bool tb);
// The same in double (gemm_f64 under the native engine): C = op(A) op(B) (acc 0), C += (acc 1),
// C -= (acc -1).
void native_dgemm(double* c, int64_t ldc, const double* a, int64_t lda, const double* b, int64_t ldb, int64_t M,
                  int64_t N, int64_t K, bool ta, bool tb, int acc);

}  // namespace normad::cpu
