// Tests of the CUDA batch-norm family (cuda/batchnorm.cuh, .cu): grouped training forward with
// running statistics, evaluation, grouped backward and fold.
// Math: [cuda_body] runs the v1 bodies on the host over host arrays, and v2 as a host emulation
// (every thread's strided slice, cuda/block_tree.cuh's emulated warp/block tree, the same
// normalisation helpers), against the reference backend (tensor/reference.cpp) at 1e-6; v2's
// pieces alone against closed forms (each value of a group visited once; Welford trees vs two-pass
// double statistics at 1e-10 relative, with a mean of 1000 to show the merge does not cancel).
// [cuda] runs every version on a GPU against the reference at the harness tolerance (1e-5) and
// checks that two runs give the same bits; without a GPU it prints SKIPPED.
//
// Shapes: x [N, C] or [N, C, H, W]; G groups of Q = N / G rows; M = Q*H*W values per (g, c).
#include <algorithm>
#include <sstream>
#include <vector>

#include "cuda_test_util.h"
#include "tensor/random.h"

#ifdef NORMAD_HAS_CUDA
#include "cuda/batchnorm.cuh"
#include "cuda/batchnorm.h"
#include "cuda/block_tree.cuh"
#endif

using namespace normad;

#ifdef NORMAD_HAS_CUDA

