// normad reference backend (Device::Reference): every entry of the backend table as plain loops,
// the specification the CPU and CUDA backends are checked against (tensor/reference.h lists the
// kernels and their formulas). Host memory from the same allocator as the CPU; nothing here calls
// the CPU backend, Eigen or oneTBB, so a bug in a fast kernel cannot hide in its own reference.
// Math: one output element at a time; sums, dot products, statistics and convolutions accumulate in
// double and round once at the end; elementwise ops use the same float formulas as tensor/ops.h.
// Tested by tests/test_backend_ops.cpp (every op: CPU vs reference; backward kernels vs central
// finite differences in double of the double-instantiated forward kernels), tests/test_conv.cpp and
// tests/test_parity.cpp (conv2d on Device::Reference against loops and PyTorch).
//
// Shapes: N batch, C channels, H, W input, OH, OW output, F filters, KH, KW kernel, G groups,
// S = H*W, M, N, D matrix sizes, outer / R / inner around a reduced dim.
#include "tensor/reference.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "tensor/backend.h"

namespace normad::ref {

namespace {

// Strides of a row-major shape: stride[d] = prod_{l > d} shape[l].
std::vector<int64_t> strides_of(const Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (int64_t d = int64_t(s.size()) - 2; d >= 0; --d) st[d] = st[d + 1] * s[d + 1];
  return st;
}

// The flat index into an input of shape `in` (right-aligned against `out`, size-1 dims broadcast)
// of output element `i`.
int64_t broadcast_index(int64_t i, const Shape& out, const Shape& in) {
  const int64_t rank = int64_t(out.size()), lead = rank - int64_t(in.size());
  int64_t idx = 0, stride = 1;
  // walk the dims from the last: peel off output coordinate d, use it if the input dim is not 1
  for (int64_t d = rank - 1; d >= 0; --d) {
    const int64_t coord = i % out[d];
    i /= out[d];
    if (d < lead) continue;  // a dim the input does not have
    const int64_t size = in[d - lead];
    if (size != 1) idx += coord * stride;
    stride *= size;
  }
  return idx;
}

}  // namespace

// ---- elementwise ---------------------------------------------------------------------------------

template <class T>
T unary_value(UnaryOp op, T x, T p0, T p1) {
  switch (op) {
    case UnaryOp::neg: return -x;
    case UnaryOp::exp: return std::exp(x);
    case UnaryOp::log: return std::log(x);
    case UnaryOp::sqrt: return std::sqrt(x);
    case UnaryOp::abs: return std::fabs(x);
    // NaN compares false both ways: sign(NaN) = 0, as on the CPU (and in PyTorch)
    case UnaryOp::sign: return T((x > 0) - (x < 0));
    case UnaryOp::pow: return std::pow(x, p0);
    // NaN fails both tests and passes through
    case UnaryOp::clamp: return x < p0 ? p0 : (x > p1 ? p1 : x);
    case UnaryOp::relu: return x < 0 ? T(0) : x;  // NaN passes
    case UnaryOp::leaky_relu: return x > 0 ? x : p0 * x;
    // exp(-x) overflows to inf for very negative x, giving the right limits 0 and -0
    case UnaryOp::sigmoid: return T(1) / (T(1) + std::exp(-x));
    case UnaryOp::silu: return x / (T(1) + std::exp(-x));
    case UnaryOp::add_scalar: return x + p0;
    case UnaryOp::mul_scalar: return x * p0;
    case UnaryOp::count: break;
  }
  return std::numeric_limits<T>::quiet_NaN();
}

template <class T>
T binary_value(BinaryOp op, T a, T b, T p0, T p1) {
  switch (op) {
    case BinaryOp::add: return a + b;
    case BinaryOp::sub: return a - b;
    case BinaryOp::mul: return a * b;
    case BinaryOp::div: return a / b;
    // the documented rule: a NaN in b is returned, a NaN in a is not (see the op harness)
    case BinaryOp::maximum: return a >= b ? a : b;
    // a = dout, b = x
    case BinaryOp::leaky_relu_backward: return b > 0 ? a : p0 * a;
    case BinaryOp::clamp_backward: return (p0 <= b && b <= p1) ? a : T(0);
    case BinaryOp::count: break;
  }
  return std::numeric_limits<T>::quiet_NaN();
}

template <class T>
void unary_forward(T* out, const T* a, int64_t n, UnaryOp op, T p0, T p1) {
  // the same float formulas as the CPU: nothing accumulates, so there is no precision to gain
  for (int64_t i = 0; i < n; ++i) out[i] = unary_value(op, a[i], p0, p1);
}

template <class T>
void binary_forward(T* out, const T* a, const T* b, const Shape& out_shape, const Shape& a_shape,
                    const Shape& b_shape, BinaryOp op, T p0, T p1) {
  const int64_t n = shape_numel(out_shape);
  for (int64_t i = 0; i < n; ++i) {
    // each output element reads the input elements its coordinates map to
    const T av = a[broadcast_index(i, out_shape, a_shape)];
    const T bv = b[broadcast_index(i, out_shape, b_shape)];
    out[i] = binary_value(op, av, bv, p0, p1);
  }
}

template <class T>
void expand_forward(T* out, const T* a, const Shape& out_shape, const Shape& a_shape) {
  // binary_forward's index rule with one input: size-1 dims of a repeat along out_shape
  const int64_t n = shape_numel(out_shape);
  for (int64_t i = 0; i < n; ++i) out[i] = a[broadcast_index(i, out_shape, a_shape)];
}

// ---- matrix products -----------------------------------------------------------------------------

template <class T>
void matmul_forward(T* c, const T* a, const T* b, int64_t M, int64_t N, int64_t K, bool trans_a,
                    bool trans_b, const T* bias) {
  // one output element at a time: the double dot product of row i of op(a) and column j of op(b),
  // started from the bias
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double acc = bias ? double(bias[j]) : 0.0;
      for (int64_t k = 0; k < K; ++k) {
        // op(a)[i, k] and op(b)[k, j], read through the stored layout
        const double av = trans_a ? a[k * M + i] : a[i * K + k];
        const double bv = trans_b ? b[j * K + k] : b[k * N + j];
        acc += av * bv;
      }
      c[i * N + j] = T(acc);
    }
}

template <class T>
void bmm_forward(T* c, const T* a, const T* b, int64_t B, int64_t Ba, int64_t Bb, int64_t M,
                 int64_t N, int64_t K, bool trans_a, bool trans_b) {
  for (int64_t bi = 0; bi < B; ++bi) {
    // a batch of one is shared by every output batch entry
    const T* ab = a + (Ba == 1 ? 0 : bi) * M * K;
    const T* bb = b + (Bb == 1 ? 0 : bi) * K * N;
    matmul_forward(c + bi * M * N, ab, bb, M, N, K, trans_a, trans_b);
  }
}

// ---- reductions ----------------------------------------------------------------------------------

template <class T>
void sum_forward(T* out, const T* a, const Shape& a_shape, const std::vector<int64_t>& dims) {
  // the kept shape: a_shape with the reduced dims at size 1 (keepdim or not, the same order)
  Shape out_shape = a_shape;
  for (int64_t d : dims) out_shape[d] = 1;
  std::vector<double> acc(shape_numel(out_shape), 0.0);
  const int64_t n = shape_numel(a_shape);
  // every input element adds into the output element with its reduced coordinates set to 0
  for (int64_t i = 0; i < n; ++i) acc[broadcast_index(i, a_shape, out_shape)] += a[i];
  for (size_t o = 0; o < acc.size(); ++o) out[o] = T(acc[o]);
}

template <class T>
void max_forward(T* out, T* argmax, const T* a, int64_t outer, int64_t R, int64_t inner) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      // scan k = 0..R-1; only a strictly greater value replaces the best, so ties keep the first
      // maximum. A NaN wins only in first place (NaN > x and x > NaN are both false): the CPU
      // backend's rule; PyTorch would return the NaN wherever it is.
      T best = a[o * R * inner + i];
      int64_t best_k = 0;
      for (int64_t k = 1; k < R; ++k) {
        const T v = a[(o * R + k) * inner + i];
        if (v > best) best = v, best_k = k;
      }
      out[o * inner + i] = best;
      if (argmax) argmax[o * inner + i] = T(best_k);
    }
}

template <class T>
void max_backward(T* dx, const T* dout, const T* argmax, int64_t outer, int64_t R, int64_t inner) {
  // start from zero: only the maxima receive a gradient
  for (int64_t j = 0; j < outer * R * inner; ++j) dx[j] = T(0);
  // each output's gradient goes to the position of its maximum
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      const int64_t k = int64_t(argmax[o * inner + i]);
      dx[(o * R + k) * inner + i] = dout[o * inner + i];
    }
}

