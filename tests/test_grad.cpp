// Finite-difference gradient checks for every differentiable op in autograd/ops.h (ggml's grad
// mode). Conv and pooling are checked in tests/test_conv.cpp, batch norm also in
// tests/test_batchnorm.cpp. Inputs avoid kinks (0 for relu/abs, ties for max) by construction.
#include "tests/helpers.h"

using namespace normad;
using V = std::vector<Var>;

namespace {
Generator gen(7);
Tensor rn(Shape s) { return gen.normal(std::move(s)); }
// Values with |x| in [0.2, 1.2]: no elementwise kink within the finite-difference step.
Tensor away_from_zero(Shape s) {
  Tensor t = gen.uniform(std::move(s), 0.2f, 1.2f);
  for (int64_t i = 0; i < t.numel(); ++i)
    if (gen.uniform01() < 0.5) t.data()[i] = -t.data()[i];
  return t;
}
Tensor positive(Shape s) { return gen.uniform(std::move(s), 0.5f, 2.f); }
}  // namespace

TEST_CASE("grad: broadcasting arithmetic", "[grad]") {
  gen.seed(7);  // each case draws the same inputs whatever ran before
  test::check_grad([](const V& v) { return add(v[0], v[1]); }, {rn({3, 4}), rn({4})}, 1e-2, 1e-4, 3e-4, "add");
  test::check_grad([](const V& v) { return sub(v[0], v[1]); }, {rn({3, 1}), rn({1, 4})}, 1e-2, 1e-4, 3e-4, "sub");
  test::check_grad([](const V& v) { return mul(v[0], v[1]); }, {rn({2, 3, 4}), rn({3, 1})}, 1e-2, 1e-4, 3e-4, "mul");
  test::check_grad([](const V& v) { return div(v[0], v[1]); }, {rn({3, 4}), positive({4})}, 1e-2, 1e-4, 3e-4, "div");
  test::check_grad([](const V& v) { return v[0] * 3.f + 2.f - v[0] / 4.f; }, {rn({5})}, 1e-2, 1e-4, 3e-4, "scalar");
  test::check_grad([](const V& v) { return mul(v[0], v[0]); }, {rn({5})}, 1e-2, 1e-4, 3e-4, "x*x (reused input)");
}

TEST_CASE("grad: unary functions", "[grad]") {
  gen.seed(7);  // each case draws the same inputs whatever ran before
  test::check_grad([](const V& v) { return neg(v[0]); }, {rn({6})});
  test::check_grad([](const V& v) { return exp(v[0]); }, {rn({6})});
  test::check_grad([](const V& v) { return log(v[0]); }, {positive({6})});
  test::check_grad([](const V& v) { return sqrt(v[0]); }, {positive({6})});
  test::check_grad([](const V& v) { return abs(v[0]); }, {away_from_zero({6})});
  test::check_grad([](const V& v) { return pow(v[0], 3.f); }, {rn({6})});
  test::check_grad([](const V& v) { return pow(v[0], -1.5f); }, {positive({6})});
  test::check_grad([](const V& v) { return clamp(v[0], -0.5f, 0.7f); }, {away_from_zero({12})}, 1e-2, 1e-4, 3e-4, "clamp");
  test::check_grad([](const V& v) { return relu(v[0]); }, {away_from_zero({8})});
  test::check_grad([](const V& v) { return leaky_relu(v[0], 0.1f); }, {away_from_zero({8})});
  test::check_grad([](const V& v) { return sigmoid(v[0]); }, {rn({8})});
  test::check_grad([](const V& v) { return silu(v[0]); }, {rn({8})});
}

TEST_CASE("grad: matmul in every transpose mode, bmm with broadcast batch", "[grad]") {
  gen.seed(7);  // each case draws the same inputs whatever ran before
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      test::check_grad([=](const V& v) { return matmul(v[0], v[1], ta, tb); },
                       {rn(ta ? Shape{4, 3} : Shape{3, 4}), rn(tb ? Shape{5, 4} : Shape{4, 5})},
                       1e-2, 1e-4, 3e-4, "matmul " + std::to_string(ta) + std::to_string(tb));
  test::check_grad([](const V& v) { return bmm(v[0], v[1], false, true); }, {rn({3, 2, 4}), rn({1, 5, 4})},
                   1e-2, 1e-4, 3e-4, "bmm");
  test::check_grad([](const V& v) { return bmm(v[0], v[1], true, false); }, {rn({1, 4, 2}), rn({3, 4, 5})},
                   1e-2, 1e-4, 3e-4, "bmm ta");
  test::check_grad([](const V& v) { return linear(v[0], v[1], v[2]); }, {rn({3, 4}), rn({5, 4}), rn({5})},
                   1e-2, 1e-4, 3e-4, "linear");
}

