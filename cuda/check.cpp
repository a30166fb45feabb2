// normad checked CUDA and cuBLAS calls: the out-of-line halves of NORMAD_CUDA_CHECK and
// NORMAD_CUBLAS_CHECK (cuda/check.h) that format the normad::Error.
// Math: none. Tested by tests/test_cuda.cpp ("checked calls").
#include "cuda/check.h"

#include <string>

#include "cuda/cublas.h"
#include "tensor/tensor.h"

namespace normad::cuda {

namespace {
[[noreturn]] void fail(const char* lib, const char* call, const char* name, const char* text,
                       const char* file, int line) {
  throw Error(std::string(lib) + " call " + call + " failed: " + name + " (" + text + ") at " + file +
              ":" + std::to_string(line));
}
}  // namespace

void fail_cuda(const char* call, cudaError_t err, const char* file, int line) {
  // Reset the runtime's last error (a no-op for sticky ones), so the next launch check does not
  // report this failure a second time.
  cudaGetLastError();
  // cudaGetErrorName/String are table look-ups: they work without a driver or a device.
  fail("CUDA", call, cudaGetErrorName(err), cudaGetErrorString(err), file, line);
}

void fail_cublas(const char* call, cublasStatus_t st, const char* file, int line) {
  // a status exists only after a cuBLAS call, so the library is open here
  fail("cuBLAS", call, cublas_api().status_name(st), cublas_api().status_string(st), file, line);
}

}  // namespace normad::cuda
