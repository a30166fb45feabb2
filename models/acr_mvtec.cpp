// ACR on MVTec AD (see models/acr_mvtec.h, acr.md §11). Tested by tests/test_acr_mvtec.cpp.
#include "models/acr_mvtec.h"

#include <sys/stat.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "data/tasks.h"
#include "models/acr.h"
#include "models/acr_nets.h"
#include "models/data_parallel.h"
#include "models/anomaly_maps.h"
#include "models/zeroshot.h"
#include "nn/optim.h"
#include "nn/safetensors.h"
#include "tensor/backend.h"

namespace normad::models {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Independent random streams per (seed, category, purpose): splitmix64 over the seed, an FNV-1a
// hash of the category's name and the purpose, so each class's draws are its own.
enum Stream : uint64_t { kInit = 1, kTasks = 2, kTestNoise = 3 };
uint64_t stream_seed(uint64_t seed, const std::string& category, uint64_t purpose) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : category) h = (h ^ ch) * 1099511628211ull;
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + h * 0xBF58476D1CE4E5B9ull + purpose;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// What the cached features depend on, one "key=value" line each: a file made from anything else
// is not reused. kFeaturePipelineVersion changes whenever normad's image decoding, resizing or
// backbone code changes what a feature is (a cache made by older code is then not reused).
constexpr int kFeaturePipelineVersion = 1;
std::string cache_identity(const FeatureExtractor& fx, const std::vector<data::ImageItem>& items) {
  const FeatureSpec& s = fx.spec();
  std::string id = "normad patch features, pipeline version " + std::to_string(kFeaturePipelineVersion) +
                   "\nbackbone=" + s.backbone + "\nweights_sha256=" + s.weights_sha256 +
                   "\nlevel=" + std::to_string(s.levels.at(0)) + "\nsize=" + std::to_string(s.prep.size) +
                   "\ncrop=" + std::to_string(s.prep.crop) + "\nfilter=" + s.prep.filter +
                   "\nshorter_side=" + std::to_string(s.prep.shorter_side) + "\nbatch=" + std::to_string(s.batch) +
                   "\ndevice=" + device_name(s.device) + "\ngemm=" + cpu_gemm_engine() +
                   "\ntf32=" + std::to_string(allow_tf32()) + "\n";
  for (const auto& item : items) {
    struct stat st {};
    check(::stat(item.path.c_str(), &st) == 0, item.path, "cannot read the image file");
    id += fs::absolute(item.path).lexically_normal().string() + " " + std::to_string(st.st_size) + " " +
          std::to_string(int64_t(st.st_mtim.tv_sec)) + "." + std::to_string(int64_t(st.st_mtim.tv_nsec)) + "\n";
  }
  return id;
}

// Rows of x [N, P, C]: image i at position p.
const float* patch(const PatchFeatures& f, int64_t image, int64_t position) {
  const int64_t P = f.x.size(1), C = f.x.size(2);
  return f.x.data() + (image * P + position) * C;
}

}  // namespace

PatchFeatures patch_features(const FeatureExtractor& fx, const std::vector<data::ImageItem>& items,
                             const std::string& cache_dir, const std::string& label, const ProgressFn& progress,
                             bool write_cache) {
  check(fx.spec().levels.size() == 1, "patch_features", "needs exactly one backbone level");
  check(!items.empty(), label, "no images");
  const auto t0 = Clock::now();
  PatchFeatures out;
  out.label = label;
  out.items = items;
  const int64_t N = int64_t(items.size()), C = fx.dims().at(0);
  // ---- the cache: a safetensors file named after the set and the digest of what made it ----
  std::string cache_file, identity;
  if (!cache_dir.empty()) {
    identity = cache_identity(fx, items);
    std::string name = label;
    for (char& ch : name)
      if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_') ch = '-';
    cache_file = (fs::path(cache_dir) / (name + "-" + fx.spec().backbone + "-" + text_sha256(identity).substr(0, 16) +
                                         ".safetensors")).string();
    if (fs::exists(cache_file)) {
      nn::Safetensors f = nn::load_safetensors(cache_file);
      // The same digest prefix with another identity (a collision or a hand-edited file) is re-made.
      if (f.has_meta("normad.identity") && f.metadata.at("normad.identity") == identity && f.tensors.count("features")) {
        Tensor x = f.tensors.at("features");
        const int64_t gh = f.meta_int("grid_h", 1, 1 << 16), gw = f.meta_int("grid_w", 1, 1 << 16);
        check(x.dim() == 3 && x.size(0) == N && x.size(1) == gh * gw && x.size(2) == C, cache_file,
              "features of shape " + shape_str(x.shape()) + ", expected [" + std::to_string(N) + ", " +
                  std::to_string(gh * gw) + ", " + std::to_string(C) + "]");
        nn::check_finite(f);
        out.x = x, out.grid_h = gh, out.grid_w = gw, out.from_cache = true;
        out.seconds = seconds_since(t0);
        if (progress) progress(N, N);
        return out;
      }
    }
  }
  // ---- extraction: [B, C, h, w] maps -> [B, h*w, C] rows, batch by batch ----
  if (!write_cache) cache_file.clear();
  if (!cache_file.empty()) {  // before the work: an unusable cache directory fails first
    std::error_code ec;
    fs::create_directories(cache_dir, ec);
    check(!ec && fs::is_directory(cache_dir), cache_dir,
          "cannot create the feature cache directory" + (ec ? ": " + ec.message() : std::string(" (a file is in the way)")) +
              " (--cache DIR, or --no-cache)");
  }
  int64_t done = 0;
  fx.for_each_batch_maps(data::item_paths(items), [&](const std::vector<Tensor>& lv) {
    const Tensor m = lv[0].to(Device::CPU);  // [B, C, h, w]
    const int64_t B = m.size(0), h = m.size(2), w = m.size(3), P = h * w;
    if (done == 0) out.grid_h = h, out.grid_w = w, out.x = Tensor::empty({N, P, C});
    float* dst = out.x.data() + done * P * C;  // written in place: no second copy of the set
    for (int64_t b = 0; b < B; ++b)
      for (int64_t p = 0; p < P; ++p)
        for (int64_t c = 0; c < C; ++c) dst[(b * P + p) * C + c] = m.data()[(b * C + c) * P + p];
    done += B;
  }, progress);
  if (!cache_file.empty()) {
    nn::save_safetensors(cache_file, {{"features", out.x}},
                         {{"normad.identity", identity}, {"grid_h", std::to_string(out.grid_h)},
                          {"grid_w", std::to_string(out.grid_w)}, {"set", label}});
  }
  out.seconds = seconds_since(t0);
  return out;
}

