// normad CUDA reductions over one dim of a tensor viewed as [outer, R, inner]: sum, max with argmax,
// max's backward, logsumexp. Outputs are [outer, inner], element j = o * inner + i.
// Math: sum_k a[o, k, i] accumulated in double in increasing k, rounded once (the CPU's rule, so the
// values match it up to the last bit in nearly all cases); max keeps the first maximum by a
// sequential scan with `>` (a NaN at k = 0 stays, later NaNs are skipped: tensor/reduce.cpp);
// logsumexp = log(sum_k exp(a - m)) + m with m that max, 0 when it is infinite.
// No atomics anywhere: every output has one fixed summation order, so results are identical run
// to run.
// Versions (cuda/reduce.cu):
//   sum v1 one thread per output, sequential over R (enough outputs to fill the GPU)
//   sum v2 two passes: one thread per (output, chunk of kSumChunk along R) into double partials,
//          then one thread per output adds its partials in order (few outputs, long R)
//   max, max_backward, logsumexp v1 one thread per output (max_backward: per input element)
// Tested by tests/test_cuda.cpp ([cuda_body]: both sum versions and the others on the host against
// the CPU ops) and tests/test_backend_ops.cpp on a GPU.
#pragma once

#include <math.h>

#include "cuda/common.cuh"

namespace normad::cuda {

constexpr int64_t kSumChunk = 1024;  // R elements per v2 partial

// v1: out[j] = sum_k a[o, k, i].
struct SumBody {
  float* out;
  const float* a;
  int64_t r, inner;
  NORMAD_HD void operator()(int64_t j) const {
    const float* base = a + (j / inner) * r * inner + j % inner;
    double s = 0;
    for (int64_t k = 0; k < r; ++k) s += base[k * inner];
    out[j] = static_cast<float>(s);
  }
};

// v2 pass 1: partial[j * chunks + c] = sum of chunk c of output j's R elements.
struct SumPartialBody {
  double* partial;
  const float* a;
  int64_t r, inner, chunks;
  NORMAD_HD void operator()(int64_t e) const {
    const int64_t j = e / chunks, c = e % chunks;
    const float* base = a + (j / inner) * r * inner + j % inner;
    const int64_t k1 = (c + 1) * kSumChunk < r ? (c + 1) * kSumChunk : r;
    double s = 0;
    for (int64_t k = c * kSumChunk; k < k1; ++k) s += base[k * inner];
    partial[e] = s;
  }
};

// v2 pass 2: out[j] = the partials of j added in chunk order.
struct SumFinishBody {
  float* out;
  const double* partial;
  int64_t chunks;
  NORMAD_HD void operator()(int64_t j) const {
    double s = 0;
    for (int64_t c = 0; c < chunks; ++c) s += partial[j * chunks + c];
    out[j] = static_cast<float>(s);
  }
};

// The CPU's scan over one output's R elements: the first maximum (see the file comment).
NORMAD_HD inline float max_scan(const float* base, int64_t r, int64_t inner, int64_t* at) {
  float best = base[0];
  int64_t bi = 0;
  for (int64_t k = 1; k < r; ++k)
    if (base[k * inner] > best) best = base[k * inner], bi = k;
  *at = bi;
  return best;
}

// out[j] = max_k a[o, k, i]; argmax[j] = its k as float (argmax may be null). R >= 1.
struct MaxBody {
  float* out;
  float* argmax;
  const float* a;
  int64_t r, inner;
  NORMAD_HD void operator()(int64_t j) const {
    int64_t at;
    out[j] = max_scan(a + (j / inner) * r * inner + j % inner, r, inner, &at);
    if (argmax) argmax[j] = static_cast<float>(at);
  }
};

// dx [outer, R, inner]: dout[j] where k is argmax[j], 0 elsewhere (every element written once).
struct MaxBackwardBody {
  float* dx;
  const float* dout;
  const float* argmax;
  int64_t r, inner;
  NORMAD_HD void operator()(int64_t e) const {
    const int64_t i = e % inner, k = (e / inner) % r, o = e / (inner * r);
    const int64_t j = o * inner + i;
    dx[e] = argmax[j] == static_cast<float>(k) ? dout[j] : 0.f;  // exact below 2^24
  }
};

// out[j] = log(sum_k exp(a[o, k, i] - m)) + m, m the max (0 when infinite: an all -inf row gives
// -inf, not NaN from -inf - -inf); exp in float, the sum in double, rounded before the log (CPU).
struct LogsumexpBody {
  float* out;
  const float* a;
  int64_t r, inner;
  NORMAD_HD void operator()(int64_t j) const {
    const float* base = a + (j / inner) * r * inner + j % inner;
    int64_t at;
    float m = max_scan(base, r, inner, &at);
    if (isinf(m)) m = 0.f;
    double s = 0;
    for (int64_t k = 0; k < r; ++k) s += expf(base[k * inner] - m);
    out[j] = logf(static_cast<float>(s)) + m;
  }
};

void launch(int64_t n, const SumBody& body);
void launch(int64_t n, const SumPartialBody& body);
void launch(int64_t n, const SumFinishBody& body);
void launch(int64_t n, const MaxBody& body);
void launch(int64_t n, const MaxBackwardBody& body);
void launch(int64_t n, const LogsumexpBody& body);

// Sums dim R of a [outer, R, inner] into out [outer, inner] with `version` (1 or 2; 0 picks by
// shape: v2 for few outputs and long R). Scratch for v2 comes from the CUDA allocator's cache.
void sum_dim(int version, float* out, const float* a, int64_t outer, int64_t r, int64_t inner);
int sum_default_version(int64_t outputs, int64_t r);

}  // namespace normad::cuda
