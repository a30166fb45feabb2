// Tests for convolution and pooling (tensor/conv.cpp, tensor/pool.cpp, autograd/ops_conv.cpp).
// Also conv2d_bn_relu_input == conv2d(batch_norm_relu_train(x)) bit for bit (and its weight
// gradient == conv2d_backward_weight of that output), its statistics op == batch_norm_train's saved
// statistics, and the autograd op == conv2d and batch_norm_relu_train composed (values and
// gradients, bit for bit; finite differences through the batch statistics).
// Math: im2col + GEMM == the 7-loop double reference (conv2d on Device::Reference); backward == plain scatter loops; autograd ==
// central finite differences; pooling closed forms whose values were checked once with PyTorch.
// Tolerances: forward/backward vs reference atol 1e-4 rtol 1e-4 (float32 GEMM vs double sums);
// finite differences use check_grad's defaults (Richardson central differences, atol 1e-4 of the
// largest entry, rtol 3e-4).
//
// Shapes: N batch, C channels, F filters, H, W spatial, KH, KW kernel.
#include <algorithm>
#include <array>
#include <cmath>
#include <optional>
#include <string>

#include "tensor/aligned.h"
#include "tensor/cpu.h"
#include "tensor/gemm.h"
#include "tests/helpers.h"

using namespace normad;

namespace {

// One convolution configuration: shapes and arguments.
struct ConvCase {
  int64_t N, C, H, W, F, KH, KW;
  Conv2dArgs a;
  bool bias;
  std::string str() const {
    return "x [" + std::to_string(N) + "," + std::to_string(C) + "," + std::to_string(H) + "," +
           std::to_string(W) + "] F " + std::to_string(F) + " k " + std::to_string(KH) + "x" +
           std::to_string(KW) + " stride " + std::to_string(a.stride_h) + "x" +
           std::to_string(a.stride_w) + " pad " + std::to_string(a.pad_h) + "x" +
           std::to_string(a.pad_w) + " dil " + std::to_string(a.dil_h) + "x" +
           std::to_string(a.dil_w) + " groups " + std::to_string(a.groups) +
           (bias ? " bias" : " no bias");
  }
};

// The generated grid: stride 1/2 x padding 0/1/2 x dilation 1/2 x groups 1/2/depthwise x bias,
// on an odd-sized input with a non-square 3x2 kernel.
ConvCase generated_case() {
  int64_t stride = GENERATE(1, 2);
  int64_t pad = GENERATE(0, 1, 2);
  int64_t dil = GENERATE(1, 2);
  int64_t groups = GENERATE(1, 2, 4);  // 4 == C: depthwise
  bool bias = GENERATE(false, true);
  ConvCase c{3, 4, 7, 9, groups == 4 ? 8 : 6, 3, 2, {}, bias};
  c.a.stride_h = c.a.stride_w = stride;
  c.a.pad_h = c.a.pad_w = pad;
  c.a.dil_h = c.a.dil_w = dil;
  c.a.groups = groups;
  return c;
}

// The same tensor on the reference backend (undefined stays undefined): conv2d on Device::Reference
// is the plain 7-loop double-accumulating convolution of tensor/reference.cpp.
Tensor on_ref(const Tensor& t) { return t.defined() ? t.to(Device::Reference) : Tensor(); }

// Random x, w, b for a case (b undefined without bias).
void make_inputs(const ConvCase& c, uint64_t seed, Tensor* x, Tensor* w, Tensor* b) {
  Generator g(seed);
  *x = g.normal({c.N, c.C, c.H, c.W});
  *w = g.normal({c.F, c.C / c.a.groups, c.KH, c.KW});
  *b = c.bias ? g.normal(Shape{c.F}) : Tensor();
}

// Independent backward oracle: the forward's 7 loops, scattering dout instead of gathering, in
// double. dx[n,c,ih,iw] += w dout and dw[f,c,kh,kw] += x dout over every tap that hit the input.
void conv2d_backward_loops(const Tensor& dout, const Tensor& x, const Tensor& w,
                           const Conv2dArgs& a, Tensor* dx, Tensor* dw) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t F = w.size(0), Cg = w.size(1), KH = w.size(2), KW = w.size(3);
  const int64_t OH = dout.size(2), OW = dout.size(3), Fg = F / a.groups;
  std::vector<double> gx(x.numel(), 0.0), gw(w.numel(), 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t f = 0; f < F; ++f)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double g = dout.data()[((n * F + f) * OH + oh) * OW + ow];
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t kh = 0; kh < KH; ++kh)
              for (int64_t kw = 0; kw < KW; ++kw) {
                int64_t ih = oh * a.stride_h - a.pad_h + kh * a.dil_h;
                int64_t iw = ow * a.stride_w - a.pad_w + kw * a.dil_w;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                int64_t xi = ((n * C + (f / Fg) * Cg + c) * H + ih) * W + iw;
                int64_t wi = ((f * Cg + c) * KH + kh) * KW + kw;
                gx[xi] += w.data()[wi] * g;
                gw[wi] += x.data()[xi] * g;
              }
        }
  *dx = Tensor(x.shape());
  *dw = Tensor(w.shape());
  for (int64_t i = 0; i < x.numel(); ++i) dx->data()[i] = float(gx[i]);
  for (int64_t i = 0; i < w.numel(); ++i) dw->data()[i] = float(gw[i]);
}

// Forward and both backward kernels against the loop oracles.
void check_against_loops(const ConvCase& c, uint64_t seed) {
  INFO(c.str());
  Tensor x, w, b;
  make_inputs(c, seed, &x, &w, &b);
  Tensor y = conv2d(x, w, b, c.a);
  test::expect_close(y, conv2d(on_ref(x), on_ref(w), on_ref(b), c.a), 1e-4, 1e-4, "forward " + c.str());
  Tensor dout = Generator(seed + 1).normal(y.shape());
  Tensor dx_ref, dw_ref;
  conv2d_backward_loops(dout, x, w, c.a, &dx_ref, &dw_ref);
  test::expect_close(conv2d_backward_input(dout, w, x.shape(), c.a), dx_ref, 1e-4, 1e-4,
                     "dx " + c.str());
  const Tensor dw = conv2d_backward_weight(dout, x, w.shape(), c.a);
  test::expect_close(dw, dw_ref, 1e-4, 1e-4, "dw " + c.str());
  // with the bias gradient from the same pass: dw unchanged, dbias the reference's sum of dout
  Tensor db;
  CHECK(test::same_bits(conv2d_backward_weight(dout, x, w.shape(), c.a, &db), dw));
  test::expect_close(db, sum(on_ref(dout), {0, 2, 3}), 1e-5, 1e-5, "dbias " + c.str());
}

// Runs the scope's convolutions with one im2col column layout (tensor/cpu.h), then restores the
// automatic choice: each layout is checked on every shape, whatever its channel count (except the
// paths that take no columns: depthwise, and a 1x1 kernel on one sample per chunk, planar only).
struct ColumnsScope {
  explicit ColumnsScope(cpu::ConvColumns c) { cpu::set_conv_columns(c); }
  ~ColumnsScope() { cpu::set_conv_columns(cpu::ConvColumns::automatic); }
};
cpu::ConvColumns generated_columns() {
  return GENERATE(cpu::ConvColumns::planar, cpu::ConvColumns::channels_last, cpu::ConvColumns::direct,
                  cpu::ConvColumns::implicit, cpu::ConvColumns::small_depth);
}
const char* columns_name(cpu::ConvColumns c) {
  return c == cpu::ConvColumns::planar ? "planar" : c == cpu::ConvColumns::channels_last ? "channels-last"
         : c == cpu::ConvColumns::direct ? "direct"
         : c == cpu::ConvColumns::implicit ? "implicit"
         : c == cpu::ConvColumns::small_depth ? "small-depth" : "automatic";
}

// Values 0.1 * (a random permutation of 0..n-1): distinct by 0.1, so a finite-difference step
// never changes which element of a pooling window is the maximum.
Tensor separated_values(const Shape& s, uint64_t seed) {
  Generator g(seed);
  std::vector<int64_t> perm = g.permutation(shape_numel(s));
  std::vector<float> v(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) v[i] = 0.1f * float(perm[i]) - 1.f;
  return Tensor::from(s, v);
}

Pool2dArgs pool_args(int64_t k, int64_t stride, int64_t pad, bool ceil_mode,
                     bool count_include_pad = true) {
  Pool2dArgs p;
  p.kh = p.kw = k;
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = pad;
  p.ceil_mode = ceil_mode;
  p.count_include_pad = count_include_pad;
  return p;
}

}  // namespace

// ---- convolution --------------------------------------------------------------------------

TEST_CASE("conv2d: im2col + GEMM and backward match plain loops over a grid of arguments",
          "[conv]") {
  ConvCase c = generated_case();
  const cpu::ConvColumns columns = generated_columns();
  ColumnsScope scope(columns);
  INFO("columns " << columns_name(columns));
  check_against_loops(c, 7);
}

TEST_CASE("conv2d: irregular shapes, batch chunking and the 1x1 fast path", "[conv]") {
  auto mk = [](int64_t N, int64_t C, int64_t H, int64_t W, int64_t F, int64_t KH, int64_t KW,
               int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t g,
               bool bias) {
    ConvCase c{N, C, H, W, F, KH, KW, {}, bias};
    c.a.stride_h = sh, c.a.stride_w = sw, c.a.pad_h = ph, c.a.pad_w = pw;
    c.a.dil_h = dh, c.a.dil_w = dw, c.a.groups = g;
    return c;
  };
  ConvCase c = GENERATE_COPY(
      // asymmetric strides, paddings and dilations with a 1x4 kernel
      mk(2, 3, 6, 11, 5, 1, 4, 1, 3, 2, 0, 1, 2, 1, true),
      // 37 samples of 5x5: chunks of 4 samples with a short last chunk
      mk(37, 2, 5, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1, 2, true),
      // 1x1 kernel on a 16x16 map: one sample per chunk, the input is used as the columns
      mk(3, 5, 16, 16, 7, 1, 1, 1, 1, 0, 0, 1, 1, 1, true),
      // 1x1 kernel on a small map: 9 samples per chunk go through im2col
      mk(40, 6, 3, 5, 4, 1, 1, 1, 1, 0, 0, 1, 1, 2, false),
      // 1x1 kernel, 16 channels (channels-last by default), chunks of 8 samples and a last chunk of
      // one: it must build its columns, not read the input as the planar layout's one-sample case
      mk(17, 16, 4, 4, 8, 1, 1, 1, 1, 0, 0, 1, 1, 1, true),
      // depthwise with channel multiplier 3 and a kernel as large as the padded input
      mk(2, 3, 4, 4, 9, 6, 6, 1, 1, 1, 1, 1, 1, 3, true),
      // Omniglot backbone layer: 64 -> 64, 3x3, stride 2, padding 1
      mk(30, 64, 14, 14, 64, 3, 3, 2, 2, 1, 1, 1, 1, 1, true),
      // Deep SVDD LeNet layer: 5x5, padding 2
      mk(16, 8, 14, 14, 4, 5, 5, 1, 1, 2, 2, 1, 1, 1, false));
  const cpu::ConvColumns columns = generated_columns();
  ColumnsScope scope(columns);
  INFO("columns " << columns_name(columns));
  check_against_loops(c, 11);
}

