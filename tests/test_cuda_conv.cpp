// Tests of the CUDA convolution family (cuda/conv.cuh, cuda/conv.cu, cuda/conv.h).
// Math: every result is compared with the reference backend (tensor/reference.cpp: double sums) at
// the float error bound of a K-term dot product, |got - ref| <= (K + 3) u conv(|x|, |w|) with
// u = 2^-24 and conv(|x|, |w|) the same convolution of absolute values (any summation order, FMA
// or not, stays inside it; one wrong index does not). v1 sums in double, so its K is 1.
// Tags: [cuda_body] needs a build with nvcc but no GPU: the v1 bodies, the v3 epilogue pass, and
// a naive host GEMM over the v2 operand maps, stores and split-K plan (exactly the structs the
// v2 launcher passes to its kernel) run on the host over stride 1/2/3, pad 0/1/2, dilation 1/2,
// groups 1/2/C, 1x1 to 7x7 kernels, odd and size-1 dims; plus the version pick. [cuda] needs a GPU
// (else "SKIPPED: <reason>"): every version (auto, 1, 2, 3) of every entry through the public ops
// on Device::CUDA against the reference, twice for bitwise determinism.
// Shapes: N batch, C channels, F filters, H, W input, OH, OW output, KH, KW kernel, G groups.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "tensor/backend.h"
#include "tests/helpers.h"

#ifdef NORMAD_HAS_CUDA
#include "cuda/conv.cuh"
#include "cuda/conv.h"
#include "cuda/reduce.cuh"
#endif

using namespace normad;

#ifdef NORMAD_HAS_CUDA

