// normad fixed-shape reduction trees for CUDA kernels: a warp's 32 lanes merged by shuffles at
// offsets 16, 8, 4, 2, 1 (lane i takes lane i + off), then the warps' results merged the same way by
// warp 0. The tree depends only on the block size, so a block's result has the same bits run to run
// (no atomics, no order that depends on scheduling).
// Math: merge(a, b) is any combine that is associative in exact arithmetic (a sum, a Welford merge);
// the rounded result depends on the tree, which is fixed. Partial results are structs of doubles.
// The host emulations below replay exactly the device order over per-thread partial results, so the
// tests can measure what that order does to accuracy without a GPU.
// Tested by tests/test_cuda_batchnorm.cpp and tests/test_cuda_pooling.cpp ([cuda_body]: emulated
// trees against two-pass double statistics and plain sums); the device code only on a GPU ([cuda]).
#pragma once

#include <cstring>

#include "cuda/common.cuh"

namespace normad::cuda {

constexpr int kWarp = 32;

// One warp on the host: lanes[32] reduced in place, the shuffle tree's order.
// (On the device lanes i >= off also compute, merging stale values; only lanes < off feed lane 0.)
template <class T, class Merge>
NORMAD_HD T emulate_warp_tree(T* lanes, Merge merge) {
  for (int off = kWarp / 2; off > 0; off /= 2)
    for (int i = 0; i < off; ++i) lanes[i] = merge(lanes[i], lanes[i + off]);
  return lanes[0];
}

// A block of `threads` (a multiple of 32, at most 1024) on the host: thread t's partial result is
// per_thread[t]; warp w holds threads [32 w, 32 w + 32); warp 0 then merges the warps' results, its
// lanes past the last warp holding T{} (the empty partial result).
template <class T, class Merge>
T emulate_block_tree(const T* per_thread, int threads, Merge merge) {
  T lanes[kWarp], warp_result[kWarp];
  const int warps = threads / kWarp;
  for (int w = 0; w < warps; ++w) {
    for (int l = 0; l < kWarp; ++l) lanes[l] = per_thread[w * kWarp + l];
    warp_result[w] = emulate_warp_tree(lanes, merge);
  }
  for (int l = warps; l < kWarp; ++l) warp_result[l] = T{};
  return emulate_warp_tree(warp_result, merge);
}

}  // namespace normad::cuda

#ifdef __CUDACC__
namespace normad::cuda {

// __shfl_down_sync for a struct of doubles, field by field (the full warp takes part).
template <class T>
__device__ T shfl_down(T v, int off) {
  static_assert(sizeof(T) % sizeof(double) == 0, "partial results are structs of doubles");
  double f[sizeof(T) / sizeof(double)];
  memcpy(f, &v, sizeof(T));
  for (size_t i = 0; i < sizeof(T) / sizeof(double); ++i) f[i] = __shfl_down_sync(0xffffffffu, f[i], off);
  memcpy(&v, f, sizeof(T));
  return v;
}

// The warp's result, in lane 0 (emulate_warp_tree's order).
template <class T, class Merge>
__device__ T warp_tree(T v, Merge merge) {
  for (int off = kWarp / 2; off > 0; off /= 2) v = merge(v, shfl_down(v, off));
  return v;
}

// The block's result, returned to every thread (emulate_block_tree's order). Every thread of the
// block must call it; blockDim.x a multiple of 32. T must be trivially constructible (__shared__).
template <class T, class Merge>
__device__ T block_tree(T v, Merge merge) {
  __shared__ T part[kWarp];
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, warps = blockDim.x / kWarp;
  // 1. each warp's partial result into shared memory
  v = warp_tree(v, merge);
  if (lane == 0) part[warp] = v;
  __syncthreads();
  // 2. warp 0 merges them, empty lanes past the last warp
  if (warp == 0) {
    v = warp_tree(lane < warps ? part[lane] : T{}, merge);
    if (lane == 0) part[0] = v;
  }
  __syncthreads();
  // 3. broadcast; the last barrier lets a later call reuse `part`
  const T result = part[0];
  __syncthreads();
  return result;
}

}  // namespace normad::cuda
#endif