template <class T>
void logsumexp_forward(T* out, const T* a, int64_t outer, int64_t R, int64_t inner) {
  std::vector<T> m(outer * inner);
  max_forward<T>(m.data(), nullptr, a, outer, R, inner);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      // shift by the maximum so exp cannot overflow; a row of +-inf uses shift 0 instead
      // ((-inf) - (-inf) would be NaN)
      double shift = m[o * inner + i];
      if (std::isinf(shift)) shift = 0;
      double s = 0;
      for (int64_t k = 0; k < R; ++k) s += std::exp(double(a[(o * R + k) * inner + i]) - shift);
      // the log of the shifted sum, shifted back
      out[o * inner + i] = T(std::log(s) + shift);
    }
}

// ---- layout --------------------------------------------------------------------------------------

template <class T>
void permute_forward(T* out, const T* a, const Shape& a_shape, const std::vector<int64_t>& perm) {
  const int64_t rank = int64_t(a_shape.size()), n = shape_numel(a_shape);
  const std::vector<int64_t> in_stride = strides_of(a_shape);
  Shape out_shape(rank);
  for (int64_t d = 0; d < rank; ++d) out_shape[d] = a_shape[perm[d]];
  for (int64_t j = 0; j < n; ++j) {
    // output coordinate d is input coordinate perm[d]
    int64_t rem = j, i = 0;
    for (int64_t d = rank - 1; d >= 0; --d) {
      i += (rem % out_shape[d]) * in_stride[perm[d]];
      rem /= out_shape[d];
    }
    out[j] = a[i];
  }
}

template <class T>
void concat_forward(T* out, const std::vector<const T*>& ins, const std::vector<int64_t>& lens,
                    int64_t outer, int64_t inner) {
  int64_t total = 0;
  for (int64_t len : lens) total += len;
  int64_t offset = 0;  // where input k starts along the concatenated dim
  // copy input k's slab [outer, lens[k], inner] to rows offset..offset+lens[k] of the middle dim
  for (size_t k = 0; k < ins.size(); ++k) {
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t t = 0; t < lens[k]; ++t)
        for (int64_t i = 0; i < inner; ++i)
          out[(o * total + offset + t) * inner + i] = ins[k][(o * lens[k] + t) * inner + i];
    offset += lens[k];
  }
}

template <class T>
void slice_forward(T* out, const T* a, int64_t outer, int64_t n, int64_t inner, int64_t start,
                   int64_t len) {
  // rows start..start+len of the middle dim, for every outer and inner index
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t t = 0; t < len; ++t)
      for (int64_t i = 0; i < inner; ++i)
        out[(o * len + t) * inner + i] = a[(o * n + start + t) * inner + i];
}

template <class T>
void slice_add(T* out, const T* g, int64_t outer, int64_t n, int64_t inner, int64_t start,
               int64_t len) {
  // the adjoint of slice_forward: the same index map, accumulated into out
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t t = 0; t < len; ++t)
      for (int64_t i = 0; i < inner; ++i)
        out[(o * n + start + t) * inner + i] += g[(o * len + t) * inner + i];
}

template <class T>
void index_select_forward(T* out, const T* a, const int64_t* idx, int64_t n_idx, int64_t row) {
  // row r of out is row idx[r] of a (an index may repeat)
  for (int64_t r = 0; r < n_idx; ++r)
    for (int64_t j = 0; j < row; ++j) out[r * row + j] = a[idx[r] * row + j];
}

template <class T>
void index_add(T* out, const int64_t* idx, const T* g, int64_t n_idx, int64_t row) {
  // in order of r: a repeated index adds its rows in a fixed order
  for (int64_t r = 0; r < n_idx; ++r)
    for (int64_t j = 0; j < row; ++j) out[idx[r] * row + j] += g[r * row + j];
}

// ---- convolution and pooling ---------------------------------------------------------------------

ConvSize conv_size(const Shape& x, const Shape& w, const Conv2dArgs& a) {
  ConvSize s{x[0], x[1], x[2], x[3], w[0], w[2], w[3], 0, 0};
  // the last tap of a window sits dil (K - 1) after its first; windows start every stride
  s.OH = (s.H + 2 * a.pad_h - a.dil_h * (s.KH - 1) - 1) / a.stride_h + 1;
  s.OW = (s.W + 2 * a.pad_w - a.dil_w * (s.KW - 1) - 1) / a.stride_w + 1;
  return s;
}

namespace {

// The one dot product every conv kernel is built from: sum over the filter's channels and taps of
// w[f, c, kh, kw] x[n, g Cg + c, ih, iw], in double, skipping taps in the zero padding.
template <class T>
double conv_dot(const T* x, const T* w, const ConvSize& s, const Conv2dArgs& a, int64_t n,
                int64_t f, int64_t oh, int64_t ow) {
  const int64_t Cg = s.C / a.groups, Fg = s.F / a.groups;
  const int64_t g = f / Fg;  // the group of this filter
  double acc = 0;
  for (int64_t c = 0; c < Cg; ++c)
    for (int64_t kh = 0; kh < s.KH; ++kh)
      for (int64_t kw = 0; kw < s.KW; ++kw) {
        const int64_t ih = oh * a.stride_h - a.pad_h + kh * a.dil_h;
        const int64_t iw = ow * a.stride_w - a.pad_w + kw * a.dil_w;
        if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;  // zero padding
        const double xv = x[((n * s.C + g * Cg + c) * s.H + ih) * s.W + iw];
        const double wv = w[((f * Cg + c) * s.KH + kh) * s.KW + kw];
        acc += xv * wv;
      }
  return acc;
}

}  // namespace

template <class T>
void conv2d_forward(T* out, const T* x, const T* w, const T* bias, const ConvSize& s,
                    const Conv2dArgs& a) {
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t f = 0; f < s.F; ++f)
      for (int64_t oh = 0; oh < s.OH; ++oh)
        for (int64_t ow = 0; ow < s.OW; ++ow) {
          // one output element: the bias plus the dot product over the filter's window
          const double b = bias ? double(bias[f]) : 0.0;
          out[((n * s.F + f) * s.OH + oh) * s.OW + ow] = T(b + conv_dot(x, w, s, a, n, f, oh, ow));
        }
}

template <class T>
void conv2d_affine_act_forward(T* out, const T* x, const T* w, const T* scale, const T* shift,
                               const ConvSize& s, const Conv2dArgs& a, Activation act) {
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t f = 0; f < s.F; ++f)
      for (int64_t oh = 0; oh < s.OH; ++oh)
        for (int64_t ow = 0; ow < s.OW; ++ow) {
          // the affine of a folded BN, then the activation, all in double
          const double sc = scale ? double(scale[f]) : 1.0, sh = shift ? double(shift[f]) : 0.0;
          const double v = sc * conv_dot(x, w, s, a, n, f, oh, ow) + sh;
          double y = v;
          if (act == Activation::relu) y = v < 0 ? 0.0 : v;
          if (act == Activation::silu) y = v / (1.0 + std::exp(-v));
          out[((n * s.F + f) * s.OH + oh) * s.OW + ow] = T(y);
        }
}

template <class T>
void conv2d_backward_input(T* dx, const T* dout, const T* w, const ConvSize& s,
                           const Conv2dArgs& a) {
  const int64_t Cg = s.C / a.groups, Fg = s.F / a.groups;
  // scatter: every (output, tap) pair sends dout * w back to the input pixel the tap read
  std::vector<double> acc(s.N * s.C * s.H * s.W, 0.0);
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t f = 0; f < s.F; ++f) {
      const int64_t g = f / Fg;
      for (int64_t oh = 0; oh < s.OH; ++oh)
        for (int64_t ow = 0; ow < s.OW; ++ow) {
          const double d = dout[((n * s.F + f) * s.OH + oh) * s.OW + ow];
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t kh = 0; kh < s.KH; ++kh)
              for (int64_t kw = 0; kw < s.KW; ++kw) {
                const int64_t ih = oh * a.stride_h - a.pad_h + kh * a.dil_h;
                const int64_t iw = ow * a.stride_w - a.pad_w + kw * a.dil_w;
                if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;  // read padding
                acc[((n * s.C + g * Cg + c) * s.H + ih) * s.W + iw] +=
                    d * double(w[((f * Cg + c) * s.KH + kh) * s.KW + kw]);
              }
        }
    }
  for (size_t i = 0; i < acc.size(); ++i) dx[i] = T(acc[i]);
}