namespace {

struct ConvCase {
  std::string name;
  Shape xs, ws;
  Conv2dArgs a;
};

Conv2dArgs args(int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh = 1, int64_t dw = 1, int64_t g = 1) {
  Conv2dArgs a;
  a.stride_h = sh, a.stride_w = sw, a.pad_h = ph, a.pad_w = pw, a.dil_h = dh, a.dil_w = dw, a.groups = g;
  return a;
}

std::string describe(const ConvCase& k) {
  const Conv2dArgs& a = k.a;
  return k.name + " x" + shape_str(k.xs) + " w" + shape_str(k.ws) + " s" + std::to_string(a.stride_h) + "x" +
         std::to_string(a.stride_w) + " p" + std::to_string(a.pad_h) + "x" + std::to_string(a.pad_w) + " d" +
         std::to_string(a.dil_h) + "x" + std::to_string(a.dil_w) + " g" + std::to_string(a.groups);
}

// The networks' shapes and the corner cases (also the GPU list).
std::vector<ConvCase> named_cases() {
  return {
      {"omniglot 1->64", {4, 1, 28, 28}, {64, 1, 3, 3}, args(2, 2, 1, 1)},
      {"omniglot 64->64", {4, 64, 28, 28}, {64, 64, 3, 3}, args(2, 2, 1, 1)},
      {"lenet 5x5", {2, 1, 28, 28}, {6, 1, 5, 5}, args(1, 1, 0, 0)},
      {"lenet 5x5 second", {2, 6, 12, 12}, {16, 6, 5, 5}, args(1, 1, 0, 0)},
      {"resnet stem 7x7 s2 p3", {2, 3, 32, 32}, {8, 3, 7, 7}, args(2, 2, 3, 3)},
      {"resnet 3x3 s1", {2, 8, 9, 9}, {8, 8, 3, 3}, args(1, 1, 1, 1)},
      {"depthwise 3x3", {2, 6, 8, 7}, {6, 1, 3, 3}, args(1, 1, 1, 1, 1, 1, 6)},
      {"depthwise multiplier 2", {1, 3, 7, 7}, {6, 1, 3, 3}, args(2, 2, 1, 1, 1, 1, 3)},
      {"grouped 2", {2, 4, 7, 6}, {6, 2, 3, 3}, args(2, 2, 1, 1, 1, 1, 2)},
      {"dilation 2", {1, 3, 10, 9}, {4, 3, 3, 3}, args(1, 1, 2, 2, 2, 2)},
      {"odd asymmetric", {3, 5, 13, 11}, {7, 5, 3, 2}, args(2, 1, 1, 0, 1, 2)},
      {"pointwise", {3, 5, 4, 4}, {3, 5, 1, 1}, args(1, 1, 0, 0)},
      {"pointwise wide", {2, 64, 7, 7}, {32, 64, 1, 1}, args(1, 1, 0, 0)},
      {"pointwise strided", {2, 4, 5, 5}, {3, 4, 1, 1}, args(2, 2, 0, 0)},
      {"all ones", {1, 1, 1, 1}, {1, 1, 1, 1}, args(1, 1, 0, 0)},
      {"1x1 input padded", {2, 3, 1, 1}, {2, 3, 3, 3}, args(1, 1, 1, 1)},
      {"one row", {1, 2, 1, 5}, {3, 2, 1, 3}, args(1, 1, 0, 1)},
      {"one column strided", {1, 4, 5, 1}, {2, 4, 3, 1}, args(2, 1, 0, 0)},
      {"one filter", {2, 3, 6, 5}, {1, 3, 2, 2}, args(1, 1, 0, 0)},
      {"no input channels", {2, 0, 5, 4}, {3, 0, 3, 3}, args(1, 1, 1, 1)},
      {"no input channels 1x1", {2, 0, 5, 4}, {3, 0, 1, 1}, args(1, 1, 0, 0)},
      // N OH OW = 2048: the weight gradient's K splits into 4 chunks (partials summed in order)
      {"split-K weight gradient", {8, 3, 16, 16}, {4, 3, 3, 3}, args(1, 1, 1, 1)},
      {"split-K grouped", {8, 4, 16, 16}, {4, 2, 3, 3}, args(1, 1, 1, 1, 1, 1, 2)},
  };
}

// Whether the window fits one dim (the numerator of OH >= 0; C++ division truncates toward 0).
bool fits(int64_t in, int64_t k, int64_t p, int64_t d) { return in + 2 * p - d * (k - 1) - 1 >= 0; }

// The grid: k 1/3/5/7 x stride 1/2/3 x pad 0/1/2 x dilation 1/2 x groups 1/2/C (depthwise) on an
// odd-sized input, every combination whose window fits.
std::vector<ConvCase> grid_cases() {
  std::vector<ConvCase> out;
  const int64_t N = 2, C = 4, H = 11, W = 9;
  for (int64_t k : {1, 3, 5, 7})
    for (int64_t s : {1, 2, 3})
      for (int64_t p : {0, 1, 2})
        for (int64_t d : {1, 2})
          for (int64_t g : {1, 2, 4}) {
            if (!fits(H, k, p, d) || !fits(W, k, p, d)) continue;
            const int64_t F = g == C ? C : 6;
            out.push_back({"grid", {N, C, H, W}, {F, C / g, k, k}, args(s, s, p, p, d, d, g)});
          }
  return out;
}

std::vector<ConvCase> all_cases() {
  std::vector<ConvCase> v = named_cases(), g = grid_cases();
  v.insert(v.end(), g.begin(), g.end());
  return v;
}

// The reference backend's result of an op on host tensors, back on the CPU.
Tensor on(const Tensor& t, Device d) { return t.defined() ? t.to(d) : Tensor(); }

constexpr double kUnit = 1.0 / 16777216.0;  // u = 2^-24, float's unit roundoff

// got vs ref elementwise: equal (NaN meeting NaN, inf the same inf) or |got - ref| <= bound[i].
// Prints the first mismatches.
void expect_within(const Tensor& got_any, const Tensor& ref_any, const Tensor& bound_any, const std::string& what) {
  const Tensor got = got_any.to(Device::CPU), ref = ref_any.to(Device::CPU), bound = bound_any.to(Device::CPU);
  REQUIRE(got.shape() == ref.shape());
  int64_t bad = 0;
  std::string report;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const double g = got.data()[i], r = ref.data()[i];
    const bool ok = (std::isnan(g) && std::isnan(r)) || g == r || std::fabs(g - r) <= bound.data()[i];
    if (!ok && bad++ < 5)
      report += "  [" + std::to_string(i) + "] got " + std::to_string(g) + " ref " + std::to_string(r) +
                " bound " + std::to_string(bound.data()[i]) + "\n";
  }
  INFO(what << ": " << bad << " of " << got.numel() << " outside the bound\n" << report);
  CHECK(bad == 0);
}

