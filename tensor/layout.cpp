// normad layout ops: permute, transpose, flatten, concat, stack, slice, index_select and their
// scatter counterparts (see tensor/ops.h). All results are contiguous copies except flatten
// (a reshape view).
// Math: permute out[i_perm] = a[i]; concat/slice view tensors as [outer, size(dim) * inner].
// Tested by tests/test_ops.cpp and tests/test_grad.cpp.
#include <cstring>

#include "tensor/cpu.h"
#include "tensor/parallel.h"

namespace normad::cpu {

Tensor permute(const Tensor& a, const std::vector<int64_t>& perm) {
  const int64_t r = a.dim();
  check(static_cast<int64_t>(perm.size()) == r, "permute",
        "perm of size " + std::to_string(perm.size()) + " for shape " + shape_str(a.shape()));
  std::vector<int64_t> p(r), in_stride(r);
  std::vector<bool> seen(r, false);
  for (int64_t i = 0; i < r; ++i) {
    p[i] = wrap_dim(perm[i], r, "permute");
    check(!seen[p[i]], "permute", "repeated dim in perm for shape " + shape_str(a.shape()));
    seen[p[i]] = true;
  }
  int64_t s = 1;
  for (int64_t i = r - 1; i >= 0; --i) in_stride[i] = s, s *= a.shape()[i];
  Shape os(r);
  std::vector<int64_t> st(r);  // input stride for each output dim
  for (int64_t i = 0; i < r; ++i) os[i] = a.shape()[p[i]], st[i] = in_stride[p[i]];
  Tensor out = Tensor::empty(os);
  if (a.numel() == 0) return out;
  if (r == 0) return a.clone();
  const int64_t inner = os[r - 1], rows = a.numel() / inner;
  const float* x = a.data();
  float* y = out.data();
  parallel_for(rows, std::max<int64_t>(1, 16384 / inner), [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      int64_t rem = row, off = 0;
      for (int64_t d = r - 2; d >= 0; --d) off += (rem % os[d]) * st[d], rem /= os[d];
      for (int64_t j = 0; j < inner; ++j) y[row * inner + j] = x[off + j * st[r - 1]];
    }
  });
  return out;
}




Tensor concat(const std::vector<Tensor>& ts, int64_t dim) {
  check(!ts.empty(), "concat", "no tensors");
  const Shape& s0 = ts[0].shape();
  dim = wrap_dim(dim, ts[0].dim(), "concat");
  int64_t total = 0;
  for (auto& t : ts) {
    bool ok = t.dim() == ts[0].dim();
    for (int64_t d = 0; ok && d < t.dim(); ++d) ok = d == dim || t.shape()[d] == s0[d];
    check(ok, "concat", "shape " + shape_str(t.shape()) + " does not match " + shape_str(s0) +
                            " outside dim " + std::to_string(dim));
    total += t.shape()[dim];
  }
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= s0[d];
  for (int64_t d = dim + 1; d < ts[0].dim(); ++d) inner *= s0[d];
  Shape os = s0;
  os[dim] = total;
  Tensor out = Tensor::empty(os);
  int64_t off = 0;
  for (auto& t : ts) {
    int64_t chunk = t.shape()[dim] * inner;
    for (int64_t o = 0; o < outer; ++o)
      std::memcpy(out.data() + o * total * inner + off, t.data() + o * chunk, chunk * sizeof(float));
    off += chunk;
  }
  return out;
}


namespace {
// Resolves [start, end) on a dim of size n the way Python slicing does (clamped).
void resolve_range(int64_t n, int64_t& start, int64_t& end) {
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
}
}  // namespace

Tensor slice(const Tensor& a, int64_t dim, int64_t start, int64_t end) {
  dim = wrap_dim(dim, a.dim(), "slice");
  const int64_t n = a.shape()[dim];
  resolve_range(n, start, end);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= a.shape()[d];
  for (int64_t d = dim + 1; d < a.dim(); ++d) inner *= a.shape()[d];
  Shape os = a.shape();
  os[dim] = end - start;
  Tensor out = Tensor::empty(os);
  const int64_t chunk = (end - start) * inner;
  for (int64_t o = 0; o < outer; ++o)
    std::memcpy(out.data() + o * chunk, a.data() + (o * n + start) * inner, chunk * sizeof(float));
  return out;
}

void slice_add(Tensor& out, const Tensor& g, int64_t dim, int64_t start) {
  dim = wrap_dim(dim, out.dim(), "slice_add_");
  const int64_t n = out.shape()[dim], len = g.dim() == out.dim() ? g.shape()[dim] : -1;
  check(len >= 0 && start >= 0 && start + len <= n, "slice_add_",
        "gradient " + shape_str(g.shape()) + " at " + std::to_string(start) + " does not fit " +
            shape_str(out.shape()));
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= out.shape()[d];
  for (int64_t d = dim + 1; d < out.dim(); ++d) inner *= out.shape()[d];
  for (int64_t o = 0; o < outer; ++o) {
    float* dst = out.data() + (o * n + start) * inner;
    const float* src = g.data() + o * len * inner;
    for (int64_t i = 0; i < len * inner; ++i) dst[i] += src[i];
  }
}

Tensor index_select(const Tensor& a, const std::vector<int64_t>& idx) {
  check(a.dim() >= 1, "index_select", "needs rank >= 1, got " + shape_str(a.shape()));
  const int64_t rows = a.shape()[0], row = rows ? a.numel() / rows : 0;
  Shape os = a.shape();
  os[0] = static_cast<int64_t>(idx.size());
  Tensor out = Tensor::empty(os);
  for (int64_t i : idx)
    check(i >= 0 && i < rows, "index_select",
          "index " + std::to_string(i) + " out of range for " + shape_str(a.shape()));
  parallel_for(static_cast<int64_t>(idx.size()), std::max<int64_t>(1, 16384 / std::max<int64_t>(row, 1)),
               [&](int64_t b, int64_t e) {
                 for (int64_t i = b; i < e; ++i)
                   std::memcpy(out.data() + i * row, a.data() + idx[i] * row, row * sizeof(float));
               });
  return out;
}

void index_add(Tensor& out, const std::vector<int64_t>& idx, const Tensor& g) {
  const int64_t rows = out.shape()[0], row = rows ? out.numel() / rows : 0;
  check(g.numel() == static_cast<int64_t>(idx.size()) * row, "index_add_",
        "gradient " + shape_str(g.shape()) + " does not match " + std::to_string(idx.size()) +
            " rows of " + shape_str(out.shape()));
  // Sequential: repeated indices add in a fixed order.
  for (size_t i = 0; i < idx.size(); ++i) {
    check(idx[i] >= 0 && idx[i] < rows, "index_add_", "index out of range");
    float* dst = out.data() + idx[i] * row;
    const float* src = g.data() + i * row;
    for (int64_t j = 0; j < row; ++j) dst[j] += src[j];
  }
}

}  // namespace normad::cpu
