// normad tensor ops: every computation on tensor values above tensor/ goes through these functions
// (autograd's backward rules, the optimisers and the models included), so a model runs unchanged on
// any backend. Each function is the single dispatch point for its op (tensor/ops.cpp): it validates
// its arguments once (shapes, ranges, that all tensors share one device), then calls the entry of
// the backend table of that device (tensor/backend.h). A few ops are compositions of others (mean,
// transpose, stack, sum_to, conv_transpose2d); they are marked "composed".
// Tested by tests/test_backend_ops.cpp (every op on every backend against the plain-loop reference
// backend, finite differences in double), tests/test_ops.cpp (closed forms), tests/test_grad.cpp
// (finite differences through autograd) and tests/test_parity.cpp (PyTorch fixtures).
//
// Shapes: N batch, C channels, H, W spatial, K kernel, G groups (conv) or row groups (grouped BN).
#pragma once

#include <vector>

#include "tensor/tensor.h"

namespace normad {

// ---- elementwise, with NumPy/PyTorch broadcasting -------------------------------------------
Shape broadcast_shape(const Shape& a, const Shape& b);  // throws with both shapes on mismatch
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor add_scalar(const Tensor& a, float s);
Tensor mul_scalar(const Tensor& a, float s);
Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor abs(const Tensor& a);
Tensor sign(const Tensor& a);
Tensor pow(const Tensor& a, float p);
Tensor clamp(const Tensor& a, float lo, float hi);  // use +-INFINITY for one-sided
Tensor relu(const Tensor& a);
Tensor leaky_relu(const Tensor& a, float slope);
Tensor sigmoid(const Tensor& a);
Tensor silu(const Tensor& a);  // x * sigmoid(x)
// g * (x > 0 ? 1 : slope): the backward of leaky_relu (slope 0: relu).
Tensor leaky_relu_backward(const Tensor& g, const Tensor& x, float slope);
// g * (lo <= x <= hi ? 1 : 0): the backward of clamp (PyTorch's convention at the bounds).
Tensor clamp_backward(const Tensor& g, const Tensor& x, float lo, float hi);
// Sums `g` (shaped like a broadcast result) down to `shape` (the inverse of broadcasting). Composed.
Tensor sum_to(const Tensor& g, const Shape& shape);

// ---- matrix products (the CPU GEMM engine: native, OpenBLAS or Eigen, tensor/gemm.h) -------
// a [M, K] x b [K, N] -> [M, N]; trans_a / trans_b read a or b transposed without copying.
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);
// a [B, M, K] x b [B, K, N] -> [B, M, N] (B may be 1 on either side: broadcast).
Tensor bmm(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);
// A Linear layer's forward: y [N, F] = x [N, K] w [F, K]^T + b [F], the bias added by the GEMM as it
// writes y (no second pass over y; matmul + add on backends without a fused entry).
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b);

// ---- reductions --------------------------------------------------------------------------
// Over the listed dims (negative allowed); empty dims = all dims. keepdim keeps them as size 1.
Tensor sum(const Tensor& a, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor mean(const Tensor& a, std::vector<int64_t> dims = {}, bool keepdim = false);  // composed
// Max over one dim; `argmax` (if given) receives the index of the first maximum as float.
Tensor max(const Tensor& a, int64_t dim, bool keepdim = false, Tensor* argmax = nullptr);
// The backward of max: dout and argmax shaped like max's output (keepdim or not) -> dx of shape
// in_shape with dout at each maximum's position and 0 elsewhere.
Tensor max_backward(const Tensor& dout, const Tensor& argmax, const Shape& in_shape, int64_t dim);
// log(sum(exp(a), dim)) computed stably with the max subtracted.
Tensor logsumexp(const Tensor& a, int64_t dim, bool keepdim = false);
// Broadcasts `a` to `shape` (NumPy rules: a reduced tensor with keepdim shape expands back).
Tensor expand_to(const Tensor& a, const Shape& shape);

// ---- layout --------------------------------------------------------------------------------
Tensor permute(const Tensor& a, const std::vector<int64_t>& perm);
Tensor transpose(const Tensor& a, int64_t d0, int64_t d1);  // composed (permute)
// The identity permutation of `rank` dims with d0 and d1 swapped (what transpose permutes by).
std::vector<int64_t> swap_perm(int64_t rank, int64_t d0, int64_t d1);
Tensor flatten(const Tensor& a, int64_t start_dim = 1, int64_t end_dim = -1);
Tensor concat(const std::vector<Tensor>& ts, int64_t dim);
Tensor stack(const std::vector<Tensor>& ts, int64_t dim);  // composed (concat)
// Elements [start, end) along dim (end clamped to the size; negative start/end count from the end).
Tensor slice(const Tensor& a, int64_t dim, int64_t start, int64_t end);
// Adds `g` into out[..., start:start+g.size(dim), ...] (the backward of slice).
void slice_add_(Tensor& out, const Tensor& g, int64_t dim, int64_t start);
// Rows of a [R, ...] picked by idx (values in [0, R)) -> [len(idx), ...].
Tensor index_select(const Tensor& a, const std::vector<int64_t>& idx);
// out[idx[i]] += g[i] (rows), the backward of index_select.
void index_add_(Tensor& out, const std::vector<int64_t>& idx, const Tensor& g);

// ---- convolution and pooling (NCHW) ----------------------------------------------------------
struct Conv2dArgs {
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dil_h = 1, dil_w = 1;
  int64_t groups = 1;
};
// x [N, C, H, W], w [F, C/groups, KH, KW], b [F] or undefined -> [N, F, OH, OW]
// OH = (H + 2 pad_h - dil_h (KH - 1) - 1) / stride_h + 1, likewise OW.
// On the CPU, depthwise convolutions (groups = C = F) and those with few channels run direct loops,
// the rest im2col + GEMM (tensor/conv.cpp).
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dArgs& a);
// Inference convolution with a per-filter affine and an activation fused into the write-back
// (a BN in eval mode folded in: scale = gamma / sqrt(var + eps), shift = beta - mean * scale):
// out[n, f] = act(scale[f] * conv2d(x, w)[n, f] + shift[f]); scale, shift [F] (scale may be
// undefined: 1). SiLU x / (1 + exp(-x)) uses a vectorised exp. No backward (not an autograd op).
enum class Activation { none, relu, silu };
Tensor conv2d_affine_act(const Tensor& x, const Tensor& w, const Tensor& scale, const Tensor& shift,
                         const Conv2dArgs& a, Activation act);
