// normad: the command line. Subcommands: `features` and `mvg` (apps/cmd_images.cpp, Gaussian-AD), `zeroshot` (FMNIST-ZS, fmnist_zs.md, or the same
// protocol on a labelled CSV table), `oneclass` (Deep SVDD per normal class on Fashion-MNIST,
// ntl_dsvdd.md A.5-A.7), `train` / `score` (one-class NeuTraL-AD or Deep SVDD on tables, a model file
// that carries its preprocessing and threshold) and `eval` (metrics of a scores file).
// Errors print one line and exit with code 2; output files are written to a temporary name and
// renamed, so nothing is left half-written.
// Tested by tests/test_cli.cpp (error cases, exit codes) and by `make demo`.
#include <CLI/CLI.hpp>
#include <json.hpp>

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <new>
#include <sstream>
#include <thread>

#include "apps/cli_models.h"
#include "apps/cli_util.h"
#include "apps/cmd_images.h"
#include "data/csv.h"
#include "data/image_norm.h"
#include "data/idx.h"
#include "data/task_aug.h"
#include "data/tasks.h"
#include "eval/metrics.h"
#include "models/acr.h"
#include "models/deep_svdd.h"
#include "models/ntl.h"
#include "models/acr_nets.h"
#include "models/zeroshot.h"
#include "nn/checkpoint.h"
#include "nn/safetensors.h"
#include "tensor/backend.h"
#include "tensor/parallel.h"
#include "tensor/profile.h"
#include "tensor/random.h"

using namespace normad;
using normad::cli::compute_device;
using normad::cli::Progress;
using normad::cli::select_device;
using normad::cli::split_list;
using normad::cli::write_atomic;
using normad::cli::write_json;

namespace {

std::vector<double> parse_ratios(const std::string& s) {
  std::vector<double> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      double r = std::stod(item, &used);
      if (used != item.size() || !(r > 0 && r < 1)) throw std::invalid_argument("");
      out.push_back(r);
    } catch (const std::exception&) {
      throw Error("--ratios: '" + item + "' is not a ratio in (0, 1)");
    }
  }
  if (out.empty()) throw Error("--ratios: no ratio given");
  for (size_t i = 0; i < out.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (out[i] == out[j]) throw Error("--ratios: " + std::to_string(out[i]) + " given twice");
  return out;
}

// Prints the results table (mean (std) over each fold's batches, then fold means) and writes the
// JSON (top-level "ratios": one object per ratio with each method's mean AUROC over the folds).
void report(const std::vector<models::ZsFold>& results, const models::ZsConfig& cfg, const std::string& json_path,
            const std::string& protocol, const std::string& recipe) {
  std::printf("\n%-5s %-5s %5s  %-15s %-15s %-15s %-15s\n", "fold", "r", "n_a", "ACR", "stationary", "batch-mean L2", "kNN-5");
  auto cell = [](double m, double s) { char b[32]; std::snprintf(b, sizeof b, "%.3f (%.3f)", m, s); return std::string(b); };
  for (auto& fr : results)
    for (auto& r : fr.ratios)
      std::printf("%-5c %-5.2f %5lld  %-15s %-15s %-15s %-15s\n", fr.fold, r.ratio, (long long)r.n_anom,
                  cell(r.acr, r.acr_std).c_str(), cell(r.stationary, r.stationary_std).c_str(),
                  cell(r.batch_l2, r.batch_l2_std).c_str(), cell(r.knn, r.knn_std).c_str());
  nlohmann::json js;
  js["protocol"] = protocol;
  js["seed"] = cfg.seed;
  js["iters"] = cfg.iters;
  js["recipe"] = recipe;
  js["task_aug"] = cfg.task_aug;
  js["lr"] = cfg.lr;
  js["tasks"] = cfg.tasks;
  js["task_normals"] = cfg.normals;
  js["task_anomalies"] = cfg.anomalies;
  js["ratios"] = nlohmann::json::array();
  for (size_t i = 0; i < cfg.ratios.size(); ++i) {
    double a = 0, s = 0, l = 0, k = 0;
    for (auto& fr : results) a += fr.ratios[i].acr, s += fr.ratios[i].stationary, l += fr.ratios[i].batch_l2, k += fr.ratios[i].knn;
    const double n = double(results.size());
    if (results.size() > 1)
      std::printf("%-5s %-5.2f %5lld  %-15.3f %-15.3f %-15.3f %-15.3f\n", "mean", cfg.ratios[i],
                  (long long)results[0].ratios[i].n_anom, a / n, s / n, l / n, k / n);
    js["ratios"].push_back({{"ratio", cfg.ratios[i]}, {"acr", a / n}, {"stationary", s / n}, {"batch_l2", l / n}, {"knn", k / n}});
  }
  for (auto& fr : results) {
    std::printf("fold %c: %.3f s per iteration\n", fr.fold, fr.secs_per_iter);
    nlohmann::json jf{{"fold", std::string(1, fr.fold)}, {"secs_per_iter", fr.secs_per_iter}};
    for (auto& c : fr.curve) jf["curve"].push_back({{"iter", c.iter}, {"acr", c.acr}});
    for (auto& b : fr.batches)
      jf["batches"].push_back({{"test_class", b.test_class}, {"batch", b.index}, {"ratio", b.ratio}, {"acr", b.acr},
                               {"stationary", b.stationary}, {"batch_l2", b.batch_l2}, {"knn", b.knn}});
    js["folds"].push_back(jf);
  }
  if (!json_path.empty()) write_json(json_path, js);
}

void print_header(const std::string& what, const models::ZsConfig& cfg, const std::string& recipe) {
  std::printf("%s: recipe %s, task augmentation %s, %lld iterations, %lld tasks x (%lld normals + %lld pseudo-anomalies), "
              "lr %g, seed %llu, %d threads, device %s\n",
              what.c_str(), recipe.c_str(), cfg.task_aug.c_str(), (long long)cfg.iters, (long long)cfg.tasks,
              (long long)cfg.normals, (long long)cfg.anomalies, cfg.lr, (unsigned long long)cfg.seed, num_threads(),
              device_name(cfg.device));
}

// Prints one line per --eval-every checkpoint: ACR's mean AUROC per ratio so far.
models::ZsCheckpointFn print_checkpoint(char fold) {
  return [fold](const models::ZsCheckpoint& c) {
    std::string line;
    char b[16];
    for (double a : c.acr) std::snprintf(b, sizeof b, " %.3f", a), line += b;
    std::printf("fold %c, iteration %lld: ACR%s\n", fold, (long long)c.iter, line.c_str());
  };
}

// The zeroshot options a recipe may set, as given on the command line (empty / -1: the recipe's).
struct RecipeArgs {
  std::string recipe = "auto", task_aug;
  int64_t iters = -1, tasks_per_pass = 0;
  int64_t normals = -1, anomalies = -1;  // per task
  double lr = -1;
  bool batch_normals_given = false;      // zeroshot --batch-normals on the command line (else the default)
};
// A --batch-normals the user chose must fit every test class; the default shrinks to a smaller
// class (one batch of all its rows), as fmnist_zs.md §5 does for small classes.
void check_batch_normals(const models::ZsData& d, const models::ZsConfig& cfg, const RecipeArgs& ra,
                         const std::function<std::string(int64_t)>& class_name) {
  if (!ra.batch_normals_given) return;
  std::vector<int64_t> rows(static_cast<size_t>(d.num_classes), 0);
  for (int64_t y : d.test_y) ++rows.at(static_cast<size_t>(y));
  for (int64_t c : d.test_classes)
    if (cfg.batch_normals > rows[static_cast<size_t>(c)])
      throw Error("--batch-normals: " + std::to_string(cfg.batch_normals) + " is more than the " +
                  std::to_string(rows[static_cast<size_t>(c)]) + " rows of test class " + class_name(c) +
                  " (leave it out to take all of a smaller class in one batch)");
}
// Resolves the recipe for `train_classes` classes, then applies explicit overrides.
// "resumed from FILE after iteration N of M" once a checkpoint is loaded.
std::function<void(int64_t)> print_resumed(const models::ZsConfig& cfg) {
  return [file = cfg.resume_from, iters = cfg.iters](int64_t done) {
    std::printf("resumed from %s after iteration %lld of %lld\n", file.c_str(), (long long)done, (long long)iters);
  };
}

std::string resolve_recipe(models::ZsConfig& cfg, const RecipeArgs& ra, int64_t train_classes, bool images) {
  std::string r = models::apply_recipe(cfg, ra.recipe, train_classes, images);
  if (ra.iters >= 0) cfg.iters = ra.iters;
  if (ra.normals >= 0) cfg.normals = ra.normals;
  if (ra.anomalies >= 0) cfg.anomalies = ra.anomalies;
  if (ra.lr >= 0) cfg.lr = float(ra.lr);
  if (cfg.normals < 2 || cfg.anomalies < 1 || !(cfg.lr > 0))
    throw Error("--task-normals must be >= 2, --task-anomalies >= 1 and --lr > 0");
  if (!ra.task_aug.empty()) {
    data::task_aug(ra.task_aug);  // validates the name before anything runs
    cfg.task_aug = ra.task_aug;
  }
  if (train_classes > 0 && (images ? cfg.task_aug == "permute" : cfg.task_aug.rfind("dihedral", 0) == 0))
    throw Error("--task-aug " + cfg.task_aug + " is for " + (images ? "tables" : "images") + ", and these rows are " +
                (images ? "images" : "feature vectors"));
  if (ra.tasks_per_pass < 0) throw Error("--tasks-per-pass: must be >= 0");
  cfg.tasks_per_pass = ra.tasks_per_pass;
  return r;
}

