// normad CUDA pooling and upsampling over NCHW planes: max pooling with argmax and its backward,
// average pooling (ceil_mode, padding, count_include_pad) and its backward, global average pooling,
// nearest upsampling by an integer scale and its backward. (tensor/caching_pool.h is the memory pool.)
// Math (tensor/reference.cpp is the spec, operation for operation):
//   max: the window clipped to the input, first maximum by `>`, a NaN always takes over (so the
//        last NaN of a window wins: PyTorch); argmax = ih*W + iw as a float;
//   max backward: dx[p] = sum of dout[j] over the outputs j of the plane whose argmax is p, added in
//        float in output order;
//   avg: sum in double over the window clipped to the input, divided by the window's area within
//        the padded input (count_include_pad) or within the input; backward: each input gets
//        dout / divisor from every window that holds it, added in double in output order;
//   global avg: plane mean in double; upsample: out[oh, ow] = x[oh / s, ow / s], backward sums the
//        s x s block in double.
// Every backward is a gather (one thread per input pixel, a fixed order): deterministic, no atomics.
// Versions (cuda/pooling.cu):
//   v1 bodies, one thread per output element (per input pixel for the backwards, per plane for
//      global average pooling).
//   v2 global_avg_pool only: one warp per plane, each lane a strided double sum (coalesced reads),
//      merged by cuda/block_tree.cuh's fixed shuffle tree. The other ops have v1 only.
// Cost note: max_pool2d_backward receives no pooling arguments (the table's signature), and the
// harness feeds it any in-range argmax, so each input pixel scans all OH*OW outputs of its plane:
// O(H W OH OW) work per plane. Cheap at the model's sizes (28x28 -> 14x14), slow on big planes;
// a faster form would need the window arguments (scan only the windows covering the pixel).
// Tested by tests/test_cuda_pooling.cpp: [cuda_body] runs every body (and v2's lane sums through
// the emulated tree) on the host against the reference backend, bit for bit where the order is the
// reference's; [cuda] runs every version on a GPU.
//
// Shapes: x [N, C, H, W], out [N, C, OH, OW]; P = N*C planes; a plane p is H*W floats.
#pragma once

#include <math.h>

#include "cuda/common.cuh"

