// normad elementwise ops with NumPy/PyTorch broadcasting (see tensor/ops.h).
// Math: out[i] = f(a[ia(i)], b[ib(i)]) where ia/ib map an output index to the inputs with stride 0
// along broadcast dims; unary ops are out[i] = f(a[i]).
// Tested by tests/test_ops.cpp (closed forms, broadcasting, errors) and tests/test_grad.cpp.
#include <algorithm>
#include <cmath>

#include "tensor/ops.h"
#include "tensor/parallel.h"

namespace normad {

namespace {

constexpr int64_t kGrain = 1 << 15;  // elements per parallel chunk for cheap elementwise work

// Strides of `s` aligned to the right of a rank-`rank` output, 0 along broadcast (size 1) dims.
std::vector<int64_t> broadcast_strides(const Shape& s, size_t rank) {
  std::vector<int64_t> st(rank, 0);
  int64_t stride = 1;
  for (size_t k = 0; k < s.size(); ++k) {
    size_t i = s.size() - 1 - k, o = rank - 1 - k;
    st[o] = s[i] == 1 ? 0 : stride;
    stride *= s[i];
  }
  return st;
}

template <class F>
Tensor unary(const Tensor& a, F f) {
  Tensor out = Tensor::empty(a.shape());
  const float* x = a.data();
  float* y = out.data();
  parallel_for(a.numel(), kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] = f(x[i]);
  });
  return out;
}

// Visits every output element of a broadcast of inputs with the given strides: f(out_i, ia, ib).
// The innermost dim runs as a plain loop; outer indices advance like an odometer.
template <class F>
void for_each_broadcast(const Shape& out_shape, const std::vector<int64_t>& sa,
                        const std::vector<int64_t>& sb, F f) {
  const int64_t rank = static_cast<int64_t>(out_shape.size());
  const int64_t n = shape_numel(out_shape);
  if (n == 0) return;
  if (rank == 0) {
    f(0, 0, 0);
    return;
  }
  const int64_t inner = out_shape[rank - 1], ia_in = sa[rank - 1], ib_in = sb[rank - 1];
  const int64_t rows = n / inner;
  parallel_for(rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(inner, 1)),
               [&](int64_t r0, int64_t r1) {
                 for (int64_t r = r0; r < r1; ++r) {
                   // Decompose the row index into outer coordinates.
                   int64_t rem = r, oa = 0, ob = 0;
                   for (int64_t d = rank - 2; d >= 0; --d) {
                     int64_t c = rem % out_shape[d];
                     rem /= out_shape[d];
                     oa += c * sa[d];
                     ob += c * sb[d];
                   }
                   for (int64_t j = 0; j < inner; ++j)
                     f(r * inner + j, oa + j * ia_in, ob + j * ib_in);
                 }
               });
}

template <class F>
Tensor binary(const Tensor& a, const Tensor& b, F f) {
  if (a.shape() == b.shape()) {  // fast path: no broadcasting
    Tensor out = Tensor::empty(a.shape());
    const float *x = a.data(), *y = b.data();
    float* z = out.data();
    parallel_for(a.numel(), kGrain, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) z[i] = f(x[i], y[i]);
    });
    return out;
  }
  Shape os = broadcast_shape(a.shape(), b.shape());
  Tensor out = Tensor::empty(os);
  auto sa = broadcast_strides(a.shape(), os.size()), sb = broadcast_strides(b.shape(), os.size());
  const float *x = a.data(), *y = b.data();
  float* z = out.data();
  for_each_broadcast(os, sa, sb, [&](int64_t i, int64_t ia, int64_t ib) { z[i] = f(x[ia], y[ib]); });
  return out;
}

}  // namespace

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

Tensor add(const Tensor& a, const Tensor& b) { return binary(a, b, [](float x, float y) { return x + y; }); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary(a, b, [](float x, float y) { return x - y; }); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary(a, b, [](float x, float y) { return x * y; }); }
Tensor div(const Tensor& a, const Tensor& b) { return binary(a, b, [](float x, float y) { return x / y; }); }
Tensor maximum(const Tensor& a, const Tensor& b) {
  return binary(a, b, [](float x, float y) { return x >= y ? x : y; });
}

Tensor add_scalar(const Tensor& a, float s) { return unary(a, [s](float x) { return x + s; }); }
Tensor mul_scalar(const Tensor& a, float s) { return unary(a, [s](float x) { return x * s; }); }
Tensor neg(const Tensor& a) { return unary(a, [](float x) { return -x; }); }
Tensor exp(const Tensor& a) { return unary(a, [](float x) { return std::exp(x); }); }
Tensor log(const Tensor& a) { return unary(a, [](float x) { return std::log(x); }); }
Tensor sqrt(const Tensor& a) { return unary(a, [](float x) { return std::sqrt(x); }); }
Tensor abs(const Tensor& a) { return unary(a, [](float x) { return std::fabs(x); }); }
Tensor sign(const Tensor& a) {
  return unary(a, [](float x) { return float((x > 0) - (x < 0)); });
}
Tensor pow(const Tensor& a, float p) {
  if (p == 2.f) return unary(a, [](float x) { return x * x; });
  return unary(a, [p](float x) { return std::pow(x, p); });
}
Tensor clamp(const Tensor& a, float lo, float hi) {
  if (lo > hi) throw Error("clamp: lo " + std::to_string(lo) + " > hi " + std::to_string(hi));
  return unary(a, [lo, hi](float x) { return std::min(std::max(x, lo), hi); });
}
// NaN passes through (as in PyTorch): `x > 0 ? x : 0` would turn it into a quiet 0.
Tensor relu(const Tensor& a) { return unary(a, [](float x) { return x < 0 ? 0.f : x; }); }
Tensor leaky_relu(const Tensor& a, float slope) {
  return unary(a, [slope](float x) { return x > 0 ? x : slope * x; });
}
Tensor leaky_relu_backward(const Tensor& g, const Tensor& x, float slope) {
  check(g.shape() == x.shape(), "leaky_relu_backward",
        "gradient " + shape_str(g.shape()) + " vs input " + shape_str(x.shape()));
  return binary(g, x, [slope](float gv, float xv) { return xv > 0 ? gv : slope * gv; });
}
Tensor sigmoid(const Tensor& a) {
  // Two branches keep exp's argument <= 0, so neither overflows.
  return unary(a, [](float x) {
    if (x >= 0) return 1.f / (1.f + std::exp(-x));
    float e = std::exp(x);
    return e / (1.f + e);
  });
}
Tensor silu(const Tensor& a) {
  return unary(a, [](float x) {
    float s = x >= 0 ? 1.f / (1.f + std::exp(-x)) : std::exp(x) / (1.f + std::exp(x));
    return x * s;
  });
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
  Tensor out = Tensor::empty(shape);
  auto sa = broadcast_strides(a.shape(), shape.size());
  std::vector<int64_t> zero(shape.size(), 0);
  const float* x = a.data();
  float* z = out.data();
  for_each_broadcast(shape, sa, zero, [&](int64_t i, int64_t ia, int64_t) { z[i] = x[ia]; });
  return out;
}

}  // namespace normad