int64_t mvtec_noisy_copies(int64_t test_images, double ratio) { return anomalies_for_ratio(test_images, ratio); }

Tensor mvtec_task_batch(const std::vector<const PatchFeatures*>& train, const AcrMvtecConfig& cfg, Generator& rng,
                        std::vector<int>& labels) {
  const int64_t C = train.at(0)->x.size(2), P = train[0]->x.size(1), Q = cfg.normals;
  std::vector<float> rows(static_cast<size_t>(cfg.tasks * 2 * Q * C));
  labels.assign(static_cast<size_t>(cfg.tasks * 2 * Q), 0);
  for (int64_t t = 0; t < cfg.tasks; ++t) {
    // One class uniformly, one position uniformly, Q distinct images of the class at that position
    // (acr.md §6, MVTec row); then the Q noisy copies of those rows. The released code permutes a
    // task's rows; the loss is a mean and BN statistics are sums over the task, so the order
    // changes nothing but summation order, and normad keeps real rows first.
    const PatchFeatures& cls = *train[size_t(rng.randint(0, int64_t(train.size())))];
    const int64_t p = rng.randint(0, P);
    const std::vector<int64_t> images = data::sample_distinct(cls.x.size(0), Q, rng);
    float* real = rows.data() + t * 2 * Q * C;
    float* noisy = real + Q * C;
    for (int64_t q = 0; q < Q; ++q) std::copy_n(patch(cls, images[size_t(q)], p), C, real + q * C);
    for (int64_t k = 0; k < Q * C; ++k) noisy[k] = real[k] + rng.normal1(0.f, float(cfg.noise_std));
    for (int64_t q = 0; q < Q; ++q) labels[size_t(t * 2 * Q + Q + q)] = 1;
  }
  return Tensor::from({cfg.tasks * 2 * Q, C}, rows);
}

Tensor mvtec_test_batch(const PatchFeatures& test, int64_t position, int64_t noisy_copies, double noise_std,
                        Generator& noise) {
  const int64_t N = test.x.size(0), C = test.x.size(2);
  check(noisy_copies >= 0 && noisy_copies <= N, test.label,
        std::to_string(noisy_copies) + " noisy copies of " + std::to_string(N) + " test rows: at most one per row");
  Tensor batch = Tensor::empty({N + noisy_copies, C});
  float* rows = batch.data();
  for (int64_t i = 0; i < N; ++i) std::copy_n(patch(test, i, position), C, rows + i * C);
  for (int64_t a = 0; a < noisy_copies; ++a)  // copies of the first rows, x + noise_std * eps
    for (int64_t c = 0; c < C; ++c) rows[(N + a) * C + c] = rows[a * C + c] + noise.normal1(0.f, float(noise_std));
  return batch;
}