TEST_CASE("grad: reductions", "[grad]") {
  gen.seed(7);  // each case draws the same inputs whatever ran before
  test::check_grad([](const V& v) { return sum(v[0]); }, {rn({3, 4})});
  test::check_grad([](const V& v) { return sum(v[0], {0, 2}, true); }, {rn({2, 3, 4})});
  test::check_grad([](const V& v) { return mean(v[0], {1}); }, {rn({2, 3, 4})});
  test::check_grad([](const V& v) { return logsumexp(v[0], 1); }, {rn({3, 5})});
  test::check_grad([](const V& v) { return logsumexp(v[0], 0, true); }, {rn({3, 5})});
  // Distinct values 0.1 apart: the argmax never changes within the step.
  Tensor x({3, 4});
  auto perm = gen.permutation(12);
  for (int i = 0; i < 12; ++i) x.data()[i] = 0.1f * perm[i];
  test::check_grad([](const V& v) { return max(v[0], 1); }, {x});
  test::check_grad([](const V& v) { return max(v[0], 0, true); }, {x});
}

TEST_CASE("grad: layout ops", "[grad]") {
  gen.seed(7);  // each case draws the same inputs whatever ran before
  test::check_grad([](const V& v) { return reshape(v[0], {4, 3}); }, {rn({2, 6})});
  test::check_grad([](const V& v) { return permute(v[0], {2, 0, 1}); }, {rn({2, 3, 4})});
  test::check_grad([](const V& v) { return transpose(v[0], 0, 1); }, {rn({2, 3})});
  test::check_grad([](const V& v) { return flatten(v[0]); }, {rn({2, 3, 2})});
  test::check_grad([](const V& v) { return concat({v[0], v[1], v[0]}, 1); }, {rn({2, 3}), rn({2, 2})});
  test::check_grad([](const V& v) { return stack({v[0], v[1]}, 1); }, {rn({2, 3}), rn({2, 3})});
  test::check_grad([](const V& v) { return slice(v[0], 1, 1, -1); }, {rn({2, 5})});
  test::check_grad([](const V& v) { return index_select(v[0], {2, 0, 2, 2}); }, {rn({3, 2})});
}

TEST_CASE("grad: distances and normalisation", "[grad]") {
  gen.seed(7);  // each case draws the same inputs whatever ran before
  test::check_grad([](const V& v) { return pairwise_sqdist(v[0], v[1]); }, {rn({5, 3}), rn({4, 3})},
                   1e-2, 1e-4, 3e-4, "pairwise_sqdist");
  test::check_grad([](const V& v) { return l2_normalize(v[0]); }, {rn({4, 3})}, 1e-2, 1e-4, 3e-4, "normalize");
}

TEST_CASE("grad: batch norm, plain and grouped, 2-d and 4-d, with and without affine", "[grad][batchnorm]") {
  gen.seed(7);  // each case draws the same inputs whatever ran before
  for (int64_t groups : {1, 3}) {
    test::check_grad([=](const V& v) { return batch_norm_train(v[0], v[1], v[2], 1e-5f, groups); },
                     {rn({6, 4}), positive({4}), rn({4})}, 1e-2, 1e-4, 3e-4,
                     "bn1d groups " + std::to_string(groups));
    test::check_grad([=](const V& v) { return batch_norm_train(v[0], Var(), Var(), 1e-4f, groups); },
                     {rn({6, 2, 3, 2})}, 1e-2, 1e-4, 3e-4, "bn2d no affine groups " + std::to_string(groups));
  }
  Tensor rm = rn({3}), rv = positive({3});
  test::check_grad([=](const V& v) { return batch_norm_eval(v[0], v[1], v[2], rm, rv, 1e-5f); },
                   {rn({4, 3, 2, 2}), positive({3}), rn({3})}, 1e-2, 1e-4, 3e-4, "bn eval");
}

TEST_CASE("grad: a composed expression (MLP with grouped BN and a DCL-like loss)", "[grad]") {
  gen.seed(7);  // each case draws the same inputs whatever ran before
  test::check_grad(
      [](const V& v) {
        // silu, not leaky_relu: BN outputs sit near 0, where a kink would break finite differences.
        Var h = silu(batch_norm_train(matmul(v[0], v[1], false, true), Var(), Var(), 1e-4f, 2));
        Var z = l2_normalize(h);
        Var sim = matmul(z, z, false, true) / 0.1f;
        return sub(logsumexp(sim, 1), mean(sim, {1}));
      },
      // step 4e-2: at 1e-2 the float rounding of the forward dominated the central differences
      // (NORMAD_GRAD_REPORT: max error / max grad 1.2e-4 with Eigen's GEMM, 1.7e-4 with
      // OpenBLAS's, falling as the step grows); at 4e-2 both are 2.5e-5
      {rn({8, 5}), rn({4, 5})}, 4e-2, 1e-4, 3e-4, "composed");
}
