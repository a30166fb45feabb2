// Inference throughput of the pretrained backbones (models/backbones.h): features() over every
// level, eval-mode BN, no autograd history, as Gaussian-AD extracts them (gaussian_ad.md §2):
// resnet18 at 224 with a batch of 8, efficientnet_b4 at 380 with a batch of 4 (all nine levels),
// and wide_resnet50_2 up to layer3 at 224 (acr.md §7.5). Counter: images/s (wall clock).
// bench/compare_backbones.py runs the same workloads in PyTorch/torchvision on the same cores and
// prints the ratio. Weights are nn's default init with BN at (mean 0, var 1): the speed does not
// depend on the values.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>

#include "bench/bench_util.h"
#include "models/backbones.h"
#include "tensor/random.h"

using namespace normad;

namespace {

// features(x, levels) on x [N, 3, S, S]; NORMAD_BENCH_TINY=1 shrinks every case to one 64x64
// image (bench/compare_backbones.py --tiny: a check that the set-up runs, not a speed figure).
void bm_backbone(benchmark::State& st, const char* name, int64_t N, int64_t S, std::vector<int> levels) {
  const char* tiny = std::getenv("NORMAD_BENCH_TINY");
  if (tiny && std::string(tiny) == "1") N = 1, S = 64;
  auto b = models::make_backbone(name);
  Generator g(5);
  Tensor x = g.normal({N, 3, S, S});
  auto run = [&] { benchmark::DoNotOptimize(b->features(x, levels)); };
  if (!bench::warm_up(st, run)) return;
  for (auto _ : st) run();
  bench::set_rate(st, "images/s", double(N));
}

}  // namespace

BENCHMARK_CAPTURE(bm_backbone, r18, "resnet18", 8, 224, std::vector<int>{0, 1, 2, 3, 4})
    ->Name("backbone/resnet18_224_n8")->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);
BENCHMARK_CAPTURE(bm_backbone, b4, "efficientnet_b4", 4, 380, std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8})
    ->Name("backbone/efficientnet_b4_380_n4")->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);
BENCHMARK_CAPTURE(bm_backbone, wrn, "wide_resnet50_2", 8, 224, std::vector<int>{3})
    ->Name("backbone/wide_resnet50_2_layer3_224_n8")->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);
