// normad CUDA 2-D convolution (NCHW): the forward pass (with a bias, or with a per-filter affine and an
// activation fused into the write-back), the gradient of the input and the gradient of the weight,
// all with stride, padding, dilation and groups. tensor/reference.cpp is the specification.
// Math: out[n,f,oh,ow] = epi_f(sum_{c,kh,kw} w[f,c,kh,kw] x[n, g Cg + c, oh sh - ph + kh dh, ow sw - pw + kw dw])
// with g = f / Fg, x zero outside the input, epi_f(v) = act(scale[f] v + shift[f]) (conv2d: scale 1,
// shift = bias). As one GEMM per group g whose operands are gathered from the tensors on the fly
// (an "implicit" GEMM: no im2col matrix is ever stored):
//   forward          C[M = N OH OW, Fg]  = A[M, K = Cg KH KW] (x at position m, tap k)  B[K, Fg] (w^T)
//   backward input   C[M = N H W, Cg]    = A[M, K = Fg KH KW] (dout at the output whose tap k read
//                                          pixel m; zero when none)  B[K, Cg] (w)
//   backward weight  C[Fg, Cg KH KW]     = A[Fg, K = N OH OW] (dout)  B[K, Cg KH KW] (x at position k, tap n)
// Versions (cuda/conv.cu):
//   v1 direct: one thread per output element, its whole sum in double in the reference's order
//      (forward: over (c, kh, kw); backward input in gather form: over (f, kh, kw), the outputs whose
//      window read the pixel; backward weight: over (n, oh, ow)). Also the depthwise kernel.
//   v2 tiled implicit GEMM: a 64x64 tile of C per block of 256 threads, K in steps of 16 through
//      shared memory, a 4x4 register tile per thread (llm.c / SGEMM style); one kernel template over
//      the two operand maps and the store below, shared by the three passes. Backward weight splits K
//      into a number of chunks fixed by the shape, written to scratch partials and added in chunk
//      order (SumBody of cuda/reduce.cuh).
//   v3 cuBLAS: 1x1, stride 1, pad 0, groups 1 forward as out[n] [F, H W] = w [F, C] x[n] [C, H W]
//      (one strided-batched sgemm), then the epilogue in place. Other shapes and passes use v2.
//   0 = auto: depthwise forward and backward input -> v1, 1x1 forward -> v3, everything else
//      (the depthwise weight gradient included) -> v2. Unmeasured guesses.
// No atomics: every output has one fixed summation order, so results are identical run to run.
// Tested by tests/test_cuda_conv.cpp: [cuda_body] runs the v1 bodies, the v3 epilogue pass and a
// naive host GEMM over the v2 operand maps, stores and split-K plan against the reference backend;
// [cuda] runs every version on a GPU; tests/test_backend_ops.cpp runs the table entries.
// Shapes: N batch, C input channels, F filters, H, W input, OH, OW output, KH, KW kernel, G groups,
// Cg = C / G, Fg = F / G, KK = KH KW.
#pragma once

#include <math.h>

#include <cstdint>

#include "cuda/common.cuh"
#include "tensor/ops.h"

