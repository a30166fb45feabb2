// Tests of the CUDA distance and normalisation family (cuda/distance.cuh, cuda/distance.cu):
// pairwise_sqdist v1-v3, its backward v1-v2, l2_normalize and its backward v1-v2.
// Math: dist_ij = |a_i - b_j|^2; da = 2 (rowsum(G) a - G b), db = 2 (colsum(G) b - G^T a) with G
// dout masked where dist <= 0; y = x / max(|x|, eps) and its backward.
// [cuda_body] (a build with nvcc, no GPU): the bodies and HD helpers compiled by g++ and run on the
// host over host arrays: v1 bodies against the reference bit for bit (their loops are the
// reference's), v2's tile steps with the 256 threads of each block emulated in turn and v2's warp
// lanes with the butterfly emulated (against the reference within float rounding), v3's norm and
// epilogue bodies with the CPU's GEMM against the CPU op bit for bit (the CPU's formula), the
// backward's mask / sums / GEMMs / scale-sub pieces against the CPU op. These check index math and
// formulas; the launch shapes, shared-memory synchronisation, shuffles and cuBLAS calls run only
// on a GPU ([cuda]: every version through the public ops against the reference backend).
// Shapes: a [M, D], b [N, D], dist [M, N]; odd sizes, M or N = 1, D = 1, D = 513, 1000 x 700 x 64.
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "helpers.h"
#include "tensor/backend.h"

#ifdef NORMAD_HAS_CUDA
#include "cuda/distance.cuh"
#include "cuda/distance.h"
#endif

using namespace normad;

namespace {

struct Dims {
  int64_t M, N, D;
};
std::string dims_str(const Dims& d) {
  return "M " + std::to_string(d.M) + " N " + std::to_string(d.N) + " D " + std::to_string(d.D);
}

// a [M, D], b [N, D] normal, with row 0 of b equal to the last row of a (a zero distance) when
// `equal_row` and a NaN in b's last row when `nan`.
std::pair<Tensor, Tensor> sqdist_inputs(const Dims& d, uint64_t seed, bool equal_row, bool nan) {
  Generator g(seed);
  Tensor a = g.normal({d.M, d.D}), b = g.normal({d.N, d.D});
  if (equal_row && d.D > 0)
    for (int64_t k = 0; k < d.D; ++k) b.data()[k] = a.data()[(d.M - 1) * d.D + k];
  if (nan && d.D > 0) b.data()[(d.N - 1) * d.D + d.D / 2] = NAN;
  return {a, b};
}

// dout [M, N], a, b as sqdist_inputs (equal rows) and their CPU distances, with the equal rows'
// distance set to 0 (masked whatever the rounding gave) and one NaN distance (keeps its gradient).
std::array<Tensor, 4> backward_inputs(const Dims& d, uint64_t seed) {
  auto [a, b] = sqdist_inputs(d, seed, true, false);
  Generator g(seed + 1000);
  const Tensor dout = g.normal({d.M, d.N});
  Tensor dist = pairwise_sqdist(a, b);
  dist.data()[(d.M - 1) * d.N] = 0.f;
  if (d.M * d.N > 2) dist.data()[1] = NAN;
  return {dout, a, b, dist};
}

Tensor on_ref(const Tensor& t) { return t.to(Device::Reference); }

// Counts the elements whose bits differ (NaN equals NaN), reporting the first few.
void check_bitwise(const Tensor& got_any, const Tensor& want_any, const std::string& what) {
  const Tensor got = got_any.to(Device::CPU), want = want_any.to(Device::CPU);
  REQUIRE(got.shape() == want.shape());
  int64_t differ = 0;
  std::string first;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const float x = got.data()[i], y = want.data()[i];
    if (std::isnan(x) ? std::isnan(y) : x == y) continue;
    if (++differ <= 3) first += " [" + std::to_string(i) + "] " + std::to_string(x) + " vs " + std::to_string(y);
  }
  INFO(what << ": " << differ << " of " << got.numel() << " elements differ:" << first);
  CHECK(differ == 0);
}

