// normad losses composed from autograd ops (tinygrad style: no fused kernel, gradients for free).
// Math: cross_entropy = mean_i(logsumexp(z_i) - z_{i, y_i}).
// Tested by tests/test_nn.cpp (closed form and finite differences).
#pragma once

#include <vector>

#include "autograd/ops.h"

namespace normad::nn {

Tensor one_hot(const std::vector<int64_t>& labels, int64_t classes);  // [N, classes]
// logits [N, K], labels in [0, K) -> scalar mean cross-entropy (torch.nn.functional.cross_entropy).
Var cross_entropy(const Var& logits, const std::vector<int64_t>& labels);

}  // namespace normad::nn
