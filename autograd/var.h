// normad autograd: reverse-mode automatic differentiation over tensor ops (micrograd's design,
// with tensors instead of scalars).
// Math: for y = f(x1..xk), backward adds dL/dxi = (dy/dxi)^T dL/dy into each xi.grad; backward()
// walks the graph in reverse topological order from a scalar, seeding dL/dL = 1.
// Tested by tests/test_autograd.cpp (mechanism) and tests/test_grad.cpp (every op against finite
// differences).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensor/ops.h"
#include "tensor/tensor.h"

namespace normad {

// One node of the graph: a value, its gradient, the nodes it was computed from and the local chain
// rule that pushes this node's grad into theirs.
//
// Memory (PyTorch's rule): the graph keeps a node for its gradient, not for its value. When the
// last Var referring to a node goes, its value is released (data becomes undefined, its shape
// stays); what a backward function needs it captured itself when the op ran (a Tensor shares
// storage). So an intermediate result nobody saved (a Linear's product before the bias, a batch
// norm's output that only a ReLU read) is freed during the forward pass instead of living until
// the graph goes. Backward functions therefore never read a node's data, only its shape().
struct Node {
  Tensor data;                                  // the value; undefined once no Var refers to it
  Tensor grad;                                  // undefined until something flows into it
  bool requires_grad = false;
  std::vector<std::shared_ptr<Node>> parents;
  std::function<void(Node& self)> backward_fn;  // reads self.grad, accumulates into parents
  const char* op = "leaf";
  bool freed = false;  // its backward ran and released the graph behind it
  std::atomic<int32_t> handles{0};  // Vars referring to this node
  Shape released_shape;             // the value's shape after it was released

  const Shape& shape() const { return data.defined() ? data.shape() : released_shape; }
  void accumulate(const Tensor& g);  // grad += g (allocates on first use)
  void release_value();              // the last Var went: drop the value, keep its shape
};

// A handle to a Node; copies share the node (like a torch.Tensor).
class Var {
 public:
  Var() = default;
  explicit Var(Tensor data, bool requires_grad = false);
  // Copies count as handles of the node (Node::handles); the last one releases its value.
  Var(const Var& other) : node_(other.node_) { acquire(); }
  Var(Var&& other) noexcept : node_(std::move(other.node_)) {}
  Var& operator=(const Var& other) {
    Var copy(other);
    std::swap(node_, copy.node_);
    return *this;
  }
  Var& operator=(Var&& other) noexcept {
    if (this != &other) {
      drop();  // `z = f(z)`: the old z's value goes at the assignment unless the graph kept it
      node_ = std::move(other.node_);
    }
    return *this;
  }
  ~Var() { drop(); }

  bool defined() const { return node_ != nullptr; }
  const Tensor& data() const { return node_->data; }
  Tensor& data() { return node_->data; }
  const Tensor& grad() const { return node_->grad; }
  bool requires_grad() const { return node_ && node_->requires_grad; }
  void set_requires_grad(bool on) { node_->requires_grad = on; }
  void zero_grad() { node_->grad = Tensor(); }
  const char* op() const { return node_->op; }

  const Shape& shape() const { return node_->data.shape(); }  // a Var's node always has its value
  int64_t dim() const { return node_->data.dim(); }
  int64_t size(int64_t d) const { return node_->data.size(d); }
  int64_t numel() const { return node_->data.numel(); }
  float item() const { return node_->data.item(); }

  // Backpropagates from this scalar (seed 1) or from a seed gradient shaped like data().
  void backward();
  void backward(const Tensor& seed);
  // Same data, no history, requires_grad false.
  Var detach() const { return Var(node_->data); }

  const std::shared_ptr<Node>& node() const { return node_; }

  // Builds a result node: requires_grad if grad mode is on and any parent requires it; the
  // backward function is kept only then.
  static Var make(Tensor data, std::vector<Var> parents, const char* op,
                  std::function<void(Node& self)> backward_fn);

 private:
  void acquire() {
    if (node_) node_->handles.fetch_add(1, std::memory_order_relaxed);
  }
  void drop() {
    if (node_ && node_->handles.fetch_sub(1, std::memory_order_acq_rel) == 1) node_->release_value();
  }
  std::shared_ptr<Node> node_;
};

// While alive, new results record no history (torch.no_grad()).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};
bool grad_enabled();

}  // namespace normad