namespace normad::cuda {

// One convolution's sizes and arguments as ints: GEMM rows, columns and depths (positions and taps)
// must fit int32 (make_conv_shape checks); tensor offsets are computed in int64.
struct ConvShape {
  int N, C, H, W;  // x [N, C, H, W]
  int F, KH, KW;   // w [F, Cg, KH, KW]
  int OH, OW;      // out [N, F, OH, OW]
  int stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
  int groups, Cg, Fg;
};

// From validated shapes (tensor/ops.cpp): x [N, C, H, W], w [F, C/groups, KH, KW].
ConvShape make_conv_shape(const Shape& x, const Shape& w, const Conv2dArgs& a);

// Offset of [n, c, h, w] in an NCHW tensor of C channels of H x W.
NORMAD_HD inline int64_t nchw(int n, int c, int h, int w, int C, int H, int W) {
  return ((int64_t(n) * C + c) * H + h) * W + w;
}
// The input row (or column) that tap k of output row o reads; may lie in the padding.
NORMAD_HD inline int conv_in_pos(int o, int k, int stride, int pad, int dil) { return o * stride - pad + k * dil; }
// The output row whose tap k reads input row i, or -1 when none does (the stride skips i, or the
// output would lie outside [0, O)): the inverse of conv_in_pos.
NORMAD_HD inline int conv_out_pos(int i, int k, int stride, int pad, int dil, int O) {
  const int t = i + pad - k * dil;
  if (t < 0 || t % stride != 0) return -1;
  const int o = t / stride;
  return o < O ? o : -1;
}

// The write-back of a forward output of filter f, shared by every version:
// act(scale[f] acc + shift[f]). conv2d is {null, bias, none}; the backward input pass {null, null, none}.
struct ConvEpilogue {
  const float* scale = nullptr;  // [F] or null (1)
  const float* shift = nullptr;  // [F] or null (0)
  Activation act = Activation::none;
  NORMAD_HD float operator()(int f, float acc) const {
    float v = scale ? scale[f] * acc : acc;
    if (shift) v += shift[f];
    if (act == Activation::relu) v = v < 0.f ? 0.f : v;  // NaN passes, as in the reference
    if (act == Activation::silu) v = v / (1.f + expf(-v));
    return v;
  }
};

// ---- v1: one thread per output element ----

// out [N, F, OH, OW]: element i = (n, f, oh, ow) is epi_f of the window's dot product.
struct ConvForwardBody {
  float* out;
  const float* x;
  const float* w;
  ConvShape s;
  ConvEpilogue epi;
  NORMAD_HD void operator()(int64_t i) const {
    const int ow = int(i % s.OW), oh = int(i / s.OW % s.OH);
    const int f = int(i / (int64_t(s.OW) * s.OH) % s.F), n = int(i / (int64_t(s.OW) * s.OH * s.F));
    const int g = f / s.Fg;  // the group of this filter
    const float* wf = w + int64_t(f) * s.Cg * s.KH * s.KW;
    double acc = 0;
    for (int c = 0; c < s.Cg; ++c)
      for (int kh = 0; kh < s.KH; ++kh) {
        const int ih = conv_in_pos(oh, kh, s.stride_h, s.pad_h, s.dil_h);
        if (ih < 0 || ih >= s.H) continue;  // a padding row
        for (int kw = 0; kw < s.KW; ++kw) {
          const int iw = conv_in_pos(ow, kw, s.stride_w, s.pad_w, s.dil_w);
          if (iw < 0 || iw >= s.W) continue;
          acc += double(x[nchw(n, g * s.Cg + c, ih, iw, s.C, s.H, s.W)]) * double(wf[(c * s.KH + kh) * s.KW + kw]);
        }
      }
    out[i] = epi(f, float(acc));
  }
};

// dx [N, C, H, W] in gather form: pixel i = (n, c, ih, iw) sums dout * w over the (f, kh, kw) of
// its group whose output window read it, in that order (no scatter, no atomics).
struct ConvBackwardInputBody {
  float* dx;
  const float* dout;
  const float* w;
  ConvShape s;
  NORMAD_HD void operator()(int64_t i) const {
    const int iw = int(i % s.W), ih = int(i / s.W % s.H);
    const int cc = int(i / (int64_t(s.W) * s.H) % s.C), n = int(i / (int64_t(s.W) * s.H * s.C));
    const int g = cc / s.Cg, c = cc % s.Cg;
    double acc = 0;
    for (int fi = 0; fi < s.Fg; ++fi) {
      const int f = g * s.Fg + fi;
      for (int kh = 0; kh < s.KH; ++kh) {
        const int oh = conv_out_pos(ih, kh, s.stride_h, s.pad_h, s.dil_h, s.OH);
        if (oh < 0) continue;  // no output row reads ih through this tap row
        for (int kw = 0; kw < s.KW; ++kw) {
          const int ow = conv_out_pos(iw, kw, s.stride_w, s.pad_w, s.dil_w, s.OW);
          if (ow < 0) continue;
          acc += double(dout[nchw(n, f, oh, ow, s.F, s.OH, s.OW)]) *
                 double(w[((int64_t(f) * s.Cg + c) * s.KH + kh) * s.KW + kw]);
        }
      }
    }
    dx[i] = float(acc);
  }
};

// dw [F, Cg, KH, KW]: weight i = (f, c, kh, kw) sums dout * x over (n, oh, ow), skipping the
// positions whose tap read the padding.
struct ConvBackwardWeightBody {
  float* dw;
  const float* dout;
  const float* x;
  ConvShape s;
  NORMAD_HD void operator()(int64_t i) const {
    const int kw = int(i % s.KW), kh = int(i / s.KW % s.KH);
    const int c = int(i / (int64_t(s.KW) * s.KH) % s.Cg), f = int(i / (int64_t(s.KW) * s.KH * s.Cg));
    const int cc = f / s.Fg * s.Cg + c;  // the input channel of this weight
    double acc = 0;
    for (int n = 0; n < s.N; ++n)
      for (int oh = 0; oh < s.OH; ++oh) {
        const int ih = conv_in_pos(oh, kh, s.stride_h, s.pad_h, s.dil_h);
        if (ih < 0 || ih >= s.H) continue;
        for (int ow = 0; ow < s.OW; ++ow) {
          const int iw = conv_in_pos(ow, kw, s.stride_w, s.pad_w, s.dil_w);
          if (iw < 0 || iw >= s.W) continue;
          acc += double(dout[nchw(n, f, oh, ow, s.F, s.OH, s.OW)]) * double(x[nchw(n, cc, ih, iw, s.C, s.H, s.W)]);
        }
      }
    dw[i] = float(acc);
  }
};

// v3's second pass: out [N, F, H W] in place, element i of filter (i / plane) % F through epi.
struct ConvEpilogueBody {
  float* out;
  int F, plane;
  ConvEpilogue epi;
  NORMAD_HD void operator()(int64_t i) const { out[i] = epi(int(i / plane % F), out[i]); }
};

// ---- v2: the implicit GEMM's operands ----
// A map gives the tensor offset of GEMM operand element (row, col) in group g, or -1 for a zero
// (a tap in the padding; a pixel no output reads through that tap). `row_fastest` names the index
// along which memory is contiguous, so the tile loader gives consecutive threads consecutive rows
// (or columns): coalesced reads.

// x read at output position `row` = (n, oh, ow) in [0, N OH OW) by tap `col` = (c, kh, kw) in
// [0, Cg KK): forward A (row m, col k) and, with the roles of its indices swapped by the GEMM,
// backward-weight B (row k, col n).
struct XTapMap {
  const float* p;
  ConvShape s;
  static constexpr bool row_fastest = true;  // consecutive positions: consecutive ow
  NORMAD_HD int64_t offset(int row, int col, int g) const {
    const int ow = row % s.OW, oh = row / s.OW % s.OH, n = row / (s.OW * s.OH);
    const int kw = col % s.KW, kh = col / s.KW % s.KH, c = col / (s.KW * s.KH);
    const int ih = conv_in_pos(oh, kh, s.stride_h, s.pad_h, s.dil_h);
    const int iw = conv_in_pos(ow, kw, s.stride_w, s.pad_w, s.dil_w);
    if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) return -1;  // zero padding
    return nchw(n, g * s.Cg + c, ih, iw, s.C, s.H, s.W);
  }
};

