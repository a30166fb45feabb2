// The zero-shot protocol of FMNIST-ZS (../shared/specs/fmnist_zs.md), for any labelled data whose
// classes are tasks: meta-train ACR-DSVDD on the training classes, then score batches of unseen
// test classes with anomalies (rows of the other test classes) mixed in at ratio r; ACR is compared
// with a stationary-BN model and two raw-feature baselines on identical batches. FMNIST-ZS is the
// split fmnist_fold(); `normad zeroshot --csv` builds its own from a table.
// Math: n_a = max(1, floor(200 r / (1 - r))); AUROC per batch; the (fold, r) value is the mean over
// 5 classes x 5 batches. Baselines: batch-mean L2 ||x_i - mean_B x||, kNN-5 mean distance (double).
// Tested by tests/test_zeroshot.cpp (anomaly counts, baselines by hand, a tiny end-to-end run).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "data/idx.h"
#include "models/data_parallel.h"
#include "nn/module.h"
#include "tensor/comm.h"
#include "tensor/random.h"

namespace normad::models {

// Rows and class ids of the data the protocol samples from. Tasks use train_x rows of
// train_classes; test batches use test_x rows of test_classes.
struct ZsData {
  Tensor train_x, test_x;  // [rows, ...] (images or feature vectors)
  std::vector<int64_t> train_y, test_y;
  std::vector<int64_t> train_classes, test_classes;
  int64_t num_classes = 0;
};
// FMNIST-ZS fold 'A' (train on classes 0..4, test on 5..9) or 'B' (the reverse).
ZsData fmnist_fold(const data::Mnist& m, char fold);

struct ZsConfig {
  char fold = 'A';  // the split's label: it names the random streams and the table rows
  int64_t iters = 2000;                             // fmnist_zs.md §4
  std::vector<double> ratios{0.01, 0.05, 0.10, 0.20};
  uint64_t seed = 0;
  int64_t tasks = 32, normals = 15, anomalies = 15;  // per iteration / per task
  float lr = 1e-3f;
  int64_t lr_step = 1500;
  float lr_gamma = 0.7f;
  int64_t batch_normals = 200, batches_per_class = 5;
  // Task augmentation (data/task_aug.h) applied to each training task, from its own random stream;
  // "none" is the paper's recipe.
  std::string task_aug = "none";
  // Tasks per forward/backward pass (acr_backward); 0: all tasks in one grouped pass.
  int64_t tasks_per_pass = 0;
  // Every this many iterations, score ACR on the (fixed) test batches and record the mean AUROC
  // per ratio in ZsFold::curve (0: only at the end). It draws no random numbers, so the final
  // results are those of a run without it.
  int64_t eval_every = 0;
  // Where the model trains and scores (the data stays on the host; each batch is copied over).
  Device device = Device::CPU;
  // Training checkpoints (nn/checkpoint.h): every checkpoint_every iterations (0: never) the whole
  // meta-training state is written to state_file; resume_from continues a run from such a file to
  // the results the uninterrupted run gives.
  std::string state_file, resume_from;
  int64_t checkpoint_every = 0;
  // Data-parallel meta-training (models/data_parallel.h): each rank of `comm` computes its share of
  // every iteration's tasks and the gradients are summed; null: this process alone. Only rank 0
  // writes checkpoints; every rank ends with the same model (checked).
  Communicator* comm = nullptr;
  // With comm: where the gradients of a model on a GPU are summed (NCCL, gpu_world()); null: on the host through comm.
  Communicator* device_comm = nullptr;
};

// Meta-training recipes (docs/acr_augmentation.md):
// - "paper": fmnist_zs.md §4 exactly (ZsConfig's defaults, no task augmentation); for tables the
//   same task composition (acr.md's AnoShift settings differ: Q 512, lr 4e-4, permuted columns).
// - "few-class": for data with few training classes (fewer than kFewClasses): the paper's settings
//   plus task augmentation. Images: dihedral-invert, Adam lr 3e-3 and 1,000 iterations (chosen on
//   FMNIST-ZS fold A, docs/acr_augmentation.md). Tables: permute, the paper's optimisation settings
//   (an opt-in: on scikit-learn's digits it won on fold A and was not confirmed on fold B).
// - "auto": images: few-class below kFewClasses training classes, else paper. Tables: always paper
//   (the search on tables, docs/acr_augmentation.md "Tables", found nothing that beats it there).
constexpr int64_t kFewClasses = 20;
constexpr double kFewClassImageLr = 3e-3;
constexpr int64_t kFewClassImageIters = 1000;
// Sets cfg's recipe fields (task_aug and the optimisation settings) and returns the recipe used
// ("auto" resolved). `images`: the rows are [C, S, S] images, else feature vectors.
std::string apply_recipe(ZsConfig& cfg, const std::string& recipe, int64_t train_classes, bool images);

// A recipe with explicit overrides, as a user gives them (normad zeroshot / train, the detector
// API): empty or -1 keeps the recipe's value.
struct RecipeOverrides {
  std::string recipe = "auto", task_aug;
  int64_t iters = -1, tasks_per_pass = 0;
  int64_t normals = -1, anomalies = -1;  // per task
  double lr = -1;
  bool batch_normals_given = false;      // zeroshot --batch-normals on the command line (else the default)
};
// apply_recipe for `train_classes` classes (0: not known yet, only the names are checked), then
// the overrides; an Error names the option (--task-normals, --task-aug, ...) of a bad value.
std::string resolve_recipe(ZsConfig& cfg, const RecipeOverrides& o, int64_t train_classes, bool images);

struct ZsBatch {  // one test batch's AUROC per method
  int64_t test_class, index;
  double ratio, acr, stationary, batch_l2, knn;
};

struct ZsRatio {  // mean and std over the fold's batches at one ratio
  double ratio;
  int64_t n_anom;  // anomalies in a full batch (batch_normals normals)
  double acr, acr_std, stationary, stationary_std, batch_l2, batch_l2_std, knn, knn_std;
};

struct ZsCheckpoint {  // ACR's mean AUROC per ratio (cfg.ratios order) after `iter` iterations
  int64_t iter;
  std::vector<double> acr;
};

struct ZsFold {
  char fold;
  int64_t iters;
  double secs_per_iter;  // meta-training only (checkpoint scoring excluded)
  // Data-parallel runs (cfg.comm with more than one rank): the ranks, the values all-reduced per
  // iteration and rank 0's seconds per iteration in the all-reduces (waiting for the others included).
  int ranks = 1;
  ShareStats share;
  double reduce_secs_per_iter = 0;
  std::vector<ZsRatio> ratios;
  std::vector<ZsBatch> batches;
  std::vector<ZsCheckpoint> curve;  // with cfg.eval_every
};

// Number of anomalies added to `normals` normals at ratio r (exact for the spec's ratios).
int64_t anomalies_for_ratio(int64_t normals, double r);
// Per-row baselines on raw rows x [B, D] (double precision).
std::vector<double> batch_l2_scores(const Tensor& x);
std::vector<double> knn_scores(const Tensor& x, int64_t k = 5);

// Progress callback: (iteration done, total, last loss).
using ZsProgress = std::function<void(int64_t, int64_t, double)>;
// Called after each checkpoint of cfg.eval_every.
using ZsCheckpointFn = std::function<void(const ZsCheckpoint&)>;
// Builds the ACR model (network and, for DSVDD, its centre) from the initialisation stream.
class AcrModel;
using ZsModelFactory = std::function<std::unique_ptr<AcrModel>(Generator& init)>;
// Meta-trains `model` (fmnist_zs.md §4): cfg.iters iterations of cfg.tasks tasks sampled from the
// `classes` rows of x (labels y), Adam and StepLR per iteration. Tasks come from `rng`; the task
// augmentation draws from a stream of its own (seed, fold), so "none" leaves everything else as
// it was. Returns seconds per iteration.
// With cfg.state_file / cfg.resume_from, `resume` adds the caller's part: fields that identify
// the run beyond cfg and the data (ckpt.run), and its own state to save and restore.
struct ZsResume {
  std::map<std::string, std::string> run;
  std::function<std::map<std::string, std::string>()> save;
  std::function<void(const std::map<std::string, std::string>&)> restore;
  std::function<void(int64_t iteration)> resumed;  // after a resume, with the iterations already done
};
// With cfg.comm of several ranks, `share` (if given) receives what the iterations all-reduced.
double meta_train(AcrModel& model, const Tensor& x, const std::vector<int64_t>& y, int64_t num_classes,
                  const std::vector<int64_t>& classes, const ZsConfig& cfg, Generator& rng,
                  const ZsProgress& progress = {}, const ZsResume& resume = {}, ShareStats* share = nullptr);

// Test batches: per test class, min(batches_per_class, rows / batch_normals) batches of
// batch_normals rows (one batch of all its rows when it has fewer).
// With checkpoints (cfg.state_file, cfg.resume_from) the learning curve so far travels with the
// training state; `run` adds the caller's identifying fields (the model kind, the data source).
ZsFold run_zeroshot(const ZsData& data, const ZsConfig& cfg, const ZsModelFactory& make_model,
                    const ZsProgress& progress = {}, const ZsCheckpointFn& on_checkpoint = {},
                    const std::map<std::string, std::string>& run = {},
                    const std::function<void(int64_t)>& resumed = {});

}  // namespace normad::models
