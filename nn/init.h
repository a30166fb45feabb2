// normad initialisers, with PyTorch's defaults and formulas.
// Math: kaiming_uniform(a): bound = sqrt(6 / ((1 + a^2) fan_in)); xavier_uniform: bound =
// sqrt(6 / (fan_in + fan_out)); fan_in = size(1) * prod(size(2:)), fan_out = size(0) * prod(size(2:)).
// Tested by tests/test_nn.cpp (bounds and moments).
#pragma once

#include "tensor/random.h"
#include "tensor/tensor.h"

namespace normad::nn::init {

int64_t fan_in(const Tensor& w);
int64_t fan_out(const Tensor& w);
void uniform_(Tensor& t, float lo, float hi, Generator& g = default_generator());
void normal_(Tensor& t, float mean, float std, Generator& g = default_generator());
void constant_(Tensor& t, float v);
void kaiming_uniform_(Tensor& w, float a = 0.f, Generator& g = default_generator());
void xavier_uniform_(Tensor& w, float gain = 1.f, Generator& g = default_generator());
// PyTorch's reset_parameters of Linear / Conv2d: weight kaiming_uniform(a = sqrt(5)), i.e.
// U(+-1/sqrt(fan_in)), and bias U(+-1/sqrt(fan_in)) when `bias` is non-null and defined.
void torch_default_(Tensor& weight, Tensor* bias, Generator& g = default_generator());

}  // namespace normad::nn::init