// The preprocessing every table model uses: the label column, optional one-hot columns, and
// standardisation fitted on `rows` (the training rows).
// `ignore`: comma-separated columns kept out of the features (--ignore, and the --id column).
data::Preprocess fit_preprocess(const data::Csv& rows, const std::string& label, const std::string& one_hot,
                                const std::string& ignore) {
  data::PreprocessOptions opts;
  opts.label = label;
  if (!one_hot.empty()) opts.one_hot = split_list(one_hot, "--one-hot");
  if (!ignore.empty()) opts.ignore = split_list(ignore, "--ignore");
  opts.standardise = true;
  return data::Preprocess::fit(rows, opts);
}

// `normad oneclass`: Deep SVDD's one-class protocol (ntl_dsvdd.md A.6) on Fashion-MNIST with
// FashionMNIST_LeNet: per normal class, train on its training images (autoencoder pretraining, A.5,
// then Deep SVDD, A.7), score the whole test set (that class normal, the nine others anomalies).
// Each class is seeded on its own (init from `seed`, shuffling from seed + 1), so a class run alone
// gives the numbers it gives inside a full run.
struct OneClassArgs {
  std::string dir = data::kFashionMnistDir, classes = "all", preprocess = "gcn";
  int64_t epochs = 150, ae_epochs = 150;
  bool pretrain = true;
  std::string checkpoint, resume;  // epoch checkpoints of one class's run (both phases)
  int64_t checkpoint_every = 0;
};

