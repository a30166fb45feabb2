// normad's op profiler: every call through the dispatch (tensor/ops.cpp) timed, as Chrome
// trace events (one "X" event per op call: name, input shapes, device, thread; opens in Perfetto or
// chrome://tracing) and as a table per op: calls, total ms, share of the wall time, GFLOP/s (GEMM-
// shaped ops: matmul, bmm, convolutions, distances) or GB/s of the bytes read (the inputs; the rows
// touched for gathers and scatters), and that rate as a fraction of the CPU's ceiling measured at
// the end (normad's own 1024^3 SGEMM and an elementwise op's read rate on the same threads: what
// this build reaches, a lower bound on the hardware's peak). A call that throws is not recorded.
// Math: share = op's self time / wall time of the profiled span; nested ops (a composed op calling
// others) count in the trace but only the outermost call counts in the table, so the shares add up
// to the time spent inside ops.
// Cost when off: one relaxed atomic load per op call (bench/bench_ops.cpp profile/... cases).
// CUDA: ops are asynchronous, so a GPU op's time is its launch unless the profiler waits; with
// the profiler on, every CUDA op waits for the GPU before its event ends (exact per-op times, and a
// slower run).
// Tested by tests/test_profile.cpp (events and totals of known calls, nesting, the trace's JSON, a
// small training step's op totals cover most of its wall time) and tests/test_cli.cpp (--profile).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace normad::profile {

namespace detail {
inline std::atomic<bool> g_on{false};
}
// Whether op calls are being recorded (inline: checked on every op call).
inline bool enabled() { return detail::g_on.load(std::memory_order_relaxed); }

// Starts recording (clearing what was recorded) / stops it.
void start();
void stop();

// One recorded op call.
struct Event {
  std::string name, args;  // op name; input shapes and device ("cpu [960, 1, 28, 28], [64, 1, 3, 3]")
  double begin_us, dur_us;  // since start(), steady clock
  int depth;                // 0: called from outside any op; > 0 nested in another op
  uint64_t thread;          // a small id per thread, in order of first use
  double flops, bytes;      // work estimates (0: unknown); bytes are the bytes read
  bool cuda;                // ran on the GPU (the CPU ceilings do not apply)
};
std::vector<Event> events();  // a copy, in completion order

// The per-op table over the depth-0 events.
struct Row {
  std::string name;
  int64_t calls = 0;
  double total_ms = 0, flops = 0, bytes = 0;
  bool cuda = false;
};
struct Summary {
  double wall_ms = 0;         // from start() to stop()
  double ops_ms = 0;          // the depth-0 events' total
  std::vector<Row> rows;      // by total_ms, largest first
};
Summary summarize();

// The CPU's ceilings on this process's threads, measured once through the CPU backend: a 1024^3
// SGEMM (GFLOP/s) and the read rate of an elementwise op over 64 MB (add_scalar, parallel: GB/s
// read, the unit of the table's "GB/s in"). GPU rows get no fraction.
struct Ceiling {
  double gflops = 0, gbs = 0;
};
Ceiling measure_ceiling();

// Writes the trace (Chrome trace-event JSON, atomically: a temporary file, then a rename) and
// prints the table to `table` (stderr in the CLI).
void write_trace(const std::string& path);
void print_table(FILE* table, const Summary& s, const Ceiling& c);

// RAII timer of one op call; made by the dispatch (tensor/ops.cpp) when enabled() is true.
class Scope {
 public:
  static constexpr size_t kArgsLen = 160;  // the shapes text, cut with "..." beyond

  // `name` must outlive the profiled run (a string literal or a static table entry: records keep
  // the pointer until the table and trace are made).
  Scope(const char* name, const std::vector<const Tensor*>& inputs);
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;
  void set_flops(double f) { flops_ = f; }
  void set_bytes(double b) { bytes_ = b; }  // when the inputs' size says nothing (a gather reads rows)

 private:
  const char* name_;
  char args_[kArgsLen];
  double begin_us_, flops_ = 0, bytes_ = 0;
  int depth_;
  int uncaught_;  // exceptions in flight at the start: a call that throws is not recorded
  bool cuda_;
};

}  // namespace normad::profile