TEST_CASE("conv2d: the direct kernels for few channels match plain loops", "[conv]") {
  // kernels 1 / 3 / 5 / 3x5 / 2 (2: the weight gradient falls back to im2col) x stride 1 / 2 / 3 x
  // padding 0..3 (past K - 1 the input gradient falls back) x (C, F) = (3, 1), (1, 13), (13, 3):
  // 13 channels written make register blocks of 8, 4 and 1 in the forward (F) and the
  // backward-input (C); on 9x21 planes (two lane blocks per row at stride 1), and on 3x2 planes
  // smaller than the kernel
  ColumnsScope scope(cpu::ConvColumns::direct);
  const int kernel = GENERATE(0, 1, 2, 3, 4);
  const int64_t KH = std::array<int64_t, 5>{1, 3, 5, 3, 2}[kernel];
  const int64_t KW = std::array<int64_t, 5>{1, 3, 5, 5, 2}[kernel];
  const int64_t stride = GENERATE(1, 2, 3);
  const int64_t pad = GENERATE(0, 1, 2, 3);
  const int channels = GENERATE(0, 1, 2);
  const int64_t C = std::array<int64_t, 3>{3, 1, 13}[channels];
  const int64_t F = std::array<int64_t, 3>{1, 13, 3}[channels];
  const bool small = GENERATE(false, true);
  ConvCase c{2, C, small ? 3 : 9, small ? 2 : 21, F, KH, KW, {}, F != 3};
  c.a.stride_h = c.a.stride_w = stride;
  c.a.pad_h = c.a.pad_w = pad;
  if (c.H + 2 * pad - KH < 0 || c.W + 2 * pad - KW < 0) return;  // kernel larger than the padded input
  check_against_loops(c, 23);
}

TEST_CASE("conv2d: the implicit GEMM's filter blocks, tiles and transposes match plain loops",
          "[conv]") {
  // F = 1, 16, 17, 64, 70, 100: one narrow vector, whole vectors, a block of 4 vectors plus a
  // partial one, several blocks (16 lanes; 8 without AVX-512); C = 1, 19 (a block of 16 planes
  // and 3 more in the transposes), 33; 3 samples of 5 x 37 (rows longer than 16 columns, pixel
  // tiles of 6 running across rows; one sample per chunk here, tiles across samples are covered
  // by the Omniglot and determinism cases) at stride 1 and 2, with and without padding
  ColumnsScope scope(cpu::ConvColumns::implicit);
  const int64_t F = GENERATE(1, 16, 17, 64, 70, 100);
  const int64_t C = GENERATE(1, 19, 33);
  const int64_t stride = GENERATE(1, 2);
  const int64_t pad = GENERATE(0, 1);
  ConvCase c{3, C, 5, 37, F, 3, 3, {}, true};
  c.a.stride_h = c.a.stride_w = stride;
  c.a.pad_h = c.a.pad_w = pad;
  INFO(c.str());
  Tensor x, w, b;
  make_inputs(c, 31, &x, &w, &b);
  test::expect_close(conv2d(x, w, b, c.a), conv2d(on_ref(x), on_ref(w), on_ref(b), c.a), 1e-4, 1e-4,
                     "forward " + c.str());
  // the weight gradient: channel tiles of 6 (C = 19: 3 of 6 and one of 1), filters padded to
  // whole vectors
  Tensor dout = Generator(33).normal(conv2d_shape(x.shape(), w.shape(), c.a, "test"));
  Tensor dx_ref, dw_ref;
  conv2d_backward_loops(dout, x, w, c.a, &dx_ref, &dw_ref);
  test::expect_close(conv2d_backward_weight(dout, x, w.shape(), c.a), dw_ref, 1e-4, 1e-4, "dw " + c.str());
  // the input gradient: channels in lanes (C = 1, 19, 33: blocks of 1, 2 and 3 vectors), F terms
  test::expect_close(conv2d_backward_input(dout, w, x.shape(), c.a), dx_ref, 1e-4, 1e-4, "dx " + c.str());
  // the fused epilogue on this path: act(scale * conv + shift)
  Generator g(32);
  Tensor scale = g.uniform({F}, -2.f, 2.f);
  Tensor conv = conv2d(on_ref(x), on_ref(w), Tensor(), c.a);
  Tensor ref = Tensor::empty(conv.shape());
  const int64_t plane = conv.size(2) * conv.size(3);
  for (int64_t i = 0; i < conv.numel(); ++i) {
    const int64_t f = (i / plane) % F;
    ref.data()[i] = std::max(scale.data()[f] * conv.data()[i] + b.data()[f], 0.f);
  }
  test::expect_close(conv2d_affine_act(x, w, scale, b, c.a, Activation::relu), ref, 1e-4, 1e-4,
                     "relu epilogue " + c.str());
}

TEST_CASE("conv2d: the implicit forward's chunks of whole tiles and prefetches across chunks match plain loops",
          "[conv]") {
  // 7 x 7 outputs (the Omniglot 14 x 14 layer's shape, 16 channels): chunks of 3 samples planned,
  // the forward takes 6 (49 full tiles of 6 pixels) where that leaves >= 16 chunks -- 100 samples:
  // 17 chunks, the last of 4 samples; 30 samples: the planned 3, 10 chunks. Each chunk prefetches
  // the next one's samples (the last none). All three passes against plain loops; the forward's
  // bits the same on 1 and many threads.
  ColumnsScope scope(cpu::ConvColumns::implicit);
  const int64_t N = GENERATE(30, 100);
  ConvCase c{N, 16, 14, 14, 16, 3, 3, {}, true};
  c.a.stride_h = c.a.stride_w = 2;
  c.a.pad_h = c.a.pad_w = 1;
  check_against_loops(c, 43);
  Tensor x, w, b;
  make_inputs(c, 44, &x, &w, &b);
  const auto y = test::on_one_and_many_threads([&] { return conv2d(x, w, b, c.a); });
  CHECK(test::same_bits(y[0], y[1]));
}

TEST_CASE("conv2d: the implicit input gradient's stride phases match plain loops", "[conv]") {
  // Input pixels fall into stride_h x stride_w phases, each summing the taps with kh dil = phase
  // (mod stride). Cases: 1x1 at stride 2 (three of four phases have no tap: zero gradient), 2x2 at
  // stride 3 (phase 2 has none), 3x3 at stride 3 dilation 2 (taps 0, 2, 1 in phases 0, 1, 2), 3x2
  // at strides 2 x 1 with padding 2 x 0 (borders past the output on one side only), 5x5 at stride
  // 2 padding 2, a kernel wider than its stride at dilation 2; each on 5 samples (chunks of several
  // samples: tiles across samples), C = 19 / 33 / 70 (2, 3 and 5 vectors of 16 channels with
  // AVX-512: one block of 2 or 3, then blocks of 4 and 1), F = 17 / 64.
  // Then an infinite dout value must reach exactly the input pixels whose taps read it.
  ColumnsScope scope(cpu::ConvColumns::implicit);
  struct Geometry { int64_t kh, kw, sh, sw, ph, pw, dil; };
  const Geometry g = GENERATE(Geometry{1, 1, 2, 2, 0, 0, 1}, Geometry{2, 2, 3, 3, 1, 1, 1},
                              Geometry{3, 3, 3, 3, 1, 1, 2}, Geometry{3, 2, 2, 1, 2, 0, 1},
                              Geometry{5, 5, 2, 2, 2, 2, 1}, Geometry{3, 3, 2, 2, 1, 2, 2});
  const int64_t C = GENERATE(19, 33, 70);
  const int64_t F = GENERATE(17, 64);
  ConvCase c{5, C, 11, 10, F, g.kh, g.kw, {}, false};
  c.a.stride_h = g.sh, c.a.stride_w = g.sw, c.a.pad_h = g.ph, c.a.pad_w = g.pw;
  c.a.dil_h = c.a.dil_w = g.dil;
  INFO(c.str());
  Tensor x, w, b;
  make_inputs(c, 41, &x, &w, &b);
  Tensor dout = Generator(42).normal(conv2d_shape(x.shape(), w.shape(), c.a, "test"));
  Tensor dx_ref, dw_ref;
  conv2d_backward_loops(dout, x, w, c.a, &dx_ref, &dw_ref);
  test::expect_close(conv2d_backward_input(dout, w, x.shape(), c.a), dx_ref, 1e-4, 1e-4, "dx " + c.str());
  // one infinite gradient value in sample 3, filter 5, output pixel (1, 2)
  dout.data()[((3 * F + 5) * dout.size(2) + 1) * dout.size(3) + 2] = INFINITY;
  conv2d_backward_loops(dout, x, w, c.a, &dx_ref, &dw_ref);
  const Tensor dx = conv2d_backward_input(dout, w, x.shape(), c.a);
  int64_t infinite = 0;
  for (int64_t i = 0; i < dx.numel(); ++i) {
    const float got = dx.data()[i], want = dx_ref.data()[i];
    if (!std::isfinite(want)) {
      ++infinite;
      CHECK(got == want);  // the same infinity (w's values are nonzero)
    } else if (!(std::abs(got - want) <= 1e-4f + 1e-4f * std::abs(want))) {
      FAIL_CHECK("dx[" << i << "] got " << got << " want " << want);
    }
  }
  CHECK(infinite == C * g.kh * g.kw);  // every tap of that output pixel lands inside this input
}

