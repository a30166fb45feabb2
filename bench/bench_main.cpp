// normad_bench's main: Google Benchmark's, plus the op profiler (tensor/profile.h) over a run.
// With NORMAD_BENCH_PROFILE=FILE.json in the environment, every op call of every case that runs
// (warm-up and timing loops alike) is recorded; at exit the per-op table goes to stderr and the
// Chrome trace to FILE. Run one case at a time to read one workload's table, e.g.
//   NORMAD_BENCH_PROFILE=/tmp/acr.json build/normad_bench --benchmark_filter=acr_dsvdd_step/
// The table's wall time includes Google Benchmark's own work between cases, so "inside ops" reads
// a little low. Unset, the profiler stays off and this is BENCHMARK_MAIN() plus the registration of
// the device-dependent cases (bench/bench_util.h).
// NORMAD_BENCH_CONV=planar|channels_last|direct|implicit|small_depth forces one convolution path
// for the whole run (tensor/cpu.h, set_conv_columns), to compare a kernel with the others on the
// same cases; unset or automatic: the library's own choice. Any other value is an error.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "bench/bench_util.h"
#include "tensor/cpu.h"
#include "tensor/profile.h"

int main(int argc, char** argv) {
  // the device-dependent cases: registered here, after static initialisation (bench/bench_util.h)
  normad::bench::register_backend_ops_benchmarks();
  normad::bench::register_cuda_distance_benchmarks();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (const char* conv = std::getenv("NORMAD_BENCH_CONV")) {
    using normad::cpu::ConvColumns;
    const std::string c = conv;
    const ConvColumns columns = c == "planar" ? ConvColumns::planar
                              : c == "channels_last" ? ConvColumns::channels_last
                              : c == "direct" ? ConvColumns::direct
                              : c == "implicit" ? ConvColumns::implicit
                              : c == "small_depth" ? ConvColumns::small_depth
                                                : ConvColumns::automatic;
    if (columns == ConvColumns::automatic && !c.empty() && c != "automatic") {
      std::fprintf(stderr, "normad_bench: NORMAD_BENCH_CONV=%s: expected planar, channels_last, "
                           "direct, implicit, small_depth or automatic\n", conv);
      return 1;
    }
    normad::cpu::set_conv_columns(columns);
  }
  const char* env = std::getenv("NORMAD_BENCH_PROFILE");
  const std::string trace = env ? env : "";
  if (!trace.empty()) normad::profile::start();
  benchmark::RunSpecifiedBenchmarks();
  if (!trace.empty()) {
    normad::profile::stop();
    normad::profile::print_table(stderr, normad::profile::summarize(),
                                 normad::profile::measure_ceiling());
    normad::profile::write_trace(trace);
  }
  benchmark::Shutdown();
  return 0;
}
