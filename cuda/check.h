// normad checked CUDA and cuBLAS calls: a call that does not return success throws a normad::Error
// naming the call as written, the library's error name and string, and the file and line.
// Math: none. Tested by tests/test_cuda.cpp ("checked calls"), which makes a call that fails on any
// machine (an invalid device ordinal; a null cuBLAS handle) and reads the message.
//
//   NORMAD_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream));
//   -> normad::Error "CUDA call cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream) failed:
//      cudaErrorInvalidValue (invalid argument) at cuda/memory.cu:41"
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

namespace normad::cuda {

// Throw the normad::Error described above (out of line: keeps the macros small at every call).
[[noreturn]] void fail_cuda(const char* call, cudaError_t err, const char* file, int line);
[[noreturn]] void fail_cublas(const char* call, cublasStatus_t st, const char* file, int line);

}  // namespace normad::cuda

#define NORMAD_CUDA_CHECK(expr)                                                  \
  do {                                                                           \
    const cudaError_t normad_err_ = (expr);                                      \
    if (normad_err_ != cudaSuccess)                                              \
      ::normad::cuda::fail_cuda(#expr, normad_err_, __FILE__, __LINE__);         \
  } while (0)

#define NORMAD_CUBLAS_CHECK(expr)                                                \
  do {                                                                           \
    const cublasStatus_t normad_st_ = (expr);                                    \
    if (normad_st_ != CUBLAS_STATUS_SUCCESS)                                     \
      ::normad::cuda::fail_cublas(#expr, normad_st_, __FILE__, __LINE__);        \
  } while (0)

// After a kernel launch: a bad configuration (grid, block, shared memory) is reported by
// cudaGetLastError, not by the launch itself. Faults inside the kernel surface at the next
// synchronising call (a copy to the host), checked there.
#define NORMAD_CUDA_CHECK_LAUNCH() NORMAD_CUDA_CHECK(cudaGetLastError())
