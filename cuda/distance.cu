// normad CUDA pairwise squared distances and L2 row normalisation: kernels, launchers, version
// switches and the table entries of cuda/distance.h (bodies, HD helpers and the version list in
// cuda/distance.cuh).
// Shapes: a [M, D], b [N, D] -> dist [M, N]; x, y, dout [M, D].
// Math: dist_ij = |a_i - b_j|^2 (v1, v2 direct; v3 |a_i|^2 + |b_j|^2 - 2 a_i.b_j clamped at 0);
// backward da = 2 (rowsum(G) a - G b), db = 2 (colsum(G) b - G^T a); y = x / max(|x|, eps).
// Versions: pairwise_sqdist v1 thread per output (double), v2 64 x 64 shared-memory tiles with
// 4 x 4 register micro-tiles (float), v3 cuBLAS GEMM form (the yardstick); backward v1 thread per
// gradient element, v2 mask + sums + two sgemms + one body; l2_normalize v1 thread per row, v2
// warp per row. The auto picks are unmeasured guesses (no GPU has run these kernels yet).
// Tested by tests/test_cuda_distance.cpp ([cuda_body] on the host; [cuda] every version on a GPU)
// and tests/test_backend_ops.cpp on a GPU.
#include "cuda/distance.h"

#include <atomic>
#include <climits>
#include <string>

#include "cuda/check.h"
#include "cuda/device.h"
#include "cuda/distance.cuh"
#include "cuda/matmul.h"
#include "cuda/reduce.cuh"

