// 2-D convolution (NCHW) on the CPU: im2col + GEMM (tensor/gemm.h) per group, parallel over batch
// chunks and inside each GEMM (oneTBB); a direct loop for depthwise convolutions (groups = C = F);
// direct kernels (forward, backward-input, backward-weight) for few channels, where im2col's columns
// would dwarf the output (see "direct convolution" below); small-depth kernels (forward and
// backward-weight) for groups 1 with few taps per output (K = C KH KW <= 32) and many filters,
// register tiles over each sample's columns (see "small GEMM depth" below); an implicit GEMM
// (forward, backward-input by stride phases, backward-weight) for groups 1 and >= 16 channels,
// which reads the taps from a padded channels-last copy of the input (of dout for the input
// gradient) instead of building columns (see "implicit GEMM" below).
// Math: out[n,f,oh,ow] = b[f] + sum_{c,kh,kw} w[f,c,kh,kw] x[n, g*Cg+c, oh*sh-ph+kh*dh, ow*sw-pw+kw*dw]
// with g = f / Fg (zero outside the input); as matrices per group: out_g = W_g [Fg, Cg*KH*KW] x cols.
// conv2d_affine_act applies act(scale[f] * conv + shift[f]) in the same write-back pass (inference
// with a BN folded in); conv2d_bn_relu_input convolves relu(scale[g, c] x + shift[g, c]) (a batch
// norm + ReLU of x from given statistics), normalising x as the implicit kernel copies it, and
// conv2d_bn_relu_input_backward_weight is its weight gradient, normalising x the same way. The
// weight gradient's small-depth and implicit kernels also return the bias gradient (dout summed
// over N, OH, OW) from their pass over dout.
// Tested by tests/test_conv.cpp: im2col, depthwise, direct, small-depth and implicit paths vs conv2d on the
// reference backend
// (tensor/reference.cpp) over strides/pads/dilations/groups, the fused epilogue and the normalised
// input (conv2d_bn_relu_input, bit for bit) vs the composed ops, a closed form, backward vs plain scatter loops, finite differences, thread-count
// determinism; and by tests/test_backend_ops.cpp (every conv entry vs the reference).
//
// Shapes: N batch, C input channels, F filters (output channels), H, W input, OH, OW output,
// KH, KW kernel, G groups, Cg = C/G and Fg = F/G channels per group, K = Cg*KH*KW (GEMM depth).
//
// Columns: with few channels per group the columns are planar, K rows (c, kh, kw) of nb*OH*OW
// entries gathered from the NCHW planes (short strided runs: OW entries per input row). With many
// (>= 16, e.g. the Omniglot net's 64) they are channels-last, nb*OH*OW rows of K = (kh, kw, c)
// entries: each sample is first transposed to [H, W, Cg] (in cache), then every tap of every output
// pixel is one copy of Cg contiguous floats; the weights are reordered to [F, KH, KW, Cg] to match
// and the GEMMs take the columns transposed. On the Omniglot net (batch 960, 1 core) this made the
// backward passes 25-45% faster and the 7x7 layer's three passes ~40% faster (docs/profiling.md);
// both layouts are tested (set_conv_columns).
//
// Work split: the batch is cut into fixed chunks of `nb` samples (nb depends only on the shapes,
// never on the thread count), so every sample always goes through the same GEMM sizes and the
// results are bit-identical for any number of threads. One chunk's columns sit side by side in one
// [K, nb*OH*OW] matrix, which makes the GEMM wide enough to be efficient on small feature maps.
#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "tensor/aligned.h"
#include "tensor/cpu.h"
#include "tensor/gemm.h"
#include "tensor/parallel.h"
#include "tensor/plane_moments.h"
#include "tensor/register_tile.h"
#include "tensor/select.h"

