// normad losses (see nn/loss.h). Tested by tests/test_nn.cpp.
#include "nn/loss.h"

namespace normad::nn {

Tensor one_hot(const std::vector<int64_t>& labels, int64_t classes) {
  Tensor t = Tensor::zeros({static_cast<int64_t>(labels.size()), classes});
  for (size_t i = 0; i < labels.size(); ++i) {
    check(labels[i] >= 0 && labels[i] < classes, "one_hot",
          "label " + std::to_string(labels[i]) + " outside [0, " + std::to_string(classes) + ")");
    t.data()[i * classes + labels[i]] = 1.f;
  }
  return t;
}

Var cross_entropy(const Var& logits, const std::vector<int64_t>& labels) {
  check(logits.dim() == 2 && logits.size(0) == static_cast<int64_t>(labels.size()), "cross_entropy",
        "logits " + shape_str(logits.shape()) + " for " + std::to_string(labels.size()) + " labels");
  Var picked = sum(mul(logits, Var(one_hot(labels, logits.size(1)).to(logits.data().device()))), {1});  // z_{i, y_i}
  return mean(sub(logsumexp(logits, 1), picked));
}

}  // namespace normad::nn
