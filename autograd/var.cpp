// normad autograd engine: graph nodes, the topological backward pass and the no-grad scope
// (see autograd/var.h).
// Math: chain rule; a node's grad is the sum over its consumers of their pushed gradients.
// Tested by tests/test_autograd.cpp.
#include "autograd/var.h"

#include <unordered_set>

namespace normad {

namespace {
thread_local bool g_grad_enabled = true;
}

bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : prev_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = prev_; }

void Node::accumulate(const Tensor& g) {
  if (g.shape() != shape())
    throw Error(std::string("autograd: gradient ") + shape_str(g.shape()) + " for " + op +
                " output " + shape_str(shape()));
  // Never in place: g may share storage with another node's grad, so a sum is a new tensor.
  grad = grad.defined() ? add(grad, g) : g;
}

void Node::release_value() {
  if (!data.defined()) return;
  released_shape = data.shape();
  data = Tensor();
}

Var::Var(Tensor data, bool requires_grad) : node_(std::make_shared<Node>()) {
  node_->data = std::move(data);
  node_->requires_grad = requires_grad;
  acquire();
}

Var Var::make(Tensor data, std::vector<Var> parents, const char* op,
              std::function<void(Node& self)> backward_fn) {
  Var out(std::move(data));
  out.node_->op = op;
  if (!g_grad_enabled) return out;
  bool any = false;
  for (auto& p : parents) any = any || p.requires_grad();
  if (!any) return out;
  out.node_->requires_grad = true;
  for (auto& p : parents) out.node_->parents.push_back(p.node_);
  out.node_->backward_fn = std::move(backward_fn);
  return out;
}

void Var::backward() {
  if (numel() != 1)
    throw Error("backward: needs a scalar, got shape " + shape_str(shape()) +
                " (pass a seed gradient)");
  backward(Tensor::ones(shape(), data().device()));  // the seed lives where the value does
}

void Var::backward(const Tensor& seed) {
  if (!requires_grad()) throw Error("backward: the value does not require grad");
  // Reverse topological order by an iterative depth-first search (deep graphs do not overflow).
  // `order` owns its nodes: freeing the graph below must not free a node still to be visited.
  std::vector<std::shared_ptr<Node>> order;
  std::unordered_set<Node*> seen;
  std::vector<std::pair<std::shared_ptr<Node>, size_t>> stack{{node_, 0}};
  seen.insert(node_.get());
  while (!stack.empty()) {
    auto& [n, i] = stack.back();
    if (i < n->parents.size()) {
      std::shared_ptr<Node> p = n->parents[i++];
      if (p->requires_grad && seen.insert(p.get()).second) stack.emplace_back(std::move(p), 0);
    } else {
      order.push_back(n);
      stack.pop_back();
    }
  }
  node_->accumulate(seed);
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* n = it->get();
    if (n->freed && n->grad.defined())
      throw Error(std::string("backward: the graph behind this ") + n->op +
                  " result was freed by an earlier backward (rebuild it; retain_graph is not "
                  "supported)");
    if (!n->backward_fn || !n->grad.defined()) continue;
    n->backward_fn(*n);
    // Like PyTorch without retain_graph: free the graph and the grads of non-leaf nodes.
    n->backward_fn = nullptr;
    n->parents.clear();
    n->grad = Tensor();
    n->freed = true;
  }
}

}  // namespace normad
