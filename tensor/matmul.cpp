// normad matrix products (see tensor/ops.h) and the GEMM under them (tensor/gemm.h): OpenBLAS's
// sgemm or Eigen's product per block.
// Math: C[M, N] = op(A) op(B), op = identity or transpose; bmm does that per batch entry.
// Every engine call is single-threaded (Eigen is built with EIGEN_DONT_PARALLELIZE, OpenBLAS is set
// to 1 thread); gemm() splits the output into fixed blocks for oneTBB (a deep product with a small
// output: its depth into fixed chunks, added in order), so every element is computed identically
// for any thread count.
// Tested by tests/test_ops.cpp (against a plain triple loop, 1 vs 2 threads, each engine) and
// tests/test_parity.cpp (Linear).
#include <algorithm>
#include <atomic>
#include <cctype>
#include <climits>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <Eigen/Core>

#ifdef NORMAD_HAS_OPENBLAS
#include <cblas.h>
// LAPACK's Cholesky, built into Debian's OpenBLAS (Fortran calling convention; cblas.h has no LAPACK)
extern "C" void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info);
#endif
#include <Eigen/Cholesky>

#include "tensor/aligned.h"
#include "tensor/gemm.h"
#include "tensor/cpu.h"
#include "tensor/parallel.h"
#include "tensor/register_tile.h"

