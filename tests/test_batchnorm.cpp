// Batch norm tests (tensor/batchnorm.cpp, nn::BatchNorm): grouped training mode equals a loop of
// per-group passes in output and gradients (composed vs fused, as tinygrad checks fast paths),
// the closed-form statistics, running-statistics updates and eval mode.
#include <cmath>
#include "nn/layers.h"
#include "tests/helpers.h"

using namespace normad;

TEST_CASE("batchnorm: grouped pass equals the per-group loop (output, gradients, running stats)", "[batchnorm]") {
  Generator g(11);
  const int64_t G = 4, Q = 5;
  for (Shape s : {Shape{G * Q, 3}, Shape{G * Q, 2, 3, 3}}) {
    Tensor x = g.normal(s), gam = g.uniform(Shape{s[1]}, 0.5f, 1.5f), bet = g.normal(Shape{s[1]});
    Tensor w = g.normal(s);  // loss weights
    // Fused: one grouped call.
    Var xv(x, true), gv(gam, true), bv(bet, true);
    Tensor rm = g.normal(Shape{s[1]}), rv = g.uniform(Shape{s[1]}, 0.5f, 2.f);
    Tensor rm_loop = rm.clone(), rv_loop = rv.clone();
    Var y = batch_norm_train(xv, gv, bv, 1e-5f, G, &rm, &rv);
    sum(mul(y, Var(w))).backward();
    // Composed: G separate calls on row slices, concatenated.
    Var xl(x, true), gl(gam, true), bl(bet, true);
    std::vector<Var> parts;
    for (int64_t k = 0; k < G; ++k)
      parts.push_back(batch_norm_train(slice(xl, 0, k * Q, (k + 1) * Q), gl, bl, 1e-5f, 1, &rm_loop, &rv_loop));
    Var yl = concat(parts, 0);
    sum(mul(yl, Var(w))).backward();
    test::expect_close(y.data(), yl.data(), 1e-6, 1e-5, "grouped output");
    test::expect_close(xv.grad(), xl.grad(), 1e-5, 1e-4, "grouped dx");
    test::expect_close(gv.grad(), gl.grad(), 1e-5, 1e-4, "grouped dgamma");
    test::expect_close(bv.grad(), bl.grad(), 1e-5, 1e-4, "grouped dbeta");
    // Running statistics: one update per group, in order, as the loop does.
    test::expect_close(rm, rm_loop, 1e-6, 1e-5, "grouped running_mean");
    test::expect_close(rv, rv_loop, 1e-6, 1e-5, "grouped running_var");
    // Groups do not mix: shifting one group leaves the others' outputs unchanged.
    Tensor x2 = x.clone();
    for (int64_t i = 0; i < x.numel() / G; ++i) x2.data()[i] += 100.f;
    Tensor y2 = batch_norm_train(x2, gam, bet, 1e-5f, G, nullptr);
    test::expect_close(slice(y2, 0, Q, G * Q), slice(y.data(), 0, Q, G * Q), 0, 0, "other groups");
  }
}

TEST_CASE("batchnorm: closed-form statistics and running-stat update", "[batchnorm]") {
  // One channel, values 1..4: mean 2.5, biased var 1.25, unbiased 5/3.
  Tensor x = Tensor::from({4, 1}, {1, 2, 3, 4});
  Tensor rm = Tensor::zeros({1}), rv = Tensor::ones({1});
  BatchNormSaved saved;
  Tensor y = batch_norm_train(x, Tensor(), Tensor(), 0.f, 1, &saved, &rm, &rv, 0.1f);
  for (int i = 0; i < 4; ++i) CHECK(y.data()[i] == Approx((i + 1 - 2.5) / std::sqrt(1.25)));
  CHECK(saved.mean.item() == Approx(2.5));
  CHECK(rm.item() == Approx(0.25));
  CHECK(rv.item() == Approx(0.9 + 0.1 * 5.0 / 3.0));
  CHECK_THROWS_WITH(batch_norm_train(Tensor({5, 2}), Tensor(), Tensor(), 1e-5f, 2, nullptr),
                    Catch::Contains("[5, 2]"));
  CHECK_THROWS_AS(batch_norm_train(Tensor({5, 2, 3}), Tensor(), Tensor(), 1e-5f, 1, nullptr), Error);
}

