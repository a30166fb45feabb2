// normad op dispatch: the one entry point of every op in tensor/ops.h. Each function validates its
// arguments once (shapes, ranges, one device for all tensors), then calls the table entry of the
// backend of that device (tensor/backend.h); composed ops are written here from the others.
// Math: see tensor/ops.h per op.
// Tested by tests/test_backend_ops.cpp (each op on each backend vs the reference backend, errors
// for mixed devices and missing entries) and the op tests (tests/test_ops.cpp, test_grad.cpp).
#include <algorithm>
#include <cmath>
#include <memory>
#include <sstream>

#include "tensor/backend.h"
#include "tensor/profile.h"

namespace normad {

namespace {

// "cpu [2, 3] and reference [3]": what an error about devices shows. Range: of const Tensor*.
template <class Range>
std::string describe(const Range& ts) {
  std::ostringstream os;
  bool first = true;
  for (const Tensor* t : ts) {
    if (!t || !t->defined()) continue;
    os << (first ? "" : " and ") << device_name(t->device()) << " " << shape_str(t->shape());
    first = false;
  }
  return os.str();
}

// The backend an op call runs on, and (with the profiler on) the timer of that call: it lives until
// the op function returns, so the event covers the kernel. be->entry(...) calls the table.
struct Picked {
  const Backend* backend;
  std::unique_ptr<profile::Scope> scope;  // null unless profiling
  const Backend* operator->() const { return backend; }
  // The call's useful flops (2 per multiply-add), for the profiler's GFLOP/s column.
  void flops(double f) {
    if (scope) scope->set_flops(f);
  }
  // The bytes the call reads, when not its inputs' size (gathers and scatters touch a few rows of a
  // large tensor).
  void bytes(double b) {
    if (scope) scope->set_bytes(b);
  }
};

// The backend of the tensors' common device (undefined tensors are skipped); throws naming the op,
// the devices and the shapes when they differ or when that backend lacks the op.
template <class Range>
const Backend& backend_of(Op op, const char* what, const Range& ts) {
  Device dev = Device::CPU;
  bool seen = false;
  for (const Tensor* t : ts) {
    if (!t || !t->defined()) continue;
    if (!seen) {
      dev = t->device(), seen = true;
    } else if (t->device() != dev) {
      throw Error(std::string(what) + ": tensors on different devices: " + describe(ts) +
                  " (move them with .to(device) first)");
    }
  }
  const Backend& b = backend_for(dev);
  if (!supports(b, op))
    throw Error(std::string(what) + ": not implemented by the " + b.name + " backend (" +
                describe(ts) + ")");
  return b;
}

template <class Range>
Picked pick_from(Op op, const char* what, const Range& ts) {
  Picked p{&backend_of(op, what, ts), nullptr};
  if (profile::enabled())
    p.scope = std::make_unique<profile::Scope>(what, std::vector<const Tensor*>(std::begin(ts), std::end(ts)));
  return p;
}

Picked pick(Op op, const char* what, std::initializer_list<const Tensor*> ts) { return pick_from(op, what, ts); }

// A convolution's multiply-adds x 2, the same for its forward and both backward passes: every
// output [N, F, OH, OW] sums C/groups x KH x KW products (w [F, C/groups, KH, KW]).
double conv2d_flops(const Shape& out, const Shape& w) {
  return 2.0 * double(shape_numel(out)) * double(w[1] * w[2] * w[3]);
}

void check_same_shape(const Tensor& a, const Tensor& b, const char* what, const char* an,
                      const char* bn) {
  check(a.shape() == b.shape(), what,
        std::string(an) + " " + shape_str(a.shape()) + " vs " + bn + " " + shape_str(b.shape()));
}

Tensor unary_op(UnaryOp op, const Tensor& a, float p0 = 0.f, float p1 = 0.f) {
  return pick(Op::unary, unary_op_name(op), {&a})->unary(op, a, p0, p1);
}

Tensor binary_op(BinaryOp op, const Tensor& a, const Tensor& b, float p0 = 0.f, float p1 = 0.f) {
  Picked be = pick(Op::binary, binary_op_name(op), {&a, &b});
  broadcast_shape(a.shape(), b.shape());  // throws with both shapes
  return be->binary(op, a, b, p0, p1);
}

// Wraps, sorts and de-duplicates dims; empty means all.
std::vector<int64_t> norm_dims(std::vector<int64_t> dims, int64_t rank, const char* what) {
  if (dims.empty())
    for (int64_t d = 0; d < rank; ++d) dims.push_back(d);
  for (auto& d : dims) d = wrap_dim(d, rank, what);
  std::sort(dims.begin(), dims.end());
  dims.erase(std::unique(dims.begin(), dims.end()), dims.end());
  return dims;
}

// Resolves [start, end) on a dim of size n the way Python slicing does (clamped).
void resolve_range(int64_t n, int64_t& start, int64_t& end) {
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
}

void check_channel_vec(const Tensor& t, int64_t C, const char* what, const char* name) {
  if (t.defined())
    check(t.numel() == C, what,
          std::string(name) + " has shape " + shape_str(t.shape()) + ", expected [" +
              std::to_string(C) + "]");
}

void check_bn_input(const Tensor& x, const char* what) {
  check(x.dim() == 2 || x.dim() == 4, what,
        "expects [N, C] or [N, C, H, W], got " + shape_str(x.shape()));
}

}  // namespace

// ---- elementwise ---------------------------------------------------------------------------

Shape broadcast_shape(const Shape& a, const Shape& b) {
  size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t k = 0; k < rank; ++k) {
    int64_t da = k < a.size() ? a[a.size() - 1 - k] : 1;
    int64_t db = k < b.size() ? b[b.size() - 1 - k] : 1;
    if (da != db && da != 1 && db != 1)
      throw Error("broadcast: shapes " + shape_str(a) + " and " + shape_str(b) +
                  " are not broadcastable");
    out[rank - 1 - k] = da == 1 ? db : da;
  }
  return out;
}

