// normad initialisers with PyTorch's formulas (see nn/init.h).
// Math: kaiming_uniform bound = gain sqrt(3 / fan_in), gain = sqrt(2 / (1 + a^2));
// xavier_uniform bound = gain sqrt(6 / (fan_in + fan_out)).
// Tested by tests/test_nn.cpp.
#include "nn/init.h"

#include <cmath>

namespace normad::nn::init {

namespace {
int64_t receptive(const Tensor& w) {
  check(w.dim() >= 2, "init", "fan needs rank >= 2, got " + shape_str(w.shape()));
  int64_t r = 1;
  for (int64_t i = 2; i < w.dim(); ++i) r *= w.size(i);
  return r;
}
}  // namespace

int64_t fan_in(const Tensor& w) { return w.size(1) * receptive(w); }
int64_t fan_out(const Tensor& w) { return w.size(0) * receptive(w); }

// The generator runs on the host; values are drawn into a host tensor and copied to t's device
// (the same numbers on every device).
void uniform_(Tensor& t, float lo, float hi, Generator& g) {
  Tensor host = Tensor::empty(t.shape());
  for (int64_t i = 0; i < t.numel(); ++i) host.data()[i] = g.uniform1(lo, hi);
  t.copy_(host);
}

void normal_(Tensor& t, float mean, float std, Generator& g) {
  Tensor host = Tensor::empty(t.shape());
  for (int64_t i = 0; i < t.numel(); ++i) host.data()[i] = g.normal1(mean, std);
  t.copy_(host);
}

void constant_(Tensor& t, float v) { t.fill_(v); }

void kaiming_uniform_(Tensor& w, float a, Generator& g) {
  const double gain = std::sqrt(2.0 / (1.0 + double(a) * a));
  const float bound = static_cast<float>(gain * std::sqrt(3.0 / fan_in(w)));
  uniform_(w, -bound, bound, g);
}

void xavier_uniform_(Tensor& w, float gain, Generator& g) {
  const float bound = static_cast<float>(gain * std::sqrt(6.0 / (fan_in(w) + fan_out(w))));
  uniform_(w, -bound, bound, g);
}

void torch_default_(Tensor& weight, Tensor* bias, Generator& g) {
  kaiming_uniform_(weight, std::sqrt(5.f), g);
  if (bias && bias->defined()) {
    const float bound = 1.f / std::sqrt(static_cast<float>(fan_in(weight)));
    uniform_(*bias, -bound, bound, g);
  }
}

}  // namespace normad::nn::init