TEST_CASE("batchnorm: statistics stay exact when the mean dwarfs the spread, and NaN reaches them", "[batchnorm]") {
  // x = 1e6 + N(0, 1) per channel (float: steps of 1/16 at 1e6), in two groups and as [N, C, H, W].
  // Summing x and x^2 in double and subtracting would lose ~1e-16 * (1e6)^2 = 1e-4 of the variance;
  // the CPU's shifted sums (and the reference's two passes) keep it to ~1e-12.
  Generator g(13);
  for (Shape s : {Shape{4096, 3}, Shape{64, 3, 8, 8}}) {
    Tensor x = g.normal(s, 1e6f, 1.f);
    const int64_t G = 2, C = s[1], S = shape_numel(s) / (s[0] * C), Q = s[0] / G;
    BatchNormSaved saved;
    Tensor rv = Tensor::ones({C});
    batch_norm_train(x, Tensor(), Tensor(), 0.f, G, &saved, nullptr, &rv, 1.f);
    for (int64_t gr = 0; gr < G; ++gr)
      for (int64_t c = 0; c < C; ++c) {
        double sum = 0, dev = 0;
        for (int64_t n = gr * Q; n < (gr + 1) * Q; ++n)
          for (int64_t k = 0; k < S; ++k) sum += x.data()[(n * C + c) * S + k];
        const double mean = sum / (Q * S);
        for (int64_t n = gr * Q; n < (gr + 1) * Q; ++n)
          for (int64_t k = 0; k < S; ++k) dev += std::pow(x.data()[(n * C + c) * S + k] - mean, 2);
        const double var = dev / (Q * S);
        CHECK(saved.mean.data()[gr * C + c] == Approx(mean).epsilon(1e-7));
        CHECK(saved.invstd.data()[gr * C + c] == Approx(1 / std::sqrt(var)).epsilon(1e-6));
        if (gr == G - 1)  // momentum 1: the running variance is the last group's, unbiased
          CHECK(rv.data()[c] == Approx(var * (Q * S) / (Q * S - 1)).epsilon(1e-6));
      }
  }
  // A NaN in a channel makes its mean, invstd and running variance NaN, not a clipped 0.
  Tensor x = g.normal({8, 2});
  x.data()[5] = std::nanf("");  // row 2, channel 1
  BatchNormSaved saved;
  Tensor rm = Tensor::zeros({2}), rv = Tensor::ones({2});
  batch_norm_train(x, Tensor(), Tensor(), 1e-5f, 1, &saved, &rm, &rv, 0.1f);
  CHECK(std::isfinite(saved.invstd.data()[0]));
  CHECK(std::isnan(saved.mean.data()[1]));
  CHECK(std::isnan(saved.invstd.data()[1]));
  CHECK(std::isnan(rv.data()[1]));
  // An infinite first value (the shift of the one-pass sums) keeps the mean infinite, not NaN.
  Tensor xi = g.normal({8, 2});
  xi.data()[0] = INFINITY;  // row 0, channel 0
  batch_norm_train(xi, Tensor(), Tensor(), 1e-5f, 1, &saved);
  CHECK(saved.mean.data()[0] == INFINITY);
  CHECK(std::isfinite(saved.mean.data()[1]));
}

TEST_CASE("nn::BatchNorm: train/eval modes, batch statistics in eval, groups", "[batchnorm][nn]") {
  Generator g(12);
  nn::BatchNorm1d bn(3);
  Tensor x = g.normal({8, 3}, 2.f, 3.f);
  bn.train();
  Var y = bn(Var(x));
  CHECK(bn.num_batches_tracked.item() == 1.f);
  CHECK(bn.running_mean.data()[0] != 0.f);
  bn.eval();
  Tensor rm = bn.running_mean.clone();
  Var ye = bn(Var(x));
  test::expect_close(ye.data(), batch_norm_eval(x, bn.weight.data(), bn.bias.data(), bn.running_mean,
                                                bn.running_var, bn.eps), 0, 0, "eval");
  // ... and against the formula itself, not only the function the module calls:
  // y = (x - running_mean) / sqrt(running_var + eps) * weight + bias, in double.
  Tensor by_formula = Tensor::empty(x.shape());
  for (int64_t i = 0; i < 8; ++i)
    for (int64_t c = 0; c < 3; ++c)
      by_formula.data()[i * 3 + c] = float((double(x.data()[i * 3 + c]) - bn.running_mean.data()[c]) /
                                               std::sqrt(double(bn.running_var.data()[c]) + bn.eps) *
                                               bn.weight.data().data()[c] + bn.bias.data().data()[c]);
  test::expect_close(ye.data(), by_formula, 1e-6, 1e-6, "eval by formula");
  test::expect_close(bn.running_mean, rm, 0, 0, "eval leaves running stats");
  bn.batch_stats_in_eval = true;
  test::expect_close(bn(Var(x)).data(), y.data(), 0, 0, "batch stats in eval");
  test::expect_close(bn.running_mean, rm, 0, 0, "batch stats in eval leave running stats");
  bn.groups = 2;
  test::expect_close(bn(Var(x)).data(),
                     concat({batch_norm_train(slice(x, 0, 0, 4), bn.weight.data(), bn.bias.data(), bn.eps, 1, nullptr),
                             batch_norm_train(slice(x, 0, 4, 8), bn.weight.data(), bn.bias.data(), bn.eps, 1, nullptr)},
                            0),
                     1e-6, 1e-5, "groups");
  CHECK_THROWS_WITH(bn(Var(Tensor({8, 4}))), Catch::Contains("[8, 4]"));
  // Training mode updates running statistics under no-grad too, once per group (PyTorch).
  bn.batch_stats_in_eval = false;
  bn.train();
  const float before = bn.num_batches_tracked.item();
  Tensor rm_before = bn.running_mean.clone();
  {
    NoGradGuard ng;
    bn(Var(x));
  }
  CHECK(bn.num_batches_tracked.item() == before + 2.f);
  CHECK(bn.running_mean.data()[0] != rm_before.data()[0]);
  CHECK_THROWS_AS(batch_norm_train(Tensor({0, 3}), Tensor(), Tensor(), 1e-5f, 1, nullptr), Error);
}
