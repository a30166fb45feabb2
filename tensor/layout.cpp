// normad layout ops: permute, transpose, flatten, concat, stack, slice, index_select and their
// scatter counterparts (see tensor/ops.h). All results are contiguous copies except flatten
// (a reshape view).
// Math: permute out[i_perm] = a[i]; concat/slice view tensors as [outer, size(dim) * inner].
// Tested by tests/test_ops.cpp and tests/test_grad.cpp.
#include <algorithm>
#include <cstring>

#include "tensor/aligned.h"
#include "tensor/cpu.h"
#include "tensor/parallel.h"

namespace normad::cpu {

namespace {
// f(o, j, m) over values [j, j + m) of block o, for `blocks` blocks of `chunk` values each, in
// parallel pieces of about 16K values: many short blocks go several to a task, one long block is
// cut into several tasks.
template <class F>
void for_each_piece(int64_t blocks, int64_t chunk, F&& f) {
  parallel_for(blocks * chunk, 16384, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1;) {
      const int64_t o = i / chunk, j = i % chunk, m = std::min(i1 - i, chunk - j);
      f(o, j, m);
      i += m;
    }
  });
}
}  // namespace

Tensor permute(const Tensor& a, const std::vector<int64_t>& perm) {
  const int64_t r = a.dim();
  const std::vector<int64_t>& p = perm;  // wrapped and checked by the dispatch
  std::vector<int64_t> in_stride(r);
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
  const Shape& s0 = ts[0].shape();
  int64_t total = 0;
  for (auto& t : ts) total += t.shape()[dim];
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= s0[d];
  for (int64_t d = dim + 1; d < ts[0].dim(); ++d) inner *= s0[d];
  Shape os = s0;
  os[dim] = total;
  Tensor out = Tensor::empty(os);
  // one block copy per (outer index, input): input t's block o lands at column offset off[t] of
  // output row o; the blocks are disjoint, so they run in parallel
  const int64_t n = static_cast<int64_t>(ts.size());
  std::vector<int64_t> off(n + 1, 0);
  for (int64_t t = 0; t < n; ++t) off[t + 1] = off[t] + ts[t].shape()[dim] * inner;
  float* y = out.data();
  // an output larger than the caches (ACR-NTL's 20 views, [4, 20, 512, 570]: 93 MB) is written with
  // streaming stores: no read of each line before it is written (one core: 8.7 -> 5.2 ms)
  const bool stream = streams_output(out.numel());
  parallel_for(outer * n, std::max<int64_t>(1, 16384 / std::max<int64_t>(off[n] / n, 1)),
               [&](int64_t b, int64_t e) {
                 for (int64_t i = b; i < e; ++i) {
                   const int64_t o = i / n, t = i % n, chunk = off[t + 1] - off[t];
                   float* dst = y + o * total * inner + off[t];
                   const float* src = ts[t].data() + o * chunk;
                   if (stream) stream_floats(dst, src, chunk, false);
                   else std::memcpy(dst, src, chunk * sizeof(float));
                 }
                 if (stream) stream_fence();
               });
  return out;
}


Tensor slice(const Tensor& a, int64_t dim, int64_t start, int64_t end) {
  const int64_t n = a.shape()[dim];  // 0 <= start <= end <= n (resolved by the dispatch)
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= a.shape()[d];
  for (int64_t d = dim + 1; d < a.dim(); ++d) inner *= a.shape()[d];
  Shape os = a.shape();
  os[dim] = end - start;
  Tensor out = Tensor::empty(os);
  // the outer blocks copied in parallel pieces of ~16K values (ACR-NTL's backward of its views' concat: 19
  // slices of [4, 20, 512, 570] into [4, 1, 512, 570], 4.7 MB each, ran on one thread)
  const int64_t chunk = (end - start) * inner;
  const float* x = a.data();
  float* y = out.data();
  for_each_piece(outer, chunk, [&](int64_t o, int64_t j, int64_t m) {
    std::memcpy(y + o * chunk + j, x + (o * n + start) * inner + j, m * sizeof(float));
  });
  return out;
}

void slice_add(Tensor& out, const Tensor& g, int64_t dim, int64_t start) {
  const int64_t n = out.shape()[dim], len = g.dim() == out.dim() ? g.shape()[dim] : -1;
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= out.shape()[d];
  for (int64_t d = dim + 1; d < out.dim(); ++d) inner *= out.shape()[d];
  const int64_t chunk = len * inner;
  float* y = out.data();
  const float* x = g.data();
  for_each_piece(outer, chunk, [&](int64_t o, int64_t j, int64_t m) {  // each value's sum is its own
    float* dst = y + (o * n + start) * inner + j;
    const float* src = x + o * chunk + j;
    for (int64_t k = 0; k < m; ++k) dst[k] += src[k];
  });
}

Tensor index_select(const Tensor& a, const std::vector<int64_t>& idx) {
  const int64_t rows = a.shape()[0], row = rows ? a.numel() / rows : 0;
  Shape os = a.shape();
  os[0] = static_cast<int64_t>(idx.size());
  Tensor out = Tensor::empty(os);
  parallel_for(static_cast<int64_t>(idx.size()), std::max<int64_t>(1, 16384 / std::max<int64_t>(row, 1)),
               [&](int64_t b, int64_t e) {
                 for (int64_t i = b; i < e; ++i)
                   std::memcpy(out.data() + i * row, a.data() + idx[i] * row, row * sizeof(float));
               });
  return out;
}

void index_add(Tensor& out, const std::vector<int64_t>& idx, const Tensor& g) {
  const int64_t rows = out.shape()[0], row = rows ? out.numel() / rows : 0;
  // Sequential: repeated indices add in a fixed order.
  for (size_t i = 0; i < idx.size(); ++i) {
    float* dst = out.data() + idx[i] * row;
    const float* src = g.data() + i * row;
    for (int64_t j = 0; j < row; ++j) dst[j] += src[j];
  }
}

}  // namespace normad::cpu