TEST_CASE("conv2d: a 1x1 layer on one sample per chunk matches plain loops under each GEMM engine",
          "[conv]") {
  // 16 -> 17 channels on 12x12 maps (>= 128 pixels: one sample per chunk), automatic paths: the
  // forward reads its input in place through the GEMM on OpenBLAS and native and takes the implicit
  // GEMM on Eigen, both gradients the implicit GEMM on any (which path runs is a speed choice and is
  // not observable here; the results under every engine are)
  for (cpu::GemmEngine engine : test::gemm_engines()) {
    test::EngineScope scope(engine);
    INFO("engine " << test::engine_name(engine));
    check_against_loops(ConvCase{3, 16, 12, 12, 17, 1, 1, {}, true}, 43);
  }
}

TEST_CASE("conv2d: the small-depth kernels' filter blocks, row tails and pixel chunks match plain loops",
          "[conv]") {
  // F = 1, 5, 16, 19: the forward's blocks of 4 filters and single ones, the weight gradient's
  // blocks of 2 and single ones; K = C KH KW = 1, 9, 18, 27: the weight gradient's column rows in
  // 1, 1, 2 and 3 tiles; output maps of 16 pixels (one whole vector), 35 (a partial last vector)
  // and 600 (two pixel chunks of 512, the second with a partial vector), 48 (rows of 16), at
  // stride 1 and 2; on the
  // small maps the 3 samples are one group whose sums stay in registers (odd F included)
  ColumnsScope scope(cpu::ConvColumns::small_depth);
  const int64_t F = GENERATE(1, 5, 16, 19);
  const int depth = GENERATE(0, 1, 2, 3);
  const int64_t C = std::array<int64_t, 4>{1, 1, 2, 3}[depth], k = depth == 0 ? 1 : 3;
  const int map = GENERATE(0, 1, 2, 3);
  const int64_t stride = GENERATE(1, 2);
  // rows of up to 16 pixels (4, 7, 16) take the one-vector column rows (strided_row_columns)
  const int64_t OH = std::array<int64_t, 4>{4, 5, 30, 3}[map], OW = std::array<int64_t, 4>{4, 7, 20, 16}[map];
  const int64_t pad = k / 2;  // the input that gives OH x OW at this stride
  ConvCase c{3, C, (OH - 1) * stride + k - 2 * pad, (OW - 1) * stride + k - 2 * pad, F, k, k, {}, F != 5};
  c.a.stride_h = c.a.stride_w = stride;
  c.a.pad_h = c.a.pad_w = pad;
  INFO(c.str());
  REQUIRE(conv2d_shape({c.N, c.C, c.H, c.W}, {c.F, c.C, c.KH, c.KW}, c.a) == Shape{c.N, c.F, OH, OW});
  check_against_loops(c, 37);
  // an infinite gradient at the start of filter 1's rows: in a 35-pixel map filter 0's last vector
  // ends there (masked off: the other filters' weight gradients stay finite). Filter 1's own taps
  // that read the padding are NaN here (0 x inf, as on the im2col + GEMM path) where the loops skip
  // the padding: only its taps that read inputs must agree (infinite).
  if (F < 2 || map != 1) return;
  Tensor x, w, b;
  make_inputs(c, 38, &x, &w, &b);
  Tensor dout = Generator(39).normal({c.N, F, OH, OW});
  for (int64_t n = 0; n < c.N; ++n) dout.data()[(n * F + 1) * OH * OW] = INFINITY;
  Tensor dx_ref, dw_ref;
  conv2d_backward_loops(dout, x, w, c.a, &dx_ref, &dw_ref);
  Tensor dw = conv2d_backward_weight(dout, x, w.shape(), c.a);
  const int64_t per_filter = c.C * k * k;
  int64_t infinite = 0;
  for (int64_t i = 0; i < dw.numel(); ++i) {
    const float got = dw.data()[i], want = dw_ref.data()[i];
    INFO("dw[" << i << "] got " << got << " want " << want);
    if (i / per_filter == 1) {
      if (!std::isfinite(want)) {
        CHECK(!std::isfinite(got));
        ++infinite;
      }
      continue;
    }
    CHECK(got == Approx(want).epsilon(1e-4).margin(1e-4));
  }
  CHECK(infinite > 0);
}

TEST_CASE("conv2d: the small-depth weight gradient adds its parts of the batch in order", "[conv]") {
  // 37 samples of 30 x 20 outputs: parts of >= 4096 pixels, so 6 parts of 6 or 7 samples, one
  // sample at a time (two pixel chunks each). Then the Omniglot net's first layer (1 -> 64, 3 x 3,
  // stride 2, 28 x 28 -> 14 x 14) on 37 samples: 2 parts of 18 and 19 samples, taken 3 at a time
  // (their columns side by side, the sums in registers across them), the second part's last group
  // a single sample; 64 filters in blocks of 2 with the gradient rows prefetched two blocks ahead.
  // Against the plain loops, and the same bits with 1 and several threads.
  ColumnsScope scope(cpu::ConvColumns::small_depth);
  for (const bool omniglot : {false, true}) {
    ConvCase c = omniglot ? ConvCase{37, 1, 28, 28, 64, 3, 3, {}, true} : ConvCase{37, 1, 30, 20, 19, 3, 3, {}, true};
    c.a.pad_h = c.a.pad_w = 1;
    if (omniglot) c.a.stride_h = c.a.stride_w = 2;
    INFO(c.str());
    Tensor x, w, b;
    make_inputs(c, 40, &x, &w, &b);
    Tensor dout = Generator(41).normal(conv2d_shape(x.shape(), w.shape(), c.a));
    Tensor dx_ref, dw_ref;
    conv2d_backward_loops(dout, x, w, c.a, &dx_ref, &dw_ref);
    const auto dw = test::on_one_and_many_threads([&] { return conv2d_backward_weight(dout, x, w.shape(), c.a); });
    // each a float sum of 22 200 (7 252) products
    test::expect_close(dw[0], dw_ref, 1e-3, 1e-3, "dw");
    CHECK(test::same_bits(dw[0], dw[1]));
  }
  // an empty batch: no output, a zero weight gradient
  ConvCase c{0, 1, 30, 20, 19, 3, 3, {}, true};
  c.a.pad_h = c.a.pad_w = 1;
  Tensor x0, w, b;
  make_inputs(c, 40, &x0, &w, &b);
  Tensor dout0({0, c.F, 30, 20});
  CHECK(conv2d(x0, w, b, c.a).shape() == Shape{0, c.F, 30, 20});
  Tensor dw0 = conv2d_backward_weight(dout0, x0, w.shape(), c.a);
  for (int64_t i = 0; i < dw0.numel(); ++i) REQUIRE(dw0.data()[i] == 0.f);
  // and a zero bias gradient, from this kernel and from the implicit one
  for (const int64_t channels : {int64_t(1), int64_t(16)}) {
    ColumnsScope scope(channels == 1 ? cpu::ConvColumns::automatic : cpu::ConvColumns::implicit);
    const Tensor xe({0, channels, 30, 20});
    Tensor db0;
    conv2d_backward_weight(dout0, xe, {c.F, channels, 3, 3}, c.a, &db0);
    REQUIRE(db0.shape() == Shape{c.F});
    for (int64_t i = 0; i < db0.numel(); ++i) REQUIRE(db0.data()[i] == 0.f);
  }
}

TEST_CASE("conv2d: a small-depth output larger than the caches is streamed out unchanged", "[conv]") {
  // stream_floats (tensor/aligned.h) itself: every start within a cache line, lengths below and
  // around the short-copy cutoff and the vector width; nothing outside [dst, dst + n) written
  std::vector<float> src(400), dst(440);
  for (size_t i = 0; i < src.size(); ++i) src[i] = float(i) + 0.5f;
  for (int64_t off = 0; off < 16; ++off)
    for (const int64_t n : {0, 1, 15, 63, 64, 65, 100, 333}) {
      std::fill(dst.begin(), dst.end(), -1.f);
      cpu::stream_floats(dst.data() + off, src.data(), n);
      for (int64_t i = 0; i < int64_t(dst.size()); ++i) {
        INFO("offset " << off << ", n " << n << ", i " << i);
        REQUIRE(dst[i] == (i >= off && i < off + n ? src[i - off] : -1.f));
      }
    }
  // the forward past streams_output's 16 MB, so written with streaming stores, on
  // - 400 samples of 19 filters x 30 x 20 outputs (18 MB): 600 pixels, more than one chunk of
  //   them, so sample by sample; a sample's 45 600 bytes start half a cache line in every other
  //   sample (a plain head and tail);
  // - 600 samples of 19 filters x 21 x 19 outputs (18 MB): 399 pixels, one chunk, so each block of
  //   4 filters (and each single one) as soon as its tiles end, starting anywhere in a line.
  // Plain conv2d and the fused epilogue (ReLU; SiLU's runs over the rows before they stream).
  // Against plain loops; 1 vs many threads.
  ColumnsScope scope(cpu::ConvColumns::small_depth);
  const bool one_chunk = GENERATE(false, true);
  const Activation act = GENERATE(Activation::none, Activation::relu, Activation::silu);
  ConvCase c = one_chunk ? ConvCase{600, 1, 21, 19, 19, 3, 3, {}, true} : ConvCase{400, 1, 30, 20, 19, 3, 3, {}, true};
  c.a.pad_h = c.a.pad_w = 1;
  INFO(c.str() << " act " << int(act));
#if defined(__AVX512F__)  // without AVX-512 nothing is streamed (stream_floats would be a plain copy)
  REQUIRE(cpu::streams_output(c.N * c.F * c.H * c.W));  // 3 x 3, stride 1, pad 1: OH OW = H W
#endif
  Tensor x, w, b;
  make_inputs(c, 42, &x, &w, &b);
  Tensor scale = Generator(43).uniform({c.F}, -2.f, 2.f);
  auto run = [&] { return act == Activation::none ? conv2d(x, w, b, c.a) : conv2d_affine_act(x, w, scale, b, c.a, act); };
  const auto y = test::on_one_and_many_threads(run);
  Tensor ref = conv2d(on_ref(x), on_ref(w), Tensor(), c.a);
  const int64_t plane = c.H * c.W;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    const int64_t f = (i / plane) % c.F;
    const double v = double(act == Activation::none ? 1.f : scale.data()[f]) * ref.data()[i] + b.data()[f];
    ref.data()[i] = float(act == Activation::relu ? std::max(v, 0.0)
                          : act == Activation::silu ? v / (1.0 + std::exp(-v)) : v);
  }
  test::expect_close(y[0], ref, 1e-4, 1e-4, "forward");
  CHECK(test::same_bits(y[0], y[1]));
}