namespace normad::cpu {

namespace {

// All sizes of one convolution, validated once.
struct ConvDims {
  int64_t N, C, H, W;     // input
  int64_t F, KH, KW;      // weight [F, Cg, KH, KW]
  int64_t OH, OW;         // output
  int64_t G, Cg, Fg, K;   // groups, channels per group, GEMM depth Cg*KH*KW
  int64_t nb, n_chunks;   // samples per chunk, number of chunks
};

// Samples per chunk: ~128 GEMM columns, at least 2 chunks when the batch allows (im2col runs per
// chunk, so one chunk would leave it on one thread) and at most ~8 MB of columns. Threads share
// the work across chunks and inside each chunk's GEMM (gemm() splits it into fixed blocks).
// A sweep of 128/256/512/1024 columns and 1/2/8 minimum chunks on the bench shapes (2 cores) found
// differences within noise; 128 with 2 was at least as fast almost everywhere.
void plan_chunks(ConvDims& d) {
  int64_t ohw = std::max<int64_t>(d.OH * d.OW, 1);
  int64_t nb = std::max<int64_t>(1, (128 + ohw - 1) / ohw);
  nb = std::min(nb, std::max<int64_t>(1, d.N / 2));
  int64_t max_cols_floats = int64_t(2) << 20;  // 2M floats = 8 MB
  nb = std::min(nb, std::max<int64_t>(1, max_cols_floats / std::max<int64_t>(d.K * ohw, 1)));
  nb = std::min(nb, std::max<int64_t>(d.N, 1));
  d.nb = nb;
  d.n_chunks = (d.N + nb - 1) / nb;
}

// Checks x [N, C, H, W] and w [F, C/G, KH, KW] (or just their shapes) and the arguments.
ConvDims conv_dims(const Shape& xs, const Shape& ws, const Conv2dArgs& a, const char* what) {
  std::string shapes = "x " + shape_str(xs) + ", w " + shape_str(ws);
  check(xs.size() == 4, what, "input must be [N, C, H, W], got " + shapes);
  check(ws.size() == 4, what, "weight must be [F, C/groups, KH, KW], got " + shapes);
  check(a.groups >= 1, what, "groups must be >= 1, got " + std::to_string(a.groups));
  check(a.stride_h >= 1 && a.stride_w >= 1, what,
        "stride must be >= 1, got " + std::to_string(a.stride_h) + "x" + std::to_string(a.stride_w));
  check(a.dil_h >= 1 && a.dil_w >= 1, what,
        "dilation must be >= 1, got " + std::to_string(a.dil_h) + "x" + std::to_string(a.dil_w));
  check(a.pad_h >= 0 && a.pad_w >= 0, what,
        "padding must be >= 0, got " + std::to_string(a.pad_h) + "x" + std::to_string(a.pad_w));
  ConvDims d{};
  d.N = xs[0], d.C = xs[1], d.H = xs[2], d.W = xs[3];
  d.F = ws[0], d.KH = ws[2], d.KW = ws[3];
  d.G = a.groups;
  check(d.KH >= 1 && d.KW >= 1 && d.F >= 1, what, "empty weight: " + shapes);
  check(ws[1] * d.G == d.C, what,
        "input channels C must equal w.size(1) * groups (groups " + std::to_string(d.G) + "): " +
            shapes);
  check(d.F % d.G == 0, what,
        "filters F must be divisible by groups " + std::to_string(d.G) + ": " + shapes);
  d.Cg = d.C / d.G, d.Fg = d.F / d.G;
  d.K = d.Cg * d.KH * d.KW;
  d.OH = (d.H + 2 * a.pad_h - a.dil_h * (d.KH - 1) - 1) / a.stride_h + 1;
  d.OW = (d.W + 2 * a.pad_w - a.dil_w * (d.KW - 1) - 1) / a.stride_w + 1;
  // the numerator can be negative; C++ division truncates toward 0, so test it directly
  bool fits = d.H + 2 * a.pad_h - a.dil_h * (d.KH - 1) - 1 >= 0 &&
              d.W + 2 * a.pad_w - a.dil_w * (d.KW - 1) - 1 >= 0;
  check(fits && d.OH > 0 && d.OW > 0, what,
        "output size would be empty (kernel larger than padded input): " + shapes + ", padding " +
            std::to_string(a.pad_h) + "x" + std::to_string(a.pad_w) + ", dilation " +
            std::to_string(a.dil_h) + "x" + std::to_string(a.dil_w));
  plan_chunks(d);
  return d;
}

// Scratch memory left uninitialised (every element is written before it is read).
std::unique_ptr<float[]> scratch(int64_t n) { return std::unique_ptr<float[]>(new float[n]); }

std::atomic<ConvColumns> g_columns{ConvColumns::automatic};

// Whether the columns of this convolution are channels-last (see the file comment).
bool channels_last(const ConvDims& d) {
  const ConvColumns c = g_columns.load(std::memory_order_relaxed);
  return c == ConvColumns::channels_last || (c == ConvColumns::automatic && d.Cg >= 16);
}

// w [F, Cg, KH, KW] -> [F, KH, KW, Cg] (the row order of channels-last columns).
std::vector<float> weights_channels_last(const float* w, const ConvDims& d) {
  const int64_t taps = d.KH * d.KW;
  std::vector<float> out(d.F * d.K);
  for (int64_t f = 0; f < d.F; ++f)
    for (int64_t c = 0; c < d.Cg; ++c)
      for (int64_t t = 0; t < taps; ++t) out[(f * taps + t) * d.Cg + c] = w[(f * d.Cg + c) * taps + t];
  return out;
}

// hwc [H, W, Cg] = channels g*Cg.. of sample n of x [N, C, H, W].
void sample_to_hwc(float* hwc, const float* x, const ConvDims& d, int64_t n, int64_t g) {
  const int64_t hw = d.H * d.W;
  const float* src = x + (n * d.C + g * d.Cg) * hw;
  for (int64_t c = 0; c < d.Cg; ++c)
    for (int64_t i = 0; i < hw; ++i) hwc[i * d.Cg + c] = src[c * hw + i];
}

// The input pixel (ih, iw) read by tap (kh, kw) of output pixel (oh, ow), or false in the padding.
inline bool tap_pixel(const ConvDims& d, const Conv2dArgs& a, int64_t oh, int64_t ow, int64_t kh,
                      int64_t kw, int64_t& ih, int64_t& iw) {
  ih = oh * a.stride_h - a.pad_h + kh * a.dil_h;
  iw = ow * a.stride_w - a.pad_w + kw * a.dil_w;
  return ih >= 0 && ih < d.H && iw >= 0 && iw < d.W;
}

// Channels-last columns [nb*OH*OW, K] for samples n0..n0+nb-1 of group g: row j*OH*OW + oh*OW + ow,
// entry (kh*KW + kw)*Cg + c holds x[n0+j, g*Cg+c, ih, iw] for the tap's pixel (0 in the padding).
// hwc: scratch of H*W*Cg floats.
void im2col_channels_last(float* cols, float* hwc, const float* x, const ConvDims& d,
                          const Conv2dArgs& a, int64_t n0, int64_t nb, int64_t g) {
  const size_t run = sizeof(float) * d.Cg;
  float* row = cols;
  for (int64_t j = 0; j < nb; ++j) {
    sample_to_hwc(hwc, x, d, n0 + j, g);
    for (int64_t oh = 0; oh < d.OH; ++oh)
      for (int64_t ow = 0; ow < d.OW; ++ow, row += d.K)
        for (int64_t kh = 0; kh < d.KH; ++kh)
          for (int64_t kw = 0; kw < d.KW; ++kw) {
            float* dst = row + (kh * d.KW + kw) * d.Cg;
            int64_t ih, iw;
            if (tap_pixel(d, a, oh, ow, kh, kw, ih, iw)) std::memcpy(dst, hwc + (ih * d.W + iw) * d.Cg, run);
            else std::memset(dst, 0, run);
          }
  }
}

// The adjoint of im2col_channels_last, for groups that own their input channels: every in-bounds
// entry of dcols is summed into its pixel of a [H, W, Cg] buffer (output pixels in order, taps in
// order), which is then written to dx[n0+j, g*Cg.., :, :] (assigned: no other group writes there).
void col2im_channels_last(float* dx, const float* dcols, float* hwc, const ConvDims& d,
                          const Conv2dArgs& a, int64_t n0, int64_t nb, int64_t g) {
  const int64_t hw = d.H * d.W;
  const float* row = dcols;
  for (int64_t j = 0; j < nb; ++j) {
    std::fill(hwc, hwc + hw * d.Cg, 0.f);
    for (int64_t oh = 0; oh < d.OH; ++oh)
      for (int64_t ow = 0; ow < d.OW; ++ow, row += d.K)
        for (int64_t kh = 0; kh < d.KH; ++kh)
          for (int64_t kw = 0; kw < d.KW; ++kw) {
            int64_t ih, iw;
            if (!tap_pixel(d, a, oh, ow, kh, kw, ih, iw)) continue;
            float* acc = hwc + (ih * d.W + iw) * d.Cg;
            const float* src = row + (kh * d.KW + kw) * d.Cg;
            for (int64_t c = 0; c < d.Cg; ++c) acc[c] += src[c];
          }
    float* dst = dx + ((n0 + j) * d.C + g * d.Cg) * hw;
    for (int64_t c = 0; c < d.Cg; ++c)
      for (int64_t i = 0; i < hw; ++i) dst[c * hw + i] = hwc[i * d.Cg + c];
  }
}

void check_cpu(const Tensor& t, const char* what) {
  check(t.device() == Device::CPU, what, "only CPU tensors are supported");
}

// cols [K, nb*OH*OW] for samples n0..n0+nb-1 of group g: row (c*KH + kh)*KW + kw, column
// j*OH*OW + oh*OW + ow holds x[n0+j, g*Cg+c, oh*sh-ph+kh*dh, ow*sw-pw+kw*dw] (0 in the padding).
// Rows are ldc apart (0: nb*OH*OW, packed); columns past nb*OH*OW are not written.
void im2col(float* cols, const float* x, const ConvDims& d, const Conv2dArgs& a, int64_t n0,
            int64_t nb, int64_t g, int64_t ldc = 0) {
  const int64_t ohw = d.OH * d.OW;
  if (ldc == 0) ldc = nb * ohw;
  for (int64_t c = 0; c < d.Cg; ++c)
    for (int64_t kh = 0; kh < d.KH; ++kh)
      for (int64_t kw = 0; kw < d.KW; ++kw) {
        float* row = cols + ((c * d.KH + kh) * d.KW + kw) * ldc;
        const int64_t iw0 = kw * a.dil_w - a.pad_w;  // input column of ow = 0
        int64_t lo, hi;
        valid_cols(iw0, a.stride_w, d.W, d.OW, lo, hi);
        for (int64_t j = 0; j < nb; ++j) {
          const float* plane = x + ((n0 + j) * d.C + g * d.Cg + c) * d.H * d.W;
          float* dst = row + j * ohw;
          for (int64_t oh = 0; oh < d.OH; ++oh, dst += d.OW) {
            int64_t ih = oh * a.stride_h - a.pad_h + kh * a.dil_h;
            if (ih < 0 || ih >= d.H) {
              std::fill(dst, dst + d.OW, 0.f);
              continue;
            }
            const float* src = plane + ih * d.W;
            std::fill(dst, dst + lo, 0.f);
            for (int64_t ow = lo; ow < hi; ++ow) dst[ow] = src[iw0 + ow * a.stride_w];
            std::fill(dst + hi, dst + d.OW, 0.f);
          }
        }
      }
}

// The adjoint of im2col: dx[n0+j, g*Cg+c, ih, iw] += cols[row, column] for every in-bounds entry.
void col2im(float* dx, const float* cols, const ConvDims& d, const Conv2dArgs& a, int64_t n0,
            int64_t nb, int64_t g) {
  const int64_t ohw = d.OH * d.OW, ldc = nb * ohw;
  for (int64_t c = 0; c < d.Cg; ++c)
    for (int64_t kh = 0; kh < d.KH; ++kh)
      for (int64_t kw = 0; kw < d.KW; ++kw) {
        const float* row = cols + ((c * d.KH + kh) * d.KW + kw) * ldc;
        const int64_t iw0 = kw * a.dil_w - a.pad_w;
        int64_t lo, hi;
        valid_cols(iw0, a.stride_w, d.W, d.OW, lo, hi);
        for (int64_t j = 0; j < nb; ++j) {
          float* plane = dx + ((n0 + j) * d.C + g * d.Cg + c) * d.H * d.W;
          const float* src = row + j * ohw;
          for (int64_t oh = 0; oh < d.OH; ++oh, src += d.OW) {
            int64_t ih = oh * a.stride_h - a.pad_h + kh * a.dil_h;
            if (ih < 0 || ih >= d.H) continue;
            float* dst = plane + ih * d.W;
            for (int64_t ow = lo; ow < hi; ++ow) dst[iw0 + ow * a.stride_w] += src[ow];
          }
        }
      }
}

// A 1x1 kernel with stride 1 and no padding: the columns of one sample are its input itself.
bool is_pointwise(const ConvDims& d, const Conv2dArgs& a) {
  return d.KH == 1 && d.KW == 1 && a.stride_h == 1 && a.stride_w == 1 && a.pad_h == 0 &&
         a.pad_w == 0;
}

// Copies rows [f0, f0+Fg) of every sample of a chunk out of t [N, F, OHW] into buf [Fg, nb*OHW].
void gather_chunk(float* buf, const float* t, const ConvDims& d, int64_t n0, int64_t nb,
                  int64_t g) {
  const int64_t ohw = d.OH * d.OW;
  for (int64_t f = 0; f < d.Fg; ++f)
    for (int64_t j = 0; j < nb; ++j)
      std::memcpy(buf + (f * nb + j) * ohw, t + ((n0 + j) * d.F + g * d.Fg + f) * ohw,
                  sizeof(float) * ohw);
}

// exp(x) in float as straight-line arithmetic, so that the loops calling it vectorise and every
// element (vector body or scalar tail, any address) gets the same bits: x = n ln2 + r with
// n = floor(x log2(e) + 1/2) and Cody-Waite ln2, exp(r) by Cephes' expf polynomial, times 2^n
// applied as two halves so n in [-150, 129] needs no special case. Within 4e-7 relative of exp
// (tests/test_conv.cpp); x is clamped to [-104, 89]: below gives 0, above overflows to +inf.
inline float exp_f32(float x) {
  float xc = select(x < -104.f, -104.f, x);
  xc = select(xc > 89.f, 89.f, xc);
  const float t = xc * 1.44269504088896341f + 0.5f;
  const int32_t ti = int32_t(t);
  const int32_t n = ti - int32_t(float(ti) > t);  // floor(t) (truncation rounds up below 0)
  const float fx = float(n);
  const float r = (xc - fx * 0.693359375f) + fx * 2.12194440e-4f;  // x - n ln2, in two parts
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * (r * r) + r + 1.f;
  const int32_t a = n >> 1, b = n - a;  // each half in [-75, 65]: a normal power of two
  return y * (std::bit_cast<float>((a + 127) << 23) * std::bit_cast<float>((b + 127) << 23));
}

// dst[i] = f(src[i]); in place through one pointer, so the vectorised loop needs no overlap test
// (with two equal pointers GCC's runtime alias check would pick its scalar fallback).
template <class F>
void map_row(float* dst, const float* src, int64_t n, F f) {
  if (dst == src)
    for (int64_t i = 0; i < n; ++i) dst[i] = f(dst[i]);
  else
    for (int64_t i = 0; i < n; ++i) dst[i] = f(src[i]);
}

// The write-back of one output row: dst[i] = act(scale * src[i] + shift), src may equal dst.
// SiLU as v / (1 + exp(-v)); exp(-v) = inf for very negative v gives -0, the limit.
void epilogue(float* dst, const float* src, int64_t n, float scale, float shift, Activation act) {
  switch (act) {
    case Activation::none:
      map_row(dst, src, n, [=](float x) { return x * scale + shift; });
      break;
    case Activation::relu:
      map_row(dst, src, n, [=](float x) { return std::max(x * scale + shift, 0.f); });
      break;
    case Activation::silu:
      map_row(dst, src, n, [=](float x) {
        const float v = x * scale + shift;
        return v / (1.f + exp_f32(-v));
      });
      break;
  }
}

// Depthwise: one KH x KW filter per channel (G = C = F, so Cg = Fg = 1).
bool is_depthwise(const ConvDims& d) { return d.G > 1 && d.Cg == 1 && d.Fg == 1; }

constexpr int64_t kLanes = 16;
typedef float lanes __attribute__((vector_size(kLanes * sizeof(float))));  // GCC vector extension

typedef int32_t lane_mask __attribute__((vector_size(kLanes * sizeof(int32_t))));

inline lanes load_lanes(const float* p) {  // unaligned vector load
  lanes v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// dst[0, m) = v's first m lanes (m <= kLanes: a row's last block writes only its real columns;
// one masked store with AVX-512).
inline void store_lanes(float* dst, const lanes& v, int64_t m) {
  if (m == kLanes) std::memcpy(dst, &v, sizeof v);
#if defined(__AVX512F__)
  else _mm512_mask_storeu_ps(dst, __mmask16((1u << m) - 1), (__m512)v);
#else
  else for (int64_t j = 0; j < m; ++j) dst[j] = v[j];
#endif
}

// The direct kernels' copy of an input plane: zero-padded and split by column phase modulo the
// stride. Phase q holds padded columns q, q + sw, q + 2 sw, ..., so tap (kh, kw) of output column ow
// reads phase (kw dw) % sw at column ow + (kw dw) / sw: a contiguous run whatever the stride. The
// lanes of a row's last block beyond OW read on into the next row (or phase, or the slack after
// the last phase): the forward discards them, the backward-weight kernel masks them.
struct PhasePlanes {
  int64_t rows, stride, phase, plane;  // padded rows, row stride, floats per phase, per plane
};
PhasePlanes phase_planes(const ConvDims& d, const Conv2dArgs& a) {
  const int64_t sw = a.stride_w;
  PhasePlanes p{};
  p.rows = d.H + 2 * a.pad_h;
  p.stride = (d.W + 2 * a.pad_w + sw - 1) / sw;  // padded columns per phase
  p.phase = p.rows * p.stride;
  p.plane = sw * p.phase + kLanes + (d.KW - 1) * a.dil_w / sw;  // slack for the last block's reads
  return p;
}

// dst[k] = src[2 k] for k in [0, n): a row's phase at column stride 2. With AVX-512 16 at a time by
// a two-vector permute (the scalar loop took ~60% of EfficientNet's stride-2 depthwise layers,
// [4, 144, 190, 190]); no read past src[2 n - 2].
inline void copy_even(float* dst, const float* src, int64_t n) {
  int64_t k = 0;
#if defined(__AVX512F__)
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  for (; k + 16 <= n; k += 16) {
    const __m512 lo = _mm512_loadu_ps(src + 2 * k), hi = _mm512_maskz_loadu_ps(0x7fff, src + 2 * k + 16);
    _mm512_storeu_ps(dst + k, _mm512_permutex2var_ps(lo, even, hi));
  }
  if (k < n) {
    const int64_t need = 2 * (n - k) - 1;  // src[2k .. 2k + need)
    const __mmask16 m_lo = __mmask16((1u << std::min<int64_t>(need, 16)) - 1);
    const __mmask16 m_hi = __mmask16(need > 16 ? (1u << (need - 16)) - 1 : 0);
    const __m512 lo = _mm512_maskz_loadu_ps(m_lo, src + 2 * k), hi = _mm512_maskz_loadu_ps(m_hi, src + 2 * k + 16);
    _mm512_mask_storeu_ps(dst + k, __mmask16((1u << (n - k)) - 1), _mm512_permutex2var_ps(lo, even, hi));
    k = n;
  }
#endif
  for (; k < n; ++k) dst[k] = src[2 * k];
}

// dst (p.plane floats) = the phase-split padded copy of one [H, W] plane, slack zeroed. With
// `borders` false only the input rows are written: the padding rows and the slack are those of the
// previous plane filled into dst with the same layout (zeros).
void fill_phase_planes(float* dst, const float* src, const ConvDims& d, const Conv2dArgs& a,
                       const PhasePlanes& p, bool borders = true) {
  const int64_t sw = a.stride_w;
  if (borders) std::fill(dst + sw * p.phase, dst + p.plane, 0.f);
  for (int64_t q = 0; q < sw; ++q) {
    float* ph = dst + q * p.phase;
    if (borders) {
      std::fill(ph, ph + a.pad_h * p.stride, 0.f);
      std::fill(ph + (a.pad_h + d.H) * p.stride, ph + p.phase, 0.f);
    }
    int64_t lo, hi;  // this phase's columns that hold input columns
    valid_cols(q - a.pad_w, sw, d.W, p.stride, lo, hi);
    for (int64_t h = 0; h < d.H; ++h) {
      const float* in = src + h * d.W;
      float* row = ph + (h + a.pad_h) * p.stride;
      std::fill(row, row + lo, 0.f);
      if (sw == 1) std::memcpy(row + lo, in + lo - a.pad_w, sizeof(float) * (hi - lo));
      else if (sw == 2) copy_even(row + lo, in + q - a.pad_w + lo * 2, hi - lo);
      else for (int64_t k = lo; k < hi; ++k) row[k] = in[q - a.pad_w + k * sw];
      std::fill(row + hi, row + p.stride, 0.f);
    }
  }
}

// Offset of tap t = kh KW + kw's first input inside a sample's phase planes, relative to the row
// of output row 0.
std::vector<int64_t> tap_offsets(const ConvDims& d, const Conv2dArgs& a, const PhasePlanes& p) {
  std::vector<int64_t> off(d.KH * d.KW);
  for (int64_t kh = 0; kh < d.KH; ++kh)
    for (int64_t kw = 0; kw < d.KW; ++kw) {
      const int64_t col = kw * a.dil_w;
      off[kh * d.KW + kw] = (col % a.stride_w) * p.phase + kh * a.dil_h * p.stride + col / a.stride_w;
    }
  return off;
}

// Direct depthwise convolution with the epilogue: out[n,c] = act(scale[c] * (w[c] * x[n,c]) +
// shift[c]) (scale null: 1). Parallel over (n, c) planes; a plane is computed by one task, so the
// result does not depend on the thread count. Per plane: its phase planes (above); output rows
// four at a time, each in blocks of kLanes columns kept in registers across all KH*KW taps (one
// load and one FMA per tap and lane), then written through the epilogue. The four rows are four
// independent chains of multiply-adds: one row at a time was bound by the multiply-add's latency
// (EfficientNet-B4's depthwise layers at 1-5 GB/s, 36% of its forward, one Zen 4 core); each
// output's taps are still summed in order, so the same bits.
void depthwise_forward(float* out, const float* x, const float* w, const float* scale,
                       const float* shift, const ConvDims& d, const Conv2dArgs& a, Activation act) {
  const PhasePlanes pp = phase_planes(d, a);
  const std::vector<int64_t> tap_off = tap_offsets(d, a, pp);
  const int64_t ohw = d.OH * d.OW, planes = d.N * d.C, taps = d.KH * d.KW;
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(ohw * taps / 8, 1));
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, planes, grain),
                    [&](const tbb::blocked_range<int64_t>& r) {
    // one buffer per thread, reused across calls (no allocation or page faults per plane)
    thread_local std::vector<float> buf;
    if (buf.size() < size_t(pp.plane)) buf.resize(pp.plane);
    float* pad = buf.data();
    for (int64_t p = r.begin(); p < r.end(); ++p) {
      const int64_t c = p % d.C;
      fill_phase_planes(pad, x + p * d.H * d.W, d, a, pp, /*borders=*/p == r.begin());
      const float* wc = w + c * taps;
      float* o = out + p * ohw;
      const int64_t row_step = a.stride_h * pp.stride;  // padded floats between output rows' windows
      // output rows oh0 .. oh0 + R - 1
      auto rows = [&]<int R>(int64_t oh0) {
        for (int64_t ow0 = 0; ow0 < d.OW; ow0 += kLanes) {
          lanes acc[R] = {};
          const float* base = pad + oh0 * row_step + ow0;
          for (int64_t t = 0; t < taps; ++t) {
            const float* src = base + tap_off[t];
#pragma GCC unroll 4
            for (int r = 0; r < R; ++r) acc[r] += wc[t] * load_lanes(src + r * row_step);
          }
          for (int r = 0; r < R; ++r) store_lanes(o + (oh0 + r) * d.OW + ow0, acc[r], std::min(kLanes, d.OW - ow0));
        }
      };
      // the epilogue over rows [oh0, oh1) at once: contiguous, so whole vectors even for narrow rows
      // (a 12-wide row's SiLU ran as 12 scalar exps: EfficientNet's 12 x 12 depthwise layers)
      auto finish = [&](int64_t oh0, int64_t oh1) {
        epilogue(o + oh0 * d.OW, o + oh0 * d.OW, (oh1 - oh0) * d.OW, scale ? scale[c] : 1.f,
                 shift ? shift[c] : 0.f, act);
      };
      int64_t oh = 0;
      for (; oh + 4 <= d.OH; oh += 4) {
        rows.template operator()<4>(oh);
        finish(oh, oh + 4);
      }
      for (int64_t oh1 = oh; oh1 < d.OH; ++oh1) rows.template operator()<1>(oh1);
      if (oh < d.OH) finish(oh, d.OH);
    }
  });
}