// The output shape of conv2d, [N, F, OH, OW]; throws naming the shapes when they do not fit.
Shape conv2d_shape(const Shape& x, const Shape& w, const Conv2dArgs& a, const char* what = "conv2d");
// Gradients given dout [N, F, OH, OW]: dx [N, C, H, W], dw [F, C/groups, KH, KW]; with dbias,
// also the bias gradient [F], dout summed over N, OH, OW, from the same pass over dout where the
// kernel allows (the CPU's small-depth and implicit kernels: its own order, close to
// sum(dout, {0, 2, 3}) but not its bits).
Tensor conv2d_backward_input(const Tensor& dout, const Tensor& w, const Shape& x_shape,
                             const Conv2dArgs& a);
Tensor conv2d_backward_weight(const Tensor& dout, const Tensor& x, const Shape& w_shape,
                              const Conv2dArgs& a, Tensor* dbias = nullptr);
// Transposed convolution (the adjoint of conv2d with the same args): x [N, F, H, W] and
// w [F, C/groups, KH, KW] (PyTorch's ConvTranspose2d layout) -> [N, C, OH, OW] with
// OH = (H - 1) stride_h - 2 pad_h + dil_h (KH - 1) + 1 (+ out_pad_h), likewise OW.
// It is conv2d_backward_input with x as dout; b [C] or undefined; output padding < stride.
Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dArgs& a,
                        int64_t out_pad_h = 0, int64_t out_pad_w = 0);  // composed
// The conv2d input shape whose output is `out` [N, F, OH, OW] under w [F, C/groups, KH, KW]
// (the output shape of conv_transpose2d).
Shape conv_transpose2d_shape(const Shape& x, const Shape& w, const Conv2dArgs& a,
                             int64_t out_pad_h = 0, int64_t out_pad_w = 0);

struct Pool2dArgs {
  int64_t kh = 2, kw = 2;
  int64_t stride_h = 2, stride_w = 2;
  int64_t pad_h = 0, pad_w = 0;
  bool ceil_mode = false;
  bool count_include_pad = true;  // avg pool only, PyTorch default
};
// The output shape of a pooling, [N, C, OH, OW] (PyTorch's rule: with ceil_mode a window must start
// inside the input or its left padding); throws on bad sizes.
Shape pool2d_shape(const Shape& x, const Pool2dArgs& a, const char* what = "pool2d");
// x [N, C, H, W] -> [N, C, OH, OW]; `argmax` receives the flat h*W+w input index per output.
Tensor max_pool2d(const Tensor& x, const Pool2dArgs& a, Tensor* argmax = nullptr);
Tensor max_pool2d_backward(const Tensor& dout, const Tensor& argmax, const Shape& x_shape);
Tensor avg_pool2d(const Tensor& x, const Pool2dArgs& a);
Tensor avg_pool2d_backward(const Tensor& dout, const Shape& x_shape, const Pool2dArgs& a);
// x [N, C, H, W] -> [N, C]
Tensor global_avg_pool(const Tensor& x);
// Nearest-neighbour upsampling by an integer factor s (F.interpolate(x, scale_factor=s)):
// x [N, C, H, W] -> [N, C, H s, W s]; the backward sums each s x s block of dout.
Tensor upsample_nearest2d(const Tensor& x, int64_t scale);
Tensor upsample_nearest2d_backward(const Tensor& dout, int64_t scale);
// out[n, c, h, w] = x[n, c, h, w] s[n, c]: x [N, C, H, W], s [N, C] (squeeze-excitation's gate,
// mul with s broadcast as [N, C, 1, 1] without the broadcast machinery).
Tensor scale_planes(const Tensor& x, const Tensor& s);

