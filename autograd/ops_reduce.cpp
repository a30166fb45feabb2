// normad differentiable reductions and matrix products (see autograd/ops.h).
// Math: d sum = g broadcast back; d mean = g / count; d max = g at the argmax; d logsumexp =
// g softmax(x); C = op(A) op(B): dA = G op(B)^T (transposed back when A was read transposed);
// y = x w^T + b: dx = G w, dw = G^T x, db = column sums of G.
// Tested by tests/test_grad.cpp (finite differences) and tests/test_parity.cpp.
#include <algorithm>

#include "autograd/ops.h"

namespace normad {

namespace {
// The shape of `s` with `dims` (empty = all) kept as size 1.
Shape keep_shape(const Shape& s, std::vector<int64_t> dims) {
  const int64_t r = static_cast<int64_t>(s.size());
  if (dims.empty())
    for (int64_t d = 0; d < r; ++d) dims.push_back(d);
  Shape k = s;
  for (int64_t d : dims) k[wrap_dim(d, r, "reduce")] = 1;
  return k;
}
}  // namespace

Var sum(const Var& a, std::vector<int64_t> dims, bool keepdim) {
  Shape in = a.shape(), kept = keep_shape(in, dims);
  return Var::make(sum(a.data(), dims, keepdim), {a}, "sum", [in, kept](Node& self) {
    self.parents[0]->accumulate(expand_to(self.grad.reshape(kept), in));
  });
}

Var mean(const Var& a, std::vector<int64_t> dims, bool keepdim) {
  Shape in = a.shape(), kept = keep_shape(in, dims);
  const float inv = static_cast<float>(shape_numel(kept)) / static_cast<float>(shape_numel(in));
  return Var::make(mean(a.data(), dims, keepdim), {a}, "mean", [in, kept, inv](Node& self) {
    self.parents[0]->accumulate(expand_to(mul_scalar(self.grad, inv).reshape(kept), in));
  });
}

Var max(const Var& a, int64_t dim, bool keepdim) {
  Tensor idx;
  dim = wrap_dim(dim, a.dim(), "max");
  Tensor y = max(a.data(), dim, keepdim, &idx);
  Shape in = a.shape();
  return Var::make(y, {a}, "max", [in, idx, dim](Node& self) {
    // Each output gradient goes to the position of its maximum.
    self.parents[0]->accumulate(max_backward(self.grad, idx, in, dim));
  });
}

Var logsumexp(const Var& a, int64_t dim, bool keepdim) {
  dim = wrap_dim(dim, a.dim(), "logsumexp");
  Tensor x = a.data();
  Tensor y = logsumexp(x, dim, true);  // kept as size 1 so it broadcasts against x
  Shape kept = y.shape();
  Shape dropped = kept;
  dropped.erase(dropped.begin() + dim);
  Tensor out = keepdim ? y : y.reshape(dropped);
  return Var::make(out, {a}, "logsumexp", [x, y, kept](Node& self) {
    // d/dx logsumexp = softmax(x) = exp(x - lse).
    self.parents[0]->accumulate(mul(exp(sub(x, y)), self.grad.reshape(kept)));
  });
}

// Each operand is kept only for the other's gradient: a Linear on data that needs no gradient
// keeps the data (for dW), not a second reference to W; which operands need one is fixed here.
Var matmul(const Var& a, const Var& b, bool ta, bool tb) {
  const bool da = a.requires_grad(), db = b.requires_grad();
  Tensor A = db ? a.data() : Tensor(), B = da ? b.data() : Tensor();
  return Var::make(matmul(a.data(), b.data(), ta, tb), {a, b}, "matmul", [A, B, ta, tb, da, db](Node& self) {
    const Tensor& G = self.grad;
    if (da && self.parents[0]->requires_grad)
      self.parents[0]->accumulate(ta ? matmul(B, G, tb, true) : matmul(G, B, false, !tb));
    if (db && self.parents[1]->requires_grad)
      self.parents[1]->accumulate(tb ? matmul(G, A, true, ta) : matmul(A, G, !ta, false));
  });
}

// As matmul's: x kept only for w's gradient, w only for x's.
Var linear(const Var& x, const Var& w, const Var& b) {
  const bool dx = x.requires_grad(), dw = w.requires_grad();
  Tensor X = dw ? x.data() : Tensor(), W = dx ? w.data() : Tensor();
  return Var::make(linear(x.data(), w.data(), b.data()), {x, w, b}, "linear", [X, W, dx, dw](Node& self) {
    const Tensor& G = self.grad;  // [N, F]
    if (dx && self.parents[0]->requires_grad) self.parents[0]->accumulate(matmul(G, W));
    if (dw && self.parents[1]->requires_grad) self.parents[1]->accumulate(matmul(G, X, true, false));
    if (self.parents[2]->requires_grad) self.parents[2]->accumulate(sum(G, {0}));
  });
}

Var bmm(const Var& a, const Var& b, bool ta, bool tb) {
  const bool da = a.requires_grad(), db = b.requires_grad();
  Tensor A = db ? a.data() : Tensor(), B = da ? b.data() : Tensor();
  const Shape a_shape = a.shape(), b_shape = b.shape();
  return Var::make(bmm(a.data(), b.data(), ta, tb), {a, b}, "bmm",
                   [A, B, a_shape, b_shape, ta, tb, da, db](Node& self) {
    const Tensor& G = self.grad;
    // A batch of 1 that was broadcast gets its gradient summed over the batch.
    if (da && self.parents[0]->requires_grad)
      self.parents[0]->accumulate(sum_to(ta ? bmm(B, G, tb, true) : bmm(G, B, false, !tb), a_shape));
    if (db && self.parents[1]->requires_grad)
      self.parents[1]->accumulate(sum_to(tb ? bmm(G, A, true, ta) : bmm(A, G, !ta, false), b_shape));
  });
}

}  // namespace normad
