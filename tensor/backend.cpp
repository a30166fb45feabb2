// normad backend registry: op names, which backend runs a device, and what each supports
// (see tensor/backend.h).
// Math: none; a device maps to one table of function pointers.
// Tested by tests/test_backend_ops.cpp (every Op has a case; the reference backend supports all)
// and tests/test_tensor.cpp (device errors).
#include "tensor/backend.h"

#include "tensor/gemm.h"

#include <atomic>

namespace normad {

const char* unary_op_name(UnaryOp op) {
  static const char* names[] = {"neg", "exp", "log", "sqrt", "abs", "sign", "pow", "clamp", "relu",
                                "leaky_relu", "sigmoid", "silu", "add_scalar", "mul_scalar"};
  static_assert(sizeof(names) / sizeof(names[0]) == size_t(UnaryOp::count));
  return op < UnaryOp::count ? names[size_t(op)] : "?";
}

const char* binary_op_name(BinaryOp op) {
  static const char* names[] = {"add", "sub", "mul", "div", "maximum", "leaky_relu_backward",
                                "clamp_backward"};
  static_assert(sizeof(names) / sizeof(names[0]) == size_t(BinaryOp::count));
  return op < BinaryOp::count ? names[size_t(op)] : "?";
}

const char* op_name(Op op) {
  static const char* names[] = {
      "unary", "binary", "expand", "fill", "copy",
      "matmul", "bmm", "linear",
      "sum", "max", "max_backward", "logsumexp",
      "permute", "concat", "slice", "slice_add", "index_select", "index_add",
      "conv2d", "conv2d_affine_act", "conv2d_backward_input", "conv2d_backward_weight",
      "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward", "global_avg_pool",
      "upsample_nearest2d", "upsample_nearest2d_backward", "scale_planes",
      "batch_norm_train", "batch_norm_eval", "batch_norm_backward", "batch_norm_fold",
      "batch_norm_relu_train", "batch_norm_relu_backward", "batch_norm_statistics", "conv2d_bn_relu_input",
      "conv2d_statistics", "conv2d_bn_relu_input_backward_weight",
      "pairwise_sqdist", "pairwise_sqdist_backward", "l2_normalize", "l2_normalize_backward",
      "sgd_step", "adam_step", "adam_step_multi"};
  static_assert(sizeof(names) / sizeof(names[0]) == size_t(Op::count));
  return op < Op::count ? names[size_t(op)] : "?";
}

bool supports(const Backend& b, Op op) {
  switch (op) {
    case Op::unary: return b.unary;
    case Op::binary: return b.binary;
    case Op::expand: return b.expand;
    case Op::fill: return b.fill;
    case Op::copy: return b.copy && b.copy_from_host && b.copy_to_host;
    case Op::matmul: return b.matmul;
    case Op::bmm: return b.bmm;
    case Op::linear: return b.linear;
    case Op::sum: return b.sum;
    case Op::max: return b.max;
    case Op::max_backward: return b.max_backward;
    case Op::logsumexp: return b.logsumexp;
    case Op::permute: return b.permute;
    case Op::concat: return b.concat;
    case Op::slice: return b.slice;
    case Op::slice_add: return b.slice_add;
    case Op::index_select: return b.index_select;
    case Op::index_add: return b.index_add;
    case Op::conv2d: return b.conv2d;
    case Op::conv2d_affine_act: return b.conv2d_affine_act;
    case Op::conv2d_backward_input: return b.conv2d_backward_input;
    case Op::conv2d_backward_weight: return b.conv2d_backward_weight;
    case Op::max_pool2d: return b.max_pool2d;
    case Op::max_pool2d_backward: return b.max_pool2d_backward;
    case Op::avg_pool2d: return b.avg_pool2d;
    case Op::avg_pool2d_backward: return b.avg_pool2d_backward;
    case Op::global_avg_pool: return b.global_avg_pool;
    case Op::upsample_nearest2d: return b.upsample_nearest2d;
    case Op::upsample_nearest2d_backward: return b.upsample_nearest2d_backward;
    case Op::scale_planes: return b.scale_planes;
    case Op::batch_norm_train: return b.batch_norm_train;
    case Op::batch_norm_eval: return b.batch_norm_eval;
    case Op::batch_norm_backward: return b.batch_norm_backward;
    case Op::batch_norm_fold: return b.batch_norm_fold;
    case Op::batch_norm_relu_train: return b.batch_norm_relu_train;
    case Op::batch_norm_relu_backward: return b.batch_norm_relu_backward;
    case Op::batch_norm_statistics: return b.batch_norm_statistics;
    case Op::conv2d_bn_relu_input: return b.conv2d_bn_relu_input;
    case Op::conv2d_statistics: return b.conv2d_statistics;
    case Op::conv2d_bn_relu_input_backward_weight: return b.conv2d_bn_relu_input_backward_weight;
    case Op::pairwise_sqdist: return b.pairwise_sqdist;
    case Op::pairwise_sqdist_backward: return b.pairwise_sqdist_backward;
    case Op::l2_normalize: return b.l2_normalize;
    case Op::l2_normalize_backward: return b.l2_normalize_backward;
    case Op::sgd_step: return b.sgd_step;
    case Op::adam_step: return b.adam_step;
    case Op::adam_step_multi: return b.adam_step_multi;
    case Op::count: break;
  }
  return false;
}

const Backend& backend_for(Device d) {
  switch (d) {
    case Device::CPU: return cpu_backend();
    case Device::Reference: return reference_backend();
    case Device::CUDA:
      if (const Backend* b = cuda_backend()) return *b;
      throw Error("cuda: " + cuda_unavailable_reason());
  }
  throw Error("unknown device");
}

namespace {
std::atomic<bool> g_allow_tf32{false};
}
std::string cpu_gemm_engine() { return cpu::gemm_engine_description(); }

void set_allow_tf32(bool on) { g_allow_tf32 = on; }
bool allow_tf32() { return g_allow_tf32; }

void adam_step_each(void (*adam_step)(Tensor&, const Tensor&, Tensor&, Tensor&, const AdamParams&),
                    const std::vector<AdamSlot>& slots, const AdamParams& p) {
  for (const AdamSlot& s : slots) {
    AdamParams q = p;
    q.step = s.step;
    adam_step(*s.w, *s.g, *s.m, *s.v, q);
  }
}

bool device_available(Device d) { return d != Device::CUDA || cuda_backend() != nullptr; }

std::string device_unavailable_reason(Device d) {
  return device_available(d) ? "" : cuda_unavailable_reason();
}

#ifndef NORMAD_HAS_CUDA
// Built without nvcc: no CUDA backend (cuda/backend.cpp defines these when it is built).
const Backend* cuda_backend() { return nullptr; }
const Backend* cuda_backend_table() { return nullptr; }
void cuda_synchronize() {}
Allocator* cuda_allocator() { return nullptr; }
std::string cuda_unavailable_reason() {
  return "normad was built without CUDA (no nvcc found, or -DNORMAD_CUDA=OFF)";
}
#endif

}  // namespace normad
