// Gaussian-AD fit and score times (models/gaussian_ad.h) at the sizes: fit on n = 5000
// rows of d = 1792 features (EfficientNet-B4's head level), score 10 000 rows.
// Math: fit = streaming moments (Σyyᵀ, a SYRK) + Ledoit-Wolf + Cholesky; score = ||W (x − μ)||.
// bench/compare_sklearn.py runs these beside scikit-learn's LedoitWolf on the same cores.
#include <benchmark/benchmark.h>

#include "bench/bench_util.h"
#include "models/gaussian_ad.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace {

using namespace normad;

// Correlated features: x = z·A + offset, z standard normal, A random [d, d] scaled per column.
Tensor features(int64_t n, int64_t d, uint64_t seed) {
  Generator g(seed);
  Tensor z = g.normal({n, d}), a = g.normal({d, d});
  Tensor x = matmul(z, a);
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = 0.05f * x.data()[i] + 1.f;
  return x;
}

constexpr int64_t kFitRows = 5000, kScoreRows = 10000, kDim = 1792;

void bm_mvg_fit(benchmark::State& st) {
  const int64_t n = kFitRows, d = kDim;
  const Tensor x = features(n, d, 1);
  auto fit = [&] {
    models::GaussianFitter f({d});
    f.add({x});
    return f.finish();
  };
  if (!bench::warm_up(st, fit)) return;
  for (auto _ : st) benchmark::DoNotOptimize(fit());
}

void bm_mvg_score(benchmark::State& st) {
  const int64_t n = kScoreRows, d = kDim;
  models::GaussianFitter f({d});
  f.add({features(kFitRows, d, 1)});
  const models::GaussianAd m = f.finish();
  const Tensor x = features(n, d, 2);
  auto score = [&] { return m.score({x}); };
  if (!bench::warm_up(st, score)) return;
  for (auto _ : st) benchmark::DoNotOptimize(score());
  bench::set_rate(st, "rows/s", double(n));
}

}  // namespace

BENCHMARK(bm_mvg_fit)->Name("mvg_fit/n5000_d1792")->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK(bm_mvg_score)->Name("mvg_score/n10000_d1792")->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
