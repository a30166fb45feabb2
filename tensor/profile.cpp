// normad's op profiler (see tensor/profile.h): events recorded by Scope, the per-op table, the
// measured ceilings and the Chrome trace file.
// Math: share = total / wall; rate = flops (or input bytes) / total; fraction = rate / ceiling.
// Tested by tests/test_profile.cpp.
#include "tensor/profile.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "tensor/backend.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace normad::profile {

namespace {

using Clock = std::chrono::steady_clock;

// Recorded calls live outside the malloc heap: a run's tensors are large blocks in glibc's heap,
// and small, long-lived event records placed between them (a std::string per event) kept freed
// blocks from merging, so the heap grew and was trimmed every step and each step's tensors
// faulted in fresh pages: ACR-NTL's step measured 930 ms profiled against 644 ms plain, with
// twice the page faults. Records are plain structs in mmap'd chunks; recording allocates nothing
// from the heap (the Scope formats its shapes into a fixed buffer too).
struct Record {
  const char* name;
  char args[Scope::kArgsLen];
  double begin_us, dur_us, flops, bytes;
  int depth;
  uint64_t thread;
  bool cuda;
};
constexpr size_t kChunkRecords = 8192;
struct Chunk {
  Record rec[kChunkRecords];
};

std::mutex g_mutex;  // guards everything below
std::vector<Chunk*> g_chunks;  // mmap'd; the vector itself grows once per 8192 calls
size_t g_count = 0;            // records in use
Clock::time_point g_t0, g_t1;
bool g_stopped = false;
std::atomic<uint64_t> g_next_thread{0};

// Record i (its chunk mapped; the caller holds g_mutex).
Record& record(size_t i) { return g_chunks[i / kChunkRecords]->rec[i % kChunkRecords]; }

// A free record slot (nullptr when the system refuses memory: the event is lost, not the run).
Record* next_record() {
  const size_t chunk = g_count / kChunkRecords;
  if (chunk == g_chunks.size()) {
    void* m = mmap(nullptr, sizeof(Chunk), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return nullptr;
    try {
      g_chunks.push_back(static_cast<Chunk*>(m));
    } catch (...) {
      munmap(m, sizeof(Chunk));
      return nullptr;
    }
  }
  return &record(g_count++);
}

thread_local int t_depth = 0;  // ops in progress on this thread
thread_local uint64_t t_thread = g_next_thread++;

double us_since_start(Clock::time_point t) {
  return std::chrono::duration<double, std::micro>(t - g_t0).count();
}

// JSON string contents: quotes and backslashes escaped, control characters dropped.
std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) out += c;
  }
  return out;
}

}  // namespace

void start() {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_count = 0;  // the chunks stay mapped for the next run
  g_t0 = Clock::now();
  g_stopped = false;
  detail::g_on.store(true);
}

void stop() {
  detail::g_on.store(false);
  std::lock_guard<std::mutex> lock(g_mutex);
  g_t1 = Clock::now();
  g_stopped = true;
}

std::vector<Event> events() {
  std::lock_guard<std::mutex> lock(g_mutex);
  std::vector<Event> out;
  out.reserve(g_count);
  for (size_t i = 0; i < g_count; ++i) {
    const Record& r = record(i);
    out.push_back({r.name, r.args, r.begin_us, r.dur_us, r.depth, r.thread, r.flops, r.bytes, r.cuda});
  }
  return out;
}

Scope::Scope(const char* name, const std::vector<const Tensor*>& inputs)
    : name_(name), depth_(t_depth), uncaught_(std::uncaught_exceptions()), cuda_(false) {
  // what the op reads: its inputs' shapes (for the trace, "cpu [960, 1, 28, 28], [64, 1, 3, 3]",
  // cut with "..." past kArgsLen) and bytes (for the GB/s column); no heap allocation
  size_t len = 0;
  bool cut = false;  // some text did not fit
  auto put = [&](const char* text) {
    for (; *text; ++text) {
      if (len + 1 == kArgsLen) {
        cut = true;
        return;
      }
      args_[len++] = *text;
    }
  };
  bool first = true;
  for (const Tensor* t : inputs) {
    if (!t || !t->defined()) continue;
    if (first) put(device_name(t->device())), put(" ");
    else put(", ");
    put("[");
    char num[24];
    for (int64_t d = 0; d < t->dim(); ++d) {
      std::snprintf(num, sizeof num, d ? ", %lld" : "%lld", static_cast<long long>(t->size(d)));
      put(num);
    }
    put("]");
    bytes_ += 4.0 * double(t->numel());
    cuda_ = cuda_ || t->device() == Device::CUDA;
    first = false;
  }
  if (cut) std::memcpy(args_ + kArgsLen - 4, "...", 3);
  args_[len] = '\0';
  ++t_depth;  // last: nothing above may leave it raised
  begin_us_ = us_since_start(Clock::now());
}

Scope::~Scope() {
  // a GPU op has only been queued: wait for it, so the event holds its run and not its launch. A
  // destructor must not throw (it may run while an op's own error unwinds): a failed wait is left
  // for the next op or copy to report.
  if (cuda_) {
    try {
      cuda_synchronize();
    } catch (...) {
    }
  }
  const double end_us = us_since_start(Clock::now());
  --t_depth;
  if (std::uncaught_exceptions() > uncaught_) return;  // the call failed: no event
  std::lock_guard<std::mutex> lock(g_mutex);
  Record* r = next_record();
  if (!r) return;  // out of memory: lose the event rather than fail the op
  r->name = name_;
  std::memcpy(r->args, args_, kArgsLen);
  r->begin_us = begin_us_, r->dur_us = end_us - begin_us_;
  r->flops = flops_, r->bytes = bytes_;
  r->depth = depth_, r->thread = t_thread, r->cuda = cuda_;
}