// |got - want| <= atol + rtol |want|, NaN exactly where the reference has NaN (test::expect_close
// counts NaN = NaN as a mismatch, and these ops propagate NaN on purpose).
void check_close(const Tensor& got_any, const Tensor& want_any, double atol, double rtol, const std::string& what) {
  const Tensor got = got_any.to(Device::CPU), want = want_any.to(Device::CPU);
  REQUIRE(got.shape() == want.shape());
  int64_t bad = 0;
  double worst = 0;
  std::string first;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const double x = got.data()[i], y = want.data()[i];
    const bool ok = std::isnan(x) || std::isnan(y) ? std::isnan(x) && std::isnan(y)
                                                   : std::fabs(x - y) <= atol + rtol * std::fabs(y);
    if (!std::isnan(x - y)) worst = std::max(worst, std::fabs(x - y));
    if (!ok && ++bad <= 3) first += " [" + std::to_string(i) + "] " + std::to_string(x) + " vs " + std::to_string(y);
  }
  INFO(what << " (atol " << atol << ", rtol " << rtol << "): " << bad << " of " << got.numel()
            << " outside, largest |err| " << worst << ":" << first);
  CHECK(bad == 0);
}

const std::vector<Dims> kBodyDims{{5, 4, 3}, {1, 6, 7}, {6, 1, 7}, {3, 4, 1}, {2, 3, 513}, {130, 70, 19}, {4, 5, 0}};

}  // namespace

#ifdef NORMAD_HAS_CUDA

namespace {

template <class Body>
void run_on_host(int64_t n, const Body& body) {
  for (int64_t i = 0; i < n; ++i) body(i);
}

// pairwise_sqdist v2 with the GPU's blocks and threads emulated: per block, per K-step, every
// thread loads (the __syncthreads), then every thread adds its micro-tile, then every thread stores.
Tensor sqdist_tiled_on_host(const Tensor& a, const Tensor& b) {
  using namespace cuda;
  const int64_t M = a.size(0), N = b.size(0), D = a.size(1);
  Tensor out = Tensor::full({M, N}, -1.f);  // any output left unwritten shows
  static float as[kTileK][kTilePad], bs[kTileK][kTilePad];
  std::vector<float> acc(kTileThreads * kMicro * kMicro);
  auto acc_of = [&](int tid) -> float(&)[kMicro][kMicro] {
    return *reinterpret_cast<float(*)[kMicro][kMicro]>(&acc[tid * kMicro * kMicro]);
  };
  for (int64_t row0 = 0; row0 < M; row0 += kTile)
    for (int64_t col0 = 0; col0 < N; col0 += kTile) {
      std::fill(acc.begin(), acc.end(), 0.f);
      for (int64_t k0 = 0; k0 < D; k0 += kTileK) {
        for (int tid = 0; tid < kTileThreads; ++tid) {
          sqdist_load_tile(as, a.data(), M, D, row0, k0, tid);
          sqdist_load_tile(bs, b.data(), N, D, col0, k0, tid);
        }
        for (int tid = 0; tid < kTileThreads; ++tid) sqdist_tile_step(acc_of(tid), as, bs, tid / 16, tid % 16);
      }
      for (int tid = 0; tid < kTileThreads; ++tid)
        sqdist_tile_store(out.data(), acc_of(tid), M, N, row0, col0, tid / 16, tid % 16);
    }
  return out;
}

// l2_normalize v2 (forward, or backward when dout is given) with the warp emulated: lane l's
// strided partial sums, combined by the butterfly the shuffles perform.
double warp_dot_on_host(const float* p, const float* q, int64_t D) {
  double lanes[32];
  for (int l = 0; l < 32; ++l) lanes[l] = cuda::strided_dot(p, q, D, l, 32);
  return cuda::butterfly_sum_host(lanes);
}

}  // namespace

TEST_CASE("cuda body: pairwise_sqdist v1 equals the reference bit for bit, v2's tiles within float rounding",
          "[cuda_body]") {
  uint64_t seed = 31;
  for (const Dims& d : kBodyDims) {
    auto [a, b] = sqdist_inputs(d, seed++, true, true);
    const Tensor want = reference_backend().pairwise_sqdist(on_ref(a), on_ref(b));
    Tensor v1 = Tensor::empty({d.M, d.N});
    run_on_host(d.M * d.N, cuda::SqdistBody{v1.data(), a.data(), b.data(), d.N, d.D});
    check_bitwise(v1, want, "v1 " + dims_str(d));
    // v2 sums (a - b)^2 in float in increasing k: about sqrt(D) ulp of the (positive) sum
    check_close(sqdist_tiled_on_host(a, b), want, 1e-6, 1e-5, "v2 " + dims_str(d));
  }
}

