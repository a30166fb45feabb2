// 2-D max / average pooling and global average pooling (NCHW) on the CPU, parallel over N*C planes.
// Math: max: out = max over the window (padding is -inf), argmax = flat ih*W+iw of the first maximum
// (by taps across output columns, see max_pool2d_taps, or for 2x2 windows at stride 2 four taps per
// output, max_pool2d_2x2; without argmax only the values);
// avg: out = sum over the window / divisor (PyTorch's rules for count_include_pad and ceil_mode);
// global: out[n,c] = mean over H, W; nearest upsample: out[h, w] = x[h / s, w / s] (backward sums
// each s x s block).
// Tested by tests/test_conv.cpp ([pool]: closed forms checked against PyTorch, finite differences)
// and tests/test_backend_ops.cpp (every case, NaNs and ties included, against the reference loops).
//
// Shapes: N batch, C channels, H, W input, OH, OW output, KH, KW window.
//
// Output size as PyTorch (pooling_output_shape): OH = floor_or_ceil((H + 2 ph - KH) / sh) + 1; with
// ceil_mode the last window must start inside the input or the left padding, else it is dropped.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <tbb/parallel_for.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "tensor/cpu.h"
#include "tensor/parallel.h"
#include "tensor/select.h"

namespace normad::cpu {

namespace {

// One spatial dimension's output size (PyTorch's pooling_output_shape with dilation 1).
int64_t pool_out_size(int64_t in, int64_t k, int64_t pad, int64_t stride, bool ceil_mode) {
  int64_t num = in + 2 * pad - k + (ceil_mode ? stride - 1 : 0);
  if (num < 0) return 0;  // window larger than the padded input
  int64_t out = num / stride + 1;
  // ceil mode: the last window has to start inside the input or the left padding
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

struct PoolDims {
  int64_t N, C, H, W, OH, OW;
};

PoolDims pool_dims(const Shape& xs, const Pool2dArgs& a, const char* what) {
  check(xs.size() == 4, what, "input must be [N, C, H, W], got " + shape_str(xs));
  std::string args = "kernel " + std::to_string(a.kh) + "x" + std::to_string(a.kw) + ", stride " +
                     std::to_string(a.stride_h) + "x" + std::to_string(a.stride_w) +
                     ", padding " + std::to_string(a.pad_h) + "x" + std::to_string(a.pad_w);
  check(a.kh >= 1 && a.kw >= 1 && a.stride_h >= 1 && a.stride_w >= 1, what,
        "kernel and stride must be >= 1: " + args);
  // PyTorch's rule; it also guarantees every window overlaps the input
  check(a.pad_h >= 0 && a.pad_w >= 0 && a.pad_h <= a.kh / 2 && a.pad_w <= a.kw / 2, what,
        "padding must be in [0, kernel/2]: " + args);
  PoolDims d{xs[0], xs[1], xs[2], xs[3], 0, 0};
  d.OH = pool_out_size(d.H, a.kh, a.pad_h, a.stride_h, a.ceil_mode);
  d.OW = pool_out_size(d.W, a.kw, a.pad_w, a.stride_w, a.ceil_mode);
  check(d.OH > 0 && d.OW > 0, what,
        "output size would be empty for input " + shape_str(xs) + " and " + args);
  return d;
}

// Divisor of the average over window (oh, ow), as PyTorch's avg_pool2d: the window is first
// clipped to the padded input (this matters with ceil_mode), then, without count_include_pad,
// to the input itself.
struct AvgWindow {
  int64_t h0, h1, w0, w1;  // input rows [h0, h1), columns [w0, w1)
  float div;
};
AvgWindow avg_window(const PoolDims& d, const Pool2dArgs& a, int64_t oh, int64_t ow) {
  int64_t h0 = oh * a.stride_h - a.pad_h, w0 = ow * a.stride_w - a.pad_w;
  int64_t h1 = std::min(h0 + a.kh, d.H + a.pad_h), w1 = std::min(w0 + a.kw, d.W + a.pad_w);
  int64_t padded_count = (h1 - h0) * (w1 - w0);
  h0 = std::max<int64_t>(h0, 0), w0 = std::max<int64_t>(w0, 0);
  h1 = std::min(h1, d.H), w1 = std::min(w1, d.W);
  int64_t count = a.count_include_pad ? padded_count : (h1 - h0) * (w1 - w0);
  return {h0, h1, w0, w1, float(count)};
}

// Max pooling by taps: for each output row, every window tap (kh, kw) in order sweeps all output
// columns at once, so the inner loop runs over independent outputs and vectorises (one compare
// chain per output would be latency-bound: ~10 cycles per input element). Per output this visits
// the window's inputs in the same order as a plain loop (rows, then columns, ascending), so the
// maximum and the argmax are those of the plain loop (tensor/reference.cpp): the first maximum
// wins, a NaN wins (the last NaN's index). Padding is -inf and never wins; taps outside the input
// are skipped through valid_cols. Without `argmax` (inference) only the values are kept.
// Parallel over (n, c) planes, each plane computed by one task: thread-count independent.
void max_pool2d_taps(float* out, float* argmax, const float* x, const PoolDims& d,
                     const Pool2dArgs& a) {
  const float lowest = -std::numeric_limits<float>::infinity();
  // each tap column's range of output columns, computed once (two divisions per tap and row
  // would cost more than the comparisons on small maps)
  std::vector<int64_t> col_lo(a.kw), col_hi(a.kw);
  for (int64_t kw = 0; kw < a.kw; ++kw)
    valid_cols(kw - a.pad_w, a.stride_w, d.W, d.OW, col_lo[kw], col_hi[kw]);
  tbb::parallel_for(int64_t(0), d.N * d.C, [&](int64_t nc) {
    const float* plane = x + nc * d.H * d.W;
    float* o = out + nc * d.OH * d.OW;
    float* oi = argmax ? argmax + nc * d.OH * d.OW : nullptr;
    for (int64_t oh = 0; oh < d.OH; ++oh, o += d.OW) {
      const int64_t h0 = oh * a.stride_h - a.pad_h;
      const int64_t lo_h = std::max<int64_t>(h0, 0), hi_h = std::min(h0 + a.kh, d.H);
      std::fill(o, o + d.OW, lowest);
      if (oi)  // a window of only -inf keeps its first in-bounds index
        for (int64_t ow = 0; ow < d.OW; ++ow)
          oi[ow] = float(lo_h * d.W + std::max<int64_t>(ow * a.stride_w - a.pad_w, 0));
      for (int64_t ih = lo_h; ih < hi_h; ++ih)
        for (int64_t kw = 0; kw < a.kw; ++kw) {
          const int64_t iw0 = kw - a.pad_w;  // input column of output column 0 (may be < 0)
          const int64_t lo = col_lo[kw], hi = col_hi[kw];
          const float* r = plane + ih * d.W;
          const int64_t sw = a.stride_w;
          if (!oi) {
            for (int64_t ow = lo; ow < hi; ++ow) o[ow] = nan_max(o[ow], r[iw0 + ow * sw]);
            continue;
          }
          const float base = float(ih * d.W + iw0);
          for (int64_t ow = lo; ow < hi; ++ow) {
            const float v = r[iw0 + ow * sw];
            const bool take = replaces_max(v, o[ow]);
            o[ow] = select(take, v, o[ow]);
            oi[ow] = select(take, base + float(ow * sw), oi[ow]);
          }
        }
      if (oi) oi += d.OW;
    }
  });
}

// The 2x2 window with stride 2 and no padding (LeNet's and the autoencoders' pooling), every
// window inside the input: each output reads its four inputs (row 2 oh: columns 2 ow, 2 ow + 1;
// then row 2 oh + 1) in the plain loop's order, starting from the first, so the maximum and argmax
// are the plain loop's (a NaN wins, the first maximum wins; an all -inf window keeps its first
// index). Whole output rows of all planes in one flat loop: the per-row set-up of the taps loop
// (fills, tap ranges) cost more than the four compares on 14-wide rows. Each output is written once
// by one task: thread-count independent.
bool is_pool_2x2_stride_2(const PoolDims& d, const Pool2dArgs& a) {
  return a.kh == 2 && a.kw == 2 && a.stride_h == 2 && a.stride_w == 2 && a.pad_h == 0 &&
         a.pad_w == 0 && 2 * d.OH <= d.H && 2 * d.OW <= d.W;
}

#if defined(__AVX512F__)
// Lane masks for n (1 .. 16) outputs of a 2x2 stride-2 row: `outs` their n lanes, `lo` / `hi` the
// 2 n input columns under them, split across two 16-float vectors (the forward's loads, the
// backward's stores).
struct PairMasks {
  __mmask16 outs, lo, hi;
};
inline PairMasks pair_masks(int64_t n) {
  return {__mmask16((1u << n) - 1), __mmask16(n >= 8 ? 0xffff : (1u << (2 * n)) - 1),
          __mmask16(n <= 8 ? 0 : (1u << (2 * (n - 8))) - 1)};
}

// Up to 16 outputs ow0 .. ow0 + n of one output row at once: the four taps of each as vectors
// (even and odd input columns split from two loads of 32 floats, masked past 2 n), visited in the
// scalar loop's order with its rule (replaces_max: larger, or NaN) as lane masks, the argmax as
// float flat indices (base = the flat index of input (2 oh, 0)). The loop over rows of 14 and 7
// outputs (LeNet's) ran one output at a time: 0.6 ms of a 5.8 ms training step per call.
void max_2x2_vector(float* o, float* oi, const float* top, const float* bottom, int64_t W, int64_t ow0, int64_t n,
                    float base) {
  const auto [outs, lo, hi] = pair_masks(n);
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  auto split = [&](const float* row, __m512& e, __m512& od) {
    const __m512 a = _mm512_maskz_loadu_ps(lo, row + 2 * ow0), b = _mm512_maskz_loadu_ps(hi, row + 2 * ow0 + 16);
    e = _mm512_permutex2var_ps(a, even, b);
    od = _mm512_permutex2var_ps(a, odd, b);
  };
  __m512 t0, t1, b0, b1;
  split(top, t0, t1);
  split(bottom, b0, b1);
  __m512 m = t0;
  const __m512 i0 = _mm512_add_ps(_mm512_set1_ps(base + float(2 * ow0)), _mm512_cvtepi32_ps(even));
  __m512 mi = i0;
  auto visit = [&](__m512 v, __m512 vi) {
    const __mmask16 take = _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    m = _mm512_mask_mov_ps(m, take, v);
    mi = _mm512_mask_mov_ps(mi, take, vi);
  };
  const __m512 one = _mm512_set1_ps(1.f), below = _mm512_set1_ps(float(W));
  visit(t1, _mm512_add_ps(i0, one));
  visit(b0, _mm512_add_ps(i0, below));
  visit(b1, _mm512_add_ps(_mm512_add_ps(i0, below), one));
  _mm512_mask_storeu_ps(o + ow0, outs, m);
  if (oi) _mm512_mask_storeu_ps(oi + ow0, outs, mi);
}
#endif

void max_pool2d_2x2(float* out, float* argmax, const float* x, const PoolDims& d) {
  const int64_t rows = d.N * d.C * d.OH;  // output rows, all planes
  parallel_for(rows, std::max<int64_t>(1, 4096 / d.OW), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t nc = r / d.OH, oh = r % d.OH;
      const float* top = x + (nc * d.H + 2 * oh) * d.W;  // input rows 2 oh and 2 oh + 1
      const float* bottom = top + d.W;
      float* o = out + r * d.OW;
#if defined(__AVX512F__)
      for (int64_t ow0 = 0; ow0 < d.OW; ow0 += 16)
        max_2x2_vector(o, argmax ? argmax + r * d.OW : nullptr, top, bottom, d.W, ow0,
                       std::min<int64_t>(16, d.OW - ow0), float(2 * oh * d.W));
      continue;
#endif
      if (!argmax) {
        for (int64_t ow = 0; ow < d.OW; ++ow) {
          float m = top[2 * ow];
          m = nan_max(m, top[2 * ow + 1]);
          m = nan_max(m, bottom[2 * ow]);
          o[ow] = nan_max(m, bottom[2 * ow + 1]);
        }
        continue;
      }
      float* oi = argmax + r * d.OW;
      const float base = float(2 * oh * d.W);  // flat index of (2 oh, 0) in the plane
      const float below = float(d.W);
      for (int64_t ow = 0; ow < d.OW; ++ow) {
        const float i0 = base + float(2 * ow);
        float m = top[2 * ow], mi = i0;
        auto visit = [&](float v, float vi) {  // the next tap, in the plain loop's order
          const bool take = replaces_max(v, m);
          m = select(take, v, m), mi = select(take, vi, mi);
        };
        visit(top[2 * ow + 1], i0 + 1.f);
        visit(bottom[2 * ow], i0 + below);
        visit(bottom[2 * ow + 1], i0 + below + 1.f);
        o[ow] = m, oi[ow] = mi;
      }
    }
  });
}

}  // namespace