// w as forward B = W_g^T: row = tap (c, kh, kw) in [0, Cg KK), col = filter in the group [0, Fg).
struct WeightTapMap {
  const float* p;
  ConvShape s;
  static constexpr bool row_fastest = true;  // a filter's taps are contiguous
  NORMAD_HD int64_t offset(int row, int col, int g) const {
    return int64_t(g * s.Fg + col) * s.Cg * s.KH * s.KW + row;
  }
};

// w as backward-input B: row = (f, kh, kw) in [0, Fg KK), col = input channel in the group [0, Cg).
struct WeightFilterMap {
  const float* p;
  ConvShape s;
  static constexpr bool row_fastest = true;  // (kh, kw) contiguous
  NORMAD_HD int64_t offset(int row, int col, int g) const {
    const int kk = s.KH * s.KW, f = row / kk, t = row % kk;
    return (int64_t(g * s.Fg + f) * s.Cg + col) * kk + t;
  }
};

// dout as backward-input A: row = pixel (n, ih, iw) in [0, N H W), col = (f, kh, kw) in [0, Fg KK):
// the output (oh, ow) whose tap (kh, kw) read the pixel, or zero when the stride skips it or it
// would lie outside the output.
struct DoutGatherMap {
  const float* p;
  ConvShape s;
  static constexpr bool row_fastest = true;  // consecutive pixels: consecutive ow (stride 1)
  NORMAD_HD int64_t offset(int row, int col, int g) const {
    const int iw = row % s.W, ih = row / s.W % s.H, n = row / (s.W * s.H);
    const int kw = col % s.KW, kh = col / s.KW % s.KH, f = col / (s.KW * s.KH);
    const int oh = conv_out_pos(ih, kh, s.stride_h, s.pad_h, s.dil_h, s.OH);
    const int ow = conv_out_pos(iw, kw, s.stride_w, s.pad_w, s.dil_w, s.OW);
    if (oh < 0 || ow < 0) return -1;
    return nchw(n, g * s.Fg + f, oh, ow, s.F, s.OH, s.OW);
  }
};

