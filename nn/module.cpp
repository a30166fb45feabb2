// normad nn::Module bookkeeping and Sequential (see nn/module.h).
// Names are built like PyTorch's state_dict: child name, dot, then the child's own names.
// Sequential runs a BatchNorm followed by a ReLU / LeakyReLU as BatchNorm::forward_relu.
// Tested by tests/test_nn.cpp and tests/test_batchnorm.cpp (the fusion: the same bits).
#include "nn/module.h"

#include <cmath>
#include <typeinfo>

#include "nn/layers.h"

namespace normad::nn {

std::vector<std::pair<std::string, Var>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Var>> out;
  for (auto& [n, p] : params_)
    if (p.defined()) out.emplace_back(n, p);
  for (auto& [cn, c] : children_)
    for (auto& [n, p] : c->named_parameters()) out.emplace_back(cn + "." + n, p);
  return out;
}

std::vector<Var> Module::parameters() const {
  std::vector<Var> out;
  for (auto& [n, p] : named_parameters()) out.push_back(p);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (auto& [n, b] : buffers_)
    if (b.defined()) out.emplace_back(n, b);
  for (auto& [cn, c] : children_)
    for (auto& [n, b] : c->named_buffers()) out.emplace_back(cn + "." + n, b);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::state_dict() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (auto& [n, p] : named_parameters()) out.emplace_back(n, p.data());
  for (auto& nb : named_buffers()) out.push_back(nb);
  return out;
}

void Module::to(Device dev) {
  for (auto& [n, p] : named_parameters()) {
    p.data().move_to(dev);
    if (p.grad().defined()) const_cast<Tensor&>(p.grad()).move_to(dev);
  }
  for (auto& [n, b] : named_buffers()) b.move_to(dev);
}

Device Module::device() const {
  for (auto& [n, p] : named_parameters()) return p.data().device();
  for (auto& [n, b] : named_buffers()) return b.device();
  return Device::CPU;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, c] : children_) c->train(on);
}

void Module::zero_grad() {
  for (auto& p : parameters()) p.zero_grad();
}

Var& Module::register_parameter(const std::string& name, Tensor t, bool requires_grad) {
  params_.emplace_back(name, Var(std::move(t), requires_grad));
  return params_.back().second;
}

Tensor& Module::register_buffer(const std::string& name, Tensor t) {
  buffers_.emplace_back(name, std::move(t));
  return buffers_.back().second;
}

Sequential::Sequential(std::vector<ModulePtr> layers) {
  for (auto& m : layers) push_back(m);
}

void Sequential::push_back(ModulePtr m) {
  register_module(std::to_string(layers_.size()), m);
  layers_.push_back(std::move(m));
}

Var Sequential::forward_from(const Var& x, size_t first) {
  Var h = x;
  for (size_t i = first; i < layers_.size(); ++i) {
    // A batch norm followed by a (leaky) ReLU runs as one fused op: the same values and gradients
    // on the CPU, bit for bit, without the normalised tensor in between (BatchNorm::forward_relu).
    // Exact types only: a subclass may override forward.
    Module* m = layers_[i].get();
    Module* next = i + 1 < layers_.size() ? layers_[i + 1].get() : nullptr;
    auto* bn = dynamic_cast<BatchNorm*>(m);
    const bool bn_exact = bn && (typeid(*m) == typeid(BatchNorm1d) || typeid(*m) == typeid(BatchNorm2d));
    auto* leaky = next && typeid(*next) == typeid(LeakyReLU) ? static_cast<LeakyReLU*>(next) : nullptr;
    if (bn_exact && next && typeid(*next) == typeid(ReLU)) {
      h = bn->forward_relu(h, 0.f), ++i;
    } else if (bn_exact && leaky && std::isfinite(leaky->slope)) {  // the fused op refuses others
      h = bn->forward_relu(h, leaky->slope), ++i;
    } else {
      h = layers_[i]->forward(h);
    }
  }
  return h;
}

}  // namespace normad::nn