TEST_CASE("conv2d: the direct weight gradient carries its sums across sample chunks", "[conv]") {
  // 3 samples of one 45000 x 16 channel at column stride 3: ~2.2M floats of phase planes per sample,
  // so the kernel takes one sample per chunk and its sums cross two chunk boundaries; 5 filters
  // make one block of 4 and a single one
  ColumnsScope scope(cpu::ConvColumns::direct);
  ConvCase c{3, 1, 45000, 16, 5, 3, 3, {}, false};
  c.a.stride_w = 3;
  c.a.pad_h = c.a.pad_w = 1;
  Tensor x, w, b;
  make_inputs(c, 27, &x, &w, &b);
  Tensor dout = Generator(28).normal({3, 5, 45000, 6});
  Tensor dx_ref, dw_ref;
  conv2d_backward_loops(dout, x, w, c.a, &dx_ref, &dw_ref);
  // each weight gradient is a float sum of 810 000 products (~1e-4 relative rounding, as the
  // GEMM path's); a sum that restarted at a chunk would be off by about a third
  test::expect_close(conv2d_backward_weight(dout, x, w.shape(), c.a), dw_ref, 1e-3, 1e-3, "dw");
}

TEST_CASE("conv2d: infinite inputs reach only the results whose taps read them", "[conv]") {
  // Row stride 1, kernel 3, no padding on 8 columns: tap kw reads columns kw..kw+5, so an infinite
  // column 7 belongs to tap 2 alone (taps 0 and 1 must stay finite: the direct weight kernel's
  // lanes past the 6th output column read it, times a padded zero). At stride 2 column 7 is read by
  // no output at all: every result stays finite.
  for (int64_t stride : {1, 2})
    for (cpu::ConvColumns columns :
         {cpu::ConvColumns::direct, cpu::ConvColumns::planar, cpu::ConvColumns::implicit,
          cpu::ConvColumns::small_depth}) {
      ColumnsScope scope(columns);
      INFO("columns " << columns_name(columns) << ", stride " << stride);
      ConvCase c{2, 2, 7, 8, 3, 3, 3, {}, true};
      c.a.stride_h = c.a.stride_w = stride;
      Tensor x, w, b;
      make_inputs(c, 29, &x, &w, &b);
      for (int64_t r = 0; r < 2 * 2 * 7; ++r) x.data()[r * 8 + 7] = r % 2 ? INFINITY : -INFINITY;
      Tensor y = conv2d(x, w, b, c.a);
      Tensor dout = Generator(30).normal(y.shape());
      Tensor dx_ref, dw_ref;
      conv2d_backward_loops(dout, x, w, c.a, &dx_ref, &dw_ref);
      Tensor dw = conv2d_backward_weight(dout, x, w.shape(), c.a);
      int64_t finite = 0;
      for (int64_t i = 0; i < dw.numel(); ++i) {
        const float got = dw.data()[i], want = dw_ref.data()[i];
        INFO("dw[" << i << "] got " << got << " want " << want);
        if (!std::isfinite(want)) {
          CHECK(!std::isfinite(got));
          continue;
        }
        ++finite;
        CHECK(got == Approx(want).epsilon(1e-4).margin(1e-4));
      }
      CHECK(finite == (stride == 1 ? dw.numel() * 2 / 3 : dw.numel()));  // kw = 2 of each row
      if (stride == 2)
        test::expect_close(y, conv2d(on_ref(x), on_ref(w), on_ref(b), c.a), 1e-4, 1e-4, "forward");
    }
}

TEST_CASE("conv2d: the depthwise direct loop (groups = C = F) matches plain loops", "[conv]") {
  // kernel 3 / 5 x stride 1 / 2 / 3 x padding 0 / 1 / 2 x dilation 1 / 2 x bias on odd 9x7 planes
  // (stride s splits each padded row into s column phases), plus asymmetric arguments
  const int64_t k = GENERATE(3, 5);
  const int64_t stride = GENERATE(1, 2, 3);
  const int64_t pad = GENERATE(0, 1, 2);
  const int64_t dil = GENERATE(1, 2);
  const bool bias = GENERATE(false, true);
  ConvCase c{2, 5, 9, 7, 5, k, k, {}, bias};
  c.a.stride_h = c.a.stride_w = stride;
  c.a.pad_h = c.a.pad_w = pad;
  c.a.dil_h = c.a.dil_w = dil;
  c.a.groups = 5;
  if (7 + 2 * pad - dil * (k - 1) - 1 < 0) return;  // kernel larger than the padded input
  check_against_loops(c, 13);
  ConvCase odd{3, 7, 11, 6, 7, 3, 5, {}, true};
  odd.a.stride_h = 2, odd.a.stride_w = 1, odd.a.pad_h = 1, odd.a.pad_w = 2, odd.a.dil_w = 2;
  odd.a.groups = 7;
  check_against_loops(odd, 17);
}

TEST_CASE("conv2d_affine_act: the fused epilogue equals conv, affine and activation composed",
          "[conv]") {
  // the forward paths: depthwise loop, 1x1 on one sample (direct GEMM), the direct kernel for few
  // channels, im2col + GEMM, the small-depth kernel (automatic: 3 channels x 3 x 3 = 27 taps into
  // 20 filters; 144 output pixels: two tiles of 4 vectors, then single vectors)
  const int path = GENERATE(0, 1, 2, 3, 4);
  const Activation act = GENERATE(Activation::none, Activation::relu, Activation::silu);
  ConvCase c = path == 0 ? ConvCase{2, 6, 9, 8, 6, 3, 3, {}, false}
             : path == 1 ? ConvCase{2, 10, 12, 12, 9, 1, 1, {}, false}
             : path == 2 ? ConvCase{3, 4, 7, 9, 6, 3, 3, {}, false}
             : path == 3 ? ConvCase{3, 12, 7, 9, 10, 3, 3, {}, false}
                         : ConvCase{3, 3, 12, 12, 20, 3, 3, {}, false};
  if (path == 0) c.a.groups = 6, c.a.stride_h = c.a.stride_w = 2, c.a.pad_h = c.a.pad_w = 1;
  if (path >= 2) c.a.pad_h = c.a.pad_w = 1;
  ColumnsScope scope(path == 2 ? cpu::ConvColumns::direct : cpu::ConvColumns::automatic);
  INFO(c.str() << " act " << int(act));
  Tensor x, w, b;
  make_inputs(c, 19, &x, &w, &b);
  Generator g(20);
  Tensor scale = g.uniform({c.F}, -2.f, 2.f), shift = g.normal({c.F}, 0.f, 3.f);
  Tensor conv = conv2d(on_ref(x), on_ref(w), Tensor(), c.a);
  Tensor ref = Tensor::empty(conv.shape());
  const int64_t plane = conv.size(2) * conv.size(3);
  for (int64_t i = 0; i < conv.numel(); ++i) {
    const int64_t f = (i / plane) % c.F;
    const double v = double(scale.data()[f]) * conv.data()[i] + shift.data()[f];
    ref.data()[i] = float(act == Activation::relu ? std::max(v, 0.0)
                          : act == Activation::silu ? v / (1.0 + std::exp(-v)) : v);
  }
  test::expect_close(conv2d_affine_act(x, w, scale, shift, c.a, act), ref, 1e-4, 1e-4, c.str());
  // a NaN input stays NaN through every activation: every output whose taps read it (the first
  // sample's, filter 0's output pixel 0 at least), none of the others
  Tensor x_nan = x.clone();
  x_nan.data()[0] = NAN;
  Tensor y_nan = conv2d_affine_act(x_nan, w, scale, shift, c.a, act);
  Tensor conv_nan = conv2d(on_ref(x_nan), on_ref(w), Tensor(), c.a);
  int64_t nans = 0;
  for (int64_t i = 0; i < y_nan.numel(); ++i) {
    INFO("output " << i);
    CHECK(std::isnan(y_nan.data()[i]) == std::isnan(conv_nan.data()[i]));
    nans += std::isnan(y_nan.data()[i]);
  }
  CHECK(nans > 0);
  // undefined scale means 1: the plain conv2d with shift as its bias
  if (act == Activation::none)
    CHECK(test::same_bits(conv2d_affine_act(x, w, Tensor(), shift, c.a, act), conv2d(x, w, shift, c.a)));
  CHECK_THROWS_AS(conv2d_affine_act(x, w, Tensor({c.F + 1}), shift, c.a, act), Error);
}

TEST_CASE("conv2d_affine_act: SiLU is finite and exact in the tails", "[conv]") {
  // 1x1 identity filter on one channel: out = silu(x); exp(-x) overflows for x < -88
  Tensor x = Tensor::from({1, 1, 1, 6}, {-1e30f, -200.f, -90.f, 0.f, 90.f, 1e30f});
  Tensor w = Tensor::ones({1, 1, 1, 1});
  Tensor y = conv2d_affine_act(x, w, Tensor(), Tensor(), Conv2dArgs{}, Activation::silu);
  const std::vector<float> want{-0.f, -0.f, float(-90.0 / (1.0 + std::exp(90.0))), 0.f, 90.f, 1e30f};
  for (int i = 0; i < 6; ++i) {
    INFO("x " << x.data()[i] << " got " << y.data()[i]);
    CHECK(std::isfinite(y.data()[i]));
    CHECK(y.data()[i] == Approx(want[i]).margin(1e-30));
  }
  // a ramp over [-100, 100] against the double formula: the float exp is within a few ulp
  std::vector<float> ramp(4001);
  for (size_t i = 0; i < ramp.size(); ++i) ramp[i] = -100.f + 0.05f * float(i);
  Tensor r = Tensor::from({1, 1, 1, int64_t(ramp.size())}, ramp);
  Tensor ry = conv2d_affine_act(r, w, Tensor(), Tensor(), Conv2dArgs{}, Activation::silu);
  double worst = 0;
  for (size_t i = 0; i < ramp.size(); ++i) {
    const double v = ramp[i], want_v = v / (1.0 + std::exp(-v));
    worst = std::max(worst, std::fabs(ry.data()[i] - want_v) / std::max(std::fabs(want_v), 1e-30));
  }
  CHECK(worst < 2e-6);
}

