// Tests of the CUDA pooling and upsampling family (cuda/pooling.cuh, .cu).
// Math: [cuda_body] runs every body on the host over host arrays against the reference backend
// (tensor/reference.cpp), bit for bit: the bodies repeat the reference's operations in its order
// (max: the same scan and NaN rule; sums in double in output order). global_avg_pool's v2 (lane
// sums merged by the emulated shuffle tree of cuda/block_tree.cuh) adds in another order: 1e-7.
// Inputs: small integers (ties inside windows), NaN and -inf, odd sizes, ceil_mode, padding with
// and without count_include_pad, overlapping windows, size-1 dims; max_pool2d_backward gets any
// in-range argmax, repeats included, as in the op harness.
// [cuda] runs every version on a GPU against the reference; without a GPU it prints SKIPPED.
//
// Shapes: x [N, C, H, W], out [N, C, OH, OW].
#include <cmath>
#include <vector>

#include "cuda_test_util.h"
#include "tensor/random.h"

#ifdef NORMAD_HAS_CUDA
#include "cuda/block_tree.cuh"
#include "cuda/pooling.cuh"
#include "cuda/pooling.h"
#endif

using namespace normad;

#ifdef NORMAD_HAS_CUDA

namespace {

Pool2dArgs args(int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw, bool ceil = false,
                bool include_pad = true) {
  Pool2dArgs a;
  a.kh = kh, a.kw = kw, a.stride_h = sh, a.stride_w = sw, a.pad_h = ph, a.pad_w = pw;
  a.ceil_mode = ceil, a.count_include_pad = include_pad;
  return a;
}

struct PoolCase {
  Shape xs;
  Pool2dArgs a;
};
const std::vector<PoolCase> kPoolCases = {
    {{2, 3, 7, 7}, args(3, 3, 2, 2, 1, 1)},
    {{1, 2, 6, 6}, args(3, 3, 2, 2, 0, 0, true)},
    {{1, 2, 6, 6}, args(3, 3, 2, 2, 1, 1, true)},
    {{1, 2, 6, 6}, args(3, 3, 2, 2, 1, 1, true, false)},
    {{2, 2, 5, 5}, args(2, 2, 2, 2, 0, 0, true)},
    {{1, 3, 7, 5}, args(3, 2, 1, 2, 1, 1, false, false)},
    {{1, 1, 1, 1}, args(1, 1, 1, 1, 0, 0)},
    {{2, 1, 9, 8}, args(3, 3, 1, 1, 1, 1)},                // heavily overlapping windows
    {{1, 2, 1, 6}, args(1, 3, 1, 2, 0, 1, true, false)},   // a size-1 dim
    {{3, 1, 8, 1}, args(2, 1, 3, 1, 1, 0, true, true)},    // stride > kernel, ceil
    {{1, 1, 10, 11}, args(4, 5, 3, 2, 2, 2, true, true)}};

std::string tag(const PoolCase& k) {
  return shape_str(k.xs) + " k" + std::to_string(k.a.kh) + "x" + std::to_string(k.a.kw) + " s" +
         std::to_string(k.a.stride_h) + "x" + std::to_string(k.a.stride_w) + " p" + std::to_string(k.a.pad_h) +
         "x" + std::to_string(k.a.pad_w) + (k.a.ceil_mode ? " ceil" : "") +
         (k.a.count_include_pad ? "" : " exclude pad");
}

cuda::PoolGeom geom_of(const Shape& xs, const Shape& os, const Pool2dArgs& a) {
  return {xs[2], xs[3], os[2], os[3], a.kh, a.kw, a.stride_h, a.stride_w, a.pad_h, a.pad_w, a.count_include_pad};
}

// Integers in [-4, 5) (ties), with NaN and -inf sprinkled in.
Tensor tie_values(const Shape& s, uint64_t seed, bool specials) {
  Generator g(seed);
  Tensor t(s);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = float(g.randint(-4, 5));
  if (specials)
    for (int64_t i = 3; i < t.numel(); i += 7) t.data()[i] = i % 2 ? NAN : -INFINITY;
  return t;
}

// Any in-range index per output (repeats included).
Tensor any_argmax(const Shape& os, int64_t hw, uint64_t seed) {
  Generator g(seed);
  Tensor t(os);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = float(g.randint(0, hw));
  return t;
}

const Device R = Device::Reference;

}  // namespace

