// Branch-free float selection for the CPU kernels: c ? a : b as bit operations on a compare mask.
// GCC keeps a float ?: whose arms compute something (or std::min / std::max) as a branch under the
// default -ftrapping-math, and on data of random sign (activations, gradients) that branch is
// mispredicted half the time: leaky_relu on 1M floats took 5 ms as a branch, 0.1 ms as a select
// (bench case backend_ops/cpu/leaky_relu/1M). The select vectorises and gives the same bits.
// Math: select(c, a, b) = c ? a : b; nan_max(a, b) = b if b > a or b is NaN, else a.
// Also bn_affine and relu_of, batch norm's affine map and ReLU, shared with the convolution that
// normalises its input as it reads it (conv2d_bn_relu_input), so both compile to the same float
// operations and give the same bits; and valid_cols: the output columns whose strided input column lies inside the input, which
// lets a kernel loop over output columns without a bounds test (and so vectorise).
// Tested through its users (tests/test_backend_ops.cpp: leaky_relu, max pooling with NaNs, the
// conv epilogue) against the reference backend's plain ?: loops.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>

namespace normad::cpu {

inline float select(bool c, float a, float b) {
  const int32_t m = -int32_t(c);
  return std::bit_cast<float>((std::bit_cast<int32_t>(a) & m) | (std::bit_cast<int32_t>(b) & ~m));
}

// Whether b replaces a running maximum a, as in PyTorch's max pooling: b is larger, or b is NaN (a
// NaN in a stays too: no b compares greater than it). A bit or, not ||: no branch.
inline bool replaces_max(float b, float a) { return (b > a) | (b != b); }
inline float nan_max(float a, float b) { return select(replaces_max(b, a), b, a); }

// a x + k: batch norm's affine map (tensor/batchnorm.cpp: the forward's z and the fused backward's
// recomputed z; tensor/conv.cpp: conv2d_bn_relu_input's input).
inline float bn_affine(float a, float x, float k) { return a * x + k; }
// max(z, 0) with NaN passing, as PyTorch's ReLU.
inline float relu_of(float z) { return z < 0 ? 0.f : z; }

// Output columns ow whose input column iw0 + ow * stride falls inside [0, W): [lo, hi), clipped to
// [0, OW).
inline void valid_cols(int64_t iw0, int64_t stride, int64_t W, int64_t OW, int64_t& lo, int64_t& hi) {
  lo = iw0 >= 0 ? 0 : (-iw0 + stride - 1) / stride;
  hi = iw0 > W - 1 ? 0 : (W - 1 - iw0) / stride + 1;
  lo = std::min(lo, OW);
  hi = std::clamp(hi, lo, OW);
}

}  // namespace normad::cpu
