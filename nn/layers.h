// normad nn layers: Linear, Conv2d, ConvTranspose2d, BatchNorm1d/2d, activations, pooling,
// upsampling, Flatten.
// Math: Linear y = x W^T + b; Conv2d as tensor/ops.h; BN y = gamma (x - mu)/sqrt(var + eps) + beta.
// Parameter names and default initialisation follow PyTorch. Tested by tests/test_nn.cpp and
// tests/test_parity.cpp.
#pragma once

#include <optional>
#include <utility>

#include "nn/module.h"

namespace normad::nn {

class Linear : public Module {
 public:
  Linear(int64_t in, int64_t out, bool bias = true);  // weight [out, in], bias [out]
  Var forward(const Var& x) override;                  // x [N, in] -> [N, out]
  Var weight, bias;                                    // bias undefined when bias = false
};

class Conv2d : public Module {
 public:
  Conv2d(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t padding = 0,
         bool bias = true, int64_t dilation = 1, int64_t groups = 1);
  Var forward(const Var& x) override;  // x [N, in, H, W] -> [N, out, OH, OW]
  Var weight, bias;                    // weight [out, in/groups, k, k]
  Conv2dArgs args;
};

// PyTorch's ConvTranspose2d: weight [in, out/groups, k, k], bias [out]; output size
// (H - 1) stride - 2 padding + dilation (k - 1) + 1 + output_padding. Initialised as PyTorch does
// (U(+-1/sqrt(fan_in)) with fan_in = weight.size(1) k k).
class ConvTranspose2d : public Module {
 public:
  ConvTranspose2d(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t padding = 0,
                  int64_t output_padding = 0, bool bias = true, int64_t dilation = 1,
                  int64_t groups = 1);
  Var forward(const Var& x) override;  // x [N, in, H, W] -> [N, out, OH, OW]
  Var weight, bias;
  Conv2dArgs args;
  int64_t output_padding;
};

class Upsample : public Module {  // nearest neighbour, integer factor
 public:
  explicit Upsample(int64_t scale) : scale(scale) {}
  Var forward(const Var& x) override { return upsample_nearest2d(x, scale); }
  int64_t scale;
};

// Shared by BatchNorm1d ([N, C]) and BatchNorm2d ([N, C, H, W]).
// In training mode (or with batch_stats_in_eval) it uses batch statistics; `groups` > 1 normalises
// that many equal contiguous row groups separately (ACR's per-task statistics in one pass).
class BatchNorm : public Module {
 public:
  BatchNorm(int64_t channels, int64_t expected_rank, float eps = 1e-5f, float momentum = 0.1f,
            bool affine = true, bool track_running_stats = true);
  Var forward(const Var& x) override;
  // leaky_relu(forward(x), slope) (slope 0: ReLU), one fused op when batch statistics are used.
  Var forward_relu(const Var& x, float slope = 0.f);
  // A convolution's output y (autograd's conv2d_bn_relu_input: conv2d of x, or of the batch norm +
  // ReLU `in` of x, one node) and this layer's batch statistics of y from the same op, the running
  // statistics moved as forward moves them; nothing (no convolution run) where it would use the
  // running statistics. Then forward_relu(y) = relu_input_of(stats)'s batch norm + ReLU of y.
  std::optional<std::pair<Var, BatchNormSaved>> conv_with_statistics(const Var& x, const BnReluInputVar* in,
                                                                      const Var& w, const Var& b, const Conv2dArgs& a);
  // This layer's batch norm + ReLU for the statistics conv_with_statistics returned, as the next
  // convolution's `in`.
  BnReluInputVar relu_input_of(BatchNormSaved stats) const { return {weight, bias, std::move(stats), groups}; }
  Var weight, bias;  // gamma, beta [C]; undefined when affine = false
  Tensor running_mean, running_var, num_batches_tracked;
  float eps, momentum;
  int64_t groups = 1;
  bool batch_stats_in_eval = false;

 private:
  Var forward_act(const Var& x, bool relu_after, float slope);
  bool uses_batch_statistics() const { return is_training() || batch_stats_in_eval || !track_; }
  void check_input(const Shape& x) const;  // [N, C] or [N, C, H, W] as the layer's rank, C channels
  int64_t channels_, rank_;
  bool track_;
};

class BatchNorm1d : public BatchNorm {
 public:
  explicit BatchNorm1d(int64_t c, float eps = 1e-5f, float momentum = 0.1f, bool affine = true,
                       bool track_running_stats = true)
      : BatchNorm(c, 2, eps, momentum, affine, track_running_stats) {}
};
class BatchNorm2d : public BatchNorm {
 public:
  explicit BatchNorm2d(int64_t c, float eps = 1e-5f, float momentum = 0.1f, bool affine = true,
                       bool track_running_stats = true)
      : BatchNorm(c, 4, eps, momentum, affine, track_running_stats) {}
};

// Sets `groups` / `batch_stats_in_eval` on every BatchNorm inside `m` (recursively): ACR normalises
// each task separately in training and uses batch statistics at test time (acr.md §3).
void set_bn_groups(Module& m, int64_t groups);
void set_bn_batch_stats_in_eval(Module& m, bool on);
// Every BatchNorm inside `m`, depth first in registration order (the state_dict's order).
std::vector<BatchNorm*> batch_norms(Module& m);

class ReLU : public Module {
 public:
  Var forward(const Var& x) override { return relu(x); }
};
class LeakyReLU : public Module {
 public:
  explicit LeakyReLU(float slope = 0.01f) : slope(slope) {}
  Var forward(const Var& x) override { return leaky_relu(x, slope); }
  float slope;
};
class Sigmoid : public Module {
 public:
  Var forward(const Var& x) override { return sigmoid(x); }
};
class SiLU : public Module {
 public:
  Var forward(const Var& x) override { return silu(x); }
};
class MaxPool2d : public Module {
 public:
  MaxPool2d(int64_t kernel, int64_t stride = -1, int64_t padding = 0, bool ceil_mode = false);
  Var forward(const Var& x) override { return max_pool2d(x, args); }
  Pool2dArgs args;
};
class AvgPool2d : public Module {
 public:
  AvgPool2d(int64_t kernel, int64_t stride = -1, int64_t padding = 0, bool ceil_mode = false,
            bool count_include_pad = true);
  Var forward(const Var& x) override { return avg_pool2d(x, args); }
  Pool2dArgs args;
};
class GlobalAvgPool : public Module {  // [N, C, H, W] -> [N, C]
 public:
  Var forward(const Var& x) override { return global_avg_pool(x); }
};
class Flatten : public Module {  // [N, ...] -> [N, prod(...)]
 public:
  Var forward(const Var& x) override { return flatten(x, 1, -1); }
};

}  // namespace normad::nn
