// normad CUDA launch plans: the host-side index work behind the strided and index kernels.
// Math: broadcast strides (0 along size-1 dims), merging adjacent dims d, d+1 when
// stride[d] == stride[d+1] * size[d+1] in every operand (they then walk as one dim), and the
// grouping of index_add's positions by destination row.
// Tested by tests/test_cuda.cpp ([cuda_body]): plans are checked against plain index loops.
#pragma once

#include <cstdint>
#include <vector>

#include "cuda/common.cuh"
#include "tensor/tensor.h"

namespace normad::cuda {

// Output `out` with inputs of element strides sa and sb along its dims (same rank as out), merged
// and with size-1 dims dropped. Throws a normad::Error naming `what` when more than kMaxDims remain.
StridedIndex strided_index(const Shape& out, const std::vector<int64_t>& sa,
                           const std::vector<int64_t>& sb, const char* what);
// out = broadcast of shapes a and b (NumPy rules, out already computed).
StridedIndex broadcast_index(const Shape& out, const Shape& a, const Shape& b, const char* what);
// permute(a, perm): out dim d reads a's dim perm[d].
StridedIndex permute_index(const Shape& a, const std::vector<int64_t>& perm);

// index_add's grouping (cuda/layout.cuh IndexAddBody), packed in one array for one upload:
// [dest (U) | start (U + 1) | src (len(idx))].
struct IndexAddPlan {
  int64_t rows = 0;  // U, distinct destination rows
  std::vector<int64_t> packed;
};
// Checks every index is in [0, rows_out) (a normad::Error naming the op otherwise).
IndexAddPlan index_add_plan(const std::vector<int64_t>& idx, int64_t rows_out);

}  // namespace normad::cuda
