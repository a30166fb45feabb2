// normad CUDA convolution: the table entries of Device::CUDA (tensor/backend.h signatures; arguments
// already validated by tensor/ops.cpp) and the version knob of the family. Kernels, versions and
// math: cuda/conv.cuh. Tested by tests/test_cuda_conv.cpp ([cuda]: every version against the
// reference backend on a GPU) and tests/test_backend_ops.cpp.
//   x [4, 1, 28, 28], w [64, 1, 3, 3], stride 2, pad 1 -> conv2d gives [4, 64, 14, 14]
#pragma once

#include "tensor/ops.h"
#include "tensor/tensor.h"

namespace normad::cuda {

// x [N, C, H, W], w [F, C/groups, KH, KW], b [F] or undefined -> [N, F, OH, OW]
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dArgs& a);
// act(scale[f] conv2d(x, w) + shift[f]); scale and shift [F] or undefined
Tensor conv2d_affine_act(const Tensor& x, const Tensor& w, const Tensor& scale, const Tensor& shift,
                         const Conv2dArgs& a, Activation act);
// dout [N, F, OH, OW] -> dx x_shape
Tensor conv2d_backward_input(const Tensor& dout, const Tensor& w, const Shape& x_shape, const Conv2dArgs& a);
// dout [N, F, OH, OW], x [N, C, H, W] -> dw w_shape
Tensor conv2d_backward_weight(const Tensor& dout, const Tensor& x, const Shape& w_shape, const Conv2dArgs& a);

void set_conv_version(int v);  // 0 = auto (the default pick), 1..conv_version_count(); throws otherwise
int conv_version();            // the version set
int conv_version_count();      // 3: v1 direct, v2 tiled implicit GEMM, v3 cuBLAS for 1x1 forwards

}  // namespace normad::cuda