TEST_CASE("cuda body: max pooling with argmax and its gather backward match the reference bit for bit", "[cuda_body]") {
  for (size_t i = 0; i < kPoolCases.size(); ++i) {
    const PoolCase& k = kPoolCases[i];
    const Shape os = pool2d_shape(k.xs, k.a);
    const cuda::PoolGeom g = geom_of(k.xs, os, k.a);
    for (bool specials : {false, true}) {
      const Tensor x = tie_values(k.xs, 40 + i, specials);
      Tensor am_ref;
      const Tensor ref = max_pool2d(x.to(R), k.a, &am_ref);
      Tensor out = Tensor::empty(os), am = Tensor::empty(os), out_only = Tensor::empty(os);
      test::run_on_host(out.numel(), cuda::MaxPoolBody{out.data(), am.data(), x.data(), g});
      test::run_on_host(out.numel(), cuda::MaxPoolBody{out_only.data(), nullptr, x.data(), g});
      const std::string t = tag(k) + (specials ? " NaN/-inf" : "");
      test::expect_match(out, ref, 0, 0, "max_pool2d " + t);
      test::expect_match(am, am_ref, 0, 0, "max_pool2d argmax " + t);
      test::expect_match(out_only, ref, 0, 0, "max_pool2d without argmax " + t);
    }
    // backward: the forward's argmax and any in-range one
    Generator gen(60 + i);
    const Tensor dout = gen.normal(os);
    Tensor am_fwd;
    max_pool2d(tie_values(k.xs, 70 + i, false), k.a, &am_fwd);
    for (const Tensor& am : {am_fwd, any_argmax(os, k.xs[2] * k.xs[3], 80 + i)}) {
      const Tensor ref = max_pool2d_backward(dout.to(R), am.to(R), k.xs);
      Tensor dx = Tensor::empty(k.xs);
      test::run_on_host(dx.numel(), cuda::MaxPoolBackwardBody{dx.data(), dout.data(), am.data(), k.xs[2] * k.xs[3],
                                                              os[2] * os[3]});
      test::expect_match(dx, ref, 0, 0, "max_pool2d_backward " + tag(k));
    }
  }
}

TEST_CASE("cuda body: average pooling and its gather backward match the reference bit for bit", "[cuda_body]") {
  for (size_t i = 0; i < kPoolCases.size(); ++i) {
    const PoolCase& k = kPoolCases[i];
    const Shape os = pool2d_shape(k.xs, k.a);
    const cuda::PoolGeom g = geom_of(k.xs, os, k.a);
    Generator gen(90 + i);
    const Tensor x = gen.normal(k.xs), dout = gen.normal(os);
    Tensor out = Tensor::empty(os), dx = Tensor::empty(k.xs);
    test::run_on_host(out.numel(), cuda::AvgPoolBody{out.data(), x.data(), g});
    test::expect_match(out, avg_pool2d(x.to(R), k.a), 0, 0, "avg_pool2d " + tag(k));
    test::run_on_host(dx.numel(), cuda::AvgPoolBackwardBody{dx.data(), dout.data(), g});
    test::expect_match(dx, avg_pool2d_backward(dout.to(R), k.xs, k.a), 0, 0, "avg_pool2d_backward " + tag(k));
  }
}

TEST_CASE("cuda body: global average pooling v1 and the v2 warp tree, upsampling and its backward", "[cuda_body]") {
  Generator gen(11);
  for (Shape s : {Shape{2, 3, 5, 7}, Shape{1, 1, 1, 1}, Shape{3, 2, 9, 13}, Shape{1, 2, 1, 40}}) {
    const Tensor x = gen.normal(s, 0.5f, 1.f);
    const int64_t P = s[0] * s[1], HW = s[2] * s[3];
    const Tensor ref = global_avg_pool(x.to(R));
    Tensor v1 = Tensor::empty({s[0], s[1]}), v2 = Tensor::empty({s[0], s[1]});
    test::run_on_host(P, cuda::GlobalAvgPoolBody{v1.data(), x.data(), HW});
    test::expect_match(v1, ref, 0, 0, "global_avg_pool v1 " + shape_str(s));
    // v2: lane l of the plane's warp sums elements l, l + 32, ...; the shuffle tree merges the lanes
    for (int64_t p = 0; p < P; ++p) {
      double lanes[cuda::kWarp];
      for (int l = 0; l < cuda::kWarp; ++l) lanes[l] = cuda::strided_sum(x.data() + p * HW, HW, l, cuda::kWarp);
      v2.data()[p] = float(cuda::emulate_warp_tree(lanes, cuda::DoubleAdd{}) / double(HW));
    }
    test::expect_match(v2, ref, 1e-7, 1e-7, "global_avg_pool v2 " + shape_str(s));
  }
  for (auto [s, scale] : std::vector<std::pair<Shape, int64_t>>{
           {{2, 3, 3, 4}, 2}, {{1, 1, 2, 1}, 3}, {{1, 2, 2, 2}, 1}, {{1, 1, 1, 1}, 4}, {{2, 1, 3, 5}, 3}}) {
    const Tensor x = gen.normal(s);
    const Shape os{s[0], s[1], s[2] * scale, s[3] * scale};
    const Tensor dout = gen.normal(os);
    Tensor out = Tensor::empty(os), dx = Tensor::empty(s);
    test::run_on_host(out.numel(), cuda::UpsampleBody{out.data(), x.data(), s[2], s[3], scale});
    test::expect_match(out, upsample_nearest2d(x.to(R), scale), 0, 0, "upsample " + shape_str(s));
    test::run_on_host(dx.numel(), cuda::UpsampleBackwardBody{dx.data(), dout.data(), s[2], s[3], scale});
    test::expect_match(dx, upsample_nearest2d_backward(dout.to(R), scale), 0, 0, "upsample backward " + shape_str(s));
  }
}