Tensor add(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::div, a, b); }
Tensor maximum(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::maximum, a, b); }
Tensor add_scalar(const Tensor& a, float s) { return unary_op(UnaryOp::add_scalar, a, s); }
Tensor mul_scalar(const Tensor& a, float s) { return unary_op(UnaryOp::mul_scalar, a, s); }
Tensor neg(const Tensor& a) { return unary_op(UnaryOp::neg, a); }
Tensor exp(const Tensor& a) { return unary_op(UnaryOp::exp, a); }
Tensor log(const Tensor& a) { return unary_op(UnaryOp::log, a); }
Tensor sqrt(const Tensor& a) { return unary_op(UnaryOp::sqrt, a); }
Tensor abs(const Tensor& a) { return unary_op(UnaryOp::abs, a); }
Tensor sign(const Tensor& a) { return unary_op(UnaryOp::sign, a); }
Tensor pow(const Tensor& a, float p) { return unary_op(UnaryOp::pow, a, p); }
Tensor clamp(const Tensor& a, float lo, float hi) {
  if (lo > hi) throw Error("clamp: lo " + std::to_string(lo) + " > hi " + std::to_string(hi));
  return unary_op(UnaryOp::clamp, a, lo, hi);
}
Tensor relu(const Tensor& a) { return unary_op(UnaryOp::relu, a); }
Tensor leaky_relu(const Tensor& a, float slope) { return unary_op(UnaryOp::leaky_relu, a, slope); }
Tensor sigmoid(const Tensor& a) { return unary_op(UnaryOp::sigmoid, a); }
Tensor silu(const Tensor& a) { return unary_op(UnaryOp::silu, a); }

Tensor leaky_relu_backward(const Tensor& g, const Tensor& x, float slope) {
  check_same_shape(g, x, "leaky_relu_backward", "gradient", "input");
  return binary_op(BinaryOp::leaky_relu_backward, g, x, slope);
}

Tensor clamp_backward(const Tensor& g, const Tensor& x, float lo, float hi) {
  check_same_shape(g, x, "clamp_backward", "gradient", "input");
  return binary_op(BinaryOp::clamp_backward, g, x, lo, hi);
}

Tensor sum_to(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  const Shape& gs = g.shape();
  if (shape.size() > gs.size())
    throw Error("sum_to: cannot reduce " + shape_str(gs) + " to " + shape_str(shape));
  // Sum the leading extra dims and every dim where the target has size 1.
  std::vector<int64_t> dims;
  size_t lead = gs.size() - shape.size();
  for (size_t d = 0; d < gs.size(); ++d) {
    if (d < lead) {
      dims.push_back(static_cast<int64_t>(d));
    } else if (shape[d - lead] == 1 && gs[d] != 1) {
      dims.push_back(static_cast<int64_t>(d));
    } else if (shape[d - lead] != gs[d]) {
      throw Error("sum_to: cannot reduce " + shape_str(gs) + " to " + shape_str(shape));
    }
  }
  if (dims.empty()) return g.reshape(shape);
  return sum(g, dims, true).reshape(shape);
}

Tensor expand_to(const Tensor& a, const Shape& shape) {
  if (a.shape() == shape) return a;
  if (broadcast_shape(a.shape(), shape) != shape)
    throw Error("expand_to: cannot expand " + shape_str(a.shape()) + " to " + shape_str(shape));
  return pick(Op::expand, "expand_to", {&a})->expand(a, shape);
}

// ---- matrix products -------------------------------------------------------------------------

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  Picked be = pick(Op::matmul, "matmul", {&a, &b});
  check(a.dim() == 2 && b.dim() == 2, "matmul",
        "needs 2-d operands, got " + shape_str(a.shape()) + " and " + shape_str(b.shape()));
  const int64_t M = trans_a ? a.size(1) : a.size(0), K = trans_a ? a.size(0) : a.size(1);
  const int64_t K2 = trans_b ? b.size(1) : b.size(0), N = trans_b ? b.size(0) : b.size(1);
  check(K == K2, "matmul",
        "inner sizes differ: " + shape_str(a.shape()) + (trans_a ? "^T" : "") + " x " +
            shape_str(b.shape()) + (trans_b ? "^T" : ""));
  if (M * N == 0 || K == 0) return Tensor::zeros({M, N}, a.device());
  be.flops(2.0 * double(M) * double(N) * double(K));
  return be->matmul(a, b, trans_a, trans_b);
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  Picked be = pick(Op::linear, "linear", {&x, &w, &b});
  check(x.dim() == 2 && w.dim() == 2 && b.dim() == 1 && x.size(1) == w.size(1) && b.size(0) == w.size(0),
        "linear", "needs x [N, K], w [F, K], b [F], got " + shape_str(x.shape()) + ", " + shape_str(w.shape()) +
                      ", " + shape_str(b.shape()));
  const int64_t N = x.size(0), K = x.size(1), F = w.size(0);
  if (N * F == 0) return Tensor::zeros({N, F}, x.device());
  be.flops(2.0 * double(N) * double(F) * double(K));
  return be->linear(x, w, b);
}