TEST_CASE("conv2d: all-ones input and kernel count the in-window pixels", "[conv]") {
  // 3x3 window with padding 1 on a 4x4 map: 4 at corners, 6 on edges, 9 inside; bias 0.5 added
  Tensor x = Tensor::ones({1, 1, 4, 4}), w = Tensor::ones({2, 1, 3, 3});
  Tensor b = Tensor::from({2}, {0.5f, -1.f});
  Conv2dArgs a;
  a.pad_h = a.pad_w = 1;
  std::vector<float> counts = {4, 6, 6, 4, 6, 9, 9, 6, 6, 9, 9, 6, 4, 6, 6, 4};
  std::vector<float> want;
  for (float v : counts) want.push_back(v + 0.5f);
  for (float v : counts) want.push_back(v - 1.f);
  test::expect_close(conv2d(x, w, b, a), Tensor::from({1, 2, 4, 4}, want), 0, 0, "counts");
  // with stride 2 and dilation 2 (taps 2 apart) only the windows at (0,0),(0,2),(2,0),(2,2) of
  // the padded grid remain: each sees a 2x2 or smaller block of inputs
  a.stride_h = a.stride_w = 2;
  a.dil_h = a.dil_w = 2;
  // OH = (4 + 2 - 4 - 1) / 2 + 1 = 1; window rows -1, 1, 3 -> inputs at 1, 3: 2x2 = 4 taps
  test::expect_close(conv2d(x, w, Tensor(), a), Tensor::from({1, 2, 1, 1}, {4.f, 4.f}), 0, 0,
                     "dilated");
}

TEST_CASE("conv2d: results are bit-identical for 1 and several threads", "[conv]") {
  const cpu::ConvColumns columns = generated_columns();
  ColumnsScope scope(columns);
  INFO("columns " << columns_name(columns));
  ConvCase c{40, 8, 9, 9, 16, 3, 3, {}, true};
  c.a.pad_h = c.a.pad_w = 1;
  // the direct, implicit and small-depth kernels take groups 1
  c.a.groups = columns == cpu::ConvColumns::direct || columns == cpu::ConvColumns::implicit ||
                       columns == cpu::ConvColumns::small_depth
                   ? 1
                   : 2;
  Tensor x, w, b;
  make_inputs(c, 3, &x, &w, &b);
  Tensor dout = Generator(4).normal({c.N, c.F, 9, 9});
  const auto passes = test::on_one_and_many_threads([&] {
    Tensor db;
    Tensor dw = conv2d_backward_weight(dout, x, w.shape(), c.a, &db);
    return std::array<Tensor, 4>{conv2d(x, w, b, c.a), conv2d_backward_input(dout, w, x.shape(), c.a), dw, db};
  });
  for (int k = 0; k < 4; ++k) CHECK(test::same_bits(passes[0][k], passes[1][k]));  // y, dx, dw, dbias
  // the depthwise loop: one plane per task
  ConvCase dwc{8, 32, 9, 9, 32, 3, 3, {}, true};
  dwc.a.pad_h = dwc.a.pad_w = 1;
  dwc.a.groups = 32;
  make_inputs(dwc, 5, &x, &w, &b);
  const auto y = test::on_one_and_many_threads([&] { return conv2d(x, w, b, dwc.a); });
  CHECK(test::same_bits(y[0], y[1]));
}

TEST_CASE("conv2d: gradients match finite differences", "[conv]") {
  // conv is linear in x, w and b, so central differences are exact up to rounding: a larger
  // step (1e-2) keeps the float32 rounding of the loss small relative to the step
  auto mk = [](int64_t F, int64_t k, int64_t stride, int64_t pad, int64_t dil, int64_t g,
               bool bias) {
    ConvCase c{2, 4, 5, 6, F, k, k, {}, bias};
    c.a.stride_h = c.a.stride_w = stride, c.a.pad_h = c.a.pad_w = pad;
    c.a.dil_h = c.a.dil_w = dil, c.a.groups = g;
    return c;
  };
  ConvCase c = GENERATE_COPY(mk(3, 3, 1, 0, 1, 1, true), mk(4, 3, 2, 1, 1, 2, true),
                             mk(4, 2, 1, 2, 2, 1, false), mk(8, 3, 2, 1, 1, 4, true));
  INFO(c.str());
  Tensor x, w, b;
  make_inputs(c, 5, &x, &w, &b);
  Conv2dArgs a = c.a;
  if (c.bias) {
    test::check_grad([a](const std::vector<Var>& v) { return conv2d(v[0], v[1], v[2], a); },
                     {x, w, b}, 1e-2, 1e-4, 3e-4, c.str());
  } else {
    test::check_grad([a](const std::vector<Var>& v) { return conv2d(v[0], v[1], Var(), a); },
                     {x, w}, 1e-2, 1e-4, 3e-4, c.str());
  }
}

TEST_CASE("conv_transpose2d: adjoint of conv2d, equals a flipped conv, gradients match finite differences",
          "[conv]") {
  Generator g(41);
  // <conv_transpose(y, w), x> == <y, conv(x, w)> for every x, y: the defining property
  Conv2dArgs a;
  a.stride_h = a.stride_w = 2, a.pad_h = a.pad_w = 1, a.groups = 2;
  Tensor w = g.normal({4, 3, 3, 3});  // conv: 6 -> 4 channels; transposed: 4 -> 6
  Tensor x = g.normal({2, 6, 7, 7}), y = g.normal({2, 4, 4, 4});
  double lhs = sum(mul(conv_transpose2d(y, w, Tensor(), a), x)).item();
  double rhs = sum(mul(y, conv2d(x, w, Tensor(), a))).item();
  CHECK(lhs == Approx(rhs).epsilon(1e-4));
  CHECK(conv_transpose2d_shape(y.shape(), w.shape(), a) == Shape{2, 6, 7, 7});
  CHECK(conv_transpose2d_shape(y.shape(), w.shape(), a, 1, 1) == Shape{2, 6, 8, 8});

  // stride 1 (A.5): a conv with the kernel flipped in both axes, channel axes swapped, padding k-1-p
  Tensor w5 = g.normal({3, 2, 5, 5}), x5 = g.normal({2, 3, 6, 6});
  Tensor flipped({2, 3, 5, 5});
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t o = 0; o < 2; ++o)
      for (int64_t r = 0; r < 5; ++r)
        for (int64_t c = 0; c < 5; ++c)
          flipped.data()[((o * 3 + i) * 5 + r) * 5 + c] = w5.data()[((i * 2 + o) * 5 + 4 - r) * 5 + 4 - c];
  for (int64_t pad : {2, 3}) {
    Conv2dArgs t, f;
    t.pad_h = t.pad_w = pad;
    f.pad_h = f.pad_w = 4 - pad;
    test::expect_close(conv_transpose2d(x5, w5, Tensor(), t), conv2d(x5, flipped, Tensor(), f), 1e-4, 1e-4,
                       "pad " + std::to_string(pad));
  }

  Tensor b = g.normal({6});
  test::check_grad([a](const std::vector<Var>& v) { return conv_transpose2d(v[0], v[1], v[2], a, 1, 1); },
                   {y, w, b}, 1e-2, 1e-4, 3e-4, "stride 2, groups 2, output padding 1");
  CHECK_THROWS_WITH(conv_transpose2d(y, g.normal({3, 3, 3, 3}), Tensor(), a), Catch::Contains("w [F, C/groups"));
  CHECK_THROWS_WITH(conv_transpose2d(y, w, Tensor(), a, 2, 2), Catch::Contains("output padding"));
}

TEST_CASE("upsample_nearest2d: each value repeated in an s x s block, backward sums the block", "[pool]") {
  Tensor x = Tensor::from({1, 1, 2, 2}, {1.f, 2.f, 3.f, 4.f});
  CHECK(upsample_nearest2d(x, 2).to_vector() ==
        std::vector<float>{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4});
  CHECK(upsample_nearest2d_backward(Tensor({1, 1, 4, 4}, 1.f), 2).to_vector() == std::vector<float>{4, 4, 4, 4});
  test::check_grad([](const std::vector<Var>& v) { return upsample_nearest2d(v[0], 3); },
                   {Generator(5).normal({2, 3, 3, 2})}, 1e-2);
  CHECK_THROWS_WITH(upsample_nearest2d(Tensor({2, 3}), 2), Catch::Contains("[N, C, H, W]"));
  CHECK_THROWS_WITH(upsample_nearest2d_backward(Tensor({1, 1, 3, 4}), 2), Catch::Contains("scale"));
}

TEST_CASE("conv2d: bad shapes and arguments throw normad::Error", "[conv]") {
  Tensor x({2, 4, 5, 5}), w({6, 2, 3, 3});
  Conv2dArgs g2;
  g2.groups = 2;
  CHECK_NOTHROW(conv2d(x, w, Tensor(), g2));
  // rank
  REQUIRE_THROWS_AS(conv2d(Tensor({4, 5, 5}), w, Tensor(), g2), Error);
  REQUIRE_THROWS_AS(conv2d(x, Tensor({6, 2, 3}), Tensor(), g2), Error);
  // C != w.size(1) * groups
  REQUIRE_THROWS_AS(conv2d(x, w, Tensor(), Conv2dArgs{}), Error);
  // F % groups != 0
  REQUIRE_THROWS_AS(conv2d(x, Tensor({5, 2, 3, 3}), Tensor(), g2), Error);
  // bias of the wrong size or rank
  REQUIRE_THROWS_AS(conv2d(x, w, Tensor({5}), g2), Error);
  REQUIRE_THROWS_AS(conv2d(x, w, Tensor({6, 1}), g2), Error);
  // empty output: 7x7 kernel on a 5x5 input, and a dilated 3x3 (span 5) on a 4x4 input
  REQUIRE_THROWS_AS(conv2d(x, Tensor({6, 2, 7, 7}), Tensor(), g2), Error);
  Conv2dArgs dil = g2;
  dil.dil_h = dil.dil_w = 2;
  REQUIRE_THROWS_AS(conv2d(Tensor({1, 4, 4, 4}), w, Tensor(), dil), Error);
  // zero stride, zero groups, negative padding
  Conv2dArgs bad = g2;
  bad.stride_w = 0;
  REQUIRE_THROWS_AS(conv2d(x, w, Tensor(), bad), Error);
  bad = g2;
  bad.groups = 0;
  REQUIRE_THROWS_AS(conv2d(x, w, Tensor(), bad), Error);
  bad = g2;
  bad.pad_h = -1;
  REQUIRE_THROWS_AS(conv2d(on_ref(x), on_ref(w), Tensor(), bad), Error);
  // backward with a dout of the wrong shape
  REQUIRE_THROWS_AS(conv2d_backward_input(Tensor({2, 6, 3, 4}), w, x.shape(), g2), Error);
  REQUIRE_THROWS_AS(conv2d_backward_weight(Tensor({2, 5, 3, 3}), x, w.shape(), g2), Error);
  // the message names the shapes
  try {
    conv2d(x, w, Tensor(), Conv2dArgs{});
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("[2, 4, 5, 5]") != std::string::npos);
    CHECK(std::string(e.what()).find("[6, 2, 3, 3]") != std::string::npos);
  }
}