TEST_CASE("cuda body: pairwise_sqdist v3's norms and epilogue give the CPU's GEMM form bit for bit", "[cuda_body]") {
  uint64_t seed = 41;
  for (const Dims& d : kBodyDims) {
    auto [a, b] = sqdist_inputs(d, seed++, true, true);
    // the CPU backend computes |a|^2 + |b|^2 - 2 a.b with its GEMM; v3 the same with cuBLAS's
    const Tensor want = pairwise_sqdist(a, b);
    Tensor dot = matmul(a, b, false, true);
    std::vector<double> norms(d.M + d.N);
    run_on_host(d.M, cuda::RowSqnormBody{norms.data(), a.data(), d.D});
    run_on_host(d.N, cuda::RowSqnormBody{norms.data() + d.M, b.data(), d.D});
    run_on_host(d.M * d.N, cuda::SqdistEpilogueBody{dot.data(), norms.data(), norms.data() + d.M, d.N});
    check_bitwise(dot, want, "v3 " + dims_str(d));
  }
}

TEST_CASE("cuda body: pairwise_sqdist_backward v1 equals the reference, v2's pieces the CPU", "[cuda_body]") {
  uint64_t seed = 51;
  for (const Dims& d : kBodyDims) {
    auto [dout, a, b, dist] = backward_inputs(d, seed++);
    Tensor da_ref, db_ref, da_cpu, db_cpu;
    reference_backend().pairwise_sqdist_backward(on_ref(dout), on_ref(a), on_ref(b), on_ref(dist), &da_ref, &db_ref);
    pairwise_sqdist_backward(dout, a, b, dist, &da_cpu, &db_cpu);
    // v1: one body, two stride patterns
    Tensor da = Tensor::empty(a.shape()), db = Tensor::empty(b.shape());
    run_on_host(d.M * d.D, cuda::SqdistGradBody{da.data(), dout.data(), dist.data(), a.data(), b.data(), d.N, d.D, d.N, 1});
    run_on_host(d.N * d.D, cuda::SqdistGradBody{db.data(), dout.data(), dist.data(), b.data(), a.data(), d.M, d.D, 1, d.N});
    check_bitwise(da, da_ref, "v1 da " + dims_str(d));
    check_bitwise(db, db_ref, "v1 db " + dims_str(d));
    // v2: G by the mask body; sums and GEMMs as the CPU (cuda/reduce and cuBLAS on a GPU); the
    // scale-sub body finishes in float as the CPU's three elementwise ops, but s x - Gx may become
    // one FMA, and it cancels terms of size ~|s x| ~ 10: atol 1e-5
    Tensor G = Tensor::empty({d.M, d.N});
    run_on_host(G.numel(), cuda::MaskGradBody{G.data(), dout.data(), dist.data()});
    Tensor gda = matmul(G, b, false, false), gdb = matmul(G, a, true, false);
    const Tensor rows = sum(G, {1}), cols = sum(G, {0});
    run_on_host(gda.numel(), cuda::ScaleSubBody{gda.data(), rows.data(), a.data(), d.D});
    run_on_host(gdb.numel(), cuda::ScaleSubBody{gdb.data(), cols.data(), b.data(), d.D});
    check_close(gda, da_cpu, 1e-5, 1e-6, "v2 da " + dims_str(d));
    check_close(gdb, db_cpu, 1e-5, 1e-6, "v2 db " + dims_str(d));
  }
}

