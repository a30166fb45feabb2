// normad reference kernels: every op of the backend table (tensor/backend.h) as plain loops over
// raw arrays, llm.c style. They are the specification every other backend is checked against, so
// they are written to be obviously correct, not fast: one output element at a time, sums and dot
// products accumulated in double, no Eigen, no oneTBB, nothing shared with the CPU backend.
// Math: each kernel states its formula; the semantics are those documented in tensor/ops.h.
// Tested by tests/test_backend_ops.cpp: the CPU (and CUDA) backends are compared with these
// kernels on every case of the op table, and the backward kernels of every backend against central
// finite differences of these forward kernels instantiated in double.
//
// The kernels are templates over the element type T (float for the reference backend, double for
// the finite differences of the op harness), instantiated for both in tensor/reference.cpp.
// Argument order as in llm.c: outputs first, then inputs, then sizes and options. Arguments are
// assumed valid (the public ops in tensor/ops.h validate them before dispatching); a null pointer
// is allowed only where a comment says so.
//
// Shapes: N batch, C channels, H, W input, OH, OW output, F filters, KH, KW kernel,
// G groups (conv groups or BN row groups), S = H*W, M, N, D rows and width (matrices),
// outer / R / inner: a tensor viewed as [outer, R, inner] around one reduced dim.
//
// Worked example (conv2d_forward): x [2, 4, 7, 6], w [6, 2, 3, 3] with groups = 2, stride 2,
// pad 1 -> ConvSize{N 2, C 4, H 7, W 6, F 6, KH 3, KW 3, OH 4, OW 3}, out [2, 6, 4, 3]; filters 0-2
// read input channels 0-1, filters 3-5 read channels 2-3.
#pragma once

#include <cstdint>
#include <vector>

#include "tensor/backend.h"
#include "tensor/ops.h"