// (terms + 3) u |reference computed on absolute values|: the bound of a float dot product of
// `terms` products, its rounding to float and one epilogue addition.
Tensor bound_of(const Tensor& abs_ref, int64_t terms) {
  return mul_scalar(abs_ref, float(double(terms + 3) * kUnit)).to(Device::CPU);
}

// One case's random tensors and reference results on the host.
struct Problem {
  ConvCase k;
  Shape os;
  Tensor x, w, b, dout;
  Problem(const ConvCase& c, uint64_t seed) : k(c), os(conv2d_shape(c.xs, c.ws, c.a)) {
    Generator g(seed);
    x = g.normal(k.xs);
    w = g.normal(k.ws, 0.f, 0.5f);
    b = g.normal({k.ws[0]});
    dout = g.normal(os);
  }
  // GEMM depths: forward Cg KH KW, backward input Fg KH KW, backward weight N OH OW
  int64_t k_forward() const { return k.ws[1] * k.ws[2] * k.ws[3]; }
  int64_t k_input() const { return k.ws[0] / k.a.groups * k.ws[2] * k.ws[3]; }
  int64_t k_weight() const { return os[0] * os[2] * os[3]; }
  int64_t dw_numel() const { return k.ws[0] * k.ws[1] * k.ws[2] * k.ws[3]; }
  // reference results of conv(x, w) + b, dx, dw, and the same ops on absolute values
  Tensor ref_forward(bool bias) const {
    return conv2d(on(x, Device::Reference), on(w, Device::Reference), bias ? on(b, Device::Reference) : Tensor(), k.a).to(Device::CPU);
  }
  Tensor abs_forward(bool bias) const {
    return conv2d(on(abs(x), Device::Reference), on(abs(w), Device::Reference),
                  bias ? on(abs(b), Device::Reference) : Tensor(), k.a).to(Device::CPU);
  }
  Tensor ref_input() const {
    return conv2d_backward_input(on(dout, Device::Reference), on(w, Device::Reference), k.xs, k.a).to(Device::CPU);
  }
  Tensor abs_input() const {
    return conv2d_backward_input(on(abs(dout), Device::Reference), on(abs(w), Device::Reference), k.xs, k.a).to(Device::CPU);
  }
  Tensor ref_weight() const {
    return conv2d_backward_weight(on(dout, Device::Reference), on(x, Device::Reference), k.ws, k.a).to(Device::CPU);
  }
  Tensor abs_weight() const {
    return conv2d_backward_weight(on(abs(dout), Device::Reference), on(abs(x), Device::Reference), k.ws, k.a).to(Device::CPU);
  }
};

template <class Body>
void run_on_host(int64_t n, const Body& body) {
  for (int64_t i = 0; i < n; ++i) body(i);
}

Tensor nans(const Shape& s) { return Tensor::full(s, std::numeric_limits<float>::quiet_NaN()); }

// The v2 kernel without its tiles: every C element of every group and K chunk summed in float in
// increasing k over the maps, then stored. Counts operand offsets outside their tensors.
struct HostGemm {
  int64_t a_size, b_size;  // numel of the tensors behind the A and B maps
  int64_t out_of_range = 0;
  template <class Map>
  float fetch(const Map& map, int row, int col, int g, int64_t size) {
    const int64_t o = map.offset(row, col, g);
    if (o < -1 || o >= size) {
      ++out_of_range;
      return 0.f;
    }
    return cuda::gather(map, row, col, g);
  }
  template <class G>
  void run(const G& gm) {
    const cuda::GemmDims& d = gm.d;
    for (int g = 0; g < d.groups; ++g)
      for (int chunk = 0; chunk < d.chunks; ++chunk) {
        const int k0 = chunk * d.k_chunk, k1 = std::min(d.K, k0 + d.k_chunk);
        for (int m = 0; m < d.M; ++m)
          for (int n = 0; n < d.Ncols; ++n) {
            float acc = 0.f;
            for (int k = k0; k < k1; ++k) acc += fetch(gm.a, m, k, g, a_size) * fetch(gm.b, k, n, g, b_size);
            gm.store(m, n, g, chunk, acc);
          }
      }
  }
};

}  // namespace