TEST_CASE("cuda body: l2_normalize and its backward, v1 as the CPU bit for bit, v2's warp lanes within rounding",
          "[cuda_body]") {
  const std::vector<std::pair<int64_t, int64_t>> shapes{{4, 5}, {1, 1}, {3, 513}, {7, 31}, {7, 33}, {2, 64}};
  uint64_t seed = 61;
  for (auto [M, D] : shapes) {
    for (float eps : {1e-12f, 0.5f}) {
      Generator g(seed++);
      Tensor x = g.normal({M, D});
      const Tensor dout = g.normal({M, D});
      // a zero row (the floor acts), and a NaN in the last row when there are several
      for (int64_t k = 0; k < D; ++k) x.data()[k] = 0.f;
      if (M > 2) x.data()[(M - 1) * D] = NAN;
      const std::string what = "[" + std::to_string(M) + ", " + std::to_string(D) + "] eps " + std::to_string(eps);
      const Tensor y_cpu = l2_normalize(x, eps);
      const Tensor dx_cpu = l2_normalize_backward(dout, x, y_cpu, eps);
      Tensor y = Tensor::empty({M, D}), dx = Tensor::empty({M, D});
      run_on_host(M, cuda::L2NormalizeBody{y.data(), x.data(), D, eps});
      run_on_host(M, cuda::L2NormalizeBackwardBody{dx.data(), dout.data(), x.data(), y_cpu.data(), D, eps});
      check_bitwise(y, y_cpu, "v1 forward " + what);
      check_bitwise(dx, dx_cpu, "v1 backward " + what);
      // v2: the warp kernel's steps per row with the 32 lanes emulated
      Tensor y2 = Tensor::empty({M, D}), dx2 = Tensor::empty({M, D});
      for (int64_t i = 0; i < M; ++i) {
        const float* xi = x.data() + i * D;
        const float inv = cuda::l2_inv_norm(warp_dot_on_host(xi, xi, D), eps);
        const double norm = std::sqrt(warp_dot_on_host(xi, xi, D));
        const double gy = warp_dot_on_host(dout.data() + i * D, y_cpu.data() + i * D, D);
        for (int64_t k = 0; k < D; ++k) {
          y2.data()[i * D + k] = xi[k] * inv;
          dx2.data()[i * D + k] = cuda::l2_backward_value(dout.data()[i * D + k], y_cpu.data()[i * D + k], gy, norm, eps);
        }
      }
      check_close(y2, y_cpu, 1e-7, 1e-6, "v2 forward " + what);
      check_close(dx2, dx_cpu, 1e-7, 1e-6, "v2 backward " + what);
    }
  }
}

// ---- on a GPU: every version through the public ops against the reference backend ----

namespace {

// Sets a version knob for one scope and puts auto back after it (also when a check throws).
struct Version {
  void (*set)(int);
  Version(void (*s)(int), int v) : set(s) { set(v); }
  ~Version() { set(0); }
};

Tensor gpu(const Tensor& t) { return t.to(Device::CUDA); }

double max_abs(const Tensor& t_any) {
  const Tensor t = t_any.to(Device::CPU);
  double m = 0;
  for (int64_t i = 0; i < t.numel(); ++i)
    if (std::isfinite(t.data()[i])) m = std::max(m, double(std::fabs(t.data()[i])));
  return m;
}

const std::vector<Dims> kGpuDims{{1, 7, 5}, {6, 1, 5}, {5, 4, 1}, {33, 65, 513}, {1000, 700, 64}, {3, 2, 0}};

}  // namespace

TEST_CASE("cuda: every pairwise_sqdist version matches the reference", "[cuda]") {
  if (!test::gpu_or_skip()) return;
  uint64_t seed = 71;
  for (const Dims& d : kGpuDims) {
    auto [a, b] = sqdist_inputs(d, seed++, true, true);
    const Tensor want = pairwise_sqdist(on_ref(a), on_ref(b));
    for (int v = 1; v <= cuda::pairwise_sqdist_version_count(); ++v) {
      Version knob(cuda::set_pairwise_sqdist_version, v);
      const Tensor got = pairwise_sqdist(gpu(a), gpu(b));
      CHECK(got.device() == Device::CUDA);
      // v1 double sums: the reference's rounding; v2 float sums: ~sqrt(D) ulp; v3 the GEMM form
      // loses ~1e-7 (|a|^2 + |b|^2) ~ 1e-7 4 D to cancellation (a zero distance may read ~1e-5)
      const double atol = v == 1 ? 1e-7 : v == 2 ? 1e-6 : 1e-6 * (4.0 * double(d.D) + 1.0);
      check_close(got, want, atol, v == 1 ? 1e-6 : 1e-5, "pairwise_sqdist v" + std::to_string(v) + " " + dims_str(d));
    }
  }
}

