// normad CUDA elementwise kernels: the launchers of cuda/elementwise.cuh (bodies and math there).
// Versions: v1 one thread per element, grid-stride, runtime switch on the op. Unmeasured
// candidates for v2: 32-bit index math when numel < 2^31, four elements per thread (float4).
// Tested by tests/test_cuda.cpp ([cuda_body] on the host; [cuda] on a GPU) and
// tests/test_backend_ops.cpp on a GPU.
#include "cuda/elementwise.cuh"

namespace normad::cuda {

void launch(int64_t n, const UnaryBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const BinaryBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const FillBody& body) { launch_for_each(n, body); }

// Detection asks whether this device has an image of one of our kernels (sm_90 code, or PTX it can
// compile); without it every launch would fail with cudaErrorNoKernelImageForDevice.
cudaError_t probe_kernel_image() {
  cudaFuncAttributes attr{};
  return cudaFuncGetAttributes(&attr, for_each_kernel<FillBody>);
}

}  // namespace normad::cuda