Tensor max_pool2d(const Tensor& x, const Pool2dArgs& a, Tensor* argmax) {
  PoolDims d = pool_dims(x.shape(), a, "max_pool2d");
  Tensor out = Tensor::empty({d.N, d.C, d.OH, d.OW});
  Tensor idx = argmax ? Tensor::empty({d.N, d.C, d.OH, d.OW}) : Tensor();
  if (is_pool_2x2_stride_2(d, a))
    max_pool2d_2x2(out.data(), argmax ? idx.data() : nullptr, x.data(), d);
  else
    max_pool2d_taps(out.data(), argmax ? idx.data() : nullptr, x.data(), d, a);
  if (argmax) *argmax = idx;
  return out;
}

#if defined(__AVX512F__)
// One plane of max_pool2d_backward when every argmax lies in its output's own 2x2 stride-2 window
// (as max_pool2d_2x2 makes them): the windows do not overlap, so each input gets at most one
// gradient, written directly as 0 + g (the scatter's sum, so -0 becomes +0 as there) at the matching
// tap and 0 at the other three, 16 outputs of a row at once; inputs outside every window (an odd
// last row or column) are 0. False, with the plane partly written, as soon as an argmax lies
// elsewhere (any other pooling, or a caller's own indices): the caller then redoes the plane by the
// scatter. The scatter's fill and read-modify-write took 0.27 ms per call in the LeNet step.
bool max_pool2d_backward_2x2_plane(float* dx, const float* g, const float* idx, int64_t H, int64_t W, int64_t OH,
                                   int64_t OW) {
  if (2 * OH > H || 2 * OW > W) return false;
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  // interleave: lane 2k of the result from a[k], lane 2k + 1 from b[k] (low 8 outputs, high 8)
  const __m512i lo_mix = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi_mix = _mm512_add_epi32(lo_mix, _mm512_set1_epi32(8));
  const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.f), below = _mm512_set1_ps(float(W));
  for (int64_t oh = 0; oh < OH; ++oh) {
    float* top = dx + 2 * oh * W;
    float* bottom = top + W;
    for (int64_t ow0 = 0; ow0 < OW; ow0 += 16) {
      const int64_t n = std::min<int64_t>(16, OW - ow0);
      const auto [outs, lo, hi] = pair_masks(n);
      const __m512 gv = _mm512_add_ps(zero, _mm512_maskz_loadu_ps(outs, g + oh * OW + ow0));
      const __m512 iv = _mm512_maskz_loadu_ps(outs, idx + oh * OW + ow0);
      const __m512 i0 = _mm512_add_ps(_mm512_set1_ps(float(2 * oh * W + 2 * ow0)), _mm512_cvtepi32_ps(even));
      const __m512 i2 = _mm512_add_ps(i0, below);
      const __mmask16 m0 = _mm512_cmp_ps_mask(iv, i0, _CMP_EQ_OQ);
      const __mmask16 m1 = _mm512_cmp_ps_mask(iv, _mm512_add_ps(i0, one), _CMP_EQ_OQ);
      const __mmask16 m2 = _mm512_cmp_ps_mask(iv, i2, _CMP_EQ_OQ);
      const __mmask16 m3 = _mm512_cmp_ps_mask(iv, _mm512_add_ps(i2, one), _CMP_EQ_OQ);
      if (((m0 | m1 | m2 | m3) & outs) != outs) return false;
      auto store_row = [&](float* row, __mmask16 left, __mmask16 right) {
        const __m512 l = _mm512_maskz_mov_ps(left, gv), r = _mm512_maskz_mov_ps(right, gv);
        _mm512_mask_storeu_ps(row + 2 * ow0, lo, _mm512_permutex2var_ps(l, lo_mix, r));
        _mm512_mask_storeu_ps(row + 2 * ow0 + 16, hi, _mm512_permutex2var_ps(l, hi_mix, r));
      };
      store_row(top, m0, m1);
      store_row(bottom, m2, m3);
    }
    std::fill(top + 2 * OW, top + W, 0.f);  // an odd last column: in no window
    std::fill(bottom + 2 * OW, bottom + W, 0.f);
  }
  std::fill(dx + 2 * OH * W, dx + H * W, 0.f);  // an odd last row
  return true;
}
#endif