Tensor bmm(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  Picked be = pick(Op::bmm, "bmm", {&a, &b});
  check(a.dim() == 3 && b.dim() == 3, "bmm",
        "needs 3-d operands, got " + shape_str(a.shape()) + " and " + shape_str(b.shape()));
  const int64_t Ba = a.size(0), Bb = b.size(0);
  check(Ba == Bb || Ba == 1 || Bb == 1, "bmm",
        "batch sizes differ: " + shape_str(a.shape()) + " and " + shape_str(b.shape()));
  const int64_t B = Ba == 1 ? Bb : Ba;  // a batch of 1 broadcasts (also against 0)
  const int64_t M = trans_a ? a.size(2) : a.size(1), K = trans_a ? a.size(1) : a.size(2);
  const int64_t K2 = trans_b ? b.size(2) : b.size(1), N = trans_b ? b.size(1) : b.size(2);
  check(K == K2, "bmm", "inner sizes differ: " + shape_str(a.shape()) + " x " + shape_str(b.shape()));
  if (B * M * N == 0 || K == 0) return Tensor::zeros({B, M, N}, a.device());
  be.flops(2.0 * double(B) * double(M) * double(N) * double(K));
  return be->bmm(a, b, trans_a, trans_b);
}

// ---- reductions --------------------------------------------------------------------------

Tensor sum(const Tensor& a, std::vector<int64_t> dims, bool keepdim) {
  Picked be = pick(Op::sum, "sum", {&a});
  if (a.dim() == 0) return a.clone();
  return be->sum(a, norm_dims(std::move(dims), a.dim(), "sum"), keepdim);
}

Tensor mean(const Tensor& a, std::vector<int64_t> dims, bool keepdim) {
  if (a.dim() == 0) return a.clone();
  dims = norm_dims(std::move(dims), a.dim(), "mean");
  int64_t count = 1;
  for (int64_t d : dims) count *= a.shape()[d];
  if (count == 0) throw Error("mean: reducing over an empty dim of " + shape_str(a.shape()));
  return mul_scalar(sum(a, dims, keepdim), 1.f / static_cast<float>(count));
}

Tensor max(const Tensor& a, int64_t dim, bool keepdim, Tensor* argmax) {
  Picked be = pick(Op::max, "max", {&a});
  dim = wrap_dim(dim, a.dim(), "max");
  if (a.shape()[dim] == 0) throw Error("max: empty dim in " + shape_str(a.shape()));
  return be->max(a, dim, keepdim, argmax);
}

Tensor max_backward(const Tensor& dout, const Tensor& argmax, const Shape& in_shape, int64_t dim) {
  Picked be = pick(Op::max_backward, "max_backward", {&dout, &argmax});
  dim = wrap_dim(dim, static_cast<int64_t>(in_shape.size()), "max_backward");
  Shape kept = in_shape;
  kept[dim] = 1;
  check(dout.numel() == shape_numel(kept) && argmax.numel() == dout.numel(), "max_backward",
        "gradient " + shape_str(dout.shape()) + " and argmax " + shape_str(argmax.shape()) +
            " do not fit the max over dim " + std::to_string(dim) + " of " + shape_str(in_shape));
  return be->max_backward(dout.reshape(kept), argmax.reshape(kept), in_shape, dim);
}

Tensor logsumexp(const Tensor& a, int64_t dim, bool keepdim) {
  Picked be = pick(Op::logsumexp, "logsumexp", {&a});
  dim = wrap_dim(dim, a.dim(), "logsumexp");
  if (a.shape()[dim] == 0) throw Error("logsumexp: empty dim in " + shape_str(a.shape()));
  return be->logsumexp(a, dim, keepdim);
}

// ---- layout --------------------------------------------------------------------------------

Tensor permute(const Tensor& a, const std::vector<int64_t>& perm) {
  Picked be = pick(Op::permute, "permute", {&a});
  const int64_t r = a.dim();
  check(static_cast<int64_t>(perm.size()) == r, "permute",
        "perm of size " + std::to_string(perm.size()) + " for shape " + shape_str(a.shape()));
  std::vector<int64_t> p(r);
  std::vector<bool> seen(r, false);
  for (int64_t i = 0; i < r; ++i) {
    p[i] = wrap_dim(perm[i], r, "permute");
    check(!seen[p[i]], "permute", "repeated dim in perm for shape " + shape_str(a.shape()));
    seen[p[i]] = true;
  }
  return be->permute(a, p);
}

std::vector<int64_t> swap_perm(int64_t rank, int64_t d0, int64_t d1) {
  std::vector<int64_t> p(rank);
  for (int64_t i = 0; i < rank; ++i) p[i] = i;
  std::swap(p[wrap_dim(d0, rank, "transpose")], p[wrap_dim(d1, rank, "transpose")]);
  return p;
}

Tensor transpose(const Tensor& a, int64_t d0, int64_t d1) {
  return permute(a, swap_perm(a.dim(), d0, d1));
}

Tensor flatten(const Tensor& a, int64_t start_dim, int64_t end_dim) {
  if (a.dim() == 0) return a.reshape({1});
  int64_t s = wrap_dim(start_dim, a.dim(), "flatten"), e = wrap_dim(end_dim, a.dim(), "flatten");
  check(s <= e, "flatten", "start_dim after end_dim for shape " + shape_str(a.shape()));
  Shape os;
  for (int64_t i = 0; i < s; ++i) os.push_back(a.shape()[i]);
  int64_t m = 1;
  for (int64_t i = s; i <= e; ++i) m *= a.shape()[i];
  os.push_back(m);
  for (int64_t i = e + 1; i < a.dim(); ++i) os.push_back(a.shape()[i]);
  return a.reshape(os);
}

Tensor concat(const std::vector<Tensor>& ts, int64_t dim) {
  check(!ts.empty(), "concat", "no tensors");
  const Shape& s0 = ts[0].shape();
  dim = wrap_dim(dim, ts[0].dim(), "concat");
  for (auto& t : ts) {
    bool ok = t.dim() == ts[0].dim();
    for (int64_t d = 0; ok && d < t.dim(); ++d) ok = d == dim || t.shape()[d] == s0[d];
    check(ok, "concat", "shape " + shape_str(t.shape()) + " does not match " + shape_str(s0) +
                            " outside dim " + std::to_string(dim));
    if (t.device() != ts[0].device()) pick(Op::concat, "concat", {&ts[0], &t});  // throws
  }
  return pick(Op::concat, "concat", {&ts[0]})->concat(ts, dim);
}

