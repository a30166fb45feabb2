// Shared helpers of normad's Google Benchmark programs (bench/bench_*.cpp).
#pragma once

#include <benchmark/benchmark.h>

#include <exception>

#include "tensor/tensor.h"

#ifdef NORMAD_HAS_CUDA
#include "cuda/device.h"
#endif

namespace normad::bench {

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

}  // namespace normad::bench