// dout as backward-weight A: row = filter in the group [0, Fg), col = position (n, oh, ow).
struct DoutMap {
  const float* p;
  ConvShape s;
  static constexpr bool row_fastest = false;  // positions are contiguous within a plane
  NORMAD_HD int64_t offset(int row, int col, int g) const {
    const int plane = s.OH * s.OW;
    return (int64_t(col / plane) * s.F + g * s.Fg + row) * plane + col % plane;
  }
};

// The operand value: the tensor element, or 0.
template <class Map>
NORMAD_HD inline float gather(const Map& map, int row, int col, int g) {
  const int64_t o = map.offset(row, col, g);
  return o < 0 ? 0.f : map.p[o];
}

// ---- v2: where C goes ----

// C (m, n) of group g -> an NCHW tensor [N, channels, plane]: m = (image, position in the plane),
// channel g * per_group + n, through the epilogue. Forward out (plane OH OW, the conv's epilogue)
// and backward-input dx (plane H W, the identity).
struct PlaneStore {
  float* out;
  int channels, per_group, plane;
  ConvEpilogue epi;
  NORMAD_HD void operator()(int m, int n, int g, int /*chunk*/, float acc) const {
    const int ch = g * per_group + n;
    out[(int64_t(m / plane) * channels + ch) * plane + m % plane] = epi(ch, acc);
  }
};

// Backward weight: C (m = filter in group, n = (c, kh, kw)) of K chunk `chunk` -> partial
// [chunks, F, Cg KK] (dw's layout once per chunk; dw itself when there is one chunk).
struct WeightGradStore {
  float* partial;
  int Fg, row;           // row = Cg KK, the length of one filter's gradient
  int64_t chunk_stride;  // F Cg KK
  NORMAD_HD void operator()(int m, int n, int g, int chunk, float acc) const {
    partial[chunk * chunk_stride + int64_t(g * Fg + m) * row + n] = acc;
  }
};

// ---- v2: the GEMM's sizes and its split of K ----

constexpr int kTileM = 64, kTileN = 64, kTileK = 16;  // C tile per block, depth per shared-memory step
// Split-K of the backward weight (its K = N OH OW is long, its C small): chunks of at least
// kMinChunkK, at most kMaxChunks of them. Guesses, not measured on a GPU yet.
constexpr int kMinChunkK = 512, kMaxChunks = 64;

// C [M, Ncols] = A [M, K] B [K, Ncols] for each of `groups` groups; K cut into `chunks` ranges of
// k_chunk (a multiple of kTileK; the last may be shorter), chunk c = [c k_chunk, min(K, (c+1) k_chunk)).
struct GemmDims {
  int M, Ncols, K, groups;
  int chunks = 1, k_chunk = 0;
};

// K in chunks: as few as give each at least min_chunk, at most max_chunks; depends on K alone, so
// the summation order is fixed by the shape. K = 0 gives one empty chunk (C = 0).
NORMAD_HD inline GemmDims split_k(GemmDims d, int min_chunk, int max_chunks) {
  int chunks = d.K / min_chunk;
  chunks = chunks < 1 ? 1 : chunks > max_chunks ? max_chunks : chunks;
  const int per = (d.K + chunks - 1) / chunks;
  d.k_chunk = (per + kTileK - 1) / kTileK * kTileK;  // whole shared-memory steps per chunk
  if (d.k_chunk == 0) d.k_chunk = kTileK;
  d.chunks = d.K == 0 ? 1 : (d.K + d.k_chunk - 1) / d.k_chunk;
  return d;
}