TEST_CASE("cuda: every pairwise_sqdist_backward version matches the reference", "[cuda]") {
  if (!test::gpu_or_skip()) return;
  uint64_t seed = 81;
  for (const Dims& d : kGpuDims) {
    auto [dout, a, b, dist] = backward_inputs(d, seed++);
    Tensor da_ref, db_ref;
    pairwise_sqdist_backward(on_ref(dout), on_ref(a), on_ref(b), on_ref(dist), &da_ref, &db_ref);
    for (int v = 1; v <= cuda::pairwise_sqdist_backward_version_count(); ++v) {
      Version knob(cuda::set_pairwise_sqdist_backward_version, v);
      Tensor da, db, da_only, db_only;
      pairwise_sqdist_backward(gpu(dout), gpu(a), gpu(b), gpu(dist), &da, &db);
      pairwise_sqdist_backward(gpu(dout), gpu(a), gpu(b), gpu(dist), &da_only, nullptr);
      pairwise_sqdist_backward(gpu(dout), gpu(a), gpu(b), gpu(dist), nullptr, &db_only);
      // v1 sums in double; v2's float GEMMs over N (or M) terms: 1e-5 of the largest gradient
      const double tol = v == 1 ? 1e-6 : 1e-5;
      const std::string what = "backward v" + std::to_string(v) + " " + dims_str(d);
      check_close(da, da_ref, tol * (max_abs(da_ref) + 1), tol, what + " da");
      check_close(db, db_ref, tol * (max_abs(db_ref) + 1), tol, what + " db");
      check_bitwise(da_only, da, what + " da alone");
      check_bitwise(db_only, db, what + " db alone");
    }
  }
}

TEST_CASE("cuda: l2_normalize and its backward match the reference in every version", "[cuda]") {
  if (!test::gpu_or_skip()) return;
  const std::vector<std::pair<int64_t, int64_t>> shapes{{1, 1}, {4, 5}, {3, 513}, {7, 31}, {7, 33}, {1000, 64}};
  uint64_t seed = 91;
  for (auto [M, D] : shapes) {
    Generator g(seed++);
    Tensor x = g.normal({M, D});
    const Tensor dout = g.normal({M, D});
    for (int64_t k = 0; k < D; ++k) x.data()[k] = 0.f;  // a zero row
    const Tensor y_ref = l2_normalize(on_ref(x), 1e-12f);
    const Tensor dx_ref = l2_normalize_backward(on_ref(dout), on_ref(x), y_ref, 1e-12f);
    for (int v = 1; v <= cuda::l2_normalize_version_count(); ++v) {
      Version knob(cuda::set_l2_normalize_version, v);
      const std::string what = "v" + std::to_string(v) + " [" + std::to_string(M) + ", " + std::to_string(D) + "]";
      const Tensor y = l2_normalize(gpu(x), 1e-12f);
      check_close(y, y_ref, 1e-7, 1e-6, "l2_normalize " + what);
      const Tensor dx = l2_normalize_backward(gpu(dout), gpu(x), gpu(y_ref.to(Device::CPU)), 1e-12f);
      check_close(dx, dx_ref, 1e-6, 1e-5, "l2_normalize_backward " + what);
    }
  }
}

TEST_CASE("cuda: a version knob out of range is an error naming the family", "[cuda]") {
  if (!test::gpu_or_skip()) return;
  const Tensor a = gpu(Tensor::ones({2, 3}));
  {
    Version knob(cuda::set_pairwise_sqdist_version, cuda::pairwise_sqdist_version_count() + 1);
    CHECK_THROWS_WITH(pairwise_sqdist(a, a), Catch::Contains("pairwise_sqdist"));
  }
  {
    Version knob(cuda::set_l2_normalize_version, 9);
    CHECK_THROWS_WITH(l2_normalize(a), Catch::Contains("l2_normalize"));
  }
}

#endif  // NORMAD_HAS_CUDA