namespace {

constexpr float kEps = 1e-5f, kMomentum = 0.1f;

struct BnCase {
  Shape xs;
  int64_t G;
  bool affine, running;
  float offset;  // the mean of x (cancellation in x - mu)
};

// Odd sizes, size-1 dims, one row per group, and groups long enough for several values per v2
// thread at each of its block sizes (256, 512, 1024).
const std::vector<BnCase> kHostCases = {
    {{6, 4}, 1, true, true, 0.f},          {{12, 4}, 3, true, true, 0.f},
    {{4, 3, 3, 5}, 2, true, true, 0.f},    {{4, 3, 3, 5}, 1, false, false, 0.f},
    {{9, 2, 1, 3}, 3, true, true, 3.f},    {{2, 5}, 2, true, false, 0.f},  // one row per group: y = beta
    {{5, 3, 2, 3}, 5, true, true, 0.f},    {{1, 1, 1, 2}, 1, false, true, 0.f},
    {{60, 3, 9, 9}, 2, true, true, 1.f},   {{4, 2, 70, 70}, 1, true, true, 0.f},
    {{2, 1, 200, 200}, 1, true, false, 0.f}, {{96, 4, 7, 7}, 32, true, true, 0.f}};

// "v2" (through a stream: GCC 12 warns falsely on "v" + std::to_string(v) at -O3)
std::string version_tag(int v) {
  std::ostringstream os;
  os << 'v' << v;
  return os.str();
}

std::string tag(const BnCase& k) {
  return shape_str(k.xs) + " G" + std::to_string(k.G) + (k.affine ? "" : " no affine") +
         (k.running ? " running" : "");
}

// Inputs on the CPU; gamma, beta, the running statistics undefined where the case has none.
struct BnInputs {
  Tensor x, gamma, beta, rm, rv, dout;
};
BnInputs make_inputs(const BnCase& k, uint64_t seed) {
  Generator g(seed);
  const int64_t C = k.xs[1];
  BnInputs in;
  in.x = g.normal(k.xs, k.offset, 1.f);
  in.dout = g.normal(k.xs);
  if (k.affine) in.gamma = g.uniform({C}, 0.5f, 1.5f), in.beta = g.normal({C});
  if (k.running) in.rm = g.normal({C}), in.rv = g.uniform({C}, 0.5f, 2.f);
  return in;
}

const float* ptr_or_null(const Tensor& t) { return t.defined() ? t.data() : nullptr; }
Tensor copy_on(const Tensor& t, Device d) { return t.defined() ? t.to(d).clone() : Tensor(); }

cuda::BnDims dims_of(const BnCase& k) {
  return {k.xs[1], k.xs.size() == 4 ? k.xs[2] * k.xs[3] : 1, k.xs[0] / k.G};
}

// Everything a training forward and its backward produce.
struct BnResult {
  Tensor y, mean, invstd, rm, rv, dx, dgamma, dbeta;
};

// The public ops on device d (the reference backend, or the GPU).
BnResult run_ops(const BnCase& k, const BnInputs& in, Device d) {
  BnResult r;
  Tensor x = in.x.to(d), gamma = copy_on(in.gamma, d), beta = copy_on(in.beta, d);
  r.rm = copy_on(in.rm, d), r.rv = copy_on(in.rv, d);
  BatchNormSaved saved;
  r.y = batch_norm_train(x, gamma, beta, kEps, k.G, &saved, k.running ? &r.rm : nullptr,
                         k.running ? &r.rv : nullptr, kMomentum);
  r.mean = saved.mean, r.invstd = saved.invstd;
  r.dx = batch_norm_backward(in.dout.to(d), x, gamma, saved, k.G, &r.dgamma, &r.dbeta);
  return r;
}

void expect_results(const BnResult& got, const BnResult& ref, const BnCase& k, double tol, const std::string& what) {
  const std::string t = what + " " + tag(k);
  test::expect_match(got.y, ref.y, tol, tol, t + " y");
  test::expect_match(got.mean, ref.mean, tol, tol, t + " saved mean");
  test::expect_match(got.invstd, ref.invstd, tol, tol, t + " saved invstd");
  if (k.running) {
    test::expect_match(got.rm, ref.rm, tol, tol, t + " running mean");
    test::expect_match(got.rv, ref.rv, tol, tol, t + " running var");
  }
  test::expect_match(got.dx, ref.dx, tol, tol, t + " dx");
  test::expect_match(got.dgamma, ref.dgamma, tol, tol, t + " dgamma");
  test::expect_match(got.dbeta, ref.dbeta, tol, tol, t + " dbeta");
}

// The host run of one version: v1's bodies, or v2's blocks emulated thread by thread. The backward
// reads the saved statistics this forward produced (as the autograd graph does).
BnResult run_host(int version, const BnCase& k, const BnInputs& in) {
  const cuda::BnDims d = dims_of(k);
  const int64_t C = d.C, G = k.G, GC = G * C;
  const double M = double(d.values());
  const float *x = in.x.data(), *gamma = ptr_or_null(in.gamma), *beta = ptr_or_null(in.beta);
  BnResult r;
  r.y = Tensor::empty(k.xs), r.mean = Tensor::empty({G, C}), r.invstd = Tensor::empty({G, C});
  r.rm = copy_on(in.rm, Device::CPU), r.rv = copy_on(in.rv, Device::CPU);
  std::vector<double> stats(3 * GC);
  const cuda::BnStats st{stats.data(), stats.data() + GC, stats.data() + 2 * GC};
  std::vector<cuda::SumPair> sums(GC);
  r.dx = Tensor::empty(k.xs);
  const float *dout = in.dout.data(), *mean = r.mean.data(), *invstd = r.invstd.data();
  if (version == 1) {
    test::run_on_host(GC, cuda::BnStatsBody{st, r.mean.data(), r.invstd.data(), x, d, double(kEps)});
    test::run_on_host(in.x.numel(), cuda::BnNormalizeBody{r.y.data(), x, gamma, beta, st.mu, st.inv, d});
    test::run_on_host(GC, cuda::BnBackwardSumsBody{sums.data(), dout, x, mean, invstd, d});
    test::run_on_host(in.x.numel(), cuda::BnBackwardDxBody{r.dx.data(), dout, x, gamma, mean, invstd, sums.data(), d});
  } else {
    const int T = cuda::bn_block_threads(d.values());
    std::vector<cuda::Welford> part(T);
    std::vector<cuda::SumPair> part_sums(T);
    for (int64_t gc = 0; gc < GC; ++gc) {
      const cuda::GroupSlice s = cuda::group_slice(d, gc);
      const int64_t c = gc % C;
      // forward block: thread states, the tree, statistics, then each thread's slice normalised
      for (int t = 0; t < T; ++t) part[t] = cuda::welford_slice(x, s, t, T);
      const cuda::Welford w = cuda::emulate_block_tree(part.data(), T, cuda::WelfordMerge{});
      cuda::bn_store_stats(st, r.mean.data(), r.invstd.data(), gc, w.mean, w.m2, M, double(kEps));
      const double inv = cuda::bn_invstd(w.m2, M, double(kEps));
      for (int t = 0; t < T; ++t)
        s.for_each(t, T, [&](int64_t o) {
          r.y.data()[s.base + o] = cuda::bn_normalize_value(x[s.base + o], w.mean, inv, gamma, beta, c);
        });
      // backward block: the two sums by the tree, then dx over each thread's slice
      const double mu = mean[gc], iv = invstd[gc], ga = gamma ? double(gamma[c]) : 1.0;
      for (int t = 0; t < T; ++t) part_sums[t] = cuda::bn_backward_slice(dout, x, mu, iv, s, t, T);
      sums[gc] = cuda::emulate_block_tree(part_sums.data(), T, cuda::SumPairAdd{});
      for (int t = 0; t < T; ++t)
        s.for_each(t, T, [&](int64_t o) {
          const int64_t i = s.base + o;
          r.dx.data()[i] = cuda::bn_dx_value(dout[i], x[i], mu, iv, ga, sums[gc], M);
        });
    }
  }
  // running statistics and parameter gradients: the same per-channel bodies in both versions
  if (k.running)
    test::run_on_host(C, cuda::BnRunningBody{r.rm.data(), r.rv.data(), st.mu, st.unbiased, G, C, double(kMomentum)});
  r.dgamma = Tensor::empty({C}), r.dbeta = Tensor::empty({C});
  test::run_on_host(C, cuda::BnParamGradBody{r.dgamma.data(), r.dbeta.data(), sums.data(), G, C});
  return r;
}

// Two-pass double statistics of (g, c): the reference's formulas.
void two_pass(const float* x, const cuda::GroupSlice& s, double* mean, double* m2) {
  double sum = 0, sq = 0;
  s.for_each(0, 1, [&](int64_t o) { sum += x[s.base + o]; });
  *mean = sum / double(s.M);
  s.for_each(0, 1, [&](int64_t o) { sq += (x[s.base + o] - *mean) * (x[s.base + o] - *mean); });
  *m2 = sq;
}

}  // namespace

