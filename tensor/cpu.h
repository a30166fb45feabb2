// normad CPU backend: the fast kernels (native, OpenBLAS or Eigen GEMM, oneTBB, vectorised loops) behind the dispatch
// table (tensor/backend.h). Internal to tensor/: everything else calls the public ops (tensor/ops.h),
// which validate their arguments and land here for CPU tensors.
// Math: each function computes the op documented in tensor/ops.h.
// Tested by tests/test_backend_ops.cpp (against the reference backend) and the op tests.
#pragma once

#include <vector>

#include "tensor/backend.h"

namespace normad::cpu {

// elementwise (elementwise.cpp)
Tensor unary(UnaryOp op, const Tensor& a, float p0, float p1);
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b, float p0, float p1);
Tensor expand(const Tensor& a, const Shape& shape);
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor add_scalar(const Tensor& a, float s);
Tensor mul_scalar(const Tensor& a, float s);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
// y[i] = e^x[i], i < n (y == x or no overlap): std::exp's values bit for bit, 16 at a time on AVX-512
// (glibc's expf algorithm in vector registers, elementwise.cpp; its special cases, |x| >= 88 and
// NaN, from std::exp itself; a last partial vector padded, so every value takes the same path):
// the exp op on [2048, 20, 20] 1.39 -> 0.26 ms. The exp op and logsumexp use it.
void exp_floats(float* y, const float* x, int64_t n);

// matrix products (matmul.cpp)
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b);
Tensor bmm(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b);
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b);

// reductions (reduce.cpp)
Tensor sum(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim);
Tensor max(const Tensor& a, int64_t dim, bool keepdim, Tensor* argmax);
Tensor max_backward(const Tensor& dout, const Tensor& argmax, const Shape& in_shape, int64_t dim);
Tensor logsumexp(const Tensor& a, int64_t dim, bool keepdim);

// layout (layout.cpp)
Tensor permute(const Tensor& a, const std::vector<int64_t>& perm);
Tensor concat(const std::vector<Tensor>& ts, int64_t dim);
Tensor slice(const Tensor& a, int64_t dim, int64_t start, int64_t end);
void slice_add(Tensor& out, const Tensor& g, int64_t dim, int64_t start);
Tensor index_select(const Tensor& a, const std::vector<int64_t>& idx);
void index_add(Tensor& out, const std::vector<int64_t>& idx, const Tensor& g);

// convolution (conv.cpp)
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dArgs& a);
Tensor conv2d_bn_relu_input(const Tensor& x, const Tensor& gamma, const Tensor& beta, const BatchNormSaved& saved,
                            int64_t groups, const Tensor& w, const Tensor& b, const Conv2dArgs& a);
Tensor conv2d_statistics(const Tensor& x, const BnReluInput* in, const Tensor& w, const Tensor& b, const Conv2dArgs& a,
                         float eps, int64_t groups, Tensor* running_mean, Tensor* running_var, float momentum,
                         BatchNormSaved* stats);
Tensor conv2d_bn_relu_input_backward_weight(const Tensor& dout, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                            const BatchNormSaved& saved, int64_t groups, const Shape& w_shape,
                                            const Conv2dArgs& a, Tensor* dbias);
Tensor conv2d_affine_act(const Tensor& x, const Tensor& w, const Tensor& scale, const Tensor& shift,
                         const Conv2dArgs& a, Activation act);
Tensor conv2d_backward_input(const Tensor& dout, const Tensor& w, const Shape& x_shape,
                             const Conv2dArgs& a);
Tensor conv2d_backward_weight(const Tensor& dout, const Tensor& x, const Shape& w_shape,
                              const Conv2dArgs& a, Tensor* dbias);
// The layout of the convolutions' im2col columns (conv.cpp): planar, rows (c, kh, kw) read from
// NCHW planes, or channels_last, rows (kh, kw, c) copied as runs of Cg floats from a per-sample
// [H, W, Cg] copy of the input; or direct: no columns, the direct kernels wherever they apply
// (groups 1, dilation 1; the backward-input one at stride 1, the backward-weight one for kernel
// widths 1, 3, 5), planar im2col elsewhere. automatic: direct where it applies and measured faster (few
// channels: conv.cpp's use_direct), else channels_last when a group has >= 16 channels, else
// planar; all three passes take no columns at all with groups 1, >= 16 channels and >= 16
// filters (conv.cpp's implicit GEMM, the input gradient by stride phases; not the forward of a
// 1x1 stride-1 kernel on one sample per chunk when the GEMM engine is OpenBLAS or native), and the forward and the weight gradient take the small-depth
// kernels with groups 1, fewer than 16 channels, K = C KH KW <= 32 and 16 to 512 filters (the
// Omniglot net's 1 -> 64 layer). implicit: all three passes by the implicit GEMM wherever groups
// is 1. small_depth: the forward and the weight gradient
// passes by the small-depth kernels wherever groups is 1, the input gradient by planar columns.
enum class ConvColumns { automatic, planar, channels_last, direct, implicit, small_depth };
void set_conv_columns(ConvColumns c);

