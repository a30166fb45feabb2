// The zero-shot protocol (see models/zeroshot.h and fmnist_zs.md). Tested by tests/test_zeroshot.cpp.
#include "models/zeroshot.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "data/task_aug.h"
#include "data/tasks.h"
#include "eval/metrics.h"
#include "models/acr.h"
#include "models/data_parallel.h"
#include "nn/checkpoint.h"
#include "tensor/backend.h"
#include "tensor/parallel.h"

namespace normad::models {

namespace {

// Independent streams per (seed, fold, purpose) (fmnist_zs.md §7): splitmix64 of the three.
uint64_t stream_seed(uint64_t seed, char fold, uint64_t purpose) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + uint64_t(fold) * 0xBF58476D1CE4E5B9ull + purpose;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
enum Stream : uint64_t { kInit = 1, kTrain = 2, kTest = 3, kAug = 4 };

}  // namespace

int64_t anomalies_for_ratio(int64_t normals, double r) {
  check(r > 0 && r < 1, "ratio", "must be in (0, 1), got " + std::to_string(r));
  // A small epsilon keeps exact quotients exact: 200 * 0.2 / 0.8 is 49.999... in binary.
  return std::max<int64_t>(1, static_cast<int64_t>(std::floor(double(normals) * r / (1 - r) + 1e-9)));
}

std::vector<double> batch_l2_scores(const Tensor& x) {
  const int64_t B = x.size(0), D = x.numel() / B;
  std::vector<double> mu(D, 0.0), out(B);
  for (int64_t i = 0; i < B; ++i)
    for (int64_t k = 0; k < D; ++k) mu[k] += x.data()[i * D + k];
  for (double& v : mu) v /= double(B);  // the batch mean, anomalies included
  for (int64_t i = 0; i < B; ++i) {
    double s = 0;
    for (int64_t k = 0; k < D; ++k) s += (x.data()[i * D + k] - mu[k]) * (x.data()[i * D + k] - mu[k]);
    out[i] = std::sqrt(s);
  }
  return out;
}

std::vector<double> knn_scores(const Tensor& x, int64_t k) {
  const int64_t B = x.size(0), D = x.numel() / B;
  check(B > k, "knn_scores", "needs more than k = " + std::to_string(k) + " rows, got " + std::to_string(B));
  std::vector<double> out(B), dist(B);
  for (int64_t i = 0; i < B; ++i) {
    for (int64_t j = 0; j < B; ++j) {
      double s = 0;
      for (int64_t t = 0; t < D; ++t) {
        const double d = double(x.data()[i * D + t]) - x.data()[j * D + t];
        s += d * d;
      }
      dist[j] = std::sqrt(s);
    }
    dist[i] = INFINITY;  // a sample is never its own neighbour
    std::nth_element(dist.begin(), dist.begin() + (k - 1), dist.end());
    std::sort(dist.begin(), dist.begin() + k);
    double s = 0;
    for (int64_t j = 0; j < k; ++j) s += dist[j];
    out[i] = s / double(k);
  }
  return out;
}

ZsData fmnist_fold(const data::Mnist& m, char fold) {
  check(fold == 'A' || fold == 'B', "fmnist_zs", std::string("fold must be A or B, got ") + fold);
  ZsData d{m.train_x, m.test_x, m.train_y, m.test_y, {}, {}, 10};
  for (int64_t c = 0; c < 10; ++c) ((c < 5) == (fold == 'A') ? d.train_classes : d.test_classes).push_back(c);
  return d;
}

std::string apply_recipe(ZsConfig& cfg, const std::string& recipe, int64_t train_classes, bool images) {
  std::string r = recipe;
  if (r == "auto") r = images && train_classes < kFewClasses ? "few-class" : "paper";
  const ZsConfig paper;
  if (r != "paper" && r != "few-class")
    throw Error("recipe '" + recipe + "' is unknown (known: auto, paper, few-class)");
  cfg.iters = paper.iters, cfg.tasks = paper.tasks, cfg.normals = paper.normals, cfg.anomalies = paper.anomalies;
  cfg.lr = paper.lr, cfg.lr_step = paper.lr_step, cfg.lr_gamma = paper.lr_gamma;
  cfg.task_aug = r == "paper" ? "none" : images ? "dihedral-invert" : "permute";
  if (r == "few-class" && images) cfg.lr = kFewClassImageLr, cfg.iters = kFewClassImageIters;
  return r;
}

std::string resolve_recipe(ZsConfig& cfg, const RecipeOverrides& o, int64_t train_classes, bool images) {
  std::string r = apply_recipe(cfg, o.recipe, train_classes, images);
  if (o.iters >= 0) cfg.iters = o.iters;
  if (o.normals >= 0) cfg.normals = o.normals;
  if (o.anomalies >= 0) cfg.anomalies = o.anomalies;
  if (o.lr >= 0) cfg.lr = float(o.lr);
  if (cfg.normals < 2 || cfg.anomalies < 1 || !(cfg.lr > 0))
    throw Error("--task-normals must be >= 2, --task-anomalies >= 1 and --lr > 0");
  if (!o.task_aug.empty()) {
    data::task_aug(o.task_aug);  // validates the name before anything runs
    cfg.task_aug = o.task_aug;
  }
  if (train_classes > 0 && (images ? cfg.task_aug == "permute" : cfg.task_aug.rfind("dihedral", 0) == 0))
    throw Error("--task-aug " + cfg.task_aug + " is for " + (images ? "tables" : "images") + ", and these rows are " +
                (images ? "images" : "feature vectors"));
  if (o.tasks_per_pass < 0) throw Error("--tasks-per-pass: must be >= 0");
  cfg.tasks_per_pass = o.tasks_per_pass;
  return r;
}

double meta_train(AcrModel& model, const Tensor& x, const std::vector<int64_t>& y, int64_t num_classes,
                  const std::vector<int64_t>& classes, const ZsConfig& cfg, Generator& rng,
                  const ZsProgress& progress, const ZsResume& resume, ShareStats* share) {
  check(classes.size() >= 2, "meta_train", "needs at least 2 training classes");
  auto by_class = data::rows_by_class(y, num_classes);
  for (int64_t c : classes)
    check(static_cast<int64_t>(by_class.at(c).size()) >= cfg.normals, "meta_train",
          "training class " + std::to_string(c) + " has " + std::to_string(by_class.at(c).size()) +
              " rows, fewer than the " + std::to_string(cfg.normals) + " normals a task needs");
  const data::TaskAug& aug = data::task_aug(cfg.task_aug);
  const bool augment = cfg.task_aug != "none";
  Generator aug_rng(stream_seed(cfg.seed, cfg.fold, kAug));
  check(cfg.tasks_per_pass >= 0, "meta_train", "tasks_per_pass must be >= 0");
  const int64_t per_pass = cfg.tasks_per_pass ? cfg.tasks_per_pass : cfg.tasks;
  Communicator& comm = cfg.comm ? *cfg.comm : single_process();
  nn::Adam opt(model.parameters(), cfg.lr);
  nn::StepLR sched(opt, cfg.lr_step, cfg.lr_gamma);
  const int64_t Q = cfg.normals + cfg.anomalies;
  Shape task_shape = x.shape();
  task_shape[0] = cfg.tasks * Q;
  // Checkpoints: the model's state (taken afresh each time: storage may move between devices),
  // Adam's, both generators; the run is identified by every setting that changes the draws or the
  // updates, and by a digest of the data.
  auto training_state = [&] { return nn::TrainingState{model.state(), &opt, {{"tasks", &rng}, {"augment", &aug_rng}}}; };
  std::map<std::string, std::string> run = resume.run;
  int64_t start = 0;
  if (!cfg.state_file.empty() || !cfg.resume_from.empty()) {
    check(cfg.state_file.empty() || cfg.checkpoint_every > 0, "meta_train", "a state file needs checkpoint_every > 0");
    char lr[32];
    std::snprintf(lr, sizeof lr, "%.9g/%.9g", double(cfg.lr), double(cfg.lr_gamma));
    run.insert({{"seed", std::to_string(cfg.seed)}, {"fold", std::string(1, cfg.fold)},
                {"iters", std::to_string(cfg.iters)},
                {"task", std::to_string(cfg.tasks) + "x(" + std::to_string(cfg.normals) + "+" + std::to_string(cfg.anomalies) + ")"},
                {"lr/gamma", lr}, {"lr_step", std::to_string(cfg.lr_step)}, {"task_aug", cfg.task_aug},
                {"tasks_per_pass", std::to_string(per_pass)}, {"device", device_name(cfg.device)},
                {"threads", std::to_string(num_threads())}, {"gemm", cpu_gemm_engine()},
                {"data", nn::digest({x, Tensor::from({int64_t(y.size())}, std::vector<float>(y.begin(), y.end()))})}});
    // Shares sum in another order than one process does: a run continues on as many ranks as it
    // started with (a single-process checkpoint stays as it was).
    if (comm.size() > 1) run.insert({"ranks", std::to_string(comm.size())});
  }
  if (!cfg.resume_from.empty()) {
    std::map<std::string, std::string> extra;
    try {
      start = nn::load_checkpoint(cfg.resume_from, training_state(), run, &extra);
    } catch (const Error& e) {
      const std::string m = e.what();
      if (m.find(" ranks is ") == std::string::npos) throw;
      throw Error(m + " (a checkpoint resumes under as many ranks as wrote it: mpirun -np N for N ranks, no "
                      "mpirun for one process)");
    }
    check(start <= cfg.iters, cfg.resume_from, "checkpoint after " + std::to_string(start) + " iterations, more than --iters");
    sched.set_last_epoch(start);  // StepLR counts iterations
    if (resume.restore) resume.restore(extra);
    if (resume.resumed) resume.resumed(start);
  }
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t it = start; it < cfg.iters; ++it) {
    std::vector<int64_t> rows;
    std::vector<int> labels;
    std::vector<Tensor> parts;  // augmented tasks
    for (int64_t t = 0; t < cfg.tasks; ++t) {
      data::Task task = data::sample_task(by_class, classes, cfg.normals, cfg.anomalies, rng);
      if (augment) parts.push_back(aug.apply(index_select(x, task.rows), aug_rng));
      rows.insert(rows.end(), task.rows.begin(), task.rows.end());
      labels.insert(labels.end(), task.labels.begin(), task.labels.end());
    }
    Tensor batch = augment ? concat(parts, 0) : index_select(x, rows).reshape(task_shape);
    opt.zero_grad();
    // Every rank built the whole iteration (the same draws); each computes its share of the tasks.
    const double loss = acr_backward_shared(model, batch, labels, cfg.tasks, per_pass, comm, share, cfg.device_comm);
    nn::check_loss(loss, "ACR meta-training", "iteration", it + 1);
    opt.step();
    sched.step();  // StepLR counts iterations
    if (progress) progress(it + 1, cfg.iters, loss);
    if (!cfg.state_file.empty() && (it + 1) % cfg.checkpoint_every == 0 && comm.rank() == 0)
      nn::save_checkpoint(cfg.state_file, training_state(), it + 1, run,
                          resume.save ? resume.save() : std::map<std::string, std::string>{});
  }
  check_replicas_agree(model, comm, "ACR meta-training");
  const int64_t done = cfg.iters - start;
  return done ? std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / double(done) : 0.0;
}

