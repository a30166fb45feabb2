// Tests of the autograd mechanism (autograd/var.h): accumulation, shared sub-expressions,
// no-grad scope, detach, errors.
#include "tests/helpers.h"

using namespace normad;

TEST_CASE("autograd: a small expression matches hand-derived gradients", "[autograd]") {
  // f(a, b) = sum(a * b + exp(a)), df/da = b + exp(a), df/db = a.
  Var a(Tensor::from({3}, {0.5f, -1.f, 2.f}), true), b(Tensor::from({3}, {3.f, 4.f, -5.f}), true);
  Var f = sum(a * b + exp(a));
  f.backward();
  for (int i = 0; i < 3; ++i) {
    CHECK(a.grad().data()[i] == Approx(b.data().data()[i] + std::exp(a.data().data()[i])));
    CHECK(b.grad().data()[i] == Approx(a.data().data()[i]));
  }
  // A second backward accumulates (PyTorch semantics), zero_grad resets.
  Var f2 = sum(a * b + exp(a));
  f2.backward();
  CHECK(b.grad().data()[0] == Approx(2 * 0.5f));
  a.zero_grad();
  CHECK_FALSE(a.grad().defined());
}

TEST_CASE("autograd: a value used twice gets both contributions", "[autograd]") {
  Var x(Tensor::from({2}, {3.f, -2.f}), true);
  Var y = x * x;   // dy/dx = 2x
  Var z = y + x;   // dz/dx = 2x + 1
  sum(z * z).backward();  // d/dx sum(z^2) = 2 z (2x + 1)
  for (int i = 0; i < 2; ++i) {
    double xv = x.data().data()[i], zv = xv * xv + xv;
    CHECK(x.grad().data()[i] == Approx(2 * zv * (2 * xv + 1)));
  }
}

TEST_CASE("autograd: no-grad scope, detach and requires_grad propagation", "[autograd]") {
  Var w(Tensor::ones({2}), true), c(Tensor::ones({2}));
  {
    NoGradGuard ng;
    Var y = w * 2.f;
    CHECK_FALSE(y.requires_grad());
  }
  CHECK(grad_enabled());
  CHECK((w * 2.f).requires_grad());
  CHECK_FALSE((c * 2.f).requires_grad());
  Var d = (w * 2.f).detach();
  CHECK_FALSE(d.requires_grad());
  Var s = sum(w * d);
  s.backward();
  CHECK(w.grad().data()[0] == Approx(2.f));
  CHECK_THROWS_AS(Var(Tensor::ones({2}), true).backward(), Error);  // not a scalar
  CHECK_THROWS_AS(sum(c).backward(), Error);                         // nothing requires grad
}

TEST_CASE("autograd: a second backward through a freed graph is an error, not a silent zero", "[autograd]") {
  Var x(Tensor::from({2}, {1.f, 2.f}), true);
  Var y = x * 2.f;
  sum(y).backward();
  CHECK(x.grad().data()[1] == 2.f);
  CHECK_THROWS_WITH(sum(y * 3.f).backward(), Catch::Contains("freed"));
  CHECK_THROWS_AS(permute(Var(Tensor({2, 3}), true), {0}), Error);  // bad perm: an error, no overflow
}

TEST_CASE("autograd: a deep chain does not overflow the stack", "[autograd]") {
  Var x(Tensor::scalar(1.f), true);
  Var y = x;
  for (int i = 0; i < 100000; ++i) y = y + 0.f;
  y.backward();
  CHECK(x.grad().item() == 1.f);
}

TEST_CASE("autograd: an intermediate nobody holds is freed in the forward pass and the backward stays right",
          "[autograd]") {
  // out = relu(x W): the product h is read by nothing after relu (relu keeps its output for the
  // mask, as PyTorch; matmul keeps x for dW), so only out's bytes stay in use, not h's too.
  Generator g(5);
  const Tensor x = g.normal({64, 256}), w = g.normal({256, 256});
  Var xv(x), wv(w, true);
  Allocator& cpu = cpu_allocator();
  const int64_t before = cpu.stats().in_use;
  Var out = relu(matmul(xv, wv));
  CHECK(cpu.stats().in_use - before == 64 * 256 * 4);  // out only (h is 64 KiB more)
  // The gradient through the mask read from the output: dW = x^T (1[x W > 0]), with h recomputed.
  sum(out).backward();
  const Tensor h = matmul(x, w), mask = sign(relu(h));  // 1 where h > 0, else 0
  test::expect_close(wv.grad(), matmul(x, mask, true, false), 1e-5, 1e-5, "dW");
  // A Var still held keeps its value: out is readable after the backward.
  CHECK(out.data().shape() == Shape{64, 256});
}
