// Op benchmarks for normad's CPU kernels: conv2d forward and backward (input, weight), batch norm
// training forward+backward (plain and grouped), linear (matmul) next to the raw Eigen GEMM yardstick,
// pairwise squared distances, and the op profiler's overhead on a tiny op (profile/off vs profile/on).
// Counters: FLOP (shown as "G/s" = GFLOP/s) or bytes ("G/s" = GB/s);
// time is wall clock in ms, since oneTBB runs the ops on several threads.
// bench/torch_ops.py times the same cases under the same names in PyTorch; bench/compare_ops.py
// prints the ratios. Thread count: oneTBB follows the CPU affinity mask, so `taskset -c 0-(T-1)`.
// Google Benchmark appends "/real_time" to every name; compare_ops.py strips it.
//
// Shapes: N batch, C in-channels, F out-channels, H, W input, OH, OW output, K kernel size,
// M, D rows and embedding width, G groups of Q rows (grouped batch norm).

// GCC 12 reports a false -Wmaybe-uninitialized inside its AVX-512 intrinsics when Eigen's GEMM is
// instantiated here (the yardstick below); it says nothing about this file.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <benchmark/benchmark.h>

#include <Eigen/Core>
#include <tbb/blocked_range.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "tensor/gemm.h"
#include "tensor/ops.h"
#include "tensor/profile.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

using namespace normad;

