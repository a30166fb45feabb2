// normad CUDA pooling and upsampling: the table entries of Device::CUDA (tensor/backend.h, same
// signatures) and the version knob. Kernels, math and versions: cuda/pooling.cuh (tensor/caching_pool.h is
// the memory pool, unrelated).
// Math: tensor/reference.cpp's pooling, plane by plane.
// Tested by tests/test_cuda_pooling.cpp ([cuda]: every version against the reference backend on a
// GPU) and tests/test_backend_ops.cpp on a GPU.
//
//   x [2, 3, 7, 7], 3x3 windows, stride 2, pad 1 -> out [2, 3, 4, 4], argmax [2, 3, 4, 4] (ih*7 + iw)
#pragma once

#include <cstdint>

#include "tensor/backend.h"

namespace normad::cuda {

Tensor max_pool2d(const Tensor& x,        // [N, C, H, W]
                  const Pool2dArgs& a,    // window, stride, padding, ceil_mode
                  Tensor* argmax);        // receives [N, C, OH, OW] flat input indices; may be null
Tensor max_pool2d_backward(const Tensor& dout,     // [N, C, OH, OW]
                           const Tensor& argmax,   // [N, C, OH, OW], any index in [0, H*W)
                           const Shape& x_shape);  // [N, C, H, W]
Tensor avg_pool2d(const Tensor& x, const Pool2dArgs& a);
Tensor avg_pool2d_backward(const Tensor& dout, const Shape& x_shape, const Pool2dArgs& a);
Tensor global_avg_pool(const Tensor& x);  // [N, C, H, W] -> [N, C]
Tensor upsample_nearest2d(const Tensor& x, int64_t scale);
Tensor upsample_nearest2d_backward(const Tensor& dout, int64_t scale);

// Which version global_avg_pool runs: 0 = auto, 1 .. pooling_version_count(). The other pooling
// ops have one version and ignore it.
void set_pooling_version(int v);
int pooling_version_count();

}  // namespace normad::cuda