// ---- direct convolution for few channels (groups 1, dilation 1) ----------------------------------
// With few input or output channels the im2col columns are many times the size of the output
// (LeNet's 8 -> 4 channels, 5x5: 200 floats of columns per output pixel against 4 of output), and
// building them, not the multiply-adds, is the cost. The direct kernels compute from each sample's
// phase planes instead:
// - forward: per output row and block of kLanes columns, FB filters' sums stay in registers over
//   all C * KH * KW taps (per tap: one load, FB FMAs); conv2d_affine_act's epilogue as above;
// - backward-input (stride 1): the forward of dout with the weights flipped and transposed,
//   [C, F, KH, KW], padding dil (K - 1) - pad: dx[n, c, ih, iw] = sum_{f,kh,kw} w[f, c, kh, kw]
//   dout[n, f, ih + ph - kh, iw + pw - kw];
// - backward-weight: dw[f, c, kh, kw] = sum over n, oh, ow of dout[n, f, oh, ow] x the tap's input,
//   per (filter block, channel) task, sample by sample: one kernel row's FB x KW sums in registers
//   over the sample's rows and column blocks (per column block: FB + KW loads, FB KW FMAs), kept
//   in memory between samples, reduced over the lanes at the end.
// Every output element is summed by one task in a fixed order: bit-identical for any thread count.
// Summation orders differ from the GEMM path's (results agree to float rounding).
bool direct_applies(const ConvDims& d, const Conv2dArgs& a) {
  return d.G == 1 && a.dil_h == 1 && a.dil_w == 1;
}
// The backward-weight kernel's kernel widths (its register block is FB x KW).
bool direct_weight_applies(const ConvDims& d, const Conv2dArgs& a) {
  return direct_applies(d, a) && (d.KW == 1 || d.KW == 3 || d.KW == 5);
}
// The backward-input kernel is a forward with padding K - 1 - pad, which must be >= 0.
bool direct_input_applies(const ConvDims& d, const Conv2dArgs& a) {
  return direct_applies(d, a) && a.stride_h == 1 && a.stride_w == 1 && a.pad_h <= d.KH - 1 &&
         a.pad_w <= d.KW - 1;
}

// Output rows of filters [f0, f0 + FB) of one sample: o [F, OH, OW] (raw sums), planes the
// sample's C phase planes, w [F, C, KH, KW].
template <int FB>
void direct_forward_block(float* o, const float* planes, const float* w, int64_t f0,
                          const ConvDims& d, const Conv2dArgs& a, const PhasePlanes& pp,
                          const int64_t* tap_off) {
  const int64_t taps = d.KH * d.KW, ohw = d.OH * d.OW;
  for (int64_t oh = 0; oh < d.OH; ++oh)
    for (int64_t ow0 = 0; ow0 < d.OW; ow0 += kLanes) {
      lanes acc[FB] = {};
      for (int64_t c = 0; c < d.C; ++c) {
        const float* base = planes + c * pp.plane + oh * a.stride_h * pp.stride + ow0;
        const float* wc = w + (f0 * d.C + c) * taps;  // filter f0's taps of channel c
        for (int64_t t = 0; t < taps; ++t) {
          const lanes v = load_lanes(base + tap_off[t]);
          for (int fb = 0; fb < FB; ++fb) acc[fb] += wc[fb * d.K + t] * v;
        }
      }
      const int64_t m = std::min(kLanes, d.OW - ow0);
      for (int fb = 0; fb < FB; ++fb) store_lanes(o + (f0 + fb) * ohw + oh * d.OW + ow0, acc[fb], m);
    }
}

// out [N, F, OH, OW] = act(scale[f] * conv + shift[f]) by the direct forward; parallel over samples.
void direct_forward(float* out, const float* x, const float* w, const float* scale,
                    const float* shift, const ConvDims& d, const Conv2dArgs& a, Activation act) {
  const PhasePlanes pp = phase_planes(d, a);
  const std::vector<int64_t> tap_off = tap_offsets(d, a, pp);
  const int64_t ohw = d.OH * d.OW;
  tbb::parallel_for(int64_t(0), d.N, [&](int64_t n) {
    thread_local std::vector<float> buf;
    if (buf.size() < size_t(d.C * pp.plane)) buf.resize(d.C * pp.plane);
    for (int64_t c = 0; c < d.C; ++c)
      fill_phase_planes(buf.data() + c * pp.plane, x + (n * d.C + c) * d.H * d.W, d, a, pp);
    float* o = out + n * d.F * ohw;
    int64_t f0 = 0;
    for (; f0 + 8 <= d.F; f0 += 8) direct_forward_block<8>(o, buf.data(), w, f0, d, a, pp, tap_off.data());
    for (; f0 + 4 <= d.F; f0 += 4) direct_forward_block<4>(o, buf.data(), w, f0, d, a, pp, tap_off.data());
    for (; f0 < d.F; ++f0) direct_forward_block<1>(o, buf.data(), w, f0, d, a, pp, tap_off.data());
    for (int64_t f = 0; f < d.F; ++f)
      epilogue(o + f * ohw, o + f * ohw, ohw, scale ? scale[f] : 1.f, shift ? shift[f] : 0.f, act);
  });
}

// dx [N, C, H, W] by the direct forward of dout with the flipped, transposed weights (stride 1).
void direct_backward_input(float* dx, const float* dout, const float* w, const ConvDims& d,
                           const Conv2dArgs& a) {
  std::vector<float> wt(d.F * d.K);  // [C, F, KH, KW], each kernel rotated by 180 degrees
  const int64_t taps = d.KH * d.KW;
  for (int64_t f = 0; f < d.F; ++f)
    for (int64_t c = 0; c < d.C; ++c)
      for (int64_t t = 0; t < taps; ++t)
        wt[(c * d.F + f) * taps + (taps - 1 - t)] = w[(f * d.C + c) * taps + t];
  Conv2dArgs at;
  at.pad_h = d.KH - 1 - a.pad_h, at.pad_w = d.KW - 1 - a.pad_w;
  ConvDims dt = d;  // the transposed convolution's sizes: input dout, output dx
  dt.C = d.F, dt.H = d.OH, dt.W = d.OW, dt.F = d.C, dt.OH = d.H, dt.OW = d.W;
  dt.Cg = dt.C, dt.Fg = dt.F, dt.K = dt.C * taps;
  direct_forward(dx, dout, wt.data(), nullptr, nullptr, dt, at, Activation::none);
}

// Adds one sample's products to the sums of one (filter block, channel, kernel row): acc[fb][kw]
// (lanes), g the sample's zero-padded dout rows of filter f0 ([F, OH, OWp] slices), pl its phase
// planes of channel c.
// The lanes of a row's last block past OW multiply a zero gradient by an input value no real output
// of that tap reads; `tail` (all ones on lanes < OW) clears those values first, so an infinite one
// cannot turn the sum into NaN (0 x inf).
template <int FB, int KW>
void direct_weight_row(lanes (&acc)[FB][KW], const float* g, const float* pl, int64_t kh,
                       int64_t owp, const lane_mask& tail, const ConvDims& d, const Conv2dArgs& a,
                       const PhasePlanes& pp, const int64_t* tap_off) {
  for (int64_t oh = 0; oh < d.OH; ++oh, g += owp) {
    const float* base = pl + oh * a.stride_h * pp.stride;
    for (int64_t ow0 = 0; ow0 < owp; ow0 += kLanes) {
      const bool last_block = ow0 + kLanes > d.OW;
      lanes dv[FB];
      for (int fb = 0; fb < FB; ++fb) dv[fb] = load_lanes(g + fb * d.OH * owp + ow0);
      for (int kw = 0; kw < KW; ++kw) {
        lanes v = load_lanes(base + tap_off[kh * KW + kw] + ow0);
        if (last_block) v = (lanes)((lane_mask)v & tail);
        for (int fb = 0; fb < FB; ++fb) acc[fb][kw] += dv[fb] * v;
      }
    }
  }
}

// One task's sums over samples [n0, n1): sample by sample, and within a sample kernel row by
// kernel row, so the sample's gradient rows and planes stay in L1 across the KH rows (kernel rows
// outermost re-read the whole gradient KH times: the 1 -> 8 LeNet layer's 1.8 MB per row). The
// FB x KW sums of each kernel row live in `state` between samples and chunks (the same order of
// additions per sum as a kernel-row-outer loop); after the last chunk their lanes are reduced in
// order into dw.
template <int FB, int KW>
void direct_weight_task(float* dw, lanes* state, const float* dpad, const float* planes,
                        int64_t n0, int64_t n1, bool last, int64_t f0, int64_t c, int64_t owp,
                        const lane_mask& tail, const ConvDims& d, const Conv2dArgs& a,
                        const PhasePlanes& pp, const int64_t* tap_off) {
  for (int64_t n = n0; n < n1; ++n) {
    const float* g = dpad + (n * d.F + f0) * d.OH * owp;
    const float* pl = planes + ((n - n0) * d.C + c) * pp.plane;
    for (int64_t kh = 0; kh < d.KH; ++kh) {
      lanes acc[FB][KW];
      lanes* st = state + kh * FB * KW;  // this kernel row's sums so far (zero at first)
      for (int fb = 0; fb < FB; ++fb)
        for (int kw = 0; kw < KW; ++kw) acc[fb][kw] = st[fb * KW + kw];
      direct_weight_row<FB, KW>(acc, g, pl, kh, owp, tail, d, a, pp, tap_off);
      for (int fb = 0; fb < FB; ++fb)
        for (int kw = 0; kw < KW; ++kw) st[fb * KW + kw] = acc[fb][kw];
    }
  }
  if (!last) return;
  for (int64_t kh = 0; kh < d.KH; ++kh)
    for (int fb = 0; fb < FB; ++fb)
      for (int kw = 0; kw < KW; ++kw) {
        const lanes& sum = state[(kh * FB + fb) * KW + kw];
        float s = 0.f;  // lanes reduced in order
        for (int64_t j = 0; j < kLanes; ++j) s += sum[j];
        dw[((f0 + fb) * d.C + c) * d.KH * KW + kh * KW + kw] = s;
      }
}

template <int KW>
void direct_backward_weight_kw(float* dw, const float* dout, const float* x, const ConvDims& d,
                               const Conv2dArgs& a) {
  const PhasePlanes pp = phase_planes(d, a);
  const std::vector<int64_t> tap_off = tap_offsets(d, a, pp);
  const int64_t owp = (d.OW + kLanes - 1) / kLanes * kLanes;
  lane_mask tail;  // lanes of the last block that hold real output columns
  for (int64_t j = 0; j < kLanes; ++j) tail[j] = owp - kLanes + j < d.OW ? -1 : 0;
  // dout with each row zero-padded to whole lane blocks
  std::vector<float> dpad(d.N * d.F * d.OH * owp);
  parallel_for(d.N * d.F * d.OH, 256, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      std::copy(dout + r * d.OW, dout + (r + 1) * d.OW, dpad.begin() + r * owp);
      std::fill(dpad.begin() + r * owp + d.OW, dpad.begin() + (r + 1) * owp, 0.f);
    }
  });
  // tasks: (filter block of 4, or single filters past the last whole block) x channel; each task's
  // sums get room for a block of 4 (a single filter uses the first quarter)
  const int64_t f_blocks = d.F / 4, f_tasks = f_blocks + d.F % 4, tasks = f_tasks * d.C;
  std::vector<lanes> state(tasks * d.KH * 4 * KW, lanes{});
  // samples in chunks fixed by the shapes (phase planes of <= ~4M floats), summed in order
  const int64_t nb =
      std::clamp<int64_t>((int64_t(4) << 20) / std::max<int64_t>(d.C * pp.plane, 1), 1, d.N);
  std::vector<float> planes(nb * d.C * pp.plane);
  for (int64_t n0 = 0; n0 < d.N; n0 += nb) {
    const int64_t n1 = std::min(d.N, n0 + nb);
    const bool last = n1 == d.N;
    parallel_for((n1 - n0) * d.C, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        fill_phase_planes(planes.data() + i * pp.plane, x + (n0 * d.C + i) * d.H * d.W, d, a, pp);
    });
    parallel_for(tasks, 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t ft = t / d.C, c = t % d.C;
        lanes* st = state.data() + t * d.KH * 4 * KW;
        if (ft < f_blocks)
          direct_weight_task<4, KW>(dw, st, dpad.data(), planes.data(), n0, n1, last, ft * 4, c, owp,
                                    tail, d, a, pp, tap_off.data());
        else
          direct_weight_task<1, KW>(dw, st, dpad.data(), planes.data(), n0, n1, last,
                                    f_blocks * 4 + (ft - f_blocks), c, owp, tail, d, a, pp,
                                    tap_off.data());
      }
    });
  }
}

void direct_backward_weight(float* dw, const float* dout, const float* x, const ConvDims& d,
                            const Conv2dArgs& a) {
  if (d.N == 0) {  // an empty batch: no products, zero gradient
    std::fill(dw, dw + d.F * d.K, 0.f);
    return;
  }
  switch (d.KW) {
    case 1: return direct_backward_weight_kw<1>(dw, dout, x, d, a);
    case 3: return direct_backward_weight_kw<3>(dw, dout, x, d, a);
    default: return direct_backward_weight_kw<5>(dw, dout, x, d, a);  // direct_weight_applies
  }
}

// ---- small GEMM depth: few taps per output (groups 1, K = C KH KW up to ~32) ---------------------
// The Omniglot net's first layer (1 -> 64 channels, 3x3, stride 2: K = 9) went through im2col and
// one OpenBLAS sgemm of [64, 9] x [9, 196] per sample: 14 GFLOP/s, the call, the packing and a copy
// of the result costing more than 9 multiply-adds per output (15 ms a batch of 960 for 48 MB of
// output; its weight gradient 13 ms). These kernels read each sample's planar im2col columns
// [K, OH OW] (rows padded to whole vectors, zeros past OH OW) one chunk of kPixelChunk pixels at a
// time, so the chunk's columns stay in L1/L2 while every filter block passes over them:
// - forward: a tile of FB filters x PV vectors of pixels sums over all K rows in registers (per
//   row: PV loads, FB broadcasts, FB PV multiply-adds) and goes through the epilogue (scale, shift,
//   ReLU) on its way into out's rows (SiLU: per row after its block of filters where one chunk of
//   pixels covers the sample, else after the sample);
// - weight gradient: dw[f, k] = sum over samples and pixels of dout[n, f, p] cols_n[k, p]; a tile
//   of 2 filters x up to 12 column rows (K in as few such tiles as cover it) keeps its lanes in
//   registers over a chunk's pixel vectors -- and, where a sample's pixels make one chunk, over a
//   group of samples whose columns sit side by side (~24 KB) -- and in memory between chunks and
//   groups. The samples are cut into at most 32 parts fixed by the shapes; the parts' lanes are
//   added in part order, then the lanes in order.
// The gradient's last vector of a row is loaded masked (its lanes past OH OW are zero, not the
// next filter's row), and the columns' padding is zero, so no value outside a row enters a sum.
// Every output element is summed by one task in a fixed order: bit-identical for any thread count.
constexpr int64_t kPixelChunk = 512;  // pixels: K = 32 rows of columns are 64 KB