namespace normad::cpu {

namespace {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using OStride = Eigen::OuterStride<>;
using CMapS = Eigen::Map<const RowMat, 0, OStride>;
using MapS = Eigen::Map<RowMat, 0, OStride>;

// C = op(A) op(B) (acc 0), C += ... (acc 1) or C -= ... (acc -1) for Eigen maps A, B stored
// untransposed-or-transposed as flagged.
template <class CM, class AM, class BM>
void product(CM&& C, const AM& A, const BM& B, bool ta, bool tb, int acc) {
  auto apply = [&](const auto& prod) {
    if (acc > 0) C.noalias() += prod;
    else if (acc < 0) C.noalias() -= prod;
    else C.noalias() = prod;
  };
  if (!ta && !tb) apply(A * B);
  else if (ta && !tb) apply(A.transpose() * B);
  else if (!ta && tb) apply(A * B.transpose());
  else apply(A.transpose() * B.transpose());
}

// ---- Eigen's blocking, the same on every machine ----
// Eigen sizes its GEMM blocks from the cache sizes it reads off the CPU at run time: the depth of
// a block (kc) follows the L1 size, and kc is the length of each partial sum, so the same binary
// rounds products differently on a CPU with a 48 KiB L1 (Zen 5, Sapphire Rapids) than on one with
// 32 KiB (Zen 4), and 200 epochs of training carry that last-bit difference into a different model
// (the README's table chain: AUROC 0.724 against 0.790). Fixed sizes (32 KiB L1, 1 MiB L2, 32 MiB
// L3: the common small case) make Eigen's results depend on the compiled instruction set only.
// Set before the first product: at static initialisation and again, once, from gemm_engine().
bool pin_eigen_blocking() {
  static const bool pinned = [] {
    Eigen::setCpuCacheSizes(32 * 1024, 1024 * 1024, 32 * 1024 * 1024);
    return true;
  }();
  return pinned;
}
[[maybe_unused]] const bool g_eigen_blocking_pinned = pin_eigen_blocking();

// ---- the engine choice ----
// g_override: set_gemm_engine's choice (automatic: none). The automatic choice is made once.
std::atomic<GemmEngine> g_override{GemmEngine::automatic};

#ifdef NORMAD_HAS_OPENBLAS
std::string lower(std::string s) {
  for (char& ch : s) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

// OpenBLAS's kernel set for this process (it reads the CPU, or OPENBLAS_CORETYPE, at load time).
std::string openblas_core() {
  const char* name = openblas_get_corename();
  return name ? name : "unknown";
}

// Whether that kernel set uses this CPU's vector unit: an AVX-512 set on an AVX-512 CPU, an AVX2
// (or wider) set on an AVX2 CPU. Generic sets (Prescott, Nehalem, Sandybridge...) are not, nor is
// an AVX2 set on an AVX-512 CPU (e.g. "Zen" on a Zen 4): Eigen, compiled with -march=native, uses
// the wider unit there. Other architectures: OpenBLAS's own choice is kept.
bool openblas_fits_cpu(const std::string& core) {
#if defined(__x86_64__) || defined(__i386__)
  const std::string c = lower(core);
  const bool avx512_set = c == "skylakex" || c == "cooperlake" || c == "sapphirerapids";
  const bool avx2_set = avx512_set || c == "haswell" || c == "zen";
  if (__builtin_cpu_supports("avx512f")) return avx512_set;
  if (__builtin_cpu_supports("avx2")) return avx2_set;
#else
  (void)core;
#endif
  return true;
}

// OpenBLAS's own thread pool stays idle: normad's blocks are its parallelism, one call per block.
void openblas_single_threaded() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}
#endif

// Where normad is compiled for AVX-512, its own engine (tensor/sgemm.cpp: the 6 x 64 register tile
// on 32 vector registers). Measured on the products of its models (bench gemm/, one Zen 5 core):
// 149-209 GFLOP/s against Eigen's 110-141 and OpenBLAS 0.3.21's SkylakeX kernels' 159-194 (native
// behind OpenBLAS only on the deep transposed-A weight gradient [40960, 128]^T [40960, 570], 150
// against 164). With AVX2 the tile has 16 registers and was not measured: the rule above.
constexpr bool kNativeByDefault = kVec == 16;

// The engine without an override: NORMAD_GEMM=eigen|openblas|native, else native where the rule
// above says so, else OpenBLAS where its kernels fit the CPU, else Eigen. Decided once; a bad value
// throws from the initialiser, which C++ then runs again at the next call, so every product fails
// with the same error rather than falling back silently.
GemmEngine automatic_engine() {
  static const GemmEngine e = [] {
    const std::string env = std::getenv("NORMAD_GEMM") ? std::getenv("NORMAD_GEMM") : "";
    check(env.empty() || env == "eigen" || env == "openblas" || env == "native", "NORMAD_GEMM",
          "'" + env + "' is not a GEMM engine (eigen, openblas or native)");
    if (env == "native" || (env.empty() && kNativeByDefault)) return GemmEngine::native;
    check(env != "openblas" || openblas_built_in(), "NORMAD_GEMM",
          "openblas: this build has no OpenBLAS (libopenblas-dev)");
#ifdef NORMAD_HAS_OPENBLAS
    // Debian's OpenBLAS serves at most ~2 x 64 concurrent calls (MAX_THREADS 64): on machines with
    // more cores than that the automatic choice stays with Eigen
    const bool few_cores = std::thread::hardware_concurrency() <= 64;
    if (env == "openblas" || (env != "eigen" && few_cores && openblas_fits_cpu(openblas_core()))) {
      openblas_single_threaded();
      return GemmEngine::openblas;
    }
#endif
    return GemmEngine::eigen;
  }();
  return e;
}

// One call of `engine` (native, eigen or openblas, as gemm_engine() returned it) on strided operands
// (leading dimensions lda, ldb, ldc), on the calling thread; bias (or null) added per column of C.
// native_packed_b (or null; native engine only): op(B) packed beforehand by native_pack_b.
void gemm_block(GemmEngine engine, float* c, int64_t ldc, const float* a, int64_t lda,
                const float* b, int64_t ldb, int64_t M, int64_t N, int64_t K, bool ta, bool tb,
                bool acc, const float* bias = nullptr, const float* native_packed_b = nullptr) {
  if (engine == GemmEngine::native) {
    native_sgemm(c, ldc, a, lda, b, ldb, M, N, K, ta, tb, acc, bias, native_packed_b);
    return;
  }
  if (bias) {  // Eigen and OpenBLAS: C (+)= bias first, then the product accumulated into it
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) c[i * ldc + j] = (acc ? c[i * ldc + j] : 0.f) + bias[j];
    acc = true;
  }
#ifdef NORMAD_HAS_OPENBLAS
  // OpenBLAS takes int sizes; beta = 0 overwrites C without reading it (C may be uninitialised)
  if (engine == GemmEngine::openblas &&
      std::max({M, N, K, lda, ldb, ldc}) <= int64_t(INT_MAX)) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                int(M), int(N), int(K), 1.f, a, int(lda), b, int(ldb), acc ? 1.f : 0.f, c, int(ldc));
    return;
  }
#else
  (void)engine;
