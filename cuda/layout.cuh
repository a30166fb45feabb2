// normad CUDA layout kernels: gather through strides (permute, expand), pitched row copies (concat,
// slice, slice_add), index_select and a deterministic index_add.
// Math: gather out[i] = a[ia(i)]; rows dst[r, c] (+)= src[r, c] with their own row pitches;
// index_select out[i, :] = a[idx[i], :]; index_add out[idx[i], :] += g[i, :] in increasing i.
// Versions (cuda/layout.cu): v1 one thread per output element, grid-stride, for all of them.
// index_add has no atomics: the host groups the positions of each destination row (stable, so in
// increasing i) and one thread per destination element adds its sources in that order, the CPU's
// order (tensor/layout.cpp) - duplicates in idx accumulate and results are bit-identical to it.
// Tested by tests/test_cuda.cpp ([cuda_body] on the host) and tests/test_backend_ops.cpp on a GPU.
#pragma once

#include "cuda/common.cuh"

namespace normad::cuda {

// out[i] = a[ia(i)]: permute (a's strides reordered) and expand (stride 0 along broadcast dims).
struct GatherBody {
  float* out;
  const float* a;
  StridedIndex idx;  // stride_b unused
  NORMAD_HD void operator()(int64_t i) const {
    int64_t ia, ib;
    idx.offsets(i, ia, ib);
    out[i] = a[ia];
  }
};

// rows x width elements between two pitched layouts (pitches in elements):
//   concat: src = one input, dst = out + its column offset, dst_pitch = out's row length
//   slice:  src = a + start * inner, src_pitch = size(dim) * inner
//   slice_add: the reverse of slice, with add = true
struct RowsBody {
  float* dst;
  const float* src;
  int64_t dst_pitch, src_pitch, width;
  bool add;
  NORMAD_HD void operator()(int64_t e) const {
    const int64_t r = e / width, c = e % width;
    float* d = dst + r * dst_pitch + c;
    const float s = src[r * src_pitch + c];
    *d = add ? *d + s : s;
  }
};

// out [len(idx), row] = rows idx[i] of a [R, row].
struct IndexSelectBody {
  float* out;
  const float* a;
  const int64_t* idx;  // on the device, each in [0, R)
  int64_t row;         // elements per row
  NORMAD_HD void operator()(int64_t e) const {
    const int64_t i = e / row, j = e % row;
    out[e] = a[idx[i] * row + j];
  }
};

// out[dest[u], j] += g[src[s], j] for s in [start[u], start[u + 1]), in that order, one thread per
// (u, j). Built by index_add_plan (cuda/plan.h): dest the distinct rows of idx, src the positions
// of idx grouped by row, each group ascending.
struct IndexAddBody {
  float* out;
  const float* g;
  const int64_t* dest;   // [U]
  const int64_t* start;  // [U + 1]
  const int64_t* src;    // [len(idx)]
  int64_t row;
  NORMAD_HD void operator()(int64_t e) const {
    const int64_t u = e / row, j = e % row;
    float* d = out + dest[u] * row + j;
    float acc = *d;
    for (int64_t s = start[u]; s < start[u + 1]; ++s) acc += g[src[s] * row + j];
    *d = acc;
  }
};

void launch(int64_t n, const GatherBody& body);
void launch(int64_t n, const RowsBody& body);
void launch(int64_t n, const IndexSelectBody& body);
void launch(int64_t n, const IndexAddBody& body);

}  // namespace normad::cuda