template <class T>
void conv2d_backward_weight(T* dw, const T* dout, const T* x, const ConvSize& s,
                            const Conv2dArgs& a) {
  const int64_t Cg = s.C / a.groups, Fg = s.F / a.groups;
  for (int64_t f = 0; f < s.F; ++f) {
    const int64_t g = f / Fg;
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t kh = 0; kh < s.KH; ++kh)
        for (int64_t kw = 0; kw < s.KW; ++kw) {
          // this weight met input (ih, iw) at every output position whose tap (kh, kw) read it
          double acc = 0;
          for (int64_t n = 0; n < s.N; ++n)
            for (int64_t oh = 0; oh < s.OH; ++oh)
              for (int64_t ow = 0; ow < s.OW; ++ow) {
                const int64_t ih = oh * a.stride_h - a.pad_h + kh * a.dil_h;
                const int64_t iw = ow * a.stride_w - a.pad_w + kw * a.dil_w;
                if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
                acc += double(dout[((n * s.F + f) * s.OH + oh) * s.OW + ow]) *
                       double(x[((n * s.C + g * Cg + c) * s.H + ih) * s.W + iw]);
              }
          dw[((f * Cg + c) * s.KH + kh) * s.KW + kw] = T(acc);
        }
  }
}

template <class T>
void max_pool2d_forward(T* out, T* argmax, const T* x, const PoolSize& s, const Pool2dArgs& a) {
  for (int64_t p = 0; p < s.N * s.C; ++p) {
    const T* plane = x + p * s.H * s.W;
    for (int64_t oh = 0; oh < s.OH; ++oh)
      for (int64_t ow = 0; ow < s.OW; ++ow) {
        // the window clipped to the input: the -inf padding can never win
        const int64_t h0 = std::max<int64_t>(oh * a.stride_h - a.pad_h, 0);
        const int64_t w0 = std::max<int64_t>(ow * a.stride_w - a.pad_w, 0);
        const int64_t h1 = std::min(oh * a.stride_h - a.pad_h + a.kh, s.H);
        const int64_t w1 = std::min(ow * a.stride_w - a.pad_w + a.kw, s.W);
        T best = -std::numeric_limits<T>::infinity();
        int64_t best_i = h0 * s.W + w0;  // kept when every value is -inf
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) {
            const T v = plane[ih * s.W + iw];
            // strictly greater keeps the first maximum; a NaN always takes over (PyTorch)
            if (v > best || std::isnan(v)) best = v, best_i = ih * s.W + iw;
          }
        out[(p * s.OH + oh) * s.OW + ow] = best;
        if (argmax) argmax[(p * s.OH + oh) * s.OW + ow] = T(best_i);
      }
  }
}

template <class T>
void max_pool2d_backward(T* dx, const T* dout, const T* argmax, int64_t NC, int64_t HW,
                         int64_t OHW) {
  // start from zero: only the inputs some window picked receive a gradient
  for (int64_t i = 0; i < NC * HW; ++i) dx[i] = T(0);
  // overlapping windows can pick the same input: add, in output order
  for (int64_t p = 0; p < NC; ++p)
    for (int64_t j = 0; j < OHW; ++j) dx[p * HW + int64_t(argmax[p * OHW + j])] += dout[p * OHW + j];
}

namespace {

// Window (oh, ow) of an average pooling: the input rows [h0, h1) and columns [w0, w1) it sums, and
// its divisor, by PyTorch's avg_pool2d rule. The window is first clipped to the padded input (only
// ceil_mode windows stick out of it); that area is the divisor with count_include_pad. Clipped
// further to the input, it gives the values summed and the divisor without count_include_pad.
struct AvgWin {
  int64_t h0, h1, w0, w1, divisor;
};
AvgWin avg_win(const PoolSize& s, const Pool2dArgs& a, int64_t oh, int64_t ow) {
  int64_t h0 = oh * a.stride_h - a.pad_h, w0 = ow * a.stride_w - a.pad_w;
  int64_t h1 = std::min(h0 + a.kh, s.H + a.pad_h), w1 = std::min(w0 + a.kw, s.W + a.pad_w);
  const int64_t padded_area = (h1 - h0) * (w1 - w0);
  h0 = std::max<int64_t>(h0, 0), w0 = std::max<int64_t>(w0, 0);
  h1 = std::min(h1, s.H), w1 = std::min(w1, s.W);
  const int64_t input_area = (h1 - h0) * (w1 - w0);
  return {h0, h1, w0, w1, a.count_include_pad ? padded_area : input_area};
}

}  // namespace

template <class T>
void avg_pool2d_forward(T* out, const T* x, const PoolSize& s, const Pool2dArgs& a) {
  for (int64_t p = 0; p < s.N * s.C; ++p)
    for (int64_t oh = 0; oh < s.OH; ++oh)
      for (int64_t ow = 0; ow < s.OW; ++ow) {
        const AvgWin win = avg_win(s, a, oh, ow);
        double sum = 0;
        for (int64_t ih = win.h0; ih < win.h1; ++ih)
          for (int64_t iw = win.w0; iw < win.w1; ++iw) sum += x[(p * s.H + ih) * s.W + iw];
        // an empty divisor cannot happen for valid arguments; 0 as the CPU does
        out[(p * s.OH + oh) * s.OW + ow] = T(win.divisor > 0 ? sum / double(win.divisor) : 0.0);
      }
}

template <class T>
void avg_pool2d_backward(T* dx, const T* dout, const PoolSize& s, const Pool2dArgs& a) {
  std::vector<double> acc(s.N * s.C * s.H * s.W, 0.0);
  for (int64_t p = 0; p < s.N * s.C; ++p)
    for (int64_t oh = 0; oh < s.OH; ++oh)
      for (int64_t ow = 0; ow < s.OW; ++ow) {
        // every input of the window received 1 / divisor of this output
        const AvgWin win = avg_win(s, a, oh, ow);
        if (win.divisor <= 0) continue;
        const double share = double(dout[(p * s.OH + oh) * s.OW + ow]) / double(win.divisor);
        for (int64_t ih = win.h0; ih < win.h1; ++ih)
          for (int64_t iw = win.w0; iw < win.w1; ++iw) acc[(p * s.H + ih) * s.W + iw] += share;
      }
  for (size_t i = 0; i < acc.size(); ++i) dx[i] = T(acc[i]);
}

template <class T>
void global_avg_pool_forward(T* out, const T* x, int64_t NC, int64_t HW) {
  // each plane's mean, summed in double
  for (int64_t p = 0; p < NC; ++p) {
    double sum = 0;
    for (int64_t k = 0; k < HW; ++k) sum += x[p * HW + k];
    out[p] = T(sum / double(HW));
  }
}

template <class T>
void upsample_nearest2d_forward(T* out, const T* x, int64_t NC, int64_t H, int64_t W,
                                int64_t scale) {
  const int64_t OH = H * scale, OW = W * scale;
  for (int64_t p = 0; p < NC; ++p)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow)
        // each output pixel copies the input pixel it lies over
        out[(p * OH + oh) * OW + ow] = x[(p * H + oh / scale) * W + ow / scale];
}

template <class T>
void upsample_nearest2d_backward(T* dx, const T* dout, int64_t NC, int64_t H, int64_t W,
                                 int64_t scale) {
  const int64_t OW = W * scale;
  for (int64_t p = 0; p < NC; ++p)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t w = 0; w < W; ++w) {
        // the s x s block of outputs copied from this input
        double sum = 0;
        for (int64_t i = 0; i < scale; ++i)
          for (int64_t j = 0; j < scale; ++j)
            sum += dout[(p * H * scale + h * scale + i) * OW + w * scale + j];
        dx[(p * H + h) * W + w] = T(sum);
      }
}

template <class T>
void scale_planes_forward(T* out, const T* x, const T* s, int64_t NC, int64_t HW) {
  // every value of plane p times that plane's gate s[p]
  for (int64_t p = 0; p < NC; ++p)
    for (int64_t k = 0; k < HW; ++k) out[p * HW + k] = x[p * HW + k] * s[p];
}

// ---- batch normalisation -------------------------------------------------------------------------