AcrMvtecResult acr_mvtec_class(const std::vector<const PatchFeatures*>& train, const PatchFeatures& test,
                               const Tensor& masks, const std::string& category, const AcrMvtecConfig& cfg,
                               const std::function<void(int64_t, int64_t, double)>& progress) {
  check(train.size() >= 2, category, "ACR needs at least 2 training categories, got " + std::to_string(train.size()));
  const int64_t N = test.x.size(0), P = test.x.size(1), C = test.x.size(2);
  for (const PatchFeatures* f : train) {
    check(f->x.size(1) == P && f->x.size(2) == C, category,
          "training features of shape " + shape_str(f->x.shape()) + " do not match the test features' " + shape_str(test.x.shape()));
    check(f->x.size(0) >= cfg.normals, f->label,
          "its category has " + std::to_string(f->x.size(0)) + " training images, fewer than the " +
              std::to_string(cfg.normals) + " a task takes (--task-normals)");
  }
  // FeatureSVDD halves the width down to 32 (acr.md §7.5: 1024 -> 512 -> ... -> 32).
  int64_t halvings = 0;
  while ((int64_t(32) << halvings) < C) ++halvings;
  check((int64_t(32) << halvings) == C && halvings >= 1, category,
        "FeatureSVDD halves the feature width to 32; the backbone level has " + std::to_string(C) +
            " channels (it needs 64, 128, ..., 1024, ...)");
  check(masks.dim() == 3 && masks.size(0) == N, category, "masks of shape " + shape_str(masks.shape()) + " for " +
                                                              std::to_string(N) + " test images");
  check(test.grid_h * test.grid_w == P, category, "the feature grid does not match the positions");
  check(masks.device() == Device::CPU, category, "masks must be on the host");
  check(N >= 2 || cfg.test_noisy_copies, category, "needs at least 2 test images for batch statistics");
  AcrMvtecResult r;
  r.category = category;
  for (const PatchFeatures* f : train) {
    r.train_images += f->x.size(0);
    r.train_categories.push_back(f->label);
  }
  r.test_images = N;
  for (const auto& item : test.items) r.test_anomalous += item.label, r.labels.push_back(item.label);

  // ---- meta-training (acr.md §11.2): 50 iterations of 32 tasks, Adam 3e-4, StepLR per iteration ----
  auto t0 = Clock::now();
  Generator init(stream_seed(cfg.seed, category, kInit)), tasks(stream_seed(cfg.seed, category, kTasks));
  AcrDsvdd model(feature_svdd(C, init, halvings), 32, init);
  model.to(cfg.device);
  nn::Adam opt(model.parameters(), float(cfg.lr));
  nn::StepLR sched(opt, cfg.lr_step, float(cfg.lr_gamma));
  Communicator& comm = cfg.comm ? *cfg.comm : single_process();
  for (int64_t it = 0; it < cfg.iters; ++it) {
    std::vector<int> labels;
    const Tensor batch = mvtec_task_batch(train, cfg, tasks, labels);
    opt.zero_grad();
    r.final_loss = acr_backward_shared(model, batch, labels, cfg.tasks, cfg.tasks, comm);  // every rank built all tasks
    nn::check_loss(r.final_loss, "ACR meta-training on MVTec AD (" + category + " held out)", "iteration", it + 1);
    opt.step();
    sched.step();
    if (progress) progress(it + 1, cfg.iters, r.final_loss);
  }
  check_replicas_agree(model, comm, "ACR meta-training on MVTec AD (" + category + " held out)");
  r.train_seconds = seconds_since(t0);

  // ---- test batches (§11.3): per position, the N test rows (+ n_a noisy copies), one BN batch ----
  t0 = Clock::now();
  r.noisy_copies = cfg.test_noisy_copies ? mvtec_noisy_copies(N, cfg.test_ratio) : 0;
  const int64_t rows = N + r.noisy_copies;
  Generator noise(stream_seed(cfg.seed, category, kTestNoise));  // drawn in position order, as once per run
  std::vector<float> patch_scores(static_cast<size_t>(N * P));    // [N, grid_h, grid_w]
  for (int64_t p = 0; p < P; ++p) {
    const std::vector<double> s = model.score(mvtec_test_batch(test, p, r.noisy_copies, cfg.noise_std, noise), false,
                                              rows);  // one chunk: one BN batch
    for (int64_t i = 0; i < N; ++i) patch_scores[size_t(i * P + p)] = float(s[size_t(i)]);
  }

  // ---- maps and scores (§11.4) ----
  r.map_h = masks.size(1), r.map_w = masks.size(2);
  r.maps = gaussian_blur(upsample_bilinear(patch_scores, N, test.grid_h, test.grid_w, r.map_h, r.map_w), N, r.map_h,
                         r.map_w, cfg.sigma);
  min_max_scale(r.maps, category.c_str());
  r.image_scores = eval::map_maxima(r.maps.data(), N, r.map_h, r.map_w);
  r.image = eval::image_metrics(r.image_scores, r.labels);
  r.pixel = eval::pixel_metrics(r.maps.data(), masks.data(), N, r.map_h, r.map_w);
  r.test_seconds = seconds_since(t0);
  return r;
}

}  // namespace normad::models