int64_t padded_pixels(const ConvDims& d) { return (d.OH * d.OW + kLanes - 1) / kLanes * kLanes; }

// One sample's columns [K, ohwp] into `cols`, the padding past OH OW zero.
#if defined(__AVX512F__)
// Mask of the lanes j in [0, 16) whose input column c0 + j lies inside [0, W).
inline __mmask16 inside_lanes(int64_t c0, int64_t W) {
  const int64_t lo = std::clamp<int64_t>(-c0, 0, 16), hi = std::clamp<int64_t>(W - c0, 0, 16);
  return hi > lo ? __mmask16(((1u << hi) - 1) & ~((1u << lo) - 1)) : __mmask16(0);
}

// small_depth_columns for output rows of at most 16 pixels at column stride 1 or 2: each (tap,
// output row) is one vector -- one or two masked loads (lanes outside the input row zero, never
// read), for stride 2 the even elements picked by a permute -- and one masked store of OW lanes.
// The generic im2col's per-element loop and its short fills took 14% of the Omniglot net's first
// layer (28 x 28, stride 2: rows of 14).
void strided_row_columns(float* cols, const float* x, const ConvDims& d, const Conv2dArgs& a, int64_t n,
                         int64_t ohwp) {
  const int64_t sw = a.stride_w;
  const __mmask16 out_lanes = __mmask16((1u << d.OW) - 1);
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  for (int64_t c = 0; c < d.C; ++c) {
    const float* plane = x + (n * d.C + c) * d.H * d.W;
    for (int64_t kh = 0; kh < d.KH; ++kh)
      for (int64_t kw = 0; kw < d.KW; ++kw) {
        float* row = cols + ((c * d.KH + kh) * d.KW + kw) * ohwp;
        const int64_t iw0 = kw * a.dil_w - a.pad_w;  // input column of ow = 0
        const __mmask16 m0 = inside_lanes(iw0, d.W), m1 = sw == 2 ? inside_lanes(iw0 + 16, d.W) : 0;
        for (int64_t oh = 0; oh < d.OH; ++oh) {
          const int64_t ih = oh * a.stride_h - a.pad_h + kh * a.dil_h;
          __m512 v = _mm512_setzero_ps();
          if (ih >= 0 && ih < d.H) {
            // the row's column iw0 (< 0 in the padding): its address formed as an integer, since a
            // pointer before (or 16 floats past) the array is not a valid pointer; the masked
            // loads read only the lanes inside the row
            const uintptr_t src = reinterpret_cast<uintptr_t>(plane + ih * d.W) + uintptr_t(iw0 * int64_t(sizeof(float)));
            v = _mm512_maskz_loadu_ps(m0, reinterpret_cast<const void*>(src));
            if (sw == 2)
              v = _mm512_permutex2var_ps(
                  v, even, _mm512_maskz_loadu_ps(m1, reinterpret_cast<const void*>(src + 16 * sizeof(float))));
          }
          _mm512_mask_storeu_ps(row + oh * d.OW, out_lanes, v);
        }
        std::fill(row + d.OH * d.OW, row + ohwp, 0.f);
      }
  }
}
#endif

void small_depth_columns(float* cols, const float* x, const ConvDims& d, const Conv2dArgs& a, int64_t n) {
  const int64_t ohw = d.OH * d.OW, ohwp = padded_pixels(d);
#if defined(__AVX512F__)
  if (d.OW <= 16 && (a.stride_w == 1 || a.stride_w == 2)) {
    strided_row_columns(cols, x, d, a, n, ohwp);
    return;
  }
#endif
  im2col(cols, x, d, a, n, 1, 0, ohwp);
  for (int64_t k = 0; k < d.K; ++k) std::fill(cols + k * ohwp + ohw, cols + (k + 1) * ohwp, 0.f);
}

// Filters [f0, f0 + FB) x pixel vectors [p0, p0 + PV kLanes) of one sample: o its output [F, ohw],
// cols its columns [K, ohwp], w [F, K]. The sums are written as scale * sum + shift, then the ReLU;
// raw for SiLU (small_depth_forward's row epilogue). Full: every vector lies inside OH OW.
template <int FB, int PV, bool Full>
void small_depth_tile(float* o, const float* cols, const float* w, int64_t f0, int64_t p0,
                      const ConvDims& d, int64_t ohwp, const float* scale, const float* shift,
                      Activation act) {
  const int64_t K = d.K;
  const int64_t ohw = d.OH * d.OW;
  lanes acc[FB][PV];
  for (int fb = 0; fb < FB; ++fb)
    for (int pv = 0; pv < PV; ++pv) acc[fb][pv] = lanes{};
  // Per row k: FB broadcast weights, then each pixel vector loaded once and used FB times. (With
  // the filters outermost GCC folded the column load into every multiply-add: FB PV vector loads
  // a row instead of PV, against Zen 4's one 512-bit load a cycle.)
  for (int64_t k = 0; k < K; ++k) {
    lanes wk[FB];
    for (int fb = 0; fb < FB; ++fb) wk[fb] = w[(f0 + fb) * K + k] - lanes{};  // broadcast (x - 0 is x, -0 too)
    for (int pv = 0; pv < PV; ++pv) {
      const lanes v = load_lanes(cols + k * ohwp + p0 + pv * kLanes);
      for (int fb = 0; fb < FB; ++fb) acc[fb][pv] += wk[fb] * v;
    }
  }
  for (int fb = 0; fb < FB; ++fb) {
    const int64_t f = f0 + fb;
    const float sf = scale ? scale[f] : 1.f, hf = shift ? shift[f] : 0.f;
    for (int pv = 0; pv < PV; ++pv) {
      lanes r = acc[fb][pv];
      if (act != Activation::silu) r = r * sf + hf;  // x * 1 + b is exactly x + b
      if (act == Activation::relu) r = r < 0.f ? lanes{} : r;  // NaN stays NaN, as std::max(x, 0)
      const int64_t p = p0 + pv * kLanes;
      if (Full) std::memcpy(o + f * ohw + p, &r, sizeof r);
      else store_lanes(o + f * ohw + p, r, std::min(kLanes, ohw - p));
    }
  }
}

template <int FB>
void small_depth_filters(float* o, const float* cols, const float* w, int64_t f0, int64_t p0,
                         int64_t p1, const ConvDims& d, int64_t ohwp, const float* scale,
                         const float* shift, Activation act) {
  constexpr int PV = 4;
  const int64_t ohw = d.OH * d.OW;
  int64_t p = p0;
  for (; p + PV * kLanes <= std::min(p1, ohw); p += PV * kLanes)
    small_depth_tile<FB, PV, true>(o, cols, w, f0, p, d, ohwp, scale, shift, act);
  for (; p < p1; p += kLanes)
    small_depth_tile<FB, 1, false>(o, cols, w, f0, p, d, ohwp, scale, shift, act);
}

// out [N, F, OH, OW] = act(scale[f] * conv + shift[f]); parallel over samples.
// moments: when given, each output plane's moments (plane_moments, [N, F]) from the final values
// while the plane is still in this thread's buffer.
void small_depth_forward(float* out, const float* x, const float* w, const float* scale,
                         const float* shift, const ConvDims& d, const Conv2dArgs& a, Activation act,
                         PlaneMoments* moments = nullptr) {
  const int64_t ohw = d.OH * d.OW, ohwp = padded_pixels(d);
  const bool stream = streams_output(d.N * d.F * ohw);
  parallel_for(d.N, 1, [&](int64_t n0, int64_t n1) {
    // one sample's columns, reused over the task's samples; 64-byte aligned (and
    // ohwp is whole vectors), so that no load of a column row straddles two cache lines
    aligned_floats col_buffer(d.K * ohwp);
    float* cols = col_buffer.data();
    // a large output is written from this thread's buffer with streaming stores: a block of
    // filters at a time where one chunk of pixels covers the sample, else sample by sample
    thread_local aligned_floats out_buffer;
    if (stream) out_buffer.resize(std::max<size_t>(out_buffer.size(), d.F * ohw));
    // Rows [f0, f1) of the sample are final (all pixels summed): SiLU's epilogue, then, when
    // streaming, out of the buffer while it is still in L1, unfenced (one fence per task, below).
    auto finish_rows = [&](int64_t n, float* o, float* dst, int64_t f0, int64_t f1) {
      if (act == Activation::silu)
        for (int64_t f = f0; f < f1; ++f)
          epilogue(o + f * ohw, o + f * ohw, ohw, scale ? scale[f] : 1.f, shift ? shift[f] : 0.f, act);
      if (moments)
        for (int64_t f = f0; f < f1; ++f) moments[n * d.F + f] = plane_moments(o + f * ohw, ohw);
      if (stream) stream_floats(dst + f0 * ohw, o + f0 * ohw, (f1 - f0) * ohw, false);
    };
    // One chunk of pixels covers the sample: each block of filters is final when its tiles end and
    // streams out then, interleaved with the next block's multiply-adds (the Omniglot net's first
    // layer, batch 960, one Zen 4 core: 7.4 -> 6.3 ms against the whole sample's 50 KB streamed
    // from L2 after its tiles).
    const bool one_chunk = ohwp <= kPixelChunk;
    for (int64_t n = n0; n < n1; ++n) {
      small_depth_columns(cols, x, d, a, n);
      float* dst = out + n * d.F * ohw;
      float* o = stream ? out_buffer.data() : dst;
      for (int64_t p0 = 0; p0 < ohwp; p0 += kPixelChunk) {
        const int64_t p1 = std::min(ohwp, p0 + kPixelChunk);
        int64_t f0 = 0;
        for (; f0 + 4 <= d.F; f0 += 4) {
          small_depth_filters<4>(o, cols, w, f0, p0, p1, d, ohwp, scale, shift, act);
          if (one_chunk) finish_rows(n, o, dst, f0, f0 + 4);
        }
        for (; f0 < d.F; ++f0) {
          small_depth_filters<1>(o, cols, w, f0, p0, p1, d, ohwp, scale, shift, act);
          if (one_chunk) finish_rows(n, o, dst, f0, f0 + 1);
        }
      }
      if (!one_chunk) finish_rows(n, o, dst, 0, d.F);
    }
    if (stream) stream_fence();  // the task's streamed samples visible to the next op's threads
  });
}

// p[0, m) and zeros (0 < m <= kLanes): a row's last vector without the values past its end.
inline lanes load_lanes_upto(const float* p, int64_t m) {
#if defined(__AVX512F__)
  return (lanes)_mm512_maskz_loadu_ps(__mmask16((1u << m) - 1), p);
#else
  float buf[kLanes] = {};
  std::memcpy(buf, p, sizeof(float) * m);
  return load_lanes(buf);
#endif
}

// Adds pixels [p0, p1) of `samples` consecutive samples to the sums of filters [f0, f0 + FB) x
// column rows [k0, k0 + KB): st their lanes (row f at st + f K), g the first sample's dout [F, ohw]
// (the next ones F ohw apart), cols the first sample's columns [K, ohwp] (the next ones K ohwp
// apart). The sums stay in registers over the samples: per sample and tile, 13 vectors of work on
// the Omniglot net's 14x14 maps did not pay for loading and storing them. bst, when given: the
// filters' bias-gradient lanes (filter f at bst + f), to which each gradient vector is also added.
template <int FB, int KB>
void small_depth_weight_tile(lanes* st, lanes* bst, const float* g, const float* cols, int64_t samples,
                             int64_t f0, int64_t k0, int64_t p0, int64_t p1, const ConvDims& d, int64_t ohwp) {
  const int64_t ohw = d.OH * d.OW;
  lanes acc[FB][KB];  // unrolled, so that the sums stay in registers
  lanes bias[FB];
#pragma GCC unroll 2
  for (int fb = 0; fb < FB; ++fb) {
    bias[fb] = bst ? bst[f0 + fb] : lanes{};
#pragma GCC unroll 12
    for (int kb = 0; kb < KB; ++kb) acc[fb][kb] = st[(f0 + fb) * d.K + k0 + kb];
  }
  const int64_t full_end = std::min(p1, ohw / kLanes * kLanes);  // vectors wholly inside OH OW
  // the gradient rows two filter blocks ahead on their way (rows that exist only)
  const int64_t ahead = f0 + 3 * FB <= d.F ? 2 * FB * ohw : 0;
  for (int64_t j = 0; j < samples; ++j) {
    const float* gj = g + j * d.F * ohw;
    const float* cj = cols + j * d.K * ohwp;
    auto add = [&](int64_t p, int64_t m) {
      if (ahead)
#pragma GCC unroll 2
        for (int fb = 0; fb < FB; ++fb) __builtin_prefetch(gj + (f0 + fb) * ohw + p + ahead);
      lanes gv[FB];
#pragma GCC unroll 2
      for (int fb = 0; fb < FB; ++fb) {
        gv[fb] = m == kLanes ? load_lanes(gj + (f0 + fb) * ohw + p) : load_lanes_upto(gj + (f0 + fb) * ohw + p, m);
        if (bst) bias[fb] += gv[fb];
      }
#pragma GCC unroll 12
      for (int kb = 0; kb < KB; ++kb) {
        const lanes c = load_lanes(cj + (k0 + kb) * ohwp + p);
#pragma GCC unroll 2
        for (int fb = 0; fb < FB; ++fb) acc[fb][kb] += gv[fb] * c;
      }
    };
    int64_t p = p0;
    for (; p < full_end; p += kLanes) add(p, kLanes);
    if (p < std::min(p1, ohw)) add(p, ohw - p);  // the row's last, partial vector
  }
#pragma GCC unroll 2
  for (int fb = 0; fb < FB; ++fb) {
    if (bst) bst[f0 + fb] = bias[fb];
#pragma GCC unroll 12
    for (int kb = 0; kb < KB; ++kb) st[(f0 + fb) * d.K + k0 + kb] = acc[fb][kb];
  }
}

// A tile of FB filters x kb column rows, kb in [1, kMaxKB] (FB kb sums, FB gradient vectors, FB
// bias lanes and a column vector in AVX-512's 32 vector registers: 29 for 2 x 9; with AVX2 a tile
// of 12 rows spills: correct, slower).
constexpr int64_t kMaxKB = 12;
template <int FB>
void small_depth_weight_tile_kb(int64_t kb, lanes* st, lanes* bst, const float* g, const float* cols,
                                int64_t samples, int64_t f0, int64_t k0, int64_t p0, int64_t p1,
                                const ConvDims& d, int64_t ohwp) {
  switch (kb) {
#define NORMAD_KB_CASE(n) \
  case n: return small_depth_weight_tile<FB, n>(st, bst, g, cols, samples, f0, k0, p0, p1, d, ohwp);
    NORMAD_KB_CASE(1) NORMAD_KB_CASE(2) NORMAD_KB_CASE(3) NORMAD_KB_CASE(4) NORMAD_KB_CASE(5)
    NORMAD_KB_CASE(6) NORMAD_KB_CASE(7) NORMAD_KB_CASE(8) NORMAD_KB_CASE(9) NORMAD_KB_CASE(10)
    NORMAD_KB_CASE(11) NORMAD_KB_CASE(12)
#undef NORMAD_KB_CASE
  }
}