namespace {

using bench::set_rate;
using bench::warm_up;

// ---- the profiler's overhead (tensor/profile.h) --------------------------------------------------

void bm_profiled_add(benchmark::State& st, bool on) {
  const Tensor a = Tensor::ones({16});
  if (on) profile::start();
  for (auto _ : st) benchmark::DoNotOptimize(add(a, a));
  profile::stop();
}

// ---- conv2d ---------------------------------------------------------------------------------
struct ConvCase {
  const char* name;  // case name shared with bench/torch_ops.py
  int64_t N, C, F, H, W, K, stride, pad;
  bool bias;
};

// The Omniglot 4-block backbone (3x3, stride 2, pad 1) at the task batch (30) and at 32 tasks
// stacked (960); the Deep SVDD LeNet convs (5x5, pad 2, no bias) at batch 128; 3x3 layers of the
// backbones at batch 8 and 224 pixels: resnet18's layer1 (64 channels, 56x56) and layer3 (256,
// 14x14), wide_resnet50_2's layer3 (512, 14x14); wide_resnet50_2's 1x1 convolutions: layer1's
// 256 -> 128 and 128 -> 256 on 56x56, layer3's 1024 -> 512 on 14x14.
const std::vector<ConvCase> conv_cases = {
    {"omni1_n30", 30, 1, 64, 28, 28, 3, 2, 1, true},
    {"omni2_n30", 30, 64, 64, 14, 14, 3, 2, 1, true},
    {"omni3_n30", 30, 64, 64, 7, 7, 3, 2, 1, true},
    {"omni4_n30", 30, 64, 64, 4, 4, 3, 2, 1, true},
    {"omni1_n960", 960, 1, 64, 28, 28, 3, 2, 1, true},
    {"omni2_n960", 960, 64, 64, 14, 14, 3, 2, 1, true},
    {"omni3_n960", 960, 64, 64, 7, 7, 3, 2, 1, true},
    {"omni4_n960", 960, 64, 64, 4, 4, 3, 2, 1, true},
    {"lenet1_n128", 128, 1, 8, 28, 28, 5, 1, 2, false},
    {"lenet2_n128", 128, 8, 4, 14, 14, 5, 1, 2, false},
    {"r18l1_n8", 8, 64, 64, 56, 56, 3, 1, 1, false},
    {"r18l3_n8", 8, 256, 256, 14, 14, 3, 1, 1, false},
    {"wrnl3_n8", 8, 512, 512, 14, 14, 3, 1, 1, false},
    {"wrnpw1_n8", 8, 256, 128, 56, 56, 1, 1, 0, false},
    {"wrnpw2_n8", 8, 128, 256, 56, 56, 1, 1, 0, false},
    {"wrnpw3_n8", 8, 1024, 512, 14, 14, 1, 1, 0, false},
    {"effb4stem_n4", 4, 3, 48, 380, 380, 3, 2, 1, false},
    {"cnn4l1_n30", 30, 3, 128, 32, 32, 3, 1, 1, true},
};

Conv2dArgs conv_args(const ConvCase& c) {
  Conv2dArgs a;
  a.stride_h = a.stride_w = c.stride;
  a.pad_h = a.pad_w = c.pad;
  return a;
}
int64_t conv_out(int64_t in, const ConvCase& c) { return (in + 2 * c.pad - c.K) / c.stride + 1; }

// 2 N F OH OW C KH KW (groups = 1): one multiply-add per weight per output position. The same count
// holds for the input gradient and for the weight gradient (each is one GEMM of that size).
double conv_flops(const ConvCase& c) {
  return 2.0 * c.N * c.F * conv_out(c.H, c) * conv_out(c.W, c) * c.C * c.K * c.K;
}

void bm_conv_fwd(benchmark::State& st, ConvCase c) {
  Generator gen(1);
  Tensor x = gen.normal(Shape{c.N, c.C, c.H, c.W});
  Tensor w = gen.normal(Shape{c.F, c.C, c.K, c.K}, 0.f, 0.1f);
  Tensor b = c.bias ? gen.normal(Shape{c.F}) : Tensor();
  Conv2dArgs a = conv_args(c);
  if (!warm_up(st, [&] { conv2d(x, w, b, a); })) return;
  for (auto _ : st) {
    Tensor y = conv2d(x, w, b, a);
    benchmark::DoNotOptimize(y.data());
  }
  set_rate(st, "FLOP", conv_flops(c));
}

void bm_conv_bwd_input(benchmark::State& st, ConvCase c) {
  Generator gen(2);
  Tensor w = gen.normal(Shape{c.F, c.C, c.K, c.K}, 0.f, 0.1f);
  Tensor dout = gen.normal(Shape{c.N, c.F, conv_out(c.H, c), conv_out(c.W, c)});
  Shape x_shape{c.N, c.C, c.H, c.W};
  Conv2dArgs a = conv_args(c);
  if (!warm_up(st, [&] { conv2d_backward_input(dout, w, x_shape, a); })) return;
  for (auto _ : st) {
    Tensor dx = conv2d_backward_input(dout, w, x_shape, a);
    benchmark::DoNotOptimize(dx.data());
  }
  set_rate(st, "FLOP", conv_flops(c));
}

void bm_conv_bwd_weight(benchmark::State& st, ConvCase c) {
  Generator gen(3);
  Tensor x = gen.normal(Shape{c.N, c.C, c.H, c.W});
  Tensor dout = gen.normal(Shape{c.N, c.F, conv_out(c.H, c), conv_out(c.W, c)});
  Shape w_shape{c.F, c.C, c.K, c.K};
  Conv2dArgs a = conv_args(c);
  if (!warm_up(st, [&] { conv2d_backward_weight(dout, x, w_shape, a); })) return;
  for (auto _ : st) {
    Tensor dw = conv2d_backward_weight(dout, x, w_shape, a);
    benchmark::DoNotOptimize(dw.data());
  }
  set_rate(st, "FLOP", conv_flops(c));
}

// ---- batch norm, training mode: forward + backward in one iteration ---------------------------
struct BnCase {
  const char* name;
  Shape shape;     // [N, C] or [N, C, H, W]
  int64_t groups;  // G contiguous row groups with their own statistics (1 = plain BN)
};

const std::vector<BnCase> bn_cases = {
    {"n960_c64_14x14", {960, 64, 14, 14}, 1},  // Omniglot block 1 output at 32 tasks x 30
    {"n4096_c512", {4096, 512}, 1},            // a wide BatchNorm1d
    {"g32x30_c64", {960, 64}, 32},             // ACR grouped BN: 32 tasks of 30 rows each
};

// Bytes moved, approximately: 8 passes over numel floats. Forward reads x twice (statistics, then
// normalise) and writes y; backward reads dout and x twice (the two sums, then dx) and writes dx.
// The [G, C] statistics and [C] parameters are negligible and not counted.
double bn_bytes(const Shape& s) { return 8.0 * sizeof(float) * shape_numel(s); }

// A batch norm's inputs for case c: x, the gradient dout, gamma and beta.
struct BnInputs {
  Tensor x, dout, gamma, beta;
  explicit BnInputs(const BnCase& c) {
    Generator gen(4);
    x = gen.normal(c.shape, 0.5f, 2.f);
    dout = gen.normal(c.shape);
    gamma = gen.uniform(Shape{c.shape[1]}, 0.5f, 1.5f);
    beta = gen.normal(Shape{c.shape[1]});
  }
};

void bm_bn_train(benchmark::State& st, BnCase c) {
  const BnInputs in(c);
  const Tensor &x = in.x, &dout = in.dout, &gamma = in.gamma, &beta = in.beta;
  auto step = [&] {
    BatchNormSaved saved;
    Tensor dgamma, dbeta;
    Tensor y = batch_norm_train(x, gamma, beta, 1e-5f, c.groups, &saved);
    Tensor dx = batch_norm_backward(dout, x, gamma, saved, c.groups, &dgamma, &dbeta);
    benchmark::DoNotOptimize(y.data());
    benchmark::DoNotOptimize(dx.data());
  };
  if (!warm_up(st, step)) return;
  for (auto _ : st) step();
  set_rate(st, "bytes", bn_bytes(c.shape));
}

// Batch norm then ReLU, forward and backward, as the fused op or as the four ops it replaces
// (tinygrad's check of a fused path against the composed one, here for speed). "bytes" counts
// the composed ops' passes over numel floats: 8 of the batch norm, 2 of the ReLU, 3 of its
// backward; the fused op makes 8 of those 13 (x read twice, y written; dout and x read twice, dx
// written).
void bm_bn_relu(benchmark::State& st, BnCase c, bool fused) {
  const BnInputs in(c);
  const Tensor &x = in.x, &dout = in.dout, &gamma = in.gamma, &beta = in.beta;
  auto step = [&] {
    BatchNormSaved saved;
    Tensor dgamma, dbeta, y, dx;
    if (fused) {
      y = batch_norm_relu_train(x, gamma, beta, 1e-5f, c.groups, 0.f, &saved);
      dx = batch_norm_relu_backward(dout, x, gamma, beta, saved, c.groups, 0.f, &dgamma, &dbeta);
    } else {
      y = relu(batch_norm_train(x, gamma, beta, 1e-5f, c.groups, &saved));
      dx = batch_norm_backward(leaky_relu_backward(dout, y, 0.f), x, gamma, saved, c.groups, &dgamma, &dbeta);
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::DoNotOptimize(dx.data());
  };
  if (!warm_up(st, step)) return;
  for (auto _ : st) step();
  set_rate(st, "bytes", 13.0 * sizeof(float) * shape_numel(c.shape));
}

// ---- linear forward and the GEMM yardstick ---------------------------------------------------
// x [N, K] times w [F, K]^T -> [N, F]: 2 N K F FLOPs.
constexpr int64_t lin_N = 4096, lin_K = 512, lin_F = 512;
constexpr double lin_flops = 2.0 * lin_N * lin_K * lin_F;

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MapC = Eigen::Map<const RowMat>;
using Map = Eigen::Map<RowMat>;

void bm_linear_fwd(benchmark::State& st) {
  Generator gen(5);
  Tensor x = gen.normal(Shape{lin_N, lin_K});
  Tensor w = gen.normal(Shape{lin_F, lin_K}, 0.f, 0.05f);
  if (!warm_up(st, [&] { matmul(x, w, false, true); })) return;
  for (auto _ : st) {
    Tensor y = matmul(x, w, false, true);
    benchmark::DoNotOptimize(y.data());
  }
  set_rate(st, "FLOP", lin_flops);
}

// A Linear layer's weight gradient over a large batch, dW [128, 570] = dY^T [128, 40960] X [40960, 570]
// (ACR-NTL's encoder: 4 tasks x 20 views x 512 rows): a deep product with a small result, which
// gemm() splits by depth.
void bm_linear_weight_grad(benchmark::State& st) {
  Generator gen(6);
  Tensor dy = gen.normal(Shape{40960, 128}), x = gen.normal(Shape{40960, 570});
  if (!warm_up(st, [&] { matmul(dy, x, true, false); })) return;
  for (auto _ : st) {
    Tensor dw = matmul(dy, x, true, false);
    benchmark::DoNotOptimize(dw.data());
  }
  set_rate(st, "FLOP", 2.0 * 40960 * 128 * 570);
}

// Raw Eigen on one thread (normad builds with EIGEN_DONT_PARALLELIZE): the per-core upper bound.
// The output is allocated each iteration, as normad's matmul must.
void bm_gemm_eigen_1t(benchmark::State& st) {
  Generator gen(5);
  Tensor x = gen.normal(Shape{lin_N, lin_K});
  Tensor w = gen.normal(Shape{lin_F, lin_K}, 0.f, 0.05f);
  MapC X(x.data(), lin_N, lin_K), Wt(w.data(), lin_F, lin_K);
  for (auto _ : st) {
    Tensor y({lin_N, lin_F});
    Map(y.data(), lin_N, lin_F).noalias() = X * Wt.transpose();
    benchmark::DoNotOptimize(y.data());
  }
  set_rate(st, "FLOP", lin_flops);
}

// Raw Eigen with the rows of x split over oneTBB threads in blocks of 256 rows: the multi-core
// yardstick for any matmul that parallelises over rows.
void bm_gemm_eigen_tbb(benchmark::State& st) {
  Generator gen(5);
  Tensor x = gen.normal(Shape{lin_N, lin_K});
  Tensor w = gen.normal(Shape{lin_F, lin_K}, 0.f, 0.05f);
  MapC X(x.data(), lin_N, lin_K), Wt(w.data(), lin_F, lin_K);
  for (auto _ : st) {
    Tensor y({lin_N, lin_F});
    Map Y(y.data(), lin_N, lin_F);
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, lin_N, 256),
                      [&](const tbb::blocked_range<int64_t>& r) {
                        const int64_t rows = r.end() - r.begin();
                        Y.middleRows(r.begin(), rows).noalias() =
                            X.middleRows(r.begin(), rows) * Wt.transpose();
                      });
    benchmark::DoNotOptimize(y.data());
  }
  set_rate(st, "FLOP", lin_flops);
}

