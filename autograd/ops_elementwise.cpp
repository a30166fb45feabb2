// normad differentiable elementwise ops (see autograd/ops.h): forward through tensor/ops.h,
// backward beside it. Broadcast inputs get their gradient summed back with sum_to.
// Math: d(a+b) = g; d(ab)/da = g b; d(a/b)/db = -g a / b^2; d exp = g exp(a); d log = g / a;
// d sqrt = g / (2 sqrt a); d|a| = g sign(a); d a^p = g p a^(p-1); sigmoid' = s (1 - s);
// silu' = s (1 + a (1 - s)).
// Tested by tests/test_grad.cpp (finite differences) and tests/test_ops.cpp.
#include <cmath>

#include "autograd/ops.h"

namespace normad {

namespace {
// Pushes g into parent i when it needs it, reduced to the parent's (pre-broadcast) shape.
void push(Node& self, size_t i, const Tensor& g) {
  Node& p = *self.parents[i];
  if (p.requires_grad) p.accumulate(sum_to(g, p.shape()));
}
bool wants(Node& self, size_t i) { return self.parents[i]->requires_grad; }

// Which of (input, output) a unary op's derivative reads: only that one is kept for the backward.
enum class Keeps { input, output };

// Unary op whose local derivative is a function of its input or its output: dx = g * dfn(x, y),
// the one it does not keep passed undefined.
template <class D>
Var unary(const Var& a, Tensor y, const char* op, Keeps keeps, D dfn) {
  Tensor x = keeps == Keeps::input ? a.data() : Tensor(), y_kept = keeps == Keeps::output ? y : Tensor();
  return Var::make(y, {a}, op, [x, y_kept, dfn](Node& self) { push(self, 0, mul(self.grad, dfn(x, y_kept))); });
}
}  // namespace

Var add(const Var& a, const Var& b) {
  return Var::make(add(a.data(), b.data()), {a, b}, "add", [](Node& self) {
    push(self, 0, self.grad);
    push(self, 1, self.grad);
  });
}

Var sub(const Var& a, const Var& b) {
  return Var::make(sub(a.data(), b.data()), {a, b}, "sub", [](Node& self) {
    push(self, 0, self.grad);
    if (wants(self, 1)) push(self, 1, neg(self.grad));
  });
}

Var mul(const Var& a, const Var& b) {
  // each factor is kept only for the other's gradient (which factors need one: fixed here, as in
  // PyTorch's graph)
  const bool da = a.requires_grad(), db = b.requires_grad();
  Tensor x = db ? a.data() : Tensor(), y = da ? b.data() : Tensor();
  return Var::make(mul(a.data(), b.data()), {a, b}, "mul", [x, y, da, db](Node& self) {
    if (da) push(self, 0, mul(self.grad, y));
    if (db) push(self, 1, mul(self.grad, x));
  });
}

Var div(const Var& a, const Var& b) {
  Tensor x = a.data(), y = b.data();
  return Var::make(div(x, y), {a, b}, "div", [x, y](Node& self) {
    if (wants(self, 0)) push(self, 0, div(self.grad, y));
    if (wants(self, 1)) push(self, 1, neg(div(mul(self.grad, x), mul(y, y))));
  });
}

Var add_scalar(const Var& a, float s) {
  return Var::make(add_scalar(a.data(), s), {a}, "add_scalar",
                   [](Node& self) { push(self, 0, self.grad); });
}

Var mul_scalar(const Var& a, float s) {
  return Var::make(mul_scalar(a.data(), s), {a}, "mul_scalar",
                   [s](Node& self) { push(self, 0, mul_scalar(self.grad, s)); });
}

Var neg(const Var& a) { return mul_scalar(a, -1.f); }

Var exp(const Var& a) {
  return unary(a, exp(a.data()), "exp", Keeps::output, [](const Tensor&, const Tensor& y) { return y; });
}

Var log(const Var& a) {
  return unary(a, log(a.data()), "log", Keeps::input, [](const Tensor& x, const Tensor&) {
    return pow(x, -1.f);
  });
}

Var sqrt(const Var& a) {
  return unary(a, sqrt(a.data()), "sqrt", Keeps::output, [](const Tensor&, const Tensor& y) {
    return mul_scalar(pow(y, -1.f), 0.5f);
  });
}

Var abs(const Var& a) {
  return unary(a, abs(a.data()), "abs", Keeps::input, [](const Tensor& x, const Tensor&) { return sign(x); });
}

Var pow(const Var& a, float p) {
  return unary(a, pow(a.data(), p), "pow", Keeps::input, [p](const Tensor& x, const Tensor&) {
    return mul_scalar(pow(x, p - 1.f), p);
  });
}

Var clamp(const Var& a, float lo, float hi) {
  // Gradient flows where lo <= x <= hi (PyTorch's convention at the bounds).
  Tensor x = a.data();
  return Var::make(clamp(x, lo, hi), {a}, "clamp", [x, lo, hi](Node& self) {
    push(self, 0, clamp_backward(self.grad, x, lo, hi));
  });
}

Var relu(const Var& a) { return leaky_relu(a, 0.f); }

Var leaky_relu(const Var& a, float slope) {
  const Tensor& x = a.data();
  Tensor y = slope == 0.f ? relu(x) : leaky_relu(x, slope);
  // The backward's mask x > 0 read from the output, as PyTorch saves it: for slope >= 0, y > 0
  // exactly where x > 0 (x <= 0 gives slope x <= 0 or -0, NaN stays NaN), so the input (often a
  // batch norm's output nothing else keeps) is freed.
  Tensor mask_source = slope >= 0.f ? y : x;
  return Var::make(y, {a}, slope == 0.f ? "relu" : "leaky_relu", [mask_source, slope](Node& self) {
    push(self, 0, leaky_relu_backward(self.grad, mask_source, slope));
  });
}

Var sigmoid(const Var& a) {
  return unary(a, sigmoid(a.data()), "sigmoid", Keeps::output, [](const Tensor&, const Tensor& y) {
    return mul(y, add_scalar(neg(y), 1.f));
  });
}

Var silu(const Var& a) {
  return unary(a, silu(a.data()), "silu", Keeps::input, [](const Tensor& x, const Tensor&) {
    Tensor s = sigmoid(x);
    // s (1 + x (1 - s))
    return mul(s, add_scalar(mul(x, add_scalar(neg(s), 1.f)), 1.f));
  });
}

}  // namespace normad
