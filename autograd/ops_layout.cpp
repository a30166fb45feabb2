// normad differentiable layout ops (see autograd/ops.h): each backward undoes its forward's
// data movement.
// Math: d reshape = reshape back; d permute = inverse permute; d concat = slices; d slice = zero
// tensor with g added into the slice; d index_select = rows added back (repeats accumulate).
// Tested by tests/test_grad.cpp (finite differences).
#include "autograd/ops.h"

namespace normad {

Var reshape(const Var& a, Shape shape) {
  Shape in = a.shape();
  return Var::make(a.data().reshape(std::move(shape)), {a}, "reshape",
                   [in](Node& self) { self.parents[0]->accumulate(self.grad.reshape(in)); });
}

Var permute(const Var& a, const std::vector<int64_t>& perm) {
  Tensor y = permute(a.data(), perm);  // validates perm first
  std::vector<int64_t> inv(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) inv[wrap_dim(perm[i], a.dim(), "permute")] = int64_t(i);
  return Var::make(y, {a}, "permute",
                   [inv](Node& self) { self.parents[0]->accumulate(permute(self.grad, inv)); });
}

Var transpose(const Var& a, int64_t d0, int64_t d1) {
  return permute(a, swap_perm(a.dim(), d0, d1));
}

Var flatten(const Var& a, int64_t start_dim, int64_t end_dim) {
  return reshape(a, flatten(a.data(), start_dim, end_dim).shape());
}

Var concat(const std::vector<Var>& vs, int64_t dim) {
  std::vector<Tensor> ts;
  for (auto& v : vs) ts.push_back(v.data());
  Tensor y = concat(ts, dim);
  dim = wrap_dim(dim, y.dim(), "concat");
  std::vector<int64_t> sizes;
  for (auto& t : ts) sizes.push_back(t.size(dim));
  return Var::make(y, vs, "concat", [sizes, dim](Node& self) {
    int64_t off = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      if (self.parents[i]->requires_grad)
        self.parents[i]->accumulate(slice(self.grad, dim, off, off + sizes[i]));
      off += sizes[i];
    }
  });
}

Var stack(const std::vector<Var>& vs, int64_t dim) {
  check(!vs.empty(), "stack", "no tensors");
  dim = wrap_dim(dim, vs[0].dim() + 1, "stack");
  std::vector<Var> us;
  for (auto& v : vs) {
    Shape s = v.shape();
    s.insert(s.begin() + dim, 1);
    us.push_back(reshape(v, s));
  }
  return concat(us, dim);
}

Var slice(const Var& a, int64_t dim, int64_t start, int64_t end) {
  dim = wrap_dim(dim, a.dim(), "slice");
  Shape in = a.shape();
  const int64_t n = in[dim];
  // Resolve start as slice() does so the backward writes to the same place.
  int64_t s = start < 0 ? start + n : start;
  s = std::clamp<int64_t>(s, 0, n);
  return Var::make(slice(a.data(), dim, start, end), {a}, "slice", [in, dim, s](Node& self) {
    Tensor dx = Tensor::zeros(in, self.grad.device());  // on the gradient's device
    slice_add_(dx, self.grad, dim, s);
    self.parents[0]->accumulate(dx);
  });
}

Var index_select(const Var& a, const std::vector<int64_t>& idx) {
  Shape in = a.shape();
  return Var::make(index_select(a.data(), idx), {a}, "index_select", [in, idx](Node& self) {
    Tensor dx = Tensor::zeros(in, self.grad.device());
    index_add_(dx, idx, self.grad);
    self.parents[0]->accumulate(dx);
  });
}

}  // namespace normad
