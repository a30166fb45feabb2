// Shared helpers of normad's Google Benchmark programs (bench/bench_*.cpp).
#pragma once

#include <benchmark/benchmark.h>

#include <exception>

#include "tensor/profile.h"
#include "tensor/tensor.h"

#ifdef NORMAD_HAS_CUDA
#include "cuda/device.h"
#endif

namespace normad::bench {

// Benchmarks whose registration depends on the devices present, registered by main()
// (bench/bench_main.cpp) rather than by a static initialiser (device detection must not run before
// main(): see bench/bench_cuda_distance.cpp).
void register_backend_ops_benchmarks();
void register_cuda_distance_benchmarks();

// Waits for the work a backend queued: CUDA runs asynchronously on normad's stream, so a timing
// loop must wait before its clock stops; the host backends are done when an op returns.
inline void wait_for(Device d) {
#ifdef NORMAD_HAS_CUDA
  if (d == Device::CUDA) cuda::synchronize();
#else
  (void)d;
#endif
}

// Rates use iteration-invariant counts: the value per iteration times iterations / wall seconds.
inline void set_rate(benchmark::State& st, const char* name, double per_iter) {
  st.counters[name] = benchmark::Counter(per_iter, benchmark::Counter::kIsIterationInvariantRate);
}

// Runs `op` once before timing: a warm-up (first-touch allocation, TBB thread start) and a check
// that the op exists and accepts the shapes. On an exception the case is marked as failed.
template <class Op>
bool warm_up(benchmark::State& st, Op&& op) {
  try {
    op();
    return true;
  } catch (const std::exception& e) {
    st.SkipWithError(e.what());
    return false;
  }
}

// The floating-point operations of one call of `op`, as the op profiler counts them (tensor/
// profile.h: 2 per multiply-add of the GEMM-shaped ops, matmul, bmm, the convolutions and their
// backward passes, distances; elementwise work is not counted, so this is the useful GEMM work).
// Runs `op` once more. Returns 0 inside a profiled run (NORMAD_BENCH_PROFILE): restarting the
// profiler would drop what it recorded.
template <class Op>
double count_flops(Op&& op) {
  if (profile::enabled()) return 0;
  profile::start();
  try {
    op();
  } catch (...) {
    profile::stop();
    throw;
  }
  profile::stop();
  double flops = 0;
  for (const profile::Event& e : profile::events())
    if (e.depth == 0) flops += e.flops;
  return flops;
}

// The most CPU tensor memory in use during one call of `op` (MiB; the CPU allocator's high-water
// mark, tensor storage only: parameters, optimiser state, activations, gradients). Runs `op` once
// more.
template <class Op>
double peak_tensor_mib(Op&& op) {
  cpu_allocator().reset_peak();
  op();
  return double(cpu_allocator().stats().peak) / (1 << 20);
}

// Warm-up, then the "flops" counter (FLOP/s over the timed loop) from one counted call and the
// "tensor_peak_MiB" counter (peak_tensor_mib) from one more.
template <class Op>
bool warm_up_counted(benchmark::State& st, Op&& op) {
  if (!warm_up(st, op)) return false;
  if (const double f = count_flops(op); f > 0) set_rate(st, "flops", f);
  st.counters["tensor_peak_MiB"] = peak_tensor_mib(op);
  return true;
}

}  // namespace normad::bench
