// normad CUDA convolution: the launchers of cuda/conv.cuh (bodies, operand maps, math and the version
// list there), the v2 tiled implicit-GEMM kernel, the v3 cuBLAS path, the version switch and the
// table entries of cuda/conv.h.
// Versions: v1 direct (one thread per output, double sums); v2 one tiled GEMM template over
// (A map, B map, store), 64x64x16 tiles, 4x4 per thread, split-K partials for the weight gradient;
// v3 cuBLAS strided-batched sgemm for 1x1 forwards. The auto pick's rules are guesses: no GPU has
// run these kernels yet (compiled with nvcc for sm_90, validated only through their host-run parts).
// Unmeasured candidates for later: precomputing each tile row's (n, oh, ow) base once instead of
// dividing per element, double buffering of the shared tiles, float4 loads where the map is dense.
// Tested by tests/test_cuda_conv.cpp ([cuda_body] on the host, [cuda] on a GPU) and
// tests/test_backend_ops.cpp on a GPU.
#include "cuda/conv.cuh"

#include <climits>
#include <string>

#include "cuda/check.h"
#include "cuda/conv.h"
#include "cuda/device.h"
#include "cuda/reduce.cuh"
#include "tensor/tensor.h"

namespace normad::cuda {

ConvShape make_conv_shape(const Shape& x, const Shape& w, const Conv2dArgs& a) {
  const Shape o = conv2d_shape(x, w, a);
  // GEMM rows and depths are int in the kernels: positions N H W and N OH OW, taps F KH KW, C KH KW
  for (int64_t v : {x[0] * x[2] * x[3], o[0] * o[2] * o[3], w[0] * w[2] * w[3], x[1] * w[2] * w[3], w[0] * w[1] * w[2] * w[3]})
    check(v <= INT_MAX, "cuda conv2d", "sizes exceed the kernels' int32 range: x " + shape_str(x) + ", w " + shape_str(w));
  auto i = [](int64_t v) { return static_cast<int>(v); };
  ConvShape s{i(x[0]), i(x[1]), i(x[2]), i(x[3]), i(w[0]), i(w[2]), i(w[3]), i(o[2]), i(o[3]),
              i(a.stride_h), i(a.stride_w), i(a.pad_h), i(a.pad_w), i(a.dil_h), i(a.dil_w),
              i(a.groups), 0, 0};
  s.Cg = s.C / s.groups;
  s.Fg = s.F / s.groups;
  return s;
}

int conv_version_for(int requested, ConvPass pass, const ConvShape& s) {
  // (C > 0: cuBLAS leaves C unwritten for an empty product)
  const bool pointwise = s.KH == 1 && s.KW == 1 && s.stride_h == 1 && s.stride_w == 1 && s.pad_h == 0 &&
                         s.pad_w == 0 && s.groups == 1 && s.C > 0;
  const bool depthwise = s.groups == s.C && s.groups == s.F;
  if (requested == 3) return pass == ConvPass::forward && pointwise ? 3 : 2;
  if (requested != 0) return requested;
  // Auto. Depthwise forward and backward input: K = KH KW is too short for a GEMM tile to pay;
  // the direct loop reads each input a few times from cache. Not its weight gradient: v1 would run
  // only F KH KW threads over N OH OW terms each, where v2 splits K. 1x1 forward: a plain GEMM,
  // cuBLAS's. The rest: the tiled kernel.
  if (depthwise && pass != ConvPass::backward_weight) return 1;
  if (pass == ConvPass::forward && pointwise) return 3;
  return 2;
}

// ---- v1 ----

void launch(int64_t n, const ConvForwardBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const ConvBackwardInputBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const ConvBackwardWeightBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const ConvEpilogueBody& body) { launch_for_each(n, body); }

// ---- v2: the tiled implicit GEMM ----

constexpr int kMicro = 4;                                                 // a thread's C tile is kMicro x kMicro
constexpr int kGemmThreads = (kTileM / kMicro) * (kTileN / kMicro);       // 256

// Shared tiles are stored with one float of padding per line (pitch inner + 1), so that threads
// writing down a column hit 16 different banks instead of one.
constexpr int kPitchA = kTileM + 1, kPitchB = kTileN + 1;

// Copies rows [row0, row0 + kRows) x cols [col0, col0 + kCols) of a map's operand into a shared
// tile, zero outside rows < row_end, cols < col_end. The tile is [kCols][kPitch] when kTransposed
// (the A tile, As[k][m], so the inner loop reads a column of A contiguously), else [kRows][kPitch].
template <int kRows, int kCols, int kPitch, bool kTransposed, class Map>
__device__ void load_tile(float* tile, const Map& map, int row0, int row_end, int col0, int col_end, int g) {
  for (int e = threadIdx.x; e < kRows * kCols; e += kGemmThreads) {
    // consecutive threads walk the map's contiguous index: coalesced global reads
    const int r = Map::row_fastest ? e % kRows : e / kCols;
    const int c = Map::row_fastest ? e / kRows : e % kCols;
    const int row = row0 + r, col = col0 + c;
    const float v = row < row_end && col < col_end ? gather(map, row, col, g) : 0.f;
    tile[kTransposed ? c * kPitch + r : r * kPitch + c] = v;
  }
}

// One block: the kTileM x kTileN tile of C at (blockIdx.x, blockIdx.y) for group and K chunk
// blockIdx.z = g chunks + chunk. Each K step stages A [kTileM, kTileK] and B [kTileK, kTileN] in
// shared memory; each thread then accumulates its kMicro x kMicro outputs in registers. Every
// output adds its products in increasing k, one fixed order: deterministic.
template <class MapA, class MapB, class Store>
__global__ void __launch_bounds__(kGemmThreads)
    conv_gemm_kernel(GemmDims d, MapA map_a, MapB map_b, Store store) {
  __shared__ float As[kTileK * kPitchA];  // [k][m]
  __shared__ float Bs[kTileK * kPitchB];  // [k][n]
  const int g = blockIdx.z / d.chunks, chunk = blockIdx.z % d.chunks;
  const int m0 = blockIdx.x * kTileM, n0 = blockIdx.y * kTileN;
  const int k_begin = chunk * d.k_chunk, k_end = min(d.K, k_begin + d.k_chunk);
  // thread -> micro-tile: consecutive threads take consecutive m, so a warp's stores of one
  // channel land in 64 consecutive positions of its plane (forward and backward input)
  const int tm = threadIdx.x % (kTileM / kMicro), tn = threadIdx.x / (kTileM / kMicro);
  float acc[kMicro][kMicro] = {};
  for (int k0 = k_begin; k0 < k_end; k0 += kTileK) {
    // stage this K step's slices of A and B (zeros past M, N and the chunk's end)
    load_tile<kTileM, kTileK, kPitchA, true>(As, map_a, m0, d.M, k0, k_end, g);
    load_tile<kTileK, kTileN, kPitchB, false>(Bs, map_b, k0, k_end, n0, d.Ncols, g);
    __syncthreads();
    // outer products of an A column and a B row, kTileK of them
#pragma unroll
    for (int kk = 0; kk < kTileK; ++kk) {
      float av[kMicro], bv[kMicro];
#pragma unroll
      for (int i = 0; i < kMicro; ++i) av[i] = As[kk * kPitchA + tm * kMicro + i];
#pragma unroll
      for (int j = 0; j < kMicro; ++j) bv[j] = Bs[kk * kPitchB + tn * kMicro + j];
#pragma unroll
      for (int i = 0; i < kMicro; ++i)
#pragma unroll
        for (int j = 0; j < kMicro; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    }
    __syncthreads();  // the tiles are overwritten by the next step
  }
  // write-back through the store (the epilogue lives there)
#pragma unroll
  for (int i = 0; i < kMicro; ++i)
#pragma unroll
    for (int j = 0; j < kMicro; ++j) {
      const int m = m0 + tm * kMicro + i, n = n0 + tn * kMicro + j;
      if (m < d.M && n < d.Ncols) store(m, n, g, chunk, acc[i][j]);
    }
}

template <class MapA, class MapB, class Store>
void launch_gemm(const GemmDims& d, const MapA& a, const MapB& b, const Store& store) {
  if (d.M == 0 || d.Ncols == 0) return;
  const dim3 grid((d.M + kTileM - 1) / kTileM, (d.Ncols + kTileN - 1) / kTileN, d.groups * d.chunks);
  check(grid.y <= 65535 && grid.z <= 65535, "cuda conv2d",
        "GEMM grid too large: " + std::to_string(grid.y) + " column tiles, " + std::to_string(grid.z) +
            " groups x chunks");
  conv_gemm_kernel<<<grid, kGemmThreads, 0, stream()>>>(d, a, b, store);
  NORMAD_CUDA_CHECK_LAUNCH();
}

// ---- v3: 1x1 forward through cuBLAS ----

// out[n] [F, HW] = w [F, C] x[n] [C, HW] for every n. cuBLAS is column-major: it computes
// out[n]^T [HW, F] = x[n]^T [HW, C] w^T [C, F], the same memory (see cuda/matmul.cpp).
void pointwise_forward(float* out, const float* x, const float* w, const ConvShape& s, const ConvEpilogue& epi) {
  const int hw = s.H * s.W;
  const float one = 1.f, zero = 0.f;
  NORMAD_CUBLAS_CHECK(cublas_api().sgemm_strided_batched(cublas(), CUBLAS_OP_N, CUBLAS_OP_N, hw, s.F, s.C, &one, x,
                                                         hw, int64_t(s.C) * hw, w, s.C, 0, &zero, out, hw,
                                                         int64_t(s.F) * hw, s.N));
  // the epilogue as a second pass over out, unless it is the identity
  if (epi.scale || epi.shift || epi.act != Activation::none)
    launch(int64_t(s.N) * s.F * hw, ConvEpilogueBody{out, s.F, hw, epi});
}

// ---- the version switches ----

void conv_forward(int version, float* out, const float* x, const float* w, const ConvShape& s,
                  const ConvEpilogue& epi) {
  const int64_t n = int64_t(s.N) * s.F * s.OH * s.OW;
  if (n == 0) return;
  switch (conv_version_for(version, ConvPass::forward, s)) {
    case 1: launch(n, ConvForwardBody{out, x, w, s, epi}); return;
    case 3: pointwise_forward(out, x, w, s, epi); return;
    default: {
      const ForwardGemm gm = forward_gemm(out, x, w, s, epi);
      launch_gemm(gm.d, gm.a, gm.b, gm.store);
    }
  }
}

void conv_backward_input(int version, float* dx, const float* dout, const float* w, const ConvShape& s) {
  const int64_t n = int64_t(s.N) * s.C * s.H * s.W;
  if (n == 0) return;
  if (conv_version_for(version, ConvPass::backward_input, s) == 1) {
    launch(n, ConvBackwardInputBody{dx, dout, w, s});
    return;
  }
  const BackwardInputGemm gm = backward_input_gemm(dx, dout, w, s);
  launch_gemm(gm.d, gm.a, gm.b, gm.store);
}

void conv_backward_weight(int version, float* dw, const float* dout, const float* x, const ConvShape& s) {
  const int64_t n = int64_t(s.F) * s.Cg * s.KH * s.KW;
  if (conv_version_for(version, ConvPass::backward_weight, s) == 1) {
    launch(n, ConvBackwardWeightBody{dw, dout, x, s});
    return;
  }
  const GemmDims d = backward_weight_dims(s);
  if (d.chunks == 1) {  // one chunk: the GEMM writes dw itself
    const BackwardWeightGemm gm = backward_weight_gemm(dw, dout, x, s, d);
    launch_gemm(gm.d, gm.a, gm.b, gm.store);
    return;
  }
  // chunk partials [chunks, F Cg KK], then dw[j] = sum over chunks in order, in double (SumBody as
  // [outer 1, R chunks, inner F Cg KK])
  Scratch partial(sizeof(float) * size_t(d.chunks) * size_t(n));
  float* p = static_cast<float*>(partial.get());
  const BackwardWeightGemm gm = backward_weight_gemm(p, dout, x, s, d);
  launch_gemm(gm.d, gm.a, gm.b, gm.store);
  launch(n, SumBody{dw, p, d.chunks, n});
}

// ---- table entries (cuda/conv.h) ----

namespace {
int g_conv_version = 0;  // set_conv_version; 0 = auto
}  // namespace

void set_conv_version(int v) {
  check(v >= 0 && v <= kConvVersions, "set_conv_version",
        "no version " + std::to_string(v) + " (0 = auto, 1.." + std::to_string(kConvVersions) + ")");
  g_conv_version = v;
}
int conv_version() { return g_conv_version; }
int conv_version_count() { return kConvVersions; }

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dArgs& a) {
  const ConvShape s = make_conv_shape(x.shape(), w.shape(), a);
  Tensor out = Tensor::empty({s.N, s.F, s.OH, s.OW}, Device::CUDA);
  // the bias is the epilogue's shift (null when b is undefined)
  conv_forward(g_conv_version, out.device_data(), x.device_data(), w.device_data(), s,
               ConvEpilogue{nullptr, b.device_data(), Activation::none});
  return out;
}

Tensor conv2d_affine_act(const Tensor& x, const Tensor& w, const Tensor& scale, const Tensor& shift,
                         const Conv2dArgs& a, Activation act) {
  const ConvShape s = make_conv_shape(x.shape(), w.shape(), a);
  Tensor out = Tensor::empty({s.N, s.F, s.OH, s.OW}, Device::CUDA);
  conv_forward(g_conv_version, out.device_data(), x.device_data(), w.device_data(), s,
               ConvEpilogue{scale.device_data(), shift.device_data(), act});
  return out;
}

Tensor conv2d_backward_input(const Tensor& dout, const Tensor& w, const Shape& x_shape, const Conv2dArgs& a) {
  const ConvShape s = make_conv_shape(x_shape, w.shape(), a);
  Tensor dx = Tensor::empty(x_shape, Device::CUDA);
  conv_backward_input(g_conv_version, dx.device_data(), dout.device_data(), w.device_data(), s);
  return dx;
}

Tensor conv2d_backward_weight(const Tensor& dout, const Tensor& x, const Shape& w_shape, const Conv2dArgs& a) {
  const ConvShape s = make_conv_shape(x.shape(), w_shape, a);
  Tensor dw = Tensor::empty(w_shape, Device::CUDA);
  conv_backward_weight(g_conv_version, dw.device_data(), dout.device_data(), x.device_data(), s);
  return dw;
}

}  // namespace normad::cuda