Tensor stack(const std::vector<Tensor>& ts, int64_t dim) {
  check(!ts.empty(), "stack", "no tensors");
  dim = wrap_dim(dim, ts[0].dim() + 1, "stack");
  std::vector<Tensor> us;
  for (auto& t : ts) {
    check(t.shape() == ts[0].shape(), "stack",
          "shape " + shape_str(t.shape()) + " differs from " + shape_str(ts[0].shape()));
    Shape s = t.shape();
    s.insert(s.begin() + dim, 1);
    us.push_back(t.reshape(s));
  }
  return concat(us, dim);
}

Tensor slice(const Tensor& a, int64_t dim, int64_t start, int64_t end) {
  Picked be = pick(Op::slice, "slice", {&a});
  dim = wrap_dim(dim, a.dim(), "slice");
  resolve_range(a.shape()[dim], start, end);
  be.bytes(4 * double(a.numel()) * double(end - start) / double(std::max<int64_t>(a.shape()[dim], 1)));  // rows read
  return be->slice(a, dim, start, end);
}

void slice_add_(Tensor& out, const Tensor& g, int64_t dim, int64_t start) {
  Picked be = pick(Op::slice_add, "slice_add_", {&out, &g});
  dim = wrap_dim(dim, out.dim(), "slice_add_");
  const int64_t n = out.shape()[dim], len = g.dim() == out.dim() ? g.shape()[dim] : -1;
  bool fits = len >= 0 && start >= 0 && start + len <= n;
  for (int64_t d = 0; fits && d < out.dim(); ++d) fits = d == dim || g.shape()[d] == out.shape()[d];
  check(fits, "slice_add_",
        "gradient " + shape_str(g.shape()) + " at " + std::to_string(start) + " does not fit " +
            shape_str(out.shape()));
  be.bytes(2.0 * 4 * double(g.numel()));  // g and the rows of out it lands on: not all of out
  be->slice_add(out, g, dim, start);
}

Tensor index_select(const Tensor& a, const std::vector<int64_t>& idx) {
  Picked be = pick(Op::index_select, "index_select", {&a});
  check(a.dim() >= 1, "index_select", "needs rank >= 1, got " + shape_str(a.shape()));
  for (int64_t i : idx)
    check(i >= 0 && i < a.shape()[0], "index_select",
          "index " + std::to_string(i) + " out of range for " + shape_str(a.shape()));
  // the rows read, not the whole source
  be.bytes(4 * double(idx.size()) * double(a.numel()) / double(std::max<int64_t>(a.shape()[0], 1)));
  return be->index_select(a, idx);
}

void index_add_(Tensor& out, const std::vector<int64_t>& idx, const Tensor& g) {
  Picked be = pick(Op::index_add, "index_add_", {&out, &g});
  check(out.dim() >= 1, "index_add_", "needs rank >= 1, got " + shape_str(out.shape()));
  const int64_t rows = out.shape()[0], row = rows ? out.numel() / rows : 0;
  check(g.numel() == static_cast<int64_t>(idx.size()) * row, "index_add_",
        "gradient " + shape_str(g.shape()) + " does not match " + std::to_string(idx.size()) +
            " rows of " + shape_str(out.shape()));
  for (int64_t i : idx)
    check(i >= 0 && i < rows, "index_add_",
          "index " + std::to_string(i) + " out of range for " + shape_str(out.shape()));
  be.bytes(2.0 * 4 * double(g.numel()));  // g and the rows of out it lands on: not all of out
  be->index_add(out, idx, g);
}

// ---- convolution and pooling -------------------------------------------------------------------

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dArgs& a) {
  Picked be = pick(Op::conv2d, "conv2d", {&x, &w, &b});
  const Shape out = conv2d_shape(x.shape(), w.shape(), a, "conv2d");
  if (b.defined())
    check(b.dim() == 1 && b.size(0) == out[1], "conv2d",
          "bias must be [F] = [" + std::to_string(out[1]) + "], got " + shape_str(b.shape()));
  be.flops(conv2d_flops(out, w.shape()));
  return be->conv2d(x, w, b, a);
}

Tensor conv2d_affine_act(const Tensor& x, const Tensor& w, const Tensor& scale, const Tensor& shift,
                         const Conv2dArgs& a, Activation act) {
  const char* what = "conv2d_affine_act";
  Picked be = pick(Op::conv2d_affine_act, what, {&x, &w, &scale, &shift});
  const Shape out = conv2d_shape(x.shape(), w.shape(), a, what);
  for (const Tensor* t : {&scale, &shift})
    if (t->defined())
      check(t->dim() == 1 && t->size(0) == out[1], what,
            std::string(t == &scale ? "scale" : "shift") + " must be [F] = [" +
                std::to_string(out[1]) + "], got " + shape_str(t->shape()));
  be.flops(conv2d_flops(out, w.shape()));
  return be->conv2d_affine_act(x, w, scale, shift, a, act);
}

Tensor conv2d_backward_input(const Tensor& dout, const Tensor& w, const Shape& x_shape,
                             const Conv2dArgs& a) {
  const char* what = "conv2d_backward_input";
  Picked be = pick(Op::conv2d_backward_input, what, {&dout, &w});
  const Shape want = conv2d_shape(x_shape, w.shape(), a, what);
  check(dout.shape() == want, what,
        "dout must be " + shape_str(want) + ", got " + shape_str(dout.shape()));
  be.flops(conv2d_flops(want, w.shape()));
  return be->conv2d_backward_input(dout, w, x_shape, a);
}