Tensor max_pool2d_backward(const Tensor& dout, const Tensor& argmax, const Shape& x_shape) {
  check(x_shape.size() == 4 && dout.dim() == 4 && dout.shape() == argmax.shape() &&
            dout.size(0) == x_shape[0] && dout.size(1) == x_shape[1],
        "max_pool2d_backward",
        "dout " + shape_str(dout.shape()) + " and argmax " + shape_str(argmax.shape()) +
            " must be [N, C, OH, OW] for x " + shape_str(x_shape));
  Tensor dx = Tensor::empty(x_shape);
  const int64_t hw = x_shape[2] * x_shape[3], ohw = dout.size(2) * dout.size(3);
  const float* gp = dout.data();
  const float* ip = argmax.data();
  float* dxp = dx.data();
  // each plane is zeroed and then written by one task only, in a fixed order: no races,
  // deterministic, and the plane is still in cache for the scatter (a zero-filled tensor would be
  // one more pass over dx, on one thread)
  const int64_t H = x_shape[2], W = x_shape[3], OH = dout.size(2), OW = dout.size(3);
  tbb::parallel_for(int64_t(0), x_shape[0] * x_shape[1], [&](int64_t nc) {
#if defined(__AVX512F__)
    if (max_pool2d_backward_2x2_plane(dxp + nc * hw, gp + nc * ohw, ip + nc * ohw, H, W, OH, OW)) return;
#else
    (void)H, (void)W, (void)OH, (void)OW;
#endif
    std::fill(dxp + nc * hw, dxp + (nc + 1) * hw, 0.f);
    for (int64_t i = 0; i < ohw; ++i) {
      int64_t src = int64_t(ip[nc * ohw + i]);
      if (src < 0 || src >= hw) throw Error("max_pool2d_backward: argmax index out of range");
      dxp[nc * hw + src] += gp[nc * ohw + i];
    }
  });
  return dx;
}