// Filters [f0, f0 + FB) of a group of samples, every column row, pixels [p0, p1): the column rows in
// as few tiles of at most kMaxKB as cover K (9: one tile of 9, not 4 + 4 + 1, whose 1-row tile
// read the FB gradient rows a third time for FB multiply-adds per vector). The bias lanes bst (when
// given) take the gradient vectors in the first tile.
template <int FB>
void small_depth_weight_rows(lanes* st, lanes* bst, const float* g, const float* cols, int64_t samples,
                             int64_t f0, int64_t p0, int64_t p1, const ConvDims& d, int64_t ohwp) {
  const int64_t tiles = (d.K + kMaxKB - 1) / kMaxKB;
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t k0 = d.K * t / tiles, kb = d.K * (t + 1) / tiles - k0;
    small_depth_weight_tile_kb<FB>(kb, st, t == 0 ? bst : nullptr, g, cols, samples, f0, k0, p0, p1, d, ohwp);
  }
}

// dw, and db (when given) = the bias gradient, the sum of dout over N, OH, OW per filter.
void small_depth_backward_weight(float* dw, float* db, const float* dout, const float* x, const ConvDims& d,
                                 const Conv2dArgs& a) {
  const int64_t ohw = d.OH * d.OW, ohwp = padded_pixels(d), wsize = d.F * d.K;
  // parts of >= ~4096 output pixels (a part per sample made the 1 -> 64 layer's batch of 30 zero
  // and reduce 30 sets of sums: 1.5x slower at 2 threads than 2 parts), at most 32, fixed by the shapes
  const int64_t n_parts = std::clamp<int64_t>((d.N * ohw + 4095) / 4096, std::min<int64_t>(d.N, 1),
                                              std::min<int64_t>(d.N, 32));
  // samples whose columns go side by side into one group (~24 KB of columns, in L1 beside the
  // gradient rows), when a sample's pixels make one chunk
  const int64_t group = ohwp <= kPixelChunk ? std::max<int64_t>(1, 6144 / (d.K * ohwp)) : 1;
  // [part][F][K] lanes, then with db the bias's [part][F] lanes, from the tensor pool (a fresh
  // 1.2 MB vector per call page-faulted on every call), each part zeroed by its own task
  Tensor state_block = Tensor::empty({n_parts * (wsize + (db ? d.F : 0)) * kLanes});
  lanes* state = reinterpret_cast<lanes*>(state_block.data());
  lanes* bias_state = db ? state + n_parts * wsize : nullptr;
  tbb::parallel_for(int64_t(0), n_parts, [&](int64_t part) {
    aligned_floats col_buffer(group * d.K * ohwp);  // 64-byte aligned rows, as the forward's
    float* cols = col_buffer.data();
    lanes* st = state + part * wsize;
    lanes* bst = db ? bias_state + part * d.F : nullptr;
    std::fill(st, st + wsize, lanes{});
    if (bst) std::fill(bst, bst + d.F, lanes{});
    const int64_t n_end = d.N * (part + 1) / n_parts;
    for (int64_t n = d.N * part / n_parts; n < n_end; n += group) {
      const int64_t samples = std::min(group, n_end - n);
      for (int64_t j = 0; j < samples; ++j) small_depth_columns(cols + j * d.K * ohwp, x, d, a, n + j);
      const float* g = dout + n * d.F * ohw;
      for (int64_t p0 = 0; p0 < ohwp; p0 += kPixelChunk) {
        const int64_t p1 = std::min(ohwp, p0 + kPixelChunk);
        int64_t f0 = 0;
        for (; f0 + 2 <= d.F; f0 += 2) small_depth_weight_rows<2>(st, bst, g, cols, samples, f0, p0, p1, d, ohwp);
        for (; f0 < d.F; ++f0) small_depth_weight_rows<1>(st, bst, g, cols, samples, f0, p0, p1, d, ohwp);
      }
    }
  });
  // dw [F, C, KH, KW] = [F, K] (and db [F]): the parts' lanes added part by part in order, then
  // the lanes in order (0 for N = 0); vector adds, independent across elements (a scalar chain per
  // element through 32 x 16 values took longer than the products on a batch of 30)
  auto reduce = [n_parts](float* out, const lanes* parts, int64_t size) {
    parallel_for(size, 64, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        lanes v = {};
        for (int64_t part = 0; part < n_parts; ++part) v += parts[part * size + i];
        float s = 0.f;
        for (int64_t j = 0; j < kLanes; ++j) s += v[j];
        out[i] = s;
      }
    });
  };
  reduce(dw, state, wsize);
  if (db) reduce(db, bias_state, d.F);
}

// ---- implicit GEMM forward, channels-last (groups 1, many channels) ------------------------------
// With many channels (the Omniglot net's 64) im2col + OpenBLAS spent as long building and packing
// operands as multiplying them (perf of the Omniglot scoring step, 1 core: sgemm kernel 28% of the
// time, im2col 13%, OpenBLAS packing the columns and, per chunk again, the weights 13.5%). This
// kernel reads each tap straight from a zero-padded channels-last copy of the samples:
//   out[pixel, f] = sum_{kh, kw, c} xpad[window(pixel) + (kh dh, kw dw), c] w[f, c, kh, kw],
// with the weights packed once per call as blocks of filters, [block][KH][KW][C][filters of the
// block] (filters in vector lanes, zero-padded to whole vectors). A register tile of kTileP output
// pixels x FV vectors of filters stays in registers over all KH KW C terms: per term FV weight
// loads, kTileP broadcasts, kTileP FV multiply-adds. The tile's pixels run on across rows and
// samples of the chunk (each pixel has its own window pointer), so small maps (7x7, 4x4, 2x2)
// leave no lanes empty. The [pixels, F] tile results are written to out [N, F, OH, OW] through the
// epilogue. Every output is summed by one task in one order (taps, then channels): bit-identical
// for any thread count; the order differs from the GEMM paths' (results agree to float rounding).
bool implicit_applies(const ConvDims& d) { return d.G == 1; }

// Software prefetches of the next chunk's operand spread over the current chunk's tiles, so that
// its lines arrive in L2 while the register tile (bound by its multiply-adds) runs, instead of
// stalling the next chunk's channels-last copy on memory (the copies of the Omniglot net's 48 MB
// 14 x 14 input took 15% of its forward at batch 960, 7% at batch 30). Prefetches change no value.
// A range over kMaxPrefetchBytes (half a 1 MB L2) is not prefetched: it would evict the current
// chunk's own operands (a large map's one-sample chunks).
constexpr int64_t kMaxPrefetchBytes = 512 << 10;
class ChunkPrefetch {
 public:
  // floats [begin, begin + n) in about `steps` equal shares; write: the lines will be written
  ChunkPrefetch(const float* begin, int64_t n, int64_t steps, bool write = false)
      : p_(reinterpret_cast<const char*>(begin)),
        end_(p_ + (begin && n * int64_t(sizeof(float)) <= kMaxPrefetchBytes ? n : 0) * int64_t(sizeof(float))),
        per_step_((end_ - p_ + 63) / 64 / std::max<int64_t>(steps, 1) + 1), write_(write) {}
  void step() {
    for (int64_t i = 0; i < per_step_ && p_ < end_; ++i, p_ += 64) {
      if (write_) __builtin_prefetch(p_, 1, 2);
      else __builtin_prefetch(p_, 0, 2);
    }
  }

 private:
  const char* p_;
  const char* end_;
  int64_t per_step_;
  bool write_;
};

int64_t implicit_padded_filters(const ConvDims& d) { return whole_vectors(d.F); }

// w [F, C, KH, KW] -> blocks of kMaxFV vectors of filters (the last block narrower), each
// [KH KW][C][block width]; block f0 starts at f0 * K (filters past F are zero).
aligned_floats implicit_weights(const float* w, const ConvDims& d) {
  const int64_t fp = implicit_padded_filters(d), taps = d.KH * d.KW;
  aligned_floats out(fp * d.K, 0.f);
  const int64_t block = kMaxFV * kVec, blocks = (fp + block - 1) / block;
  // One task per block of filters; inside, the writes run along the filters (contiguous) while a
  // channel's taps of the block's filters (block lines of w) stay in L1 across the taps. Writing
  // the taps of one filter at a time instead scattered each store across K x block floats, on
  // the calling thread alone (7% of resnet18 layer3's forward at 2 threads).
  tbb::parallel_for(int64_t(0), blocks, [&](int64_t b) {
    const int64_t f0 = b * block, width = std::min<int64_t>(block, fp - f0);
    const int64_t f1 = std::min(f0 + width, d.F);
    float* blk = out.data() + f0 * d.K;
    for (int64_t c = 0; c < d.C; ++c)
      for (int64_t t = 0; t < taps; ++t) {
        float* row = blk + (t * d.C + c) * width - f0;
        for (int64_t f = f0; f < f1; ++f) row[f] = w[(f * d.C + c) * taps + t];
      }
  });
  return out;
}

// A batch norm + ReLU applied to the input as it is copied (conv2d_bn_relu_input): sample n's
// channel c becomes relu_of(bn_affine(scale[g C + c], x, shift[g C + c])), g = n / rows_per_group.
struct InputNorm {
  const float* scale;
  const float* shift;
  int64_t rows_per_group;
};

// dst[i] = relu_of(bn_affine(scale[c], src[i], shift[c])) for the n values of a channels-last run
// (c = i % C), the element expression of batch_norm_relu_train's y.
void normalised_run(float* dst, const float* src, int64_t n, int64_t C, const float* scale, const float* shift) {
  for (int64_t i0 = 0; i0 < n; i0 += C)
    for (int64_t c = 0; c < C; ++c) dst[i0 + c] = relu_of(bn_affine(scale[c], src[i0 + c], shift[c]));
}

// dst [top + H + bottom, left + W + right, C] = planes x [C, H, W] with a zero border; with
// in_scale, each value normalised as it is copied (normalised_run: the zero border stays zero, as
// the convolution pads the normalised input).
void padded_hwc(float* dst, const float* x, int64_t C, int64_t H, int64_t W, int64_t top,
                int64_t bottom, int64_t left, int64_t right, const float* in_scale = nullptr,
                const float* in_shift = nullptr) {
  const int64_t wp = left + W + right, hp = top + H + bottom;
  // zeros on the border only (rows above and below, each inner row's two ends): the whole copy
  // zeroed first was 1.8% of the ACR-DSVDD step, the interior written twice
  std::fill(dst, dst + top * wp * C, 0.f);
  std::fill(dst + (top + H) * wp * C, dst + hp * wp * C, 0.f);
  for (int64_t h = top; h < top + H; ++h) {
    std::fill(dst + h * wp * C, dst + (h * wp + left) * C, 0.f);
    std::fill(dst + (h * wp + left + W) * C, dst + (h + 1) * wp * C, 0.f);
  }
  const int64_t hw = H * W;
  if (W < 16) {
    // narrow rows would fill a fraction of each 16 x 16 block: the whole sample transposed at once
    // ([C, H W] -> [H W, C]), then its rows copied into place (the row-by-row blocks below, faster
    // alone on the Omniglot net's 14-wide rows, made its ACR step 3-5 ms slower)
    thread_local std::vector<float> hwc;
    hwc.resize(std::max<size_t>(hwc.size(), hw * C));
    transpose_copy(hwc.data(), C, x, hw, C, hw);
    for (int64_t h = 0; h < H; ++h) {
      float* row = dst + ((h + top) * wp + left) * C;
      if (in_scale)
        normalised_run(row, hwc.data() + h * W * C, W * C, C, in_scale, in_shift);
      else
        std::memcpy(row, hwc.data() + h * W * C, sizeof(float) * W * C);
    }
    return;
  }
  // 16 planes at a time, row by row ([16, W] -> [W, 16]): 16 input streams read in order (all C
  // planes' rows at once missed the cache on most loads)
  for (int64_t c0 = 0; c0 < C; c0 += 16)
    for (int64_t h = 0; h < H; ++h)
      transpose_copy(dst + ((h + top) * wp + left) * C + c0, C, x + c0 * hw + h * W, hw,
                     std::min<int64_t>(16, C - c0), W);
  if (in_scale)  // wide rows: normalised in place, row by row, after the blocks' transposes
    for (int64_t h = 0; h < H; ++h) {
      float* row = dst + ((h + top) * wp + left) * C;
      normalised_run(row, row, W * C, C, in_scale, in_shift);
    }
}
// dst [H + 2 ph, W + 2 pw, C] = sample n of x [N, C, H, W] with the convolution's zero padding
// (and its normalisation, with `norm`).
void padded_hwc(float* dst, const float* x, const ConvDims& d, const Conv2dArgs& a, int64_t n,
                const InputNorm* norm = nullptr) {
  const int64_t gc = norm ? n / norm->rows_per_group * d.C : 0;
  padded_hwc(dst, x + n * d.C * d.H * d.W, d.C, d.H, d.W, a.pad_h, a.pad_h, a.pad_w, a.pad_w,
             norm ? norm->scale + gc : nullptr, norm ? norm->shift + gc : nullptr);
}

// A chunk of samples as the implicit kernels read it: each sample zero-padded, channels-last
// [H + 2 ph, W + 2 pw, C] (`sample` floats), and each tap's offset from a window's origin.
struct ImplicitLayout {
  int64_t wp, sample;
  std::vector<int64_t> tap_off;
};
ImplicitLayout implicit_layout(const ConvDims& d, const Conv2dArgs& a) {
  ImplicitLayout l;
  l.wp = d.W + 2 * a.pad_w;
  l.sample = (d.H + 2 * a.pad_h) * l.wp * d.C;
  l.tap_off.resize(d.KH * d.KW);
  for (int64_t kh = 0; kh < d.KH; ++kh)
    for (int64_t kw = 0; kw < d.KW; ++kw) l.tap_off[kh * d.KW + kw] = (kh * a.dil_h * l.wp + kw * a.dil_w) * d.C;
  return l;
}
// xpad (nb samples) = samples n0 .. n0 + nb - 1 of x, padded channels-last.
void implicit_fill_chunk(float* xpad, const float* x, const ConvDims& d, const Conv2dArgs& a,
                         const ImplicitLayout& l, int64_t n0, int64_t nb, const InputNorm* norm = nullptr) {
  for (int64_t j = 0; j < nb; ++j) padded_hwc(xpad + j * l.sample, x, d, a, n0 + j, norm);
}
// Offset of the window of the chunk's output pixel q (sample-major, then oh, ow) in its xpad.
inline int64_t window_offset(const ConvDims& d, const Conv2dArgs& a, const ImplicitLayout& l, int64_t q) {
  const int64_t ohw = d.OH * d.OW, j = q / ohw, oh = q % ohw / d.OW, ow = q % d.OW;
  return j * l.sample + (oh * a.stride_h * l.wp + ow * a.stride_w) * d.C;
}

