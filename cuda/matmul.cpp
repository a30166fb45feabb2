// normad CUDA matrix products through cuBLAS sgemm and strided-batched sgemm (see cuda/matmul.h).
// Math: C^T = op(B)^T op(A)^T in cuBLAS's column-major view of row-major storage.
// Full fp32 by default (cuBLAS's default math mode); TF32 tensor cores only with allow_tf32() (--tf32),
// which cuda::cublas() applies at every use. cuBLAS gives bitwise identical results run to run
// on one GPU model with one stream (its documented reproducibility), so this stays deterministic.
// Tested by tests/test_cuda.cpp ([cuda]) and tests/test_backend_ops.cpp on a GPU.
#include "cuda/matmul.h"

#include <climits>
#include <string>

#include "cuda/check.h"
#include "cuda/device.h"
#include "cuda/elementwise.cuh"

namespace normad::cuda {

namespace {

// cuBLAS's classic API takes int sizes.
int as_int(int64_t v, const char* what) {
  check(v <= INT_MAX, what, "size " + std::to_string(v) + " exceeds cuBLAS's int range");
  return static_cast<int>(v);
}

// C [batch, M, N] = op(A) op(B) per batch entry; stride_a / stride_b 0 reuse one matrix.
void gemm(float* c, const float* a, const float* b, int64_t batch, int64_t M, int64_t N, int64_t K,
          bool ta, bool tb, int64_t stride_a, int64_t stride_b, const char* what) {
  const float one = 1.f, zero = 0.f;
  // cuBLAS sees B first: [N, K]-shaped op(B)^T with leading dim N (stored [K, N]) or K (stored [N, K]).
  const cublasOperation_t op_b = tb ? CUBLAS_OP_T : CUBLAS_OP_N, op_a = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int n = as_int(N, what), m = as_int(M, what), k = as_int(K, what);
  const int ldb = tb ? k : n, lda = ta ? m : k;
  if (batch == 1) {
    NORMAD_CUBLAS_CHECK(cublas_api().sgemm(cublas(), op_b, op_a, n, m, k, &one, b, ldb, a, lda, &zero, c, n));
    return;
  }
  NORMAD_CUBLAS_CHECK(cublas_api().sgemm_strided_batched(cublas(), op_b, op_a, n, m, k, &one, b, ldb, stride_b, a,
                                                         lda, stride_a, &zero, c, n, M * N, as_int(batch, what)));
}

// [..., M, N] zeros for K = 0 (cuBLAS with k = 0 would leave C unwritten).
Tensor zeros_on_gpu(const Shape& s) {
  Tensor out = Tensor::empty(s, Device::CUDA);
  launch(out.numel(), FillBody{out.device_data(), 0.f});
  return out;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  const int64_t M = trans_a ? a.size(1) : a.size(0), K = trans_a ? a.size(0) : a.size(1);
  const int64_t N = trans_b ? b.size(0) : b.size(1);
  if (M * N == 0 || K == 0) return zeros_on_gpu({M, N});
  Tensor c = Tensor::empty({M, N}, Device::CUDA);
  gemm(c.device_data(), a.device_data(), b.device_data(), 1, M, N, K, trans_a, trans_b, 0, 0, "matmul");
  return c;
}

Tensor bmm(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  const int64_t Ba = a.size(0), Bb = b.size(0), B = Ba == 1 ? Bb : Ba;
  const int64_t M = trans_a ? a.size(2) : a.size(1), K = trans_a ? a.size(1) : a.size(2);
  const int64_t N = trans_b ? b.size(1) : b.size(2);
  if (B * M * N == 0 || K == 0) return zeros_on_gpu({B, M, N});
  Tensor c = Tensor::empty({B, M, N}, Device::CUDA);
  gemm(c.device_data(), a.device_data(), b.device_data(), B, M, N, K, trans_a, trans_b,
       Ba == 1 ? 0 : M * K, Bb == 1 ? 0 : K * N, "bmm");
  return c;
}

}  // namespace normad::cuda
