// normad differentiable batch norm and distance ops (see autograd/ops.h).
// Math: training-mode BN backpropagates through the batch mean and variance (tensor/batchnorm.cpp);
// eval mode is y = x s + t with per-channel s = gamma / sqrt(rv + eps), so dx = g s; batch norm +
// leaky ReLU y = relu_slope(z) backpropagates dz = z > 0 ? g : slope g through the batch norm;
// pairwise D_ij = |a_i - b_j|^2: dA = 2 (rowsum(G) a - G b), dB = 2 (colsum(G) b - G^T a) with G
// masked where the clamp at 0 was active; normalize y = x / |x|: dx = (g - y (g.y)) / |x|.
// Tested by tests/test_grad.cpp, tests/test_batchnorm.cpp and tests/test_parity.cpp.
#include <cmath>

#include "autograd/ops.h"

namespace normad {

namespace {
// [C] -> a shape that broadcasts over x's channel dim ([1, C] or [1, C, 1, 1]).
Shape channel_shape(const Tensor& x) {
  Shape s(x.dim(), 1);
  s[1] = x.size(1);
  return s;
}
std::vector<int64_t> non_channel_dims(const Tensor& x) {
  std::vector<int64_t> d{0};
  for (int64_t i = 2; i < x.dim(); ++i) d.push_back(i);
  return d;
}
// x, then gamma and beta where defined: a batch norm's parents.
std::vector<Var> bn_parents(const Var& x, const Var& gamma, const Var& beta) {
  std::vector<Var> parents{x};
  if (gamma.defined()) parents.push_back(gamma);
  if (beta.defined()) parents.push_back(beta);
  return parents;
}

// Routes a training-mode batch norm's gradients to its parents (bn_parents' order); `backward`
// returns dx and fills dgamma / dbeta where they are wanted (non-null).
template <class Backward>
void push_bn_grads(Node& self, bool has_g, bool has_b, Backward backward) {
  Node* pg = has_g ? self.parents[1].get() : nullptr;
  Node* pb = has_b ? self.parents[has_g ? 2 : 1].get() : nullptr;
  const bool want_g = pg && pg->requires_grad, want_b = pb && pb->requires_grad;
  Tensor dg, db;
  Tensor dx = backward(want_g ? &dg : nullptr, want_b ? &db : nullptr);
  if (self.parents[0]->requires_grad) self.parents[0]->accumulate(dx);
  if (want_g) pg->accumulate(dg.reshape(pg->shape()));
  if (want_b) pb->accumulate(db.reshape(pb->shape()));
}
}  // namespace

Var batch_norm_train(const Var& x, const Var& gamma, const Var& beta, float eps, int64_t groups,
                     Tensor* running_mean, Tensor* running_var, float momentum) {
  BatchNormSaved saved;
  Tensor g = gamma.defined() ? gamma.data() : Tensor();
  Tensor b = beta.defined() ? beta.data() : Tensor();
  Tensor y = batch_norm_train(x.data(), g, b, eps, groups, &saved, running_mean, running_var,
                              momentum);
  Tensor xd = x.data();
  const bool has_g = gamma.defined(), has_b = beta.defined();
  return Var::make(y, bn_parents(x, gamma, beta), "batch_norm", [xd, g, saved, groups, has_g, has_b](Node& self) {
    push_bn_grads(self, has_g, has_b, [&](Tensor* dg, Tensor* db) {
      return batch_norm_backward(self.grad, xd, g, saved, groups, dg, db);
    });
  });
}

Var batch_norm_relu_train(const Var& x, const Var& gamma, const Var& beta, float eps,
                          int64_t groups, float slope, Tensor* running_mean, Tensor* running_var,
                          float momentum) {
  BatchNormSaved saved;
  Tensor g = gamma.defined() ? gamma.data() : Tensor();
  Tensor b = beta.defined() ? beta.data() : Tensor();
  Tensor y = batch_norm_relu_train(x.data(), g, b, eps, groups, slope, &saved, running_mean,
                                   running_var, momentum);
  Tensor xd = x.data();
  const bool has_g = gamma.defined(), has_b = beta.defined();
  const char* name = slope == 0.f ? "batch_norm_relu" : "batch_norm_leaky_relu";
  return Var::make(y, bn_parents(x, gamma, beta), name, [xd, g, b, saved, groups, slope, has_g, has_b](Node& self) {
    push_bn_grads(self, has_g, has_b, [&](Tensor* dg, Tensor* db) {
      return batch_norm_relu_backward(self.grad, xd, g, b, saved, groups, slope, dg, db);
    });
  });
}

Var batch_norm_eval(const Var& x, const Var& gamma, const Var& beta, const Tensor& running_mean,
                    const Tensor& running_var, float eps) {
  Tensor g = gamma.defined() ? gamma.data() : Tensor();
  Tensor b = beta.defined() ? beta.data() : Tensor();
  Tensor y = batch_norm_eval(x.data(), g, b, running_mean, running_var, eps);
  std::vector<Var> parents = bn_parents(x, gamma, beta);
  // invstd of the running variance, shaped to broadcast over x.
  Tensor inv = pow(add_scalar(running_var, eps), -0.5f).reshape(channel_shape(x.data()));
  Tensor rm = running_mean.reshape(channel_shape(x.data()));
  Tensor xd = x.data();
  const bool has_g = gamma.defined(), has_b = beta.defined();
  return Var::make(y, parents, "batch_norm_eval", [xd, g, inv, rm, has_g, has_b](Node& self) {
    const Tensor& G = self.grad;
    Tensor scale = has_g ? mul(inv, g.reshape(inv.shape())) : inv;
    if (self.parents[0]->requires_grad) self.parents[0]->accumulate(mul(G, scale));
    auto dims = non_channel_dims(xd);
    if (has_g && self.parents[1]->requires_grad) {
      Tensor xhat = mul(sub(xd, rm), inv);
      self.parents[1]->accumulate(sum(mul(G, xhat), dims).reshape(self.parents[1]->shape()));
    }
    Node* pb = has_b ? self.parents[has_g ? 2 : 1].get() : nullptr;
    if (pb && pb->requires_grad) pb->accumulate(sum(G, dims).reshape(pb->shape()));
  });
}

Var pairwise_sqdist(const Var& a, const Var& b) {
  Tensor A = a.data(), B = b.data();
  Tensor D = pairwise_sqdist(A, B);
  return Var::make(D, {a, b}, "pairwise_sqdist", [A, B, D](Node& self) {
    // The gradient is masked where the clamp at 0 was active (D == 0), as clamp's would be.
    Tensor dA, dB;
    const bool want_a = self.parents[0]->requires_grad, want_b = self.parents[1]->requires_grad;
    pairwise_sqdist_backward(self.grad, A, B, D, want_a ? &dA : nullptr, want_b ? &dB : nullptr);
    if (want_a) self.parents[0]->accumulate(dA);
    if (want_b) self.parents[1]->accumulate(dB);
  });
}

Var l2_normalize(const Var& a, float eps) {
  Tensor x = a.data();
  Tensor y = l2_normalize(x, eps);
  return Var::make(y, {a}, "l2_normalize", [x, y, eps](Node& self) {
    self.parents[0]->accumulate(l2_normalize_backward(self.grad, x, y, eps));
  });
}

}  // namespace normad