void oneclass_fmnist(const OneClassArgs& a, uint64_t seed, const std::string& json_path) {
  // Golan & El-Yaniv (NeurIPS 2018), Deep SVDD on Fashion-MNIST, as quoted in ntl_dsvdd.md A.8.
  static const double kReference[10] = {98.2, 90.3, 90.7, 94.2, 89.4, 91.8, 83.4, 98.8, 91.9, 99.0};
  static const char* kNames[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
  if (a.preprocess != "gcn" && a.preprocess != "unit")
    throw Error("--preprocess: '" + a.preprocess + "' is not gcn (GCN-L1 + min-max, A.6) or unit ([0, 1] only)");
  std::vector<int64_t> classes;
  if (a.classes == "all") {
    for (int64_t k = 0; k < 10; ++k) classes.push_back(k);
  } else {
    for (auto& c : split_list(a.classes, "--classes")) {
      if (c.size() != 1 || c[0] < '0' || c[0] > '9') throw Error("--classes: '" + c + "' is not a class 0..9");
      classes.push_back(c[0] - '0');
    }
  }
  if ((!a.checkpoint.empty() || !a.resume.empty()) && classes.size() != 1)
    throw Error("--checkpoint / --resume: one class per run (--classes K)");
  // A resume in the Deep SVDD phase skips the finished pretraining: the checkpoint holds the
  // trained encoder, the centre and the generator as they were.
  std::string resume_phase;
  if (!a.resume.empty()) {
    const nn::Safetensors f = nn::load_safetensors(a.resume);
    resume_phase = f.has_meta("ckpt.run.phase") ? f.meta("ckpt.run.phase") : "";
    if (resume_phase != "autoencoder pretraining" && resume_phase != "Deep SVDD")
      throw Error(a.resume + ": not a checkpoint of oneclass (no autoencoder pretraining or Deep SVDD phase)");
  }
  data::Mnist m = data::load_mnist_dir(a.dir);
  std::printf("Deep SVDD one-class, Fashion-MNIST, FashionMNIST_LeNet; preprocessing %s; pretraining %s "
              "(%lld epochs); %lld epochs; seed %llu, %d threads, device %s\n",
              a.preprocess == "gcn" ? "GCN-L1 + min-max" : "[0, 1]", a.pretrain ? "on" : "off",
              (long long)(a.pretrain ? a.ae_epochs : 0), (long long)a.epochs, (unsigned long long)seed, num_threads(),
              device_name(compute_device()));
  nlohmann::json js{{"protocol", "ntl_dsvdd.md A.6, Fashion-MNIST"}, {"seed", seed}, {"epochs", a.epochs},
                    {"ae_epochs", a.pretrain ? a.ae_epochs : 0}, {"preprocess", a.preprocess}};
  js["classes"] = nlohmann::json::array();
  double total = 0, ref_total = 0;
  for (int64_t k : classes) {
    auto t0 = std::chrono::steady_clock::now();
    std::vector<int64_t> rows;
    for (size_t i = 0; i < m.train_y.size(); ++i)
      if (m.train_y[i] == k) rows.push_back(int64_t(i));
    Tensor train = index_select(m.train_x, rows), test = m.test_x;
    if (a.preprocess == "gcn") {
      train = data::gcn_l1(train);
      data::MinMax mm = data::MinMax::fit(train);  // on the normal class's GCN'd training images
      train = mm.apply(train);
      test = mm.apply(data::gcn_l1(test));
    }
    manual_seed(seed);
    Generator g(seed + 1);
    auto ae = models::lenet_autoencoder("fmnist");
    ae->to(compute_device());  // initialised on the host, trained on --device
    double ae_loss = NAN;  // the last epoch's mean loss of each phase (NaN: not run in this process)
    // Checkpoints of both phases go to one file; each phase resumes only from its own.
    auto plan = [&](const std::string& phase) {
      return nn::CheckpointPlan{a.checkpoint, resume_phase == phase ? a.resume : "", a.checkpoint_every,
                                {{"command", "oneclass"}, {"class", std::to_string(k)}, {"seed", std::to_string(seed)},
                                 {"preprocess", a.preprocess}, {"pretrain", a.pretrain ? "on" : "off"}},
                                [&a, phase](int64_t done) {
                                  std::printf("resumed from %s in %s after epoch %lld\n", a.resume.c_str(),
                                              phase.c_str(), (long long)done);
                                }};
    };
    if (a.pretrain && resume_phase != "Deep SVDD") {
      models::SvddTrainConfig ac = models::ae_defaults("fmnist");
      ac.epochs = a.ae_epochs;
      ac.checkpoint = plan("autoencoder pretraining");
      Progress p{"class " + std::to_string(k) + " autoencoder"};
      ae_loss = models::pretrain_autoencoder(*ae, train, ac, g, std::ref(p)).back();
    }
    models::DeepSvdd svdd(ae->encoder);  // the pretrained encoder is the Deep SVDD network (A.5)
    models::SvddTrainConfig cfg;
    cfg.epochs = a.epochs;
    cfg.checkpoint = plan("Deep SVDD");
    Progress p{"class " + std::to_string(k) + " deep svdd"};
    const double svdd_loss = svdd.fit(train, cfg, g, std::ref(p)).back();
    std::vector<int> y;
    for (int64_t t : m.test_y) y.push_back(t == k ? 0 : 1);
    const double auc = eval::auroc(svdd.score(test), y);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("class %lld %-12s AUROC %.1f   reference %.1f   (%.0f s)\n", (long long)k, kNames[k], 100 * auc,
                kReference[k], secs);
    total += auc, ref_total += kReference[k];
    js["classes"].push_back({{"class", k}, {"name", kNames[k]}, {"auroc", auc}, {"reference", kReference[k] / 100},
                             {"secs", secs}, {"svdd_final_loss", svdd_loss}});
    if (!std::isnan(ae_loss)) js["classes"].back()["ae_final_loss"] = ae_loss;
  }
  const double n = double(classes.size());
  std::printf("mean over %zu classes: AUROC %.1f   reference %.1f\n", classes.size(), 100 * total / n, ref_total / n);
  js["mean_auroc"] = total / n;
  if (!json_path.empty()) write_json(json_path, js);
}

// FMNIST-ZS on the Debian Fashion-MNIST files, the Omniglot net.
void zeroshot_fmnist(const std::string& dir, const std::string& fold_arg, models::ZsConfig cfg, const RecipeArgs& ra,
                     const std::string& json_path) {
  std::vector<char> folds;
  if (fold_arg == "A" || fold_arg == "B") folds = {fold_arg[0]};
  else if (fold_arg == "both") folds = {'A', 'B'};
  else throw Error("--fold: '" + fold_arg + "' is not A, B or both");
  const std::string recipe = resolve_recipe(cfg, ra, 5, true);  // 5 training classes per fold
  data::Mnist m = data::load_mnist_dir(dir);
  print_header("FMNIST-ZS (fmnist_zs.md), ACR-DSVDD, Omniglot net", cfg, recipe);
  std::vector<models::ZsFold> results;
  auto omniglot = [](Generator& init) -> std::unique_ptr<models::AcrModel> {
    return std::make_unique<models::AcrDsvdd>(std::make_shared<models::OmniglotNet>(init), 32, init);
  };
  for (char f : folds) {
    cfg.fold = f;
    Progress p{std::string("fold ") + f};
    const models::ZsData d = models::fmnist_fold(m, f);
    check_batch_normals(d, cfg, ra, [](int64_t c) { return std::to_string(c); });
    results.push_back(models::run_zeroshot(d, cfg, omniglot, std::ref(p), print_checkpoint(f),
                                           {{"command", "zeroshot-fmnist"}, {"recipe", recipe}}, print_resumed(cfg)));
  }
  report(results, cfg, json_path, "FMNIST-ZS", recipe);
}

// The same protocol on a labelled table: classes are tasks, the tabular MLP (acr.md §7.3), features
// standardised with the statistics of the training classes' rows.
void zeroshot_csv(const std::string& path, const std::string& label, const std::string& train_arg,
                  const std::string& test_arg, const std::string& one_hot, const std::string& ignore,
                  const std::string& model,
                  models::ZsConfig cfg, const RecipeArgs& ra, const std::string& json_path) {
  if (label.empty()) throw Error("--csv needs --label COL (the class column)");
  data::Csv csv = data::read_csv(path);
  const auto train_names = split_list(train_arg, "--train-classes"), test_names = split_list(test_arg, "--test-classes");
  // Preprocessing is fitted on the training classes' rows only.
  data::Csv train_rows = data::select_rows(csv, label, train_names);
  if (train_rows.rows.empty()) throw Error(path + ": no row has one of the --train-classes");
  data::Table table = fit_preprocess(train_rows, label, one_hot, ignore).apply(csv);
  const auto classes = data::label_classes(table.labels);
  const auto ids = data::label_ids(table.labels, classes);
  auto class_ids = [&](const std::vector<std::string>& names, const char* what) {
    std::vector<int64_t> out;
    for (auto& n : names) {
      auto it = std::find(classes.begin(), classes.end(), n);
      if (it == classes.end()) {
        std::string avail;
        for (auto& c : classes) avail += (avail.empty() ? "" : ", ") + c;
        throw Error(std::string(what) + ": class '" + n + "' is not in column '" + label + "' of " + path + " (classes: " + avail + ")");
      }
      out.push_back(it - classes.begin());
    }
    return out;
  };
  models::ZsData d{table.x, table.x, ids, ids, class_ids(train_names, "--train-classes"),
                   class_ids(test_names, "--test-classes"), static_cast<int64_t>(classes.size())};
  for (int64_t c : d.train_classes)
    if (std::find(d.test_classes.begin(), d.test_classes.end(), c) != d.test_classes.end())
      throw Error("class '" + classes[c] + "' is both a training and a test class");
  check_batch_normals(d, cfg, ra, [&](int64_t c) { return "'" + classes[c] + "'"; });
  cfg.fold = 'T';
  const int64_t F = table.x.size(1);
  const std::string recipe = resolve_recipe(cfg, ra, static_cast<int64_t>(d.train_classes.size()), false);
  print_header("Zero-shot on " + path + (model == "ntl" ? ", ACR-NTL tabular NTL (" : ", ACR-DSVDD tabular MLP (") +
                   std::to_string(F) + " features)", cfg, recipe);
  auto make = [F, model](Generator& init) -> std::unique_ptr<models::AcrModel> {
    if (model == "ntl") return std::make_unique<models::AcrNtl>(std::make_shared<models::TabNtl>(F, init));
    return std::make_unique<models::AcrDsvdd>(models::tabular_mlp(F, init), 32, init);
  };
  Progress p{"train"};
  report({models::run_zeroshot(d, cfg, make, std::ref(p), print_checkpoint(cfg.fold),
                               {{"command", "zeroshot-csv"}, {"model", model}, {"recipe", recipe}},
                               print_resumed(cfg))},
         cfg, json_path, "zeroshot-csv", recipe);
}

// `normad eval`: AUROC, AP and F1 of a scores file (columns "score" and "index" or "name") against
// the labels of the file that was scored. Scores and labels are paired by key, never by position:
// "index" is the 0-based row of the labels file (normad score's output), "name" matches a "name"
// column of the labels file (normad mvg score's output). Labels are 0/1 (1 = anomaly) or, with
// --normal V, any values where V marks the normal rows. With a "prediction" column (the model's
// threshold decision) it also reports the share of normal rows flagged (false-positive rate) and of
// anomalies flagged (recall).
void eval_scores(const std::string& scores_path, const std::string& labels_path, const std::string& label,
                 const std::string& normal, const std::string& json_path) {
  const data::Csv scores = data::read_csv(scores_path);
  const auto column = data::column_index;
  const int64_t sc = column(scores, "score");
  if (sc < 0) throw Error(scores_path + ": no 'score' column (expected normad score's index,score,prediction)");
  const int64_t by_name = column(scores, "name"), by_index = column(scores, "index");
  if (by_name < 0 && by_index < 0)
    throw Error(scores_path + ": no 'index' or 'name' column to pair each score with its row of " + labels_path);
  const int64_t pred_col = column(scores, "prediction");
  data::Csv lab = data::read_csv(labels_path);
  // A scores file (normad score / mvg score's columns only) is never ground truth.
  const bool scores_shape = column(lab, "score") >= 0 && std::all_of(lab.header.begin(), lab.header.end(), [](const std::string& h) {
    return h == "index" || h == "name" || h == "score" || h == "prediction";
  });
  if (scores_shape)
    throw Error(labels_path + ": this is a scores file (columns " + lab.header.front() + ", ...), not ground truth: " +
                "pass the data file with the true labels as --labels");
  if (label == "prediction" && column(scores, "prediction") >= 0)
    throw Error("--label prediction: 'prediction' is the name of normad's threshold decision, not a label");
  const int64_t li = column(lab, label);
  if (li < 0) {
    std::string cols;
    for (auto& h : lab.header) cols += (cols.empty() ? "'" : ", '") + h + "'";
    throw Error(labels_path + ": label column '" + label + "' not found (columns: " + cols + "); set it with --label");
  }
  const int64_t n = static_cast<int64_t>(scores.rows.size());
  if (n != static_cast<int64_t>(lab.rows.size()))
    throw Error(scores_path + " has " + std::to_string(n) + " scores but " + labels_path + " has " +
                std::to_string(lab.rows.size()) + " rows: every row needs exactly one score");
  // Key of each labels row -> its position; each score's key must be found exactly once.
  std::map<std::string, int64_t> row_of;
  const int64_t lab_name = by_name >= 0 ? column(lab, "name") : -1;
  if (by_name >= 0 && lab_name < 0)
    throw Error(labels_path + ": no 'name' column to match the names in " + scores_path);
  for (int64_t i = 0; i < n; ++i) {
    const std::string key = by_name >= 0 ? lab.rows[i][lab_name] : std::to_string(i);
    if (!row_of.emplace(key, i).second) throw Error(labels_path + ":" + std::to_string(lab.lines[i]) + ": name '" + key + "' appears twice");
  }
  std::vector<double> s(n);
  std::vector<int> flagged(n, 0);
  std::vector<std::string> values(n);
  std::vector<int64_t> value_line(n);
  std::vector<bool> used(n, false);
  for (int64_t i = 0; i < n; ++i) {
    const std::string where = scores_path + ":" + std::to_string(scores.lines[i]);
    const std::string& cell = scores.rows[i][sc];
    char* end = nullptr;
    s[i] = std::strtod(cell.c_str(), &end);
    if (cell.empty() || *end != '\0') throw Error(where + ": score '" + cell + "' is not a number");
    if (!std::isfinite(s[i])) throw Error(where + ": score '" + cell + "' is not finite");
    const std::string& key = scores.rows[i][by_name >= 0 ? by_name : by_index];
    auto it = row_of.find(key);
    if (it == row_of.end())
      throw Error(where + ": " + (by_name >= 0 ? "name '" : "index '") + key + "' has no row in " + labels_path +
                  (by_name >= 0 ? "" : " (index is the 0-based row of the scored file)"));
    if (used[it->second]) throw Error(where + ": " + key + " is scored twice");
    used[it->second] = true;
    values[i] = lab.rows[it->second][li];
    value_line[i] = lab.lines[it->second];
    if (pred_col >= 0) {
      const std::string& p = scores.rows[i][pred_col];
      if (p != "0" && p != "1") throw Error(where + ": prediction '" + p + "' is not 0 or 1");
      flagged[i] = p == "1";
    }
  }
  std::vector<int> y;
  if (!normal.empty()) {
    y = data::anomaly_labels(values, normal);
  } else {
    for (int64_t i = 0; i < n; ++i) {
      if (values[i] != "0" && values[i] != "1")
        throw Error(labels_path + ":" + std::to_string(value_line[i]) + ": label '" + values[i] + "' in column '" +
                    label + "' is not 0 or 1 (pass --normal VALUE for class labels)");
      y.push_back(values[i] == "1");
    }
  }
  const int64_t anomalies = std::count(y.begin(), y.end(), 1);
  if (anomalies == 0 || anomalies == n)
    throw Error(labels_path + ": every row of column '" + label + "' is " + (anomalies ? "an anomaly" : "normal") +
                (normal.empty() ? "" : " (--normal " + normal + ")") + "; AUROC, AP and F1 need both");
  const double auroc = eval::auroc(s, y), ap = eval::average_precision(s, y);
  const double f1 = eval::f1_at_true_ratio(s, y), f1max = eval::f1_max(s, y);
  std::printf("rows %lld, anomalies %lld (paired by %s)\nAUROC   %.4f\nAP      %.4f\nF1      %.4f  (threshold at the true anomaly ratio)\nF1-max  %.4f\n",
              (long long)n, (long long)anomalies, by_name >= 0 ? "name" : "index", auroc, ap, f1, f1max);
  nlohmann::json js{{"auroc", auroc}, {"ap", ap}, {"f1", f1}, {"f1_max", f1max}, {"rows", n}, {"anomalies", anomalies}};
  if (pred_col >= 0) {
    // The model's own threshold, as stored in its file: what a user of `prediction` gets.
    int64_t fp = 0, tp = 0;
    for (int64_t i = 0; i < n; ++i) (y[i] ? tp : fp) += flagged[i];
    const double fpr = n - anomalies ? double(fp) / double(n - anomalies) : 0, recall = anomalies ? double(tp) / double(anomalies) : 0;
    std::printf("at the model's threshold: %.1f%% of normal rows flagged (false-positive rate, %lld of %lld), "
                "%.1f%% of anomalies flagged (recall)\n",
                100 * fpr, (long long)fp, (long long)(n - anomalies), 100 * recall);
    js["threshold_fpr"] = fpr, js["threshold_recall"] = recall;
  }
  if (!json_path.empty()) write_json(json_path, js);
}

// How a model file's threshold is set (train): the held-out normal rows by default, a reference
// file of normal rows, or PyOD's contamination of the training scores (an explicit choice).
struct ThresholdArgs {
  double fpr = 0.05, calibration = 0.2, contamination = 0.1;
  std::string reference;
  bool calibration_given = false, contamination_given = false;

  bool fpr_given = false;

  // Validates the options (before any data is read or a model trained) and names the rule.
  std::string rule() const {
    if (int(!reference.empty()) + int(calibration_given) + int(contamination_given) > 1)
      throw Error("--calibration, --reference and --contamination are alternative threshold rules: give at most one");
    if (!(fpr > 0 && fpr < 1)) throw Error("--fpr: must be in (0, 1), got " + std::to_string(fpr));
    if (contamination_given && fpr_given)
      throw Error("--fpr sets the calibration and reference rules; --contamination is a rule of its own");
    if (contamination_given && !(contamination > 0 && contamination < 0.5))
      throw Error("--contamination: must be in (0, 0.5), got " + std::to_string(contamination));
    if (!reference.empty()) {
      std::error_code ec;
      if (!std::filesystem::is_regular_file(reference, ec)) throw Error("--reference: " + reference + ": no such file");
      return "reference";
    }
    return contamination_given ? "contamination" : "calibration";
  }
};

// `normad train`: one-class NeuTraL-AD or Deep SVDD on the normal rows of a table, or ACR on its
// labelled classes. The model file's metadata holds the architecture, the preprocessing and the
// threshold with its rule, so `score` needs nothing else.
struct TrainArgs {
  // NTL's transformations default to mul: on the breast-cancer split of the README, residual (the
  // thyroid / arrhythmia configs of ntl_dsvdd.md B.6) scores below chance (AUROC 0.18 / 0.47 / 0.33,
  // seeds 0-2), mul 0.79 / 0.83 / 0.89.
  std::string model = "ntl", data, label, normal, one_hot, out, trans_type = "mul", widths = "64,32";
  std::string ignore, id;     // columns kept out of the features; id is also written by normad score
  std::string checkpoint, resume;  // ACR: meta-training state file, and one to continue from
  int64_t checkpoint_every = 0;
  std::string ignored() const { return id.empty() ? ignore : ignore.empty() ? id : ignore + "," + id; }
  std::string train_classes;  // ACR: the classes that become tasks (default: all)
  int64_t iters = 2000;       // ACR meta-training iterations
  std::string recipe = "auto", task_aug;  // ACR: see RecipeArgs
  int64_t K = 11;
  int64_t acr_batch = 200;    // ACR: rows per BN batch when scoring (stored in the model)
  ThresholdArgs thr;
  models::NtlTrainConfig train;
};

// Non-finite scores are an error naming the file and the row, never a quiet "normal".
void check_scores(const std::vector<double>& scores, const data::Csv& rows, const std::string& what) {
  for (size_t i = 0; i < scores.size(); ++i)
    if (!std::isfinite(scores[i]))
      throw Error(rows.path + ":" + std::to_string(rows.lines.at(i)) + ": the " + what + " score of this row is " +
                  (std::isnan(scores[i]) ? "NaN" : "infinite") +
                  " (the model's output overflowed: the row is extreme after the model's standardisation, or the "
                  "model is broken)");
}

// The normal rows of a --reference file: with --label, those whose label is --normal (the label
// column may be absent: then every row is taken as normal).
data::Csv reference_rows(const TrainArgs& a) {
  data::Csv ref = data::read_csv(a.thr.reference);
  if (!a.label.empty() && std::find(ref.header.begin(), ref.header.end(), a.label) != ref.header.end()) {
    ref = data::select_rows(ref, a.label, {a.normal});
    if (ref.rows.empty()) throw Error(a.thr.reference + ": no row has " + a.label + " = '" + a.normal + "'");
  }
  if (ref.rows.empty()) throw Error(a.thr.reference + ": no rows");
  return ref;
}

// The rows a model is fitted on and, for the calibration rule, the held-out normal rows its
// threshold is set on (a seeded draw of --calibration of them; the model never sees them, nor does
// its standardisation). With `by_label` (ACR) the draw is made within each class, so every class
// keeps its share of rows for meta-training and for calibration. Every cell of `csv` is checked
// first, so a bad cell fails before training.
struct FitRows {
  data::Csv fit, held;
  data::Preprocess pre;  // fitted on `fit`
  data::Table table;     // `fit` encoded
};
FitRows split_and_preprocess(const data::Csv& csv, const TrainArgs& a, const std::string& rule, uint64_t seed,
                             bool by_label = false) {
  const data::Table all = fit_preprocess(csv, a.label, a.one_hot, a.ignored()).apply(csv);
  FitRows r{csv, {}, {}, {}};
  if (rule == "calibration") {
    std::map<std::string, std::vector<int64_t>> groups;  // label (or one group) -> rows
    for (int64_t i = 0; i < int64_t(csv.rows.size()); ++i) groups[by_label ? all.labels[i] : ""].push_back(i);
    std::vector<int64_t> fit, held;
    uint64_t stream = seed + 2;
    for (auto& [name, rows] : groups) {
      eval::CalibrationSplit sp;
      try {
        sp = eval::calibration_split(int64_t(rows.size()), a.thr.calibration, stream++);
      } catch (const Error& e) {
        throw Error(by_label ? a.data + ": class '" + name + "': " + e.what() : std::string(e.what()));
      }
      for (int64_t i : sp.fit) fit.push_back(rows[i]);
      for (int64_t i : sp.calibration) held.push_back(rows[i]);
    }
    std::sort(fit.begin(), fit.end());
    std::sort(held.begin(), held.end());
    r.fit = data::take_rows(csv, fit), r.held = data::take_rows(csv, held);
  }
  r.pre = fit_preprocess(r.fit, a.label, a.one_hot, a.ignored());
  r.table = r.pre.apply(r.fit);
  return r;
}

void print_rule(const eval::ThresholdReport& r, std::map<std::string, std::string>& meta) {
  for (auto& kv : r.to_metadata("normad.")) meta[kv.first] = kv.second;
  std::printf("%s\n", r.describe().c_str());
}

// `normad train --model acr-dsvdd|acr-ntl`: meta-train on the labelled classes of a table (each
// class a task, acr.md §6). Threshold: by default a held-out fraction of every class's rows, each
// class's held-out rows scored as their own batches (balanced chunks of --batch rows).
void train_acr(const TrainArgs& a, uint64_t seed, const std::string& json_path) {
  if (a.label.empty()) throw Error("--model " + a.model + " needs --label COL (its classes are the tasks)");
  if (a.acr_batch < 2) throw Error("--batch: ACR scores batches of at least 2 rows, got " + std::to_string(a.acr_batch));
  data::Csv csv = data::read_csv(a.data);
  if (!a.train_classes.empty()) csv = data::select_rows(csv, a.label, split_list(a.train_classes, "--train-classes"));
  const std::string rule = a.thr.rule();
  auto [fit_csv, held_csv, pre, table] = split_and_preprocess(csv, a, rule, seed, true);
  const auto classes = data::label_classes(table.labels);
  const auto ids = data::label_ids(table.labels, classes);
  std::vector<int64_t> all(classes.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
  const int64_t F = table.x.size(1);
  models::ZsConfig cfg;
  cfg.seed = seed;
  RecipeArgs ra{a.recipe, a.task_aug, a.iters, 0, -1, -1, -1};
  const std::string recipe = resolve_recipe(cfg, ra, static_cast<int64_t>(classes.size()), false);
  // Every class must fill a task's normals with the rows left after the hold-out.
  const auto class_rows = data::rows_by_class(ids, static_cast<int64_t>(classes.size()));
  for (size_t c = 0; c < classes.size(); ++c)
    if (static_cast<int64_t>(class_rows[c].size()) < cfg.normals)
      throw Error(a.data + ": class '" + classes[c] + "' has " + std::to_string(class_rows[c].size()) +
                  " rows to meta-train on" + (rule == "calibration" ? " after --calibration holds some out" : "") +
                  ", fewer than the " + std::to_string(cfg.normals) + " normals a task needs");
  cfg.state_file = a.checkpoint, cfg.resume_from = a.resume, cfg.checkpoint_every = a.checkpoint_every;
  Generator init(seed), rng(seed + 1);
  auto model = cli::make_acr(a.model, F, init);
  model->to(compute_device());
  std::printf("%s: %zu classes as tasks, %lld rows, %lld features, %lld iterations, recipe %s, task augmentation %s\n",
              a.model.c_str(), classes.size(), (long long)table.x.size(0), (long long)F, (long long)cfg.iters,
              recipe.c_str(), cfg.task_aug.c_str());
  Progress p{"train"};
  models::meta_train(*model, table.x, ids, static_cast<int64_t>(classes.size()), all, cfg, rng, std::ref(p),
                     {{{"command", "train"}, {"model", a.model}, {"recipe", recipe}}, {}, {}, print_resumed(cfg)});
  // Scores of a table whose rows come in classes: each class its own batches (its own statistics),
  // balanced chunks of about --batch rows; the batch sizes used are reported and stored.
  std::vector<int64_t> batch_sizes;
  auto score_by_class = [&](const data::Table& t, const data::Csv& rows) {
    std::vector<double> out;
    std::map<std::string, std::vector<int64_t>> by;
    for (size_t i = 0; i < t.labels.size(); ++i) by[t.labels[i]].push_back(int64_t(i));
    for (auto& [name, r] : by) {
      if (r.size() < 2) continue;  // one row has no batch statistics
      for (auto [b, e] : models::score_chunks(int64_t(r.size()), a.acr_batch)) batch_sizes.push_back(e - b);
      for (double v : model->score(index_select(t.x, r), false, a.acr_batch)) out.push_back(v);
    }
    if (out.size() < 2) throw Error(rows.path + ": too few rows per class to score as batches for the threshold");
    return out;  // the threshold rules refuse a non-finite score
  };
  eval::ThresholdReport thr;
  if (rule == "contamination") thr = eval::contamination_rule(score_by_class(table, fit_csv), a.thr.contamination);
  else if (rule == "calibration") thr = eval::fpr_rule(score_by_class(pre.apply(held_csv), held_csv), a.thr.fpr, "calibration");
  else {
    const data::Csv ref = data::read_csv(a.thr.reference);
    std::vector<double> s = model->score(pre.apply(ref).x, false, a.acr_batch);
    for (auto [b, e] : models::score_chunks(int64_t(ref.rows.size()), a.acr_batch)) batch_sizes.push_back(e - b);
    check_scores(s, ref, "reference");
    thr = eval::fpr_rule(s, a.thr.fpr, "reference");
  }
  const int64_t smallest = *std::min_element(batch_sizes.begin(), batch_sizes.end());
  const int64_t largest = *std::max_element(batch_sizes.begin(), batch_sizes.end());
  auto meta = pre.to_metadata();
  print_rule(thr, meta);
  meta["normad.kind"] = a.model;
  if (!a.id.empty()) meta["normad.id"] = a.id;
  meta["acr.in"] = std::to_string(F);
  meta["acr.recipe"] = recipe;
  meta["acr.task_aug"] = cfg.task_aug;
  meta["acr.iters"] = std::to_string(cfg.iters);
  meta["acr.batch"] = std::to_string(a.acr_batch);
  meta["acr.threshold_batches"] = std::to_string(smallest) + "-" + std::to_string(largest);
  nn::save_safetensors(a.out, model->state(), meta);
  std::printf("threshold set on %zu batches of %lld-%lld rows (one class each); normad score cuts a file into "
              "batches of about %lld rows (--batch, stored in the model); wrote %s\n",
              batch_sizes.size(), (long long)smallest, (long long)largest, (long long)a.acr_batch, a.out.c_str());
  if (!json_path.empty())
    write_json(json_path, nlohmann::json{{"model", a.model}, {"rows", table.x.size(0)}, {"classes", classes},
                                           {"threshold", thr.threshold}, {"threshold_rule", thr.rule},
                                           {"threshold_target", thr.target}, {"threshold_achieved", thr.achieved},
                                           {"threshold_rows", thr.rows}, {"batch", a.acr_batch},
                                           {"threshold_batches", {smallest, largest}}, {"out", a.out}});
}

void train_model(const TrainArgs& a, uint64_t seed, const std::string& json_path) {
  if (a.out.empty()) throw Error("--out: missing");
  if (a.model == "acr-dsvdd" || a.model == "acr-ntl") return train_acr(a, seed, json_path);
  if (a.model != "ntl" && a.model != "dsvdd")
    throw Error("--model: '" + a.model + "' is not one of dsvdd, ntl, acr-dsvdd, acr-ntl");
  if (a.train.epochs < 1 || a.train.batch < 2) throw Error("--epochs must be >= 1 and --batch >= 2");
  if (!(a.train.lr > 0) || !std::isfinite(a.train.lr)) throw Error("--lr: must be a positive number");
  if (!(a.train.weight_decay >= 0) || !std::isfinite(a.train.weight_decay)) throw Error("--weight-decay: must be a number >= 0");
  if (a.K < 2 || a.K > 1000) throw Error("--transformations: K must be in [2, 1000] (the loss divides by ln K)");
  if (a.trans_type != "forward" && a.trans_type != "residual" && a.trans_type != "mul")
    throw Error("--trans-type: '" + a.trans_type + "' is not forward, residual or mul");
  const std::string rule = a.thr.rule();
  data::Csv csv = data::read_csv(a.data);
  if (!a.label.empty()) {
    // One-class: train on the rows whose label is the normal value.
    if (a.normal.empty()) throw Error("--label needs --normal VALUE (the normal class)");
    csv = data::select_rows(csv, a.label, {a.normal});
    if (csv.rows.empty()) throw Error(a.data + ": no row has " + a.label + " = '" + a.normal + "'");
  }
  auto [fit_csv, held_csv, pre, table] = split_and_preprocess(csv, a, rule, seed);
  const int64_t F = table.x.size(1);
  manual_seed(seed);  // initialisation draws from the default generator
  Generator shuffle(seed + 1);
  Progress p{"train"};
  auto meta = pre.to_metadata();
  // Epoch checkpoints: the trainer adds its settings and a digest of the rows to the run's fields.
  nn::CheckpointPlan plan{a.checkpoint, a.resume, a.checkpoint_every,
                          {{"command", "train"}, {"model", a.model}, {"widths", a.widths}, {"K", std::to_string(a.K)},
                           {"trans_type", a.trans_type}},
                          [&a](int64_t done) {
                            std::printf("resumed from %s after epoch %lld of %lld\n", a.resume.c_str(), (long long)done,
                                        (long long)a.train.epochs);
                          }};
  std::vector<double> losses;
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::function<std::vector<double>(const Tensor&)> score;
  std::shared_ptr<models::NeutralAD> net;
  std::shared_ptr<models::DeepSvdd> svdd;
  if (a.model == "ntl") {
    models::NtlConfig cfg;
    cfg.x_dim = F;
    cfg.K = a.K;
    cfg.trans_type = a.trans_type;
    net = std::make_shared<models::NeutralAD>(cfg);
    net->to(compute_device());
    std::printf("NeuTraL-AD: %lld normal rows, %lld features, K = %lld (%s), %lld epochs\n", (long long)table.x.size(0),
                (long long)F, (long long)cfg.K, cfg.trans_type.c_str(), (long long)a.train.epochs);
    models::NtlTrainConfig train = a.train;
    train.checkpoint = plan;
    auto fit = models::train_ntl(*net, table.x, train, shuffle, std::ref(p));
    losses = fit.losses;
    if (fit.selection_applied)
      std::printf("kept epoch %lld of the %zu run: the lowest training loss from epoch %lld on (patience %lld)\n",
                  (long long)fit.selected_epoch, losses.size(), (long long)a.train.select_from,
                  (long long)a.train.patience);
    else
      std::printf("kept the last epoch (%lld): %s\n", (long long)fit.selected_epoch,
                  a.train.patience == 0 ? "--patience 0 turns selection off"
                                        : ("selection by training loss starts at epoch " +
                                           std::to_string(a.train.select_from) + ", after the epochs run").c_str());
    meta["ntl.selected_epoch"] = std::to_string(fit.selected_epoch);
    for (auto& kv : models::ntl_metadata(net->config())) meta.insert(kv);
    tensors = net->state_dict();
    score = [net](const Tensor& x) { return models::score_ntl(*net, x); };
  } else {
    const auto widths = cli::parse_widths(a.widths, "--widths");
    svdd = std::make_shared<models::DeepSvdd>(models::svdd_mlp(F, widths));
    svdd->net->to(compute_device());
    models::SvddTrainConfig cfg;
    cfg.epochs = a.train.epochs, cfg.batch = a.train.batch, cfg.lr = a.train.lr;
    cfg.weight_decay = a.train.weight_decay, cfg.milestones = {};
    cfg.checkpoint = plan;
    std::printf("Deep SVDD: %lld normal rows, %lld features, widths %s, %lld epochs\n", (long long)table.x.size(0),
                (long long)F, a.widths.c_str(), (long long)cfg.epochs);
    losses = svdd->fit(table.x, cfg, shuffle, std::ref(p));
    meta["dsvdd.in"] = std::to_string(F);
    meta["dsvdd.widths"] = a.widths;
    tensors = svdd->net->state_dict();
    tensors.emplace_back("c", svdd->c);
    score = [svdd](const Tensor& x) { return svdd->score(x); };
  }
  eval::ThresholdReport thr;
  if (rule == "contamination") {
    const std::vector<double> train_scores = score(table.x);
    check_scores(train_scores, fit_csv, "training");
    thr = eval::contamination_rule(train_scores, a.thr.contamination);
  } else {
    const data::Csv rows = rule == "calibration" ? held_csv : reference_rows(a);
    const std::vector<double> s = score(pre.apply(rows).x);
    check_scores(s, rows, rule);
    thr = eval::fpr_rule(s, a.thr.fpr, rule);
  }
  print_rule(thr, meta);
  meta["normad.kind"] = a.model;
  if (!a.id.empty()) meta["normad.id"] = a.id;
  nn::save_safetensors(a.out, tensors, meta);
  std::printf("final loss %.4f, %lld rows fitted, wrote %s\n", losses.back(), (long long)table.x.size(0), a.out.c_str());
  if (!json_path.empty())
    write_json(json_path, nlohmann::json{{"model", a.model}, {"rows", table.x.size(0)}, {"epoch_loss", losses},
                                           {"threshold", thr.threshold}, {"threshold_rule", thr.rule},
                                           {"threshold_target", thr.target}, {"threshold_achieved", thr.achieved},
                                           {"threshold_rows", thr.rows}, {"out", a.out}});
}

// `normad score`: the stored preprocessing, the same scoring path as evaluation, one row per input
// row: index (0-based row of the data file), score, prediction (1: above the model's threshold).
// batch 0: the model's (ACR: the batch it was calibrated with, acr.batch; others 1000 rows per pass,
// which does not change their scores).
void score_model(const std::string& model_path, const std::string& data_path, const std::string& out, int64_t batch,
                 const std::string& id_arg, const std::string& json_path) {
  if (out.empty()) throw Error("--out: missing");
  if (batch < 0) throw Error("--batch: must be >= 0 (0: the model's)");
  const nn::Safetensors f = nn::load_safetensors(model_path);
  cli::TableModel model = cli::load_table_model(f, model_path);
  const double threshold = model.threshold;
  const data::Csv rows = data::read_csv(data_path);
  // The identifier column: --id, else the model's (train --id); one from the model that this file
  // lacks is left out with a note, one asked for is an error. Found before encoding, so that a
  // column the model never saw can be the id (it is then skipped like an ignored column).
  const std::string id = !id_arg.empty() ? id_arg : f.has_meta("normad.id") ? f.meta("normad.id") : "";
  const int64_t id_col = id.empty() ? -1 : data::column_index(rows, id);
  if (id_col < 0 && !id_arg.empty()) throw Error("--id: column '" + id + "' not found in " + data_path);
  if (id_col < 0 && !id.empty())
    std::fprintf(stderr, "normad: %s has no column '%s' (the model's --id): the scores carry the row index only\n",
                 data_path.c_str(), id.c_str());
  if (id_col >= 0 && (id == "index" || id == "score" || id == "prediction"))
    throw Error("--id: column '" + id + "' would clash with the scores file's own column of that name");
  if (id_col >= 0 && id != model.pre.label &&
      std::find(model.pre.inputs.begin(), model.pre.inputs.end(), id) == model.pre.inputs.end())
    model.pre.ignored.push_back(id);
  data::Table table = model.pre.apply(rows);
  if (table.unknown_categories)
    std::fprintf(stderr, "normad: %lld cells had categories unseen in training (encoded as zeros)\n",
                 (long long)table.unknown_categories);
  if (table.extreme_cells)
    std::fprintf(stderr,
                 "normad: warning: %lld cells are more than %g training standard deviations from the mean (first: %s); "
                 "the scores of their rows say little\n",
                 (long long)table.extreme_cells, data::kExtremeStd, table.first_extreme.c_str());
  // ACR: batch-level scores, the file's rows in balanced chunks of about acr.batch rows, each with
  // its own statistics (models/acr.h score_chunks).
  if (model.acr && batch && batch != model.acr_batch)
    std::fprintf(stderr, "normad: --batch %lld differs from the %lld rows per batch the threshold was set with; "
                         "zero-shot scores depend on the batch, so the threshold may not hold\n",
                 (long long)batch, (long long)model.acr_batch);
  if (model.acr && batch == 1) throw Error("--batch: ACR scores batches of at least 2 rows (their own BN statistics)");
  std::vector<double> scores;
  try {
    scores = model.score(table.x, batch);
  } catch (const Error& e) {
    throw Error(data_path + ": " + e.what());
  }
  check_scores(scores, rows, "anomaly");
  std::string text = id_col >= 0 ? "index," + data::csv_field(id) + ",score,prediction\n" : "index,score,prediction\n";
  char line[96];
  for (size_t i = 0; i < scores.size(); ++i) {
    text += std::to_string(i) + ",";
    if (id_col >= 0) text += data::csv_field(rows.rows[i][size_t(id_col)]) + ",";
    std::snprintf(line, sizeof line, "%.9g,%d\n", scores[i], scores[i] > threshold ? 1 : 0);
    text += line;
  }
  write_atomic(out, text);
  int64_t flagged = 0;
  for (double v : scores) flagged += v > threshold;
  const std::string rule = f.has_meta("normad.threshold_rule") ? f.meta("normad.threshold_rule") : "unrecorded";
  std::printf("scored %zu rows, %lld above the threshold %.6g (rule: %s), wrote %s\n", scores.size(), (long long)flagged,
              threshold, rule.c_str(), out.c_str());
  if (!json_path.empty())
    write_json(json_path, nlohmann::json{{"rows", scores.size()}, {"flagged", flagged}, {"threshold", threshold},
                                           {"threshold_rule", rule}, {"out", out}});
}

}  // namespace

// The file options of the chosen subcommand (and its own subcommand: mvg fit), split into inputs
// and outputs, for cli::check_paths. Options that name a kind (train --model ntl) or a built-in
// data set (zeroshot --data fmnist) count as inputs only when such a file exists.
void check_run_paths(const CLI::App& app) {
  static const std::vector<std::string> input_options = {"--data", "--csv", "--reference", "--features", "--model",
                                                          "--weights", "--scores", "--labels", "--data-dir",
                                                          "--images", "--mvtec"};
  static const std::vector<std::string> output_options = {"--out", "--json", "--profile", "--checkpoint"};
  std::vector<cli::PathArg> inputs, outputs;
  std::vector<const CLI::App*> chosen;
  for (const CLI::App* sub : app.get_subcommands()) {
    chosen.push_back(sub);
    for (const CLI::App* inner : sub->get_subcommands()) chosen.push_back(inner);
  }
  for (const CLI::App* sub : chosen)
    for (const CLI::Option* opt : sub->get_options()) {
      if (opt->count() == 0) continue;
      if (opt->get_lnames().empty()) continue;
      const std::string name = "--" + opt->get_lnames().front();
      for (const std::string& value : opt->results()) {
        if (std::find(input_options.begin(), input_options.end(), name) != input_options.end())
          inputs.push_back({name, value});
        if (std::find(output_options.begin(), output_options.end(), name) != output_options.end() && !value.empty())
          outputs.push_back({name, value});
      }
    }
  cli::check_paths(inputs, outputs);
  // --resume FILE is read before anything is written: --checkpoint may replace it (and usually
  // does, continuing the same file), no other output may.
  for (const CLI::App* sub : chosen) {
    const CLI::Option* resume = sub->get_option_no_throw("--resume");
    if (!resume || resume->count() == 0) continue;
    for (const cli::PathArg& out : outputs)
      if (out.option != "--checkpoint")
        cli::check_paths({{"--resume", resume->results().front()}}, {out});
  }
}

// Every numeric option of every subcommand: the value must be a finite number ("nan", "inf" and
// "1e999" are refused, naming the option), and an unsigned one must not be negative (CLI11 would
// wrap "--seed -1" to 2^64 - 1). Ranges particular to an option are checked where it is used.
void check_numeric_options(CLI::App& app) {
  const CLI::Validator finite(
      [](std::string& v) -> std::string {
        char* end = nullptr;
        const double x = std::strtod(v.c_str(), &end);
        if (end == v.c_str() || !std::isfinite(x)) return "must be a finite number, got '" + v + "'";
        return "";
      },
      "");
  const CLI::Validator non_negative(
      [](std::string& v) -> std::string {
        return v.find('-') != std::string::npos ? "must be a non-negative integer, got '" + v + "'" : "";
      },
      "");
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    for (CLI::Option* opt : sub->get_options()) {
      const std::string type = opt->get_type_name();
      if (type == "INT" || type == "UINT" || type == "FLOAT") opt->check(finite);
      if (type == "UINT") opt->check(non_negative);
    }
    check_numeric_options(*sub);
  }
}