TEST_CASE("cuda conv body: v1 forward, backward input and backward weight equal the reference", "[cuda_body]") {
  uint64_t seed = 100;
  for (const ConvCase& k : all_cases()) {
    const Problem p(k, seed++);
    const cuda::ConvShape s = cuda::make_conv_shape(k.xs, k.ws, k.a);
    for (bool bias : {false, true}) {
      Tensor out = nans(p.os);
      run_on_host(out.numel(), cuda::ConvForwardBody{out.data(), p.x.data(), p.w.data(), s,
                                                     cuda::ConvEpilogue{nullptr, bias ? p.b.data() : nullptr}});
      expect_within(out, p.ref_forward(bias), bound_of(p.abs_forward(bias), 1), "v1 forward " + describe(k));
    }
    Tensor dx = nans(k.xs);
    run_on_host(dx.numel(), cuda::ConvBackwardInputBody{dx.data(), p.dout.data(), p.w.data(), s});
    expect_within(dx, p.ref_input(), bound_of(p.abs_input(), 1), "v1 backward input " + describe(k));
    Tensor dw = nans(k.ws);
    run_on_host(dw.numel(), cuda::ConvBackwardWeightBody{dw.data(), p.dout.data(), p.x.data(), s});
    expect_within(dw, p.ref_weight(), bound_of(p.abs_weight(), 1), "v1 backward weight " + describe(k));
  }
}

TEST_CASE("cuda conv body: v1 propagates NaN and inf as the reference", "[cuda_body]") {
  const ConvCase k{"awkward", {2, 3, 6, 5}, {4, 3, 3, 3}, args(1, 1, 1, 1)};
  Problem p(k, 7);
  // inf, -inf and NaN sprinkled over x and dout (w stays finite: padding is skipped, not 0 * w)
  const float specials[] = {INFINITY, -INFINITY, NAN};
  for (int64_t i = 0; i < p.x.numel(); i += 37) p.x.data()[i] = specials[(i / 37) % 3];
  for (int64_t i = 0; i < p.dout.numel(); i += 41) p.dout.data()[i] = specials[(i / 41) % 3];
  const cuda::ConvShape s = cuda::make_conv_shape(k.xs, k.ws, k.a);
  Tensor out = Tensor::empty(p.os), dx = Tensor::empty(k.xs), dw = Tensor::empty(k.ws);
  run_on_host(out.numel(), cuda::ConvForwardBody{out.data(), p.x.data(), p.w.data(), s, cuda::ConvEpilogue{}});
  run_on_host(dx.numel(), cuda::ConvBackwardInputBody{dx.data(), p.dout.data(), p.w.data(), s});
  run_on_host(dw.numel(), cuda::ConvBackwardWeightBody{dw.data(), p.dout.data(), p.x.data(), s});
  // NaN bounds: only equal values (NaN with NaN, inf with the same inf) or finite ones within 4u pass
  expect_within(out, p.ref_forward(false), bound_of(p.abs_forward(false), 1), "forward");
  expect_within(dx, p.ref_input(), bound_of(p.abs_input(), 1), "backward input");
  expect_within(dw, p.ref_weight(), bound_of(p.abs_weight(), 1), "backward weight");
  // the activations let NaN through and map -inf as the reference does (relu 0, silu NaN)
  const Tensor shift = Generator(8).normal({k.ws[0]});
  for (Activation act : {Activation::relu, Activation::silu}) {
    run_on_host(out.numel(), cuda::ConvForwardBody{out.data(), p.x.data(), p.w.data(), s,
                                                   cuda::ConvEpilogue{nullptr, shift.data(), act}});
    const Tensor ref = conv2d_affine_act(on(p.x, Device::Reference), on(p.w, Device::Reference), Tensor(),
                                         on(shift, Device::Reference), k.a, act);
    const Tensor lin_abs = add(p.abs_forward(false), abs(shift).reshape({1, k.ws[0], 1, 1}));
    expect_within(out, ref, add(mul_scalar(bound_of(lin_abs, 1), 1.1f), mul_scalar(abs(ref.to(Device::CPU)), float(8 * kUnit))),
                  act == Activation::relu ? "relu" : "silu");
  }
}