template <class T>
void batch_norm_train_forward(T* out, T* mean, T* invstd, T* running_mean, T* running_var,
                              const T* x, const T* gamma, const T* beta, int64_t N, int64_t C,
                              int64_t S, int64_t G, double eps, double momentum) {
  const int64_t Q = N / G, M = Q * S;  // rows per group, values per (group, channel)
  for (int64_t g = 0; g < G; ++g)
    for (int64_t c = 0; c < C; ++c) {
      // the mean over the group's rows and positions
      double sum = 0;
      for (int64_t n = g * Q; n < (g + 1) * Q; ++n)
        for (int64_t k = 0; k < S; ++k) sum += x[(n * C + c) * S + k];
      const double mu = sum / double(M);
      // the variance without bias correction, from the deviations (two passes)
      double sq = 0;
      for (int64_t n = g * Q; n < (g + 1) * Q; ++n)
        for (int64_t k = 0; k < S; ++k) {
          const double d = double(x[(n * C + c) * S + k]) - mu;
          sq += d * d;
        }
      const double var = sq / double(M);
      const double inv = 1.0 / std::sqrt(var + eps);
      mean[g * C + c] = T(mu);
      invstd[g * C + c] = T(inv);
      // normalise, scale and shift
      const double ga = gamma ? double(gamma[c]) : 1.0, be = beta ? double(beta[c]) : 0.0;
      for (int64_t n = g * Q; n < (g + 1) * Q; ++n)
        for (int64_t k = 0; k < S; ++k) {
          const int64_t i = (n * C + c) * S + k;
          out[i] = T(ga * (double(x[i]) - mu) * inv + be);
        }
    }
  // running statistics: one momentum update per group, in group order (PyTorch's unbiased var)
  for (int64_t g = 0; g < G; ++g)
    for (int64_t c = 0; c < C; ++c) {
      // recompute this group's statistics (kept out of the pass above, so the order is plain)
      double sum = 0, sq = 0;
      for (int64_t n = g * Q; n < (g + 1) * Q; ++n)
        for (int64_t k = 0; k < S; ++k) sum += x[(n * C + c) * S + k];
      const double mu = sum / double(M);
      for (int64_t n = g * Q; n < (g + 1) * Q; ++n)
        for (int64_t k = 0; k < S; ++k) {
          const double d = double(x[(n * C + c) * S + k]) - mu;
          sq += d * d;
        }
      const double unbiased = M > 1 ? sq / double(M - 1) : sq;
      if (running_mean)
        running_mean[c] = T((1.0 - momentum) * double(running_mean[c]) + momentum * mu);
      if (running_var)
        running_var[c] = T((1.0 - momentum) * double(running_var[c]) + momentum * unbiased);
    }
}

template <class T>
void batch_norm_eval_forward(T* out, const T* x, const T* gamma, const T* beta,
                             const T* running_mean, const T* running_var, int64_t N, int64_t C,
                             int64_t S, double eps) {
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      // the running statistics make normalisation a fixed per-channel affine
      const double inv = 1.0 / std::sqrt(double(running_var[c]) + eps);
      const double ga = gamma ? double(gamma[c]) : 1.0, be = beta ? double(beta[c]) : 0.0;
      for (int64_t k = 0; k < S; ++k) {
        const int64_t i = (n * C + c) * S + k;
        out[i] = T(ga * (double(x[i]) - double(running_mean[c])) * inv + be);
      }
    }
}

template <class T>
void batch_norm_fold(T* scale, T* shift, const T* gamma, const T* beta, const T* bias,
                     const T* running_mean, const T* running_var, int64_t C, double eps) {
  for (int64_t c = 0; c < C; ++c) {
    // the per-channel affine of the eval BN, in double, then the conv bias moved through it
    const double s = (gamma ? double(gamma[c]) : 1.0) / std::sqrt(double(running_var[c]) + eps);
    const double b = bias ? double(bias[c]) : 0.0;
    scale[c] = T(s);
    shift[c] = T((beta ? double(beta[c]) : 0.0) + (b - double(running_mean[c])) * s);
  }
}

template <class T>
void batch_norm_backward(T* dx, T* dgamma, T* dbeta, const T* dout, const T* x, const T* gamma,
                         const T* mean, const T* invstd, int64_t N, int64_t C, int64_t S,
                         int64_t G) {
  const int64_t Q = N / G, M = Q * S;
  std::vector<double> dg(C, 0.0), db(C, 0.0);
  // per (group, channel): the saved statistics of the forward, not recomputed ones
  for (int64_t g = 0; g < G; ++g)
    for (int64_t c = 0; c < C; ++c) {
      const double mu = mean[g * C + c], inv = invstd[g * C + c];
      const double ga = gamma ? double(gamma[c]) : 1.0;
      // the two group sums the gradient of the batch statistics needs: sum(dout), sum(dout xhat)
      double sum_d = 0, sum_dx = 0;
      for (int64_t n = g * Q; n < (g + 1) * Q; ++n)
        for (int64_t k = 0; k < S; ++k) {
          const int64_t i = (n * C + c) * S + k;
          sum_d += dout[i];
          sum_dx += double(dout[i]) * (double(x[i]) - mu) * inv;
        }
      // dx = gamma invstd (dout - mean(dout) - xhat mean(dout xhat))
      for (int64_t n = g * Q; n < (g + 1) * Q; ++n)
        for (int64_t k = 0; k < S; ++k) {
          const int64_t i = (n * C + c) * S + k;
          const double xhat = (double(x[i]) - mu) * inv;
          dx[i] = T(ga * inv * (double(dout[i]) - sum_d / M - xhat * sum_dx / M));
        }
      // the affine parameters are shared by every group: their gradients add up
      dg[c] += sum_dx;
      db[c] += sum_d;
    }
  for (int64_t c = 0; c < C; ++c) {
    if (dgamma) dgamma[c] = T(dg[c]);
    if (dbeta) dbeta[c] = T(db[c]);
  }
}

template <class T>
void batch_norm_relu_train_forward(T* out, T* mean, T* invstd, T* running_mean, T* running_var,
                                   const T* x, const T* gamma, const T* beta, int64_t N,
                                   int64_t C, int64_t S, int64_t G, double eps, double momentum,
                                   double slope) {
  // the two ops in sequence: normalise, then the activation of each output
  batch_norm_train_forward(out, mean, invstd, running_mean, running_var, x, gamma, beta, N, C, S,
                           G, eps, momentum);
  for (int64_t i = 0; i < N * C * S; ++i)
    out[i] = slope == 0 ? (out[i] < 0 ? T(0) : out[i]) : (out[i] > 0 ? out[i] : T(slope * out[i]));
}

template <class T>
void batch_norm_relu_backward(T* dx, T* dgamma, T* dbeta, const T* dout, const T* x,
                              const T* gamma, const T* beta, const T* mean, const T* invstd,
                              int64_t N, int64_t C, int64_t S, int64_t G, double slope) {
  const int64_t Q = N / G;
  std::vector<T> dz(N * C * S);
  // the activation's input z of each value from the saved statistics; its gradient passes
  // where z > 0 and is scaled by the slope elsewhere
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      const int64_t gc = (n / Q) * C + c;
      const double ga = gamma ? double(gamma[c]) : 1.0, be = beta ? double(beta[c]) : 0.0;
      for (int64_t k = 0; k < S; ++k) {
        const int64_t i = (n * C + c) * S + k;
        const double z = ga * (double(x[i]) - double(mean[gc])) * double(invstd[gc]) + be;
        dz[i] = z > 0 ? dout[i] : T(slope * double(dout[i]));
      }
    }
  // then the batch norm's backward of that gradient
  batch_norm_backward(dx, dgamma, dbeta, dz.data(), x, gamma, mean, invstd, N, C, S, G);
}

// ---- distances and normalisation -----------------------------------------------------------------

template <class T>
void pairwise_sqdist_forward(T* out, const T* a, const T* b, int64_t M, int64_t N, int64_t D) {
  // the direct sum of squared differences: never negative, so the CPU's clamp at 0 has nothing to
  // do here; a NaN input gives NaN
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < D; ++k) {
        const double d = double(a[i * D + k]) - double(b[j * D + k]);
        acc += d * d;
      }
      out[i * N + j] = T(acc);
    }
}

template <class T>
void pairwise_sqdist_backward(T* da, T* db, const T* dout, const T* a, const T* b, const T* dist,
                              int64_t M, int64_t N, int64_t D) {
  // G: dout where the distance is positive (or NaN), 0 where the clamp at 0 was active
  auto G = [&](int64_t i, int64_t j) { return dist[i * N + j] <= 0 ? 0.0 : double(dout[i * N + j]); };
  if (da)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t k = 0; k < D; ++k) {
        // d/da_i |a_i - b_j|^2 = 2 (a_i - b_j)
        double acc = 0;
        for (int64_t j = 0; j < N; ++j) acc += G(i, j) * (double(a[i * D + k]) - double(b[j * D + k]));
        da[i * D + k] = T(2 * acc);
      }
  if (db)
    for (int64_t j = 0; j < N; ++j)
      for (int64_t k = 0; k < D; ++k) {
        double acc = 0;
        for (int64_t i = 0; i < M; ++i) acc += G(i, j) * (double(b[j * D + k]) - double(a[i * D + k]));
        db[j * D + k] = T(2 * acc);
      }
}

