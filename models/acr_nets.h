// The networks of ACR-DSVDD (acr.md §7), each ending in a BN1d(32) embedding z:
// - OmniglotNet (§7.1, also FMNIST-ZS): 4 x [Conv 3x3 s2 p1 + bias, BN2d(64), ReLU]
//   (28 -> 14 -> 7 -> 4 -> 2), mean over H, W, Linear 64 -> 32 + bias, BN1d(32).
// - Cnn4 (§7.2, CIFAR-100-C): 4 x [Conv 3x3 s1 p1 + bias, BN2d(128), ReLU, MaxPool 2] (32 -> 2),
//   flatten (C, H, W), the restored Linear 512 -> 32 + bias, BN1d(32).
// - tabular_mlp (§7.3) and feature_svdd (§7.5, frozen WideResNet features): MLPs.
// Initialisation acr.md §8, every draw from the given generator.
// Tested by tests/test_acr.cpp (parameter counts, shapes, init rules, grouped = per-task loop,
// PyTorch golden iteration for the Omniglot net).
//
// Shapes: x [N, 1, 28, 28] (Omniglot) or [N, 3, 32, 32] (CNN4) or [N, D] -> z [N, 32].
#pragma once

#include "nn/layers.h"
#include "tensor/random.h"

namespace normad::models {

// The tabular DSVDD MLP (acr.md §7.3): [Linear(-> hidden, bias), BN1d, ReLU] x 3, Linear(-> embed,
// bias), BN1d(embed). Init acr.md §8: Linear and hidden BN PyTorch defaults, final BN gamma ~ U(0, 1).
std::shared_ptr<nn::Sequential> tabular_mlp(int64_t in, Generator& init, int64_t hidden = 128, int64_t embed = 32);

// FeatureSVDD (acr.md §7.5): [Linear(d -> d/2, bias), BN1d, ReLU] x `halvings` (1024 -> ... -> 32),
// Linear(32 -> embed, bias), BN1d(embed). Init §8: Linear defaults, hidden BN 1 / 0, final BN
// gamma ~ U(0, 1). With in 1024: 702,464 weights (702,496 with c).
std::shared_ptr<nn::Sequential> feature_svdd(int64_t in, Generator& init, int64_t halvings = 5, int64_t embed = 32);

class Cnn4 : public nn::Module {
 public:
  // §8: conv Xavier-uniform / 0, hidden and final BN gamma ~ U(0, 1) / 0, head Xavier-uniform / 0.
  Cnn4(Generator& init, int64_t channels = 128, int64_t embed = 32);
  Var forward(const Var& x) override;  // [N, 3, 32, 32] -> [N, embed]

 private:
  std::vector<std::shared_ptr<nn::Conv2d>> convs_;
  std::vector<std::shared_ptr<nn::BatchNorm>> bns_;  // 4 BN2d then the final BN1d
  std::shared_ptr<nn::Linear> head_;
};

class OmniglotNet : public nn::Module {
 public:
  OmniglotNet(Generator& init, int64_t channels = 64, int64_t embed = 32);
  Var forward(const Var& x) override;
  // Each BN + ReLU between convolutions applied by the next convolution as it reads its input
  // (see forward); false: layer by layer (the same values; tests compare the two).
  bool fuse_batch_norms = true;

 private:
  std::vector<std::shared_ptr<nn::Conv2d>> convs_;
  std::vector<std::shared_ptr<nn::BatchNorm>> bns_;  // 4 BN2d then the final BN1d
  std::shared_ptr<nn::Linear> head_;
};

}  // namespace normad::models