Tensor conv2d_backward_weight(const Tensor& dout, const Tensor& x, const Shape& w_shape,
                              const Conv2dArgs& a, Tensor* dbias) {
  const char* what = "conv2d_backward_weight";
  Picked be = pick(Op::conv2d_backward_weight, what, {&dout, &x});
  const Shape want = conv2d_shape(x.shape(), w_shape, a, what);
  check(dout.shape() == want, what,
        "dout must be " + shape_str(want) + ", got " + shape_str(dout.shape()));
  be.flops(conv2d_flops(want, w_shape));
  return be->conv2d_backward_weight(dout, x, w_shape, a, dbias);
}

Shape conv_transpose2d_shape(const Shape& x, const Shape& w, const Conv2dArgs& a,
                             int64_t out_pad_h, int64_t out_pad_w) {
  check(x.size() == 4 && w.size() == 4 && x[1] == w[0], "conv_transpose2d",
        "x must be [N, F, H, W] and w [F, C/groups, KH, KW], got x " + shape_str(x) + ", w " +
            shape_str(w));
  // PyTorch also allows out_pad < dilation; as the adjoint of conv2d only out_pad < stride exists
  check(out_pad_h >= 0 && out_pad_w >= 0 && out_pad_h < a.stride_h && out_pad_w < a.stride_w, "conv_transpose2d",
        "output padding must be smaller than the stride");
  check(a.groups >= 1 && x[1] % a.groups == 0, "conv_transpose2d",
        "input channels " + std::to_string(x[1]) + " not divisible by groups " + std::to_string(a.groups));
  const int64_t oh = (x[2] - 1) * a.stride_h - 2 * a.pad_h + a.dil_h * (w[2] - 1) + 1 + out_pad_h;
  const int64_t ow = (x[3] - 1) * a.stride_w - 2 * a.pad_w + a.dil_w * (w[3] - 1) + 1 + out_pad_w;
  check(oh > 0 && ow > 0, "conv_transpose2d",
        "output would be empty for x " + shape_str(x) + ", w " + shape_str(w));
  return {x[0], w[1] * a.groups, oh, ow};
}

Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dArgs& a,
                        int64_t out_pad_h, int64_t out_pad_w) {
  // conv2d maps [N, C, OH, OW] -> [N, F, H, W]; its adjoint maps x back to the input shape
  Tensor y = conv2d_backward_input(x, w, conv_transpose2d_shape(x.shape(), w.shape(), a, out_pad_h, out_pad_w), a);
  if (!b.defined()) return y;
  check(b.dim() == 1 && b.size(0) == y.size(1), "conv_transpose2d",
        "bias must be [" + std::to_string(y.size(1)) + "], got " + shape_str(b.shape()));
  return add(y, b.reshape({1, b.size(0), 1, 1}));
}

Tensor max_pool2d(const Tensor& x, const Pool2dArgs& a, Tensor* argmax) {
  Picked be = pick(Op::max_pool2d, "max_pool2d", {&x});
  pool2d_shape(x.shape(), a, "max_pool2d");
  return be->max_pool2d(x, a, argmax);
}

Tensor max_pool2d_backward(const Tensor& dout, const Tensor& argmax, const Shape& x_shape) {
  Picked be = pick(Op::max_pool2d_backward, "max_pool2d_backward", {&dout, &argmax});
  check(x_shape.size() == 4 && dout.dim() == 4 && dout.shape() == argmax.shape() &&
            dout.size(0) == x_shape[0] && dout.size(1) == x_shape[1],
        "max_pool2d_backward",
        "dout " + shape_str(dout.shape()) + " and argmax " + shape_str(argmax.shape()) +
            " must be [N, C, OH, OW] for x " + shape_str(x_shape));
  return be->max_pool2d_backward(dout, argmax, x_shape);
}

Tensor avg_pool2d(const Tensor& x, const Pool2dArgs& a) {
  Picked be = pick(Op::avg_pool2d, "avg_pool2d", {&x});
  pool2d_shape(x.shape(), a, "avg_pool2d");
  return be->avg_pool2d(x, a);
}

Tensor avg_pool2d_backward(const Tensor& dout, const Shape& x_shape, const Pool2dArgs& a) {
  Picked be = pick(Op::avg_pool2d_backward, "avg_pool2d_backward", {&dout});
  const Shape want = pool2d_shape(x_shape, a, "avg_pool2d_backward");
  check(dout.shape() == want, "avg_pool2d_backward",
        "dout must be " + shape_str(want) + ", got " + shape_str(dout.shape()));
  return be->avg_pool2d_backward(dout, x_shape, a);
}

Tensor global_avg_pool(const Tensor& x) {
  Picked be = pick(Op::global_avg_pool, "global_avg_pool", {&x});
  check(x.dim() == 4 && x.size(2) * x.size(3) > 0, "global_avg_pool",
        "input must be [N, C, H, W] with H, W > 0, got " + shape_str(x.shape()));
  return be->global_avg_pool(x);
}

Tensor upsample_nearest2d(const Tensor& x, int64_t scale) {
  Picked be = pick(Op::upsample_nearest2d, "upsample_nearest2d", {&x});
  check(x.dim() == 4 && scale >= 1, "upsample_nearest2d",
        "input must be [N, C, H, W] and scale >= 1, got " + shape_str(x.shape()) + ", scale " +
            std::to_string(scale));
  return be->upsample_nearest2d(x, scale);
}

