// normad optimisers (SGD, Adam) and schedules (StepLR, MultiStepLR) with PyTorch's update rules
// (see nn/optim.h). The updates themselves are the tensor ops sgd_step and adam_step_multi
// (tensor/ops.h), so they run on the parameters' device; Adam's bias corrections run in double.
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

// Optimiser state lives on the parameter's device: made there on first use, and moved with it if
// the module moved since (Module::to).
static void keep_on(Tensor& state, const Var& p) {
  if (state.defined() && state.device() != p.data().device()) state.move_to(p.data().device());
}

void SGD::step() {
  for (size_t i = 0; i < params_.size(); ++i) {
    Var& p = params_[i];
    if (!p.grad().defined()) continue;
    // torch.optim.SGD: the first step sets the buffer to the gradient itself.
    const bool first = !velocity_[i].defined();
    if (momentum != 0.f && first) velocity_[i] = Tensor::zeros(p.shape(), p.data().device());
    keep_on(velocity_[i], p);
    sgd_step(p.data(), p.grad(), velocity_[i], SgdParams{lr, momentum, weight_decay, first});
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

// Every parameter with a grad in one fused update (adam_step_multi: one kernel launch on a GPU),
// each with its own step count.
void Adam::step() {
  std::vector<AdamSlot> slots;
  slots.reserve(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    Var& p = params_[i];
    if (!p.grad().defined()) continue;
    const int64_t t = ++steps_[i];
    if (!m_[i].defined()) {
      m_[i] = Tensor::zeros(p.shape(), p.data().device());
      v_[i] = Tensor::zeros(p.shape(), p.data().device());
    }
    keep_on(m_[i], p);
    keep_on(v_[i], p);
    slots.push_back(AdamSlot{&p.data(), &p.grad(), &m_[i], &v_[i], t});
  }
  // p.step is unused: each slot carries its own t
  adam_step_multi(slots, AdamParams{lr, beta1, beta2, eps, weight_decay, 1});
}

StepLR::StepLR(Optimizer& opt, int64_t step_size, float gamma)
    : opt_(opt), step_size_(step_size), gamma_(gamma), base_lr_(opt.lr) {
  check(step_size > 0, "StepLR", "step_size must be positive, got " + std::to_string(step_size));
}

void StepLR::step() { set_last_epoch(epoch_ + 1); }

void StepLR::set_last_epoch(int64_t epoch) {
  epoch_ = epoch;
  opt_.lr = static_cast<float>(base_lr_ * std::pow(double(gamma_), double(epoch_ / step_size_)));
}

std::vector<std::pair<std::string, Tensor>> Adam::state_tensors() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!m_[i].defined()) continue;
    out.emplace_back("m." + std::to_string(i), m_[i]);
    out.emplace_back("v." + std::to_string(i), v_[i]);
  }
  return out;
}

void Adam::set_state(const std::map<std::string, Tensor>& tensors, const std::vector<int64_t>& steps) {
  check(steps.size() == params_.size(), "Adam::set_state",
        std::to_string(steps.size()) + " step counts for " + std::to_string(params_.size()) + " parameters");
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto m = tensors.find("m." + std::to_string(i)), v = tensors.find("v." + std::to_string(i));
    check((m == tensors.end()) == (v == tensors.end()) && (m == tensors.end()) == (steps[i] == 0), "Adam::set_state",
          "parameter " + std::to_string(i) + ": moments and step count disagree");
    if (m == tensors.end()) {
      m_[i] = Tensor(), v_[i] = Tensor();
      continue;
    }
    const Shape& shape = params_[i].shape();
    check(m->second.shape() == shape && v->second.shape() == shape, "Adam::set_state",
          "parameter " + std::to_string(i) + ": moments of shape " + shape_str(m->second.shape()) + ", parameter " +
              shape_str(shape));
    m_[i] = m->second.to(params_[i].data().device()).clone();
    v_[i] = v->second.to(params_[i].data().device()).clone();
  }
  steps_ = steps;
}

MultiStepLR::MultiStepLR(Optimizer& opt, std::vector<int64_t> milestones, float gamma)
    : opt_(opt), milestones_(std::move(milestones)), gamma_(gamma), base_lr_(opt.lr) {
  std::sort(milestones_.begin(), milestones_.end());
}

void MultiStepLR::step() { set_last_epoch(epoch_ + 1); }

void MultiStepLR::set_last_epoch(int64_t epoch) {
  epoch_ = epoch;
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
