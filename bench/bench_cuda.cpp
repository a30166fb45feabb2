// CUDA benchmarks (issue 13): every case the issue lists, on Device::CUDA, each kernel version
// beside the library yardstick where one exists (cuBLAS for the distances' GEMM form; cuDNN is
// timed by bench/compare_torch_cuda.py through PyTorch in the same run). Names: cuda/<case>/<version>
// with version "auto" (the backend's pick) or "v1", "v2", ...; counters give the achieved rate
// (GB/s of the minimum traffic, TFLOP/s of the useful flops) so the fraction of the machine's ceiling
// can be read off beside the device-to-device copy bandwidth measured in the same run
// (cuda/copy_d2d).
// Timing: each iteration issues the work on normad's stream and waits for it (cuda::synchronize), so
// a case's time includes one synchronisation (~10 us); the cases are milliseconds long.
// Without a GPU (or a build without CUDA) every case reports "SKIPPED: <reason>" as an error and
// times nothing. Run: normad_bench --benchmark_filter=cuda/ (bench/compare_torch_cuda.py does).
#include <benchmark/benchmark.h>

#include <functional>
#include <map>
#include <string>

#include "bench/bench_util.h"
#include "models/acr.h"
#include "models/acr_nets.h"
#include "models/backbones.h"
#include "models/deep_svdd.h"
#include "models/gaussian_ad.h"
#include "nn/optim.h"
#include "tensor/backend.h"
#include "tensor/ops.h"
#include "tensor/random.h"

#ifdef NORMAD_HAS_CUDA
#include "cuda/batchnorm.h"
#include "cuda/conv.h"
#include "cuda/distance.h"
#endif

using namespace normad;