// pooling (pool.cpp)
Tensor max_pool2d(const Tensor& x, const Pool2dArgs& a, Tensor* argmax);
Tensor max_pool2d_backward(const Tensor& dout, const Tensor& argmax, const Shape& x_shape);
Tensor avg_pool2d(const Tensor& x, const Pool2dArgs& a);
Tensor avg_pool2d_backward(const Tensor& dout, const Shape& x_shape, const Pool2dArgs& a);
Tensor global_avg_pool(const Tensor& x);
Tensor upsample_nearest2d(const Tensor& x, int64_t scale);
Tensor upsample_nearest2d_backward(const Tensor& dout, int64_t scale);
Tensor scale_planes(const Tensor& x, const Tensor& s);

// batch normalisation (batchnorm.cpp)
Tensor batch_norm_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                        int64_t groups, BatchNormSaved* saved, Tensor* running_mean,
                        Tensor* running_var, float momentum);
Tensor batch_norm_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                       const Tensor& running_mean, const Tensor& running_var, float eps);
Tensor batch_norm_backward(const Tensor& dout, const Tensor& x, const Tensor& gamma,
                           const BatchNormSaved& saved, int64_t groups, Tensor* dgamma,
                           Tensor* dbeta);
void batch_norm_fold(const Tensor& gamma, const Tensor& beta, const Tensor& bias,
                     const Tensor& running_mean, const Tensor& running_var, float eps,
                     Tensor* scale, Tensor* shift);
Tensor batch_norm_relu_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                             int64_t groups, float slope, BatchNormSaved* saved,
                             Tensor* running_mean, Tensor* running_var, float momentum);
Tensor batch_norm_relu_backward(const Tensor& dout, const Tensor& x, const Tensor& gamma,
                                const Tensor& beta, const BatchNormSaved& saved, int64_t groups,
                                float slope, Tensor* dgamma, Tensor* dbeta);
BatchNormSaved batch_norm_statistics(const Tensor& x, float eps, int64_t groups, Tensor* running_mean,
                                     Tensor* running_var, float momentum);
// The same from x's plane moments computed by its producer (conv2d_statistics; tensor/plane_moments.h):
// moments[n C + c] = plane_moments of x[n, c] (x [N, C, H, W], H W > 1); the same bits.
struct PlaneMoments;
BatchNormSaved batch_norm_statistics_of_moments(const Tensor& x, const PlaneMoments* moments, float eps, int64_t groups,
                                                Tensor* running_mean, Tensor* running_var, float momentum);
// Helpers of conv2d_bn_relu_input (conv.cpp): the normalisation's per-(group, channel) scale =
// invstd gamma and shift = beta - mean scale from saved statistics (G C entries each), computed as
// batch_norm_train computes them; and relu(scale x + shift) written exactly as
// batch_norm_relu_train writes its y.
void batch_norm_scale_shift(const BatchNormSaved& saved, const Tensor& gamma, const Tensor& beta, int64_t C,
                            float* scale, float* shift);
Tensor batch_norm_relu_apply(const Tensor& x, const float* scale, const float* shift, int64_t groups);

// distances (distance.cpp)
Tensor pairwise_sqdist(const Tensor& a, const Tensor& b);
void pairwise_sqdist_backward(const Tensor& dout, const Tensor& a, const Tensor& b,
                              const Tensor& dist, Tensor* da, Tensor* db);
Tensor l2_normalize(const Tensor& a, float eps);
Tensor l2_normalize_backward(const Tensor& dout, const Tensor& x, const Tensor& y, float eps);

// optimiser steps (optim.cpp)
void sgd_step(Tensor& w, const Tensor& g, Tensor& velocity, const SgdParams& p);
void adam_step(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, const AdamParams& p);
void adam_step_multi(const std::vector<AdamSlot>& slots, const AdamParams& p);

}  // namespace normad::cpu