Tensor avg_pool2d(const Tensor& x, const Pool2dArgs& a) {
  PoolDims d = pool_dims(x.shape(), a, "avg_pool2d");
  Tensor out = Tensor::empty({d.N, d.C, d.OH, d.OW});
  const float* xp = x.data();
  float* op = out.data();
  tbb::parallel_for(int64_t(0), d.N * d.C, [&](int64_t nc) {
    const float* plane = xp + nc * d.H * d.W;
    float* o = op + nc * d.OH * d.OW;
    for (int64_t oh = 0; oh < d.OH; ++oh)
      for (int64_t ow = 0; ow < d.OW; ++ow) {
        AvgWindow win = avg_window(d, a, oh, ow);
        float s = 0.f;
        for (int64_t ih = win.h0; ih < win.h1; ++ih)
          for (int64_t iw = win.w0; iw < win.w1; ++iw) s += plane[ih * d.W + iw];
        o[oh * d.OW + ow] = win.div > 0 ? s / win.div : 0.f;
      }
  });
  return out;
}

Tensor avg_pool2d_backward(const Tensor& dout, const Shape& x_shape, const Pool2dArgs& a) {
  PoolDims d = pool_dims(x_shape, a, "avg_pool2d_backward");
  Shape want{d.N, d.C, d.OH, d.OW};
  check(dout.shape() == want, "avg_pool2d_backward",
        "dout must be " + shape_str(want) + ", got " + shape_str(dout.shape()));
  Tensor dx(x_shape);
  const float* gp = dout.data();
  float* dxp = dx.data();
  tbb::parallel_for(int64_t(0), d.N * d.C, [&](int64_t nc) {
    float* plane = dxp + nc * d.H * d.W;
    const float* g = gp + nc * d.OH * d.OW;
    for (int64_t oh = 0; oh < d.OH; ++oh)
      for (int64_t ow = 0; ow < d.OW; ++ow) {
        // every input in the window received 1/div of this output
        AvgWindow win = avg_window(d, a, oh, ow);
        if (win.div <= 0) continue;
        float share = g[oh * d.OW + ow] / win.div;
        for (int64_t ih = win.h0; ih < win.h1; ++ih)
          for (int64_t iw = win.w0; iw < win.w1; ++iw) plane[ih * d.W + iw] += share;
      }
  });
  return dx;
}

