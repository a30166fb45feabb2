// Deep SVDD, one-class (ntl_dsvdd.md part A): a bias-free network phi maps inputs to R^p, the centre c
// is the mean of an initial forward pass with small coordinates pushed to +-0.1, and training
// minimises the batch mean of d = ||phi(x) - c||^2 (weight decay through Adam). Score = d.
// Networks (A.4): bias-free convs 5x5 (padding 2), affine-free BN (eps 1e-4), leaky ReLU 0.01,
// 2x2 max-pool; MNIST_LeNet (p 32, 7,272 weights), FashionMNIST_LeNet (p 64, 222,096),
// CIFAR10_LeNet (p 128, 520,544); parameter names as in the reference code (conv1, bn2d1, fc1, ...).
// Tested by tests/test_deep_svdd.cpp (weight counts, the centre rule, a synthetic one-class problem).
//
// Shapes: x [N, C, H, W] -> phi [N, p]; c [p].
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nn/layers.h"
#include "tensor/random.h"

namespace normad::models {

// "mnist" (1x28x28), "fmnist" (1x28x28), "cifar10" (3x32x32).
std::shared_ptr<nn::Module> lenet(const std::string& name);

// Deep SVDD for feature vectors: bias-free [Linear, BN1d (affine-free, eps 1e-4), leaky ReLU 0.01]
// per hidden width, the last width a plain bias-free Linear (A.3). normad's default widths 64, 32
// follow PyOD's DeepSVDD (the spec names no vector network).
std::shared_ptr<nn::Sequential> svdd_mlp(int64_t in, const std::vector<int64_t>& widths = {64, 32});

// c = mean of phi(x) over `x` (eval mode, no graph), then |c_j| < 0.1 -> sign(c_j) * 0.1 (0 stays 0).
Tensor svdd_center(nn::Module& net, const Tensor& x, int64_t batch = 1024, float eps = 0.1f);

struct SvddTrainConfig {
  int64_t epochs = 150, batch = 200;
  float lr = 1e-4f, weight_decay = 0.5e-6f;
  std::vector<int64_t> milestones{50};  // lr x 0.1 after these epochs (A.7, the intended schedule)
};
using SvddProgress = std::function<void(int64_t epoch, int64_t epochs, double loss)>;

class DeepSvdd {
 public:
  explicit DeepSvdd(std::shared_ptr<nn::Module> net) : net(std::move(net)) {}
  // Sets c from `x` (svdd_center) and trains on it; returns the mean loss of each epoch.
  std::vector<double> fit(const Tensor& x, const SvddTrainConfig& cfg, Generator& g,
                          const SvddProgress& progress = {});
  std::vector<double> score(const Tensor& x, int64_t batch = 1024);  // d per row, eval mode

  std::shared_ptr<nn::Module> net;
  Tensor c;
};

}  // namespace normad::models
