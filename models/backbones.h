// Pretrained ImageNet backbones with torchvision's architecture and state_dict names, for frozen
// feature extraction (gaussian_ad.md §2, acr.md §7.5): resnet18, resnet50, wide_resnet50_2,
// efficientnet_b0, efficientnet_b4. Weights come from scripts/export_torchvision.py.
// Math: ResNet y = relu(F(x) + shortcut(x)) with F = conv-BN-ReLU stacks (torchvision's V1.5
// bottleneck: stride on the 3x3); EfficientNet MBConv y = x + BN(W_p (SE(SiLU(BN(dw(SiLU(BN(W_e x))))))))
// with SE(h) = h * sigmoid(fc2(SiLU(fc1(mean_hw h)))). BN in eval mode uses running statistics.
// Inference only in spirit: stochastic depth and the classifier's dropout are the identity (their
// eval-mode behaviour) in training mode too; the classifier head is there so files load strictly.
// Tested by tests/test_backbones.cpp: every level (and the logits) against torchvision on seeded
// weights (tests/make_backbone_fixtures.py), the fused inference path against the composed autograd
// ops, channel and parameter counts, load errors (non-finite weights included).
//
// Levels (what features() returns):
//   ResNet        0 = after the stem max-pool, 1..4 = layer1..layer4            (5 levels)
//   EfficientNet  0 = stem (features[0]), 1..7 = the MBConv stages, 8 = head conv (9 levels)
// Shapes: x [N, 3, H, W] normalised with ImageNet mean/std; level l -> [N, C_l, H_l, W_l] with
// H_l = ceil(H / stride_l). Example: resnet18, x [8, 3, 224, 224], levels {1, 4} ->
// {[8, 64, 56, 56], [8, 512, 7, 7]}; efficientnet_b4 at 380: level 8 is [N, 1792, 12, 12].
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "nn/layers.h"
#include "nn/safetensors.h"

namespace normad::models {

class Backbone : public nn::Module {
 public:
  const std::string& name() const { return name_; }
  int num_levels() const { return static_cast<int>(channels_.size()); }
  std::vector<int64_t> level_channels() const { return channels_; }  // C_l per level
  int native_size() const { return native_size_; }  // input side the weights were trained at

  // The requested levels' maps (in the order asked; repeats allowed) for x [N, 3, H, W].
  // Puts the module in eval mode, records no autograd history and stops after the deepest
  // requested level. BN runs folded into each convolution's output (the fused inference path).
  // Not for concurrent calls on one instance (it sets the module's mode); threads run inside.
  std::vector<Tensor> features(const Tensor& x, const std::vector<int>& levels);

  // The same levels through the module's current mode and grad mode: with grad enabled (or in
  // training mode) every conv, BN and activation is a separate recorded autograd op, the reference
  // the fused path is tested against and the path a fine-tuning would take.
  std::vector<Var> forward_levels(const Var& x, const std::vector<int>& levels);

  // The classifier: every level, global average pool, fc / classifier.1 -> logits [N, 1000].
  Var forward(const Var& x) override;

 protected:
  Backbone(std::string name, std::vector<int64_t> channels, int native_size)
      : name_(std::move(name)), channels_(std::move(channels)), native_size_(native_size) {}
  // Runs levels 0..last on x; out[l] holds level l where keep[l], undefined otherwise.
  virtual std::vector<Var> run_levels(const Var& x, int last, const std::vector<bool>& keep) = 0;
  virtual Var head(const Var& pooled) = 0;  // [N, C_last] -> logits [N, 1000]

 private:
  int check_levels(const Shape& x, const std::vector<int>& levels) const;  // -> deepest level
  std::string name_;
  std::vector<int64_t> channels_;
  int native_size_;
};

// "resnet18", "resnet50", "wide_resnet50_2", "efficientnet_b0", "efficientnet_b4".
std::vector<std::string> backbone_names();

// The architecture with nn's default initialisation (load weights before use). Leaves the default
// generator as it found it. Throws normad::Error listing the valid names for an unknown one.
std::shared_ptr<Backbone> make_backbone(const std::string& name);

// Loads a torchvision state_dict file strictly by name: a missing, unexpected or wrongly shaped
// tensor, or one holding a NaN or inf, throws a normad::Error naming it (and the file).
// `*.num_batches_tracked` (BN step counters, unused in eval mode) are ignored: accepted when
// present, not required when absent.
nn::LoadReport load_backbone(Backbone& b, const std::string& path);

// Global average pool of each map [N, C_l, H_l, W_l] concatenated -> [N, sum C_l]
// (gaussian_ad.md §4; the same per-level vectors Gaussian-AD fits).
Tensor pool_levels(const std::vector<Tensor>& maps);

}  // namespace normad::models
