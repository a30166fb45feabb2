// Training-step benchmarks of normad's models, one full step each (forward, backward, optimiser):
// ACR-DSVDD on the Omniglot net with 32 tasks x 30 rows in one grouped pass (acr.md §5) and in
// passes of 1, 4 and 8 tasks (acr_backward: the same gradients, activations that fit in cache), and
// one-class Deep SVDD on the MNIST LeNet with a batch of 128 (ntl_dsvdd.md A.4, A.7), and ACR-NTL
// on a table: 4 tasks x 512 rows x 570 features, 19 transformations (acr.md §7.4).
// Also zero-shot scoring of 1000 Omniglot images in one batch. bench/compare_torch.py times the same
// steps in PyTorch (the reference's per-task loop) and prints the ratio. Time is wall clock in ms;
// oneTBB follows the CPU affinity mask. The "flops" counter is the step's GEMM-shaped work
// (bench::count_flops) per second of the timed loop; "tensor_peak_MiB" its peak tensor memory.
#include <benchmark/benchmark.h>

#include "bench/bench_util.h"
#include "models/acr.h"
#include "models/deep_svdd.h"
#include "models/acr_nets.h"

using namespace normad;

namespace {

// Times one ACR iteration (loss of T tasks, backward, Adam step) on fixed inputs.
void time_acr_step(benchmark::State& st, models::AcrModel& model, nn::Optimizer& opt, const Tensor& x,
                   const std::vector<int>& y, int64_t T) {
  auto step = [&] {
    Var loss = model.loss(x, y, T);
    opt.zero_grad();
    loss.backward();
    opt.step();
  };
  if (!bench::warm_up_counted(st, step)) return;
  for (auto _ : st) step();
}

// One ACR-DSVDD iteration: T tasks of Q rows (half pseudo-anomalies), one Adam step, through
// acr_backward with `per_pass` tasks per forward/backward pass (0: all 32 in one grouped pass).
void bm_acr_dsvdd_step(benchmark::State& st, int64_t per_pass_arg) {
  const int64_t T = 32, Q = 30;
  Generator g(1);
  models::AcrDsvdd model(std::make_shared<models::OmniglotNet>(g), 32, g);
  nn::Adam opt(model.parameters(), 1e-3f);
  Tensor x = g.uniform({T * Q, 1, 28, 28});
  std::vector<int> y;
  for (int64_t i = 0; i < T * Q; ++i) y.push_back(i % 2);
  const int64_t per_pass = per_pass_arg ? per_pass_arg : T;
  auto step = [&] {
    opt.zero_grad();
    models::acr_backward(model, x, y, T, per_pass);
    opt.step();
  };
  if (!bench::warm_up_counted(st, step)) return;
  for (auto _ : st) step();
}

// One Deep SVDD step: mean ||phi(x) - c||^2 over 128 images, Adam with weight decay.
void bm_dsvdd_step(benchmark::State& st) {
  manual_seed(2);
  auto net = models::lenet("mnist");
  nn::Adam opt(net->parameters(), 1e-4f, 0.9f, 0.999f, 1e-8f, 0.5e-6f);
  Generator g(2);
  Tensor x = g.uniform({128, 1, 28, 28}), c = Tensor::full({32}, 0.1f);
  auto step = [&] {
    Var diff = sub((*net)(Var(x)), Var(c));
    Var loss = mean(sum(mul(diff, diff), {1}));
    opt.zero_grad();
    loss.backward();
    opt.step();
  };
  if (!bench::warm_up_counted(st, step)) return;
  for (auto _ : st) step();
}

// One ACR-NTL iteration: T tasks of Q rows, 20 views per row, one Adam step.
void bm_acr_ntl_step(benchmark::State& st) {
  const int64_t T = 4, Q = 512, D = 570;
  Generator g(3);
  models::AcrNtl model(std::make_shared<models::TabNtl>(D, g));
  nn::Adam opt(model.parameters(), 4e-4f);
  Tensor x = g.normal({T * Q, D});
  std::vector<int> y;
  for (int64_t i = 0; i < T * Q; ++i) y.push_back(i % 5 == 0);  // 409 + 103 per task, as AnoShift
  time_acr_step(st, model, opt, x, y, T);
}

// Zero-shot scoring with the Omniglot net (issue 14's "batch scoring on batches of 1000"): one
// batch of 1000 images normalised with its own BN statistics, ||phi(x) - c||^2 per image, no graph.
void bm_acr_dsvdd_score(benchmark::State& st) {
  Generator g(1);
  models::AcrDsvdd model(std::make_shared<models::OmniglotNet>(g), 32, g);
  Tensor x = g.uniform({1000, 1, 28, 28});
  auto score = [&] { benchmark::DoNotOptimize(model.score(x)); };
  if (!bench::warm_up_counted(st, score)) return;
  for (auto _ : st) score();
}

}  // namespace

BENCHMARK(bm_acr_dsvdd_score)->Name("acr_dsvdd_score/omniglot_n1000")->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK(bm_acr_ntl_step)->Name("acr_ntl_step/tab_t4_q512_d570_k19")->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK(bm_dsvdd_step)->Name("dsvdd_step/lenet_mnist_n128")->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK_CAPTURE(bm_acr_dsvdd_step, all, 0)->Name("acr_dsvdd_step/omniglot_t32_q30")->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK_CAPTURE(bm_acr_dsvdd_step, one, 1)->Name("acr_dsvdd_per_pass/omniglot_t32_q30_1")->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK_CAPTURE(bm_acr_dsvdd_step, four, 4)->Name("acr_dsvdd_per_pass/omniglot_t32_q30_4")->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK_CAPTURE(bm_acr_dsvdd_step, eight, 8)->Name("acr_dsvdd_per_pass/omniglot_t32_q30_8")->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