// out [N, F, OH, OW] = act(scale[f] * conv + shift[f]) by the implicit GEMM; parallel over the
// shape-fixed chunks of samples.
// With `norm`, x is normalised as each chunk is copied (conv2d_bn_relu_input).
// With `moments`, each output plane's moments (plane_moments, [N, F]) at its write-back.
void implicit_forward(float* out, const float* x, const float* w, const float* scale,
                      const float* shift, const ConvDims& d, const Conv2dArgs& a, Activation act,
                      const InputNorm* norm = nullptr, PlaneMoments* moments = nullptr) {
  const ImplicitLayout l = implicit_layout(d, a);
  const int64_t sample = l.sample, taps = d.KH * d.KW, ohw = d.OH * d.OW, fp = implicit_padded_filters(d);
  const std::vector<int64_t>& tap_off = l.tap_off;
  const aligned_floats packed = implicit_weights(w, d);
  // Chunks of whole tiles: the smallest multiple of kTileP / gcd(OH OW, kTileP) samples from the
  // planned chunk up (the Omniglot 7 x 7 layer's 9 samples of 4 x 4 instead of 8: 11.6-11.9 ->
  // 11.1-11.4 ms at batch 960, one Zen 4 core), where that leaves at least 16 chunks to share out
  // (batch 30 of the 14 x 14 layer in 5 chunks of 6 would leave one of two threads idle a fifth of
  // the time). Each output is still summed by one task in one order: no value changes.
  // Only where the plan packs several small maps into a chunk (a map of >= 128 pixels, or the plan's
  // memory cap, gives one sample a chunk, and at most one partial tile in many).
  const int64_t step = kTileP / std::gcd(ohw, kTileP), whole = (d.nb + step - 1) / step * step;
  const int64_t chunk_nb = d.nb > 1 && (d.N + whole - 1) / whole >= 16 ? whole : d.nb;
  const int64_t n_chunks = (d.N + chunk_nb - 1) / chunk_nb;
  tbb::parallel_for(int64_t(0), n_chunks, [&](int64_t chunk) {
    const int64_t n0 = chunk * chunk_nb, nb = std::min(chunk_nb, d.N - n0), pixels = nb * ohw;
    thread_local aligned_floats xpad, res;  // reused across calls (res rows: whole vectors)
    xpad.resize(std::max<size_t>(xpad.size(), nb * sample));
    res.resize(std::max<size_t>(res.size(), pixels * fp));
    implicit_fill_chunk(xpad.data(), x, d, a, l, n0, nb, norm);
    // the next chunk's samples, a share per tile
    const int64_t next_nb = std::max<int64_t>(0, std::min(chunk_nb, d.N - n0 - nb));
    ChunkPrefetch next(next_nb ? x + (n0 + nb) * d.C * d.H * d.W : nullptr, next_nb * d.C * d.H * d.W,
                       (fp + kMaxFV * kVec - 1) / (kMaxFV * kVec) * ((pixels + kTileP - 1) / kTileP));
    // res [pixels, fp]: blocks of filters x tiles of kTileP pixels (across rows and samples); the
    // filter block outermost, so its packed weights stay in cache over the chunk's pixels
    for (int64_t f0 = 0; f0 < fp; f0 += kMaxFV * kVec) {
      const int fv = int(std::min<int64_t>(kMaxFV, (fp - f0) / kVec));
      const float* wb = packed.data() + f0 * d.K;
      for (int64_t p0 = 0; p0 < pixels; p0 += kTileP) {
        const int64_t m = std::min<int64_t>(kTileP, pixels - p0);
        const float* px[kTileP];
        float* rows[kTileP];
        for (int64_t p = 0; p < kTileP; ++p) {
          px[p] = xpad.data() + window_offset(d, a, l, p0 + std::min(p, m - 1));
          rows[p] = res.data() + (p0 + std::min(p, m - 1)) * fp + f0;  // past m: not written
        }
        register_tile_fv(fv, false, rows, px, m, wb, tap_off.data(), taps, d.C);
        next.step();
      }
    }
    // write-back: each sample's [OH OW, F] sums transposed into out[n] [F, OH OW], then the
    // epilogue in place
    for (int64_t j = 0; j < nb; ++j) {
      float* o = out + (n0 + j) * d.F * ohw;
      transpose_copy(o, ohw, res.data() + j * ohw * fp, fp, ohw, d.F);
      for (int64_t f = 0; f < d.F; ++f)
        epilogue(o + f * ohw, o + f * ohw, ohw, scale ? scale[f] : 1.f, shift ? shift[f] : 0.f, act);
      if (moments)
        for (int64_t f = 0; f < d.F; ++f) moments[(n0 + j) * d.F + f] = plane_moments(o + f * ohw, ohw);
    }
  });
}

// Whether a pass takes its direct kernel: forced (tests), or automatically where it measured
// faster than im2col + GEMM (bench conv_*/lenet*, omni1*; 1 core, docs/profiling.md): when the
// channels the pass sums into fill a register block of 4 to 8 (the forward's F, the
// backward-input's C, the backward-weight's F) and an output row fills at least half a lane block.
// LeNet 8 -> 4 on 14x14: forward 2.5-4.4 -> 0.64-0.77 ms, backward-input 2.9-3.6 -> 0.60-0.65,
// backward-weight 2.8-4.1 -> 1.16-1.19. With 1 channel to write (1 -> 8's backward-input) a block
// of one does one multiply-add per load: 1.3 -> 2.1 ms; with 64 filters (the Omniglot net's
// 1 -> 64, stride 2) the forward stored 14 of 16 lanes one by one (2x slower) and the
// backward-weight re-read the gradient per channel and kernel row (6x; measured with kernel rows
// outermost, before direct_weight_task went sample by sample).
enum class DirectPass { forward, input, weight };
bool use_direct(const ConvDims& d, DirectPass pass) {
  const ConvColumns c = g_columns.load(std::memory_order_relaxed);
  if (c == ConvColumns::direct) return true;
  if (c != ConvColumns::automatic) return false;
  const int64_t block = pass == DirectPass::input ? d.C : d.F;
  const int64_t row = pass == DirectPass::input ? d.W : d.OW;
  return block >= 4 && block <= 8 && row >= kLanes / 2;
}

