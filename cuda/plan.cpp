// normad CUDA launch plans (see cuda/plan.h): strides, dim merging, index_add grouping.
// Math: see cuda/plan.h. Tested by tests/test_cuda.cpp ([cuda_body]).
#include "cuda/plan.h"

#include <algorithm>
#include <numeric>
#include <string>

#include "tensor/broadcast.h"

namespace normad::cuda {

StridedIndex strided_index(const Shape& out, const std::vector<int64_t>& sa,
                           const std::vector<int64_t>& sb, const char* what) {
  // size-1 dims dropped, neighbours merged where both operands step through them as one
  const MergedDims m = merge_dims(out, sa, sb);
  const std::vector<int64_t>&ms = m.size, &ma = m.stride_a, &mb = m.stride_b;
  if (ms.size() > static_cast<size_t>(kMaxDims))
    throw Error(std::string(what) + ": cuda kernels take at most " + std::to_string(kMaxDims) +
                " dims after merging, got " + std::to_string(ms.size()) + " for output " + shape_str(out));
  StridedIndex idx;
  idx.rank = static_cast<int>(ms.size());
  for (int d = 0; d < idx.rank; ++d) idx.size[d] = ms[d], idx.stride_a[d] = ma[d], idx.stride_b[d] = mb[d];
  return idx;
}

StridedIndex broadcast_index(const Shape& out, const Shape& a, const Shape& b, const char* what) {
  return strided_index(out, broadcast_strides(a, out.size()), broadcast_strides(b, out.size()), what);
}

StridedIndex permute_index(const Shape& a, const std::vector<int64_t>& perm) {
  const size_t r = a.size();
  std::vector<int64_t> in_stride(r), st(r), zero(r, 0);
  Shape os(r);
  int64_t s = 1;
  for (size_t i = r; i-- > 0;) in_stride[i] = s, s *= a[i];
  for (size_t i = 0; i < r; ++i) os[i] = a[perm[i]], st[i] = in_stride[perm[i]];
  return strided_index(os, st, zero, "permute");
}

IndexAddPlan index_add_plan(const std::vector<int64_t>& idx, int64_t rows_out) {
  const int64_t n = static_cast<int64_t>(idx.size());
  for (int64_t v : idx)
    check(v >= 0 && v < rows_out, "index_add_",
          "index " + std::to_string(v) + " out of range for " + std::to_string(rows_out) + " rows");
  // Positions sorted by destination; stable, so each group stays in increasing position.
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return idx[x] < idx[y]; });
  std::vector<int64_t> dest, start;
  for (int64_t s = 0; s < n; ++s)
    if (s == 0 || idx[order[s]] != idx[order[s - 1]]) dest.push_back(idx[order[s]]), start.push_back(s);
  start.push_back(n);
  IndexAddPlan p;
  p.rows = static_cast<int64_t>(dest.size());
  p.packed = dest;
  p.packed.insert(p.packed.end(), start.begin(), start.end());
  p.packed.insert(p.packed.end(), order.begin(), order.end());
  return p;
}

}  // namespace normad::cuda