#endif
  MapS C(c, M, N, OStride(ldc));
  product(C, CMapS(a, ta ? K : M, ta ? M : K, OStride(lda)), CMapS(b, tb ? N : K, tb ? K : N, OStride(ldb)),
          ta, tb, acc);
}

}  // namespace

bool openblas_built_in() {
#ifdef NORMAD_HAS_OPENBLAS
  return true;
#else
  return false;
#endif
}

void set_gemm_engine(GemmEngine e) {
  if (e == GemmEngine::openblas) {
    check(openblas_built_in(), "set_gemm_engine", "this build has no OpenBLAS (libopenblas-dev)");
#ifdef NORMAD_HAS_OPENBLAS
    openblas_single_threaded();
#endif
  }
  g_override.store(e);
}

GemmEngine gemm_engine() {
  pin_eigen_blocking();
  const GemmEngine o = g_override.load(std::memory_order_relaxed);
  return o == GemmEngine::automatic ? automatic_engine() : o;
}

std::string gemm_engine_description() {
  const GemmEngine engine = gemm_engine();  // also checks NORMAD_GEMM, in every build
  const std::string native_tile = std::to_string(kTileP) + " x " + std::to_string(kMaxFV * kVec) + " tile";
#ifdef NORMAD_HAS_OPENBLAS
  const std::string core = openblas_core();
  if (engine == GemmEngine::native) return "native (" + native_tile + ", OpenBLAS " + core + " and Eigen built in)";
  if (engine == GemmEngine::openblas) return "openblas (" + core + ")";
  return openblas_fits_cpu(core) ? "eigen (chosen over OpenBLAS " + core + ")"
                                 : "eigen (OpenBLAS has generic " + core + " kernels here)";
#else
  if (engine == GemmEngine::native) return "native (" + native_tile + ", Eigen built in, no OpenBLAS)";
  return "eigen (built without OpenBLAS)";
#endif
}

namespace {

using ColMapD = Eigen::Map<Eigen::MatrixXd, 0, OStride>;
using CColMapD = Eigen::Map<const Eigen::MatrixXd, 0, OStride>;

// One double product on `engine`, column-major: C = op(A) op(B) (acc 0), C += (acc 1), C -= (acc -1).
void gemm_f64_block(GemmEngine engine, double* c, int64_t ldc, const double* a, int64_t lda, const double* b,
                    int64_t ldb, int64_t M, int64_t N, int64_t K, bool ta, bool tb, int acc) {
  if (M == 0 || N == 0) return;
  if (engine == GemmEngine::native) {
    // column-major C = op(A) op(B) is row-major Cᵀ = op(B)ᵀ op(A)ᵀ on the same memory, and a
    // column-major operand read row-major is its transpose: B first, transposed as B was.
    native_dgemm(c, ldc, b, ldb, a, lda, N, M, K, tb, ta, acc);
    return;
  }
#ifdef NORMAD_HAS_OPENBLAS
  // beta = 0 overwrites C without reading it (C may be uninitialised)
  if (engine == GemmEngine::openblas && std::max({M, N, K, lda, ldb, ldc}) <= int64_t(INT_MAX)) {
    cblas_dgemm(CblasColMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(M), int(N),
                int(K), acc < 0 ? -1.0 : 1.0, a, int(lda), b, int(ldb), acc == 0 ? 0.0 : 1.0, c, int(ldc));
    return;
  }
#else
  (void)engine;
#endif
  product(ColMapD(c, M, N, OStride(ldc)), CColMapD(a, ta ? K : M, ta ? M : K, OStride(lda)),
          CColMapD(b, tb ? N : K, tb ? K : N, OStride(ldb)), ta, tb, acc);
}

// The unblocked step: the Cholesky factor of one diagonal block a [n, n] (leading dimension lda)
// in place, one single-threaded call; false when it is not positive definite.
bool cholesky_block(GemmEngine engine, double* a, int64_t n, int64_t lda) {
#ifdef NORMAD_HAS_OPENBLAS
  if (engine == GemmEngine::openblas) {
    const int ni = int(n), ld = int(lda);
    int info = 0;
    dpotrf_("L", &ni, a, &ld, &info);
    if (info < 0) throw Error("cholesky_f64: dpotrf rejected argument " + std::to_string(-info));
    return info == 0;
  }
#else
  (void)engine;
#endif
  ColMapD A(a, n, n, OStride(lda));
  Eigen::LLT<Eigen::Ref<Eigen::MatrixXd, 0, OStride>> llt(A);  // in place: the lower triangle becomes L
  return llt.info() == Eigen::Success;
}

// B [m, n] = B L⁻ᵀ for the lower-triangular L [n, n] (leading dimensions ldb, ldl): the panel
// below a factored diagonal block. One single-threaded call.
void solve_right_lower_transposed(GemmEngine engine, double* b, int64_t m, int64_t n, int64_t ldb, const double* l,
                                  int64_t ldl) {
#ifdef NORMAD_HAS_OPENBLAS
  if (engine == GemmEngine::openblas) {
    cblas_dtrsm(CblasColMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, int(m), int(n), 1.0, l, int(ldl),
                b, int(ldb));
    return;
  }
#else
  (void)engine;
#endif
  Eigen::Map<const Eigen::MatrixXd, 0, OStride> L(l, n, n, OStride(ldl));
  ColMapD B(b, m, n, OStride(ldb));
  L.transpose().triangularView<Eigen::Upper>().solveInPlace<Eigen::OnTheRight>(B);  // B Lᵀ⁻¹
}

// The lower triangle of C [n, n] -= P Pᵀ for P [n, k] (leading dimensions ldc, ldp); C's strict
// upper triangle is not touched. One single-threaded call.
void syrk_lower_subtract(GemmEngine engine, double* c, int64_t ldc, const double* p, int64_t ldp, int64_t n,
                         int64_t k) {
#ifdef NORMAD_HAS_OPENBLAS
  if (engine == GemmEngine::openblas) {
    cblas_dsyrk(CblasColMajor, CblasLower, CblasNoTrans, int(n), int(k), -1.0, p, int(ldp), 1.0, c, int(ldc));
    return;
  }
#else
  (void)engine;
#endif
  ColMapD C(c, n, n, OStride(ldc));
  C.selfadjointView<Eigen::Lower>().rankUpdate(CColMapD(p, n, k, OStride(ldp)), -1.0);
}

}  // namespace