template <class T>
void l2_normalize_forward(T* y, const T* x, int64_t M, int64_t D, double eps) {
  for (int64_t i = 0; i < M; ++i) {
    // the row's norm, floored at eps so a zero row stays zero
    double sq = 0;
    for (int64_t k = 0; k < D; ++k) sq += double(x[i * D + k]) * double(x[i * D + k]);
    const double norm = std::max(std::sqrt(sq), eps);
    for (int64_t k = 0; k < D; ++k) y[i * D + k] = T(double(x[i * D + k]) / norm);
  }
}

template <class T>
void l2_normalize_backward(T* dx, const T* dout, const T* x, const T* y, int64_t M, int64_t D,
                           double eps) {
  for (int64_t i = 0; i < M; ++i) {
    double sq = 0, gy = 0;  // |x_i|^2 and g_i . y_i
    for (int64_t k = 0; k < D; ++k) {
      sq += double(x[i * D + k]) * double(x[i * D + k]);
      gy += double(dout[i * D + k]) * double(y[i * D + k]);
    }
    const double norm = std::sqrt(sq);
    for (int64_t k = 0; k < D; ++k) {
      const int64_t j = i * D + k;
      // above eps: the Jacobian of x / |x| is (I - y y^T) / |x|; below it the op is x / eps
      dx[j] = norm > eps ? T((double(dout[j]) - double(y[j]) * gy) / norm) : T(double(dout[j]) / eps);
    }
  }
}

// ---- optimiser steps -----------------------------------------------------------------------------

template <class T>
void sgd_step(T* w, T* velocity, const T* g, int64_t n, const SgdParams& p) {
  for (int64_t k = 0; k < n; ++k) {
    // the L2 penalty joins the gradient
    T d = g[k] + T(p.weight_decay) * w[k];
    if (p.momentum != 0.f) {
      // torch.optim.SGD: the first step sets the buffer to d itself
      velocity[k] = p.first ? d : T(p.momentum) * velocity[k] + d;
      d = velocity[k];
    }
    w[k] -= T(p.lr) * d;
  }
}

template <class T>
void adam_step(T* w, T* m, T* v, const T* g, int64_t n, const AdamParams& p) {
  // torch keeps 1 - beta as a Python double and rounds it to the state's type in the update
  const T one_m_b1 = T(1.0 - double(p.beta1)), one_m_b2 = T(1.0 - double(p.beta2));
  // bias corrections of step t in double
  const double bc1 = 1.0 - std::pow(double(p.beta1), double(p.step));
  const double bc2 = 1.0 - std::pow(double(p.beta2), double(p.step));
  for (int64_t k = 0; k < n; ++k) {
    const T gk = g[k] + T(p.weight_decay) * w[k];
    // the moment estimates in the state's type
    m[k] = T(p.beta1) * m[k] + one_m_b1 * gk;
    v[k] = T(p.beta2) * v[k] + one_m_b2 * gk * gk;
    // torch: denom = sqrt(v) / sqrt(bc2) + eps, step size lr / bc1
    const double denom = std::sqrt(double(v[k])) / std::sqrt(bc2) + double(p.eps);
    w[k] = T(double(w[k]) - double(p.lr) / bc1 * double(m[k]) / denom);
  }
}

// Every kernel for float (the reference backend) and double (the op harness's finite differences).
#define NORMAD_REF_INSTANTIATE(T)                                                                \
  template T unary_value<T>(UnaryOp, T, T, T);                                                   \
  template T binary_value<T>(BinaryOp, T, T, T, T);                                              \
  template void unary_forward<T>(T*, const T*, int64_t, UnaryOp, T, T);                          \
  template void binary_forward<T>(T*, const T*, const T*, const Shape&, const Shape&,            \
                                  const Shape&, BinaryOp, T, T);                                 \
  template void expand_forward<T>(T*, const T*, const Shape&, const Shape&);                     \
  template void matmul_forward<T>(T*, const T*, const T*, int64_t, int64_t, int64_t, bool,       \
                                  bool, const T*);                                               \
  template void bmm_forward<T>(T*, const T*, const T*, int64_t, int64_t, int64_t, int64_t,       \
                               int64_t, int64_t, bool, bool);                                    \
  template void sum_forward<T>(T*, const T*, const Shape&, const std::vector<int64_t>&);         \
  template void max_forward<T>(T*, T*, const T*, int64_t, int64_t, int64_t);                     \
  template void max_backward<T>(T*, const T*, const T*, int64_t, int64_t, int64_t);              \
  template void logsumexp_forward<T>(T*, const T*, int64_t, int64_t, int64_t);                   \
  template void permute_forward<T>(T*, const T*, const Shape&, const std::vector<int64_t>&);      \
  template void concat_forward<T>(T*, const std::vector<const T*>&,                              \
                                  const std::vector<int64_t>&, int64_t, int64_t);                \
  template void slice_forward<T>(T*, const T*, int64_t, int64_t, int64_t, int64_t, int64_t);     \
  template void slice_add<T>(T*, const T*, int64_t, int64_t, int64_t, int64_t, int64_t);         \
  template void index_select_forward<T>(T*, const T*, const int64_t*, int64_t, int64_t);         \
  template void index_add<T>(T*, const int64_t*, const T*, int64_t, int64_t);                    \
  template void conv2d_forward<T>(T*, const T*, const T*, const T*, const ConvSize&,             \
                                  const Conv2dArgs&);                                            \
  template void conv2d_affine_act_forward<T>(T*, const T*, const T*, const T*, const T*,         \
                                             const ConvSize&, const Conv2dArgs&, Activation);    \
  template void conv2d_backward_input<T>(T*, const T*, const T*, const ConvSize&,                \
                                         const Conv2dArgs&);                                     \
  template void conv2d_backward_weight<T>(T*, const T*, const T*, const ConvSize&,               \
                                          const Conv2dArgs&);                                    \
  template void max_pool2d_forward<T>(T*, T*, const T*, const PoolSize&, const Pool2dArgs&);     \
  template void max_pool2d_backward<T>(T*, const T*, const T*, int64_t, int64_t, int64_t);       \
  template void avg_pool2d_forward<T>(T*, const T*, const PoolSize&, const Pool2dArgs&);         \
  template void avg_pool2d_backward<T>(T*, const T*, const PoolSize&, const Pool2dArgs&);        \
  template void global_avg_pool_forward<T>(T*, const T*, int64_t, int64_t);                      \
  template void upsample_nearest2d_forward<T>(T*, const T*, int64_t, int64_t, int64_t, int64_t); \
  template void upsample_nearest2d_backward<T>(T*, const T*, int64_t, int64_t, int64_t,          \
                                               int64_t);                                         \
  template void scale_planes_forward<T>(T*, const T*, const T*, int64_t, int64_t);               \
  template void batch_norm_train_forward<T>(T*, T*, T*, T*, T*, const T*, const T*, const T*,    \
                                            int64_t, int64_t, int64_t, int64_t, double, double); \
  template void batch_norm_eval_forward<T>(T*, const T*, const T*, const T*, const T*,           \
                                           const T*, int64_t, int64_t, int64_t, double);         \
  template void batch_norm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*,       \
                                       const T*, int64_t, int64_t, int64_t, int64_t);            \
  template void batch_norm_fold<T>(T*, T*, const T*, const T*, const T*, const T*, const T*,     \
                                   int64_t, double);                                             \
  template void batch_norm_relu_train_forward<T>(T*, T*, T*, T*, T*, const T*, const T*,        \
                                                 const T*, int64_t, int64_t, int64_t, int64_t,   \
                                                 double, double, double);                        \
  template void batch_norm_relu_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*,  \
                                            const T*, const T*, int64_t, int64_t, int64_t,       \
                                            int64_t, double);                                    \
  template void pairwise_sqdist_forward<T>(T*, const T*, const T*, int64_t, int64_t, int64_t);   \
  template void pairwise_sqdist_backward<T>(T*, T*, const T*, const T*, const T*, const T*,      \
                                            int64_t, int64_t, int64_t);                          \
  template void l2_normalize_forward<T>(T*, const T*, int64_t, int64_t, double);                 \
  template void l2_normalize_backward<T>(T*, const T*, const T*, const T*, int64_t, int64_t,     \
                                         double);                                                \
  template void sgd_step<T>(T*, T*, const T*, int64_t, const SgdParams&);                        \
  template void adam_step<T>(T*, T*, T*, const T*, int64_t, const AdamParams&);

NORMAD_REF_INSTANTIATE(float)
NORMAD_REF_INSTANTIATE(double)
#undef NORMAD_REF_INSTANTIATE

}  // namespace normad::ref

