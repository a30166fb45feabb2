// normad CUDA batch normalisation: the v2 kernels, the launchers of cuda/batchnorm.cuh (bodies, math
// and the version list there) and the table entries of cuda/batchnorm.h.
// Versions: v1 bodies (statistics per (g, c) thread, then per element); v2 one block per (g, c)
// with per-thread Welford states merged by cuda/block_tree.cuh's fixed tree, normalising in the same
// block. Deterministic: every (g, c) has one fixed order of operations, no atomics. The auto pick
// and v2's block sizes are guesses: compiled, not run on a GPU. Unmeasured candidate v3: split a
// long (g, c) over several blocks (few channels, long M leave SMs idle) with a second-stage merge.
// Tested by tests/test_cuda_batchnorm.cpp ([cuda_body] on the host; [cuda] on a GPU) and
// tests/test_backend_ops.cpp on a GPU.
//
// Shapes: x [N, C, S]; G groups of Q rows; M = Q*S values per (g, c); gc = g*C + c.
#include "cuda/batchnorm.cuh"

#include <string>

#include "cuda/batchnorm.h"
#include "cuda/block_tree.cuh"
#include "tensor/tensor.h"

namespace normad::cuda {

void launch(int64_t n, const BnStatsBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const BnNormalizeBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const BnRunningBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const BnBackwardSumsBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const BnBackwardDxBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const BnParamGradBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const BnEvalBody& body) { launch_for_each(n, body); }
void launch(int64_t n, const BnFoldBody& body) { launch_for_each(n, body); }

int bn_default_version(int64_t group_channels, int64_t M) {
  // v1's statistics use one thread per (g, c): fine for short groups (ACR's [960, 64] in 32 groups:
  // 30 values each), idle GPU for long ones ([120, 64, 14, 14]: 64 threads over 23520 values).
  (void)group_channels;
  return M >= 1024 ? 2 : 1;
}

// ---- v2 kernels --------------------------------------------------------------------------------

// One block per (g, c): statistics and normalisation of its M values. __launch_bounds__: the
// register count must allow bn_block_threads' largest block (1024 threads).
__global__ void __launch_bounds__(1024)
    bn_train_kernel2(float* out, BnStats st, float* saved_mean, float* saved_invstd, const float* x,
                     const float* gamma, const float* beta, BnDims d, double eps) {
  const int64_t gc = blockIdx.x, c = gc % d.C;
  const GroupSlice s = group_slice(d, gc);
  const double M = double(s.M);
  // 1. each thread's Welford state over its strided slice (coalesced along each row)
  Welford w = welford_slice(x, s, threadIdx.x, blockDim.x);
  // 2. the block's state, by the fixed tree, in every thread
  w = block_tree(w, WelfordMerge{});
  if (threadIdx.x == 0) bn_store_stats(st, saved_mean, saved_invstd, gc, w.mean, w.m2, M, eps);
  // 3. normalise the same slice (second read of x)
  const double inv = bn_invstd(w.m2, M, eps);
  s.for_each(threadIdx.x, blockDim.x, [&](int64_t o) {
    out[s.base + o] = bn_normalize_value(x[s.base + o], w.mean, inv, gamma, beta, c);
  });
}

// One block per (g, c): sum(dout) and sum(dout xhat), stored for dgamma/dbeta, then dx.
__global__ void __launch_bounds__(1024)
    bn_backward_kernel2(float* dx, SumPair* sums, const float* dout, const float* x, const float* gamma,
                        const float* mean, const float* invstd, BnDims d) {
  const int64_t gc = blockIdx.x, c = gc % d.C;
  const GroupSlice s = group_slice(d, gc);
  const double mu = mean[gc], inv = invstd[gc], ga = gamma ? double(gamma[c]) : 1.0;
  // 1. each thread's two partial sums, then the block's by the fixed tree
  SumPair p = bn_backward_slice(dout, x, mu, inv, s, threadIdx.x, blockDim.x);
  p = block_tree(p, SumPairAdd{});
  if (threadIdx.x == 0) sums[gc] = p;
  // 2. dx over the same slice
  s.for_each(threadIdx.x, blockDim.x, [&](int64_t o) {
    const int64_t i = s.base + o;
    dx[i] = bn_dx_value(dout[i], x[i], mu, inv, ga, p, double(s.M));
  });
}

// ---- table entries -----------------------------------------------------------------------------

namespace {

int g_version = 0;  // set_batch_norm_version
constexpr int kVersions = 2;

float* ptr(const Tensor& t) { return t.device_data(); }  // null for an undefined tensor

// x [N, C] or [N, C, H, W] in G groups.
BnDims bn_dims(const Tensor& x, int64_t G) {
  return {x.size(1), x.dim() == 4 ? x.size(2) * x.size(3) : 1, x.size(0) / G};
}

int pick_version(const BnDims& d, int64_t G) {
  return g_version != 0 ? g_version : bn_default_version(G * d.C, d.values());
}

// v2 runs one block per (g, c) (the callers skip C = 0: an empty grid is a launch error).
unsigned bn_blocks(int64_t group_channels) { return static_cast<unsigned>(group_channels); }

}  // namespace

Tensor batch_norm_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps, int64_t groups,
                        BatchNormSaved* saved, Tensor* running_mean, Tensor* running_var, float momentum) {
  const BnDims d = bn_dims(x, groups);
  const int64_t GC = groups * d.C;
  Tensor out = Tensor::empty(x.shape(), Device::CUDA);
  Tensor mean = Tensor::empty({groups, d.C}, Device::CUDA), invstd = Tensor::empty({groups, d.C}, Device::CUDA);
  // double statistics per (g, c): mu, inv, unbiased variance
  Scratch scratch(3 * sizeof(double) * GC);
  double* sd = static_cast<double*>(scratch.get());
  const BnStats st{sd, sd + GC, sd + 2 * GC};
  if (pick_version(d, groups) == 1) {
    launch(GC, BnStatsBody{st, ptr(mean), ptr(invstd), ptr(x), d, double(eps)});
    launch(x.numel(), BnNormalizeBody{ptr(out), ptr(x), ptr(gamma), ptr(beta), st.mu, st.inv, d});
  } else if (GC > 0) {
    bn_train_kernel2<<<bn_blocks(GC), bn_block_threads(d.values()), 0, stream()>>>(
        ptr(out), st, ptr(mean), ptr(invstd), ptr(x), ptr(gamma), ptr(beta), d, double(eps));
    NORMAD_CUDA_CHECK_LAUNCH();
  }
  float* rm = running_mean && running_mean->defined() ? ptr(*running_mean) : nullptr;
  float* rv = running_var && running_var->defined() ? ptr(*running_var) : nullptr;
  if (rm || rv) launch(d.C, BnRunningBody{rm, rv, st.mu, st.unbiased, groups, d.C, double(momentum)});
  if (saved) *saved = BatchNormSaved{mean, invstd};
  return out;
}