// ---- the GEMM engine on the products of normad's models ---------------------------------------
// cpu::gemm (the engine NORMAD_GEMM or the automatic rule picks, tensor/gemm.h) into a preallocated
// C, for side-by-side runs of the engines: `NORMAD_GEMM=native|eigen|openblas normad_bench
// --benchmark_filter=^gemm/`. Shapes: ACR-NTL's Linear layers (570 -> 128 -> 128 -> 32 on 40960
// rows, the 19 transformations' 570 -> 128 -> 570 on 2048), forward (nt: x W^T), input gradient
// (nn: dY W) and weight gradient (tn: dY^T X), and a square 1024^3.
struct GemmCase {
  const char* name;
  int64_t M, N, K;
  bool ta, tb;
};
const GemmCase gemm_cases[] = {
    {"m40960_n128_k570_nt", 40960, 128, 570, false, true},  {"m40960_n570_k128_nn", 40960, 570, 128, false, false},
    {"m128_n570_k40960_tn", 128, 570, 40960, true, false},  {"m40960_n128_k128_nn", 40960, 128, 128, false, false},
    {"m2048_n570_k128_nt", 2048, 570, 128, false, true},    {"m2048_n128_k570_nt", 2048, 128, 570, false, true},
    {"m2048_n128_k570_nn", 2048, 128, 570, false, false},   {"m570_n128_k2048_tn", 570, 128, 2048, true, false},
    {"m128_n570_k2048_tn", 128, 570, 2048, true, false},    {"m1024_n1024_k1024_nn", 1024, 1024, 1024, false, false},
};

