// Deep SVDD, one-class (ntl_dsvdd.md part A): a bias-free network phi maps inputs to R^p, the centre c
// is the mean of an initial forward pass with small coordinates pushed to +-0.1, and training
// minimises the batch mean of d = ||phi(x) - c||^2 (weight decay through Adam). Score = d.
// Networks (A.4): bias-free convs 5x5 (padding 2), affine-free BN (eps 1e-4), leaky ReLU 0.01,
// 2x2 max-pool; MNIST_LeNet (p 32, 7,272 weights), FashionMNIST_LeNet (p 64, 222,096),
// CIFAR10_LeNet (p 128, 520,544); parameter names as in the reference code (conv1, bn2d1, fc1, ...).
// Autoencoder pretraining (A.5): lenet_decoder(name) mirrors the encoder with nearest upsampling
// and stride-1 transposed convolutions; pretrain_autoencoder minimises the batch mean of the
// per-image sum of squared errors and leaves its weights (and BN running statistics) in the
// encoder, which then is the Deep SVDD network (same parameter names).
// Tested by tests/test_deep_svdd.cpp (weight counts, the centre rule, a synthetic one-class problem,
// pretraining) and tests/test_parity.cpp (the Fashion-MNIST autoencoder's loss and gradients vs torch).
//
// Shapes: x [N, C, H, W] -> phi [N, p]; c [p].
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nn/checkpoint.h"
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
  // Epoch checkpoints (--checkpoint, --resume): the network (and Deep SVDD's centre c), Adam, the
  // shuffling generator and the losses.
  nn::CheckpointPlan checkpoint;
};
using SvddProgress = std::function<void(int64_t epoch, int64_t epochs, double loss)>;

// A.7's autoencoder settings for `name`: MNIST (and Fashion-MNIST) 150 epochs, lr drop after 50,
// weight decay 0.5e-3; CIFAR-10 350 epochs, drop after 250, weight decay 0.5e-6. Batch 200.
SvddTrainConfig ae_defaults(const std::string& name);

// The decoder of lenet(name) (A.5; Deep SAD's FashionMNIST_LeNet_Decoder for "fmnist"): code
// [N, p] -> image [N, C, H, W] in (0, 1). For "cifar10" it begins with the affine-free BN1d of the
// code ("bn1d"), which exists only in the autoencoder.
std::shared_ptr<nn::Module> lenet_decoder(const std::string& name);

// encoder + decoder as submodules "encoder" and "decoder" (Deep SAD's layout of the reference's
// flat names). For "cifar10" all conv and transposed-conv weights are re-drawn Xavier-uniform with
// gain sqrt(2 / (1 + 0.01^2)) (A.5).
class Autoencoder : public nn::Module {
 public:
  Autoencoder(std::shared_ptr<nn::Module> encoder, std::shared_ptr<nn::Module> decoder);
  Var forward(const Var& x) override;  // reconstruction, shaped like x
  std::shared_ptr<nn::Module> encoder, decoder;
};
std::shared_ptr<Autoencoder> lenet_autoencoder(const std::string& name);

// Per image the sum of squared errors over all values, then the batch mean (A.5).
Var reconstruction_loss(const Var& recon, const Var& x);

// Trains `ae` on x (BN in training mode, shuffled batches, Adam with weight decay, MultiStepLR);
// returns the mean loss of each epoch.
std::vector<double> pretrain_autoencoder(Autoencoder& ae, const Tensor& x, const SvddTrainConfig& cfg,
                                         Generator& g, const SvddProgress& progress = {});

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