// All of K in one chunk (K = 0, from C = 0 channels, included).
NORMAD_HD inline GemmDims one_chunk(const GemmDims& d) { return split_k(d, d.K > 0 ? d.K : 1, 1); }

// The three GEMMs: sizes, the two operand maps and the store, as the v2 launchers build them (the
// host tests run a naive GEMM over exactly these).
struct ForwardGemm {
  GemmDims d;
  XTapMap a;
  WeightTapMap b;
  PlaneStore store;
};
inline ForwardGemm forward_gemm(float* out, const float* x, const float* w, const ConvShape& s,
                                const ConvEpilogue& epi) {
  const GemmDims d{s.N * s.OH * s.OW, s.Fg, s.Cg * s.KH * s.KW, s.groups};
  return {one_chunk(d), {x, s}, {w, s}, {out, s.F, s.Fg, s.OH * s.OW, epi}};
}

struct BackwardInputGemm {
  GemmDims d;
  DoutGatherMap a;
  WeightFilterMap b;
  PlaneStore store;
};
inline BackwardInputGemm backward_input_gemm(float* dx, const float* dout, const float* w, const ConvShape& s) {
  const GemmDims d{s.N * s.H * s.W, s.Cg, s.Fg * s.KH * s.KW, s.groups};
  return {one_chunk(d), {dout, s}, {w, s}, {dx, s.C, s.Cg, s.H * s.W, ConvEpilogue{}}};
}

// `partial` holds d.chunks copies of dw (or is dw itself when d.chunks == 1).
struct BackwardWeightGemm {
  GemmDims d;
  DoutMap a;
  XTapMap b;
  WeightGradStore store;
};
inline GemmDims backward_weight_dims(const ConvShape& s, int min_chunk = kMinChunkK, int max_chunks = kMaxChunks) {
  // the grid's z is groups x chunks, at most 65535: a depthwise layer of many channels gets fewer chunks
  const int z_room = s.groups > 0 ? 65535 / s.groups : 1;
  if (max_chunks > z_room) max_chunks = z_room < 1 ? 1 : z_room;
  return split_k(GemmDims{s.Fg, s.Cg * s.KH * s.KW, s.N * s.OH * s.OW, s.groups}, min_chunk, max_chunks);
}
inline BackwardWeightGemm backward_weight_gemm(float* partial, const float* dout, const float* x,
                                               const ConvShape& s, const GemmDims& d) {
  const int row = s.Cg * s.KH * s.KW;
  return {d, {dout, s}, {x, s}, {partial, s.Fg, row, int64_t(s.F) * row}};
}

// ---- versions ----

enum class ConvPass { forward, backward_input, backward_weight };
constexpr int kConvVersions = 3;
// The version that runs `pass` on shape s when `requested` is asked for (0 = auto; see the file
// comment): 1, 2 or 3; v3 only where it applies (1x1, stride 1, pad 0, groups 1 forward), else v2.
int conv_version_for(int requested, ConvPass pass, const ConvShape& s);

// ---- launchers (device pointers; cuda/conv.cu) ----

void launch(int64_t n, const ConvForwardBody& body);
void launch(int64_t n, const ConvBackwardInputBody& body);
void launch(int64_t n, const ConvBackwardWeightBody& body);
void launch(int64_t n, const ConvEpilogueBody& body);

// out [N, F, OH, OW] = epi(conv(x, w)); dx [N, C, H, W]; dw [F, Cg, KH, KW]; `version` as above.
void conv_forward(int version, float* out, const float* x, const float* w, const ConvShape& s,
                  const ConvEpilogue& epi);
void conv_backward_input(int version, float* dx, const float* dout, const float* w, const ConvShape& s);
void conv_backward_weight(int version, float* dw, const float* dout, const float* x, const ConvShape& s);

}  // namespace normad::cuda
