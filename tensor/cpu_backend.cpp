// normad CPU backend table: the fast kernels of tensor/*.cpp behind the dispatch (tensor/backend.h).
// Math: see each kernel; host memory moves with memcpy.
// Tested by tests/test_backend_ops.cpp against the reference backend.
#include <algorithm>
#include <cstring>

#include "tensor/cpu.h"

namespace normad {

namespace {
void host_copy(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void host_fill(Tensor& t, float v) { std::fill_n(t.data(), t.numel(), v); }
}  // namespace

const Backend& cpu_backend() {
  static const Backend b{
      .name = "cpu",
      .device = Device::CPU,
      .copy_from_host = host_copy,
      .copy_to_host = host_copy,
      .copy = host_copy,
      .fill = host_fill,
      .unary = cpu::unary,
      .binary = cpu::binary,
      .expand = cpu::expand,
      .matmul = cpu::matmul,
      .bmm = cpu::bmm,
      .linear = cpu::linear,
      .sum = cpu::sum,
      .max = cpu::max,
      .max_backward = cpu::max_backward,
      .logsumexp = cpu::logsumexp,
      .permute = cpu::permute,
      .concat = cpu::concat,
      .slice = cpu::slice,
      .slice_add = cpu::slice_add,
      .index_select = cpu::index_select,
      .index_add = cpu::index_add,
      .conv2d = cpu::conv2d,
      .conv2d_affine_act = cpu::conv2d_affine_act,
      .conv2d_backward_input = cpu::conv2d_backward_input,
      .conv2d_backward_weight = cpu::conv2d_backward_weight,
      .max_pool2d = cpu::max_pool2d,
      .max_pool2d_backward = cpu::max_pool2d_backward,
      .avg_pool2d = cpu::avg_pool2d,
      .avg_pool2d_backward = cpu::avg_pool2d_backward,
      .global_avg_pool = cpu::global_avg_pool,
      .upsample_nearest2d = cpu::upsample_nearest2d,
      .upsample_nearest2d_backward = cpu::upsample_nearest2d_backward,
      .scale_planes = cpu::scale_planes,
      .batch_norm_train = cpu::batch_norm_train,
      .batch_norm_eval = cpu::batch_norm_eval,
      .batch_norm_backward = cpu::batch_norm_backward,
      .batch_norm_fold = cpu::batch_norm_fold,
      .batch_norm_relu_train = cpu::batch_norm_relu_train,
      .batch_norm_relu_backward = cpu::batch_norm_relu_backward,
      .batch_norm_statistics = cpu::batch_norm_statistics,
      .conv2d_bn_relu_input = cpu::conv2d_bn_relu_input,
      .conv2d_statistics = cpu::conv2d_statistics,
      .conv2d_bn_relu_input_backward_weight = cpu::conv2d_bn_relu_input_backward_weight,
      .pairwise_sqdist = cpu::pairwise_sqdist,
      .pairwise_sqdist_backward = cpu::pairwise_sqdist_backward,
      .l2_normalize = cpu::l2_normalize,
      .l2_normalize_backward = cpu::l2_normalize_backward,
      .sgd_step = cpu::sgd_step,
      .adam_step = cpu::adam_step,
      .adam_step_multi = cpu::adam_step_multi,
  };
  return b;
}

}  // namespace normad