namespace {

// The version knob of one kernel family (0 = auto); a no-op without CUDA.
enum class Family { none, conv, batch_norm, distance };
void set_version(Family f, int v) {
#ifdef NORMAD_HAS_CUDA
  if (f == Family::conv) cuda::set_conv_version(v);
  if (f == Family::batch_norm) cuda::set_batch_norm_version(v);
  if (f == Family::distance) cuda::set_pairwise_sqdist_version(v);
#else
  (void)f, (void)v;
#endif
}

// Times `step` (work issued on the GPU) with a wait after each, version `v` of family `f` selected
// for the duration; `setup` builds the inputs first (on the GPU). Skips without a GPU.
void time_on_gpu(benchmark::State& st, Family f, int v, const std::function<std::function<void()>()>& setup) {
  if (!device_available(Device::CUDA)) {
    st.SkipWithError(("SKIPPED: " + device_unavailable_reason(Device::CUDA)).c_str());
    return;
  }
  set_version(f, v);
  std::function<void()> step;
  const bool ok = bench::warm_up(st, [&] {
    step = setup();
    step();
    bench::wait_for(Device::CUDA);
  });
  if (ok)
    for (auto _ : st) {
      step();
      bench::wait_for(Device::CUDA);
    }
  set_version(f, 0);
}

// An input on the GPU, made once per (shape, seed) and kept for the process: the cases' set-up runs
// once per trial, and drawing hundreds of millions of normals on one host core would take longer
// than the timings. Values in [-1, 1) from an integer hash (the kernels' speed does not depend on
// them; their correctness is the tests' business).
Tensor gpu_input(const Shape& s, uint64_t seed) {
  static std::map<std::pair<Shape, uint64_t>, Tensor> cache;
  auto it = cache.find({s, seed});
  if (it != cache.end()) return it->second;
  Tensor host = Tensor::empty(s);
  float* p = host.data();
  const int64_t n = host.numel();
  for (int64_t i = 0; i < n; ++i) {
    uint64_t h = (uint64_t(i) + 1) * 0x9E3779B97F4A7C15ull ^ (seed << 32);
    h ^= h >> 29;
    p[i] = float(h & 0xFFFFFF) / float(1 << 23) - 1.f;
  }
  return cache[{s, seed}] = host.to(Device::CUDA);
}

// ---- memory bandwidth: the ceiling every memory-bound kernel is measured against ----

void bm_copy(benchmark::State& st) {
  const int64_t n = int64_t(1) << 28;  // 1 GiB of floats
  time_on_gpu(st, Family::none, 0, [n] {
    auto src = std::make_shared<Tensor>(Tensor::zeros({n}, Device::CUDA));
    auto dst = std::make_shared<Tensor>(Tensor::empty({n}, Device::CUDA));
    return [src, dst] { dst->copy_(*src); };
  });
  bench::set_rate(st, "GB/s", 2.0 * 4 * double(n) / 1e9);  // read + write
}

// ---- convolution: forward, backward-data, backward-weight ----

struct ConvCase {
  const char* name;
  Shape x, w;
  Conv2dArgs args;
};
const ConvCase kConvs[] = {
    {"omniglot28_l1", {960, 1, 28, 28}, {64, 1, 3, 3}, {2, 2, 1, 1}},
    {"omniglot28_l2", {960, 64, 14, 14}, {64, 64, 3, 3}, {2, 2, 1, 1}},
    {"omniglot105_l1", {960, 1, 105, 105}, {64, 1, 3, 3}, {2, 2, 1, 1}},
    {"omniglot105_l2", {960, 64, 53, 53}, {64, 64, 3, 3}, {2, 2, 1, 1}},
    {"lenet_5x5", {128, 1, 28, 28}, {8, 1, 5, 5}, {1, 1, 2, 2}},
    {"resnet18_conv1", {32, 3, 224, 224}, {64, 3, 7, 7}, {2, 2, 3, 3}},
    {"resnet18_layer1", {32, 64, 56, 56}, {64, 64, 3, 3}, {1, 1, 1, 1}},
    {"resnet18_layer2", {32, 128, 28, 28}, {128, 128, 3, 3}, {1, 1, 1, 1}},
    {"resnet18_layer3", {32, 256, 14, 14}, {256, 256, 3, 3}, {1, 1, 1, 1}},
    {"resnet18_layer4", {32, 512, 7, 7}, {512, 512, 3, 3}, {1, 1, 1, 1}},
    {"resnet50_1x1", {32, 256, 56, 56}, {64, 256, 1, 1}, {1, 1, 0, 0}},
    {"effnet_depthwise", {32, 144, 56, 56}, {144, 1, 3, 3}, {1, 1, 1, 1, 1, 1, 144}},
};

enum class Pass { forward, backward_input, backward_weight };

void bm_conv(benchmark::State& st, const ConvCase& c, Pass pass, int version) {
  const Shape out = conv2d_shape(c.x, c.w, c.args);
  time_on_gpu(st, Family::conv, version, [&c, pass, out] {
    const Tensor x = gpu_input(c.x, 1), w = gpu_input(c.w, 2), dout = gpu_input(out, 3);
    if (pass == Pass::forward) return std::function<void()>([=] { conv2d(x, w, Tensor(), c.args); });
    if (pass == Pass::backward_input) return std::function<void()>([=] { conv2d_backward_input(dout, w, c.x, c.args); });
    return std::function<void()>([=] { conv2d_backward_weight(dout, x, c.w, c.args); });
  });
  // useful flops: 2 per multiply-add of the direct convolution, the same for every pass
  const double flops = 2.0 * double(shape_numel(out)) * double(c.w[1] * c.w[2] * c.w[3]);
  bench::set_rate(st, "TFLOP/s", flops / 1e12);
}

// ---- batch norm, training mode: forward + backward (the grouped case is ACR's step) ----

void bm_batch_norm(benchmark::State& st, Shape s, int64_t groups, int version) {
  time_on_gpu(st, Family::batch_norm, version, [s, groups] {
    const Tensor x = gpu_input(s, 4), dout = gpu_input(s, 5);
    const Tensor gamma = Tensor::ones({s[1]}, Device::CUDA), beta = Tensor::zeros({s[1]}, Device::CUDA);
    return std::function<void()>([=] {
      BatchNormSaved saved;
      Tensor y = batch_norm_train(x, gamma, beta, 1e-5f, groups, &saved);
      Tensor dgamma, dbeta;
      batch_norm_backward(dout, x, gamma, saved, groups, &dgamma, &dbeta);
    });
  });
  // the least traffic: forward reads x and writes y, backward reads dout and x and writes dx
  bench::set_rate(st, "GB/s", 5.0 * 4 * double(shape_numel(s)) / 1e9);
}

// ---- pairwise squared distances, and the cuBLAS GEMM form as the yardstick (distance v3) ----

void bm_pairwise(benchmark::State& st, int version) {
  const int64_t M = 8192, N = 8192, D = 512;
  time_on_gpu(st, Family::distance, version, [] {
    const Tensor a = gpu_input({M, D}, 6), b = gpu_input({N, D}, 7);
    return std::function<void()>([=] { pairwise_sqdist(a, b); });
  });
  bench::set_rate(st, "TFLOP/s", 2.0 * double(M) * double(N) * double(D) / 1e12);  // as the a b^T GEMM: 2 per term
}

// ---- whole steps: ACR-DSVDD (32 tasks x 30 Omniglot images, one grouped pass), Deep SVDD LeNet ----

void bm_acr_step(benchmark::State& st) {
  time_on_gpu(st, Family::none, 0, [] {
    const int64_t T = 32, Q = 30;
    Generator g(1);
    auto model = std::make_shared<models::AcrDsvdd>(std::make_shared<models::OmniglotNet>(g), 32, g);
    model->to(Device::CUDA);
    auto opt = std::make_shared<nn::Adam>(model->parameters(), 1e-3f);
    const Tensor x = g.uniform({T * Q, 1, 28, 28}).to(Device::CUDA);
    std::vector<int> y;
    for (int64_t i = 0; i < T * Q; ++i) y.push_back(i % 2);
    return std::function<void()>([=] {
      opt->zero_grad();
      models::acr_backward(*model, x, y, T, T);
      opt->step();
    });
  });
}

void bm_dsvdd_step(benchmark::State& st) {
  time_on_gpu(st, Family::none, 0, [] {
    manual_seed(2);
    std::shared_ptr<nn::Module> net = models::lenet("mnist");
    net->to(Device::CUDA);
    auto opt = std::make_shared<nn::Adam>(net->parameters(), 1e-4f, 0.9f, 0.999f, 1e-8f, 0.5e-6f);
    Generator g(2);
    const Tensor x = g.uniform({128, 1, 28, 28}).to(Device::CUDA), c = Tensor::full({32}, 0.1f, Device::CUDA);
    return std::function<void()>([=] {
      Var diff = sub((*net)(Var(x)), Var(c));
      Var loss = mean(sum(mul(diff, diff), {1}));
      opt->zero_grad();
      loss.backward();
      opt->step();
    });
  });
}

// ---- inference: WideResNet-50-2 features (every level) of 32 images at 224 x 224 ----

void bm_wrn50_features(benchmark::State& st) {
  time_on_gpu(st, Family::none, 0, [] {
    manual_seed(3);
    std::shared_ptr<models::Backbone> net = models::make_backbone("wide_resnet50_2");
    net->to(Device::CUDA);
    net->eval();
    const Tensor x = gpu_input({32, 3, 224, 224}, 8);
    std::vector<int> levels;
    for (int l = 0; l < net->num_levels(); ++l) levels.push_back(l);
    return std::function<void()>([=] {
      NoGradGuard ng;
      net->features(x, levels);
    });
  });
  bench::set_rate(st, "images/s", 32.0);
}

// ---- Gaussian-AD scoring of 100 000 rows of 1792 features (whitening GEMM + row norms) ----

void bm_mvg_score(benchmark::State& st) {
  const int64_t n = 100000, d = 1792;
  time_on_gpu(st, Family::none, 0, [] {
    static const auto model = [] {  // fitted once (a few seconds on the host)
      models::GaussianFitter f({d});
      f.add({Generator(9).normal({4 * d, d})});
      return std::make_shared<models::GaussianAd>(f.finish());
    }();
    const Tensor x = gpu_input({n, d}, 10);
    // Each call also converts the whitening matrix to float and copies it to the GPU (12 MB; the
    // model keeps no device copy), which PyTorch's case does not pay.
    return std::function<void()>([=] { model->score({x}); });
  });
  bench::set_rate(st, "rows/s", double(n));
}

// Registers every case; the conv and BN cases once per version and once as "auto".
int register_all() {
  auto reg = [](const std::string& name, auto fn) {
    benchmark::RegisterBenchmark(name.c_str(), fn)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5);
  };
  reg("cuda/copy_d2d/1GiB", bm_copy);
  const char* pass_names[] = {"fwd", "bwd_input", "bwd_weight"};
  for (const ConvCase& c : kConvs) {
    // v1 (direct, double sums) only where it takes well under a second: it is the plain version
    const double macs = double(shape_numel(conv2d_shape(c.x, c.w, c.args))) * double(c.w[1] * c.w[2] * c.w[3]);
    for (int p = 0; p < 3; ++p)
      for (int v : {0, 1, 2})
        if (v != 1 || macs < 1e10)
          reg(std::string("cuda/conv2d_") + pass_names[p] + "/" + c.name + "/" + (v ? "v" + std::to_string(v) : "auto"),
              [&c, p, v](benchmark::State& st) { bm_conv(st, c, Pass(p), v); });
  }
  for (int v : {0, 1, 2}) {
    const std::string ver = v ? "v" + std::to_string(v) : "auto";
    reg("cuda/batch_norm_fwd_bwd/n960_c64_14x14/" + ver, [v](benchmark::State& st) { bm_batch_norm(st, {960, 64, 14, 14}, 1, v); });
    reg("cuda/batch_norm_fwd_bwd/n256_c256_56x56/" + ver, [v](benchmark::State& st) { bm_batch_norm(st, {256, 256, 56, 56}, 1, v); });
    reg("cuda/batch_norm_grouped/g32_q30_c64_14x14/" + ver, [v](benchmark::State& st) { bm_batch_norm(st, {960, 64, 14, 14}, 32, v); });
  }
  for (int v : {0, 1, 2, 3})
    reg("cuda/pairwise_sqdist/8192x8192x512/" + (v ? "v" + std::to_string(v) : std::string("auto")),
        [v](benchmark::State& st) { bm_pairwise(st, v); });
  reg("cuda/acr_dsvdd_step/omniglot_t32_q30", bm_acr_step);
  reg("cuda/dsvdd_step/lenet_mnist_n128", bm_dsvdd_step);
  reg("cuda/wrn50_2_features/n32_224", bm_wrn50_features);
  reg("cuda/mvg_score/n100000_d1792", bm_mvg_score);
  return 0;
}
const int kRegistered = register_all();

}  // namespace