namespace normad::cuda {

void launch(int64_t n, const SqdistBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const RowSqnormBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const SqdistEpilogueBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const SqdistGradBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const MaskGradBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const ScaleSubBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const L2NormalizeBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const L2NormalizeBackwardBody& body) { launch_for_each(n, body); }

namespace {

// ---- version knobs ----

std::atomic<int> sqdist_version{0}, sqdist_backward_version{0}, l2_version{0};

// The version to run: the knob when set, else `auto_pick`; throws for one out of [1, count].
int version_of(const std::atomic<int>& knob, int auto_pick, int count, const char* family) {
  const int v = knob.load() ? knob.load() : auto_pick;
  if (v < 1 || v > count)
    throw Error(std::string("cuda ") + family + ": no version " + std::to_string(v) + " (1 to " +
                std::to_string(count) + ", 0 = auto)");
  return v;
}

Tensor gpu_empty(const Shape& s) { return Tensor::empty(s, Device::CUDA); }
float* ptr(const Tensor& t) { return t.device_data(); }

// ---- pairwise_sqdist v2: the tiled kernel (steps in cuda/distance.cuh) ----

// Block (bx, by) computes outputs [64 by, 64 by + 64) x [64 bx, 64 bx + 64) of out [M, N].
__global__ void __launch_bounds__(kTileThreads)
    sqdist_tiled_kernel(float* out, const float* a, const float* b, int64_t M, int64_t N, int64_t D) {
  __shared__ float as[kTileK][kTilePad];
  __shared__ float bs[kTileK][kTilePad];
  const int tid = threadIdx.x, ty = tid / 16, tx = tid % 16;
  const int64_t row0 = int64_t(blockIdx.y) * kTile, col0 = int64_t(blockIdx.x) * kTile;
  float acc[kMicro][kMicro] = {};
  // walk D in K-steps of 16: stage both slices, then every thread adds its 4 x 4 squares
  for (int64_t k0 = 0; k0 < D; k0 += kTileK) {
    sqdist_load_tile(as, a, M, D, row0, k0, tid);
    sqdist_load_tile(bs, b, N, D, col0, k0, tid);
    __syncthreads();
    sqdist_tile_step(acc, as, bs, ty, tx);
    __syncthreads();  // the next K-step overwrites the tiles
  }
  sqdist_tile_store(out, acc, M, N, row0, col0, ty, tx);
}

void sqdist_tiled(float* out, const float* a, const float* b, int64_t M, int64_t N, int64_t D) {
  const int64_t gx = (N + kTile - 1) / kTile, gy = (M + kTile - 1) / kTile;
  // the grid's y extent is at most 65535 blocks: M up to about 4.2 million rows
  check(gy <= 65535 && gx <= INT_MAX, "pairwise_sqdist", "v2 grid too large for M " + std::to_string(M) + ", N " + std::to_string(N));
  sqdist_tiled_kernel<<<dim3(unsigned(gx), unsigned(gy)), kTileThreads, 0, stream()>>>(out, a, b, M, N, D);
  NORMAD_CUDA_CHECK_LAUNCH();
}

// ---- pairwise_sqdist v3: the GEMM form ----

Tensor sqdist_gemm(const Tensor& a, const Tensor& b) {
  const int64_t M = a.size(0), N = b.size(0), D = a.size(1);
  // 1) a b^T through cuBLAS (zeros when D = 0)
  Tensor d = matmul(a, b, false, true);
  if (M * N == 0) return d;
  // 2) both row-norm vectors in double, in one scratch block: |a_i|^2 then |b_j|^2
  Scratch norms(sizeof(double) * (M + N));
  double* na = static_cast<double*>(norms.get());
  launch(M, RowSqnormBody{na, ptr(a), D});
  launch(N, RowSqnormBody{na + M, ptr(b), D});
  // 3) the epilogue adds the norms and clamps, in place
  launch(M * N, SqdistEpilogueBody{ptr(d), na, na + M, N});
  return d;
}

// ---- pairwise_sqdist_backward v2: one gradient from cuBLAS ----

// 2 (s x - op(G) y) with s the sums of G along the other side: da (trans false: rowsum(G), G b,
// x = a, y = b) or db (trans true: colsum(G), G^T a, x = b, y = a). G [M, N].
Tensor grad_by_gemm(const Tensor& G, const Tensor& x, const Tensor& y, bool trans) {
  const int64_t M = G.size(0), N = G.size(1), P = x.size(0), D = x.size(1);
  Tensor s = gpu_empty({P});
  if (trans) sum_dim(0, ptr(s), ptr(G), 1, M, N);  // colsum: [1, M, N] over M
  else sum_dim(0, ptr(s), ptr(G), M, N, 1);        // rowsum: [M, N, 1] over N
  Tensor gx = matmul(G, y, trans, false);           // [P, D]
  launch(P * D, ScaleSubBody{ptr(gx), ptr(s), ptr(x), D});
  return gx;
}

// ---- l2_normalize v2: one warp per row ----

// The sum of a warp's 32 values, on every lane: butterfly v += v(lane xor m) for m = 16 .. 1 (the
// order butterfly_sum_host models).
__device__ inline double warp_sum(double v) {
  for (int m = 16; m > 0; m >>= 1) v += __shfl_xor_sync(0xffffffffu, v, m);
  return v;
}

// Warp w of the grid handles rows w, w + warps, ...; every lane of a warp has the same row, so the
// shuffles see the whole warp.
__global__ void l2_normalize_warp_kernel(float* y, const float* x, int64_t M, int64_t D, float eps) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = int64_t(gridDim.x) * blockDim.x / 32;
  for (int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32; i < M; i += warps) {
    const float* xi = x + i * D;
    const float inv = l2_inv_norm(warp_sum(strided_dot(xi, xi, D, lane, 32)), eps);
    for (int64_t k = lane; k < D; k += 32) y[i * D + k] = xi[k] * inv;
  }
}

__global__ void l2_normalize_backward_warp_kernel(float* dx, const float* dout, const float* x, const float* y,
                                                  int64_t M, int64_t D, float eps) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = int64_t(gridDim.x) * blockDim.x / 32;
  for (int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32; i < M; i += warps) {
    const int64_t o = i * D;
    // |x_i| and g_i . y_i, each a fixed-order warp sum of lane partials
    const double norm = ::sqrt(warp_sum(strided_dot(x + o, x + o, D, lane, 32)));
    const double gy = warp_sum(strided_dot(dout + o, y + o, D, lane, 32));
    for (int64_t k = lane; k < D; k += 32) dx[o + k] = l2_backward_value(dout[o + k], y[o + k], gy, norm, eps);
  }
}

int l2_auto(int64_t D) {
  // guess: below a warp's width most lanes of v2 would idle
  return D >= 32 ? 2 : 1;
}

}  // namespace