Tensor upsample_nearest2d_backward(const Tensor& dout, int64_t scale) {
  Picked be = pick(Op::upsample_nearest2d_backward, "upsample_nearest2d_backward", {&dout});
  check(dout.dim() == 4 && scale >= 1 && dout.size(2) % scale == 0 && dout.size(3) % scale == 0,
        "upsample_nearest2d_backward",
        "dout must be [N, C, H*s, W*s] for scale s = " + std::to_string(scale) + ", got " +
            shape_str(dout.shape()));
  return be->upsample_nearest2d_backward(dout, scale);
}

Tensor scale_planes(const Tensor& x, const Tensor& s) {
  Picked be = pick(Op::scale_planes, "scale_planes", {&x, &s});
  check(x.dim() == 4 && s.dim() == 2 && s.size(0) == x.size(0) && s.size(1) == x.size(1),
        "scale_planes", "expects x [N, C, H, W] and s [N, C], got " + shape_str(x.shape()) +
                            " and " + shape_str(s.shape()));
  return be->scale_planes(x, s);
}

// ---- batch normalisation ---------------------------------------------------------------------

namespace {
// The arguments of a training-mode batch norm (plain or followed by a ReLU).
void check_bn_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, int64_t groups,
                    const Tensor* running_mean, const Tensor* running_var, const char* what) {
  check_bn_input(x, what);
  const int64_t N = x.size(0), C = x.size(1), S = x.dim() == 4 ? x.size(2) * x.size(3) : 1;
  check(groups >= 1 && N % groups == 0, what,
        std::to_string(N) + " rows of " + shape_str(x.shape()) + " do not split into " +
            std::to_string(groups) + " equal groups");
  check_channel_vec(gamma, C, what, "weight");
  check_channel_vec(beta, C, what, "bias");
  if (running_mean) check_channel_vec(*running_mean, C, what, "running_mean");
  if (running_var) check_channel_vec(*running_var, C, what, "running_var");
  const int64_t M = N / groups * S;
  check(M > 0, what, "no values to normalise in " + shape_str(x.shape()));
  check(M > 1 || running_var == nullptr, what,
        "needs more than one value per channel in training mode, got " + shape_str(x.shape()));
}

// The arguments of a training-mode batch norm's backward.
void check_bn_backward(const Tensor& dout, const Tensor& x, const Tensor& gamma,
                       const BatchNormSaved& saved, int64_t groups, const char* what) {
  check_bn_input(x, what);
  check(dout.shape() == x.shape(), what,
        "gradient " + shape_str(dout.shape()) + " does not match input " + shape_str(x.shape()));
  const int64_t N = x.size(0), C = x.size(1);
  check(groups >= 1 && N % groups == 0 && saved.mean.numel() == groups * C &&
            saved.invstd.numel() == groups * C,
        what, "saved statistics " + shape_str(saved.mean.shape()) + " do not match " +
                  std::to_string(groups) + " groups of " + shape_str(x.shape()));
  check_channel_vec(gamma, C, what, "weight");
}
}  // namespace

Tensor batch_norm_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                        int64_t groups, BatchNormSaved* saved, Tensor* running_mean,
                        Tensor* running_var, float momentum) {
  const char* what = "batch_norm";
  Picked be = pick(Op::batch_norm_train, what, {&x, &gamma, &beta, running_mean, running_var});
  check_bn_train(x, gamma, beta, groups, running_mean, running_var, what);
  return be->batch_norm_train(x, gamma, beta, eps, groups, saved, running_mean, running_var, momentum);
}

Tensor batch_norm_relu_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                             int64_t groups, float slope, BatchNormSaved* saved,
                             Tensor* running_mean, Tensor* running_var, float momentum) {
  const char* what = "batch_norm_relu";
  Picked be = pick(Op::batch_norm_relu_train, what, {&x, &gamma, &beta, running_mean, running_var});
  check_bn_train(x, gamma, beta, groups, running_mean, running_var, what);
  check(std::isfinite(slope), what, "the leaky ReLU slope must be finite, got " + std::to_string(slope));
  return be->batch_norm_relu_train(x, gamma, beta, eps, groups, slope, saved, running_mean,
                                   running_var, momentum);
}

BatchNormSaved batch_norm_statistics(const Tensor& x, float eps, int64_t groups, Tensor* running_mean,
                                     Tensor* running_var, float momentum) {
  const char* what = "batch_norm_statistics";
  Picked be = pick(Op::batch_norm_statistics, what, {&x, running_mean, running_var});
  check_bn_train(x, Tensor(), Tensor(), groups, running_mean, running_var, what);
  return be->batch_norm_statistics(x, eps, groups, running_mean, running_var, momentum);
}

namespace {
// The arguments of conv2d_bn_relu_input (and of conv2d_statistics with an input batch norm).
void check_bn_relu_input(const Tensor& x, const Tensor& gamma, const Tensor& beta, const BatchNormSaved& saved,
                         int64_t groups, const Shape& out, const Tensor& b, const char* what) {
  const int64_t N = x.size(0), C = x.size(1);
  check(groups >= 1 && N % groups == 0, what,
        std::to_string(N) + " rows of " + shape_str(x.shape()) + " do not split into " + std::to_string(groups) +
            " equal groups");
  for (const auto& [t, name] : {std::pair{&saved.mean, "mean"}, std::pair{&saved.invstd, "invstd"}})
    check(t->defined() && t->numel() == groups * C, what,
          std::string("saved statistics: ") + name + " " + (t->defined() ? shape_str(t->shape()) : "(none)") +
              " is not [" + std::to_string(groups) + ", " + std::to_string(C) + "] (" + std::to_string(groups) +
              " groups of " + shape_str(x.shape()) + ")");
  check_channel_vec(gamma, C, what, "weight");
  check_channel_vec(beta, C, what, "bias (of the batch norm)");
  check_channel_vec(b, out[1], what, "bias (of the convolution)");
}
}  // namespace

