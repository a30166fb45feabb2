// The Omniglot conv net of ACR-DSVDD (acr.md §7.1), used unchanged by FMNIST-ZS (fmnist_zs.md §3):
// 4 x [Conv 3x3 s2 p1 + bias, BN2d(64), ReLU] (28 -> 14 -> 7 -> 4 -> 2), mean over H, W,
// Linear 64 -> 32 + bias, BN1d(32) -> z. Initialisation acr.md §8: conv Xavier-uniform / 0, every
// BN gamma ~ U(0, 1) / beta 0, head weight ~ N(0, 1) / bias 0.
// Tested by tests/test_acr.cpp (parameter count, shapes, grouped = per-task loop, PyTorch golden).
//
// Shapes: x [N, 1, 28, 28] -> z [N, 32].
#pragma once

#include "nn/layers.h"
#include "tensor/random.h"

namespace normad::models {

// The tabular DSVDD MLP (acr.md §7.3): [Linear(-> hidden, bias), BN1d, ReLU] x 3, Linear(-> embed,
// bias), BN1d(embed). Init acr.md §8: Linear and hidden BN PyTorch defaults, final BN gamma ~ U(0, 1).
std::shared_ptr<nn::Sequential> tabular_mlp(int64_t in, Generator& init, int64_t hidden = 128, int64_t embed = 32);

class OmniglotNet : public nn::Module {
 public:
  OmniglotNet(Generator& init, int64_t channels = 64, int64_t embed = 32);
  Var forward(const Var& x) override;

 private:
  std::vector<std::shared_ptr<nn::Conv2d>> convs_;
  std::vector<std::shared_ptr<nn::BatchNorm>> bns_;  // 4 BN2d then the final BN1d
  std::shared_ptr<nn::Linear> head_;
};

}  // namespace normad::models