// ---- the knobs ----

void set_pairwise_sqdist_version(int v) { sqdist_version = v; }
int pairwise_sqdist_version_count() { return 3; }
void set_pairwise_sqdist_backward_version(int v) { sqdist_backward_version = v; }
int pairwise_sqdist_backward_version_count() { return 2; }
void set_l2_normalize_version(int v) { l2_version = v; }
int l2_normalize_version_count() { return 2; }

// ---- table entries ----

Tensor pairwise_sqdist(const Tensor& a, const Tensor& b) {
  const int64_t M = a.size(0), N = b.size(0), D = a.size(1);
  // auto: v2, an unmeasured guess (direct sums, no cancellation; v3 is the speed yardstick)
  const int v = version_of(sqdist_version, 2, pairwise_sqdist_version_count(), "pairwise_sqdist");
  if (v == 3) return sqdist_gemm(a, b);
  Tensor out = gpu_empty({M, N});
  if (M * N == 0) return out;
  if (v == 1) launch(M * N, SqdistBody{ptr(out), ptr(a), ptr(b), N, D});
  else sqdist_tiled(ptr(out), ptr(a), ptr(b), M, N, D);
  return out;
}

void pairwise_sqdist_backward(const Tensor& dout, const Tensor& a, const Tensor& b, const Tensor& dist,
                              Tensor* da, Tensor* db) {
  const int64_t M = a.size(0), N = b.size(0), D = a.size(1);
  // auto: v2 (cuBLAS), an unmeasured guess
  const int v = version_of(sqdist_backward_version, 2, pairwise_sqdist_backward_version_count(),
                           "pairwise_sqdist_backward");
  if (v == 1) {
    // da: p = i over q = j, G(i, j) at i N + j; db: p = j over q = i, G at i N + j = j + i N
    if (da) {
      Tensor g = gpu_empty(a.shape());
      launch(M * D, SqdistGradBody{ptr(g), ptr(dout), ptr(dist), ptr(a), ptr(b), N, D, N, 1});
      *da = g;
    }
    if (db) {
      Tensor g = gpu_empty(b.shape());
      launch(N * D, SqdistGradBody{ptr(g), ptr(dout), ptr(dist), ptr(b), ptr(a), M, D, 1, N});
      *db = g;
    }
    return;
  }
  // v2: G once, then each requested gradient from its sums and one sgemm
  Tensor G = gpu_empty({M, N});
  launch(M * N, MaskGradBody{ptr(G), ptr(dout), ptr(dist)});
  if (da) *da = grad_by_gemm(G, a, b, false);
  if (db) *db = grad_by_gemm(G, b, a, true);
}

Tensor l2_normalize(const Tensor& x, float eps) {
  const int64_t M = x.size(0), D = x.size(1);
  Tensor y = gpu_empty(x.shape());
  if (M * D == 0) return y;
  if (version_of(l2_version, l2_auto(D), l2_normalize_version_count(), "l2_normalize") == 1) {
    launch(M, L2NormalizeBody{ptr(y), ptr(x), D, eps});
  } else {
    l2_normalize_warp_kernel<<<blocks_for(M * 32), kThreads, 0, stream()>>>(ptr(y), ptr(x), M, D, eps);
    NORMAD_CUDA_CHECK_LAUNCH();
  }
  return y;
}

Tensor l2_normalize_backward(const Tensor& dout, const Tensor& x, const Tensor& y, float eps) {
  const int64_t M = x.size(0), D = x.size(1);
  Tensor dx = gpu_empty(x.shape());
  if (M * D == 0) return dx;
  if (version_of(l2_version, l2_auto(D), l2_normalize_version_count(), "l2_normalize_backward") == 1) {
    launch(M, L2NormalizeBackwardBody{ptr(dx), ptr(dout), ptr(x), ptr(y), D, eps});
  } else {
    l2_normalize_backward_warp_kernel<<<blocks_for(M * 32), kThreads, 0, stream()>>>(ptr(dx), ptr(dout), ptr(x),
                                                                                     ptr(y), M, D, eps);
    NORMAD_CUDA_CHECK_LAUNCH();
  }
  return dx;
}

}  // namespace normad::cuda
