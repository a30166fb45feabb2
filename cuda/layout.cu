// normad CUDA layout kernels: the launchers of cuda/layout.cuh (bodies and index math there).
// Versions: v1 one thread per output element, grid-stride. Unmeasured candidates for v2: a tiled
// transpose through shared memory for permutes that move the innermost dim (v1 reads a strided).
// Tested by tests/test_cuda.cpp ([cuda_body] on the host) and tests/test_backend_ops.cpp on a GPU.
#include "cuda/layout.cuh"

namespace normad::cuda {

void launch(int64_t n, const GatherBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const RowsBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const IndexSelectBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const IndexAddBody& body) { launch_for_each(n, body); }

}  // namespace normad::cuda
