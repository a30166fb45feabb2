// normad caching pool: the block cache behind the CUDA allocator (cuda/allocator.cpp, over
// cudaMalloc) and the CPU allocator's large blocks (tensor/tensor.cpp, over mmap). Free of CUDA and
// of the operating system, so its logic is tested on any machine with a fake raw allocator.
// Math: a request of n bytes takes a block of round_up(n, 512) bytes; the best fit is the smallest
// cached block b with need <= b <= 2 need; with none, raw memory is asked for, and when that fails
// every cached block is handed back (flush) and the request retried once. A bounded pool (the CPU's)
// holds at most twice the most bytes ever in use at once (in use + cached <= 2 peak): past that,
// the blocks cached longest ago go back to raw memory first. (A bound of 1x the peak evicts part of
// every training step's blocks at its end and refaults them in the next: ACR-NTL step 452k page
// faults against 144k at 1.5x or 2x, for the same peak resident memory.)
// Tested by tests/test_caching_pool.cpp (rounding, best fit, the 2x limit, flush and retry on a
// simulated out-of-memory, the bound and its eviction order, counters, release of an unknown
// pointer).
//
// Blocks are never split or merged (PyTorch's caching allocator does both; normad's tensors are few
// and repeat their sizes every training step, so whole-block reuse serves them).
// CUDA stream safety: every kernel and copy of normad runs on one stream (cuda/device.h), so a block
// released on the host and reused by the next op is written only after the earlier work on it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

#include "tensor/tensor.h"

namespace normad {

// Where the pool gets memory from: cudaMalloc/cudaFree, mmap/munmap, a counting fake in the tests.
struct RawMemory {
  void* (*alloc)(size_t bytes, void* ctx);  // nullptr when out of memory (other errors throw)
  void (*free)(void* p, size_t bytes, void* ctx);
  void* ctx = nullptr;
};

class CachingPool {
 public:
  static constexpr size_t kRound = 512;  // bytes; also the smallest block

  // bounded: in use + cached <= twice the peak in use (see above); unbounded caches everything
  // until raw memory runs out (the GPU's pool, as PyTorch's).
  explicit CachingPool(RawMemory raw, bool bounded = false) : raw_(raw), bounded_(bounded) {}
  CachingPool(const CachingPool&) = delete;
  CachingPool& operator=(const CachingPool&) = delete;
  // No destructor flush: the pools are statics, and at exit the CUDA runtime may already be gone;
  // the operating system takes the blocks back.

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
      void* p = it->second.p;
      const size_t size = it->first;
      age_.erase(it->second.age);
      free_.erase(it);
      cached_ -= size;
      return hand_out(p, size);
    }
    trim_locked(need);  // the footprint with this block stays within the bound
    void* p = raw_.alloc(need, raw_.ctx);
    if (!p && !free_.empty()) {
      // Out of memory: cached blocks of other sizes may be what is missing. Hand them back, retry once.
      flush_locked();
      p = raw_.alloc(need, raw_.ctx);
    }
    if (!p) return nullptr;
    ++raw_allocations_;
    return hand_out(p, need);
  }

  // Returns a block from allocate() to the cache; `bytes` is the size asked for (checked).
  void release(void* p, size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(p);
    if (it == live_.end())
      throw Error("caching pool: release of a pointer it did not allocate (or released twice)");
    const size_t size = it->second;
    if (round_up(bytes) > size)
      throw Error("caching pool: release of " + std::to_string(bytes) + " bytes from a block of " +
                  std::to_string(size));
    // (in use + cached is unchanged by a release: the bound needs no trimming here)
    age_.push_back({});
    try {
      age_.back() = free_.emplace(size, Cached{p, std::prev(age_.end())});
    } catch (...) {  // bad_alloc: the block stays in live_, the books as before
      age_.pop_back();
      throw;
    }
    live_.erase(it);
    in_use_ -= size;
    cached_ += size;
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
  int64_t raw_allocations() const {  // blocks asked of raw memory so far (misses of the cache)
    std::lock_guard<std::mutex> lock(mu_);
    return raw_allocations_;
  }

 private:
  struct Cached;
  using FreeMap = std::multimap<size_t, Cached>;
  struct Cached {
    void* p;
    std::list<FreeMap::iterator>::iterator age;  // its place in age_
  };

  void* hand_out(void* p, size_t size) {
    live_[p] = size;
    in_use_ += size;
    peak_in_use_ = std::max(peak_in_use_, in_use_);
    return p;
  }
  // The bound: with `extra` more bytes in use, in use + cached stays within twice the peak in use;
  // the blocks cached longest ago go back first. Unbounded pools keep everything.
  void trim_locked(size_t extra) {
    if (!bounded_) return;
    const int64_t in_use = in_use_ + int64_t(extra), bound = 2 * std::max(peak_in_use_, in_use);
    while (!age_.empty() && in_use + cached_ > bound) evict_oldest_locked();
  }
  // The books first, then the raw free: a free that throws (cudaFree after a sticky error) leaves
  // no entry pointing at a block that is gone.
  void evict_oldest_locked() {
    const FreeMap::iterator oldest = age_.front();
    void* const p = oldest->second.p;
    const size_t size = oldest->first;
    age_.pop_front();
    free_.erase(oldest);
    cached_ -= size;
    raw_.free(p, size, raw_.ctx);
  }
  void flush_locked() {
    while (!age_.empty()) evict_oldest_locked();
  }

  RawMemory raw_;
  const bool bounded_;
  mutable std::mutex mu_;
  FreeMap free_;                              // cached blocks by size (best fit = lower_bound)
  std::list<FreeMap::iterator> age_;          // the same blocks, cached longest ago first
  std::unordered_map<void*, size_t> live_;    // blocks handed out, with their rounded size
  int64_t in_use_ = 0, cached_ = 0, peak_in_use_ = 0, raw_allocations_ = 0;
};

}  // namespace normad