bool cholesky_f64(double* a, int64_t n) {
  if (n < 0 || n > int64_t(INT_MAX))
    throw Error("cholesky_f64: a " + std::to_string(n) + " x " + std::to_string(n) + " matrix");
  const GemmEngine engine = gemm_engine();
  // Right-looking blocked Cholesky with fixed 128-wide panels: factor the diagonal block, solve the
  // panel below it (row blocks in parallel), subtract the panel's outer product from the lower
  // triangle of the rest (column blocks in parallel). Every block is one single-threaded engine
  // call on a shape-only split, so the factor does not depend on the thread count; the serial
  // dpotrf of the whole matrix took 107 ms of Gaussian-AD's 1792-wide fit on one core.
  constexpr int64_t kPanel = 128, kRows = 256;
  for (int64_t k = 0; k < n; k += kPanel) {
    const int64_t kb = std::min(kPanel, n - k), rest = n - k - kb;
    double* akk = a + k + k * n;
    if (!cholesky_block(engine, akk, kb, n)) return false;
    if (rest == 0) break;
    double* panel = akk + kb;  // rows k+kb.., columns k..k+kb
    parallel_for((rest + kRows - 1) / kRows, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t r = b * kRows, m = std::min(kRows, rest - r);
        solve_right_lower_transposed(engine, panel + r, m, kb, n, akk, n);
      }
    });
    // A[j:, j:j+w] -= panel[j:] panel[j:j+w]ᵀ for each column block j of the trailing matrix: the
    // diagonal w x w square's lower triangle by a SYRK, the rows below it by a GEMM
    const int64_t blocks = (rest + kPanel - 1) / kPanel;
    parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t j = b * kPanel, w = std::min(kPanel, rest - j);
        double* c = a + (k + kb + j) + (k + kb + j) * n;
        const double* pj = panel + j;
        syrk_lower_subtract(engine, c, n, pj, n, w, kb);
        gemm_f64_block(engine, c + w, n, pj + w, n, pj, n, rest - j - w, w, kb, false, true, -1);
      }
    });
  }
  return true;
}

void gemm_f64(double* c, int64_t ldc, const double* a, int64_t lda, const double* b, int64_t ldb, int64_t M,
              int64_t N, int64_t K, bool ta, bool tb, bool acc) {
  gemm_f64_block(gemm_engine(), c, ldc, a, lda, b, ldb, M, N, K, ta, tb, acc ? 1 : 0);
}

