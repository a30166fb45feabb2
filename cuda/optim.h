// normad CUDA optimiser entries of the backend table (tensor/backend.h) that need more than one
// launch of a body: Adam's constants from AdamParams, and one fused Adam over all parameters.
// Math: torch.optim.Adam per weight (cuda/optim.cuh, AdamBody); bc = 1 - beta^t in double.
// Tested by tests/test_cuda_optim.cpp ([cuda_body] on the host; [cuda] on a GPU) and
// tests/test_backend_ops.cpp on a GPU.
#pragma once

#include <vector>

#include "cuda/optim.cuh"
#include "tensor/ops.h"

namespace normad::cuda {

// AdamBody over w, m, v, g with p's constants, computed as the CPU does (1 - beta in double rounded
// to float, bias corrections of p.step in double).
AdamBody adam_body(float* w, float* m, float* v, const float* g, const AdamParams& p);

// The table entry: every slot's weights in one launch of AdamMultiBody (descriptors and offsets in
// Scratch memory). Slots are validated and on the GPU; no tensor may appear in two slots.
void adam_step_multi(const std::vector<AdamSlot>& slots, const AdamParams& p);

}  // namespace normad::cuda