// hot: the same operands and C every call, in L2 or L3 (gemm/); cold: each call on the next of a
// ring of operand sets (A, B, C) of >= 128 MB in all, so that every call finds them in DRAM, as a
// training step's products do (gemm_cold/: ACR-NTL's 2048-row products ran ~8% slower in the step
// than hot).
void bm_gemm(benchmark::State& st, GemmCase c, bool cold) {
  Generator gen(7);
  const double set_bytes = 4.0 * double(c.M * c.K + c.K * c.N + c.M * c.N);
  const int64_t sets = cold ? std::clamp<int64_t>(int64_t(std::ceil(128e6 / set_bytes)), 2, 256) : 1;
  std::vector<Tensor> a, b, out;
  for (int64_t s = 0; s < sets; ++s) {
    a.push_back(gen.normal(Shape{c.M * c.K}));
    b.push_back(gen.normal(Shape{c.K * c.N}));
    out.push_back(Tensor({c.M, c.N}));
  }
  int64_t next = 0;
  auto op = [&] {
    cpu::gemm(out[next].data(), a[next].data(), b[next].data(), c.M, c.N, c.K, c.ta, c.tb);
    benchmark::DoNotOptimize(out[next].data());
    next = (next + 1) % sets;
  };
  if (!warm_up(st, op)) return;
  for (auto _ : st) op();
  set_rate(st, "FLOP", 2.0 * c.M * c.N * c.K);
}

