// normad CUDA batch normalisation: the table entries of Device::CUDA (tensor/backend.h, same
// signatures) and the version knob. Kernels, math and versions: cuda/batchnorm.cuh.
// Math: tensor/reference.cpp's batch norm, per (group, channel).
// Tested by tests/test_cuda_batchnorm.cpp ([cuda]: every version against the reference backend on a
// GPU) and tests/test_backend_ops.cpp on a GPU.
//
//   x [96, 64, 7, 7], groups 32 -> y [96, 64, 7, 7], saved mean/invstd [32, 64] (3 rows per group)
#pragma once

#include <cstdint>

#include "tensor/backend.h"

namespace normad::cuda {

Tensor batch_norm_train(const Tensor& x,            // [N, C] or [N, C, H, W]
                        const Tensor& gamma,        // [C] or undefined
                        const Tensor& beta,         // [C] or undefined
                        float eps,                  //
                        int64_t groups,             // G, divides N
                        BatchNormSaved* saved,      // receives mean, invstd [G, C]; may be null
                        Tensor* running_mean,       // [C], updated G times in group order; may be null
                        Tensor* running_var,        // [C], likewise (unbiased variance); may be null
                        float momentum);
Tensor batch_norm_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                       const Tensor& running_mean, const Tensor& running_var, float eps);
Tensor batch_norm_backward(const Tensor& dout,           // like x
                           const Tensor& x,              //
                           const Tensor& gamma,          // [C] or undefined
                           const BatchNormSaved& saved,  // the forward's [G, C] statistics
                           int64_t groups,               //
                           Tensor* dgamma,               // [C]; may be null
                           Tensor* dbeta);               // [C]; may be null
void batch_norm_fold(const Tensor& gamma, const Tensor& beta, const Tensor& bias,
                     const Tensor& running_mean, const Tensor& running_var, float eps,
                     Tensor* scale, Tensor* shift);

// Which version batch_norm_train and batch_norm_backward run: 0 = auto (the default pick by shape),
// 1 .. batch_norm_version_count(). Eval and fold have one version.
void set_batch_norm_version(int v);
int batch_norm_version_count();

}  // namespace normad::cuda