Tensor conv2d_bn_relu_input(const Tensor& x, const Tensor& gamma, const Tensor& beta, const BatchNormSaved& saved,
                            int64_t groups, const Tensor& w, const Tensor& b, const Conv2dArgs& a) {
  const char* what = "conv2d_bn_relu_input";
  Picked be = pick(Op::conv2d_bn_relu_input, what, {&x, &gamma, &beta, &saved.mean, &saved.invstd, &w, &b});
  const Shape out = conv2d_shape(x.shape(), w.shape(), a, what);
  check_bn_relu_input(x, gamma, beta, saved, groups, out, b, what);
  be.flops(conv2d_flops(out, w.shape()));
  return be->conv2d_bn_relu_input(x, gamma, beta, saved, groups, w, b, a);
}

Tensor conv2d_bn_relu_input_backward_weight(const Tensor& dout, const Tensor& x, const Tensor& gamma,
                                            const Tensor& beta, const BatchNormSaved& saved, int64_t groups,
                                            const Shape& w_shape, const Conv2dArgs& a, Tensor* dbias) {
  const char* what = "conv2d_bn_relu_input_backward_weight";
  Picked be = pick(Op::conv2d_bn_relu_input_backward_weight, what, {&dout, &x, &gamma, &beta, &saved.mean, &saved.invstd});
  const Shape want = conv2d_shape(x.shape(), w_shape, a, what);
  check(dout.shape() == want, what, "dout must be " + shape_str(want) + ", got " + shape_str(dout.shape()));
  check_bn_relu_input(x, gamma, beta, saved, groups, want, Tensor(), what);
  be.flops(conv2d_flops(want, w_shape));
  return be->conv2d_bn_relu_input_backward_weight(dout, x, gamma, beta, saved, groups, w_shape, a, dbias);
}

Tensor conv2d_statistics(const Tensor& x, const BnReluInput* in, const Tensor& w, const Tensor& b, const Conv2dArgs& a,
                         float eps, int64_t groups, Tensor* running_mean, Tensor* running_var, float momentum,
                         BatchNormSaved* stats) {
  const char* what = "conv2d_statistics";
  const Tensor none;
  Picked be = pick(Op::conv2d_statistics, what,
                   {&x, in ? &in->gamma : &none, in ? &in->beta : &none, in ? &in->saved.mean : &none,
                    in ? &in->saved.invstd : &none, &w, &b, running_mean, running_var});
  check(stats != nullptr, what, "needs somewhere to put the statistics (stats is null)");
  const Shape out = conv2d_shape(x.shape(), w.shape(), a, what);
  if (in) check_bn_relu_input(x, in->gamma, in->beta, in->saved, in->groups, out, b, what);
  else check_channel_vec(b, out[1], what, "bias");
  // the output's batch norm, as check_bn_train checks batch_norm_statistics's input
  const int64_t N = out[0], F = out[1], S = out[2] * out[3];
  check(groups >= 1 && N % groups == 0, what,
        std::to_string(N) + " rows of the output " + shape_str(out) + " do not split into " +
            std::to_string(groups) + " equal groups");
  if (running_mean) check_channel_vec(*running_mean, F, what, "running_mean");
  if (running_var) check_channel_vec(*running_var, F, what, "running_var");
  check(N / groups * S > 0, what, "no values to normalise in the output " + shape_str(out));
  check(N / groups * S > 1 || running_var == nullptr, what,
        "needs more than one value per channel in training mode, got an output of " + shape_str(out));
  be.flops(conv2d_flops(out, w.shape()));
  return be->conv2d_statistics(x, in, w, b, a, eps, groups, running_mean, running_var, momentum, stats);
}

Tensor batch_norm_relu_backward(const Tensor& dout, const Tensor& x, const Tensor& gamma,
                                const Tensor& beta, const BatchNormSaved& saved, int64_t groups,
                                float slope, Tensor* dgamma, Tensor* dbeta) {
  const char* what = "batch_norm_relu_backward";
  Picked be = pick(Op::batch_norm_relu_backward, what,
                   {&dout, &x, &gamma, &beta, &saved.mean, &saved.invstd});
  check_bn_backward(dout, x, gamma, saved, groups, what);
  check_channel_vec(beta, x.size(1), what, "bias");
  check(std::isfinite(slope), what, "the leaky ReLU slope must be finite, got " + std::to_string(slope));
  return be->batch_norm_relu_backward(dout, x, gamma, beta, saved, groups, slope, dgamma, dbeta);
}

Tensor batch_norm_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                       const Tensor& running_mean, const Tensor& running_var, float eps) {
  const char* what = "batch_norm (eval)";
  Picked be = pick(Op::batch_norm_eval, what, {&x, &gamma, &beta, &running_mean, &running_var});
  check_bn_input(x, what);
  const int64_t C = x.size(1);
  check_channel_vec(gamma, C, what, "weight");
  check_channel_vec(beta, C, what, "bias");
  check(running_mean.defined() && running_var.defined(), what, "running statistics missing");
  check_channel_vec(running_mean, C, what, "running_mean");
  check_channel_vec(running_var, C, what, "running_var");
  return be->batch_norm_eval(x, gamma, beta, running_mean, running_var, eps);
}

Tensor batch_norm_backward(const Tensor& dout, const Tensor& x, const Tensor& gamma,
                           const BatchNormSaved& saved, int64_t groups, Tensor* dgamma,
                           Tensor* dbeta) {
  const char* what = "batch_norm_backward";
  Picked be = pick(Op::batch_norm_backward, what, {&dout, &x, &gamma, &saved.mean, &saved.invstd});
  check_bn_backward(dout, x, gamma, saved, groups, what);
  return be->batch_norm_backward(dout, x, gamma, saved, groups, dgamma, dbeta);
}

