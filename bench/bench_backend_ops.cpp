// Perf mode of the op harness (ggml's test-backend-ops "perf"): every case of
// tests/backend_cases.h op_perf_cases() on every backend present (cpu, reference, cuda when a GPU is
// found), through the public op, as in the harness's value mode. Reported per call: wall time (µs),
// "bytes" = inputs read + outputs written per second (GB/s) and, for GEMM-shaped cases, "flops"
// (GFLOP/s).
// Math: none; the case table states each case's FLOP count (2 per multiply-add).
// Tested by tests/test_backend_ops.cpp (the same table's small cases are compared with the
// reference; the coverage test checks this table has a case for every Op).
// Run: build/normad_bench --benchmark_filter=backend_ops/ --benchmark_counters_tabular=true
// (add /cpu/ or /reference/ to the filter for one backend). Names: backend_ops/<device>/<case>.
// The reference backend is plain loops in double: expect it 10-1000x slower than cpu, by design.
// CUDA ops run asynchronously: each timed call waits for the GPU (bench::wait_for), so a CUDA time
// includes one synchronisation (~10 us), which dominates the smallest cases.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "tests/backend_cases.h"

using namespace normad;

namespace {

void bm_case(benchmark::State& st, std::shared_ptr<const cases::OpCase> c, Device d) {
  std::vector<Tensor> in = cases::inputs_on(*c, d);
  std::vector<cases::Output> out;
  // warm-up: first-touch allocation, thread start, and a check that the op runs on this backend
  if (!bench::warm_up(st, [&] {
        out = c->run(in);
        bench::wait_for(d);
      }))
    return;
  const double bytes = cases::bytes_moved(in, out);
  for (auto _ : st) {
    out = c->run(in);
    bench::wait_for(d);
    benchmark::DoNotOptimize(out.data());
  }
  bench::set_rate(st, "bytes", bytes);
  if (c->flops > 0) bench::set_rate(st, "flops", c->flops);
}

}  // namespace

// Called from main() (bench/bench_main.cpp), after static initialisation: device_available(CUDA)
// probes the GPU with one of our kernels, which the CUDA runtime registers in a static initialiser
// of its own (see register_cuda_distance_benchmarks). Building the table is cheap: each case makes
// its inputs only when its benchmark runs.
void normad::bench::register_backend_ops_benchmarks() {
  auto table = std::make_shared<const std::vector<cases::OpCase>>(cases::op_perf_cases());
  for (Device d : {Device::CPU, Device::Reference, Device::CUDA}) {
    if (!device_available(d)) continue;
    for (const cases::OpCase& c : *table) {
      // an aliasing pointer: the case lives as long as any benchmark holding it
      std::shared_ptr<const cases::OpCase> cp(table, &c);
      benchmark::RegisterBenchmark(("backend_ops/" + std::string(device_name(d)) + "/" + c.name).c_str(),
                                   bm_case, cp, d)
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
    }
  }
}
