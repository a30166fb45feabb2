// cuBLAS, opened on first use: the CUDA backend calls cuBLAS through this table of entry points,
// resolved with dlopen/dlsym the first time a product runs on a GPU. Linking libcublas instead
// maps it and libcublasLt into every process at start, ~216 MiB resident before main (an empty
// program: 1 MiB unlinked, 219 MiB linked), also on machines without a GPU that never call it.
// Math: none. Tested by tests/test_cuda.cpp ("cuBLAS opens on first use"): not mapped at start,
// every entry point resolved after; the products themselves by the [cuda] GEMM tests on a GPU.
#pragma once

#include <cublas_v2.h>

namespace normad::cuda {

// The entry points normad uses, typed from cublas_v2.h's declarations (cublasCreate and friends
// are macros for their _v2 symbols there, so the types are those of the symbols dlsym finds).
struct CublasApi {
  decltype(&::cublasCreate_v2) create;
  decltype(&::cublasSetStream_v2) set_stream;
  decltype(&::cublasSetMathMode) set_math_mode;
  decltype(&::cublasSgemm_v2) sgemm;
  decltype(&::cublasSgemmStridedBatched) sgemm_strided_batched;
  decltype(&::cublasGetStatusName) status_name;
  decltype(&::cublasGetStatusString) status_string;
};

// Opens libcublas on the first call (the soname of the toolkit normad was built with, found as the
// dynamic linker finds libraries, then in that toolkit's library folder) and resolves every entry
// point; throws a normad::Error naming the library and dlerror()'s reason when it cannot.
const CublasApi& cublas_api();

}  // namespace normad::cuda
