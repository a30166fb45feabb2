// normad CUDA pooling and upsampling: global_avg_pool's v2 kernel, the launchers of
// cuda/pooling.cuh (bodies, math and the version list there) and the table entries of
// cuda/pooling.h.
// Versions: v1 bodies for every op; v2 global_avg_pool with one warp per plane. The auto pick is a
// guess: compiled, not run on a GPU.
// Tested by tests/test_cuda_pooling.cpp ([cuda_body] on the host; [cuda] on a GPU) and
// tests/test_backend_ops.cpp on a GPU.
//
// Shapes: x [N, C, H, W], out [N, C, OH, OW]; P = N*C planes of HW = H*W floats.
#include "cuda/pooling.cuh"

#include <string>

#include "cuda/block_tree.cuh"
#include "cuda/pooling.h"
#include "tensor/tensor.h"

namespace normad::cuda {

void launch(int64_t n, const MaxPoolBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const MaxPoolBackwardBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const AvgPoolBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const AvgPoolBackwardBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const GlobalAvgPoolBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const UpsampleBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const UpsampleBackwardBody& body) { launch_for_each(n, body); }

// v2: one warp per plane (kThreads / 32 planes per block, grid-stride over planes); lane l sums
// elements l, l + 32, ... (consecutive lanes read consecutive floats), then the fixed shuffle tree.
__global__ void global_avg_pool_kernel2(float* out, const float* x, int64_t P, int64_t HW) {
  const int lane = threadIdx.x % kWarp;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / kWarp);
  for (int64_t p = int64_t(blockIdx.x) * (blockDim.x / kWarp) + threadIdx.x / kWarp; p < P; p += warps) {
    const double s = warp_tree(strided_sum(x + p * HW, HW, lane, kWarp), DoubleAdd{});
    if (lane == 0) out[p] = float(s / double(HW));
  }
}

namespace {

int g_version = 0;  // set_pooling_version
constexpr int kVersions = 2;

float* ptr(const Tensor& t) { return t.device_data(); }

PoolGeom geom(const Shape& x, const Shape& out, const Pool2dArgs& a) {
  return {x[2], x[3], out[2], out[3], a.kh, a.kw, a.stride_h, a.stride_w, a.pad_h, a.pad_w, a.count_include_pad};
}

}  // namespace

Tensor max_pool2d(const Tensor& x, const Pool2dArgs& a, Tensor* argmax) {
  const Shape os = pool2d_shape(x.shape(), a, "max_pool2d");
  Tensor out = Tensor::empty(os, Device::CUDA);
  Tensor idx = argmax ? Tensor::empty(os, Device::CUDA) : Tensor();
  launch(out.numel(), MaxPoolBody{ptr(out), argmax ? ptr(idx) : nullptr, ptr(x), geom(x.shape(), os, a)});
  if (argmax) *argmax = idx;
  return out;
}

Tensor max_pool2d_backward(const Tensor& dout, const Tensor& argmax, const Shape& x_shape) {
  Tensor dx = Tensor::empty(x_shape, Device::CUDA);
  launch(dx.numel(), MaxPoolBackwardBody{ptr(dx), ptr(dout), ptr(argmax), x_shape[2] * x_shape[3],
                                         dout.size(2) * dout.size(3)});
  return dx;
}

Tensor avg_pool2d(const Tensor& x, const Pool2dArgs& a) {
  const Shape os = pool2d_shape(x.shape(), a, "avg_pool2d");
  Tensor out = Tensor::empty(os, Device::CUDA);
  launch(out.numel(), AvgPoolBody{ptr(out), ptr(x), geom(x.shape(), os, a)});
  return out;
}

Tensor avg_pool2d_backward(const Tensor& dout, const Shape& x_shape, const Pool2dArgs& a) {
  Tensor dx = Tensor::empty(x_shape, Device::CUDA);
  launch(dx.numel(), AvgPoolBackwardBody{ptr(dx), ptr(dout), geom(x_shape, dout.shape(), a)});
  return dx;
}

Tensor global_avg_pool(const Tensor& x) {
  const int64_t P = x.size(0) * x.size(1), HW = x.size(2) * x.size(3);
  Tensor out = Tensor::empty({x.size(0), x.size(1)}, Device::CUDA);
  // auto: v1 (a thread per plane) only for many short planes, v2 (a warp per plane) otherwise
  const int v = g_version != 0 ? g_version : (HW < kWarp && P >= 8192 ? 1 : 2);
  if (v == 1) {
    launch(P, GlobalAvgPoolBody{ptr(out), ptr(x), HW});
  } else if (P > 0) {
    global_avg_pool_kernel2<<<blocks_for(P * kWarp), kThreads, 0, stream()>>>(ptr(out), ptr(x), P, HW);
    NORMAD_CUDA_CHECK_LAUNCH();
  }
  return out;
}

Tensor upsample_nearest2d(const Tensor& x, int64_t scale) {
  Tensor out = Tensor::empty({x.size(0), x.size(1), x.size(2) * scale, x.size(3) * scale}, Device::CUDA);
  launch(out.numel(), UpsampleBody{ptr(out), ptr(x), x.size(2), x.size(3), scale});
  return out;
}

Tensor upsample_nearest2d_backward(const Tensor& dout, int64_t scale) {
  const int64_t H = dout.size(2) / scale, W = dout.size(3) / scale;
  Tensor dx = Tensor::empty({dout.size(0), dout.size(1), H, W}, Device::CUDA);
  launch(dx.numel(), UpsampleBackwardBody{ptr(dx), ptr(dout), H, W, scale});
  return dx;
}

void set_pooling_version(int v) {
  if (v < 0 || v > kVersions) throw Error("cuda pooling: no version " + std::to_string(v) + " (0 = auto, 1 or 2)");
  g_version = v;
}

int pooling_version_count() { return kVersions; }

}  // namespace normad::cuda