TEST_CASE("cuda body: a group slice visits each value of (g, c) once, split over T threads", "[cuda_body]") {
  // S = 1 ([N, C]), S < T, S > T, S a multiple of T, one row per group
  for (cuda::BnDims d : {cuda::BnDims{5, 1, 30}, cuda::BnDims{3, 49, 4}, cuda::BnDims{2, 300, 3},
                         cuda::BnDims{4, 64, 2}, cuda::BnDims{3, 7, 1}}) {
    for (int64_t T : {1, 32, 64, 256}) {
      for (int64_t gc : {int64_t(0), 2 * d.C - 1}) {
        const cuda::GroupSlice s = cuda::group_slice(d, gc);
        const int64_t g = gc / d.C, c = gc % d.C;
        // the values of (g, c): rows g*Q .. g*Q + Q - 1 of channel c, in order
        std::vector<int64_t> want, got;
        for (int64_t n = g * d.Q; n < (g + 1) * d.Q; ++n)
          for (int64_t k = 0; k < d.S; ++k) want.push_back((n * d.C + c) * d.S + k);
        for (int64_t t = 0; t < T; ++t) {
          int64_t j = t;  // thread t visits flat indices t, t + T, ...: check the order too
          s.for_each(t, T, [&](int64_t o) {
            CHECK(s.base + o == want[j]);
            got.push_back(s.base + o);
            j += T;
          });
        }
        std::sort(got.begin(), got.end());
        INFO("C " << d.C << " S " << d.S << " Q " << d.Q << " T " << T << " gc " << gc);
        CHECK(got == want);
      }
    }
  }
}

