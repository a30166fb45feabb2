// normad nn layers (see nn/layers.h) with PyTorch's default initialisation:
// weight kaiming_uniform(a = sqrt(5)) => U(+-1/sqrt(fan_in)); bias U(+-1/sqrt(fan_in)); BN gamma 1,
// beta 0, running mean 0, running var 1. BatchNorm::forward_relu: the batch norm and a (leaky)
// ReLU as one op (batch_norm_relu_train) when batch statistics are used; BatchNorm::conv_with_statistics:
// a convolution and this layer's statistics of its output from one op, and relu_input_of: this
// layer's batch norm + ReLU for the next convolution to apply as it reads (autograd's
// conv2d_bn_relu_input).
// Tested by tests/test_nn.cpp, tests/test_batchnorm.cpp, tests/test_parity.cpp and tests/test_acr.cpp
// (conv_with_statistics through the Omniglot net's fused forward and training step against the
// layer-by-layer ones, running statistics included).
#include "nn/layers.h"

#include <cmath>

#include "nn/init.h"

namespace normad::nn {

namespace {
// PyTorch's reset_parameters for Linear and Conv2d, from the default generator.
void default_init(Var& weight, Var& bias) {
  Tensor b = bias.defined() ? bias.data() : Tensor();
  init::torch_default_(weight.data(), &b);
}
}  // namespace

Linear::Linear(int64_t in, int64_t out, bool has_bias) {
  weight = register_parameter("weight", Tensor({out, in}));
  if (has_bias) bias = register_parameter("bias", Tensor({out}));
  default_init(weight, bias);
}

Var Linear::forward(const Var& x) {
  check(x.dim() == 2 && x.size(1) == weight.size(1), "Linear",
        "input " + shape_str(x.shape()) + " does not match weight " + shape_str(weight.shape()));
  // x W^T + b in one op: the bias added by the GEMM as it writes y (matmul + add wrote y twice:
  // ACR-NTL's step spent 8% of its time in those adds, 2 threads)
  return bias.defined() ? linear(x, weight, bias) : matmul(x, weight, false, true);
}

Conv2d::Conv2d(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding,
               bool has_bias, int64_t dilation, int64_t groups) {
  check(in % groups == 0 && out % groups == 0, "Conv2d",
        "channels " + std::to_string(in) + " -> " + std::to_string(out) +
            " not divisible by groups " + std::to_string(groups));
  weight = register_parameter("weight", Tensor({out, in / groups, kernel, kernel}));
  if (has_bias) bias = register_parameter("bias", Tensor({out}));
  args = Conv2dArgs{stride, stride, padding, padding, dilation, dilation, groups};
  default_init(weight, bias);
}

Var Conv2d::forward(const Var& x) { return conv2d(x, weight, bias, args); }

ConvTranspose2d::ConvTranspose2d(int64_t in, int64_t out, int64_t kernel, int64_t stride,
                                 int64_t padding, int64_t output_padding, bool has_bias,
                                 int64_t dilation, int64_t groups)
    : output_padding(output_padding) {
  check(in % groups == 0 && out % groups == 0, "ConvTranspose2d",
        "channels " + std::to_string(in) + " -> " + std::to_string(out) +
            " not divisible by groups " + std::to_string(groups));
  weight = register_parameter("weight", Tensor({in, out / groups, kernel, kernel}));
  if (has_bias) bias = register_parameter("bias", Tensor({out}));
  args = Conv2dArgs{stride, stride, padding, padding, dilation, dilation, groups};
  default_init(weight, bias);  // fan_in = size(1) k k, as torch computes it for this layout
}

Var ConvTranspose2d::forward(const Var& x) {
  return conv_transpose2d(x, weight, bias, args, output_padding, output_padding);
}

BatchNorm::BatchNorm(int64_t channels, int64_t expected_rank, float eps, float momentum,
                     bool affine, bool track_running_stats)
    : eps(eps), momentum(momentum), channels_(channels), rank_(expected_rank),
      track_(track_running_stats) {
  if (affine) {
    weight = register_parameter("weight", Tensor::ones({channels}));
    bias = register_parameter("bias", Tensor::zeros({channels}));
  }
  if (track_running_stats) {
    running_mean = register_buffer("running_mean", Tensor::zeros({channels}));
    running_var = register_buffer("running_var", Tensor::ones({channels}));
    num_batches_tracked = register_buffer("num_batches_tracked", Tensor::zeros({}));
  }
}

Var BatchNorm::forward(const Var& x) { return forward_act(x, false, 0.f); }

Var BatchNorm::forward_relu(const Var& x, float slope) { return forward_act(x, true, slope); }

std::optional<std::pair<Var, BatchNormSaved>> BatchNorm::conv_with_statistics(const Var& x, const BnReluInputVar* in,
                                                                              const Var& w, const Var& b,
                                                                              const Conv2dArgs& a) {
  check_input(conv2d_shape(x.shape(), w.shape(), a, "BatchNorm::conv_with_statistics"));
  if (!uses_batch_statistics()) return std::nullopt;
  const bool update = is_training() && track_;  // as forward_act
  if (update) num_batches_tracked.copy_(add_scalar(num_batches_tracked, static_cast<float>(groups)));
  OutputStatistics stats{eps, groups, update ? &running_mean : nullptr, update ? &running_var : nullptr, momentum, {}};
  Var y = conv2d_bn_relu_input(x, in, w, b, a, &stats);
  return std::pair{std::move(y), std::move(stats.saved)};
}

void BatchNorm::check_input(const Shape& x) const {
  check(int64_t(x.size()) == rank_ && x[1] == channels_, rank_ == 2 ? "BatchNorm1d" : "BatchNorm2d",
        "expects [N, " + std::to_string(channels_) + (rank_ == 2 ? "]" : ", H, W]") + ", got " + shape_str(x));
}

Var BatchNorm::forward_act(const Var& x, bool relu_after, float slope) {
  check_input(x.shape());
  const bool use_batch = uses_batch_statistics();
  if (!use_batch) {
    Var y = batch_norm_eval(x, weight, bias, running_mean, running_var, eps);
    return relu_after ? leaky_relu(y, slope) : y;
  }
  // Running statistics move only in training mode, no-grad or not (as in PyTorch); a grouped
  // pass counts as `groups` passes, one per group.
  const bool update = is_training() && track_;
  if (update) num_batches_tracked.copy_(add_scalar(num_batches_tracked, static_cast<float>(groups)));
  Tensor* rm = update ? &running_mean : nullptr;
  Tensor* rv = update ? &running_var : nullptr;
  if (relu_after) return batch_norm_relu_train(x, weight, bias, eps, groups, slope, rm, rv, momentum);
  return batch_norm_train(x, weight, bias, eps, groups, rm, rv, momentum);
}

namespace {
template <class F>
void for_each_bn(Module& m, F f) {
  if (auto* bn = dynamic_cast<BatchNorm*>(&m)) f(*bn);
  for (auto& [name, child] : m.named_children()) for_each_bn(*child, f);
}
}  // namespace

void set_bn_groups(Module& m, int64_t groups) {
  for_each_bn(m, [&](BatchNorm& bn) { bn.groups = groups; });
}

void set_bn_batch_stats_in_eval(Module& m, bool on) {
  for_each_bn(m, [&](BatchNorm& bn) { bn.batch_stats_in_eval = on; });
}

std::vector<BatchNorm*> batch_norms(Module& m) {
  std::vector<BatchNorm*> out;
  for_each_bn(m, [&](BatchNorm& bn) { out.push_back(&bn); });
  return out;
}

MaxPool2d::MaxPool2d(int64_t kernel, int64_t stride, int64_t padding, bool ceil_mode) {
  const int64_t s = stride > 0 ? stride : kernel;  // PyTorch: stride defaults to kernel_size
  args = Pool2dArgs{kernel, kernel, s, s, padding, padding, ceil_mode, true};
}

AvgPool2d::AvgPool2d(int64_t kernel, int64_t stride, int64_t padding, bool ceil_mode,
                     bool count_include_pad) {
  const int64_t s = stride > 0 ? stride : kernel;
  args = Pool2dArgs{kernel, kernel, s, s, padding, padding, ceil_mode, count_include_pad};
}

}  // namespace normad::nn