ZsFold run_zeroshot(const ZsData& data, const ZsConfig& cfg, const ZsModelFactory& make_model,
                    const ZsProgress& progress, const ZsCheckpointFn& on_checkpoint,
                    const std::map<std::string, std::string>& run, const std::function<void(int64_t)>& resumed) {
  const auto& train_classes = data.train_classes;
  const auto& test_classes = data.test_classes;
  check(train_classes.size() >= 2, "zeroshot", "needs at least 2 training classes");
  check(test_classes.size() >= 2, "zeroshot", "needs at least 2 test classes (anomalies come from the others)");
  check(cfg.eval_every >= 0, "zeroshot", "eval_every must be >= 0");

  // ---- meta-training (fmnist_zs.md §4) ----
  Generator init(stream_seed(cfg.seed, cfg.fold, kInit)), train_rng(stream_seed(cfg.seed, cfg.fold, kTrain));
  std::unique_ptr<AcrModel> model_ptr = make_model(init);
  AcrModel& model = *model_ptr;
  model.to(cfg.device);  // initialised on the host (the same draws on every device), then moved
  // Test batches must be scorable before hours of training: normals per batch, anomaly pool, kNN.
  check(cfg.batch_normals >= 1 && cfg.batches_per_class >= 1, "zeroshot", "batch_normals and batches_per_class must be >= 1");
  {
    auto test_rows = data::rows_by_class(data.test_y, data.num_classes);
    int64_t all = 0;
    for (int64_t t : test_classes) all += static_cast<int64_t>(test_rows.at(t).size());
    for (int64_t t : test_classes) {
      const int64_t n_own = static_cast<int64_t>(test_rows.at(t).size()), pool = all - n_own;
      check(n_own > 0, "zeroshot", "test class " + std::to_string(t) + " has no rows");
      for (double r : cfg.ratios) {
        const int64_t nb = std::min(cfg.batch_normals, n_own), n_a = anomalies_for_ratio(nb, r);
        check(n_a <= pool, "zeroshot", "ratio " + std::to_string(r) + " needs " + std::to_string(n_a) +
                                           " anomalies, the other test classes have " + std::to_string(pool) + " rows");
        check(nb + n_a > 5, "zeroshot", "test class " + std::to_string(t) + ": a batch of " +
                                            std::to_string(nb + n_a) + " rows is too small for kNN-5");
      }
    }
  }

  // ---- test batches (fmnist_zs.md §5), from a stream of their own ----
  struct TestBatch {
    int64_t test_class, index;
    double ratio;
    Tensor x;
    std::vector<int> labels;
  };
  std::vector<TestBatch> tests;
  Generator test_rng(stream_seed(cfg.seed, cfg.fold, kTest));
  auto test_by_class = data::rows_by_class(data.test_y, data.num_classes);
  for (double r : cfg.ratios) {
    for (int64_t t : test_classes) {
      // The pooled test images of the fold's other test classes.
      std::vector<int64_t> pool;
      for (int64_t o : test_classes)
        if (o != t) pool.insert(pool.end(), test_by_class[o].begin(), test_by_class[o].end());
      const auto& own = test_by_class[t];
      const int64_t n_own = static_cast<int64_t>(own.size());
      // Full batches of batch_normals normals (at most batches_per_class), or one batch of all.
      const int64_t nb = std::min(cfg.batch_normals, n_own);
      const int64_t n_batches = std::max<int64_t>(1, std::min(cfg.batches_per_class, n_own / nb));
      const int64_t n_a = anomalies_for_ratio(nb, r);  // checked against the pool above
      auto perm = test_rng.permutation(n_own);
      for (int64_t b = 0; b < n_batches; ++b) {
        std::vector<int64_t> rows;
        std::vector<int> labels;
        for (int64_t i = b * nb; i < (b + 1) * nb; ++i) {
          rows.push_back(own.at(perm.at(i)));
          labels.push_back(0);
        }
        for (int64_t i : data::sample_distinct(static_cast<int64_t>(pool.size()), n_a, test_rng)) {
          rows.push_back(pool[i]);
          labels.push_back(1);
        }
        for (int64_t i = static_cast<int64_t>(rows.size()) - 1; i > 0; --i) {  // shuffle the batch
          const int64_t j = test_rng.randint(0, i + 1);
          std::swap(rows[i], rows[j]);
          std::swap(labels[i], labels[j]);
        }
        tests.push_back({t, b, r, index_select(data.test_x, rows), labels});
      }
    }
  }
  // ACR's mean AUROC per ratio over the test batches (scoring draws no random numbers).
  auto acr_means = [&] {
    std::vector<double> out;
    for (double r : cfg.ratios) {
      std::vector<double> a;
      for (auto& tb : tests)
        if (tb.ratio == r) a.push_back(eval::auroc(model.score(tb.x), tb.labels));
      out.push_back(eval::mean(a));
    }
    return out;
  };

  ZsFold out;
  out.fold = cfg.fold;
  out.iters = cfg.iters;
  double scoring_secs = 0;
  auto on_iter = [&](int64_t done, int64_t total, double loss) {
    if (progress) progress(done, total, loss);
    if (cfg.eval_every > 0 && done % cfg.eval_every == 0) {
      auto t0 = std::chrono::steady_clock::now();
      out.curve.push_back({done, acr_means()});
      scoring_secs += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (on_checkpoint) on_checkpoint(out.curve.back());
    }
  };
  // A checkpoint carries the learning curve so far ("iter:auroc,auroc;..." with exact doubles); the
  // run is also identified by everything that makes the test batches and the curve.
  ZsResume resume{run, {}, {}, {}};
  if (!cfg.state_file.empty() || !cfg.resume_from.empty()) {
    const std::string ratios = nn::join_doubles(cfg.ratios);
    std::string classes;
    for (int64_t c : test_classes) classes += (classes.empty() ? "" : ",") + std::to_string(c);
    resume.run.insert({{"eval_every", std::to_string(cfg.eval_every)}, {"ratios", ratios},
                       {"test_batches", std::to_string(cfg.batch_normals) + "x" + std::to_string(cfg.batches_per_class)},
                       {"test_classes", classes},
                       {"test_data", nn::digest({data.test_x, Tensor::from({int64_t(data.test_y.size())},
                                                                          std::vector<float>(data.test_y.begin(), data.test_y.end()))})}});
  }
  int64_t start = 0;
  resume.resumed = [&](int64_t done) {
    start = done;
    if (resumed) resumed(done);
  };
  resume.save = [&] {
    std::string text;
    for (const ZsCheckpoint& c : out.curve)
      text += (text.empty() ? "" : ";") + std::to_string(c.iter) + ":" + nn::join_doubles(c.acr);
    return std::map<std::string, std::string>{{"curve", text}};
  };
  resume.restore = [&](const std::map<std::string, std::string>& extra) {
    out.curve.clear();
    const auto it = extra.find("curve");
    if (it == extra.end() || it->second.empty()) return;
    const std::string bad = "its learning curve (ckpt.extra.curve) is malformed";
    std::stringstream points(it->second);
    for (std::string point; std::getline(points, point, ';');) {
      ZsCheckpoint c{};
      const size_t colon = point.find(':');
      check(colon != std::string::npos, cfg.resume_from, bad);
      const auto [end, ec] = std::from_chars(point.data(), point.data() + colon, c.iter);
      check(ec == std::errc() && end == point.data() + colon, cfg.resume_from, bad);
      check(c.iter >= 1 && (out.curve.empty() || c.iter > out.curve.back().iter), cfg.resume_from, bad);
      c.acr = nn::split_doubles(point.substr(colon + 1), cfg.resume_from + ": learning curve");
      check(c.acr.size() == cfg.ratios.size(), cfg.resume_from, bad);
      out.curve.push_back(c);
    }
  };
  const double train_secs = meta_train(model, data.train_x, data.train_y, data.num_classes, train_classes, cfg,
                                       train_rng, on_iter, resume, &out.share);
  const int64_t done = cfg.iters - start;  // iterations this process ran (after a resume, the rest)
  out.ranks = cfg.comm ? cfg.comm->size() : 1;
  out.reduce_secs_per_iter = done ? out.share.reduce_seconds / double(done) : 0.0;
  out.secs_per_iter = done ? std::max(0.0, train_secs - scoring_secs / double(done)) : 0.0;

  for (auto& tb : tests) {
    ZsBatch zb{tb.test_class, tb.index, tb.ratio, 0, 0, 0, 0};
    zb.acr = eval::auroc(model.score(tb.x), tb.labels);
    zb.stationary = eval::auroc(model.score(tb.x, true), tb.labels);
    zb.batch_l2 = eval::auroc(batch_l2_scores(tb.x), tb.labels);
    zb.knn = eval::auroc(knn_scores(tb.x, 5), tb.labels);
    out.batches.push_back(zb);
  }
  for (double r : cfg.ratios) {  // mean and std over this ratio's batches
    std::vector<double> a, s, l, k;
    for (auto& zb : out.batches)
      if (zb.ratio == r) a.push_back(zb.acr), s.push_back(zb.stationary), l.push_back(zb.batch_l2), k.push_back(zb.knn);
    out.ratios.push_back({r, anomalies_for_ratio(cfg.batch_normals, r), eval::mean(a), eval::population_std(a), eval::mean(s), eval::population_std(s), eval::mean(l), eval::population_std(l), eval::mean(k), eval::population_std(k)});
  }
  return out;
}

}  // namespace normad::models