void gemm(float* c, const float* a, const float* b, int64_t M, int64_t N, int64_t K, bool ta,
          bool tb, bool acc, const float* bias) {
  const int64_t lda = ta ? M : K, ldb = tb ? K : N;
  const GemmEngine engine = gemm_engine();  // once: every block of one product on one engine
  // Small products: one engine call (a shape-only rule, so still thread-count independent).
  if (M * N * K < (int64_t(1) << 18)) {
    gemm_block(engine, c, N, a, lda, b, ldb, M, N, K, ta, tb, acc, bias);
    return;
  }
  // A deep product with a small result (a weight gradient over a large batch: ACR-NTL's encoder
  // takes [40960, 128]^T [40960, 570]): output blocks would each re-pack the whole of the other
  // operand (8 column blocks: 118.6 ms against 89.5 for one call on that shape, 1 core, standalone
  // OpenBLAS), so split the depth instead: chunks of K fixed by the shape (K / 2048 of them, 2 to
  // 16), each one engine call for the whole of C into its own buffer (the first into C itself,
  // with acc), in parallel; then C += the other chunks' products in chunk order. 8 / 16 chunks
  // took 79.0 / 74.9 ms on that shape standalone; bench case linear_weight_grad/n40960_k570_f128.
  // C of at most 256K floats: at most 15 MB of partial products.
  if (K >= 8192 && K >= 16 * std::max(M, N) && M * N <= (int64_t(1) << 18)) {
    const int64_t chunks = std::clamp<int64_t>(K / 2048, 2, 16), depth = (K + chunks - 1) / chunks;
    // chunk q > 0's product at (q - 1) M N; every element assigned by its chunk's engine call
    std::unique_ptr<float[]> partial(new float[(chunks - 1) * M * N]);
    parallel_for(chunks, 1, [&](int64_t q0, int64_t q1) {
      for (int64_t q = q0; q < q1; ++q) {
        const int64_t k0 = q * depth, kq = std::min(depth, K - k0);
        // depth k0.. is rows k0.. of a stored [K, M] (ta) or its columns k0.. ([M, K]); likewise b
        const float* aq = ta ? a + k0 * lda : a + k0;
        const float* bq = tb ? b + k0 : b + k0 * ldb;
        float* cq = q == 0 ? c : partial.get() + (q - 1) * M * N;
        gemm_block(engine, cq, N, aq, lda, bq, ldb, M, N, kq, ta, tb, q == 0 && acc, q == 0 ? bias : nullptr);
      }
    });
    parallel_for(M * N, 4096, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        float s = c[i];
        for (int64_t q = 1; q < chunks; ++q) s += partial[(q - 1) * M * N + i];
        c[i] = s;
      }
    });
    return;
  }
  // Split the longer output side (native, transposed A from 128 rows: the rows) into blocks sized
  // from the shape alone (about 8 of them, 64 to 512 long, a multiple of 16; native row blocks 66
  // to 510, a multiple of 6); each block is one engine call whatever the thread count, so every
  // element sees the same kernel blocking. Eigen and OpenBLAS pack the other operand once per block,
  // so blocks much smaller than that re-pack it too often (64-row blocks cost 1.5x on 4096 x 4096 x
  // 512); the native engine's row blocks share one packed B where it is packed (stored [N, K], below).
  // The native engine's column blocks are whole panels of its tile (64 columns on AVX-512): 80-column
  // blocks left a 16-wide panel in each, a 6 x 1-vector tile with one multiply-add per load
  // (ACR-NTL's [2048, 128]^T [2048, 570]: 149 -> 172 GFLOP/s, one Zen 5 core).
  // Under the native engine:
  // - a transposed A ([K, M] stored) goes by rows from 128 rows on (two blocks at least; fewer rows
  //   stay in column blocks, which keep more than two threads busy): each column block read the
  //   whole of A again (then transposing it, until round 16: ACR-NTL's [2048, 128]^T [2048, 570], 5
  //   blocks of 128 columns, 174 -> 188 GFLOP/s as two row blocks, one core), and the two blocks
  //   split evenly on two threads;
  // - row blocks are whole tiles (6 rows) but the last, as about 8 equal blocks: 80-row blocks
  //   left a 2-row tile in each (M = 570: 8 blocks, 7 x 80 + 10, 320 / 250 rows on two threads;
  //   now 7 x 72 + 66, 288 / 282). The sums of every element are the same chains of multiply-adds
  //   whatever the blocks (tensor/sgemm.cpp), so this changes no bits.
  const bool native = engine == GemmEngine::native;
  const bool by_rows = M >= N || M >= 256 || (native && ta && M >= 128);
  const int64_t len = by_rows ? M : N;
  const int64_t align = !native ? 16 : by_rows ? kTileP : kMaxFV * kVec;
  const int64_t min_block = (63 / align + 1) * align, max_block = 512 / align * align;
  // (the other engines' blocks as they were; native column blocks round len / 8 up, not down)
  const int64_t eighth = native ? (len + 7) / 8 : len / 8;
  const int64_t kBlock = std::clamp<int64_t>((eighth + align - 1) / align * align, min_block, max_block);
  const int64_t blocks = (len + kBlock - 1) / kBlock;
  // Native row blocks of a B stored [N, K] (a Linear's x W^T): B packed once for all of them (each
  // call packed it again: ACR-NTL's [40960, 128] x [128, 128]^T in 80 blocks), at most 16 MB
  // (tensor/aligned.h: line-aligned, as the engine's own panels). The same panels: no value changes.
  std::vector<float, LineAligned<float>> packed_b;
  if (native && by_rows && tb && blocks > 1 && native_packed_b_floats(K, N) <= (int64_t(4) << 20)) {
    packed_b.resize(native_packed_b_floats(K, N));
    native_pack_b(packed_b.data(), b, ldb, K, N, tb);
  }
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t s = blk * kBlock, n = std::min(len, s + kBlock) - s;
      if (by_rows)  // rows s..s+n of C use rows s..s+n of op(A) (columns of the stored [K, M] when ta)
        gemm_block(engine, c + s * N, N, ta ? a + s : a + s * K, lda, b, ldb, n, N, K, ta, tb, acc, bias,
                   packed_b.empty() ? nullptr : packed_b.data());
      else  // columns s..s+n of C use columns s..s+n of op(B) (rows of the stored [N, K] when tb)
        gemm_block(engine, c + s, N, a, lda, tb ? b + s * K : b + s, ldb, M, n, K, ta, tb, acc,
                   bias ? bias + s : nullptr);
    }
  });
}

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  const int64_t M = trans_a ? a.size(1) : a.size(0), K = trans_a ? a.size(0) : a.size(1);
  const int64_t N = trans_b ? b.size(0) : b.size(1);  // shapes checked by tensor/ops.cpp
  // internal callers (pairwise distances) may pass empty rows or D = 0
  if (M * N == 0 || K == 0) return Tensor::zeros({M, N});
  Tensor c = Tensor::empty({M, N});  // the GEMM assigns every element
  gemm(c.data(), a.data(), b.data(), M, N, K, trans_a, trans_b);
  return c;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  const int64_t N = x.size(0), K = x.size(1), F = w.size(0);  // shapes checked, N F > 0 (tensor/ops.cpp)
  Tensor y = Tensor::empty({N, F});  // the GEMM assigns every element, from the bias on (K = 0: the bias)
  gemm(y.data(), x.data(), w.data(), N, F, K, false, true, false, b.data());
  return y;
}

Tensor bmm(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  const int64_t Ba = a.size(0), Bb = b.size(0);
  const int64_t B = Ba == 1 ? Bb : Ba;  // a batch of 1 broadcasts (also against 0)
  const int64_t M = trans_a ? a.size(2) : a.size(1), K = trans_a ? a.size(1) : a.size(2);
  const int64_t N = trans_b ? b.size(1) : b.size(2);  // shapes checked, B M N K > 0 (tensor/ops.cpp)
  Tensor c = Tensor::empty({B, M, N});
  const int64_t sa = Ba == 1 ? 0 : M * K, sb = Bb == 1 ? 0 : K * N;
  const GemmEngine engine = gemm_engine();
  parallel_for(B, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t i = b0; i < b1; ++i)
      gemm_block(engine, c.data() + i * M * N, N, a.data() + i * sa, trans_a ? M : K, b.data() + i * sb,
                 trans_b ? K : N, M, N, K, trans_a, trans_b, false);
  });
  return c;
}

}  // namespace normad::cpu