// ---- pooling --------------------------------------------------------------------------------

TEST_CASE("max_pool2d: closed forms and argmax (values checked against PyTorch)", "[pool]") {
  std::vector<float> ar(25);
  for (int i = 0; i < 25; ++i) ar[i] = float(i);
  Tensor x = Tensor::from({1, 1, 5, 5}, ar);
  Tensor idx;
  SECTION("2x2 stride 2, floor: the bottom-right of each block") {
    Tensor y = max_pool2d(x, pool_args(2, 2, 0, false), &idx);
    test::expect_close(y, Tensor::from({1, 1, 2, 2}, {6, 8, 16, 18}), 0, 0, "values");
    test::expect_close(idx, Tensor::from({1, 1, 2, 2}, {6, 8, 16, 18}), 0, 0, "argmax");
  }
  SECTION("3x3 stride 3 padding 1, ceil: the last window would start in the right padding") {
    // (5 + 2 - 3 + 2) / 3 + 1 = 3, but window 3 starts at 6 - 1 = 5 >= H: dropped -> 2x2
    Tensor y = max_pool2d(x, pool_args(3, 3, 1, true), &idx);
    test::expect_close(y, Tensor::from({1, 1, 2, 2}, {6, 9, 21, 24}), 0, 0, "values");
    test::expect_close(idx, Tensor::from({1, 1, 2, 2}, {6, 9, 21, 24}), 0, 0, "argmax");
  }
  SECTION("3x3 stride 2 padding 1, ceil, on -x: maxima at window starts, padding is -inf") {
    Tensor y = max_pool2d(mul_scalar(x, -1.f), pool_args(3, 2, 1, true), &idx);
    test::expect_close(y, Tensor::from({1, 1, 3, 3}, {0, -1, -3, -5, -6, -8, -15, -16, -18}), 0,
                       0, "values");
    test::expect_close(idx, Tensor::from({1, 1, 3, 3}, {0, 1, 3, 5, 6, 8, 15, 16, 18}), 0, 0,
                       "argmax");
  }
  SECTION("ties: the first maximum in row-major order wins") {
    Tensor y = max_pool2d(Tensor::ones({1, 1, 2, 2}), pool_args(2, 2, 0, false), &idx);
    CHECK(idx.data()[0] == 0.f);
    CHECK(y.data()[0] == 1.f);
  }
}

TEST_CASE("max_pool2d: the values-only path (no argmax) equals the argmax loop", "[pool]") {
  // kernel 2 / 3 x stride 1 / 2 / 3 x padding 0 / 1 x floor / ceil on an odd 7x9 input, and NaNs
  const int64_t k = GENERATE(2, 3);
  const int64_t stride = GENERATE(1, 2, 3);
  const int64_t pad = GENERATE(0, 1);
  const bool ceil_mode = GENERATE(false, true);
  Tensor x = Generator(31).normal({2, 3, 7, 9});
  x.data()[5] = NAN;    // plane 0, row 0
  x.data()[100] = NAN;  // plane 1, row 4, column 0
  const Pool2dArgs a = pool_args(k, stride, pad, ceil_mode);
  Tensor idx;
  Tensor with_idx = max_pool2d(x, a, &idx), values = max_pool2d(x, a);
  INFO("k " << k << " stride " << stride << " pad " << pad << " ceil " << ceil_mode);
  REQUIRE(values.shape() == with_idx.shape());
  for (int64_t i = 0; i < values.numel(); ++i) {
    const float v = values.data()[i], r = with_idx.data()[i];
    INFO("[" << i << "] " << v << " vs " << r);
    CHECK((std::isnan(r) ? std::isnan(v) : v == r));
  }
}

TEST_CASE("avg_pool2d: count_include_pad and the ceil_mode divisor (checked against PyTorch)",
          "[pool]") {
  // ones [4x4], 3x3 stride 2 padding 1, ceil: rows/cols per window in the input 2, 3, 1 and in
  // input + padding 3, 3, 2 (the last window is clipped to H + pad before counting)
  Tensor ones = Tensor::ones({1, 1, 4, 4});
  std::vector<float> r = {2.f / 3.f, 1.f, 0.5f}, want;
  for (float u : r)
    for (float v : r) want.push_back(u * v);
  test::expect_close(avg_pool2d(ones, pool_args(3, 2, 1, true, true)),
                     Tensor::from({1, 1, 3, 3}, want), 1e-6, 0, "count_include_pad");
  test::expect_close(avg_pool2d(ones, pool_args(3, 2, 1, true, false)),
                     Tensor::full({1, 1, 3, 3}, 1.f), 1e-6, 0, "exclude pad");
  // ones [5x5], 2x2 stride 2, ceil: the last half-outside window is divided by its 2 (or 1)
  // in-input cells, so the result stays 1
  test::expect_close(avg_pool2d(Tensor::ones({1, 1, 5, 5}), pool_args(2, 2, 0, true)),
                     Tensor::full({1, 1, 3, 3}, 1.f), 1e-6, 0, "ceil without padding");
  // arange(25) [5x5], 3x3 stride 2 padding 1, ceil, count_include_pad (torch output)
  std::vector<float> ar(25);
  for (int i = 0; i < 25; ++i) ar[i] = float(i);
  test::expect_close(
      avg_pool2d(Tensor::from({1, 1, 5, 5}, ar), pool_args(3, 2, 1, true, true)),
      Tensor::from({1, 1, 3, 3}, {12.f / 9, 3, 24.f / 9, 7, 12, 9, 8, 13, 84.f / 9}), 1e-5, 1e-6,
      "arange");
}

TEST_CASE("global_avg_pool: mean over H and W per channel", "[pool]") {
  Tensor x = Generator(9).normal({3, 4, 5, 7});
  Tensor y = global_avg_pool(x);
  REQUIRE(y.shape() == Shape{3, 4});
  Tensor want({3, 4});
  for (int64_t nc = 0; nc < 12; ++nc) {
    double s = 0;
    for (int64_t i = 0; i < 35; ++i) s += x.data()[nc * 35 + i];
    want.data()[nc] = float(s / 35);
  }
  test::expect_close(y, want, 1e-6, 1e-6, "mean");
  // the same as one average-pool window over the whole plane
  Pool2dArgs whole = pool_args(5, 5, 0, false);
  whole.kw = whole.stride_w = 7;
  test::expect_close(avg_pool2d(x, whole).reshape({3, 4}), want, 1e-5, 1e-5, "as avg_pool2d");
}

TEST_CASE("max_pool2d: gradient matches finite differences", "[pool]") {
  // max pool is linear between argmax changes; values are 0.1 apart, the step is 1e-2
  Pool2dArgs p = GENERATE(pool_args(2, 2, 0, false), pool_args(3, 2, 1, false),
                          pool_args(3, 2, 1, true), pool_args(3, 3, 1, true),
                          pool_args(2, 1, 1, false));
  INFO("k " << p.kh << " stride " << p.stride_h << " pad " << p.pad_h << " ceil " << p.ceil_mode);
  Tensor x = separated_values({2, 3, 5, 7}, 21);
  test::check_grad([p](const std::vector<Var>& v) { return max_pool2d(v[0], p); }, {x}, 1e-2);
}

TEST_CASE("avg_pool2d: gradient matches finite differences", "[pool]") {
  Pool2dArgs p = GENERATE(pool_args(2, 2, 0, false), pool_args(3, 2, 1, false, true),
                          pool_args(3, 2, 1, false, false), pool_args(3, 2, 1, true, true),
                          pool_args(3, 2, 1, true, false), pool_args(2, 2, 0, true));
  INFO("k " << p.kh << " stride " << p.stride_h << " pad " << p.pad_h << " ceil " << p.ceil_mode
            << " count_include_pad " << p.count_include_pad);
  Tensor x = Generator(22).normal({2, 3, 5, 6});
  test::check_grad([p](const std::vector<Var>& v) { return avg_pool2d(v[0], p); }, {x}, 1e-2);
}

TEST_CASE("global_avg_pool: gradient matches finite differences", "[pool]") {
  Tensor x = Generator(23).normal({3, 2, 4, 5});
  test::check_grad([](const std::vector<Var>& v) { return global_avg_pool(v[0]); }, {x}, 1e-2);
}

TEST_CASE("pooling: bad shapes and arguments throw normad::Error", "[pool]") {
  Tensor x({2, 3, 4, 4});
  CHECK_NOTHROW(max_pool2d(x, pool_args(2, 2, 1, false)));
  // rank
  REQUIRE_THROWS_AS(max_pool2d(Tensor({3, 4, 4}), pool_args(2, 2, 0, false)), Error);
  REQUIRE_THROWS_AS(avg_pool2d(Tensor({3, 4, 4}), pool_args(2, 2, 0, false)), Error);
  REQUIRE_THROWS_AS(global_avg_pool(Tensor({3, 4})), Error);
  // padding above kernel / 2 (PyTorch's rule)
  REQUIRE_THROWS_AS(max_pool2d(x, pool_args(2, 2, 2, false)), Error);
  REQUIRE_THROWS_AS(avg_pool2d(x, pool_args(3, 1, 2, false)), Error);
  // window larger than the padded input, zero stride
  REQUIRE_THROWS_AS(max_pool2d(x, pool_args(5, 1, 0, false)), Error);
  REQUIRE_THROWS_AS(avg_pool2d(x, pool_args(2, 0, 0, false)), Error);
  // backward with a dout of the wrong shape
  REQUIRE_THROWS_AS(avg_pool2d_backward(Tensor({2, 3, 3, 3}), x.shape(), pool_args(2, 2, 0, false)),
                    Error);
  Tensor idx;
  Tensor y = max_pool2d(x, pool_args(2, 2, 0, false), &idx);
  REQUIRE_THROWS_AS(max_pool2d_backward(Tensor({2, 3, 3, 3}), idx, x.shape()), Error);
}