// ---- batch normalisation ---------------------------------------------------------------------
// x is [N, C] or [N, C, H, W]; statistics per channel over N (and H, W).
// Grouped training mode: G > 1 splits the N rows into G equal contiguous groups, each normalised
// with its own statistics (ACR: one forward pass for G tasks whose statistics never mix).
// y = gamma (x - mean) / sqrt(var + eps) + beta, var biased (divide by the count).
struct BatchNormSaved {
  Tensor mean;    // [G, C]
  Tensor invstd;  // [G, C], 1 / sqrt(var + eps)
};
// Training mode. gamma/beta may be undefined (no affine). If running_mean/var are defined they are
// updated in place: r = (1 - momentum) r + momentum * stat, with the unbiased variance (PyTorch);
// with G > 1 once per group in group order, as a loop of G separate passes would.
Tensor batch_norm_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                        int64_t groups, BatchNormSaved* saved, Tensor* running_mean = nullptr,
                        Tensor* running_var = nullptr, float momentum = 0.1f);
// Folds an evaluation-mode BN (and the bias b of the convolution before it) into a per-channel
// affine: scale = gamma / sqrt(running_var + eps), shift = beta + (b - running_mean) scale, so that
// BN(conv(x) + b) = scale conv(x) + shift (conv2d_affine_act). gamma, beta, b may be undefined
// (1, 0, 0); all [C].
void batch_norm_fold(const Tensor& gamma, const Tensor& beta, const Tensor& bias,
                     const Tensor& running_mean, const Tensor& running_var, float eps,
                     Tensor* scale, Tensor* shift);
// Evaluation mode: running statistics.
Tensor batch_norm_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                       const Tensor& running_mean, const Tensor& running_var, float eps);
// Backward of training mode (through the batch mean and variance).
// dx always; dgamma/dbeta [C] when the pointers are non-null.
Tensor batch_norm_backward(const Tensor& dout, const Tensor& x, const Tensor& gamma,
                           const BatchNormSaved& saved, int64_t groups, Tensor* dgamma,
                           Tensor* dbeta);

// Training-mode batch norm and a leaky ReLU of slope `slope` (0: ReLU) as one op:
// y = leaky_relu(z, slope), z = batch_norm_train(x, ...), without storing z. The CPU backend makes
// one pass over x for the statistics and one that writes y (the two ops in sequence make three
// and write z); its y is bit for bit the composed ops' (tests/test_batchnorm.cpp).
Tensor batch_norm_relu_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                             int64_t groups, float slope, BatchNormSaved* saved,
                             Tensor* running_mean = nullptr, Tensor* running_var = nullptr,
                             float momentum = 0.1f);
// The statistics of batch_norm_train alone: mean and invstd [G, C], the same bits as its `saved`,
// and the running statistics updated as it updates them, without normalising x (for
// conv2d_bn_relu_input, which normalises x as it reads it).
BatchNormSaved batch_norm_statistics(const Tensor& x, float eps, int64_t groups, Tensor* running_mean = nullptr,
                                     Tensor* running_var = nullptr, float momentum = 0.1f);
// conv2d(y, w, b) of y = batch_norm_relu_train(x, gamma, beta, ...)'s output for the statistics
// `saved` (of x, in G = groups groups of rows): y = relu(scale x + shift), scale = invstd gamma,
// shift = beta - mean scale per (group, channel), never stored. On the CPU bit for bit the two
// ops composed (tests/test_conv.cpp); the implicit kernel normalises x as it copies it. Trained
// through autograd's conv2d_bn_relu_input (its weight gradient below).
Tensor conv2d_bn_relu_input(const Tensor& x, const Tensor& gamma, const Tensor& beta, const BatchNormSaved& saved,
                            int64_t groups, const Tensor& w, const Tensor& b, const Conv2dArgs& a);
// conv2d_backward_weight(dout, y, w_shape, a) of the same y = relu(scale x + shift), never stored:
// conv2d_bn_relu_input's weight gradient, for training through it (autograd's conv2d_bn_relu_input). On
// the CPU bit for bit the two ops composed (the implicit kernel normalises x as it copies it).
Tensor conv2d_bn_relu_input_backward_weight(const Tensor& dout, const Tensor& x, const Tensor& gamma,
                                            const Tensor& beta, const BatchNormSaved& saved, int64_t groups,
                                            const Shape& w_shape, const Conv2dArgs& a, Tensor* dbias = nullptr);
