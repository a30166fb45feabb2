// Scratch vectors whose data start on a 64-byte cache line, for the CPU kernels' vector loads.
// Math: none. Tested through its users (tests/test_conv.cpp, tests/test_batchnorm.cpp): alignment
// changes no value, only how many cache lines a vector load touches.
#pragma once

#include <cstddef>
#include <new>
#include <vector>

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

}  // namespace normad::cpu