// ---- the backend table: float Tensors on Device::Reference around the kernels above -------------
namespace normad {

namespace {

constexpr Device kRef = Device::Reference;

// Raw pointers of tensors on this device (entries receive validated tensors; undefined -> null).
float* ptr(const Tensor& t) { return t.defined() ? t.device_data() : nullptr; }

// [outer, R, inner] around dim d of shape s.
void split_at(const Shape& s, int64_t d, int64_t* outer, int64_t* R, int64_t* inner) {
  *outer = 1, *inner = 1;
  for (int64_t i = 0; i < d; ++i) *outer *= s[i];
  *R = s[d];
  for (size_t i = d + 1; i < s.size(); ++i) *inner *= s[i];
}

// s without dim d, or with it at size 1 (keepdim).
Shape reduce_dim(Shape s, int64_t d, bool keepdim) {
  if (keepdim) s[d] = 1;
  else s.erase(s.begin() + d);
  return s;
}

// PyTorch's pooling output size for one dim (dilation 1): with ceil_mode the last window must
// start inside the input or its left padding.
int64_t pool_out(int64_t in, int64_t k, int64_t pad, int64_t stride, bool ceil_mode) {
  const int64_t span = in + 2 * pad - k;
  int64_t out = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}
ref::PoolSize pool_size(const Shape& x, const Pool2dArgs& a) {
  return {x[0], x[1], x[2], x[3], pool_out(x[2], a.kh, a.pad_h, a.stride_h, a.ceil_mode),
          pool_out(x[3], a.kw, a.pad_w, a.stride_w, a.ceil_mode)};
}

// BN sizes: x [N, C] or [N, C, H, W] -> N, C, S.
void bn_sizes(const Tensor& x, int64_t* N, int64_t* C, int64_t* S) {
  *N = x.size(0), *C = x.size(1), *S = x.dim() == 4 ? x.size(2) * x.size(3) : 1;
}

// ---- memory: raw blocks of host memory (the storage layer moves bytes with these) ----
void ref_copy_bytes(void* dst, const void* src, size_t bytes) {
  unsigned char* d = static_cast<unsigned char*>(dst);
  const unsigned char* s = static_cast<const unsigned char*>(src);
  for (size_t i = 0; i < bytes; ++i) d[i] = s[i];
}
void ref_fill(Tensor& t, float v) {
  float* d = ptr(t);
  for (int64_t i = 0; i < t.numel(); ++i) d[i] = v;
}

// ---- elementwise ----
Tensor ref_unary(UnaryOp op, const Tensor& a, float p0, float p1) {
  Tensor out = Tensor::empty(a.shape(), kRef);
  ref::unary_forward(ptr(out), ptr(a), a.numel(), op, p0, p1);
  return out;
}
Tensor ref_binary(BinaryOp op, const Tensor& a, const Tensor& b, float p0, float p1) {
  const Shape os = broadcast_shape(a.shape(), b.shape());
  Tensor out = Tensor::empty(os, kRef);
  ref::binary_forward(ptr(out), ptr(a), ptr(b), os, a.shape(), b.shape(), op, p0, p1);
  return out;
}
Tensor ref_expand(const Tensor& a, const Shape& shape) {
  Tensor out = Tensor::empty(shape, kRef);
  ref::expand_forward(ptr(out), ptr(a), shape, a.shape());
  return out;
}

// ---- matrix products ----
Tensor ref_matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  const int64_t M = ta ? a.size(1) : a.size(0), K = ta ? a.size(0) : a.size(1);
  const int64_t N = tb ? b.size(0) : b.size(1);
  Tensor c = Tensor::empty({M, N}, kRef);
  ref::matmul_forward(ptr(c), ptr(a), ptr(b), M, N, K, ta, tb);
  return c;
}
Tensor ref_linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  const int64_t N = x.size(0), K = x.size(1), F = w.size(0);
  Tensor y = Tensor::empty({N, F}, kRef);
  ref::matmul_forward(ptr(y), ptr(x), ptr(w), N, F, K, false, true, ptr(b));
  return y;
}
Tensor ref_bmm(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  const int64_t Ba = a.size(0), Bb = b.size(0), B = Ba == 1 ? Bb : Ba;
  const int64_t M = ta ? a.size(2) : a.size(1), K = ta ? a.size(1) : a.size(2);
  const int64_t N = tb ? b.size(1) : b.size(2);
  Tensor c = Tensor::empty({B, M, N}, kRef);
  ref::bmm_forward(ptr(c), ptr(a), ptr(b), B, Ba, Bb, M, N, K, ta, tb);
  return c;
}

// ---- reductions ----
Tensor ref_sum(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  Shape os;
  for (int64_t d = 0; d < a.dim(); ++d) {
    const bool reduced = std::find(dims.begin(), dims.end(), d) != dims.end();
    if (!reduced) os.push_back(a.size(d));
    else if (keepdim) os.push_back(1);
  }
  Tensor out = Tensor::empty(os, kRef);
  ref::sum_forward(ptr(out), ptr(a), a.shape(), dims);
  return out;
}
Tensor ref_max(const Tensor& a, int64_t dim, bool keepdim, Tensor* argmax) {
  int64_t outer, R, inner;
  split_at(a.shape(), dim, &outer, &R, &inner);
  const Shape os = reduce_dim(a.shape(), dim, keepdim);
  Tensor out = Tensor::empty(os, kRef), idx = Tensor::empty(os, kRef);
  ref::max_forward(ptr(out), ptr(idx), ptr(a), outer, R, inner);
  if (argmax) *argmax = idx;
  return out;
}
Tensor ref_max_backward(const Tensor& dout, const Tensor& argmax, const Shape& in_shape,
                        int64_t dim) {
  int64_t outer, R, inner;
  split_at(in_shape, dim, &outer, &R, &inner);
  Tensor dx = Tensor::empty(in_shape, kRef);
  ref::max_backward(ptr(dx), ptr(dout), ptr(argmax), outer, R, inner);
  return dx;
}
Tensor ref_logsumexp(const Tensor& a, int64_t dim, bool keepdim) {
  int64_t outer, R, inner;
  split_at(a.shape(), dim, &outer, &R, &inner);
  Tensor out = Tensor::empty(reduce_dim(a.shape(), dim, keepdim), kRef);
  ref::logsumexp_forward(ptr(out), ptr(a), outer, R, inner);
  return out;
}

// ---- layout ----
Tensor ref_permute(const Tensor& a, const std::vector<int64_t>& perm) {
  Shape os(a.dim());
  for (int64_t d = 0; d < a.dim(); ++d) os[d] = a.size(perm[d]);
  Tensor out = Tensor::empty(os, kRef);
  ref::permute_forward(ptr(out), ptr(a), a.shape(), perm);
  return out;
}
Tensor ref_concat(const std::vector<Tensor>& ts, int64_t dim) {
  int64_t outer, R, inner;
  split_at(ts[0].shape(), dim, &outer, &R, &inner);
  std::vector<const float*> ins;
  std::vector<int64_t> lens;
  Shape os = ts[0].shape();
  os[dim] = 0;
  for (const Tensor& t : ts) ins.push_back(ptr(t)), lens.push_back(t.size(dim)), os[dim] += t.size(dim);
  Tensor out = Tensor::empty(os, kRef);
  ref::concat_forward(ptr(out), ins, lens, outer, inner);
  return out;
}
Tensor ref_slice(const Tensor& a, int64_t dim, int64_t start, int64_t end) {
  int64_t outer, n, inner;
  split_at(a.shape(), dim, &outer, &n, &inner);
  Shape os = a.shape();
  os[dim] = end - start;
  Tensor out = Tensor::empty(os, kRef);
  ref::slice_forward(ptr(out), ptr(a), outer, n, inner, start, end - start);
  return out;
}
void ref_slice_add(Tensor& out, const Tensor& g, int64_t dim, int64_t start) {
  int64_t outer, n, inner;
  split_at(out.shape(), dim, &outer, &n, &inner);
  ref::slice_add(ptr(out), ptr(g), outer, n, inner, start, g.size(dim));
}
Tensor ref_index_select(const Tensor& a, const std::vector<int64_t>& idx) {
  const int64_t rows = a.size(0), row = rows ? a.numel() / rows : 0;
  Shape os = a.shape();
  os[0] = int64_t(idx.size());
  Tensor out = Tensor::empty(os, kRef);
  ref::index_select_forward(ptr(out), ptr(a), idx.data(), int64_t(idx.size()), row);
  return out;
}
void ref_index_add(Tensor& out, const std::vector<int64_t>& idx, const Tensor& g) {
  const int64_t rows = out.size(0), row = rows ? out.numel() / rows : 0;
  ref::index_add(ptr(out), idx.data(), ptr(g), int64_t(idx.size()), row);
}