// conv2d_bn_relu_input's batch norm + ReLU of a convolution's input: gamma and beta (either may be
// undefined), the statistics of x and the groups of rows they are per.
struct BnReluInput {
  Tensor gamma, beta;
  BatchNormSaved saved;
  int64_t groups = 1;
};
// A convolution and the training-mode statistics of its output: y = conv2d(x, w, b, a), or
// conv2d_bn_relu_input(x, in->gamma, in->beta, in->saved, in->groups, w, b, a) when `in` is given,
// and *stats = batch_norm_statistics(y, eps, groups, running_mean, running_var, momentum) (the
// running statistics moved the same). On the CPU bit for bit the ops composed; the statistics'
// per-plane part is computed as each output plane is written (still in L1), so y is not read back.
// Trained through autograd's conv2d_bn_relu_input (its stats argument): the statistics need no
// backward of their own, the next batch norm's training backward goes through them.
Tensor conv2d_statistics(const Tensor& x, const BnReluInput* in, const Tensor& w, const Tensor& b, const Conv2dArgs& a,
                         float eps, int64_t groups, Tensor* running_mean, Tensor* running_var, float momentum,
                         BatchNormSaved* stats);
// Its backward: batch_norm_backward of dz = (z > 0 ? dout : slope dout), z recomputed from x, the
// saved statistics, gamma and beta (the same float operations as the forward, so the same mask).
Tensor batch_norm_relu_backward(const Tensor& dout, const Tensor& x, const Tensor& gamma,
                                const Tensor& beta, const BatchNormSaved& saved, int64_t groups,
                                float slope, Tensor* dgamma, Tensor* dbeta);

// ---- distances and normalisation -----------------------------------------------------------
// a [M, D], b [N, D] -> [M, N] with |a_i|^2 + |b_j|^2 - 2 a_i.b_j, clamped at 0.
Tensor pairwise_sqdist(const Tensor& a, const Tensor& b);
// The backward of pairwise_sqdist: with G = dout masked to 0 where dist <= 0 (the clamp was active),
// da = 2 (rowsum(G) a - G b) and db = 2 (colsum(G) b - G^T a); either pointer may be null.
void pairwise_sqdist_backward(const Tensor& dout, const Tensor& a, const Tensor& b,
                              const Tensor& dist, Tensor* da, Tensor* db);
// Rows of a [M, D] divided by max(|row|, eps) (torch.nn.functional.normalize, p=2, dim=1).
Tensor l2_normalize(const Tensor& a, float eps = 1e-12f);
// Its backward, y = l2_normalize(x): dx = (g - y (g.y)) / |x| (g / eps where |x| <= eps).
Tensor l2_normalize_backward(const Tensor& dout, const Tensor& x, const Tensor& y, float eps);

// ---- optimiser steps (torch.optim's update rules, in place; float32 state) -----------------
// SGD: d = g + weight_decay w; with momentum, v = first ? d : momentum v + d and d = v; w -= lr d.
struct SgdParams {
  float lr = 0.f, momentum = 0.f, weight_decay = 0.f;
  bool first = false;  // the velocity buffer is set to d itself on the first step (torch)
};
// velocity is ignored (may be undefined) when momentum is 0.
void sgd_step(Tensor& w, const Tensor& g, Tensor& velocity, const SgdParams& p);
// Adam: gk = g + weight_decay w; m = b1 m + (1 - b1) gk; v = b2 v + (1 - b2) gk^2;
// w -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps), bc = 1 - beta^t in double (torch).
struct AdamParams {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.f;
  int64_t step = 1;  // t, counted from 1
};
void adam_step(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, const AdamParams& p);
// One parameter of a fused Adam step (adam_step_multi): w, m and v are updated in place from g.
struct AdamSlot {
  Tensor* w;         // the parameter
  const Tensor* g;   // its gradient, shaped like w
  Tensor* m;         // first moment, shaped like w
  Tensor* v;         // second moment, shaped like w
  int64_t step = 1;  // this parameter's t (each counts its own steps: one without a grad is skipped)
};
// adam_step on every slot, with p's lr, betas, eps and weight_decay and the slot's own step
// (p.step is not used). Every tensor of every slot on one device. Values are those of adam_step
// slot by slot (on the CPU bit for bit: it is that loop); CUDA steps them all in one launch.
//   slots {w [64, 3], ...}, {w [64], ...} -> one kernel over 256 weights
void adam_step_multi(const std::vector<AdamSlot>& slots, const AdamParams& p);

}  // namespace normad
