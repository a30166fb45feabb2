// Batch norm tests (tensor/batchnorm.cpp, nn::BatchNorm): grouped training mode equals a loop of
// per-group passes in output and gradients (composed vs fused, as tinygrad checks fast paths),
// the closed-form statistics, running-statistics updates and eval mode; the fused batch norm +
// (leaky) ReLU equals the two ops bit for bit, and so do BatchNorm::forward_relu and Sequential's
// fusion.
#include <cmath>
#include <utility>

#include "nn/init.h"
#include "nn/layers.h"
#include "tests/helpers.h"

using namespace normad;

namespace {
// The mean and biased variance of group gr's channel c of x [G Q, C, S...] by double loops (two
// passes: the mean, then the squared deviations).
std::pair<double, double> loop_statistics(const Tensor& x, int64_t G, int64_t gr, int64_t c) {
  const int64_t C = x.size(1), S = x.numel() / (x.size(0) * C), Q = x.size(0) / G;
  double sum = 0, dev = 0;
  for (int64_t n = gr * Q; n < (gr + 1) * Q; ++n)
    for (int64_t k = 0; k < S; ++k) sum += x.data()[(n * C + c) * S + k];
  const double mean = sum / (Q * S);
  for (int64_t n = gr * Q; n < (gr + 1) * Q; ++n)
    for (int64_t k = 0; k < S; ++k) dev += std::pow(x.data()[(n * C + c) * S + k] - mean, 2);
  return {mean, dev / (Q * S)};
}
}  // namespace

