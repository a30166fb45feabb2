// Scratch vectors whose data start on a 64-byte cache line, for the CPU kernels' vector loads, and
// a copy with streaming stores for outputs larger than the caches.
// Math: none. Tested through its users (tests/test_conv.cpp, tests/test_batchnorm.cpp): alignment
// changes no value, only how many cache lines a vector load touches; stream_floats directly in
// tests/test_conv.cpp (every start within a line, against the source).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace normad::cpu {

// Scratch whose data starts on a 64-byte cache line. malloc aligns to 16 bytes (a large block sits
// 16 bytes past a page), so a vector load from a std::vector<float> with whole-vector rows
// straddled two cache lines every time: the small-depth convolution's columns, unaligned, took
// 1.8x as long on one Zen 5 core (tensor/conv.cpp).
template <class T>
struct LineAligned {
  using value_type = T;
  static constexpr std::align_val_t kAlign{64};
  LineAligned() = default;
  template <class U>
  LineAligned(const LineAligned<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlign)); }
  void deallocate(T* p, size_t) { ::operator delete(p, kAlign); }
  template <class U>
  bool operator==(const LineAligned<U>&) const { return true; }
};
using aligned_floats = std::vector<float, LineAligned<float>>;
using aligned_doubles = std::vector<double, LineAligned<double>>;

// Whether an output of n floats is written with stream_floats: when it is larger than the caches
// would keep for its reader (16 MB; the Omniglot net's first layer, 960 samples: 48 MB). A smaller
// one streamed out of the cache is read back from memory by the next op (batch 30: 0.16 -> 0.21 ms).
// Never without AVX-512, where stream_floats is a plain copy (the buffer would only add one).
inline bool streams_output(int64_t n) {
#if defined(__AVX512F__)
  return n * int64_t(sizeof(float)) > (int64_t(16) << 20);
#else
  (void)n;
  return false;
#endif
}

// dst[0, n) = src[0, n) with non-temporal (streaming) stores from dst's first cache line on: for
// outputs far larger than the caches that no one reads before they reach memory, a plain store
// first reads each line it writes (the write costs twice its bytes); a streaming store does not.
// The part of dst before its first line boundary is copied plainly. With `fence` the copy ends
// with a store fence, so the values are visible to whichever thread reads them next; a caller
// streaming several pieces in a row passes false for all but the last (a fence waits for the
// write-combining buffers to drain: one per 3 KB block of the Omniglot net's first layer made it
// 10% slower) or calls stream_fence() itself.
inline void stream_fence() {
#if defined(__AVX512F__)
  _mm_sfence();
#endif
}
inline void stream_floats(float* dst, const float* src, int64_t n, bool fence = true) {
#if defined(__AVX512F__)
  constexpr int64_t kV = 16;
  int64_t head = int64_t((64 - reinterpret_cast<uintptr_t>(dst) % 64) % 64);
  if (head % sizeof(float) != 0 || n < 4 * kV) {  // dst not float-aligned to a line, or short
    std::memcpy(dst, src, sizeof(float) * n);
    return;
  }
  head /= int64_t(sizeof(float));
  std::memcpy(dst, src, sizeof(float) * head);
  int64_t i = head;
  for (; i + kV <= n; i += kV) _mm512_stream_ps(dst + i, _mm512_loadu_ps(src + i));
  std::memcpy(dst + i, src + i, sizeof(float) * (n - i));
  if (fence) _mm_sfence();
#else
  (void)fence;
  std::memcpy(dst, src, sizeof(float) * n);
#endif
}

}  // namespace normad::cpu