void batch_norm_fold(const Tensor& gamma, const Tensor& beta, const Tensor& bias,
                     const Tensor& running_mean, const Tensor& running_var, float eps,
                     Tensor* scale, Tensor* shift) {
  const char* what = "batch_norm_fold";
  Picked be = pick(Op::batch_norm_fold, what, {&gamma, &beta, &bias, &running_mean, &running_var});
  check(running_mean.defined() && running_var.defined() && running_mean.dim() == 1, what,
        "running statistics must be [C], got " + shape_str(running_mean.shape()));
  const int64_t C = running_mean.numel();
  check_channel_vec(running_var, C, what, "running_var");
  check_channel_vec(gamma, C, what, "weight");
  check_channel_vec(beta, C, what, "bias");
  check_channel_vec(bias, C, what, "conv bias");
  check(scale && shift, what, "scale and shift outputs are required");
  be->batch_norm_fold(gamma, beta, bias, running_mean, running_var, eps, scale, shift);
}

// ---- distances and normalisation -----------------------------------------------------------

Tensor pairwise_sqdist(const Tensor& a, const Tensor& b) {
  Picked be = pick(Op::pairwise_sqdist, "pairwise_sqdist", {&a, &b});
  check(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(1), "pairwise_sqdist",
        "expects [M, D] and [N, D], got " + shape_str(a.shape()) + " and " + shape_str(b.shape()));
  be.flops(2.0 * double(a.size(0)) * double(b.size(0)) * double(a.size(1)));  // the a b^T GEMM's
  return be->pairwise_sqdist(a, b);
}

void pairwise_sqdist_backward(const Tensor& dout, const Tensor& a, const Tensor& b,
                              const Tensor& dist, Tensor* da, Tensor* db) {
  const char* what = "pairwise_sqdist_backward";
  Picked be = pick(Op::pairwise_sqdist_backward, what, {&dout, &a, &b, &dist});
  check(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(1), what,
        "expects [M, D] and [N, D], got " + shape_str(a.shape()) + " and " + shape_str(b.shape()));
  const Shape mn{a.size(0), b.size(0)};
  check(dout.shape() == mn && dist.shape() == mn, what,
        "dout " + shape_str(dout.shape()) + " and dist " + shape_str(dist.shape()) + " must be " +
            shape_str(mn));
  be->pairwise_sqdist_backward(dout, a, b, dist, da, db);
}

Tensor l2_normalize(const Tensor& a, float eps) {
  Picked be = pick(Op::l2_normalize, "l2_normalize", {&a});
  check(a.dim() == 2, "l2_normalize", "expects [M, D], got " + shape_str(a.shape()));
  return be->l2_normalize(a, eps);
}

Tensor l2_normalize_backward(const Tensor& dout, const Tensor& x, const Tensor& y, float eps) {
  const char* what = "l2_normalize_backward";
  Picked be = pick(Op::l2_normalize_backward, what, {&dout, &x, &y});
  check(x.dim() == 2, what, "expects [M, D], got " + shape_str(x.shape()));
  check_same_shape(dout, x, what, "gradient", "input");
  check_same_shape(y, x, what, "output", "input");
  return be->l2_normalize_backward(dout, x, y, eps);
}

// ---- optimiser steps -----------------------------------------------------------------------

void sgd_step(Tensor& w, const Tensor& g, Tensor& velocity, const SgdParams& p) {
  const bool momentum = p.momentum != 0.f;
  Picked be = pick(Op::sgd_step, "sgd_step", {&w, &g, momentum ? &velocity : nullptr});
  check_same_shape(g, w, "sgd_step", "gradient", "parameter");
  if (momentum) check_same_shape(velocity, w, "sgd_step", "velocity", "parameter");
  be->sgd_step(w, g, velocity, p);
}

// adam_step's checks of one parameter (adam_step_multi makes them for each slot).
static void check_adam(const Tensor& w, const Tensor& g, const Tensor& m, const Tensor& v, int64_t step,
                       const char* what) {
  check_same_shape(g, w, what, "gradient", "parameter");
  check_same_shape(m, w, what, "first moment", "parameter");
  check_same_shape(v, w, what, "second moment", "parameter");
  check(step >= 1, what, "step must be >= 1, got " + std::to_string(step));
  // the CPU step updates w, m and v from g in vectors that assume four separate tensors
  const Tensor* ts[] = {&w, &g, &m, &v};
  const char* names[] = {"parameter", "gradient", "first moment", "second moment"};
  for (int i = 0; i < 4; ++i)
    for (int j = i + 1; j < 4; ++j)
      check(!ts[i]->same_storage(*ts[j]), what,
            std::string("the ") + names[i] + " and the " + names[j] + " share storage");
}

void adam_step(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, const AdamParams& p) {
  Picked be = pick(Op::adam_step, "adam_step", {&w, &g, &m, &v});
  check_adam(w, g, m, v, p.step, "adam_step");
  be->adam_step(w, g, m, v, p);
}

void adam_step_multi(const std::vector<AdamSlot>& slots, const AdamParams& p) {
  const char* what = "adam_step_multi";
  if (slots.empty()) return;
  // every tensor of every slot: one device for all
  std::vector<const Tensor*> all;
  all.reserve(4 * slots.size());
  for (const AdamSlot& s : slots) {
    check(s.w && s.g && s.m && s.v, what, "a slot has a null tensor pointer");
    all.insert(all.end(), {s.w, s.g, s.m, s.v});
  }
  Picked be = pick_from(Op::adam_step_multi, what, all);
  for (const AdamSlot& s : slots) check_adam(*s.w, *s.g, *s.m, *s.v, s.step, what);
  be->adam_step_multi(slots, p);
}

}  // namespace normad