TEST_CASE("batchnorm: grouped pass equals the per-group loop (output, gradients, running stats)", "[batchnorm]") {
  Generator g(11);
  // [N, C, H, W] inputs of >= 8 groups (G = 9) and [N, C] inputs of >= 2 (both G) go group by group
  // (statistics, then the affine pass, one group per task; tensor/batchnorm.cpp), the per-group
  // calls (G = 1) the other way
  const int64_t G = GENERATE(4, 9), Q = 5;
  INFO("groups " << G);
  for (Shape s : {Shape{G * Q, 3}, Shape{G * Q, 2, 3, 3}, Shape{G * Q, 3, 5, 7}}) {
    INFO("x " << shape_str(s));
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
    // each (group, channel) summed in the same order either way: the same bits
    CHECK(test::same_bits(y.data(), yl.data()));
    CHECK(test::same_bits(xv.grad(), xl.grad()));
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

TEST_CASE("batchnorm: statistics of planes walked in memory order match plain loops, any thread count", "[batchnorm]") {
  // [N, C, H, W] with planes of >= 16 values and fewer than 8 groups: the statistics' tasks take
  // runs of (group, channel) in memory order, a run crossing from one group into the next
  // (tensor/batchnorm.cpp, group_channel_sums); planes of 9 values take a task per channel. Mean,
  // 1 / std and the output against double loops; 1 and many threads the same bits.
  Generator g(12);
  for (const int64_t S : {9, 20})
    for (const int64_t G : {1, 3}) {
      const int64_t Q = 3, C = 5, N = G * Q;
      const Shape shape = S == 9 ? Shape{N, C, 3, 3} : Shape{N, C, 4, 5};
      INFO("x " << shape_str(shape) << ", groups " << G);
      Tensor x = g.normal(shape), gam = g.uniform(Shape{C}, 0.5f, 1.5f), bet = g.normal(Shape{C});
      // {y, mean, 1 / std} on one thread and on many
      const auto runs = test::on_one_and_many_threads([&] {
        BatchNormSaved saved;
        Tensor y = batch_norm_train(x, gam, bet, 1e-5f, G, &saved);
        return std::array<Tensor, 3>{y, saved.mean, saved.invstd};
      });
      for (int k = 0; k < 3; ++k) CHECK(test::same_bits(runs[0][k], runs[1][k]));
      const Tensor &y = runs[0][0], &mean = runs[0][1], &invstd = runs[0][2];
      for (int64_t gr = 0; gr < G; ++gr)
        for (int64_t c = 0; c < C; ++c) {
          const auto [mu, var] = loop_statistics(x, G, gr, c);
          const double inv = 1 / std::sqrt(var + 1e-5);
          CHECK(mean.data()[gr * C + c] == Approx(mu).margin(1e-6));
          CHECK(invstd.data()[gr * C + c] == Approx(inv).epsilon(1e-6));
          for (int64_t n = gr * Q; n < (gr + 1) * Q; ++n)
            for (int64_t k = 0; k < S; ++k) {
              const int64_t i = (n * C + c) * S + k;
              REQUIRE(y.data()[i] == Approx((x.data()[i] - mu) * inv * gam.data()[c] + bet.data()[c]).margin(1e-5));
            }
        }
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
        const auto [mean, var] = loop_statistics(x, G, gr, c);
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
  // [N, C, H, W] (per-plane moments, each about its plane's first value, then combined): an infinite
  // first value of the channel's first plane, one of a later plane, and a NaN inside a plane.
  Tensor xp = g.normal({4, 4, 3, 3});
  xp.data()[(0 * 4 + 0) * 9] = INFINITY;   // sample 0, channel 0, first value
  xp.data()[(2 * 4 + 1) * 9] = INFINITY;   // sample 2, channel 1, first value
  xp.data()[(3 * 4 + 2) * 9 + 4] = std::nanf("");  // sample 3, channel 2, middle
  batch_norm_train(xp, Tensor(), Tensor(), 1e-5f, 1, &saved);
  CHECK(saved.mean.data()[0] == INFINITY);
  CHECK(saved.mean.data()[1] == INFINITY);
  CHECK(std::isnan(saved.mean.data()[2]));
  CHECK(std::isnan(saved.invstd.data()[2]));
  CHECK(std::isfinite(saved.mean.data()[3]));
  CHECK(std::isfinite(saved.invstd.data()[3]));
}

// The fused BN + (leaky) ReLU must be the two ops in sequence bit for bit: outputs, saved and
// running statistics, and the gradients of x, gamma and beta (its backward recomputes the ReLU's
// mask from x; the composed ops read it from the ReLU's output). Inputs include a channel whose
// z is exactly 0 (gamma = beta = 0: the mask must be off there, which dbeta shows), a constant
// channel, a NaN and rows past one 64-channel block of the [N, C] walk; the next test puts z in
// rounding noise.
TEST_CASE("batchnorm + relu: the fused op equals batch norm then (leaky) ReLU, bit for bit", "[batchnorm]") {
  Generator g(21);
  for (Shape s : {Shape{12, 70}, Shape{12, 3, 5, 7}})
    for (int64_t groups : {1, 3, 12})  // 12: group by group for [N, C, H, W]
      for (bool affine : {true, false})
        for (float slope : {0.f, 0.01f, -0.3f}) {
          if (groups == 12 && s.size() == 2) continue;  // one value per channel and group
          const int64_t C = s[1], S = s.size() == 4 ? s[2] * s[3] : 1;
          INFO("x " << shape_str(s) << " groups " << groups << (affine ? "" : " no affine") << " slope " << slope);
          Tensor x = g.normal(s, 0.5f, 2.f), w = g.normal(s);
          for (int64_t n = 0; n < s[0]; ++n)
            for (int64_t k = 0; k < S; ++k) x.data()[(n * C + 1) * S + k] = 0.75f;  // channel 1 constant
          x.data()[(5 * C + 2) * S] = NAN;  // channel 2 of row 5: its group's statistics turn NaN
          Tensor gam = affine ? g.uniform({C}, 0.5f, 1.5f) : Tensor(), bet = affine ? g.normal({C}) : Tensor();
          if (affine) gam.data()[0] = 0.f, bet.data()[0] = 0.f;  // channel 0: z = 0 exactly, masked off
          Tensor rm = g.normal({C}), rv = g.uniform({C}, 0.5f, 2.f);
          Tensor rm_c = rm.clone(), rv_c = rv.clone();
          Var xf(x, true), gf(gam, affine), bf(bet, affine);
          Var yf = batch_norm_relu_train(xf, affine ? gf : Var(), affine ? bf : Var(), 1e-5f, groups, slope, &rm, &rv);
          sum(mul(yf, Var(w))).backward();
          Var xc(x, true), gc(gam, affine), bc(bet, affine);
          Var yc = leaky_relu(batch_norm_train(xc, affine ? gc : Var(), affine ? bc : Var(), 1e-5f, groups, &rm_c, &rv_c), slope);
          sum(mul(yc, Var(w))).backward();
          CHECK(test::same_bits(yf.data(), yc.data()));
          CHECK(test::same_bits(rm, rm_c));
          CHECK(test::same_bits(rv, rv_c));
          CHECK(test::same_bits(xf.grad(), xc.grad()));
          if (affine) {
            CHECK(test::same_bits(gf.grad(), gc.grad()));
            CHECK(test::same_bits(bf.grad(), bc.grad()));
          }
          CHECK(std::isnan(yf.data().data()[(5 * C + 2) * S]));  // NaN is not masked away
        }
}

// x = 1000 + N(0, 1): z = x scale + shift cancels about 1000 scale, so every z carries a rounding
// error of ~ulp(500) = 3e-5, and dozens of the million values lie within it of 0. There a backward
// that recomputed z any other way than the forward computed it would flip the ReLU's mask.
TEST_CASE("batchnorm + relu: the backward's mask is the forward's where z is rounding noise", "[batchnorm]") {
  Generator g(23);
  const Shape s{64, 16, 32, 32};
  const int64_t G = 4, C = 16, S = 32 * 32, Q = 16;
  Tensor x = g.normal(s, 1000.f, 1.f), w = g.normal(s);
  Tensor gam = g.uniform({C}, 0.5f, 1.5f), bet = g.normal({C});
  Var xf(x, true), gf(gam, true), bf(bet, true);
  Var yf = batch_norm_relu_train(xf, gf, bf, 1e-5f, G, 0.f);
  sum(mul(yf, Var(w))).backward();
  Var xc(x, true), gc(gam, true), bc(bet, true);
  Var yc = relu(batch_norm_train(xc, gc, bc, 1e-5f, G));
  sum(mul(yc, Var(w))).backward();
  CHECK(test::same_bits(yf.data(), yc.data()));
  CHECK(test::same_bits(xf.grad(), xc.grad()));
  CHECK(test::same_bits(gf.grad(), gc.grad()));
  CHECK(test::same_bits(bf.grad(), bc.grad()));
  // the test is only as sharp as the number of z in the noise: count them from exact statistics
  BatchNormSaved saved;
  batch_norm_train(x, gam, bet, 1e-5f, G, &saved);
  int64_t near_zero = 0;
  for (int64_t n = 0; n < s[0]; ++n)
    for (int64_t c = 0; c < C; ++c) {
      const int64_t gc_ = (n / Q) * C + c;
      for (int64_t k = 0; k < S; ++k) {
        const double z = (double(x.data()[(n * C + c) * S + k]) - saved.mean.data()[gc_]) *
                             saved.invstd.data()[gc_] * gam.data()[c] + bet.data()[c];
        near_zero += std::fabs(z) < 1e-4;
      }
    }
  INFO(near_zero << " values with |z| < 1e-4");
  CHECK(near_zero >= 20);
}

TEST_CASE("nn: BatchNorm::forward_relu and Sequential's BN + ReLU fusion match the modules one by one", "[batchnorm][nn]") {
  Generator g(22);
  Tensor x = g.normal({16, 5}, 1.f, 2.f), w = g.normal({16, 5});
  for (float slope : {0.f, 0.2f}) {
    INFO("slope " << slope);
    // Two identical networks: one Sequential (which fuses), one module at a time (which does not).
    auto make_bn = [&]() {
      auto bn = std::make_shared<nn::BatchNorm1d>(5);
      Generator init(3);
      bn->weight.data().copy_(init.uniform({5}, 0.5f, 1.5f));
      bn->bias.data().copy_(init.normal({5}));
      return bn;
    };
    auto bn_seq = make_bn(), bn_one = make_bn(), bn_fused = make_bn(), bn_twin = make_bn();
    nn::ModulePtr act = slope == 0.f ? nn::ModulePtr(std::make_shared<nn::ReLU>())
                                     : nn::ModulePtr(std::make_shared<nn::LeakyReLU>(slope));
    nn::Sequential seq({bn_seq, act});
    for (bool training : {true, false}) {
      seq.train(training), bn_one->train(training), bn_fused->train(training), bn_twin->train(training);
      Var xs(x, true), xo(x, true);
      Var ys = seq(xs);
      Var yo = act->forward((*bn_one)(xo));
      CHECK(test::same_bits(ys.data(), yo.data()));
      sum(mul(ys, Var(w))).backward();
      sum(mul(yo, Var(w))).backward();
      CHECK(test::same_bits(xs.grad(), xo.grad()));
      CHECK(test::same_bits(bn_seq->running_mean, bn_one->running_mean));
      CHECK(test::same_bits(bn_seq->running_var, bn_one->running_var));
      CHECK(bn_seq->num_batches_tracked.item() == bn_one->num_batches_tracked.item());
      // forward_relu itself, in this mode, against the module then the activation on a twin
      CHECK(test::same_bits(bn_fused->forward_relu(Var(x), slope).data(), act->forward((*bn_twin)(Var(x))).data()));
    }
    CHECK(test::same_bits(bn_fused->running_var, bn_twin->running_var));
    CHECK(test::same_bits(bn_seq->weight.grad(), bn_one->weight.grad()));
    CHECK(test::same_bits(bn_seq->bias.grad(), bn_one->bias.grad()));
  }
}

TEST_CASE("nn::Sequential::forward_from runs the layers from its index on, fusion included", "[batchnorm][nn]") {
  Generator g(23), init(4);
  auto linear = [&](int64_t a, int64_t b) {
    auto l = std::make_shared<nn::Linear>(a, b);
    nn::init::torch_default_(l->weight.data(), &l->bias.data(), init);
    return l;
  };
  nn::Sequential seq({linear(6, 5), std::make_shared<nn::BatchNorm1d>(5), std::make_shared<nn::ReLU>(), linear(5, 3)});
  const Tensor x = g.normal({12, 6});
  // in eval mode, so that the two passes see the same (running) statistics
  seq.eval();
  const Tensor whole = seq(Var(x)).data();
  CHECK(test::same_bits(seq.forward_from((*seq[0])(Var(x)), 1).data(), whole));
  CHECK(test::same_bits(seq.forward_from(Var(x), 0).data(), whole));
  CHECK(test::same_bits(seq.forward_from(Var(x), seq.size()).data(), x));  // no layers left: x itself
  // from index 3: the last Linear alone
  const Tensor h = g.normal({12, 5});
  CHECK(test::same_bits(seq.forward_from(Var(h), 3).data(), (*seq[3])(Var(h)).data()));
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