// A first argument that is no subcommand: suggest the ones within two edits (trian -> train).
// Nested commands too (mvg fitt -> mvg fit).
void check_subcommand(const CLI::App& app, int argc, char** argv, int at = 1) {
  const auto subs = app.get_subcommands([](const CLI::App*) { return true; });
  if (subs.empty() || argc <= at || argv[at][0] == '-') return;
  const std::string given = argv[at];
  std::vector<std::string> names;
  for (const CLI::App* sub : subs) {
    names.push_back(sub->get_name());
    if (sub->get_name() == given) return check_subcommand(*sub, argc, argv, at + 1);
  }
  auto distance = [](const std::string& a, const std::string& b) {  // Damerau-Levenshtein (adjacent swaps)
    std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
    for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
    for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
    for (size_t i = 1; i <= a.size(); ++i)
      for (size_t j = 1; j <= b.size(); ++j) {
        d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])});
        if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    return d[a.size()][b.size()];
  };
  std::string close, all;
  for (const std::string& n : names) {
    all += (all.empty() ? "" : ", ") + n;
    if (distance(given, n) <= 2) close += (close.empty() ? "" : " or ") + n;
  }
  const std::string parent = at > 1 ? std::string(argv[at - 1]) + " " : "";
  throw Error("unknown command '" + parent + given + "'" + (close.empty() ? "" : "; did you mean " + close + "?") +
              " (" + (at > 1 ? argv[at - 1] + std::string(" commands: ") : "commands: ") + all + ")");
}