TEST_CASE("conv2d_bn_relu_input: the convolution of batch_norm_relu_train's output, bit for bit", "[conv]") {
  // The Omniglot net's 14 x 14 layer (stride 2; narrow rows, normalised in the copy to channels-last),
  // wide rows (W >= 16: normalised in place after the blocks' transposes), grouped statistics (a
  // sample's coefficients are its group's; a chunk of samples spanning two groups), 20 channels (not
  // a multiple of 16) on narrow and wide rows, dilation 2, all through the implicit kernel (forced);
  // and 3 channels the automatic way (small-depth: the composed way). Against the two ops composed,
  // the same bits, on 1 and many threads; the statistics are batch_norm_train's own, running
  // statistics included.
  struct Case {
    Shape x, w;
    int64_t stride, groups, dilation = 1;
  };
  const int k = GENERATE(0, 1, 2, 3, 4, 5);
  const Case c = k == 0   ? Case{{30, 64, 14, 14}, {64, 64, 3, 3}, 2, 1}
                 : k == 1 ? Case{{12, 16, 5, 18}, {20, 16, 3, 3}, 1, 3}
                 : k == 2 ? Case{{12, 32, 7, 7}, {16, 32, 3, 3}, 2, 4}
                 : k == 3 ? Case{{6, 20, 9, 8}, {17, 20, 3, 3}, 1, 2, 2}
                 : k == 4 ? Case{{4, 20, 6, 21}, {16, 20, 3, 3}, 2, 2}
                          : Case{{6, 3, 9, 8}, {16, 3, 3, 3}, 1, 2};
  ColumnsScope scope(k < 5 ? cpu::ConvColumns::implicit : cpu::ConvColumns::automatic);
  INFO("x " << shape_str(c.x) << " w " << shape_str(c.w) << " groups " << c.groups << " dilation " << c.dilation);
  Generator g(91 + k);
  Tensor x = g.normal(c.x, 0.3f, 1.5f), gamma = g.uniform({c.x[1]}, 0.5f, 1.5f), beta = g.normal({c.x[1]});
  Tensor w = g.normal(c.w, 0.f, 0.2f), b = g.normal({c.w[0]});
  Conv2dArgs a;
  a.stride_h = a.stride_w = c.stride, a.pad_h = a.pad_w = 1, a.dil_h = a.dil_w = c.dilation;
  // the statistics alone = batch_norm_train's saved and running statistics
  Tensor rm = g.normal({c.x[1]}), rv = g.uniform({c.x[1]}, 0.5f, 2.f), rm2 = rm.clone(), rv2 = rv.clone();
  const BatchNormSaved stats = batch_norm_statistics(x, 1e-5f, c.groups, &rm, &rv, 0.1f);
  BatchNormSaved saved;
  const Tensor y = batch_norm_relu_train(x, gamma, beta, 1e-5f, c.groups, 0.f, &saved, &rm2, &rv2, 0.1f);
  CHECK(test::same_bits(stats.mean, saved.mean));
  CHECK(test::same_bits(stats.invstd, saved.invstd));
  CHECK(test::same_bits(rm, rm2));
  CHECK(test::same_bits(rv, rv2));
  const Tensor composed = conv2d(y, w, b, a);
  const auto fused = test::on_one_and_many_threads([&] { return conv2d_bn_relu_input(x, gamma, beta, stats, c.groups, w, b, a); });
  CHECK(test::same_bits(fused[0], composed));
  CHECK(test::same_bits(fused[1], composed));
  // and close to the reference backend's double-precision composition (not a shared mistake)
  test::expect_close(fused[0], conv2d(on_ref(y), on_ref(w), on_ref(b), a), 1e-4, 1e-4, "vs reference conv");
  // undefined gamma and beta (1 and 0), no bias
  const Tensor plain = batch_norm_relu_train(x, Tensor(), Tensor(), 1e-5f, c.groups, 0.f, nullptr);
  CHECK(test::same_bits(conv2d_bn_relu_input(x, Tensor(), Tensor(), stats, c.groups, w, Tensor(), a),
                        conv2d(plain, w, Tensor(), a)));
  // a NaN input makes its (group, channel)'s statistics NaN, and so every output of the group's
  // samples, as through the composed ops (no NaN dropped by the fused ReLU)
  Tensor x_nan = x.clone();
  x_nan.data()[x.numel() / 2] = NAN;
  const BatchNormSaved stats_nan = batch_norm_statistics(x_nan, 1e-5f, c.groups);
  const Tensor y_nan = batch_norm_relu_train(x_nan, gamma, beta, 1e-5f, c.groups, 0.f, nullptr);
  const Tensor out_nan = conv2d_bn_relu_input(x_nan, gamma, beta, stats_nan, c.groups, w, b, a);
  CHECK(test::same_bits(out_nan, conv2d(y_nan, w, b, a)));
  int64_t nans = 0;
  for (int64_t i = 0; i < out_nan.numel(); ++i) nans += std::isnan(out_nan.data()[i]);
  CHECK(nans == out_nan.numel() / c.groups);  // the middle sample's group, all of it
  // statistics of another grouping, or of another channel count, are refused by name
  CHECK_THROWS_WITH(conv2d_bn_relu_input(x, gamma, beta, stats, c.groups == 1 ? 2 : 1, w, b, a),
                    Catch::Contains("saved statistics"));
  CHECK_THROWS_WITH(conv2d_bn_relu_input(x, gamma, beta, BatchNormSaved{Tensor({c.groups, 2}), Tensor({c.groups, 2})},
                                         c.groups, w, b, a),
                    Catch::Contains("saved statistics"));
  // its weight gradient: conv2d_backward_weight of y, the same bits (the implicit kernel normalises
  // x as it copies it; 3 channels: the composed way), and close to the reference's
  const Tensor dout = g.normal(composed.shape());
  const Tensor dw_composed = conv2d_backward_weight(dout, y, w.shape(), a);
  const auto dw_fused = test::on_one_and_many_threads(
      [&] { return conv2d_bn_relu_input_backward_weight(dout, x, gamma, beta, stats, c.groups, w.shape(), a); });
  CHECK(test::same_bits(dw_fused[0], dw_composed));
  CHECK(test::same_bits(dw_fused[1], dw_composed));
  // and with the bias gradient from the same pass, as conv2d_backward_weight's
  Tensor db_composed, db_fused;
  conv2d_backward_weight(dout, y, w.shape(), a, &db_composed);
  CHECK(test::same_bits(conv2d_bn_relu_input_backward_weight(dout, x, gamma, beta, stats, c.groups, w.shape(), a, &db_fused),
                        dw_composed));
  CHECK(test::same_bits(db_fused, db_composed));
  test::expect_close(dw_fused[0], conv2d_backward_weight(on_ref(dout), on_ref(y), w.shape(), a), 1e-4, 1e-4,
                     "weight gradient vs reference");
  CHECK(test::same_bits(conv2d_bn_relu_input_backward_weight(dout, x, Tensor(), Tensor(), stats, c.groups, w.shape(), a),
                        conv2d_backward_weight(dout, plain, w.shape(), a)));
  // the NaN group's samples make every weight gradient NaN, as composed
  const Tensor dw_nan = conv2d_bn_relu_input_backward_weight(dout, x_nan, gamma, beta, stats_nan, c.groups, w.shape(), a);
  CHECK(test::same_bits(dw_nan, conv2d_backward_weight(dout, y_nan, w.shape(), a)));
  CHECK(std::isnan(dw_nan.data()[0]));
  CHECK_THROWS_WITH(conv2d_bn_relu_input_backward_weight(g.normal({1, 2, 3, 4}), x, gamma, beta, stats, c.groups,
                                                         w.shape(), a),
                    Catch::Contains("dout must be"));
}

TEST_CASE("conv2d_bn_relu_input (autograd): conv2d of batch_norm_relu_train composed, values and gradients bit for bit", "[conv][grad]") {
  // The node's forward (with and without the output's statistics) and backward against the two
  // autograd ops composed: output, statistics, running statistics, and the gradients of x, gamma,
  // beta, w and b the same bits, on 1 and many threads. The Omniglot net's 7 x 7 layer, grouped
  // (implicit kernel), a small-depth input (3 channels: the composed way inside the backend),
  // without affine or bias, a frozen x with gamma undefined and no bias (beta's parent index 2), and
  // frozen weights with a bias (its gradient by sum) and beta undefined.
  struct Case {
    Shape x, w;
    int64_t groups;
    bool gamma, beta, bias, x_grad = true, w_grad = true;
  };
  const int k = GENERATE(0, 1, 2, 3, 4);
  const Case c = k == 0   ? Case{{12, 64, 7, 7}, {64, 64, 3, 3}, 3, true, true, true}
                 : k == 1 ? Case{{6, 3, 9, 8}, {16, 3, 3, 3}, 2, true, true, true}
                 : k == 2 ? Case{{8, 16, 5, 5}, {16, 16, 3, 3}, 1, false, false, false}
                 : k == 3 ? Case{{6, 64, 7, 7}, {64, 64, 3, 3}, 1, false, true, false, false}
                          : Case{{8, 16, 5, 5}, {16, 16, 3, 3}, 2, true, false, true, true, false};
  INFO("case " << k << ": x " << shape_str(c.x) << " w " << shape_str(c.w) << " groups " << c.groups);
  Generator g(171 + k);
  const int64_t C = c.x[1], F = c.w[0];
  const Tensor x0 = g.normal(c.x, 0.3f, 1.5f), gamma0 = g.uniform({C}, 0.5f, 1.5f), beta0 = g.normal({C}, 0.f, 0.5f);
  const Tensor w0 = g.normal(c.w, 0.f, 0.2f), b0 = g.normal({F}), seed = g.normal({c.x[0], F, (c.x[2] + 1) / 2, (c.x[3] + 1) / 2});
  Conv2dArgs a;
  a.stride_h = a.stride_w = 2, a.pad_h = a.pad_w = 1;
  // the output and every gradient, with the output's statistics (running ones moved) or without
  auto run = [&](bool fused, bool with_stats) {
    Var x(x0.clone(), c.x_grad), gamma(gamma0.clone(), true), beta(beta0.clone(), true), w(w0.clone(), c.w_grad),
        b(b0.clone(), true);
    Tensor rm = Tensor::zeros({F}), rv = Tensor::ones({F});
    Var gm = c.gamma ? gamma : Var(), bt = c.beta ? beta : Var(), bias = c.bias ? b : Var();
    Var y;
    BatchNormSaved out_stats;
    if (fused) {
      BnReluInputVar in{gm, bt, batch_norm_statistics(x0, 1e-5f, c.groups), c.groups};
      OutputStatistics os{1e-5f, c.groups, &rm, &rv, 0.1f, {}};
      y = conv2d_bn_relu_input(x, &in, w, bias, a, with_stats ? &os : nullptr);
      out_stats = os.saved;
    } else {
      y = conv2d(batch_norm_relu_train(x, gm, bt, 1e-5f, c.groups, 0.f), w, bias, a);
      if (with_stats) out_stats = batch_norm_statistics(y.data(), 1e-5f, c.groups, &rm, &rv, 0.1f);
    }
    sum(mul(y, Var(seed))).backward();
    std::vector<Tensor> r{y.data()};
    for (const auto& [v, wanted] : {std::pair{x, c.x_grad}, std::pair{w, c.w_grad}, std::pair{gamma, c.gamma},
                                    std::pair{beta, c.beta}, std::pair{b, c.bias}})
      if (wanted) r.push_back(v.grad());
    for (const Tensor& t : r) REQUIRE(t.defined());
    if (with_stats) r.insert(r.end(), {out_stats.mean, out_stats.invstd, rm, rv});
    return r;
  };
  for (const bool with_stats : {false, true}) {
    INFO("with the output's statistics: " << with_stats);
    const auto want = run(false, with_stats);
    const auto got = test::on_one_and_many_threads([&] { return run(true, with_stats); });
    for (const auto& r : got) {
      REQUIRE(r.size() == want.size());
      for (size_t i = 0; i < r.size(); ++i) {
        INFO("output " << i);
        CHECK(test::same_bits(r[i], want[i]));
      }
    }
  }
}