Summary summarize() {
  std::lock_guard<std::mutex> lock(g_mutex);
  Summary s;
  const Clock::time_point end = g_stopped ? g_t1 : Clock::now();
  s.wall_ms = std::chrono::duration<double, std::milli>(end - g_t0).count();
  std::map<std::string, Row> by_name;
  for (size_t i = 0; i < g_count; ++i) {
    const Record& e = record(i);
    if (e.depth != 0) continue;  // inside another op: its time is already in the outer op's
    Row& r = by_name[e.name];
    r.name = e.name;
    ++r.calls;
    r.total_ms += e.dur_us / 1000.0;
    r.flops += e.flops;
    r.bytes += e.bytes;
    r.cuda = r.cuda || e.cuda;
    s.ops_ms += e.dur_us / 1000.0;
  }
  for (auto& [name, r] : by_name) s.rows.push_back(r);
  std::sort(s.rows.begin(), s.rows.end(), [](const Row& a, const Row& b) { return a.total_ms > b.total_ms; });
  return s;
}

Ceiling measure_ceiling() {
  static const Ceiling c = [] {
    Ceiling out;
    // best of a few runs of each: the machine's rate, not its warm-up
    Generator g(0);
    const Tensor a = g.uniform({1024, 1024}), b = g.uniform({1024, 1024});
    double best = 1e30;
    for (int r = 0; r < 5; ++r) {
      const auto t0 = Clock::now();
      const Tensor p = matmul(a, b);
      best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
    }
    out.gflops = 2.0 * 1024 * 1024 * 1024 / best / 1e9;
    // an elementwise op over 64 MB, parallel as the ops are: its read rate
    const Tensor big = Tensor::zeros({int64_t(1) << 24});
    best = 1e30;
    for (int r = 0; r < 5; ++r) {
      const auto t0 = Clock::now();
      const Tensor y = add_scalar(big, 1.f);
      best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
    }
    out.gbs = 4 * double(int64_t(1) << 24) / best / 1e9;
    return out;
  }();
  return c;
}

void write_trace(const std::string& path) {
  const std::vector<Event> evs = events();
  std::ostringstream os;
  os << "{\"displayTimeUnit\": \"ms\", \"traceEvents\": [\n";
  for (size_t i = 0; i < evs.size(); ++i) {
    const Event& e = evs[i];
    char num[160];
    std::snprintf(num, sizeof num, "\"ph\": \"X\", \"ts\": %.3f, \"dur\": %.3f, \"pid\": 1, \"tid\": %llu", e.begin_us,
                  e.dur_us, (unsigned long long)e.thread);
    os << "{\"name\": \"" << json_escape(e.name) << "\", \"cat\": \"op\", " << num << ", \"args\": {\"inputs\": \""
       << json_escape(e.args) << "\", \"depth\": " << e.depth;
    if (e.flops > 0) os << ", \"flops\": " << e.flops;
    os << "}}" << (i + 1 < evs.size() ? ",\n" : "\n");
  }
  os << "]}\n";
  // nothing half-written: a temporary file beside the target (named by the process), then a rename
  const std::string tmp = path + ".tmp" + std::to_string(::getpid());
  bool ok = false;
  {
    std::ofstream f(tmp, std::ios::binary);
    if (f) {
      f << os.str();
      f.flush();
      ok = bool(f);
      f.close();
      ok = ok && !f.fail();
    }
  }
  std::error_code ec;
  if (ok) std::filesystem::rename(tmp, path, ec);
  if (!ok || ec) {
    std::filesystem::remove(tmp, ec);
    throw Error("--profile: " + path + ": cannot write the trace");
  }
}

void print_table(FILE* out, const Summary& s, const Ceiling& c) {
  std::fprintf(out, "op profile: wall %.1f ms, inside ops %.1f ms (%.1f%%); CPU ceiling %.1f GFLOP/s (1024^3 SGEMM), "
                    "%.1f GB/s read (elementwise op)\n",
               s.wall_ms, s.ops_ms, s.wall_ms > 0 ? 100 * s.ops_ms / s.wall_ms : 0.0, c.gflops, c.gbs);
  std::fprintf(out, "%-28s %8s %11s %7s %16s %11s\n", "op", "calls", "total ms", "share", "rate", "of ceiling");
  for (const Row& r : s.rows) {
    const double secs = r.total_ms / 1000.0;
    char rate[32] = "-", frac[16] = "-";
    // a GPU op's rate against the CPU's ceiling would mean nothing: no fraction for it
    if (secs > 0 && r.flops > 0) {
      std::snprintf(rate, sizeof rate, "%.1f GFLOP/s", r.flops / secs / 1e9);
      if (c.gflops > 0 && !r.cuda) std::snprintf(frac, sizeof frac, "%.0f%%", 100 * r.flops / secs / 1e9 / c.gflops);
    } else if (secs > 0 && r.bytes > 0) {
      std::snprintf(rate, sizeof rate, "%.1f GB/s in", r.bytes / secs / 1e9);
      if (c.gbs > 0 && !r.cuda) std::snprintf(frac, sizeof frac, "%.0f%%", 100 * r.bytes / secs / 1e9 / c.gbs);
    }
    std::fprintf(out, "%-28s %8lld %11.2f %6.1f%% %16s %11s\n", r.name.c_str(), (long long)r.calls, r.total_ms,
                 s.wall_ms > 0 ? 100 * r.total_ms / s.wall_ms : 0.0, rate, frac);
  }
}

}  // namespace normad::profile
