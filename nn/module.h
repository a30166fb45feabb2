// normad nn::Module: named parameters, buffers and child modules, with PyTorch's state_dict naming
// ("layer1.0.conv1.weight", "bn.running_mean") so torchvision weights load by name.
// Math: none; bookkeeping. Tested by tests/test_nn.cpp (names, train/eval, Sequential).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/ops.h"

namespace normad::nn {

class Module {
 public:
  virtual ~Module() = default;
  virtual Var forward(const Var& x) = 0;
  Var operator()(const Var& x) { return forward(x); }

  // Recursive, in registration order, with dotted names.
  std::vector<std::pair<std::string, Var>> named_parameters() const;
  std::vector<Var> parameters() const;
  std::vector<std::pair<std::string, Tensor>> named_buffers() const;  // tensors share storage
  // Parameters and buffers together (like torch's state_dict), values sharing storage.
  std::vector<std::pair<std::string, Tensor>> state_dict() const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const {
    return children_;
  }

  // Moves every parameter, its gradient and every buffer (BN running statistics included) to
  // `dev` in place: their storage moves, so each layer's handles to them follow (torch's .to()).
  void to(Device dev);
  // The device of the first parameter or buffer (CPU for a module with neither): where the model's
  // inputs must be for its forward (callers move a batch with x.to(net.device())).
  Device device() const;
  void train(bool on = true);  // recursive
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();

 protected:
  Var& register_parameter(const std::string& name, Tensor t, bool requires_grad = true);
  Tensor& register_buffer(const std::string& name, Tensor t);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    children_.emplace_back(name, m);
    return m;
  }

 private:
  std::vector<std::pair<std::string, Var>> params_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

using ModulePtr = std::shared_ptr<Module>;

// Children named "0", "1", ... applied in order.
class Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<ModulePtr> layers);
  void push_back(ModulePtr m);
  Var forward(const Var& x) override { return forward_from(x, 0); }
  // layers first .. size() - 1 on x (x the output of layer first - 1)
  Var forward_from(const Var& x, size_t first);
  size_t size() const { return layers_.size(); }
  ModulePtr operator[](size_t i) const { return layers_.at(i); }

 private:
  std::vector<ModulePtr> layers_;
};

}  // namespace normad::nn