int main(int argc, char** argv) {
  // Line-buffered stdout keeps result lines in order with the progress lines on stderr, also when
  // both go to one file.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  CLI::App app{"normad: deep anomaly detection (ACR zero-shot, Deep SVDD, NeuTraL-AD)"};
  app.require_subcommand(1);
  // What this build computes with: results round differently under each GEMM engine and device.
  app.set_version_flag("--version", std::function<std::string()>([] {
    // cuda_backend() is null without a GPU too; the table exists whenever the backend was compiled
    return "normad: CPU GEMM " + cpu_gemm_engine() + "; CUDA backend " +
           (cuda_backend_table() ? (device_available(Device::CUDA)
                                        ? std::string("built, GPU found")
                                        : "built, no GPU (" + device_unavailable_reason(Device::CUDA) + ")")
                                 : std::string("not built"));
  }), "Print what this build computes with (CPU GEMM engine, CUDA) and exit");
  // Parse errors: one line, like every other error (CLI11 would add a second one).
  app.failure_message([](const CLI::App*, const CLI::Error& e) { return "normad: " + std::string(e.what()) + "\n"; });
  uint64_t seed = 0;
  int threads = 0;
  std::string json_path, device_arg = "cpu", profile_path;
  bool tf32 = false;
  auto common = [&](CLI::App* sub) {
    sub->add_option("--seed", seed, "random seed")->capture_default_str();
    sub->add_option("--threads", threads, "threads (0: all cores)")->capture_default_str();
    sub->add_option("--json", json_path, "also write machine-readable results to FILE");
    sub->add_option("--device", device_arg, "where models run: cpu or cuda (reference: the plain-loop kernels, slow, for checking; docs/cuda.md)")
        ->capture_default_str();
    sub->add_flag("--tf32", tf32, "with --device cuda: TF32 tensor-core matrix products (faster, ~1e-3 relative error)");
    sub->add_option("--profile", profile_path,
                    "time every op call: a Chrome trace to FILE (Perfetto, chrome://tracing) and a per-op table on stderr "
                    "(docs/profiling.md)");
  };

  auto* zs = app.add_subcommand("zeroshot", "zero-shot detection: meta-train ACR on some classes, score batches of unseen ones (FMNIST-ZS or a CSV)");
  common(zs);
  std::string data = "fmnist", dir = data::kFashionMnistDir, fold = "both", model = "dsvdd", ratios = "0.01,0.05,0.1,0.2";
  std::string csv_path, label, train_classes, test_classes, one_hot;
  models::ZsConfig cfg;
  zs->add_option("--data", data, "built-in data set: fmnist")->capture_default_str();
  zs->add_option("--csv", csv_path, "a labelled table instead (classes are tasks)");
  zs->add_option("--label", label, "with --csv: the class column");
  zs->add_option("--train-classes", train_classes, "with --csv: meta-training classes, comma-separated");
  zs->add_option("--test-classes", test_classes, "with --csv: unseen test classes, comma-separated");
  zs->add_option("--one-hot", one_hot, "with --csv: categorical columns to one-hot encode");
  std::string zs_ignore;
  zs->add_option("--ignore", zs_ignore, "with --csv: columns kept out of the features (identifiers, free text)");
  zs->add_option("--batch-normals", cfg.batch_normals, "normals per test batch")->capture_default_str();
  zs->add_option("--data-dir", dir, "directory with the Fashion-MNIST IDX files")->capture_default_str();
  zs->add_option("--fold", fold, "A, B or both")->capture_default_str();
  zs->add_option("--model", model, "dsvdd (ACR-DSVDD) or, with --csv, ntl (ACR-NTL)")->capture_default_str();
  RecipeArgs ra;
  zs->add_option("--recipe", ra.recipe,
                 "auto (images: few-class below 20 training classes, else paper; tables: paper, which a search on "
                 "scikit-learn's digits did not beat), paper (acr.md exactly) or few-class (task augmentation; "
                 "docs/acr_augmentation.md)")
      ->capture_default_str();
  zs->add_option("--task-aug", ra.task_aug, "task augmentation, overriding the recipe's: none, dihedral-invert or dihedral-invert-16 (images), permute (tables)");
  zs->add_option("--iters", ra.iters, "meta-training iterations (default: the recipe's: 2000, few-class on images 1000)");
  zs->add_option("--task-normals", ra.normals, "normals per training task (default: the recipe's, 15)");
  zs->add_option("--task-anomalies", ra.anomalies, "pseudo-anomalies per training task (default: the recipe's, 15)");
  zs->add_option("--lr", ra.lr, "Adam learning rate (default: the recipe's: 1e-3, few-class on images 3e-3)");
  zs->add_option("--eval-every", cfg.eval_every, "score ACR on the test batches every N iterations (a learning curve; 0: off)")
      ->capture_default_str();
  zs->add_option("--tasks-per-pass", ra.tasks_per_pass, "tasks per forward/backward pass (0: all; same gradients)")
      ->capture_default_str();
  zs->add_option("--ratios", ratios, "anomaly ratios, comma-separated")->capture_default_str();
  zs->add_option("--checkpoint", cfg.state_file, "write the meta-training state to FILE every --checkpoint-every "
                                                 "iterations (atomically), for --resume; one fold per run");
  zs->add_option("--checkpoint-every", cfg.checkpoint_every, "iterations between checkpoints")->capture_default_str();
  zs->add_option("--resume", cfg.resume_from, "continue a run from its checkpoint FILE (same options and data): the "
                                              "same results as the uninterrupted run, bit for bit");

  auto* oc = app.add_subcommand("oneclass", "Deep SVDD one-class per normal class on Fashion-MNIST (autoencoder pretraining, then Deep SVDD)");
  common(oc);
  OneClassArgs oa;
  oc->add_option("--data-dir", oa.dir, "directory with the Fashion-MNIST IDX files")->capture_default_str();
  oc->add_option("--classes", oa.classes, "normal classes 0..9, comma-separated, or all")->capture_default_str();
  oc->add_option("--epochs", oa.epochs, "Deep SVDD epochs")->capture_default_str();
  oc->add_option("--ae-epochs", oa.ae_epochs, "autoencoder pretraining epochs")->capture_default_str();
  oc->add_flag("!--no-pretrain", oa.pretrain, "skip autoencoder pretraining");
  oc->add_option("--preprocess", oa.preprocess, "gcn (GCN-L1 + min-max, A.6) or unit ([0, 1] only)")->capture_default_str();
  oc->add_option("--checkpoint", oa.checkpoint, "write the training state to FILE every --checkpoint-every epochs "
                                                "(both phases, atomically), for --resume; one class per run");
  oc->add_option("--checkpoint-every", oa.checkpoint_every, "epochs between checkpoints")->capture_default_str();
  oc->add_option("--resume", oa.resume, "continue a run from its checkpoint FILE (same options and data): the same "
                                        "results as the uninterrupted run, bit for bit");

  auto* ev = app.add_subcommand("eval", "AUROC, AP and F1 of a scores file against labels");
  common(ev);
  std::string scores_path, labels_path, eval_label = "label", normal;
  ev->add_option("--scores", scores_path,
                 "scores CSV with 'score' and 'index' (normad score) or 'name' (normad mvg score) columns")->required();
  ev->add_option("--labels", labels_path,
                 "the scored data file with its true labels; paired with the scores by index (row) or by name")->required();
  ev->add_option("--label", eval_label, "label column")->capture_default_str();
  ev->add_option("--normal", normal, "the label value of normal rows (default: labels are 0/1)");

  auto* tr = app.add_subcommand("train", "fit a detector (one-class on normal rows, or ACR on labelled classes) and write a model file");
  common(tr);
  TrainArgs ta;
  tr->add_option("--model", ta.model, "ntl, dsvdd (one-class) or acr-dsvdd, acr-ntl (classes as tasks)")
      ->capture_default_str();
  tr->add_option("--train-classes", ta.train_classes, "ACR: classes to meta-train on (default: all)");
  tr->add_option("--iters", ta.iters, "ACR: meta-training iterations")->capture_default_str();
  tr->add_option("--recipe", ta.recipe, "ACR: auto, paper or few-class (see zeroshot --help)")->capture_default_str();
  tr->add_option("--task-aug", ta.task_aug, "ACR: task augmentation overriding the recipe's: none or permute");
  tr->add_option("--widths", ta.widths, "dsvdd: layer widths, the last one the representation")->capture_default_str();
  tr->add_option("--data", ta.data, "CSV table")->required();
  tr->add_option("--label", ta.label, "label column (then --normal picks the training rows)");
  tr->add_option("--normal", ta.normal, "the label value of normal rows");
  tr->add_option("--one-hot", ta.one_hot, "categorical columns to one-hot encode");
  tr->add_option("--ignore", ta.ignore, "columns kept out of the features (free text, dates, ...)");
  tr->add_option("--checkpoint", ta.checkpoint, "write the training state to FILE every --checkpoint-every epochs "
                                                "(acr-*: iterations), atomically, for --resume");
  tr->add_option("--checkpoint-every", ta.checkpoint_every, "epochs (acr-*: iterations) between checkpoints")
      ->capture_default_str();
  tr->add_option("--resume", ta.resume, "continue a run from its checkpoint FILE (same options and data): the same "
                                        "model file as the uninterrupted run, bit for bit");
  tr->add_option("--id", ta.id, "an identifier column: kept out of the features, stored in the model, and written "
                                "beside each score by normad score");
  tr->add_option("--out", ta.out, "model file (.safetensors)")->required();
  tr->add_option("--epochs", ta.train.epochs, "epochs")->capture_default_str();
  auto* train_batch = tr->add_option("--batch", ta.train.batch,
                                     "ntl, dsvdd: mini-batch size; acr-*: rows per BN batch when scoring (default 200, "
                                     "stored in the model as normad score's default)")
                          ->capture_default_str();
  tr->add_option("--lr", ta.train.lr, "Adam learning rate")->capture_default_str();
  tr->add_option("--weight-decay", ta.train.weight_decay, "Adam L2 weight decay")->capture_default_str();
  tr->add_option("--transformations", ta.K, "NTL: number of learned transformations K")->capture_default_str();
  tr->add_option("--trans-type", ta.trans_type,
                 "NTL: forward, residual or mul. mul (x times a learned sigmoid mask) is the default for tables: on "
                 "the README's breast-cancer split residual scored below chance (AUROC 0.18 / 0.47 / 0.33, seeds "
                 "0-2) and mul 0.79 / 0.83 / 0.89; the spec's thyroid / arrhythmia configs use residual")
      ->capture_default_str();
  tr->add_option("--patience", ta.train.patience,
                 "NTL: keep the epoch with the lowest training loss (from epoch 6), stop after this many "
                 "epochs without improvement; 0: keep the last epoch")
      ->capture_default_str();
  auto* fpr = tr->add_option("--fpr", ta.thr.fpr,
                              "threshold: the share of new normal rows allowed above it, set by a conformal quantile "
                              "of normal rows the model did not fit (at most fpr is guaranteed from 1/fpr - 1 such "
                              "rows on, 19 at 0.05; below 2/fpr - 1, 39 at 0.05, the threshold is their maximum)")
                 ->capture_default_str();
  auto* calibration = tr->add_option("--calibration", ta.thr.calibration,
                                     "threshold (default rule): hold out this fraction of the normal rows (a seeded "
                                     "draw), fit on the rest, threshold at the (1 - fpr) quantile of the held-out scores")
                          ->capture_default_str();
  tr->add_option("--reference", ta.thr.reference,
                 "threshold: a CSV of normal rows not in --data (one-class with --label: its rows with label "
                 "--normal; ACR: every row, in batches of --batch); fit on all of --data, threshold at the conformal "
                 "(1 - fpr) quantile of the reference scores");
  auto* contamination = tr->add_option("--contamination", ta.thr.contamination,
                                       "threshold: PyOD's rule, flag this fraction in (0, 0.5) of the TRAINING scores "
                                       "(optimistic: a model fitted to shrink its training scores flags more new "
                                       "normal rows); not used unless given")
                            ->capture_default_str();

  auto* scs = app.add_subcommand("score", "score a table with a model file; writes index,score,prediction");
  common(scs);
  std::string model_path, data_path, scores_out;
  int64_t score_batch = 0;
  scs->add_option("--model", model_path, "model file from normad train")->required();
  scs->add_option("--data", data_path, "CSV table to score")->required();
  scs->add_option("--out", scores_out, "scores CSV")->required();
  std::string score_id;
  scs->add_option("--id", score_id, "an identifier column of --data to write beside each score (default: the "
                                    "model's, from train --id)");
  scs->add_option("--batch", score_batch,
                  "rows per forward pass; 0: the model's. ACR: rows per batch of statistics, by default the batch "
                  "size the model's threshold was set with (zero-shot scores depend on the batch)")
      ->capture_default_str();

  cli::ImageCommands image_commands(app, common, json_path);

  check_numeric_options(app);
  try {
    check_subcommand(app, argc, argv);
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  } catch (const Error& e) {  // an unknown command, or --version reading a bad NORMAD_GEMM
    std::fprintf(stderr, "normad: %s\n", e.what());
    return 2;
  }
  try {
    // More threads than 4 x the hardware's only slows a run down; 1000 is a typo, not a setting.
    const int hardware = std::max(1u, std::thread::hardware_concurrency());
    if (threads < 0 || threads > 4 * hardware)
      throw Error("--threads: must be 0 (all cores) to " + std::to_string(4 * hardware) + " (4 x the " +
                  std::to_string(hardware) + " hardware threads here), got " + std::to_string(threads));
    set_num_threads(threads);
    select_device(device_arg, tf32);
    check_run_paths(app);  // outputs that would fail or overwrite an input are found now, not after the run
    if (!profile_path.empty()) profile::start();
    cfg.seed = seed;
    cfg.device = compute_device();
    if ((*zs && zs->get_option("--iters")->count() && ra.iters < 0) || ta.iters < 0) throw Error("--iters: must be >= 0");
    // Checkpoints: a state file needs an interval and the other way round; one fold per zeroshot
    // run (a file holds one meta-training); the one-class trainers have none yet.
    auto check_checkpoint_options = [](const std::string& file, int64_t every, const std::string& resume) {
      if (every < 0) throw Error("--checkpoint-every: must be >= 0 (0: no checkpoints)");
      if (!file.empty() && every == 0) throw Error("--checkpoint " + file + ": needs --checkpoint-every N");
      if (file.empty() && every > 0) throw Error("--checkpoint-every: needs --checkpoint FILE");
      return !file.empty() || !resume.empty();
    };
    if (*zs && !zs_ignore.empty() && csv_path.empty()) throw Error("--ignore: only with --csv (a table's columns)");
    if (*zs && check_checkpoint_options(cfg.state_file, cfg.checkpoint_every, cfg.resume_from) && fold == "both" &&
        csv_path.empty())
      throw Error("--checkpoint / --resume: one fold per run (--fold A or --fold B)");
    if (*tr) check_checkpoint_options(ta.checkpoint, ta.checkpoint_every, ta.resume);
    if (*oc) check_checkpoint_options(oa.checkpoint, oa.checkpoint_every, oa.resume);
    if (*tr) {
      if (!ta.normal.empty() && ta.label.empty())
        throw Error("--normal " + ta.normal + ": needs --label, the column whose value it names");
      if (ta.train.patience < 0) throw Error("--patience: must be >= 0 (0: keep the last epoch), got " +
                                             std::to_string(ta.train.patience));
      ta.thr.calibration_given = calibration->count() > 0;
      ta.thr.contamination_given = contamination->count() > 0;
      ta.thr.fpr_given = fpr->count() > 0;
      if ((ta.model == "acr-dsvdd" || ta.model == "acr-ntl")) ta.acr_batch = train_batch->count() ? ta.train.batch : 200;
      train_model(ta, seed, json_path);
    }
    if (*scs) score_model(model_path, data_path, scores_out, score_batch, score_id, json_path);
    if (*oc) {
      if (oa.epochs < 1 || oa.ae_epochs < 1) throw Error("--epochs and --ae-epochs must be >= 1");
      oneclass_fmnist(oa, seed, json_path);
    }
    if (*ev) eval_scores(scores_path, labels_path, eval_label, normal, json_path);
    image_commands.run();
    if (*zs) {
      // Recipe overrides: -1 means "the recipe's", so a negative value given by hand is an error,
      // not a silent default.
      auto given = [&](const char* name) { return zs->get_option(name)->count() > 0; };
      if (given("--lr") && !(ra.lr > 0)) throw Error("--lr: must be a positive number, got " + std::to_string(ra.lr));
      if (given("--task-normals") && ra.normals < 2) throw Error("--task-normals: must be >= 2");
      if (given("--task-anomalies") && ra.anomalies < 1) throw Error("--task-anomalies: must be >= 1");
      if (ra.tasks_per_pass < 0) throw Error("--tasks-per-pass: must be >= 0 (0: all tasks in one pass)");
      if (cfg.eval_every < 0) throw Error("--eval-every: must be >= 0 (0: off)");
      if (cfg.batch_normals < 1) throw Error("--batch-normals: must be >= 1");
      ra.batch_normals_given = given("--batch-normals");
      if (model != "dsvdd" && model != "ntl") throw Error("--model: '" + model + "' is not dsvdd or ntl");
      cfg.ratios = parse_ratios(ratios);
      models::ZsConfig probe;
      resolve_recipe(probe, ra, 0, false);  // a bad recipe or augmentation name fails before any data is read
      if (!csv_path.empty()) zeroshot_csv(csv_path, label, train_classes, test_classes, one_hot, zs_ignore, model, cfg, ra, json_path);
      else if (model != "dsvdd") throw Error("--model ntl: only with --csv (FMNIST-ZS uses ACR-DSVDD)");
      else if (data == "fmnist") zeroshot_fmnist(dir, fold, cfg, ra, json_path);
      else throw Error("--data: unknown data set '" + data + "' (available: fmnist; or --csv FILE)");
    }
    if (!profile_path.empty()) {  // the run succeeded: its trace and table
      profile::stop();
      profile::print_table(stderr, profile::summarize(), profile::measure_ceiling());
      profile::write_trace(profile_path);
      std::fprintf(stderr, "wrote the trace of %zu op calls to %s\n", profile::events().size(), profile_path.c_str());
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "normad: %s\n", e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "normad: out of memory: an input file or an option (sizes, batch, widths, K) asks for more "
                         "memory than this machine has\n");
    return 2;
  } catch (const std::filesystem::filesystem_error& e) {
    std::fprintf(stderr, "normad: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    // Anything else is a bug in normad, not a user error: say so rather than leak a library's words.
    std::fprintf(stderr, "normad: internal error (%s); please report it with the command line\n", e.what());
    return 2;
  }
  return 0;
}
