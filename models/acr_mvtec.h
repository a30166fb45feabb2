// ACR on MVTec AD (acr.md §6, §7.5, §11): zero-shot anomaly segmentation with frozen backbone
// features. For a held-out class, FeatureSVDD is meta-trained on the patch features of the other
// classes' defect-free training images (a task = 30 images of one class at one random position,
// plus 30 noisy copies as pseudo-anomalies); every position of the held-out class's test images
// is then scored in one batch-statistics BN batch, and the patch scores become per-pixel maps.
// Math: task rows x_{i,p} (i: 30 distinct images of one class, p one position) and
// x_{i,p} + 0.1 eps; loss d on real rows and 1/d on noisy ones (ACR-DSVDD, acr.md §4.1);
// test batch p = {x_{i,p} : the N test images} + n_a noisy copies (§11.3, n_a = N at ratio 0.5);
// s_{i,p} = ||z_{i,p} - c||^2 -> N x 14 x 14 -> bilinear to 224 x 224 -> Gaussian sigma 4 ->
// min-max over the class -> image score = max (§11.4).
// Tested by tests/test_acr_mvtec.cpp: the feature layout and cache, the task batches, one class
// end to end on a generated MVTec-layout set (scripts/make_synthetic_mvtec.py) with a floor on
// pixel AUROC, bit-identical reruns.
#pragma once

#include <string>
#include <vector>

#include "data/image_sets.h"
#include "eval/pixel_metrics.h"
#include "models/image_features.h"
#include "tensor/comm.h"
#include "tensor/random.h"

namespace normad::models {

// Patch features of one category's split: x [N, P, C] with P = grid_h * grid_w positions in
// row-major order (p = grid_w * h + w), so each (image, position) vector is contiguous.
struct PatchFeatures {
  std::string label;  // the set, e.g. "bottle/train"
  std::vector<data::ImageItem> items;
  Tensor x;  // [N, P, C], on the host
  int64_t grid_h = 0, grid_w = 0;
  bool from_cache = false;  // read from the cache instead of extracted
  double seconds = 0;       // time to extract or to read
};

// The feature maps of the items' images at the extractor's single level ([B, C, h, w] ->
// [B, h*w, C]). With a cache directory, a file there made from the same image files (paths,
// sizes, modification times), weights, level, preprocessing, batch size and GEMM engine is read
// instead; otherwise the features are extracted and written there (atomically). `label` names
// the set in the cache file's name and in errors ("bottle/train"). With write_cache false a cache
// is read but never written (the ranks other than 0 of an MPI job: rank 0 writes it).
PatchFeatures patch_features(const FeatureExtractor& fx, const std::vector<data::ImageItem>& items,
                             const std::string& cache_dir, const std::string& label, const ProgressFn& progress = {},
                             bool write_cache = true);

struct AcrMvtecConfig {
  int64_t iters = 50, tasks = 32, normals = 30;  // acr.md §9; anomalies = noisy copies of the normals
  double noise_std = 0.1;                        // the pseudo-anomalies' absolute noise (§6)
  double lr = 3e-4;
  int64_t lr_step = 3000;
  double lr_gamma = 0.8;
  double test_ratio = 0.5;         // n_a = max(1, floor(N r / (1 - r))) noisy copies per test batch
  bool test_noisy_copies = true;   // false: acr.md §12 item 3, test batches of the real rows only
  double sigma = 4.0;              // the maps' Gaussian blur
  uint64_t seed = 0;
  Device device = Device::CPU;
  // Data-parallel meta-training (models/data_parallel.h): each rank of `comm` computes its share of
  // every iteration's tasks; null: this process alone.
  Communicator* comm = nullptr;
};

struct AcrMvtecResult {
  std::string category;
  std::vector<std::string> train_categories;
  int64_t train_images = 0;
  int64_t test_images = 0, test_anomalous = 0, noisy_copies = 0;  // per test batch
  eval::ImageMetrics image;
  eval::PixelMetrics pixel;
  std::vector<double> image_scores;  // maximum of each map, in the test items' order
  std::vector<int> labels;           // 0 good, 1 defective
  std::vector<float> maps;           // [N, map_h, map_w], min-max scaled over the class to [0, 1]
  int64_t map_h = 0, map_w = 0;
  double train_seconds = 0, test_seconds = 0;
  double final_loss = 0;
};

// n_a of §11.3 for N test images at ratio r (acr.md §10.1's rule).
int64_t mvtec_noisy_copies(int64_t test_images, double ratio);

// One held-out class: meta-train a fresh FeatureSVDD on `train` (the other categories' training
// features, at least 2), score `test` and compare with `masks` [N, H, W] (values > 0 defect; the
// maps are made at H x W). Random streams (initialisation, tasks, test noise) derive from
// cfg.seed and the category's name, so a class's result does not depend on which others run.
AcrMvtecResult acr_mvtec_class(const std::vector<const PatchFeatures*>& train, const PatchFeatures& test,
                               const Tensor& masks, const std::string& category, const AcrMvtecConfig& cfg,
                               const std::function<void(int64_t, int64_t, double)>& progress = {});

// The task batch of one meta-training iteration, as acr_mvtec_class draws it: [T * 2Q, C] rows,
// task t's Q real rows then their Q noisy copies, with labels 0 then 1. Exposed for the tests.
Tensor mvtec_task_batch(const std::vector<const PatchFeatures*>& train, const AcrMvtecConfig& cfg, Generator& rng,
                        std::vector<int>& labels);

// Test batch `position` of §11.3: [N + noisy_copies, C], the N test rows at that position in file
// order, then noisy copies of the first `noisy_copies` of them (x + noise_std * eps, eps from
// `noise`). More copies than rows is an Error.
Tensor mvtec_test_batch(const PatchFeatures& test, int64_t position, int64_t noisy_copies, double noise_std,
                        Generator& noise);

}  // namespace normad::models