Tensor batch_norm_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                       const Tensor& running_var, float eps) {
  const BnDims d = bn_dims(x, 1);
  Tensor out = Tensor::empty(x.shape(), Device::CUDA);
  launch(x.numel(), BnEvalBody{ptr(out), ptr(x), ptr(gamma), ptr(beta), ptr(running_mean), ptr(running_var), d.C,
                               d.S, double(eps)});
  return out;
}

Tensor batch_norm_backward(const Tensor& dout, const Tensor& x, const Tensor& gamma, const BatchNormSaved& saved,
                           int64_t groups, Tensor* dgamma, Tensor* dbeta) {
  const BnDims d = bn_dims(x, groups);
  const int64_t GC = groups * d.C;
  Tensor dx = Tensor::empty(x.shape(), Device::CUDA);
  Scratch scratch(sizeof(SumPair) * GC);
  SumPair* sums = static_cast<SumPair*>(scratch.get());
  if (pick_version(d, groups) == 1) {
    launch(GC, BnBackwardSumsBody{sums, ptr(dout), ptr(x), ptr(saved.mean), ptr(saved.invstd), d});
    launch(x.numel(), BnBackwardDxBody{ptr(dx), ptr(dout), ptr(x), ptr(gamma), ptr(saved.mean),
                                       ptr(saved.invstd), sums, d});
  } else if (GC > 0) {
    bn_backward_kernel2<<<bn_blocks(GC), bn_block_threads(d.values()), 0, stream()>>>(
        ptr(dx), sums, ptr(dout), ptr(x), ptr(gamma), ptr(saved.mean), ptr(saved.invstd), d);
    NORMAD_CUDA_CHECK_LAUNCH();
  }
  // the affine parameters are shared by every group: their gradients add up in group order
  Tensor dg = Tensor::empty({d.C}, Device::CUDA), db = Tensor::empty({d.C}, Device::CUDA);
  launch(d.C, BnParamGradBody{ptr(dg), ptr(db), sums, groups, d.C});
  if (dgamma) *dgamma = dg;
  if (dbeta) *dbeta = db;
  return dx;
}

void batch_norm_fold(const Tensor& gamma, const Tensor& beta, const Tensor& bias, const Tensor& running_mean,
                     const Tensor& running_var, float eps, Tensor* scale, Tensor* shift) {
  const int64_t C = running_mean.numel();
  *scale = Tensor::empty({C}, Device::CUDA);
  *shift = Tensor::empty({C}, Device::CUDA);
  launch(C, BnFoldBody{ptr(*scale), ptr(*shift), ptr(gamma), ptr(beta), ptr(bias), ptr(running_mean),
                       ptr(running_var), double(eps)});
}

void set_batch_norm_version(int v) {
  if (v < 0 || v > kVersions)
    throw Error("cuda batch norm: no version " + std::to_string(v) + " (0 = auto, 1 or 2)");
  g_version = v;
}

int batch_norm_version_count() { return kVersions; }

}  // namespace normad::cuda