// ---- convolution and pooling ----
Tensor ref_conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dArgs& a) {
  const ref::ConvSize s = ref::conv_size(x.shape(), w.shape(), a);
  Tensor out = Tensor::empty({s.N, s.F, s.OH, s.OW}, kRef);
  ref::conv2d_forward(ptr(out), ptr(x), ptr(w), ptr(b), s, a);
  return out;
}
Tensor ref_conv2d_affine_act(const Tensor& x, const Tensor& w, const Tensor& scale,
                             const Tensor& shift, const Conv2dArgs& a, Activation act) {
  const ref::ConvSize s = ref::conv_size(x.shape(), w.shape(), a);
  Tensor out = Tensor::empty({s.N, s.F, s.OH, s.OW}, kRef);
  ref::conv2d_affine_act_forward(ptr(out), ptr(x), ptr(w), ptr(scale), ptr(shift), s, a, act);
  return out;
}
Tensor ref_conv2d_backward_input(const Tensor& dout, const Tensor& w, const Shape& x_shape,
                                 const Conv2dArgs& a) {
  const ref::ConvSize s = ref::conv_size(x_shape, w.shape(), a);
  Tensor dx = Tensor::empty(x_shape, kRef);
  ref::conv2d_backward_input(ptr(dx), ptr(dout), ptr(w), s, a);
  return dx;
}
Tensor ref_conv2d_backward_weight(const Tensor& dout, const Tensor& x, const Shape& w_shape,
                                  const Conv2dArgs& a, Tensor* dbias) {
  const ref::ConvSize s = ref::conv_size(x.shape(), w_shape, a);
  Tensor dw = Tensor::empty(w_shape, kRef);
  ref::conv2d_backward_weight(ptr(dw), ptr(dout), ptr(x), s, a);
  if (dbias) *dbias = ref_sum(dout, {0, 2, 3}, false);  // the bias gradient: the reference sum
  return dw;
}
Tensor ref_max_pool2d(const Tensor& x, const Pool2dArgs& a, Tensor* argmax) {
  const ref::PoolSize s = pool_size(x.shape(), a);
  Tensor out = Tensor::empty({s.N, s.C, s.OH, s.OW}, kRef);
  Tensor idx = Tensor::empty({s.N, s.C, s.OH, s.OW}, kRef);
  ref::max_pool2d_forward(ptr(out), ptr(idx), ptr(x), s, a);
  if (argmax) *argmax = idx;
  return out;
}
Tensor ref_max_pool2d_backward(const Tensor& dout, const Tensor& argmax, const Shape& x_shape) {
  Tensor dx = Tensor::empty(x_shape, kRef);
  ref::max_pool2d_backward(ptr(dx), ptr(dout), ptr(argmax), x_shape[0] * x_shape[1],
                           x_shape[2] * x_shape[3], dout.size(2) * dout.size(3));
  return dx;
}
Tensor ref_avg_pool2d(const Tensor& x, const Pool2dArgs& a) {
  const ref::PoolSize s = pool_size(x.shape(), a);
  Tensor out = Tensor::empty({s.N, s.C, s.OH, s.OW}, kRef);
  ref::avg_pool2d_forward(ptr(out), ptr(x), s, a);
  return out;
}
Tensor ref_avg_pool2d_backward(const Tensor& dout, const Shape& x_shape, const Pool2dArgs& a) {
  const ref::PoolSize s = pool_size(x_shape, a);
  Tensor dx = Tensor::empty(x_shape, kRef);
  ref::avg_pool2d_backward(ptr(dx), ptr(dout), s, a);
  return dx;
}
Tensor ref_global_avg_pool(const Tensor& x) {
  Tensor out = Tensor::empty({x.size(0), x.size(1)}, kRef);
  ref::global_avg_pool_forward(ptr(out), ptr(x), x.size(0) * x.size(1), x.size(2) * x.size(3));
  return out;
}
Tensor ref_upsample_nearest2d(const Tensor& x, int64_t scale) {
  Tensor out = Tensor::empty({x.size(0), x.size(1), x.size(2) * scale, x.size(3) * scale}, kRef);
  ref::upsample_nearest2d_forward(ptr(out), ptr(x), x.size(0) * x.size(1), x.size(2), x.size(3),
                                  scale);
  return out;
}
Tensor ref_upsample_nearest2d_backward(const Tensor& dout, int64_t scale) {
  const int64_t H = dout.size(2) / scale, W = dout.size(3) / scale;
  Tensor dx = Tensor::empty({dout.size(0), dout.size(1), H, W}, kRef);
  ref::upsample_nearest2d_backward(ptr(dx), ptr(dout), dout.size(0) * dout.size(1), H, W, scale);
  return dx;
}
Tensor ref_scale_planes(const Tensor& x, const Tensor& s) {
  Tensor out = Tensor::empty(x.shape(), kRef);
  ref::scale_planes_forward(ptr(out), ptr(x), ptr(s), x.size(0) * x.size(1), x.size(2) * x.size(3));
  return out;
}