// The implicit weight gradient (groups 1, many channels):
//   dw[f, c, kh, kw] = sum over pixels of dout[pixel, f] xpad[window(pixel) + (kh dh, kw dw), c].
// Per chunk: the samples padded channels-last (as the forward) and dout transposed to [pixels,
// F padded]; a register tile of M <= kTileP channels of one tap x FV vectors of filters sums over
// every pixel of the chunk (per pixel: FV loads of dout, M broadcasts, M FV multiply-adds), on
// top of the running sums [KH KW, C, F padded] of its part. Chunks are dealt to parts and the parts
// added in a fixed order as on the GEMM path: bit-identical for any thread count.
template <int M, int FV>
void implicit_weight_tile(float* sums, int64_t fp, const float* dt, const float* xpad,
                          const int64_t* win, int64_t pixels, int64_t off) {
  vecf acc[M][FV];
  vecf_unaligned* s = reinterpret_cast<vecf_unaligned*>(sums);
#pragma GCC unroll 8
  for (int r = 0; r < M; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < FV; ++v) acc[r][v] = s[r * (fp / kVec) + v];
  for (int64_t i = 0; i < pixels; ++i) {
    const vecf_unaligned* g = reinterpret_cast<const vecf_unaligned*>(dt + i * fp);
    vecf dv[FV];
#pragma GCC unroll 4
    for (int v = 0; v < FV; ++v) dv[v] = g[v];
    const float* xv = xpad + win[i] + off;
#pragma GCC unroll 8
    for (int r = 0; r < M; ++r) {
      const float xr = xv[r];
#pragma GCC unroll 4
      for (int v = 0; v < FV; ++v) acc[r][v] += xr * dv[v];
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < M; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < FV; ++v) s[r * (fp / kVec) + v] = acc[r][v];
}

template <int FV>
void implicit_weight_tile_m(int64_t m, float* sums, int64_t fp, const float* dt, const float* xpad,
                            const int64_t* win, int64_t pixels, int64_t off) {
  static_assert(kTileP == 6);
  switch (m) {
    case 1: return implicit_weight_tile<1, FV>(sums, fp, dt, xpad, win, pixels, off);
    case 2: return implicit_weight_tile<2, FV>(sums, fp, dt, xpad, win, pixels, off);
    case 3: return implicit_weight_tile<3, FV>(sums, fp, dt, xpad, win, pixels, off);
    case 4: return implicit_weight_tile<4, FV>(sums, fp, dt, xpad, win, pixels, off);
    case 5: return implicit_weight_tile<5, FV>(sums, fp, dt, xpad, win, pixels, off);
    default: return implicit_weight_tile<6, FV>(sums, fp, dt, xpad, win, pixels, off);
  }
}

// With `norm`, x is normalised as each chunk is copied (conv2d_bn_relu_input_backward_weight).
// With db, also the bias gradient [F] from the transposed dout: per chunk its rows [pixels, fp]
// added in order in float (vectors of filters), the chunk's sums added into the part's in double,
// the parts in index order.
void implicit_backward_weight(float* dw, float* db, const float* dout, const float* x, const ConvDims& d,
                              const Conv2dArgs& a, const InputNorm* norm = nullptr) {
  if (d.N == 0) {  // an empty batch: no products, zero gradient
    std::fill(dw, dw + d.F * d.K, 0.f);
    if (db) std::fill(db, db + d.F, 0.f);
    return;
  }
  const ImplicitLayout l = implicit_layout(d, a);
  const int64_t taps = d.KH * d.KW, ohw = d.OH * d.OW, fp = implicit_padded_filters(d);
  const int64_t wsize = taps * d.C * fp;  // one part's sums [KH KW, C, fp]
  const int64_t n_parts = std::min<int64_t>(d.n_chunks, 32);
  // the parts' sums (rows of fp: whole vectors, 64-byte aligned) from the tensor pool: a fresh
  // 4.7 MB vector per call (the Omniglot 14 x 14 layer) page-faulted and was zeroed on one thread;
  // each part is zeroed by its own task
  Tensor parts_block = Tensor::empty({n_parts * wsize});
  float* parts = parts_block.data();
  std::vector<double> bias_parts(db ? n_parts * d.F : 0, 0.0);  // [part][F]
  tbb::parallel_for(int64_t(0), n_parts, [&](int64_t p) {
    const int64_t c0 = d.n_chunks * p / n_parts, c1 = d.n_chunks * (p + 1) / n_parts;
    thread_local aligned_floats xpad, dt, chunk_bias;  // reused across calls (dt rows: whole vectors)
    thread_local std::vector<int64_t> win;
    float* part = parts + p * wsize;
    std::fill(part, part + wsize, 0.f);
    if (db) chunk_bias.resize(std::max<size_t>(chunk_bias.size(), fp));
    for (int64_t chunk = c0; chunk < c1; ++chunk) {
      const int64_t n0 = chunk * d.nb, nb = std::min(d.nb, d.N - n0), pixels = nb * ohw;
      xpad.resize(std::max<size_t>(xpad.size(), nb * l.sample));
      dt.resize(std::max<size_t>(dt.size(), pixels * fp));
      win.resize(std::max<size_t>(win.size(), pixels));
      implicit_fill_chunk(xpad.data(), x, d, a, l, n0, nb, norm);
      if (fp != d.F) std::fill(dt.begin(), dt.begin() + pixels * fp, 0.f);  // padded filters: 0
      for (int64_t j = 0; j < nb; ++j)  // dout[n] [F, OH OW] -> dt [OH OW, fp]
        transpose_copy(dt.data() + j * ohw * fp, fp, dout + (n0 + j) * d.F * ohw, ohw, d.F, ohw);
      if (db) {  // the chunk's bias gradient, rows of dt in order
        float* cb = chunk_bias.data();
        std::fill(cb, cb + fp, 0.f);
        for (int64_t q = 0; q < pixels; ++q) {
          const float* row = dt.data() + q * fp;
          for (int64_t f = 0; f < fp; ++f) cb[f] += row[f];
        }
        for (int64_t f = 0; f < d.F; ++f) bias_parts[p * d.F + f] += cb[f];
      }
      for (int64_t q = 0; q < pixels; ++q) win[q] = window_offset(d, a, l, q);
      // the next chunk's samples and gradient, a share per (tap, block of channels)
      const int64_t next_nb = chunk + 1 < c1 ? std::min(d.nb, d.N - n0 - nb) : 0;
      const int64_t steps = taps * ((d.C + kTileP - 1) / kTileP);
      ChunkPrefetch next_x(next_nb ? x + (n0 + nb) * d.C * d.H * d.W : nullptr, next_nb * d.C * d.H * d.W, steps);
      ChunkPrefetch next_g(next_nb ? dout + (n0 + nb) * d.F * ohw : nullptr, next_nb * d.F * ohw, steps);
      for (int64_t t = 0; t < taps; ++t)
        for (int64_t cb = 0; cb < d.C; cb += kTileP) {
          next_x.step();
          next_g.step();
          const int64_t m = std::min<int64_t>(kTileP, d.C - cb), off = l.tap_off[t] + cb;
          for (int64_t f0 = 0; f0 < fp; f0 += kMaxFV * kVec) {
            float* sums = part + (t * d.C + cb) * fp + f0;
            const float* g = dt.data() + f0;
            switch (std::min<int64_t>(kMaxFV, (fp - f0) / kVec)) {
              case 1: implicit_weight_tile_m<1>(m, sums, fp, g, xpad.data(), win.data(), pixels, off); break;
              case 2: implicit_weight_tile_m<2>(m, sums, fp, g, xpad.data(), win.data(), pixels, off); break;
              case 3: implicit_weight_tile_m<3>(m, sums, fp, g, xpad.data(), win.data(), pixels, off); break;
              default: implicit_weight_tile_m<4>(m, sums, fp, g, xpad.data(), win.data(), pixels, off); break;
            }
          }
        }
    }
  });
  // the parts added in index order into part 0 (contiguous runs, in parallel), then reordered
  // into dw [F, C, KH, KW] (adding in dw's order read each sum from another cache line: half the
  // time of the Omniglot net's 4x4 layer)
  float* sum = parts;
  parallel_for(wsize, 4096, [&](int64_t i0, int64_t i1) {
    for (int64_t p = 1; p < n_parts; ++p)
      for (int64_t i = i0; i < i1; ++i) sum[i] += parts[p * wsize + i];
  });
  for (int64_t f = 0; f < d.F; ++f)
    for (int64_t c = 0; c < d.C; ++c)
      for (int64_t t = 0; t < taps; ++t) dw[(f * d.C + c) * taps + t] = sum[(t * d.C + c) * fp + f];
  if (db)
    for (int64_t f = 0; f < d.F; ++f) {
      double s = 0.0;
      for (int64_t p = 0; p < n_parts; ++p) s += bias_parts[p * d.F + f];
      db[f] = float(s);
    }
}

// The implicit input gradient (groups 1, many channels), the forward's tile with the roles of
// channels and filters exchanged:
//   dx[n, c, ih, iw] = sum over taps (kh, kw) and f of dout[n, f, oh, ow] w[f, c, kh, kw],
//   oh = (ih + ph - kh dh) / sh where that divides, ow likewise.
// Input pixels fall into sh x sw phases by r = ((ih + ph) mod sh, (iw + pw) mod sw); a phase's taps
// are those with kh dh = rh (mod sh) and kw dw = rw (mod sw) (3x3 stride 2: 4, 2, 2 and 1), each
// one fixed offset back from the pixel's window origin ((ih + ph - rh) / sh, (iw + pw - rw) / sw) in
// a zero-bordered channels-last copy of dout [top + OH + bottom, left + OW + right, F] (the
// border holds the out-of-range oh, ow). So every input pixel is one tile row summing its phase's
// taps x F terms, against weights packed per phase as blocks of input channels [tap][F][block]
// (channels in vector lanes). Replaces W^T dout into columns and col2im's scattered adds (the
// Omniglot net's stride-2 layers: the column GEMM at ~80 GFLOP/s against ~140 for the forward,
// Zen 5 core). The tile rows land in [pixels, C padded] per chunk, transposed into dx at the end;
// each value is summed by one task in one order: bit-identical for any thread count.
void implicit_backward_input(float* dx, const float* dout, const float* w, const ConvDims& d,
                             const Conv2dArgs& a) {
  const int64_t sh = a.stride_h, sw = a.stride_w, hw = d.H * d.W, ohw = d.OH * d.OW;
  // dout's border: the furthest tap back, and the furthest window origin past the last row / column
  const int64_t top = (d.KH - 1) * a.dil_h / sh, left = (d.KW - 1) * a.dil_w / sw;
  const int64_t bottom = std::max<int64_t>(0, (d.H - 1 + a.pad_h) / sh - (d.OH - 1));
  const int64_t right = std::max<int64_t>(0, (d.W - 1 + a.pad_w) / sw - (d.OW - 1));
  const int64_t wp = left + d.OW + right, sample = (top + d.OH + bottom) * wp * d.F;
  const int64_t cp = whole_vectors(d.C), block = kMaxFV * kVec, taps_all = d.KH * d.KW;
  struct Phase {
    std::vector<int64_t> tap_off;  // offsets of the phase's taps from a window origin in dpad
    aligned_floats packed;         // blocks of channels: block c0 at c0 taps F, [tap][F][width]
    std::vector<int64_t> win, row;  // per pixel of a full chunk: window origin, row of res
  };
  std::vector<Phase> phases(sh * sw);
  tbb::parallel_for(int64_t(0), sh * sw, [&](int64_t r) {
    Phase& ph = phases[r];
    const int64_t rh = r / sw, rw = r % sw;
    std::vector<int64_t> tap_index;  // kh KW + kw of each tap of the phase
    for (int64_t kh = 0; kh < d.KH; ++kh)
      for (int64_t kw = 0; kw < d.KW; ++kw)
        if (kh * a.dil_h % sh == rh && kw * a.dil_w % sw == rw) {
          tap_index.push_back(kh * d.KW + kw);
          ph.tap_off.push_back(-((kh * a.dil_h - rh) / sh * wp + (kw * a.dil_w - rw) / sw) * d.F);
        }
    const int64_t taps = int64_t(tap_index.size());
    ph.packed.assign(cp * taps * d.F, 0.f);  // channels past C are zero
    for (int64_t c0 = 0; c0 < cp; c0 += block) {
      const int64_t width = std::min(block, cp - c0), c1 = std::min(c0 + width, d.C);
      float* blk = ph.packed.data() + c0 * taps * d.F;
      for (int64_t t = 0; t < taps; ++t)
        for (int64_t f = 0; f < d.F; ++f) {
          float* lanes_row = blk + (t * d.F + f) * width - c0;
          for (int64_t c = c0; c < c1; ++c) lanes_row[c] = w[(f * d.C + c) * taps_all + tap_index[t]];
        }
    }
    // the phase's input pixels of a full chunk, sample by sample, row by row
    const int64_t ih0 = ((rh - a.pad_h) % sh + sh) % sh, iw0 = ((rw - a.pad_w) % sw + sw) % sw;
    for (int64_t j = 0; j < d.nb; ++j)
      for (int64_t ih = ih0; ih < d.H; ih += sh)
        for (int64_t iw = iw0; iw < d.W; iw += sw) {
          const int64_t oh = (ih + a.pad_h - rh) / sh + top, ow = (iw + a.pad_w - rw) / sw + left;
          ph.win.push_back(j * sample + (oh * wp + ow) * d.F);
          ph.row.push_back((j * d.H + ih) * d.W + iw);
        }
  });
  tbb::parallel_for(int64_t(0), d.n_chunks, [&](int64_t chunk) {
    const int64_t n0 = chunk * d.nb, nb = std::min(d.nb, d.N - n0);
    thread_local aligned_floats dpad, res;  // reused across calls (res rows: whole vectors)
    dpad.resize(std::max<size_t>(dpad.size(), nb * sample));
    res.resize(std::max<size_t>(res.size(), nb * hw * cp));
    for (int64_t j = 0; j < nb; ++j)
      padded_hwc(dpad.data() + j * sample, dout + (n0 + j) * d.F * ohw, d.F, d.OH, d.OW, top, bottom, left,
                 right);
    // the next chunk's gradient, and this chunk's dx (its lines owned before the transpose writes
    // them), a share per tile
    int64_t tiles = 0;
    for (const Phase& ph : phases) tiles += (int64_t(ph.win.size()) / d.nb * nb + kTileP - 1) / kTileP;
    tiles *= (cp + block - 1) / block;
    const int64_t next_nb = std::max<int64_t>(0, std::min(d.nb, d.N - n0 - nb));
    ChunkPrefetch next_g(next_nb ? dout + (n0 + nb) * d.F * ohw : nullptr, next_nb * d.F * ohw, tiles);
    ChunkPrefetch own_dx(dx + n0 * d.C * hw, nb * d.C * hw, tiles, true);
    // res [nb H W, cp]: blocks of channels outermost (their packed weights stay in cache), then
    // phases, then tiles of kTileP of the phase's pixels (across rows and samples)
    for (int64_t c0 = 0; c0 < cp; c0 += block) {
      const int fv = int(std::min<int64_t>(kMaxFV, (cp - c0) / kVec));
      for (const Phase& ph : phases) {
        const int64_t taps = int64_t(ph.tap_off.size()), pixels = int64_t(ph.win.size()) / d.nb * nb;
        const float* wb = ph.packed.data() + c0 * taps * d.F;
        for (int64_t p0 = 0; p0 < pixels; p0 += kTileP) {
          const int64_t m = std::min<int64_t>(kTileP, pixels - p0);
          const float* px[kTileP];
          float* rows[kTileP];
          for (int64_t p = 0; p < kTileP; ++p) {
            px[p] = dpad.data() + ph.win[p0 + std::min(p, m - 1)];
            rows[p] = res.data() + ph.row[p0 + std::min(p, m - 1)] * cp + c0;
          }
          register_tile_fv(fv, false, rows, px, m, wb, ph.tap_off.data(), taps, d.F);
          next_g.step();
          own_dx.step();
        }
      }
    }
    // each sample's [H W, C] rows transposed into dx[n] [C, H W]
    for (int64_t j = 0; j < nb; ++j)
      transpose_copy(dx + (n0 + j) * d.C * hw, hw, res.data() + j * hw * cp, cp, hw, d.C);
  });
}

// Whether a pass takes the implicit GEMM: forced (tests), or automatically with >= 16 input
// channels and >= 16 filters (the shapes measured: fewer filters would leave most vector lanes
// empty) -- except the forward of a 1x1 stride-1 kernel with one sample per chunk on OpenBLAS or
// the native engine, whose GEMM reads the input in place: wide_resnet50_2's 1x1 layers on 56x56
// (batch 8, one Zen 5 core) 10.7-11.4 ms on OpenBLAS against 12.0-12.6 implicit; on native
// 9.6-10.8 against 11.5-12.0 for two of the three layers, 10.2-10.5 against 10.0-10.1 for the
// third (a tie); Eigen's GEMM took 15.0-17.6. Those layers' gradients went through channels-last
// columns at 170-300 ms against 11-19 implicit.
bool use_implicit(const ConvDims& d, const Conv2dArgs& a, bool forward) {
  const ConvColumns c = g_columns.load(std::memory_order_relaxed);
  if (c == ConvColumns::implicit) return true;
  if (c != ConvColumns::automatic || d.Cg < 16 || d.F < 16) return false;
  return !(forward && is_pointwise(d, a) && d.nb == 1 && gemm_engine() != GemmEngine::eigen);
}

// The small-depth kernels: groups 1 with few taps per output (not 1x1) and many filters, where the
// implicit GEMM does not apply (fewer than 16 channels); forced: wherever groups is 1.
bool use_small_depth(const ConvDims& d) {
  const ConvColumns c = g_columns.load(std::memory_order_relaxed);
  if (d.G != 1) return false;
  if (c == ConvColumns::small_depth) return true;
  return c == ConvColumns::automatic && d.K <= 32 && d.KH * d.KW > 1 && d.Cg < 16 && d.F >= 16 &&
         d.F <= 512;  // measured on 3x3 kernels; a 1x1 kernel keeps its columns-free GEMM
}

// The forward's kernel for these shapes (the first that applies, in this order).
enum class ForwardPath { depthwise, direct, small_depth, implicit, columns };
ForwardPath forward_path(const ConvDims& d, const Conv2dArgs& a) {
  if (is_depthwise(d)) return ForwardPath::depthwise;
  if (direct_applies(d, a) && use_direct(d, DirectPass::forward)) return ForwardPath::direct;
  if (use_small_depth(d)) return ForwardPath::small_depth;
  if (implicit_applies(d) && use_implicit(d, a, true)) return ForwardPath::implicit;
  return ForwardPath::columns;
}

// The weight gradient's kernel for these shapes (the first that applies, in this order).
enum class WeightPath { direct, small_depth, implicit, columns };
WeightPath weight_path(const ConvDims& d, const Conv2dArgs& a) {
  if (direct_weight_applies(d, a) && use_direct(d, DirectPass::weight)) return WeightPath::direct;
  if (use_small_depth(d)) return WeightPath::small_depth;
  if (implicit_applies(d) && use_implicit(d, a, false)) return WeightPath::implicit;
  return WeightPath::columns;
}

// conv2d and conv2d_affine_act: the depthwise loop, the direct, small-depth or implicit kernels
// where they apply, else im2col + GEMM per chunk and group, then
// the write-back. scale null and act none: out = conv + shift (the plain conv2d, bias = shift).
// moments: when given, filled with every output plane's plane_moments ([N, F]): by the small-depth
// and implicit kernels as they write each plane, by a pass over the output for the others.
Tensor conv2d_impl(const Tensor& x, const Tensor& w, const Tensor& scale, const Tensor& shift,
                   const Conv2dArgs& a, Activation act, const char* what, PlaneMoments* moments = nullptr) {
  check_cpu(x, what), check_cpu(w, what);
  ConvDims d = conv_dims(x.shape(), w.shape(), a, what);
  const bool fused = std::string(what) != "conv2d";
  for (const Tensor* t : {&scale, &shift})
    if (t->defined())
      check(t->dim() == 1 && t->size(0) == d.F, what,
            std::string(!fused ? "bias" : t == &scale ? "scale" : "shift") + " must be [F] = [" +
                std::to_string(d.F) + "], got " + shape_str(t->shape()));
  Tensor out = Tensor::empty({d.N, d.F, d.OH, d.OW});  // the scatter writes every element
  const int64_t ohw = d.OH * d.OW;
  const float* xp = x.data();
  const float* wp = w.data();
  const float* sp = scale.defined() ? scale.data() : nullptr;
  const float* bp = shift.defined() ? shift.data() : nullptr;
  float* op = out.data();
  auto moments_of_out = [&] {  // the kernels that do not compute them as they write
    if (moments)
      parallel_for(d.N * d.F, std::max<int64_t>(1, 16384 / ohw), [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) moments[i] = plane_moments(op + i * ohw, ohw);
      });
    return out;
  };
  switch (forward_path(d, a)) {
    case ForwardPath::depthwise: depthwise_forward(op, xp, wp, sp, bp, d, a, act); return moments_of_out();
    case ForwardPath::direct: direct_forward(op, xp, wp, sp, bp, d, a, act); return moments_of_out();
    case ForwardPath::small_depth: small_depth_forward(op, xp, wp, sp, bp, d, a, act, moments); return out;
    case ForwardPath::implicit: implicit_forward(op, xp, wp, sp, bp, d, a, act, nullptr, moments); return out;
    case ForwardPath::columns: break;
  }
  const bool pointwise = is_pointwise(d, a);
  const bool hwc = channels_last(d) && !(pointwise && d.nb == 1);  // d.nb == 1: every chunk direct
  const std::vector<float> w_hwc = hwc ? weights_channels_last(wp, d) : std::vector<float>();
  tbb::parallel_for(int64_t(0), d.n_chunks, [&](int64_t chunk) {
    int64_t n0 = chunk * d.nb, nb = std::min(d.nb, d.N - n0);
    // a 1x1 kernel on one sample reads its columns from the input itself (planar layout only: a
    // short last chunk of a channels-last call builds its columns like the others)
    const bool direct = !hwc && pointwise && nb == 1;
    auto cols = scratch(direct ? 0 : d.K * nb * ohw);
    auto res = scratch(d.Fg * nb * ohw);  // GEMM result [Fg, nb*OHW]
    auto sample = scratch(hwc ? d.H * d.W * d.Cg : 0);
    for (int64_t g = 0; g < d.G; ++g) {
      if (hwc) {
        // res [Fg, nb*OHW] = W_g [Fg, K] x cols [nb*OHW, K]^T, K ordered (kh, kw, c)
        im2col_channels_last(cols.get(), sample.get(), xp, d, a, n0, nb, g);
        gemm(res.get(), w_hwc.data() + g * d.Fg * d.K, cols.get(), d.Fg, nb * ohw, d.K, false, true);
      } else {
        // columns of this chunk (the input itself for a 1x1 kernel on one sample)
        const float* cp = cols.get();
        if (direct)
          cp = xp + (n0 * d.C + g * d.Cg) * ohw;
        else
          im2col(cols.get(), xp, d, a, n0, nb, g);
        // res [Fg, nb*OHW] = W_g [Fg, K] x cols [K, nb*OHW]
        gemm(res.get(), wp + g * d.Fg * d.K, cp, d.Fg, nb * ohw, d.K, false, false);
      }
      // scatter [Fg, nb*OHW] back to out[n, g*Fg+f, :] through the epilogue
      for (int64_t f = 0; f < d.Fg; ++f) {
        const int64_t fo = g * d.Fg + f;
        const float bias = bp ? bp[fo] : 0.f;
        for (int64_t j = 0; j < nb; ++j) {
          const float* src = res.get() + (f * nb + j) * ohw;
          float* dst = op + ((n0 + j) * d.F + fo) * ohw;
          epilogue(dst, src, ohw, sp ? sp[fo] : 1.f, bias, act);  // x * 1 + b is exactly x + b
        }
      }
    }
  });
  return moments_of_out();
}

}  // namespace

