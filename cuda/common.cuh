// normad CUDA kernel plumbing shared by every kernel family (cuda/*.cu).
// Each op is a small struct (a "body") holding output and input pointers and sizes, whose
// operator()(i) computes output element i; v1 of every family launches it one thread per element
// with a grid-stride loop (for_each_kernel below). Bodies are __host__ __device__: the tests run
// them on the host over host arrays (tests/test_cuda.cpp, [cuda_body]), which checks their index
// math and formulas against the CPU ops without a GPU. Launch configuration, memory and device
// math-library accuracy are only checked on a GPU.
// Math: none. Shape legend: [outer, R, inner] is a tensor viewed around one reduced/sliced dim.
#pragma once

#include <cstdint>

#ifdef __CUDACC__
#define NORMAD_HD __host__ __device__
#else
#define NORMAD_HD
#endif

namespace normad::cuda {

// The most dims a strided kernel handles (after merging dims that are contiguous in every operand;
// normad's tensors have at most 5).
constexpr int kMaxDims = 8;

// An output of up to kMaxDims dims with the element strides of up to two inputs along each dim
// (0 along broadcast dims). Passed by value as a kernel argument (200 bytes).
//   out [2, 3, 4] = a [2, 3, 4] + b [4]: size {6, 4} (the first two dims merged: contiguous in a,
//   broadcast in b), stride_a {4, 1}, stride_b {0, 1}
struct StridedIndex {
  int rank = 0;
  int64_t size[kMaxDims] = {};
  int64_t stride_a[kMaxDims] = {};
  int64_t stride_b[kMaxDims] = {};

  // Offsets into a and b of output element i (row-major over size).
  NORMAD_HD void offsets(int64_t i, int64_t& ia, int64_t& ib) const {
    ia = 0;
    ib = 0;
    // Peel coordinates from the innermost dim out; dim 0 takes the rest without a division.
    for (int d = rank - 1; d > 0; --d) {
      const int64_t c = i % size[d];
      i /= size[d];
      ia += c * stride_a[d];
      ib += c * stride_b[d];
    }
    if (rank > 0) {
      ia += i * stride_a[0];
      ib += i * stride_b[0];
    }
  }
};

}  // namespace normad::cuda

#ifdef __CUDACC__
#include "cuda/check.h"
#include "cuda/device.h"

namespace normad::cuda {

// v1 of every elementwise-shaped op: one thread per element, grid-stride (the grid is capped at a
// few blocks per SM, each thread then loops).
template <class Body>
__global__ void for_each_kernel(int64_t n, Body body) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) body(i);
}

template <class Body>
void launch_for_each(int64_t n, const Body& body) {
  if (n <= 0) return;
  for_each_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(n, body);
  NORMAD_CUDA_CHECK_LAUNCH();
}

}  // namespace normad::cuda
#endif