TEST_CASE("cuda conv body: the affine + activation epilogue (v1 and v3's pass) equals conv2d_affine_act", "[cuda_body]") {
  uint64_t seed = 500;
  for (const ConvCase& k : named_cases()) {
    const Problem p(k, seed++);
    const cuda::ConvShape s = cuda::make_conv_shape(k.xs, k.ws, k.a);
    Generator g(seed++);
    const Tensor scale = g.uniform({k.ws[0]}, -2.f, 2.f), shift = g.normal({k.ws[0]});
    const Tensor plain = p.ref_forward(false), plain_abs = p.abs_forward(false);
    for (Activation act : {Activation::none, Activation::relu, Activation::silu})
      for (bool with_scale : {true, false}) {
        const std::string what = std::string(act == Activation::none ? "none" : act == Activation::relu ? "relu" : "silu") +
                                 (with_scale ? "" : " no scale") + " " + describe(k);
        const Tensor sc = with_scale ? scale : Tensor();
        const Tensor ref = conv2d_affine_act(on(p.x, Device::Reference), on(p.w, Device::Reference),
                                             on(sc, Device::Reference), on(shift, Device::Reference), k.a, act)
                               .to(Device::CPU);
        // the error of v = scale conv + shift is within (terms + 3) u (|scale| conv(|x|,|w|) + |shift|);
        // relu and silu (slope <= 1.1) carry it, silu's expf and division add a few u of |ref|
        const Tensor lin_abs = add(with_scale ? mul(plain_abs, abs(scale).reshape({1, k.ws[0], 1, 1})) : plain_abs,
                                   abs(shift).reshape({1, k.ws[0], 1, 1}));
        const cuda::ConvEpilogue epi{with_scale ? scale.data() : nullptr, shift.data(), act};
        // v1: the whole output through the body (double sum, K = 1)
        Tensor out = nans(p.os);
        run_on_host(out.numel(), cuda::ConvForwardBody{out.data(), p.x.data(), p.w.data(), s, epi});
        const Tensor b1 = add(mul_scalar(bound_of(lin_abs, 1), 1.1f), mul_scalar(abs(ref), float(8 * kUnit)));
        expect_within(out, ref, b1, "v1 affine " + what);
        // v3's second pass over a plain convolution (the reference's, rounded to float)
        Tensor in_place = plain.clone();
        run_on_host(in_place.numel(), cuda::ConvEpilogueBody{in_place.data(), s.F, s.OH * s.OW, epi});
        expect_within(in_place, ref, b1, "v3 epilogue pass " + what);
      }
  }
}

TEST_CASE("cuda conv body: a naive GEMM over the v2 operand maps and stores equals the reference", "[cuda_body]") {
  uint64_t seed = 900;
  for (const ConvCase& k : all_cases()) {
    const Problem p(k, seed++);
    const cuda::ConvShape s = cuda::make_conv_shape(k.xs, k.ws, k.a);
    // forward, with the bias in the epilogue
    {
      Tensor out = nans(p.os);
      HostGemm h{p.x.numel(), p.w.numel()};
      h.run(cuda::forward_gemm(out.data(), p.x.data(), p.w.data(), s, cuda::ConvEpilogue{nullptr, p.b.data()}));
      CHECK(h.out_of_range == 0);
      expect_within(out, p.ref_forward(true), bound_of(p.abs_forward(true), p.k_forward()), "v2 maps forward " + describe(k));
    }
    // backward input
    {
      Tensor dx = nans(k.xs);
      HostGemm h{p.dout.numel(), p.w.numel()};
      h.run(cuda::backward_input_gemm(dx.data(), p.dout.data(), p.w.data(), s));
      CHECK(h.out_of_range == 0);
      expect_within(dx, p.ref_input(), bound_of(p.abs_input(), p.k_input()), "v2 maps backward input " + describe(k));
    }
    // backward weight: the launcher's split, and a forced one of many kTileK-long chunks; partials
    // then summed in chunk order by SumBody, as on the GPU
    const Tensor dw_ref = p.ref_weight(), dw_bound = bound_of(p.abs_weight(), p.k_weight());
    for (int min_chunk : {cuda::kMinChunkK, cuda::kTileK}) {
      const cuda::GemmDims d = cuda::backward_weight_dims(s, min_chunk, 5);
      const int64_t n = p.dw_numel();
      Tensor partial = nans({d.chunks, n}), dw = nans(k.ws);
      HostGemm h{p.dout.numel(), p.x.numel()};
      h.run(cuda::backward_weight_gemm(partial.data(), p.dout.data(), p.x.data(), s, d));
      CHECK(h.out_of_range == 0);
      run_on_host(n, cuda::SumBody{dw.data(), partial.data(), d.chunks, n});
      expect_within(dw, dw_ref, dw_bound,
                    "v2 maps backward weight, " + std::to_string(d.chunks) + " chunks, " + describe(k));
    }
  }
}