TEST_CASE("cuda body: Welford states merged by the block tree equal two-pass double statistics", "[cuda_body]") {
  Generator gen(21);
  // mean 1000, spread 1: a naive sum-of-squares variance would lose ~6 digits here
  const Tensor x = gen.normal({3, 2, 90, 91}, 1000.f, 1.f);
  const cuda::BnDims d{2, 90 * 91, 1};
  for (int T : {32, 64, 256, 1024}) {
    for (int64_t gc = 0; gc < 6; ++gc) {
      const cuda::GroupSlice s = cuda::group_slice(d, gc);
      std::vector<cuda::Welford> part(T);
      for (int t = 0; t < T; ++t) part[t] = cuda::welford_slice(x.data(), s, t, T);
      const cuda::Welford w = cuda::emulate_block_tree(part.data(), T, cuda::WelfordMerge{});
      double mean, m2;
      two_pass(x.data(), s, &mean, &m2);
      INFO("T " << T << " gc " << gc);
      CHECK(w.n == double(s.M));
      CHECK(std::fabs(w.mean - mean) <= 1e-13 * std::fabs(mean));
      CHECK(std::fabs(w.m2 - m2) <= 1e-10 * m2);
    }
  }
  // empty states (threads past the last value, lanes past the last warp) change nothing
  const cuda::Welford a{3, 2.0, 5.0}, empty{};
  const cuda::Welford l = cuda::welford_merge(empty, a), r = cuda::welford_merge(a, empty);
  CHECK((l.n == 3 && l.mean == 2.0 && l.m2 == 5.0));
  CHECK((r.n == 3 && r.mean == 2.0 && r.m2 == 5.0));
}

TEST_CASE("cuda body: batch norm v1 bodies and the v2 emulation match the reference", "[cuda_body]") {
  // The same formulas in double as the reference; v2's statistics differ from the two-pass ones in
  // the last bits of a double, hence 1e-6 (float rounding) and not bit equality.
  for (size_t i = 0; i < kHostCases.size(); ++i) {
    const BnCase& k = kHostCases[i];
    const BnInputs in = make_inputs(k, 100 + i);
    const BnResult ref = run_ops(k, in, Device::Reference);
    for (int v : {1, 2}) expect_results(run_host(v, k, in), ref, k, 1e-6, version_tag(v));
  }
}

TEST_CASE("cuda body: batch norm eval and fold match the reference", "[cuda_body]") {
  Generator g(5);
  for (Shape s : {Shape{5, 3}, Shape{2, 3, 4, 4}, Shape{1, 3, 1, 1}}) {
    for (bool affine : {true, false}) {
      const Tensor x = g.normal(s), gamma = g.uniform({3}, 0.5f, 1.5f), beta = g.normal({3});
      const Tensor rm = g.normal({3}), rv = g.uniform({3}, 0.5f, 2.f), bias = g.normal({3});
      const Tensor ga = affine ? gamma : Tensor(), be = affine ? beta : Tensor();
      const Device R = Device::Reference;
      const Tensor ref = batch_norm_eval(x.to(R), copy_on(ga, R), copy_on(be, R), rm.to(R), rv.to(R), kEps);
      Tensor got = Tensor::empty(s);
      test::run_on_host(x.numel(), cuda::BnEvalBody{got.data(), x.data(), ptr_or_null(ga), ptr_or_null(be), rm.data(),
                                                    rv.data(), 3, s.size() == 4 ? s[2] * s[3] : 1, double(kEps)});
      test::expect_match(got, ref, 1e-6, 1e-6, "eval " + shape_str(s));
      for (bool conv_bias : {true, false}) {
        const Tensor b = conv_bias ? bias : Tensor();
        Tensor scale_ref, shift_ref;
        batch_norm_fold(copy_on(ga, R), copy_on(be, R), copy_on(b, R), rm.to(R), rv.to(R), kEps, &scale_ref,
                        &shift_ref);
        Tensor scale = Tensor::empty({3}), shift = Tensor::empty({3});
        test::run_on_host(3, cuda::BnFoldBody{scale.data(), shift.data(), ptr_or_null(ga), ptr_or_null(be),
                                              ptr_or_null(b), rm.data(), rv.data(), double(kEps)});
        test::expect_match(scale, scale_ref, 1e-6, 1e-6, "fold scale");
        test::expect_match(shift, shift_ref, 1e-6, 1e-6, "fold shift");
      }
    }
  }
}

