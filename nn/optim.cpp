// normad optimisers (SGD, Adam) and schedules (StepLR, MultiStepLR) with PyTorch's update rules
// (see nn/optim.h). Updates write float32 back in place; Adam's bias corrections run in double.
// zero_grad() sets grads to none (torch's set_to_none=True, the default since torch 2.0): a
// parameter that receives no gradient in an iteration is not stepped.
// Tested by tests/test_nn.cpp (hand-computed steps) and tests/test_parity.cpp (three Adam / SGD
// steps vs torch.optim).
#include "nn/optim.h"

#include <algorithm>
#include <cmath>

namespace normad::nn {

void Optimizer::zero_grad() {
  for (auto& p : params_) p.zero_grad();
}

SGD::SGD(std::vector<Var> params, float lr, float momentum, float weight_decay)
    : Optimizer(std::move(params), lr), momentum(momentum), weight_decay(weight_decay) {
  velocity_.resize(params_.size());
}

void SGD::step() {
  for (size_t i = 0; i < params_.size(); ++i) {
    Var& p = params_[i];
    if (!p.grad().defined()) continue;
    float* w = p.data().data();
    const float* g = p.grad().data();
    const int64_t n = p.numel();
    // torch.optim.SGD: the first step sets the buffer to the gradient itself.
    const bool first = !velocity_[i].defined();
    if (momentum != 0.f && first) velocity_[i] = Tensor(p.shape());
    for (int64_t k = 0; k < n; ++k) {
      float d = g[k] + weight_decay * w[k];
      if (momentum != 0.f) {
        float& v = velocity_[i].data()[k];
        v = first ? d : momentum * v + d;
        d = v;
      }
      w[k] -= lr * d;
    }
  }
}

Adam::Adam(std::vector<Var> params, float lr, float beta1, float beta2, float eps,
           float weight_decay)
    : Optimizer(std::move(params), lr), beta1(beta1), beta2(beta2), eps(eps),
      weight_decay(weight_decay) {
  m_.resize(params_.size());
  v_.resize(params_.size());
  steps_.assign(params_.size(), 0);
}

void Adam::step() {
  // torch keeps (1 - beta) as the Python double, rounded to float only in the update.
  const float one_m_b1 = static_cast<float>(1.0 - double(beta1));
  const float one_m_b2 = static_cast<float>(1.0 - double(beta2));
  for (size_t i = 0; i < params_.size(); ++i) {
    Var& p = params_[i];
    if (!p.grad().defined()) continue;
    const int64_t t = ++steps_[i];
    const double bc1 = 1.0 - std::pow(double(beta1), double(t));
    const double bc2 = 1.0 - std::pow(double(beta2), double(t));
    if (!m_[i].defined()) m_[i] = Tensor(p.shape()), v_[i] = Tensor(p.shape());
    float* w = p.data().data();
    const float* g = p.grad().data();
    float* m = m_[i].data();
    float* v = v_[i].data();
    for (int64_t k = 0; k < p.numel(); ++k) {
      const float gk = g[k] + weight_decay * w[k];  // L2 penalty added to the gradient
      m[k] = beta1 * m[k] + one_m_b1 * gk;
      v[k] = beta2 * v[k] + one_m_b2 * gk * gk;
      // torch: denom = sqrt(v) / sqrt(bc2) + eps; step = lr / bc1.
      const double denom = std::sqrt(double(v[k])) / std::sqrt(bc2) + eps;
      w[k] = static_cast<float>(w[k] - lr / bc1 * m[k] / denom);
    }
  }
}

StepLR::StepLR(Optimizer& opt, int64_t step_size, float gamma)
    : opt_(opt), step_size_(step_size), gamma_(gamma), base_lr_(opt.lr) {
  check(step_size > 0, "StepLR", "step_size must be positive, got " + std::to_string(step_size));
}

void StepLR::step() {
  ++epoch_;
  opt_.lr = static_cast<float>(base_lr_ * std::pow(double(gamma_), double(epoch_ / step_size_)));
}

MultiStepLR::MultiStepLR(Optimizer& opt, std::vector<int64_t> milestones, float gamma)
    : opt_(opt), milestones_(std::move(milestones)), gamma_(gamma), base_lr_(opt.lr) {
  std::sort(milestones_.begin(), milestones_.end());
}

void MultiStepLR::step() {
  ++epoch_;
  const auto passed = std::upper_bound(milestones_.begin(), milestones_.end(), epoch_) -
                      milestones_.begin();
  opt_.lr = static_cast<float>(base_lr_ * std::pow(double(gamma_), double(passed)));
}

void check_loss(double loss, const std::string& model, const char* unit, int64_t index) {
  if (std::isfinite(loss)) return;
  throw Error(model + " training diverged: the loss is " + (std::isnan(loss) ? "NaN" : "infinite") + " in " + unit +
              " " + std::to_string(index) +
              " (try a lower --lr, or look for extreme values in the input; no model was written)");
}

}  // namespace normad::nn
