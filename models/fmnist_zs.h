// FMNIST-ZS, normad's zero-shot benchmark (../shared/specs/fmnist_zs.md): meta-train ACR-DSVDD on
// five Fashion-MNIST classes, then score batches of the five unseen classes with anomalies mixed in
// at ratio r; ACR is compared with a stationary-BN model and two raw-pixel baselines on identical
// batches.
// Math: n_a = max(1, floor(200 r / (1 - r))); AUROC per batch; the (fold, r) value is the mean over
// 5 classes x 5 batches. Baselines: batch-mean L2 ||x_i - mean_B x||, kNN-5 mean distance (double).
// Tested by tests/test_fmnist_zs.cpp (batch construction, baselines by hand, a tiny end-to-end run).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "data/idx.h"

namespace normad::models {

struct ZsConfig {
  char fold = 'A';                                  // 'A': train {0..4}, test {5..9}; 'B': the reverse
  int64_t iters = 2000;                             // fmnist_zs.md §4
  std::vector<double> ratios{0.01, 0.05, 0.10, 0.20};
  uint64_t seed = 0;
  int64_t tasks = 32, normals = 15, anomalies = 15;  // per iteration / per task
  float lr = 1e-3f;
  int64_t lr_step = 1500;
  float lr_gamma = 0.7f;
  int64_t batch_normals = 200, batches_per_class = 5;
};

struct ZsBatch {  // one test batch's AUROC per method
  int64_t test_class, index;
  double ratio, acr, stationary, batch_l2, knn;
};

struct ZsRatio {  // mean and std over the fold's batches at one ratio
  double ratio;
  int64_t n_anom;
  double acr, acr_std, stationary, stationary_std, batch_l2, batch_l2_std, knn, knn_std;
};

struct ZsFold {
  char fold;
  int64_t iters;
  double secs_per_iter;
  std::vector<ZsRatio> ratios;
  std::vector<ZsBatch> batches;
};

// Number of anomalies added to `normals` normals at ratio r (exact for the spec's ratios).
int64_t anomalies_for_ratio(int64_t normals, double r);
// Per-row baselines on raw rows x [B, D] (double precision).
std::vector<double> batch_l2_scores(const Tensor& x);
std::vector<double> knn_scores(const Tensor& x, int64_t k = 5);

// Progress callback: (iteration done, total, last loss).
using ZsProgress = std::function<void(int64_t, int64_t, double)>;
ZsFold run_fmnist_zs(const data::Mnist& m, const ZsConfig& cfg, const ZsProgress& progress = {});

}  // namespace normad::models