Tensor global_avg_pool(const Tensor& x) {
  check(x.dim() == 4 && x.size(2) * x.size(3) > 0, "global_avg_pool",
        "input must be [N, C, H, W] with H, W > 0, got " + shape_str(x.shape()));
  const int64_t nc_total = x.size(0) * x.size(1), hw = x.size(2) * x.size(3);
  Tensor out = Tensor::empty({x.size(0), x.size(1)});
  const float* xp = x.data();
  float* op = out.data();
  tbb::parallel_for(int64_t(0), nc_total, [&](int64_t nc) {
    // double: H*W terms; 8 independent partial sums (lane j takes i = j mod 8) vectorise and
    // break the add latency chain, then add up in a fixed order
    const float* p = xp + nc * hw;
    double acc[8] = {};
    int64_t i = 0;
    for (; i + 8 <= hw; i += 8)
      for (int j = 0; j < 8; ++j) acc[j] += p[i + j];
    for (int j = 0; i < hw; ++i, ++j) acc[j] += p[i];
    double s = 0;
    for (double v : acc) s += v;
    op[nc] = float(s / double(hw));
  });
  return out;
}

Tensor upsample_nearest2d(const Tensor& x, int64_t scale) {
  check(x.dim() == 4 && scale >= 1, "upsample_nearest2d",
        "input must be [N, C, H, W] and scale >= 1, got " + shape_str(x.shape()) + ", scale " +
            std::to_string(scale));
  const int64_t H = x.size(2), W = x.size(3), OH = H * scale, OW = W * scale;
  Tensor out = Tensor::empty({x.size(0), x.size(1), OH, OW});
  const float* xp = x.data();
  float* op = out.data();
  // each input row widened once (every value `scale` times), then copied to the other scale - 1
  // output rows; no division per element
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, OH * OW));
  parallel_for(x.size(0) * x.size(1), grain, [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc)
      for (int64_t h = 0; h < H; ++h) {
        const float* in = xp + (nc * H + h) * W;
        float* o = op + (nc * OH + h * scale) * OW;
        for (int64_t w = 0; w < W; ++w)
          for (int64_t j = 0; j < scale; ++j) o[w * scale + j] = in[w];
        for (int64_t i = 1; i < scale; ++i) std::copy(o, o + OW, o + i * OW);
      }
  });
  return out;
}

