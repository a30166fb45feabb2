// Broadcast index plans shared by the CPU elementwise loops (tensor/elementwise.cpp) and the CUDA
// launch plans (cuda/plan.cpp): each operand's strides aligned against the output, and the output's
// dims with size-1 dims dropped and neighbours merged where both operands step through them as one
// (as PyTorch's TensorIterator coalesces): [2048, 20, 20] - [2048, 20, 1] becomes 40960 x 20 with
// b's inner stride 0.
// Math: element i of the output reads a at sum_d c_d stride_a[d] (c its coordinates), likewise b.
// Tested through its users: tests/test_ops.cpp (broadcasts of six layouts against plain loops),
// tests/test_cuda.cpp ([cuda_body]: every binary op with broadcasting bit for bit the CPU's).
#pragma once

#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace normad {

// Contiguous strides of `s` aligned to the right of a rank-`rank` output, 0 along size-1 and
// missing dims.
inline std::vector<int64_t> broadcast_strides(const Shape& s, size_t rank) {
  std::vector<int64_t> st(rank, 0);
  int64_t stride = 1;
  for (size_t k = 0; k < s.size(); ++k) {
    const size_t i = s.size() - 1 - k, o = rank - 1 - k;
    st[o] = s[i] == 1 ? 0 : stride;
    stride *= s[i];
  }
  return st;
}

// The output's dims (outermost first) with their strides in a and b, after merging.
struct MergedDims {
  std::vector<int64_t> size, stride_a, stride_b;
};
inline MergedDims merge_dims(const Shape& out, const std::vector<int64_t>& sa, const std::vector<int64_t>& sb) {
  MergedDims m;
  for (size_t d = 0; d < out.size(); ++d) {
    if (out[d] == 1) continue;  // its coordinate is always 0
    if (!m.size.empty() && m.stride_a.back() == sa[d] * out[d] && m.stride_b.back() == sb[d] * out[d]) {
      m.size.back() *= out[d];
      m.stride_a.back() = sa[d];
      m.stride_b.back() = sb[d];
    } else {
      m.size.push_back(out[d]);
      m.stride_a.push_back(sa[d]);
      m.stride_b.push_back(sb[d]);
    }
  }
  return m;
}

}  // namespace normad