TEST_CASE("cuda body: the windows holding an input are exactly those whose span contains it", "[cuda_body]") {
  // every (stride, pad, kernel, size) combination PyTorch accepts (pad <= k / 2), both ceil modes
  for (int64_t k = 1; k <= 5; ++k)
    for (int64_t stride = 1; stride <= 4; ++stride)
      for (int64_t pad = 0; pad <= k / 2; ++pad)
        for (int64_t in = 1; in <= 9; ++in)
          for (bool ceil : {false, true}) {
            Pool2dArgs a = args(k, 1, stride, 1, pad, 0, ceil);
            if (in + 2 * pad < k) continue;  // no window fits
            const int64_t outs = pool2d_shape({1, 1, in, 1}, a)[2];
            for (int64_t i = 0; i < in; ++i) {
              int64_t first, last;
              cuda::windows_holding(i, stride, pad, k, outs, &first, &last);
              for (int64_t o = 0; o < outs; ++o) {
                const cuda::Span s = cuda::pool_span(o, stride, pad, k, in);
                const bool holds = i >= s.lo && i < s.hi;
                INFO("k " << k << " stride " << stride << " pad " << pad << " in " << in << " i " << i << " o " << o);
                CHECK(holds == (o >= first && o <= last));
              }
            }
          }
}

// ---- on a GPU ----

TEST_CASE("cuda pooling: every version on the GPU matches the reference", "[cuda]") {
  if (!test::have_gpu()) return;
  const Device G = Device::CUDA;
  std::vector<PoolCase> cases = kPoolCases;
  cases.push_back({{30, 64, 28, 28}, args(2, 2, 2, 2, 0, 0)});
  cases.push_back({{30, 64, 28, 28}, args(3, 3, 2, 2, 1, 1, true, false)});
  for (size_t i = 0; i < cases.size(); ++i) {
    const PoolCase& k = cases[i];
    const Shape os = pool2d_shape(k.xs, k.a);
    const Tensor x = tie_values(k.xs, 140 + i, true);
    Tensor am_ref, am;
    test::expect_match(max_pool2d(x.to(G), k.a, &am), max_pool2d(x.to(R), k.a, &am_ref), 0, 0, "max_pool2d " + tag(k));
    test::expect_match(am, am_ref, 0, 0, "max_pool2d argmax " + tag(k));
    test::expect_match(max_pool2d(x.to(G), k.a), max_pool2d(x.to(R), k.a), 0, 0, "max_pool2d no argmax " + tag(k));
    Generator gen(160 + i);
    const Tensor dout = gen.normal(os), xn = gen.normal(k.xs), any = any_argmax(os, k.xs[2] * k.xs[3], 180 + i);
    test::expect_match(max_pool2d_backward(dout.to(G), any.to(G), k.xs), max_pool2d_backward(dout.to(R), any.to(R), k.xs),
                       1e-6, 1e-6, "max_pool2d_backward " + tag(k));
    test::expect_match(avg_pool2d(xn.to(G), k.a), avg_pool2d(xn.to(R), k.a), 1e-6, 1e-6, "avg_pool2d " + tag(k));
    test::expect_match(avg_pool2d_backward(dout.to(G), k.xs, k.a), avg_pool2d_backward(dout.to(R), k.xs, k.a), 1e-6,
                       1e-6, "avg_pool2d_backward " + tag(k));
  }
  Generator gen(7);
  for (int v = 1; v <= cuda::pooling_version_count(); ++v) {
    cuda::set_pooling_version(v);
    for (Shape s : {Shape{2, 3, 5, 7}, Shape{1, 1, 1, 1}, Shape{30, 256, 14, 14}, Shape{4, 3, 1, 100}}) {
      const Tensor x = gen.normal(s);
      test::expect_match(global_avg_pool(x.to(G)), global_avg_pool(x.to(R)), 1e-7, 1e-6,
                         "global_avg_pool v" + std::to_string(v) + " " + shape_str(s));
    }
  }
  cuda::set_pooling_version(0);
  for (auto [s, scale] : std::vector<std::pair<Shape, int64_t>>{{{2, 3, 3, 4}, 2}, {{1, 1, 2, 1}, 3}, {{30, 64, 14, 14}, 2}}) {
    const Tensor x = gen.normal(s), dout = gen.normal({s[0], s[1], s[2] * scale, s[3] * scale});
    test::expect_match(upsample_nearest2d(x.to(G), scale), upsample_nearest2d(x.to(R), scale), 0, 0,
                       "upsample " + shape_str(s));
    test::expect_match(upsample_nearest2d_backward(dout.to(G), scale), upsample_nearest2d_backward(dout.to(R), scale),
                       1e-6, 1e-6, "upsample backward " + shape_str(s));
  }
}

#endif  // NORMAD_HAS_CUDA
