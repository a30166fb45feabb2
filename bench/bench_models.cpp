// Training-step benchmarks of normad's models, one full step each (forward, backward, optimiser):
// ACR-DSVDD on the Omniglot net with 32 tasks x 30 rows in one grouped pass (acr.md §5).
// bench/compare_torch.py times the same steps in PyTorch (the reference's per-task loop) and
// prints the ratio. Time is wall clock in ms; oneTBB follows the CPU affinity mask.
#include <benchmark/benchmark.h>

#include "bench/bench_util.h"
#include "models/acr.h"
#include "models/omniglot_net.h"

using namespace normad;

namespace {

// One ACR-DSVDD iteration: T tasks of Q rows (half pseudo-anomalies), one Adam step.
void bm_acr_dsvdd_step(benchmark::State& st) {
  const int64_t T = 32, Q = 30;
  Generator g(1);
  models::AcrDsvdd model(std::make_shared<models::OmniglotNet>(g), 32, g);
  nn::Adam opt(model.parameters(), 1e-3f);
  Tensor x = g.uniform({T * Q, 1, 28, 28});
  std::vector<int> y;
  for (int64_t i = 0; i < T * Q; ++i) y.push_back(i % 2);
  auto step = [&] {
    Var loss = model.loss(x, y, T);
    opt.zero_grad();
    loss.backward();
    opt.step();
  };
  if (!bench::warm_up(st, step)) return;
  for (auto _ : st) step();
}

}  // namespace

BENCHMARK(bm_acr_dsvdd_step)->Name("acr_dsvdd_step/omniglot_t32_q30")->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