namespace normad::cuda {

// A pooling's sizes and arguments (tensor/ops.h's Pool2dArgs without the host types).
struct PoolGeom {
  int64_t H, W, OH, OW;
  int64_t kh, kw, sh, sw, ph, pw;
  bool count_include_pad;
};

// One dim of window o: the input range [lo, hi) it covers (clipped to the input) and its length
// within the padded input (only ceil_mode windows stick out of that). PyTorch's avg_pool2d rule; the
// clipped range is also max pooling's window.
struct Span {
  int64_t lo, hi, padded;
};
NORMAD_HD inline Span pool_span(int64_t o, int64_t stride, int64_t pad, int64_t k, int64_t in) {
  const int64_t start = o * stride - pad;
  const int64_t end = start + k < in + pad ? start + k : in + pad;
  return {start > 0 ? start : 0, end < in ? end : in, end - start};
}

// Output e = (p*OH + oh)*OW + ow: its plane p and the spans of its window along H and W.
struct OutputWindow {
  int64_t p;
  Span h, w;
};
NORMAD_HD inline OutputWindow output_window(const PoolGeom& g, int64_t e) {
  const int64_t ow = e % g.OW, oh = (e / g.OW) % g.OH;
  return {e / (g.OW * g.OH), pool_span(oh, g.sh, g.ph, g.kh, g.H), pool_span(ow, g.sw, g.pw, g.kw, g.W)};
}

// The windows o whose unclipped range [o*stride - pad, o*stride - pad + k) holds input i, as
// [first, last] (empty when first > last), clamped to [0, outs).
NORMAD_HD inline void windows_holding(int64_t i, int64_t stride, int64_t pad, int64_t k, int64_t outs,
                                      int64_t* first, int64_t* last) {
  const int64_t t = i + pad - k + 1;  // o*stride >= t
  *first = t <= 0 ? 0 : (t + stride - 1) / stride;
  const int64_t l = (i + pad) / stride;  // o*stride <= i + pad
  *last = l < outs - 1 ? l : outs - 1;
}

// out[e] = max over window e (e = (p*OH + oh)*OW + ow); argmax[e] its flat input index (may be null).
struct MaxPoolBody {
  float* out;
  float* argmax;
  const float* x;
  PoolGeom g;
  NORMAD_HD void operator()(int64_t e) const {
    const OutputWindow win = output_window(g, e);
    const Span &h = win.h, &w = win.w;
    const float* plane = x + win.p * g.H * g.W;
    float best = -INFINITY;
    int64_t best_i = h.lo * g.W + w.lo;  // kept when every value is -inf
    for (int64_t ih = h.lo; ih < h.hi; ++ih)
      for (int64_t iw = w.lo; iw < w.hi; ++iw) {
        const float v = plane[ih * g.W + iw];
        // strictly greater keeps the first maximum; a NaN always takes over
        if (v > best || isnan(v)) best = v, best_i = ih * g.W + iw;
      }
    out[e] = best;
    if (argmax) argmax[e] = float(best_i);
  }
};

// dx[e] for input pixel e = p*HW + k: the plane's outputs whose argmax is k, in output order.
struct MaxPoolBackwardBody {
  float* dx;
  const float* dout;
  const float* argmax;
  int64_t HW, OHW;
  NORMAD_HD void operator()(int64_t e) const {
    const int64_t p = e / HW, k = e % HW;
    const float* d = dout + p * OHW;
    const float* a = argmax + p * OHW;
    float acc = 0.f;  // the reference adds into a float dx starting at 0
    for (int64_t j = 0; j < OHW; ++j)
      if (int64_t(a[j]) == k) acc += d[j];
    dx[e] = acc;
  }
};

// The divisor of window (oh, ow) from its two spans.
NORMAD_HD inline int64_t avg_divisor(const PoolGeom& g, const Span& h, const Span& w) {
  return g.count_include_pad ? h.padded * w.padded : (h.hi - h.lo) * (w.hi - w.lo);
}

// out[e] = the window's sum in double over the divisor (0 for an empty divisor, as the reference).
struct AvgPoolBody {
  float* out;
  const float* x;
  PoolGeom g;
  NORMAD_HD void operator()(int64_t e) const {
    const OutputWindow win = output_window(g, e);
    const Span &h = win.h, &w = win.w;
    const int64_t div = avg_divisor(g, h, w);
    const float* plane = x + win.p * g.H * g.W;
    double sum = 0;
    for (int64_t ih = h.lo; ih < h.hi; ++ih)
      for (int64_t iw = w.lo; iw < w.hi; ++iw) sum += plane[ih * g.W + iw];
    out[e] = float(div > 0 ? sum / double(div) : 0.0);
  }
};

// dx[e] for input pixel e = (p*H + ih)*W + iw: dout / divisor of every window holding it, in
// output order (oh, then ow), summed in double.
struct AvgPoolBackwardBody {
  float* dx;
  const float* dout;
  PoolGeom g;
  NORMAD_HD void operator()(int64_t e) const {
    const int64_t iw = e % g.W, ih = (e / g.W) % g.H, p = e / (g.W * g.H);
    int64_t oh0, oh1, ow0, ow1;
    windows_holding(ih, g.sh, g.ph, g.kh, g.OH, &oh0, &oh1);
    windows_holding(iw, g.sw, g.pw, g.kw, g.OW, &ow0, &ow1);
    double acc = 0;
    for (int64_t oh = oh0; oh <= oh1; ++oh) {
      const Span h = pool_span(oh, g.sh, g.ph, g.kh, g.H);
      for (int64_t ow = ow0; ow <= ow1; ++ow) {
        const Span w = pool_span(ow, g.sw, g.pw, g.kw, g.W);
        const int64_t div = avg_divisor(g, h, w);
        // the clipped window still holds (ih, iw) (clipping only drops pixels outside the input)
        if (div > 0 && ih >= h.lo && ih < h.hi && iw >= w.lo && iw < w.hi)
          acc += double(dout[(p * g.OH + oh) * g.OW + ow]) / double(div);
      }
    }
    dx[e] = float(acc);
  }
};

// Thread t of T's part of a plane's sum: a[t] + a[t + T] + ... in double (v1: t = 0, T = 1).
NORMAD_HD inline double strided_sum(const float* a, int64_t n, int64_t t, int64_t T) {
  double s = 0;
  for (int64_t k = t; k < n; k += T) s += a[k];
  return s;
}

// v1: out[p] = mean of plane p, one thread per plane.
struct GlobalAvgPoolBody {
  float* out;
  const float* x;
  int64_t HW;
  NORMAD_HD void operator()(int64_t p) const { out[p] = float(strided_sum(x + p * HW, HW, 0, 1) / double(HW)); }
};

struct DoubleAdd {
  NORMAD_HD double operator()(double a, double b) const { return a + b; }
};

// out[e] = x[p, oh / s, ow / s] for output e = (p*OH + oh)*OW + ow, OH = H*s, OW = W*s.
struct UpsampleBody {
  float* out;
  const float* x;
  int64_t H, W, scale;
  NORMAD_HD void operator()(int64_t e) const {
    const int64_t OW = W * scale, OH = H * scale;
    const int64_t ow = e % OW, oh = (e / OW) % OH, p = e / (OW * OH);
    out[e] = x[(p * H + oh / scale) * W + ow / scale];
  }
};

// dx[e] for input e = (p*H + h)*W + w: its s x s block of dout, rows then columns, in double.
struct UpsampleBackwardBody {
  float* dx;
  const float* dout;
  int64_t H, W, scale;
  NORMAD_HD void operator()(int64_t e) const {
    const int64_t w = e % W, h = (e / W) % H, p = e / (W * H);
    const int64_t OW = W * scale;
    const float* block = dout + (p * H * scale + h * scale) * OW + w * scale;
    double sum = 0;
    for (int64_t i = 0; i < scale; ++i)
      for (int64_t j = 0; j < scale; ++j) sum += block[i * OW + j];
    dx[e] = float(sum);
  }
};

// ---- launchers (cuda/pooling.cu) ---------------------------------------------------------------

void launch(int64_t n, const MaxPoolBody& body);
void launch(int64_t n, const MaxPoolBackwardBody& body);
void launch(int64_t n, const AvgPoolBody& body);
void launch(int64_t n, const AvgPoolBackwardBody& body);
void launch(int64_t n, const GlobalAvgPoolBody& body);
void launch(int64_t n, const UpsampleBody& body);
void launch(int64_t n, const UpsampleBackwardBody& body);

}  // namespace normad::cuda
