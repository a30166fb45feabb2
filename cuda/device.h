// normad's CUDA device: detection (once per process), the one stream all of normad's work runs on,
// the cuBLAS handle bound to it, launch sizes and scratch memory for kernels.
// Math: none. Tested by tests/test_cuda.cpp: without a driver or a GPU, detection reports why in
// one line and nothing crashes ([cuda_detect], runs here); the rest needs a GPU ([cuda]).
//
// Device 0 only. Every kernel, copy and cuBLAS call is issued on stream(); copies to the host
// synchronise it before the host reads, so ops look synchronous to callers above tensor/.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "cuda/cublas.h"

namespace normad::cuda {

// Whether a usable GPU is present (a driver, a device, and one that can run the compiled kernels).
// Detected once, on the first call, and kept. Call it from main() or later, never from a static
// initialiser: the kernel probe needs the CUDA runtime to have registered normad's kernels, which
// happens in static initialisers of the .cu files in an unspecified order (normad_bench's
// registration did, and every cuda/ case of its 2026-12-04 H200 run was skipped).
bool present();
// Why not, in one line ("" when present), e.g. "no CUDA device: cudaGetDeviceCount returned
// 'CUDA driver version is insufficient for CUDA runtime version'".
const std::string& unavailable_reason();

cudaStream_t stream();      // created on first use; throws normad::Error when !present()
cublasHandle_t cublas();    // created on first use, bound to stream()
void synchronize();         // waits for everything issued on stream()

// Launch sizes of the grid-stride kernels: kThreads per block, at most 32 blocks per SM.
constexpr int kThreads = 256;
unsigned blocks_for(int64_t n);

// Scratch device memory for one op (index lists, partial sums), from the CUDA allocator's cache but
// not counted as tensor memory. Released when it goes out of scope: safe right after the launch
// that reads it, because any later user of the block is ordered after it on stream().
class Scratch {
 public:
  explicit Scratch(size_t bytes);
  ~Scratch();
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  void* get() const { return ptr_; }

 private:
  void* ptr_;
  size_t bytes_;
};

// The kernel image probe used by detection (cuda/elementwise.cu): cudaSuccess when this device can
// run normad's kernels (the build's CMAKE_CUDA_ARCHITECTURES cover it).
cudaError_t probe_kernel_image();

}  // namespace normad::cuda