void set_conv_columns(ConvColumns c) { g_columns.store(c); }

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dArgs& a) {
  return conv2d_impl(x, w, Tensor(), b, a, Activation::none, "conv2d");
}

Tensor conv2d_affine_act(const Tensor& x, const Tensor& w, const Tensor& scale,
                         const Tensor& shift, const Conv2dArgs& a, Activation act) {
  return conv2d_impl(x, w, scale, shift, a, act, "conv2d_affine_act");
}

// The implicit kernel normalises each chunk as it copies it channels-last (padded_hwc with
// InputNorm), so the batch norm's output is never written and read back: the Omniglot net's
// scoring, [1000, 64, 14, 14] -> 7 x 7, saved the 50 MB write and read of batch_norm_relu_train's
// y. The other kernels take the composed way: y = batch_norm_relu_apply, then conv2d. Both give
// conv2d(batch_norm_relu_train(x), w, b)'s bits: the same element expression for y (bn_affine,
// relu_of), the same sums.
namespace {
// The batch norm + ReLU of a convolution's input as the kernels apply it: y = relu(scale x + shift)
// per (group, channel) (batch_norm_scale_shift), the composed kernels' normalised copy of x, and
// the implicit kernels' InputNorm.
struct BnReluOfInput {
  std::vector<float> scale, shift;  // [G, C]
  int64_t groups;
  BnReluOfInput(const BatchNormSaved& saved, const Tensor& gamma, const Tensor& beta, int64_t groups, int64_t C)
      : scale(groups * C), shift(groups * C), groups(groups) {
    batch_norm_scale_shift(saved, gamma, beta, C, scale.data(), shift.data());
  }
  Tensor applied(const Tensor& x) const { return batch_norm_relu_apply(x, scale.data(), shift.data(), groups); }
  InputNorm norm(int64_t N) const { return InputNorm{scale.data(), shift.data(), N / groups}; }
};

// conv2d_bn_relu_input, and its output planes' moments when `moments` is given (conv2d_statistics).
Tensor conv_bn_relu_input_impl(const Tensor& x, const Tensor& gamma, const Tensor& beta, const BatchNormSaved& saved,
                               int64_t groups, const Tensor& w, const Tensor& b, const Conv2dArgs& a,
                               const char* what, PlaneMoments* moments) {
  check_cpu(x, what), check_cpu(w, what);
  const ConvDims d = conv_dims(x.shape(), w.shape(), a, what);
  const BnReluOfInput bn(saved, gamma, beta, groups, d.C);
  if (forward_path(d, a) != ForwardPath::implicit)
    return conv2d_impl(bn.applied(x), w, Tensor(), b, a, Activation::none, "conv2d", moments);
  Tensor out = Tensor::empty({d.N, d.F, d.OH, d.OW});
  const InputNorm norm = bn.norm(d.N);
  implicit_forward(out.data(), x.data(), w.data(), nullptr, b.defined() ? b.data() : nullptr, d, a, Activation::none,
                   &norm, moments);
  return out;
}
}  // namespace

Tensor conv2d_bn_relu_input(const Tensor& x, const Tensor& gamma, const Tensor& beta, const BatchNormSaved& saved,
                            int64_t groups, const Tensor& w, const Tensor& b, const Conv2dArgs& a) {
  return conv_bn_relu_input_impl(x, gamma, beta, saved, groups, w, b, a, "conv2d_bn_relu_input", nullptr);
}

// The output planes' moments come from the kernel that writes them (conv2d_impl), and batch norm's
// statistics from those (batch_norm_statistics_of_moments): the same numbers batch_norm_statistics
// computes reading y back, so the same bits; an output of 1 x 1 planes (no per-plane part) goes
// through batch_norm_statistics itself.
Tensor conv2d_statistics(const Tensor& x, const BnReluInput* in, const Tensor& w, const Tensor& b, const Conv2dArgs& a,
                         float eps, int64_t groups, Tensor* running_mean, Tensor* running_var, float momentum,
                         BatchNormSaved* stats) {
  const char* what = "conv2d_statistics";
  check_cpu(x, what), check_cpu(w, what);
  const ConvDims d = conv_dims(x.shape(), w.shape(), a, what);
  // (left uninitialised: the convolution writes every entry)
  std::unique_ptr<PlaneMoments[]> moments(d.OH * d.OW > 1 ? new PlaneMoments[d.N * d.F] : nullptr);
  Tensor y = in ? conv_bn_relu_input_impl(x, in->gamma, in->beta, in->saved, in->groups, w, b, a, what, moments.get())
                : conv2d_impl(x, w, Tensor(), b, a, Activation::none, "conv2d", moments.get());
  *stats = moments ? batch_norm_statistics_of_moments(y, moments.get(), eps, groups, running_mean, running_var, momentum)
                   : cpu::batch_norm_statistics(y, eps, groups, running_mean, running_var, momentum);
  return y;
}

Tensor conv2d_backward_input(const Tensor& dout, const Tensor& w, const Shape& x_shape,
                             const Conv2dArgs& a) {
  check_cpu(dout, "conv2d_backward_input"), check_cpu(w, "conv2d_backward_input");
  ConvDims d = conv_dims(x_shape, w.shape(), a, "conv2d_backward_input");
  Shape want{d.N, d.F, d.OH, d.OW};
  check(dout.shape() == want, "conv2d_backward_input",
        "dout must be " + shape_str(want) + ", got " + shape_str(dout.shape()));
  if (direct_input_applies(d, a) && use_direct(d, DirectPass::input)) {
    Tensor dx = Tensor::empty(x_shape);  // every element assigned
    direct_backward_input(dx.data(), dout.data(), w.data(), d, a);
    return dx;
  }
  if (implicit_applies(d) && use_implicit(d, a, false)) {
    Tensor dx = Tensor::empty(x_shape);  // every element assigned
    implicit_backward_input(dx.data(), dout.data(), w.data(), d, a);
    return dx;
  }
  const bool hwc = channels_last(d);
  // planar: zeros, col2im accumulates into it; channels-last assigns every element
  Tensor dx = hwc ? Tensor::empty(x_shape) : Tensor(x_shape);
  const int64_t ohw = d.OH * d.OW;
  const float* gp = dout.data();
  const float* wp = w.data();
  float* dxp = dx.data();
  const std::vector<float> w_hwc = hwc ? weights_channels_last(wp, d) : std::vector<float>();
  tbb::parallel_for(int64_t(0), d.n_chunks, [&](int64_t chunk) {
    int64_t n0 = chunk * d.nb, nb = std::min(d.nb, d.N - n0);
    auto dg = scratch(d.Fg * nb * ohw);    // dout of the chunk, [Fg, nb*OHW]
    auto dcols = scratch(d.K * nb * ohw);  // [K, nb*OHW] (channels-last: [nb*OHW, K])
    auto sample = scratch(hwc ? d.H * d.W * d.Cg : 0);
    for (int64_t g = 0; g < d.G; ++g) {
      gather_chunk(dg.get(), gp, d, n0, nb, g);
      // dcols = W_g^T dout_g, then each column entry flows back to the input pixel it came from
      if (hwc) {
        gemm(dcols.get(), dg.get(), w_hwc.data() + g * d.Fg * d.K, nb * ohw, d.K, d.Fg, true, false);
        col2im_channels_last(dxp, dcols.get(), sample.get(), d, a, n0, nb, g);
      } else {
        gemm(dcols.get(), wp + g * d.Fg * d.K, dg.get(), d.K, nb * ohw, d.Fg, true, false);
        col2im(dxp, dcols.get(), d, a, n0, nb, g);
      }
    }
  });
  return dx;
}

// The bias gradient (dbias) comes from the small-depth and implicit kernels, which read all of
// dout anyway (the ACR-DSVDD step's sum over the 48 MB gradient of the first layer's output was
// 2.6 ms of DRAM reads on one core); the other kernels leave it to sum.
Tensor conv2d_backward_weight(const Tensor& dout, const Tensor& x, const Shape& w_shape,
                              const Conv2dArgs& a, Tensor* dbias) {
  check_cpu(dout, "conv2d_backward_weight"), check_cpu(x, "conv2d_backward_weight");
  ConvDims d = conv_dims(x.shape(), w_shape, a, "conv2d_backward_weight");
  Shape want{d.N, d.F, d.OH, d.OW};
  check(dout.shape() == want, "conv2d_backward_weight",
        "dout must be " + shape_str(want) + ", got " + shape_str(dout.shape()));
  const WeightPath path = weight_path(d, a);
  float* db = nullptr;
  if (dbias && (path == WeightPath::small_depth || path == WeightPath::implicit))
    db = (*dbias = Tensor::empty({d.F})).data();  // every element assigned
  else if (dbias)
    *dbias = cpu::sum(dout, {0, 2, 3}, false);
  if (path != WeightPath::columns) {
    Tensor dw = Tensor::empty(w_shape);  // every element assigned
    if (path == WeightPath::direct) direct_backward_weight(dw.data(), dout.data(), x.data(), d, a);
    if (path == WeightPath::small_depth) small_depth_backward_weight(dw.data(), db, dout.data(), x.data(), d, a);
    if (path == WeightPath::implicit) implicit_backward_weight(dw.data(), db, dout.data(), x.data(), d, a);
    return dw;
  }
  const int64_t ohw = d.OH * d.OW, wsize = d.F * d.K;
  // dW_g = sum_chunks dout_g,chunk [Fg, nb*OHW] x cols_chunk^T [nb*OHW, K]. The chunks are dealt
  // to at most 32 partial sums in contiguous runs (fixed by the shapes), computed in parallel and
  // then added in index order: deterministic and independent of the thread count.
  const int64_t n_parts = std::min<int64_t>(d.n_chunks, 32);
  std::vector<float> parts(n_parts * wsize, 0.f);  // channels-last: each [F, KH, KW, Cg]
  const float* gp = dout.data();
  const float* xp = x.data();
  const bool hwc = channels_last(d);
  tbb::parallel_for(int64_t(0), n_parts, [&](int64_t p) {
    int64_t c0 = d.n_chunks * p / n_parts, c1 = d.n_chunks * (p + 1) / n_parts;
    auto dg = scratch(d.Fg * d.nb * ohw);
    auto cols = scratch(d.K * d.nb * ohw);
    auto sample = scratch(hwc ? d.H * d.W * d.Cg : 0);
    float* part = parts.data() + p * wsize;
    for (int64_t chunk = c0; chunk < c1; ++chunk) {
      int64_t n0 = chunk * d.nb, nb = std::min(d.nb, d.N - n0);
      for (int64_t g = 0; g < d.G; ++g) {
        gather_chunk(dg.get(), gp, d, n0, nb, g);
        if (hwc) {
          // part_g [Fg, K] += dout_g [Fg, nb*OHW] x cols [nb*OHW, K]
          im2col_channels_last(cols.get(), sample.get(), xp, d, a, n0, nb, g);
          gemm(part + g * d.Fg * d.K, dg.get(), cols.get(), d.Fg, d.K, nb * ohw, false, false, true);
        } else {
          // part_g [Fg, K] += dout_g [Fg, nb*OHW] x cols^T [nb*OHW, K]
          im2col(cols.get(), xp, d, a, n0, nb, g);
          gemm(part + g * d.Fg * d.K, dg.get(), cols.get(), d.Fg, d.K, nb * ohw, false, true, true);
        }
      }
    }
  });
  // reduce the partial sums in fixed order, elements in parallel; channels-last partials are read
  // back in the weight's own [F, Cg, KH, KW] order
  Tensor dw = Tensor::empty(w_shape);
  float* dwp = dw.data();
  const int64_t taps = d.KH * d.KW;
  tbb::parallel_for(int64_t(0), wsize, int64_t(4096), [&](int64_t i0) {
    int64_t i1 = std::min(i0 + 4096, wsize);
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t f = i / d.K, c = i % d.K / taps, t = i % taps;
      const int64_t src = hwc ? (f * taps + t) * d.Cg + c : i;
      float s = 0.f;
      for (int64_t p = 0; p < n_parts; ++p) s += parts[p * wsize + src];
      dwp[i] = s;
    }
  });
  return dw;
}

// The weight gradient of conv2d_bn_relu_input: the implicit kernel normalises each chunk as it
// copies it (as the forward does), so training through the fused forward (autograd's
// conv2d_bn_relu_input) never stores the batch norm's output for the backward either; the other kernels
// take the composed way. Both give conv2d_backward_weight(dout, batch_norm_relu_train(x))'s bits:
// the same kernel for the shapes (weight_path), the same element expression for y.
Tensor conv2d_bn_relu_input_backward_weight(const Tensor& dout, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                            const BatchNormSaved& saved, int64_t groups, const Shape& w_shape,
                                            const Conv2dArgs& a, Tensor* dbias) {
  const char* what = "conv2d_bn_relu_input_backward_weight";
  check_cpu(dout, what), check_cpu(x, what);
  const ConvDims d = conv_dims(x.shape(), w_shape, a, what);
  const BnReluOfInput bn(saved, gamma, beta, groups, d.C);
  if (weight_path(d, a) != WeightPath::implicit) return cpu::conv2d_backward_weight(dout, bn.applied(x), w_shape, a, dbias);
  Tensor dw = Tensor::empty(w_shape);  // every element assigned (dout's shape checked by ops.cpp)
  float* db = dbias ? (*dbias = Tensor::empty({d.F})).data() : nullptr;
  const InputNorm norm = bn.norm(d.N);
  implicit_backward_weight(dw.data(), db, dout.data(), x.data(), d, a, &norm);
  return dw;
}

}  // namespace normad::cpu

namespace normad {

Shape conv2d_shape(const Shape& x, const Shape& w, const Conv2dArgs& a, const char* what) {
  cpu::ConvDims d = cpu::conv_dims(x, w, a, what);
  return {d.N, d.F, d.OH, d.OW};
}

}  // namespace normad
