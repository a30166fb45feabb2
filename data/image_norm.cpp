// GCN (L1) and min-max scaling (see data/image_norm.h). Tested by tests/test_deep_svdd.cpp.
#include "data/image_norm.h"

#include <algorithm>
#include <cmath>

#include "tensor/ops.h"

namespace normad::data {

Tensor gcn_l1(const Tensor& x) {
  check(x.dim() >= 2 && x.numel() > 0, "gcn_l1", "input must be [N, ...] with values, got " + shape_str(x.shape()));
  const int64_t n = x.size(0), d = x.numel() / n;
  Tensor out = x.clone();
  float* p = out.data();
  for (int64_t i = 0; i < n; ++i) {
    float* row = p + i * d;
    double mean = 0, scale = 0;  // double: d terms
    for (int64_t j = 0; j < d; ++j) mean += row[j];
    mean /= double(d);
    for (int64_t j = 0; j < d; ++j) scale += std::fabs(row[j] - mean);
    scale /= double(d);
    // the reference divides by the scale unguarded; a constant image (scale 0) maps to zeros here
    for (int64_t j = 0; j < d; ++j) row[j] = scale > 0 ? float((row[j] - mean) / scale) : 0.f;
  }
  return out;
}

MinMax MinMax::fit(const Tensor& x) {
  check(x.numel() > 0, "MinMax::fit", "no values");
  auto [lo, hi] = std::minmax_element(x.data(), x.data() + x.numel());
  check(*hi > *lo, "MinMax::fit", "all values equal " + std::to_string(*lo) + ": nothing to scale");
  return {*lo, *hi};
}

Tensor MinMax::apply(const Tensor& x) const { return mul_scalar(add_scalar(x, -lo), 1.f / (hi - lo)); }

}  // namespace normad::data