Tensor upsample_nearest2d_backward(const Tensor& dout, int64_t scale) {
  check(dout.dim() == 4 && scale >= 1 && dout.size(2) % scale == 0 && dout.size(3) % scale == 0,
        "upsample_nearest2d_backward",
        "dout must be [N, C, H*s, W*s] for scale s = " + std::to_string(scale) + ", got " +
            shape_str(dout.shape()));
  const int64_t OH = dout.size(2), OW = dout.size(3), H = OH / scale, W = OW / scale;
  Tensor dx({dout.size(0), dout.size(1), H, W});
  const float* gp = dout.data();
  float* dp = dx.data();
  // dx[h, w] = 0 + each of its block's s x s values, row by row, left to right (the plain loop's
  // order, so the same bits): for each block row i and column j one sweep over w, which vectorises
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, OH * OW));
  parallel_for(dout.size(0) * dout.size(1), grain, [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc)
      for (int64_t h = 0; h < H; ++h) {
        float* d = dp + (nc * H + h) * W;  // zero from the constructor
        for (int64_t i = 0; i < scale; ++i) {
          const float* g = gp + (nc * OH + h * scale + i) * OW;
          for (int64_t j = 0; j < scale; ++j)
            for (int64_t w = 0; w < W; ++w) d[w] += g[w * scale + j];
        }
      }
  });
  return dx;
}

// out[n, c] plane = x[n, c] plane * s[n, c]: one multiply per element, planes split across threads.
Tensor scale_planes(const Tensor& x, const Tensor& s) {
  const int64_t planes = x.size(0) * x.size(1), hw = x.size(2) * x.size(3);
  Tensor out = Tensor::empty(x.shape());
  const float* xp = x.data();
  const float* sp = s.data();
  float* op = out.data();
  parallel_for(planes, std::max<int64_t>(1, 32768 / std::max<int64_t>(hw, 1)), [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p)
      for (int64_t i = 0; i < hw; ++i) op[p * hw + i] = xp[p * hw + i] * sp[p];
  });
  return out;
}

}  // namespace normad::cpu

namespace normad {
Shape pool2d_shape(const Shape& x, const Pool2dArgs& a, const char* what) {
  cpu::PoolDims d = cpu::pool_dims(x, a, what);
  return {d.N, d.C, d.OH, d.OW};
}
}  // namespace normad
