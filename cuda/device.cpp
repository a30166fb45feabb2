// normad's CUDA device: detection, the stream, the cuBLAS handle, launch sizes (see cuda/device.h).
// Math: none. Tested by tests/test_cuda.cpp ([cuda_detect] without a GPU; [cuda] with one).
#include "cuda/device.h"

#include <algorithm>
#include <mutex>

#include "cuda/check.h"
#include "tensor/backend.h"
#include "tensor/tensor.h"

#ifndef NORMAD_CUDA_ARCHS
#define NORMAD_CUDA_ARCHS "unknown"  // set by CMakeLists.txt from CMAKE_CUDA_ARCHITECTURES
#endif

namespace normad::cuda {

namespace {

// 13000 -> "13.0" (CUDA's version numbers are 1000 major + 10 minor).
std::string version_str(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }

struct DeviceState {
  bool ok = false;
  std::string reason;  // why not ok, one line
  int sms = 0;         // streaming multiprocessors of device 0
};

// Every call below returns an error code when there is no driver (libcudart loads libcuda lazily),
// so detection never aborts: a machine without a GPU gets a reason instead.
DeviceState detect() {
  DeviceState s;
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear it, so no later check reports it
    s.reason = std::string("no CUDA device: cudaGetDeviceCount returned '") + cudaGetErrorString(err) + "'";
    // The usual case, no driver at all, reads as "driver version is insufficient": say which.
    int driver = 0, runtime = 0;
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    if (err == cudaErrorInsufficientDriver)
      s.reason += driver == 0 ? " (no NVIDIA driver found)"
                              : " (the driver supports CUDA " + version_str(driver) + ", normad was built with " +
                                    version_str(runtime) + ")";
    return s;
  }
  if (count == 0) {
    s.reason = "no CUDA device: cudaGetDeviceCount found none";
    return s;
  }
  cudaDeviceProp prop{};
  if ((err = cudaSetDevice(0)) != cudaSuccess || (err = cudaGetDeviceProperties(&prop, 0)) != cudaSuccess) {
    cudaGetLastError();
    s.reason = std::string("CUDA device 0 unusable: '") + cudaGetErrorString(err) + "'";
    return s;
  }
  // A device the build has neither machine code nor PTX for cannot launch any kernel.
  if ((err = probe_kernel_image()) != cudaSuccess) {
    cudaGetLastError();
    s.reason = std::string("CUDA device 0 (") + prop.name + ", compute capability " +
               std::to_string(prop.major) + "." + std::to_string(prop.minor) +
               ") cannot run normad's kernels, built for CMAKE_CUDA_ARCHITECTURES=" NORMAD_CUDA_ARCHS ": '" +
               cudaGetErrorString(err) + "'";
    return s;
  }
  s.ok = true;
  s.sms = prop.multiProcessorCount;
  return s;
}

const DeviceState& state() {
  static const DeviceState s = detect();  // thread-safe, once
  return s;
}

void require_present() {
  if (!state().ok) throw Error("cuda: " + state().reason);
}

}  // namespace

bool present() { return state().ok; }
const std::string& unavailable_reason() { return state().reason; }

cudaStream_t stream() {
  // Created once and never destroyed: tensors freed during static destruction may still use it.
  static const cudaStream_t s = [] {
    require_present();
    cudaStream_t st = nullptr;
    NORMAD_CUDA_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamDefault));
    return st;
  }();
  return s;
}

cublasHandle_t cublas() {
  static const cublasHandle_t h = [] {
    cublasHandle_t hd = nullptr;
    NORMAD_CUBLAS_CHECK(cublas_api().create(&hd));
    NORMAD_CUBLAS_CHECK(cublas_api().set_stream(hd, stream()));
    return hd;
  }();
  // The math mode follows allow_tf32() (--tf32) at every use, so every product (matmul, the 1x1
  // convolution, the distances' GEMM form) sees the current setting: fp32 unless asked.
  NORMAD_CUBLAS_CHECK(cublas_api().set_math_mode(h, allow_tf32() ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  return h;
}

void synchronize() { NORMAD_CUDA_CHECK(cudaStreamSynchronize(stream())); }

unsigned blocks_for(int64_t n) {
  const int64_t need = (n + kThreads - 1) / kThreads;
  const int64_t cap = int64_t(32) * std::max(state().sms, 1);
  return static_cast<unsigned>(std::clamp<int64_t>(need, 1, cap));
}

}  // namespace normad::cuda