// ---- on a GPU ----

TEST_CASE("cuda batch norm: every version on the GPU matches the reference, the same bits twice", "[cuda]") {
  if (!test::have_gpu()) return;
  // the harness-like shapes: a conv map with 1 and 32 groups, ACR's [N, C] in 32 groups, one row per
  // group (no running statistics: running_var needs two values), long groups for v2 at 512 and 1024 threads
  const std::vector<BnCase> cases = {
      {{96, 64, 7, 7}, 1, true, true, 0.f},  {{96, 64, 7, 7}, 32, true, true, 0.f},
      {{960, 64}, 32, true, true, 0.f},      {{8, 5}, 8, true, false, 0.f},
      {{4, 3, 2, 2}, 4, true, true, 0.f},    {{3, 2}, 1, false, true, 2.f},
      {{30, 16, 14, 14}, 1, true, true, 1.f}, {{2, 1, 200, 200}, 1, true, true, 0.f}};
  for (int v = 1; v <= cuda::batch_norm_version_count(); ++v) {
    cuda::set_batch_norm_version(v);
    for (size_t i = 0; i < cases.size(); ++i) {
      const BnCase& k = cases[i];
      const BnInputs in = make_inputs(k, 200 + i);
      const BnResult ref = run_ops(k, in, Device::Reference);
      const BnResult got = run_ops(k, in, Device::CUDA);
      expect_results(got, ref, k, 1e-5, version_tag(v));
      expect_results(run_ops(k, in, Device::CUDA), got, k, 0, version_tag(v) + " rerun");
    }
  }
  cuda::set_batch_norm_version(0);
  // eval and fold (one version)
  Generator g(9);
  const Tensor x = g.normal({120, 64, 14, 14}), gamma = g.normal({64}), beta = g.normal({64});
  const Tensor rm = g.normal({64}), rv = g.uniform({64}, 0.5f, 2.f), bias = g.normal({64});
  const Device R = Device::Reference, G = Device::CUDA;
  test::expect_match(batch_norm_eval(x.to(G), gamma.to(G), beta.to(G), rm.to(G), rv.to(G), kEps),
                     batch_norm_eval(x.to(R), gamma.to(R), beta.to(R), rm.to(R), rv.to(R), kEps), 1e-6, 1e-5, "eval");
  Tensor s_ref, h_ref, s_got, h_got;
  batch_norm_fold(gamma.to(R), beta.to(R), bias.to(R), rm.to(R), rv.to(R), kEps, &s_ref, &h_ref);
  batch_norm_fold(gamma.to(G), beta.to(G), bias.to(G), rm.to(G), rv.to(G), kEps, &s_got, &h_got);
  test::expect_match(s_got, s_ref, 1e-6, 1e-6, "fold scale");
  test::expect_match(h_got, h_ref, 1e-6, 1e-6, "fold shift");
}

#endif  // NORMAD_HAS_CUDA
