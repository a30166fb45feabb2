// normad differentiable ops: each wraps the tensor op of the same name (tensor/ops.h) and records
// its local chain rule. Forward and backward of each op sit side by side in autograd/ops_*.cpp.
// Tested by tests/test_grad.cpp (finite differences for every op; convolution and pooling in
// tests/test_conv.cpp, batch norm also in tests/test_batchnorm.cpp) and tests/test_parity.cpp.
#pragma once

#include <vector>

#include "autograd/var.h"

namespace normad {

// elementwise (broadcasting)
Var add(const Var& a, const Var& b);
Var sub(const Var& a, const Var& b);
Var mul(const Var& a, const Var& b);
Var div(const Var& a, const Var& b);
Var add_scalar(const Var& a, float s);
Var mul_scalar(const Var& a, float s);
Var neg(const Var& a);
Var exp(const Var& a);
Var log(const Var& a);
Var sqrt(const Var& a);
Var abs(const Var& a);
Var pow(const Var& a, float p);
Var clamp(const Var& a, float lo, float hi);
Var relu(const Var& a);
Var leaky_relu(const Var& a, float slope);
Var sigmoid(const Var& a);
Var silu(const Var& a);

inline Var operator+(const Var& a, const Var& b) { return add(a, b); }
inline Var operator-(const Var& a, const Var& b) { return sub(a, b); }
inline Var operator*(const Var& a, const Var& b) { return mul(a, b); }
inline Var operator/(const Var& a, const Var& b) { return div(a, b); }
inline Var operator-(const Var& a) { return neg(a); }
inline Var operator+(const Var& a, float s) { return add_scalar(a, s); }
inline Var operator-(const Var& a, float s) { return add_scalar(a, -s); }
inline Var operator*(const Var& a, float s) { return mul_scalar(a, s); }
inline Var operator*(float s, const Var& a) { return mul_scalar(a, s); }
inline Var operator/(const Var& a, float s) { return mul_scalar(a, 1.f / s); }

// matrix products
Var matmul(const Var& a, const Var& b, bool trans_a = false, bool trans_b = false);
Var bmm(const Var& a, const Var& b, bool trans_a = false, bool trans_b = false);
// y [N, F] = x [N, K] w [F, K]^T + b [F] in one op (tensor/ops.h linear): dx = dy w, dw = dy^T x,
// db = the column sums of dy.
Var linear(const Var& x, const Var& w, const Var& b);

// reductions
Var sum(const Var& a, std::vector<int64_t> dims = {}, bool keepdim = false);
Var mean(const Var& a, std::vector<int64_t> dims = {}, bool keepdim = false);
Var max(const Var& a, int64_t dim, bool keepdim = false);
Var logsumexp(const Var& a, int64_t dim, bool keepdim = false);

// layout
Var reshape(const Var& a, Shape shape);
Var permute(const Var& a, const std::vector<int64_t>& perm);
Var transpose(const Var& a, int64_t d0, int64_t d1);
Var flatten(const Var& a, int64_t start_dim = 1, int64_t end_dim = -1);
Var concat(const std::vector<Var>& vs, int64_t dim);
Var stack(const std::vector<Var>& vs, int64_t dim);
Var slice(const Var& a, int64_t dim, int64_t start, int64_t end);
Var index_select(const Var& a, const std::vector<int64_t>& idx);

// convolution and pooling (NCHW); b may be an undefined Var (no bias)
Var conv2d(const Var& x, const Var& w, const Var& b, const Conv2dArgs& args);
// transposed convolution, w [F, C/groups, KH, KW] (ConvTranspose2d's layout); see tensor/ops.h
Var conv_transpose2d(const Var& x, const Var& w, const Var& b, const Conv2dArgs& args,
                     int64_t out_pad_h = 0, int64_t out_pad_w = 0);
Var upsample_nearest2d(const Var& x, int64_t scale);  // [N, C, H, W] -> [N, C, H s, W s]
Var max_pool2d(const Var& x, const Pool2dArgs& args);
Var avg_pool2d(const Var& x, const Pool2dArgs& args);
Var global_avg_pool(const Var& x);

// batch norm. Training mode normalises with the batch (per group when groups > 1) statistics and
// backpropagates through them; running_mean/var (may be null) are updated in place.
// gamma/beta may be undefined Vars (no affine).
Var batch_norm_train(const Var& x, const Var& gamma, const Var& beta, float eps, int64_t groups = 1,
                     Tensor* running_mean = nullptr, Tensor* running_var = nullptr,
                     float momentum = 0.1f);
Var batch_norm_eval(const Var& x, const Var& gamma, const Var& beta, const Tensor& running_mean,
                    const Tensor& running_var, float eps);
// leaky_relu(batch_norm_train(x, ...), slope) (slope 0: ReLU) as one node: the same values and
// gradients as the two ops, without keeping the normalised tensor (the backward recomputes the
// ReLU's mask from x and the saved statistics).
Var batch_norm_relu_train(const Var& x, const Var& gamma, const Var& beta, float eps,
                          int64_t groups, float slope, Tensor* running_mean = nullptr,
                          Tensor* running_var = nullptr, float momentum = 0.1f);

// A convolution between two training-mode batch norms (the Omniglot net's layers), one node:
// y = conv2d(x, w, b), or with `in` the convolution of relu(batch_norm(x)) for x's own batch
// statistics in->saved (the previous layer's batch norm + ReLU, applied as the convolution reads x:
// that output is never stored, and the backward's weight gradient normalises x again,
// conv2d_bn_relu_input_backward_weight); with `stats`, also y's batch statistics for the next
// batch norm (conv2d_statistics: on the CPU from the planes as they are written; running
// statistics moved) in stats->saved, the next call's in->saved. The same values and gradients as
// batch_norm_relu_train, then conv2d (then batch_norm_statistics) composed (on the CPU the same
// bits: tests/test_conv.cpp, tests/test_acr.cpp).
// Backward: the convolution's, then with `in` the batch norm + ReLU's training backward (through
// the batch statistics, batch_norm_relu_backward) into x, gamma and beta. b, gamma and beta may be
// undefined Vars.
struct BnReluInputVar {
  Var gamma, beta;
  BatchNormSaved saved;  // x's batch statistics [groups, C]
  int64_t groups = 1;
};
struct OutputStatistics {  // conv2d_statistics's arguments, and its result in `saved`
  float eps = 1e-5f;
  int64_t groups = 1;
  Tensor* running_mean = nullptr;
  Tensor* running_var = nullptr;
  float momentum = 0.1f;
  BatchNormSaved saved;
};
Var conv2d_bn_relu_input(const Var& x, const BnReluInputVar* in, const Var& w, const Var& b, const Conv2dArgs& args,
                         OutputStatistics* stats = nullptr);

// distances
Var pairwise_sqdist(const Var& a, const Var& b);
Var l2_normalize(const Var& a, float eps = 1e-12f);

}  // namespace normad
