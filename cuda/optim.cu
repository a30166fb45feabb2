// normad CUDA optimiser steps: the launchers of cuda/optim.cuh (bodies and math there).
// Versions: v1 one thread per weight, grid-stride. A whole-model step is one launch per parameter
// tensor; an unmeasured v2 would step every parameter of a model in one launch (a pointer table).
// Tested by tests/test_cuda.cpp ([cuda_body] on the host) and tests/test_backend_ops.cpp on a GPU.
#include "cuda/optim.cuh"

namespace normad::cuda {

void launch(int64_t n, const SgdBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const AdamBody& body) { launch_for_each(n, body); }

}  // namespace normad::cuda
