// normad optimisers and learning-rate schedules with PyTorch semantics.
// Math: SGD v = mu v + (g + wd p); p -= lr v.  Adam m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2,
// p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps), with g += wd p first (torch.optim.Adam).
// Tested by tests/test_nn.cpp (hand-computed steps) and tests/test_parity.cpp (three Adam steps).
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "autograd/var.h"

namespace normad::nn {

class Optimizer {
 public:
  explicit Optimizer(std::vector<Var> params, float lr) : params_(std::move(params)), lr(lr) {}
  virtual ~Optimizer() = default;
  virtual void step() = 0;  // parameters without a grad are skipped
  void zero_grad();

 protected:
  std::vector<Var> params_;

 public:
  float lr;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<Var> params, float lr, float momentum = 0.f, float weight_decay = 0.f);
  void step() override;
  float momentum, weight_decay;

 private:
  std::vector<Tensor> velocity_;
};

class Adam : public Optimizer {
 public:
  Adam(std::vector<Var> params, float lr = 1e-3f, float beta1 = 0.9f, float beta2 = 0.999f,
       float eps = 1e-8f, float weight_decay = 0.f);
  void step() override;
  float beta1, beta2, eps, weight_decay;

  // The state a checkpoint keeps (nn/checkpoint.h): per parameter i its moments "m.<i>", "v.<i>"
  // (absent until its first step) and its step count. set_state checks the shapes.
  std::vector<std::pair<std::string, Tensor>> state_tensors() const;
  const std::vector<int64_t>& step_counts() const { return steps_; }
  void set_state(const std::map<std::string, Tensor>& tensors, const std::vector<int64_t>& steps);

 private:
  std::vector<Tensor> m_, v_;
  std::vector<int64_t> steps_;  // per parameter, counted only when it has a grad (torch.optim)
};

// lr = base_lr * gamma^(epoch / step_size); step() advances one epoch (or iteration).
class StepLR {
 public:
  StepLR(Optimizer& opt, int64_t step_size, float gamma = 0.1f);
  void step();
  int64_t last_epoch() const { return epoch_; }
  void set_last_epoch(int64_t epoch);  // as after `epoch` calls of step() (resuming a checkpoint)

 private:
  Optimizer& opt_;
  int64_t step_size_;
  float gamma_, base_lr_;
  int64_t epoch_ = 0;
};

// lr = base_lr * gamma^(number of milestones <= epoch).
class MultiStepLR {
 public:
  MultiStepLR(Optimizer& opt, std::vector<int64_t> milestones, float gamma = 0.1f);
  void step();
  void set_last_epoch(int64_t epoch);  // as after `epoch` calls of step() (resuming a checkpoint)

 private:
  Optimizer& opt_;
  std::vector<int64_t> milestones_;
  float gamma_, base_lr_;
  int64_t epoch_ = 0;
};

// A training loss that is NaN or infinite is an Error, never a quiet model: names the model, the
// epoch (or iteration) and what to try. `unit` is "epoch" or "iteration", `index` 1-based.
void check_loss(double loss, const std::string& model, const char* unit, int64_t index);

}  // namespace normad::nn
