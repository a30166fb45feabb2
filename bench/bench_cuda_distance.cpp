// Kernel-lab timings of the CUDA distance family (cuda/distance.cuh): every version of
// pairwise_sqdist (v3, the cuBLAS GEMM form FAISS uses, is the yardstick), of its backward (v2 is
// cuBLAS-based) and of l2_normalize, side by side on the same inputs, through the public ops with
// the version knob set. Registered only when a GPU is found (nothing without one).
// Math: pairwise_sqdist 3 M N D flops counted as 2 M N D (one multiply-add per pair and k, as a
// GEMM); backward 4 M N D; normalisation reports GB/s only.
// Timing: each iteration waits for the GPU (cuda::synchronize), so a time includes the launch
// overhead of one op; inputs stay in L2 between iterations for the small shapes (no flush).
// Tested by: the versions' values by tests/test_cuda_distance.cpp ([cuda]); this file only times.
// Run: build/normad_bench --benchmark_filter=cuda_distance/ --benchmark_counters_tabular=true
// Shapes: a [M, D], b [N, D]; x [M, D].
#include <benchmark/benchmark.h>

#ifdef NORMAD_HAS_CUDA

#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "cuda/device.h"
#include "cuda/distance.h"
#include "tensor/backend.h"
#include "tensor/random.h"

using namespace normad;

namespace {

struct Sizes {
  int64_t M, N, D;
};

// Sets the knob for the benchmark's duration and puts auto back after it.
struct Knob {
  void (*set)(int);
  Knob(void (*s)(int), int v) : set(s) { set(v); }
  ~Knob() { set(0); }
};

// Times `op` (which returns the tensors it made, so they are freed in the loop as in use).
template <class Op>
void timed(benchmark::State& st, Op&& op, double bytes, double flops) {
  if (!bench::warm_up(st, [&] { op(), cuda::synchronize(); })) return;
  for (auto _ : st) {
    op();
    cuda::synchronize();
  }
  bench::set_rate(st, "bytes", bytes);
  if (flops > 0) bench::set_rate(st, "flops", flops);
}

void bm_sqdist(benchmark::State& st, Sizes s, int version) {
  Generator g(1);
  const Tensor a = g.normal({s.M, s.D}).to(Device::CUDA), b = g.normal({s.N, s.D}).to(Device::CUDA);
  Knob knob(cuda::set_pairwise_sqdist_version, version);
  timed(st, [&] { return pairwise_sqdist(a, b); }, 4.0 * double(s.M * s.D + s.N * s.D + s.M * s.N),
        2.0 * double(s.M) * double(s.N) * double(s.D));
}

void bm_sqdist_backward(benchmark::State& st, Sizes s, int version) {
  Generator g(2);
  const Tensor a = g.normal({s.M, s.D}).to(Device::CUDA), b = g.normal({s.N, s.D}).to(Device::CUDA);
  const Tensor dout = g.normal({s.M, s.N}).to(Device::CUDA), dist = pairwise_sqdist(a, b);
  Knob knob(cuda::set_pairwise_sqdist_backward_version, version);
  timed(st,
        [&] {
          Tensor da, db;
          pairwise_sqdist_backward(dout, a, b, dist, &da, &db);
          return da;
        },
        4.0 * double(2 * s.M * s.D + 2 * s.N * s.D + 2 * s.M * s.N), 4.0 * double(s.M) * double(s.N) * double(s.D));
}

void bm_l2(benchmark::State& st, Sizes s, int version) {
  Generator g(3);
  const Tensor x = g.normal({s.M, s.D}).to(Device::CUDA);
  Knob knob(cuda::set_l2_normalize_version, version);
  timed(st, [&] { return l2_normalize(x); }, 8.0 * double(s.M * s.D), 0);
}

std::string tag(Sizes s) {
  return "[" + std::to_string(s.M) + ", " + std::to_string(s.D) + "] [" + std::to_string(s.N) + ", " +
         std::to_string(s.D) + "]";
}

}  // namespace

// Called from main() (bench/bench_main.cpp), only when a GPU is present. Not from a static
// initialiser: device detection asks whether our kernels have an image for the GPU, and before
// main() the CUDA runtime may not yet have registered the .cu files' kernels (static
// initialisation order across files), so the probe failed ("invalid resource handle") and every
// cuda/ case of the H200 run of 2026-12-04 was skipped.
void normad::bench::register_cuda_distance_benchmarks() {
  if (!device_available(Device::CUDA)) return;
  auto reg = [](const std::string& name, auto fn, Sizes s, int v) {
    benchmark::RegisterBenchmark(name.c_str(), fn, s, v)->Unit(benchmark::kMicrosecond)->UseRealTime();
  };
  // the test's shape, the perf table's, and a large one (FAISS-like: many points, D 128)
  for (Sizes s : {Sizes{1000, 700, 64}, Sizes{1024, 1024, 128}, Sizes{8192, 8192, 128}}) {
    for (int v = 1; v <= cuda::pairwise_sqdist_version_count(); ++v)
      reg("cuda_distance/pairwise_sqdist/v" + std::to_string(v) + (v == 3 ? " (cuBLAS yardstick)/" : "/") + tag(s),
          bm_sqdist, s, v);
    for (int v = 1; v <= cuda::pairwise_sqdist_backward_version_count(); ++v)
      reg("cuda_distance/pairwise_sqdist_backward/v" + std::to_string(v) + "/" + tag(s), bm_sqdist_backward, s, v);
  }
  for (Sizes s : {Sizes{4096, 0, 128}, Sizes{65536, 0, 16}})
    for (int v = 1; v <= cuda::l2_normalize_version_count(); ++v)
      reg("cuda_distance/l2_normalize/v" + std::to_string(v) + "/[" + std::to_string(s.M) + ", " + std::to_string(s.D) + "]",
          bm_l2, s, v);
}

#endif  // NORMAD_HAS_CUDA

#ifndef NORMAD_HAS_CUDA
#include "bench/bench_util.h"
void normad::bench::register_cuda_distance_benchmarks() {}  // a build without CUDA: no cases
#endif