// ---- batch normalisation ----
Tensor ref_batch_norm_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                            int64_t groups, BatchNormSaved* saved, Tensor* running_mean,
                            Tensor* running_var, float momentum) {
  int64_t N, C, S;
  bn_sizes(x, &N, &C, &S);
  Tensor out = Tensor::empty(x.shape(), kRef);
  Tensor mean = Tensor::empty({groups, C}, kRef), invstd = Tensor::empty({groups, C}, kRef);
  float* rm = running_mean && running_mean->defined() ? ptr(*running_mean) : nullptr;
  float* rv = running_var && running_var->defined() ? ptr(*running_var) : nullptr;
  ref::batch_norm_train_forward(ptr(out), ptr(mean), ptr(invstd), rm, rv, ptr(x), ptr(gamma),
                                ptr(beta), N, C, S, groups, double(eps), double(momentum));
  if (saved) *saved = BatchNormSaved{mean, invstd};
  return out;
}
Tensor ref_batch_norm_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                           const Tensor& running_mean, const Tensor& running_var, float eps) {
  int64_t N, C, S;
  bn_sizes(x, &N, &C, &S);
  Tensor out = Tensor::empty(x.shape(), kRef);
  ref::batch_norm_eval_forward(ptr(out), ptr(x), ptr(gamma), ptr(beta), ptr(running_mean),
                               ptr(running_var), N, C, S, double(eps));
  return out;
}
Tensor ref_batch_norm_backward(const Tensor& dout, const Tensor& x, const Tensor& gamma,
                               const BatchNormSaved& saved, int64_t groups, Tensor* dgamma,
                               Tensor* dbeta) {
  int64_t N, C, S;
  bn_sizes(x, &N, &C, &S);
  Tensor dx = Tensor::empty(x.shape(), kRef);
  Tensor dg = Tensor::empty({C}, kRef), db = Tensor::empty({C}, kRef);
  ref::batch_norm_backward(ptr(dx), ptr(dg), ptr(db), ptr(dout), ptr(x), ptr(gamma),
                           ptr(saved.mean), ptr(saved.invstd), N, C, S, groups);
  if (dgamma) *dgamma = dg;
  if (dbeta) *dbeta = db;
  return dx;
}
Tensor ref_batch_norm_relu_train(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                 float eps, int64_t groups, float slope, BatchNormSaved* saved,
                                 Tensor* running_mean, Tensor* running_var, float momentum) {
  // the two ops in sequence: the reference's batch norm, then its (leaky) ReLU
  Tensor z = ref_batch_norm_train(x, gamma, beta, eps, groups, saved, running_mean, running_var, momentum);
  return ref_unary(slope == 0.f ? UnaryOp::relu : UnaryOp::leaky_relu, z, slope, 0.f);
}
Tensor ref_batch_norm_relu_backward(const Tensor& dout, const Tensor& x, const Tensor& gamma,
                                    const Tensor& beta, const BatchNormSaved& saved,
                                    int64_t groups, float slope, Tensor* dgamma, Tensor* dbeta) {
  int64_t N, C, S;
  bn_sizes(x, &N, &C, &S);
  Tensor dx = Tensor::empty(x.shape(), kRef);
  Tensor dg = Tensor::empty({C}, kRef), db = Tensor::empty({C}, kRef);
  ref::batch_norm_relu_backward(ptr(dx), ptr(dg), ptr(db), ptr(dout), ptr(x), ptr(gamma),
                                ptr(beta), ptr(saved.mean), ptr(saved.invstd), N, C, S, groups,
                                double(slope));
  if (dgamma) *dgamma = dg;
  if (dbeta) *dbeta = db;
  return dx;
}
BatchNormSaved ref_batch_norm_statistics(const Tensor& x, float eps, int64_t groups, Tensor* running_mean,
                                         Tensor* running_var, float momentum) {
  BatchNormSaved saved;  // the forward's statistics; its output is dropped
  ref_batch_norm_train(x, Tensor(), Tensor(), eps, groups, &saved, running_mean, running_var, momentum);
  return saved;
}
// y = relu(gamma (x - mean) invstd + beta) in double per element, for the saved statistics of x's
// G = groups groups of rows (the input of conv2d_bn_relu_input and its weight gradient)
Tensor ref_bn_relu_of(const Tensor& x, const Tensor& gamma, const Tensor& beta, const BatchNormSaved& saved,
                      int64_t groups) {
  int64_t N, C, S;
  bn_sizes(x, &N, &C, &S);
  Tensor y = Tensor::empty(x.shape(), kRef);
  const float *px = ptr(x), *mean = ptr(saved.mean), *inv = ptr(saved.invstd);
  const float *ga = gamma.defined() ? ptr(gamma) : nullptr, *be = beta.defined() ? ptr(beta) : nullptr;
  float* py = ptr(y);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      const int64_t gc = n / (N / groups) * C + c;
      for (int64_t k = 0; k < S; ++k) {
        const int64_t i = (n * C + c) * S + k;
        const double z = (ga ? double(ga[c]) : 1.0) * (double(px[i]) - mean[gc]) * inv[gc] + (be ? double(be[c]) : 0.0);
        py[i] = z < 0 ? 0.f : float(z);  // NaN passes
      }
    }
  return y;
}
// the two ops in sequence: y, then the reference convolution of y (or its weight gradient)
Tensor ref_conv2d_bn_relu_input(const Tensor& x, const Tensor& gamma, const Tensor& beta, const BatchNormSaved& saved,
                                int64_t groups, const Tensor& w, const Tensor& b, const Conv2dArgs& a) {
  return ref_conv2d(ref_bn_relu_of(x, gamma, beta, saved, groups), w, b, a);
}
Tensor ref_conv2d_bn_relu_input_backward_weight(const Tensor& dout, const Tensor& x, const Tensor& gamma,
                                                const Tensor& beta, const BatchNormSaved& saved, int64_t groups,
                                                const Shape& w_shape, const Conv2dArgs& a, Tensor* dbias) {
  return ref_conv2d_backward_weight(dout, ref_bn_relu_of(x, gamma, beta, saved, groups), w_shape, a, dbias);
}
// the two ops in sequence: the convolution (of the normalised input when `in` is given), then the
// reference statistics of its output
Tensor ref_conv2d_statistics(const Tensor& x, const BnReluInput* in, const Tensor& w, const Tensor& b,
                             const Conv2dArgs& a, float eps, int64_t groups, Tensor* running_mean,
                             Tensor* running_var, float momentum, BatchNormSaved* stats) {
  Tensor y = in ? ref_conv2d_bn_relu_input(x, in->gamma, in->beta, in->saved, in->groups, w, b, a) : ref_conv2d(x, w, b, a);
  *stats = ref_batch_norm_statistics(y, eps, groups, running_mean, running_var, momentum);
  return y;
}
void ref_batch_norm_fold(const Tensor& gamma, const Tensor& beta, const Tensor& bias,
                         const Tensor& running_mean, const Tensor& running_var, float eps,
                         Tensor* scale, Tensor* shift) {
  const int64_t C = running_mean.numel();
  *scale = Tensor::empty({C}, kRef);
  *shift = Tensor::empty({C}, kRef);
  ref::batch_norm_fold(ptr(*scale), ptr(*shift), ptr(gamma), ptr(beta), ptr(bias), ptr(running_mean),
                       ptr(running_var), C, double(eps));
}

// ---- distances ----
Tensor ref_pairwise_sqdist(const Tensor& a, const Tensor& b) {
  const int64_t M = a.size(0), N = b.size(0), D = a.size(1);
  Tensor out = Tensor::empty({M, N}, kRef);
  ref::pairwise_sqdist_forward(ptr(out), ptr(a), ptr(b), M, N, D);
  return out;
}
void ref_pairwise_sqdist_backward(const Tensor& dout, const Tensor& a, const Tensor& b,
                                  const Tensor& dist, Tensor* da, Tensor* db) {
  Tensor ga = da ? Tensor::empty(a.shape(), kRef) : Tensor();
  Tensor gb = db ? Tensor::empty(b.shape(), kRef) : Tensor();
  ref::pairwise_sqdist_backward(ptr(ga), ptr(gb), ptr(dout), ptr(a), ptr(b), ptr(dist), a.size(0),
                                b.size(0), a.size(1));
  if (da) *da = ga;
  if (db) *db = gb;
}
Tensor ref_l2_normalize(const Tensor& a, float eps) {
  Tensor y = Tensor::empty(a.shape(), kRef);
  ref::l2_normalize_forward(ptr(y), ptr(a), a.size(0), a.size(1), double(eps));
  return y;
}
Tensor ref_l2_normalize_backward(const Tensor& dout, const Tensor& x, const Tensor& y, float eps) {
  Tensor dx = Tensor::empty(x.shape(), kRef);
  ref::l2_normalize_backward(ptr(dx), ptr(dout), ptr(x), ptr(y), x.size(0), x.size(1), double(eps));
  return dx;
}

// ---- optimisers ----
void ref_sgd_step(Tensor& w, const Tensor& g, Tensor& velocity, const SgdParams& p) {
  ref::sgd_step(ptr(w), p.momentum != 0.f ? ptr(velocity) : nullptr, ptr(g), w.numel(), p);
}
void ref_adam_step(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, const AdamParams& p) {
  ref::adam_step(ptr(w), ptr(m), ptr(v), ptr(g), w.numel(), p);
}
// the parameters one after another, each with its own step
void ref_adam_step_multi(const std::vector<AdamSlot>& slots, const AdamParams& p) {
  adam_step_each(ref_adam_step, slots, p);
}

}  // namespace

const Backend& reference_backend() {
  static const Backend b{
      .name = "reference",
      .device = Device::Reference,
      .copy_from_host = ref_copy_bytes,  // host memory: the three copies are one byte loop
      .copy_to_host = ref_copy_bytes,
      .copy = ref_copy_bytes,
      .fill = ref_fill,
      .unary = ref_unary,
      .binary = ref_binary,
      .expand = ref_expand,
      .matmul = ref_matmul,
      .bmm = ref_bmm,
      .linear = ref_linear,
      .sum = ref_sum,
      .max = ref_max,
      .max_backward = ref_max_backward,
      .logsumexp = ref_logsumexp,
      .permute = ref_permute,
      .concat = ref_concat,
      .slice = ref_slice,
      .slice_add = ref_slice_add,
      .index_select = ref_index_select,
      .index_add = ref_index_add,
      .conv2d = ref_conv2d,
      .conv2d_affine_act = ref_conv2d_affine_act,
      .conv2d_backward_input = ref_conv2d_backward_input,
      .conv2d_backward_weight = ref_conv2d_backward_weight,
      .max_pool2d = ref_max_pool2d,
      .max_pool2d_backward = ref_max_pool2d_backward,
      .avg_pool2d = ref_avg_pool2d,
      .avg_pool2d_backward = ref_avg_pool2d_backward,
      .global_avg_pool = ref_global_avg_pool,
      .upsample_nearest2d = ref_upsample_nearest2d,
      .upsample_nearest2d_backward = ref_upsample_nearest2d_backward,
      .scale_planes = ref_scale_planes,
      .batch_norm_train = ref_batch_norm_train,
      .batch_norm_eval = ref_batch_norm_eval,
      .batch_norm_backward = ref_batch_norm_backward,
      .batch_norm_fold = ref_batch_norm_fold,
      .batch_norm_relu_train = ref_batch_norm_relu_train,
      .batch_norm_relu_backward = ref_batch_norm_relu_backward,
      .batch_norm_statistics = ref_batch_norm_statistics,
      .conv2d_bn_relu_input = ref_conv2d_bn_relu_input,
      .conv2d_statistics = ref_conv2d_statistics,
      .conv2d_bn_relu_input_backward_weight = ref_conv2d_bn_relu_input_backward_weight,
      .pairwise_sqdist = ref_pairwise_sqdist,
      .pairwise_sqdist_backward = ref_pairwise_sqdist_backward,
      .l2_normalize = ref_l2_normalize,
      .l2_normalize_backward = ref_l2_normalize_backward,
      .sgd_step = ref_sgd_step,
      .adam_step = ref_adam_step,
      .adam_step_multi = ref_adam_step_multi,
  };
  return b;
}

}  // namespace normad
