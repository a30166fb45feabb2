// normad caching pool: the block cache behind the CUDA allocator (cuda/allocator.cpp), kept free of
// CUDA so that its logic is tested on any machine with a fake raw allocator.
// Math: a request of n bytes takes a block of round_up(n, 512) bytes; the best fit is the smallest
// cached block b with need <= b <= 2 need; with none, raw memory is asked for, and when that fails
// every cached block is handed back (flush) and the request retried once.
// Tested by tests/test_cuda.cpp ([cuda_pool]: rounding, best fit, the 2x limit, flush and retry on
// a simulated out-of-memory, counters, release of an unknown pointer). Runs without a GPU.
//
// Blocks are never split or merged (PyTorch's caching allocator does both; normad's tensors are few
// and repeat their sizes every training step, so whole-block reuse serves them).
// Stream safety: every kernel and copy of normad runs on one stream (cuda/device.h), so a block
// released on the host and reused by the next op is written only after the earlier work on it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

#include "tensor/tensor.h"

namespace normad::cuda {

// Where the pool gets memory from: cudaMalloc/cudaFree on a GPU, a counting fake in the tests.
struct RawMemory {
  void* (*alloc)(size_t bytes, void* ctx);  // nullptr when out of memory (other errors throw)
  void (*free)(void* p, void* ctx);
  void* ctx = nullptr;
};

class CachingPool {
 public:
  static constexpr size_t kRound = 512;  // bytes; also the smallest block

  explicit CachingPool(RawMemory raw) : raw_(raw) {}
  CachingPool(const CachingPool&) = delete;
  CachingPool& operator=(const CachingPool&) = delete;

  static size_t round_up(size_t bytes) {
    return bytes == 0 ? kRound : (bytes + kRound - 1) / kRound * kRound;
  }

  // A block of at least `bytes`, or nullptr when raw memory is exhausted even after a flush.
  void* allocate(size_t bytes) {
    const size_t need = round_up(bytes);
    std::lock_guard<std::mutex> lock(mu_);
    // Best fit: the smallest cached block that holds `need`, if it wastes at most half of itself.
    auto it = free_.lower_bound(need);
    if (it != free_.end() && it->first <= 2 * need) {
      void* p = it->second;
      live_[p] = it->first;
      in_use_ += it->first;
      cached_ -= it->first;
      free_.erase(it);
      return p;
    }
    void* p = raw_.alloc(need, raw_.ctx);
    if (!p && !free_.empty()) {
      // Out of memory: cached blocks of other sizes may be what is missing. Hand them back, retry once.
      flush_locked();
      p = raw_.alloc(need, raw_.ctx);
    }
    if (!p) return nullptr;
    live_[p] = need;
    in_use_ += need;
    return p;
  }

  // Returns a block from allocate() to the cache; `bytes` is the size asked for (checked).
  void release(void* p, size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(p);
    if (it == live_.end())
      throw Error("cuda pool: release of a pointer it did not allocate (or released twice)");
    if (round_up(bytes) > it->second)
      throw Error("cuda pool: release of " + std::to_string(bytes) + " bytes from a block of " +
                             std::to_string(it->second));
    free_.emplace(it->second, p);
    cached_ += it->second;
    in_use_ -= it->second;
    live_.erase(it);
  }

  // Hands every cached block back to raw memory; blocks in use are untouched.
  void flush() {
    std::lock_guard<std::mutex> lock(mu_);
    flush_locked();
  }

  int64_t cached_bytes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return cached_;
  }
  int64_t in_use_bytes() const {  // rounded block sizes (the Allocator counts the bytes asked for)
    std::lock_guard<std::mutex> lock(mu_);
    return in_use_;
  }

 private:
  void flush_locked() {
    for (auto& [bytes, p] : free_) raw_.free(p, raw_.ctx);
    free_.clear();
    cached_ = 0;
  }

  RawMemory raw_;
  mutable std::mutex mu_;
  std::multimap<size_t, void*> free_;         // cached blocks by size (best fit = lower_bound)
  std::unordered_map<void*, size_t> live_;    // blocks handed out, with their rounded size
  int64_t in_use_ = 0, cached_ = 0;
};

}  // namespace normad::cuda