namespace normad::ref {

// ---- elementwise -------------------------------------------------------------------------------
// One element of a unary / binary op (the formulas listed at UnaryOp and BinaryOp in backend.h).
template <class T> T unary_value(UnaryOp op, T x, T p0, T p1);
template <class T> T binary_value(BinaryOp op, T a, T b, T p0, T p1);

// out[i] = f(a[i]; p0, p1) for i < n.
template <class T>
void unary_forward(T* out,         // [n]
                   const T* a,     // [n]
                   int64_t n,      // number of elements
                   UnaryOp op,     // which f
                   T p0, T p1);    // its parameters (unused by most ops)

// out[i] = f(a[ia], b[ib]; p0, p1) with NumPy broadcasting: the coordinates of output element i,
// right-aligned against a_shape and b_shape, taken as 0 along a dim of size 1.
template <class T>
void binary_forward(T* out,                 // out_shape
                    const T* a,             // a_shape
                    const T* b,             // b_shape
                    const Shape& out_shape, // broadcast_shape(a_shape, b_shape)
                    const Shape& a_shape,
                    const Shape& b_shape,
                    BinaryOp op, T p0, T p1);

// out = a broadcast to out_shape (binary_forward's index rule with one input).
template <class T>
void expand_forward(T* out, const T* a, const Shape& out_shape, const Shape& a_shape);

// ---- matrix products (double accumulation) -----------------------------------------------------
// c[i, j] = bias[j] + sum_k op(a)[i, k] op(b)[k, j]; a is stored [M, K] ([K, M] when trans_a),
// b [K, N] ([N, K] when trans_b), c [M, N], bias [N] or none (nullptr: 0).
template <class T>
void matmul_forward(T* c, const T* a, const T* b, int64_t M, int64_t N, int64_t K, bool trans_a,
                    bool trans_b, const T* bias = nullptr);
// The same per batch entry: c [B, M, N], a [Ba, ...], b [Bb, ...]; a batch of 1 is broadcast.
template <class T>
void bmm_forward(T* c, const T* a, const T* b, int64_t B, int64_t Ba, int64_t Bb, int64_t M,
                 int64_t N, int64_t K, bool trans_a, bool trans_b);

// ---- reductions ----------------------------------------------------------------------------------
// out = sum of a over `dims` (sorted, unique); out is laid out as a_shape with those dims at size 1.
template <class T>
void sum_forward(T* out, const T* a, const Shape& a_shape, const std::vector<int64_t>& dims);
// a viewed as [outer, R, inner]: out[o, i] = max_k a[o, k, i], argmax[o, i] = that k as a float.
// The first element starts the scan and a later one wins only when strictly greater (so the first
// maximum is kept, and a NaN counts only in first place: the CPU backend's rule, see reference.cpp).
// argmax may be null.
template <class T>
void max_forward(T* out, T* argmax, const T* a, int64_t outer, int64_t R, int64_t inner);
// dx [outer, R, inner] = 0 except dx[o, argmax[o, i], i] = dout[o, i].
template <class T>
void max_backward(T* dx, const T* dout, const T* argmax, int64_t outer, int64_t R, int64_t inner);
// out[o, i] = m + log(sum_k exp(a[o, k, i] - m)), m = max_forward's maximum (0 when it is +-inf).
template <class T>
void logsumexp_forward(T* out, const T* a, int64_t outer, int64_t R, int64_t inner);

// ---- layout --------------------------------------------------------------------------------------
// out[j_0, ..., j_r] = a[i] with i's coordinate perm[d] equal to j_d (out has shape a_shape[perm]).
template <class T>
void permute_forward(T* out, const T* a, const Shape& a_shape, const std::vector<int64_t>& perm);
// Inputs k viewed as [outer, lens[k], inner], placed one after another along the middle dim.
template <class T>
void concat_forward(T* out, const std::vector<const T*>& ins, const std::vector<int64_t>& lens,
                    int64_t outer, int64_t inner);
// a [outer, n, inner] -> out [outer, len, inner] = a[:, start:start+len, :].
template <class T>
void slice_forward(T* out, const T* a, int64_t outer, int64_t n, int64_t inner, int64_t start,
                   int64_t len);
// out[:, start:start+len, :] += g (in place; the backward of slice).
template <class T>
void slice_add(T* out, const T* g, int64_t outer, int64_t n, int64_t inner, int64_t start,
               int64_t len);
// out[i, :] = a[idx[i], :] for rows of `row` elements.
template <class T>
void index_select_forward(T* out, const T* a, const int64_t* idx, int64_t n_idx, int64_t row);
// out[idx[i], :] += g[i, :] in order of i (in place; the backward of index_select).
template <class T>
void index_add(T* out, const int64_t* idx, const T* g, int64_t n_idx, int64_t row);

// ---- convolution and pooling (NCHW) --------------------------------------------------------------
struct ConvSize {
  int64_t N, C, H, W;  // input x [N, C, H, W]
  int64_t F, KH, KW;   // weight w [F, C / groups, KH, KW]
  int64_t OH, OW;      // output [N, F, OH, OW]
};
// The sizes of a valid convolution (OH = (H + 2 pad_h - dil_h (KH - 1) - 1) / stride_h + 1).
ConvSize conv_size(const Shape& x, const Shape& w, const Conv2dArgs& a);

// out[n, f, oh, ow] = b[f] + sum_{c, kh, kw} w[f, c, kh, kw] x[n, g Cg + c, ih, iw] with
// g = f / (F / G), ih = oh stride_h - pad_h + kh dil_h (likewise iw), 0 outside the input.
// bias may be null.
template <class T>
void conv2d_forward(T* out, const T* x, const T* w, const T* bias, const ConvSize& s,
                    const Conv2dArgs& a);
// out = act(scale[f] conv2d(x, w)[n, f] + shift[f]); scale null: 1, shift null: 0.
template <class T>
void conv2d_affine_act_forward(T* out, const T* x, const T* w, const T* scale, const T* shift,
                               const ConvSize& s, const Conv2dArgs& a, Activation act);
// dx[n, g Cg + c, ih, iw] = sum of dout[n, f, oh, ow] w[f, c, kh, kw] over the (f, oh, ow, kh, kw)
// whose tap lands on (ih, iw): the adjoint of conv2d_forward in x.
template <class T>
void conv2d_backward_input(T* dx, const T* dout, const T* w, const ConvSize& s,
                           const Conv2dArgs& a);
// dw[f, c, kh, kw] = sum_{n, oh, ow} dout[n, f, oh, ow] x[n, g Cg + c, ih, iw].
template <class T>
void conv2d_backward_weight(T* dw, const T* dout, const T* x, const ConvSize& s,
                            const Conv2dArgs& a);

struct PoolSize {
  int64_t N, C, H, W;  // input [N, C, H, W]
  int64_t OH, OW;      // output [N, C, OH, OW] (pool2d_shape)
};
// out = max over the window clipped to the input (padding never wins), argmax = its flat ih W + iw
// (the first maximum; a NaN replaces the running maximum, PyTorch's rule). argmax may be null.
template <class T>
void max_pool2d_forward(T* out, T* argmax, const T* x, const PoolSize& s, const Pool2dArgs& a);
// dx [NC, HW] = 0, then dx[p, argmax[p, j]] += dout[p, j] for every output j of plane p.
template <class T>
void max_pool2d_backward(T* dx, const T* dout, const T* argmax, int64_t NC, int64_t HW,
                         int64_t OHW);
// out = sum over the window / divisor: the window clipped to the padded input gives the divisor
// with count_include_pad, the window clipped to the input gives the sum (and the divisor without).
template <class T>
void avg_pool2d_forward(T* out, const T* x, const PoolSize& s, const Pool2dArgs& a);
// dx[window] += dout / divisor for every output (the adjoint of avg_pool2d_forward).
template <class T>
void avg_pool2d_backward(T* dx, const T* dout, const PoolSize& s, const Pool2dArgs& a);
// out[p] = mean of plane p's HW values.
template <class T>
void global_avg_pool_forward(T* out, const T* x, int64_t NC, int64_t HW);
// out [NC, H s, W s][oh, ow] = x[NC, H, W][oh / s, ow / s].
template <class T>
void upsample_nearest2d_forward(T* out, const T* x, int64_t NC, int64_t H, int64_t W,
                                int64_t scale);
// dx[p, h, w] = sum of the s x s block of dout above it; H, W are dx's sizes.
template <class T>
void upsample_nearest2d_backward(T* dx, const T* dout, int64_t NC, int64_t H, int64_t W,
                                 int64_t scale);
// out[p, k] = x[p, k] s[p] for planes p < NC of HW values.
template <class T>
void scale_planes_forward(T* out, const T* x, const T* s, int64_t NC, int64_t HW);

// ---- batch normalisation (x [N, C, S]: S = H*W, or 1 for [N, C]; G groups of N / G rows) ---------
// Per group g and channel c over its M = (N / G) S values: mean, biased var, invstd =
// 1 / sqrt(var + eps), out = gamma (x - mean) invstd + beta. mean / invstd [G, C] are written;
// running_mean / running_var [C] (either may be null) get r = (1 - momentum) r + momentum stat
// once per group in group order, with the unbiased variance var M / (M - 1) (var when M = 1).
// gamma / beta may be null (1 and 0).
template <class T>
void batch_norm_train_forward(T* out, T* mean, T* invstd, T* running_mean, T* running_var,
                              const T* x, const T* gamma, const T* beta, int64_t N, int64_t C,
                              int64_t S, int64_t G, double eps, double momentum);
// out = gamma (x - running_mean) / sqrt(running_var + eps) + beta; gamma / beta may be null.
template <class T>
void batch_norm_eval_forward(T* out, const T* x, const T* gamma, const T* beta,
                             const T* running_mean, const T* running_var, int64_t N, int64_t C,
                             int64_t S, double eps);
// With xhat = (x - mean) invstd per group and dy = gamma dout:
// dx = invstd (dy - mean(dy) - xhat mean(dy xhat)) over each group's M values;
// dgamma[c] = sum over all rows of dout xhat, dbeta[c] = sum of dout (written, not accumulated;
// either may be null, gamma may be null: 1).
template <class T>
void batch_norm_backward(T* dx, T* dgamma, T* dbeta, const T* dout, const T* x, const T* gamma,
                         const T* mean, const T* invstd, int64_t N, int64_t C, int64_t S,
                         int64_t G);

// The evaluation BN folded into a per-channel affine after a convolution with bias b:
// scale = gamma / sqrt(running_var + eps), shift = beta + (b - running_mean) scale;
// gamma, beta, b may be null (1, 0, 0).
template <class T>
void batch_norm_fold(T* scale, T* shift, const T* gamma, const T* beta, const T* bias,
                     const T* running_mean, const T* running_var, int64_t C, double eps);
// batch_norm_statistics and conv2d_bn_relu_input are composed in tensor/reference.cpp from these
// kernels: the statistics are batch_norm_train_forward's (its output dropped); the convolution's
// input is y = relu(gamma (x - mean) invstd + beta) per element in double from the given [G, C]
// statistics (gamma 1, beta 0 when absent), then conv2d_forward of y.
// batch_norm_train_forward, then a leaky ReLU of slope `slope` (0: ReLU) on every output.
template <class T>
void batch_norm_relu_train_forward(T* out, T* mean, T* invstd, T* running_mean, T* running_var,
                                   const T* x, const T* gamma, const T* beta, int64_t N,
                                   int64_t C, int64_t S, int64_t G, double eps, double momentum,
                                   double slope);
// batch_norm_backward of dz = (z > 0 ? dout : slope dout), z = gamma (x - mean) invstd + beta.
template <class T>
void batch_norm_relu_backward(T* dx, T* dgamma, T* dbeta, const T* dout, const T* x,
                              const T* gamma, const T* beta, const T* mean, const T* invstd,
                              int64_t N, int64_t C, int64_t S, int64_t G, double slope);

// ---- distances and normalisation -----------------------------------------------------------------
// out[i, j] = sum_k (a[i, k] - b[j, k])^2: a [M, D], b [N, D], out [M, N].
template <class T>
void pairwise_sqdist_forward(T* out, const T* a, const T* b, int64_t M, int64_t N, int64_t D);
// With G = dout where dist > 0 and 0 where dist <= 0 (the CPU's clamp at 0 was active; NaN keeps
// dout): da[i] = 2 sum_j G[i, j] (a[i] - b[j]), db[j] = 2 sum_i G[i, j] (b[j] - a[i]).
// da or db may be null.
template <class T>
void pairwise_sqdist_backward(T* da, T* db, const T* dout, const T* a, const T* b, const T* dist,
                              int64_t M, int64_t N, int64_t D);
// y[i] = x[i] / max(|x[i]|, eps) per row of x [M, D].
template <class T>
void l2_normalize_forward(T* y, const T* x, int64_t M, int64_t D, double eps);
// dx[i] = (g[i] - y[i] (g[i].y[i])) / |x[i]| when |x[i]| > eps, else g[i] / eps.
template <class T>
void l2_normalize_backward(T* dx, const T* dout, const T* x, const T* y, int64_t M, int64_t D,
                           double eps);

// ---- optimiser steps (in place; the rules of tensor/ops.h, torch.optim's) ------------------------
// d = g + wd w; with momentum: v = first ? d : momentum v + d, d = v; w -= lr d.
// velocity may be null when p.momentum == 0.
template <class T>
void sgd_step(T* w, T* velocity, const T* g, int64_t n, const SgdParams& p);
// gk = g + wd w; m = b1 m + (1 - b1) gk; v = b2 v + (1 - b2) gk^2;
// w -= lr / bc1 m / (sqrt(v) / sqrt(bc2) + eps), bc = 1 - beta^step in double.
template <class T>
void adam_step(T* w, T* m, T* v, const T* g, int64_t n, const AdamParams& p);

}  // namespace normad::ref
