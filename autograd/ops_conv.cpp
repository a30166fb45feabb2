// normad differentiable convolution and pooling (see autograd/ops.h); the kernels live in
// tensor/conv.cpp and tensor/pool.cpp.
// Math: y = conv(x, w) + b: dx = conv^T(dy, w) (col2im of W^T dy), dw = sum_n dy_n cols_n^T,
// db = sum of dy over N, OH, OW; transposed conv y = conv^T(x, w): dx = conv(dy, w),
// dw = conv2d_backward_weight(dout = x, input = dy); max pool routes dy to the argmax; avg pool
// spreads dy / divisor; nearest upsampling sums each s x s block of dy; the convolution of a batch
// norm + ReLU of x, y = conv(relu(bn(x))): dw from relu(bn(x)) recomputed, dx = the batch norm +
// ReLU's backward of conv^T(dy, w).
// Tested by tests/test_conv.cpp (finite differences for each op), tests/test_acr.cpp (the fused
// convolution against the ops composed, bit for bit) and tests/test_parity.cpp.
//
// Shapes: N batch, C input channels, F filters, H, W input, OH, OW output.
#include <optional>

#include "autograd/ops.h"

namespace normad {

namespace {
// A convolution node's weight gradient (parent 1) and bias gradient (parent ib, -1: no bias): the
// bias is added at every (n, oh, ow), so its gradient sums dy over them. Where both are wanted
// the weight-gradient op returns it from the same pass over dy (its dbias); the bias alone (frozen
// weights) is summed by sum, in sum's order. weight_grad(dbias) returns dw.
template <class WeightGrad>
void push_weight_bias_grads(Node& self, int ib, const Tensor& dy, WeightGrad weight_grad) {
  const bool want_w = self.parents[1]->requires_grad, want_b = ib >= 0 && self.parents[ib]->requires_grad;
  Tensor db;
  if (want_w) self.parents[1]->accumulate(weight_grad(want_b ? &db : nullptr));
  if (want_b) self.parents[ib]->accumulate(want_w ? db : sum(dy, {0, 2, 3}));
}
}  // namespace

Var conv2d_bn_relu_input(const Var& x, const BnReluInputVar* in, const Var& w, const Var& b, const Conv2dArgs& args,
                         OutputStatistics* stats) {
  Tensor xd = x.data(), wd = w.data(), bd = b.defined() ? b.data() : Tensor();
  // the input's batch norm + ReLU as the tensor ops take it
  std::optional<BnReluInput> bn;
  if (in)
    bn = BnReluInput{in->gamma.defined() ? in->gamma.data() : Tensor(), in->beta.defined() ? in->beta.data() : Tensor(),
                     in->saved, in->groups};
  const BnReluInput* bnp = bn ? &*bn : nullptr;
  Tensor y = stats ? conv2d_statistics(xd, bnp, wd, bd, args, stats->eps, stats->groups, stats->running_mean,
                                       stats->running_var, stats->momentum, &stats->saved)
             : bn  ? conv2d_bn_relu_input(xd, bn->gamma, bn->beta, bn->saved, bn->groups, wd, bd, args)
                   : conv2d(xd, wd, bd, args);
  // parents: x, w, then b, gamma, beta where defined (their indices below; -1: none)
  std::vector<Var> parents{x, w};
  auto add_parent = [&](const Var& v) { return v.defined() ? (parents.push_back(v), int(parents.size()) - 1) : -1; };
  const int ib = add_parent(b), ig = in ? add_parent(in->gamma) : -1, ibeta = in ? add_parent(in->beta) : -1;
  return Var::make(y, parents, bn ? "conv2d_bn_relu_input" : "conv2d", [xd, wd, bn, args, ib, ig, ibeta](Node& self) {
    const Tensor& dy = self.grad;  // [N, F, OH, OW]
    auto wants = [&](int i) { return i >= 0 && self.parents[i]->requires_grad; };
    if (!bn) {  // conv2d's backward
      if (wants(0)) self.parents[0]->accumulate(conv2d_backward_input(dy, wd, xd.shape(), args));
    } else if (wants(0) || wants(ig) || wants(ibeta)) {
      // the gradient of the convolution's input y = relu(bn(x)), then through the batch norm + ReLU
      const Tensor dyin = conv2d_backward_input(dy, wd, xd.shape(), args);
      Tensor dg, dbeta;
      Tensor dx = batch_norm_relu_backward(dyin, xd, bn->gamma, bn->beta, bn->saved, bn->groups, 0.f,
                                           wants(ig) ? &dg : nullptr, wants(ibeta) ? &dbeta : nullptr);
      if (wants(0)) self.parents[0]->accumulate(dx);
      if (wants(ig)) self.parents[ig]->accumulate(dg.reshape(self.parents[ig]->shape()));
      if (wants(ibeta)) self.parents[ibeta]->accumulate(dbeta.reshape(self.parents[ibeta]->shape()));
    }
    push_weight_bias_grads(self, ib, dy, [&](Tensor* db) {
      return bn ? conv2d_bn_relu_input_backward_weight(dy, xd, bn->gamma, bn->beta, bn->saved, bn->groups, wd.shape(),
                                                       args, db)
                : conv2d_backward_weight(dy, xd, wd.shape(), args, db);
    });
  });
}

// The plain convolution is the node above without an input batch norm or output statistics.
Var conv2d(const Var& x, const Var& w, const Var& b, const Conv2dArgs& args) {
  return conv2d_bn_relu_input(x, nullptr, w, b, args);
}

Var conv_transpose2d(const Var& x, const Var& w, const Var& b, const Conv2dArgs& args,
                     int64_t out_pad_h, int64_t out_pad_w) {
  const bool has_bias = b.defined();
  Tensor xd = x.data(), wd = w.data();
  Tensor y = conv_transpose2d(xd, wd, has_bias ? b.data() : Tensor(), args, out_pad_h, out_pad_w);
  std::vector<Var> parents{x, w};
  if (has_bias) parents.push_back(b);
  return Var::make(y, parents, "conv_transpose2d", [xd, wd, has_bias, args](Node& self) {
    const Tensor& dy = self.grad;  // [N, C, OH, OW], the conv2d "input" side
    if (self.parents[0]->requires_grad) self.parents[0]->accumulate(conv2d(dy, wd, Tensor(), args));
    if (self.parents[1]->requires_grad)
      self.parents[1]->accumulate(conv2d_backward_weight(xd, dy, wd.shape(), args));
    if (has_bias && self.parents[2]->requires_grad) self.parents[2]->accumulate(sum(dy, {0, 2, 3}));
  });
}

Var upsample_nearest2d(const Var& x, int64_t scale) {
  return Var::make(upsample_nearest2d(x.data(), scale), {x}, "upsample_nearest2d", [scale](Node& self) {
    self.parents[0]->accumulate(upsample_nearest2d_backward(self.grad, scale));
  });
}

Var max_pool2d(const Var& x, const Pool2dArgs& args) {
  Tensor argmax;  // flat h*W+w input index of each output's maximum
  Tensor y = max_pool2d(x.data(), args, &argmax);
  Shape in = x.shape();
  return Var::make(y, {x}, "max_pool2d", [argmax, in](Node& self) {
    self.parents[0]->accumulate(max_pool2d_backward(self.grad, argmax, in));
  });
}

Var avg_pool2d(const Var& x, const Pool2dArgs& args) {
  Shape in = x.shape();
  return Var::make(avg_pool2d(x.data(), args), {x}, "avg_pool2d", [in, args](Node& self) {
    self.parents[0]->accumulate(avg_pool2d_backward(self.grad, in, args));
  });
}

Var global_avg_pool(const Var& x) {
  Shape in = x.shape();
  return Var::make(global_avg_pool(x.data()), {x}, "global_avg_pool", [in](Node& self) {
    // the mean over H, W is an average pool with one window covering the whole plane
    Pool2dArgs whole;
    whole.kh = whole.stride_h = in[2];
    whole.kw = whole.stride_w = in[3];
    whole.pad_h = whole.pad_w = 0;
    Tensor dy = self.grad.reshape({in[0], in[1], 1, 1});
    self.parents[0]->accumulate(avg_pool2d_backward(dy, in, whole));
  });
}

}  // namespace normad
