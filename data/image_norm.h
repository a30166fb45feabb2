// Per-image normalisations of the Deep SVDD protocol (ntl_dsvdd.md A.6).
// Math: GCN with the L1 scale: x <- (x - mean(x)) / mean(|x - mean(x)|) over all C*H*W values of
// one image; min-max: x <- (x - lo) / (hi - lo), lo and hi the extremes over a fitted set (the
// normal class's GCN'd training images), the same constants for every channel and for test images.
// Tested by tests/test_deep_svdd.cpp (closed forms).
//
// Shapes: x [N, ...], one image per row.
#pragma once

#include "tensor/tensor.h"

namespace normad::data {

Tensor gcn_l1(const Tensor& x);  // a new tensor; an all-constant image becomes all zeros

struct MinMax {
  float lo = 0.f, hi = 1.f;
  static MinMax fit(const Tensor& x);  // extremes over all values; error if they coincide
  Tensor apply(const Tensor& x) const;
};

}  // namespace normad::data
