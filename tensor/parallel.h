// normad threading: one place that sets the thread count (oneTBB global_control) and a
// parallel_for over index ranges. Chunking may vary with the thread count, so every caller computes
// each output element entirely inside one index (never a sum across chunks): results are then
// identical for any number of threads.
// Tested indirectly: tests/test_ops.cpp compares 1-thread and 2-thread results bit for bit.
#pragma once

#include <cstdint>

#include <tbb/blocked_range.h>
#include <tbb/parallel_sort.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

namespace normad {

// Limits oneTBB to n threads for the rest of the process (n <= 0: the machine's default).
void set_num_threads(int n);
int num_threads();

// ceil(n / num_threads()): a task size that gives each thread one contiguous share of n items
// (reductions over channels read each sample's block of them in one run, not one channel's rows
// far apart).
inline int64_t thread_share(int64_t n) { return (n + num_threads() - 1) / num_threads(); }

// Calls f(begin, end) over [0, n) in chunks of at most `grain` (grain/2 to grain; one call with the
// whole range when n <= grain or with one thread).
template <class F>
void parallel_for(int64_t n, int64_t grain, F&& f) {
  if (n <= 0) return;
  if (n <= grain || num_threads() == 1) {
    f(int64_t(0), n);
    return;
  }
  tbb::parallel_for(
      tbb::blocked_range<int64_t>(0, n, grain),
      [&](const tbb::blocked_range<int64_t>& r) { f(r.begin(), r.end()); },
      tbb::simple_partitioner());
}

// Sorts [first, last) ascending on oneTBB's threads. The order of equal elements is unspecified:
// callers sort distinct keys (then the result does not depend on the thread count).
template <class It>
void parallel_sort(It first, It last) {
  tbb::parallel_sort(first, last);
}

}  // namespace normad