TEST_CASE("cuda conv: split-K covers K in whole tile steps, fixed by K alone", "[cuda_body]") {
  for (int K : {0, 1, 15, 16, 17, 511, 512, 784, 1024, 1500, 100352, 1 << 24})
    for (int min_chunk : {cuda::kTileK, cuda::kMinChunkK})
      for (int max_chunks : {1, 5, cuda::kMaxChunks}) {
        const cuda::GemmDims d = cuda::split_k(cuda::GemmDims{3, 4, K, 2}, min_chunk, max_chunks);
        INFO("K " << K << " min_chunk " << min_chunk << " max_chunks " << max_chunks << " -> " << d.chunks
                  << " chunks of " << d.k_chunk);
        CHECK(d.chunks >= 1);
        CHECK(d.chunks <= max_chunks);
        CHECK(d.k_chunk % cuda::kTileK == 0);
        CHECK(d.k_chunk > 0);
        CHECK(int64_t(d.chunks) * d.k_chunk >= K);            // every k in some chunk
        CHECK((K == 0 || (d.chunks - 1) * d.k_chunk < K));   // no empty chunk
        if (K >= min_chunk && K / min_chunk <= max_chunks) CHECK(d.k_chunk >= min_chunk - cuda::kTileK);
      }
  // the launcher's plan on the harness shapes: one chunk for short K, 64 for a long one
  CHECK(cuda::split_k(cuda::GemmDims{64, 576, 784, 1}, cuda::kMinChunkK, cuda::kMaxChunks).chunks == 1);
  CHECK(cuda::split_k(cuda::GemmDims{64, 576, 128 * 28 * 28, 1}, cuda::kMinChunkK, cuda::kMaxChunks).chunks == 64);
}

TEST_CASE("cuda conv: the version pick and the version knob", "[cuda_body]") {
  using cuda::ConvPass;
  const auto shape = [](const ConvCase& k) { return cuda::make_conv_shape(k.xs, k.ws, k.a); };
  const cuda::ConvShape depthwise = shape({"", {2, 6, 8, 7}, {6, 1, 3, 3}, args(1, 1, 1, 1, 1, 1, 6)});
  const cuda::ConvShape pointwise = shape({"", {3, 5, 4, 4}, {3, 5, 1, 1}, args(1, 1, 0, 0)});
  const cuda::ConvShape strided1x1 = shape({"", {3, 5, 4, 4}, {3, 5, 1, 1}, args(2, 2, 0, 0)});
  const cuda::ConvShape plain = shape({"", {2, 3, 7, 6}, {4, 3, 3, 3}, args(1, 1, 1, 1)});
  const cuda::ConvShape empty1x1 = shape({"", {2, 0, 4, 4}, {3, 0, 1, 1}, args(1, 1, 0, 0)});
  for (ConvPass pass : {ConvPass::forward, ConvPass::backward_input, ConvPass::backward_weight}) {
    CHECK(cuda::conv_version_for(0, pass, depthwise) == (pass == ConvPass::backward_weight ? 2 : 1));
    CHECK(cuda::conv_version_for(0, pass, plain) == 2);
    CHECK(cuda::conv_version_for(0, pass, strided1x1) == 2);
    CHECK(cuda::conv_version_for(0, pass, pointwise) == (pass == ConvPass::forward ? 3 : 2));
    for (int v : {1, 2}) CHECK(cuda::conv_version_for(v, pass, plain) == v);
    // v3 only where it applies, v2 elsewhere
    CHECK(cuda::conv_version_for(3, pass, plain) == 2);
    CHECK(cuda::conv_version_for(3, pass, depthwise) == 2);
    CHECK(cuda::conv_version_for(0, pass, empty1x1) == 2);  // cuBLAS would leave out unwritten
  }
  CHECK(cuda::conv_version_count() == 3);
  CHECK_THROWS_AS(cuda::set_conv_version(4), Error);
  CHECK_THROWS_AS(cuda::set_conv_version(-1), Error);
  CHECK(cuda::conv_version() == 0);
}