TEST_CASE("conv2d_bn_relu_input (autograd): finite differences through the batch statistics", "[conv][grad]") {
  // x's statistics are recomputed from x at every evaluation, so the difference quotients see the
  // batch norm's dependence on the batch. Channel shifts of +2.5 and -2.5 with gammas <= 0.6 keep
  // every normalised value on one side of the ReLU's kink as long as |xhat| < 4.1, which these
  // draws (50 or 100 values per statistic) stay within (channel 1's inputs all cut, zero gradients
  // through it). The step is 5e-2: at 1e-2 the float rounding of the loss gave errors of ~5e-4
  // (the composed ops the same).
  Generator g(7);
  Conv2dArgs a;
  a.stride_h = a.stride_w = 2, a.pad_h = a.pad_w = 1;
  Tensor beta({3});
  beta.data()[0] = 2.5f, beta.data()[1] = -2.5f, beta.data()[2] = 2.5f;
  for (const int64_t groups : {1, 2})
    test::check_grad(
        [=](const std::vector<Var>& v) {
          BnReluInputVar in{v[1], v[2], batch_norm_statistics(v[0].data(), 1e-5f, groups), groups};
          return conv2d_bn_relu_input(v[0], &in, v[3], v[4], a);
        },
        {g.normal({4, 3, 5, 5}), g.uniform({3}, 0.3f, 0.6f), beta, g.normal({4, 3, 3, 3}, 0.f, 0.3f), g.normal({4})},
        5e-2, 1e-4, 3e-4, "groups " + std::to_string(groups));
}

TEST_CASE("conv2d_statistics: a convolution and its output's batch statistics, bit for bit the ops composed", "[conv]") {
  // Each forward kernel (the small-depth and implicit ones compute the output planes' moments as
  // they write them, the others after): the Omniglot net's first layer (small-depth, automatic) at
  // a batch whose output (16.9 MB) is streamed out of the kernel's buffer, the implicit kernel plain
  // and with the input's batch norm + ReLU (grouped), im2col + GEMM (planar columns), the direct
  // kernel, a depthwise convolution, a 1 x 1 output (no planes: batch_norm_statistics itself), and 8
  // groups (batch norm's group-by-group pass, with the moments handed in).
  // Against conv2d (or conv2d_bn_relu_input) then batch_norm_statistics: output, mean, invstd and
  // running statistics the same bits, on 1 and many threads; then a NaN and bad arguments.
  struct Case {
    Shape x, w;
    int64_t stride, groups, conv_groups = 1;
    cpu::ConvColumns columns = cpu::ConvColumns::automatic;
    bool normalised = false;
  };
  const int k = GENERATE(0, 1, 2, 3, 4, 5, 6, 7);
  const Case c = k == 7   ? Case{{16, 16, 7, 7}, {16, 16, 3, 3}, 1, 8, 1, cpu::ConvColumns::implicit, true}  // G >= 8
                 : k == 0 ? Case{{336, 1, 28, 28}, {64, 1, 3, 3}, 2, 1}
                 : k == 1 ? Case{{12, 16, 7, 7}, {20, 16, 3, 3}, 1, 3, 1, cpu::ConvColumns::implicit}
                 : k == 2 ? Case{{12, 16, 14, 14}, {16, 16, 3, 3}, 2, 4, 1, cpu::ConvColumns::implicit, true}
                 : k == 3 ? Case{{6, 8, 9, 8}, {12, 8, 3, 3}, 1, 2, 1, cpu::ConvColumns::planar, true}
                 : k == 4 ? Case{{6, 3, 12, 12}, {5, 3, 3, 3}, 1, 3, 1, cpu::ConvColumns::direct}
                 : k == 5 ? Case{{4, 6, 8, 8}, {6, 1, 3, 3}, 1, 2, 6}
                          : Case{{8, 16, 3, 3}, {16, 16, 3, 3}, 2, 2, 1, cpu::ConvColumns::implicit, true};
  ColumnsScope scope(c.columns);
  INFO("case " << k << ": x " << shape_str(c.x) << " w " << shape_str(c.w) << " groups " << c.groups);
  Generator g(131 + k);
  const int64_t C = c.x[1], F = c.w[0];
  Tensor x = g.normal(c.x, 0.3f, 1.5f), w = g.normal(c.w, 0.f, 0.3f), b = g.normal({F});
  Conv2dArgs a;
  a.stride_h = a.stride_w = c.stride, a.pad_h = a.pad_w = k == 6 ? 0 : 1, a.groups = c.conv_groups;
  std::optional<BnReluInput> in;
  if (c.normalised)
    in = BnReluInput{g.uniform({C}, 0.5f, 1.5f), g.normal({C}), batch_norm_statistics(x, 1e-5f, c.groups), c.groups};
  const Tensor rm0 = g.normal({F}), rv0 = g.uniform({F}, 0.5f, 2.f);
  // composed
  const Tensor y = in ? conv2d_bn_relu_input(x, in->gamma, in->beta, in->saved, in->groups, w, b, a) : conv2d(x, w, b, a);
  Tensor rm = rm0.clone(), rv = rv0.clone();
  const BatchNormSaved want = batch_norm_statistics(y, 1e-5f, c.groups, &rm, &rv, 0.1f);
  // fused, on one thread and many
  const auto runs = test::on_one_and_many_threads([&] {
    Tensor frm = rm0.clone(), frv = rv0.clone();
    BatchNormSaved s;
    Tensor out = conv2d_statistics(x, in ? &*in : nullptr, w, b, a, 1e-5f, c.groups, &frm, &frv, 0.1f, &s);
    return std::array<Tensor, 5>{out, s.mean, s.invstd, frm, frv};
  });
  for (const auto& r : runs) {
    CHECK(test::same_bits(r[0], y));
    CHECK(test::same_bits(r[1], want.mean));
    CHECK(test::same_bits(r[2], want.invstd));
    CHECK(test::same_bits(r[3], rm));
    CHECK(test::same_bits(r[4], rv));
  }
  // and the statistics close to the reference backend's (double, two passes): not a shared mistake
  const BatchNormSaved ref = batch_norm_statistics(on_ref(y), 1e-5f, c.groups);
  test::expect_close(runs[0][1], ref.mean.to(Device::CPU), 1e-5, 1e-5, "mean vs reference");
  test::expect_close(runs[0][2], ref.invstd.to(Device::CPU), 1e-5, 1e-5, "invstd vs reference");
  // a NaN input reaches the statistics of the channels it touches, as composed
  Tensor x_nan = x.clone();
  x_nan.data()[x.numel() / 3] = NAN;
  BatchNormSaved s_nan;
  const Tensor y_nan = conv2d_statistics(x_nan, nullptr, w, b, a, 1e-5f, c.groups, nullptr, nullptr, 0.1f, &s_nan);
  const BatchNormSaved want_nan = batch_norm_statistics(conv2d(x_nan, w, b, a), 1e-5f, c.groups);
  CHECK(test::same_bits(s_nan.mean, want_nan.mean));
  CHECK(test::same_bits(s_nan.invstd, want_nan.invstd));
  bool any_nan = false;
  for (int64_t i = 0; i < s_nan.mean.numel(); ++i) any_nan |= std::isnan(s_nan.mean.data()[i]);
  CHECK(any_nan);
  // bad arguments are refused by name
  BatchNormSaved s;
  CHECK_THROWS_WITH(conv2d_statistics(x, nullptr, w, b, a, 1e-5f, 5, nullptr, nullptr, 0.1f, &s),
                    Catch::Contains("equal groups"));
  Tensor short_rm({F + 1});
  CHECK_THROWS_WITH(conv2d_statistics(x, nullptr, w, b, a, 1e-5f, c.groups, &short_rm, nullptr, 0.1f, &s),
                    Catch::Contains("running_mean"));
  CHECK_THROWS_WITH(conv2d_statistics(x, nullptr, w, b, a, 1e-5f, c.groups, nullptr, nullptr, 0.1f, nullptr),
                    Catch::Contains("stats"));
  // an empty batch has no statistics (batch_norm_statistics refuses it the same way)
  Shape empty_shape = c.x;
  empty_shape[0] = 0;
  CHECK_THROWS_WITH(conv2d_statistics(Tensor(empty_shape), nullptr, w, b, a, 1e-5f, 1, nullptr, nullptr, 0.1f, &s),
                    Catch::Contains("no values"));
}
