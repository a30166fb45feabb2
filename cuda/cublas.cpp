// cuBLAS opened on first use (cuda/cublas.h): dlopen the toolkit's libcublas, dlsym each entry point.
// Math: none. Tested by tests/test_cuda.cpp ("cuBLAS opens on first use").
#include "cuda/cublas.h"

#include <dlfcn.h>

#include <string>

#include "tensor/tensor.h"

// Set by CMakeLists.txt from the CUDA toolkit found at configure time.
#ifndef NORMAD_CUBLAS_SONAME
#define NORMAD_CUBLAS_SONAME "libcublas.so"
#endif
#ifndef NORMAD_CUBLAS_DIR
#define NORMAD_CUBLAS_DIR "/usr/local/cuda/lib64"
#endif

namespace normad::cuda {

namespace {

// The library's handle: by soname first (LD_LIBRARY_PATH, the program's run path, ld.so.cache,
// as a linked library would be found), then in the build's toolkit folder.
void* open_cublas() {
  const std::string soname = NORMAD_CUBLAS_SONAME, in_toolkit = std::string(NORMAD_CUBLAS_DIR) + "/" + soname;
  if (void* h = dlopen(soname.c_str(), RTLD_NOW | RTLD_LOCAL)) return h;
  const std::string first_error = dlerror();
  if (void* h = dlopen(in_toolkit.c_str(), RTLD_NOW | RTLD_LOCAL)) return h;
  throw Error("cannot open cuBLAS for the CUDA backend: " + first_error + "; " + dlerror() +
              " (set LD_LIBRARY_PATH to the CUDA toolkit's library folder)");
}

// One entry point, typed as the member it fills.
template <class Fn>
void resolve(void* lib, const char* symbol, Fn& fn) {
  fn = reinterpret_cast<Fn>(dlsym(lib, symbol));
  if (!fn) {
    const char* why = dlerror();
    throw Error(std::string("cuBLAS (") + NORMAD_CUBLAS_SONAME + ") has no entry point " + symbol + ": " +
                (why ? why : "null"));
  }
}

}  // namespace

const CublasApi& cublas_api() {
  // Resolved once, by the first caller (a static's initialiser: thread-safe); a failure throws and
  // the next call tries again.
  static const CublasApi api = [] {
    void* lib = open_cublas();  // never closed: the handle and its kernels live as long as the process
    CublasApi a{};
    resolve(lib, "cublasCreate_v2", a.create);
    resolve(lib, "cublasSetStream_v2", a.set_stream);
    resolve(lib, "cublasSetMathMode", a.set_math_mode);
    resolve(lib, "cublasSgemm_v2", a.sgemm);
    resolve(lib, "cublasSgemmStridedBatched", a.sgemm_strided_batched);
    resolve(lib, "cublasGetStatusName", a.status_name);
    resolve(lib, "cublasGetStatusString", a.status_string);
    return a;
  }();
  return api;
}

}  // namespace normad::cuda