// ---- pairwise squared distances ---------------------------------------------------------------
// a [M, D], b [M, D] -> [M, M]; counted as the GEMM part only: 2 M M D FLOPs.
constexpr int64_t pd_M = 4096, pd_D = 512;

void bm_pairwise_sqdist(benchmark::State& st) {
  Generator gen(6);
  Tensor a = gen.normal(Shape{pd_M, pd_D});
  Tensor b = gen.normal(Shape{pd_M, pd_D});
  if (!warm_up(st, [&] { pairwise_sqdist(a, b); })) return;
  for (auto _ : st) {
    Tensor d = pairwise_sqdist(a, b);
    benchmark::DoNotOptimize(d.data());
  }
  set_rate(st, "FLOP", 2.0 * pd_M * pd_M * pd_D);
}

// Registers every case under "<op>/<case>" (the names bench/torch_ops.py uses), wall-clock timed in ms.
int register_all() {
  auto reg = [](const std::string& name, auto fn) {
    benchmark::RegisterBenchmark(name.c_str(), fn)->Unit(benchmark::kMillisecond)->UseRealTime();
  };
  for (const ConvCase& c : conv_cases) {
    reg(std::string("conv_fwd/") + c.name, [c](benchmark::State& st) { bm_conv_fwd(st, c); });
    reg(std::string("conv_bwd_input/") + c.name,
        [c](benchmark::State& st) { bm_conv_bwd_input(st, c); });
    reg(std::string("conv_bwd_weight/") + c.name,
        [c](benchmark::State& st) { bm_conv_bwd_weight(st, c); });
  }
  for (const BnCase& c : bn_cases)
    reg(std::string("bn_train_fwd_bwd/") + c.name, [c](benchmark::State& st) { bm_bn_train(st, c); });
  for (bool fused : {true, false}) {  // the Omniglot net's first block in an ACR step
    const BnCase c{"g32x30_c64_14x14", {960, 64, 14, 14}, 32};
    reg(std::string("bn_relu_fwd_bwd/") + c.name + (fused ? "/fused" : "/composed"),
        [c, fused](benchmark::State& st) { bm_bn_relu(st, c, fused); });
  }
  reg("linear_fwd/n4096_k512_f512", bm_linear_fwd);
  reg("linear_weight_grad/n40960_k570_f128", bm_linear_weight_grad);
  reg("gemm_eigen_1t/n4096_k512_f512", bm_gemm_eigen_1t);
  reg("gemm_eigen_tbb/n4096_k512_f512", bm_gemm_eigen_tbb);
  reg("pairwise_sqdist/m4096_n4096_d512", bm_pairwise_sqdist);
  for (const GemmCase& c : gemm_cases)
    reg(std::string("gemm/") + c.name, [c](benchmark::State& st) { bm_gemm(st, c, false); });
  for (const GemmCase& c : gemm_cases)
    reg(std::string("gemm_cold/") + c.name, [c](benchmark::State& st) { bm_gemm(st, c, true); });
  // The profiler's cost on the smallest op: off must match a build without it (one atomic load per
  // call); on adds an event (a clock read, the shapes as text, a mutex).
  reg("profile/off/add_16", [](benchmark::State& st) { bm_profiled_add(st, false); });
  reg("profile/on/add_16", [](benchmark::State& st) { bm_profiled_add(st, true); });

  // Shown in the header of the console output and in the JSON "context".
  benchmark::AddCustomContext(
      "tbb_threads", std::to_string(tbb::global_control::active_value(
                         tbb::global_control::max_allowed_parallelism)));
  benchmark::AddCustomContext("eigen_simd", Eigen::SimdInstructionSetsInUse());
  return 0;
}
const int registered = register_all();

}  // namespace