#endif  // NORMAD_HAS_CUDA

// ---- on a GPU ----


TEST_CASE("cuda conv: every version of every entry matches the reference, bit-identical run to run", "[cuda]") {
  if (!test::gpu_or_skip()) return;
#ifdef NORMAD_HAS_CUDA
  struct Restore {
    ~Restore() { cuda::set_conv_version(0); }
  } restore;
  uint64_t seed = 2000;
  for (const ConvCase& k : named_cases()) {
    const Problem p(k, seed++);
    Generator g(seed++);
    const Tensor scale = g.uniform({k.ws[0]}, -2.f, 2.f), shift = g.normal({k.ws[0]});
    const Tensor x = p.x.to(Device::CUDA), w = p.w.to(Device::CUDA), b = p.b.to(Device::CUDA);
    const Tensor dout = p.dout.to(Device::CUDA);
    const Tensor sc = scale.to(Device::CUDA), sh = shift.to(Device::CUDA);
    const Tensor fwd_ref = p.ref_forward(true), fwd_bound = bound_of(p.abs_forward(true), p.k_forward());
    const Tensor dx_ref = p.ref_input(), dx_bound = bound_of(p.abs_input(), p.k_input());
    const Tensor dw_ref = p.ref_weight(), dw_bound = bound_of(p.abs_weight(), p.k_weight());
    // affine + SiLU against the reference's (the bound of the affine test above)
    const Tensor silu_ref = conv2d_affine_act(on(p.x, Device::Reference), on(p.w, Device::Reference),
                                              on(scale, Device::Reference), on(shift, Device::Reference), k.a,
                                              Activation::silu)
                                .to(Device::CPU);
    const Tensor lin_abs = add(mul(p.abs_forward(false), abs(scale).reshape({1, k.ws[0], 1, 1})),
                               abs(shift).reshape({1, k.ws[0], 1, 1}));
    const Tensor silu_bound = add(mul_scalar(bound_of(lin_abs, p.k_forward()), 1.1f),
                                  mul_scalar(abs(silu_ref), float(8 * kUnit)));
    // relu without a scale: conv + shift clipped; its bound is the forward's with shift for bias
    const Tensor relu_ref = conv2d_affine_act(on(p.x, Device::Reference), on(p.w, Device::Reference), Tensor(),
                                              on(shift, Device::Reference), k.a, Activation::relu)
                                .to(Device::CPU);
    const Tensor relu_bound = bound_of(add(p.abs_forward(false), abs(shift).reshape({1, k.ws[0], 1, 1})), p.k_forward());
    for (int v = 0; v <= cuda::conv_version_count(); ++v) {
      cuda::set_conv_version(v);
      const std::string what = "version " + std::to_string(v) + " " + describe(k);
      const Tensor y = conv2d(x, w, b, k.a), dx = conv2d_backward_input(dout, w, k.xs, k.a);
      const Tensor dw = conv2d_backward_weight(dout, x, k.ws, k.a);
      const Tensor ys = conv2d_affine_act(x, w, sc, sh, k.a, Activation::silu);
      const Tensor yr = conv2d_affine_act(x, w, Tensor(), sh, k.a, Activation::relu);
      expect_within(y, fwd_ref, fwd_bound, "conv2d " + what);
      expect_within(dx, dx_ref, dx_bound, "conv2d_backward_input " + what);
      expect_within(dw, dw_ref, dw_bound, "conv2d_backward_weight " + what);
      expect_within(ys, silu_ref, silu_bound, "conv2d_affine_act silu " + what);
      expect_within(yr, relu_ref, relu_bound, "conv2d_affine_act relu " + what);
      // deterministic: a second run gives the same bits
      expect_within(conv2d(x, w, b, k.a), y, Tensor::zeros(p.os), "rerun conv2d " + what);
      expect_within(conv2d_backward_input(dout, w, k.xs, k.a), dx, Tensor::zeros(k.xs), "rerun dx " + what);
      expect_within(conv2d_backward_weight(dout, x, k.ws, k.a), dw, Tensor::zeros(k.ws), "rerun dw " + what);
    }
  }
#endif
}
