// `normad zeroshot`: zero-shot detection with ACR (acr.md): meta-train on some classes, score
// batches of unseen ones, beside the raw-data baselines. FMNIST-ZS (fmnist_zs.md, the Omniglot net
// on Fashion-MNIST) or the same protocol on a labelled CSV table (classes are tasks).
// Math: per test batch, AUROC of the scores of its normals and its anomalies at each ratio.
// Tested by tests/test_cli.cpp, tests/test_zeroshot.cpp, tests/test_checkpoint.cpp and `make demo`.
#include <json.hpp>

#include <cstdio>
#include <sstream>

#include "apps/cli_commands.h"
#include "apps/cli_util.h"
#include "apps/cmd_zeroshot_mvtec.h"
#include "data/csv.h"
#include "data/idx.h"
#include "data/tasks.h"
#include "models/acr.h"
#include "models/acr_nets.h"
#include "models/zeroshot.h"
#include "tensor/comm.h"
#include "tensor/parallel.h"

namespace normad::cli {

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
void report(const std::vector<models::ZsFold>& results, const models::ZsConfig& cfg, const ResultFiles& out_files,
            const std::string& protocol, const std::string& recipe) {
  outputs_barrier();  // every rank finished; only then does rank 0 print and write
  std::printf("\n%-5s %-5s %5s  %-15s %-15s %-15s %-15s\n", "fold", "r", "n_a", "ACR", "stationary", "batch-mean L2", "kNN-5");
  auto cell = [](double m, double s) { char b[32]; std::snprintf(b, sizeof b, "%.3f (%.3f)", m, s); return std::string(b); };
  for (auto& fr : results)
    for (auto& r : fr.ratios)
      std::printf("%-5c %-5.2f %5lld  %-15s %-15s %-15s %-15s\n", fr.fold, r.ratio, (long long)r.n_anom,
                  cell(r.acr, r.acr_std).c_str(), cell(r.stationary, r.stationary_std).c_str(),
                  cell(r.batch_l2, r.batch_l2_std).c_str(), cell(r.knn, r.knn_std).c_str());
  nlohmann::json js;
  js["kind"] = "zeroshot";
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
    if (fr.ranks > 1) {  // data-parallel: what each iteration moved between the ranks
      const int64_t bytes = 4 * fr.share.float_values + 8 * fr.share.double_values;
      std::printf("fold %c: %d ranks, each iteration all-reduced %lld floats + %lld doubles (%.2f MB); rank 0 spent %.1f "
                  "ms per iteration in the all-reduce (waiting for the other ranks included)\n",
                  fr.fold, fr.ranks, (long long)fr.share.float_values, (long long)fr.share.double_values, bytes / 1e6,
                  1e3 * fr.reduce_secs_per_iter);
      jf["ranks"] = fr.ranks, jf["allreduce_bytes_per_iter"] = bytes, jf["allreduce_secs_per_iter"] = fr.reduce_secs_per_iter;
    }
    for (auto& c : fr.curve) jf["curve"].push_back({{"iter", c.iter}, {"acr", c.acr}});
    for (auto& b : fr.batches)
      jf["batches"].push_back({{"test_class", b.test_class}, {"batch", b.index}, {"ratio", b.ratio}, {"acr", b.acr},
                               {"stationary", b.stationary}, {"batch_l2", b.batch_l2}, {"knn", b.knn}});
    js["folds"].push_back(jf);
  }
  write_results(js, out_files);
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

// A --batch-normals the user chose must fit every test class; the default shrinks to a smaller
// class (one batch of all its rows), as fmnist_zs.md §5 does for small classes.
void check_batch_normals(const models::ZsData& d, const models::ZsConfig& cfg, const models::RecipeOverrides& ra,
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
// "resumed from FILE after iteration N of M" once a checkpoint is loaded.
std::function<void(int64_t)> print_resumed(const models::ZsConfig& cfg) {
  return [file = cfg.resume_from, iters = cfg.iters](int64_t done) {
    std::printf("resumed from %s after iteration %lld of %lld\n", file.c_str(), (long long)done, (long long)iters);
  };
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


// FMNIST-ZS on the Debian Fashion-MNIST files, the Omniglot net.
void zeroshot_fmnist(const std::string& dir, const std::string& fold_arg, models::ZsConfig cfg, const models::RecipeOverrides& ra,
                     const ResultFiles& out_files) {
  std::vector<char> folds;
  if (fold_arg == "A" || fold_arg == "B") folds = {fold_arg[0]};
  else if (fold_arg == "both") folds = {'A', 'B'};
  else throw Error("--fold: '" + fold_arg + "' is not A, B or both");
  const std::string recipe = models::resolve_recipe(cfg, ra, 5, true);  // 5 training classes per fold
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
  report(results, cfg, out_files, "FMNIST-ZS", recipe);
}

// The same protocol on a labelled table: classes are tasks, the tabular MLP (acr.md §7.3), features
// standardised with the statistics of the training classes' rows.
void zeroshot_csv(const std::string& path, const std::string& label, const std::string& train_arg,
                  const std::string& test_arg, const std::string& one_hot, const std::string& ignore,
                  const std::string& model,
                  models::ZsConfig cfg, const models::RecipeOverrides& ra, const ResultFiles& out_files) {
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
  const std::string recipe = models::resolve_recipe(cfg, ra, static_cast<int64_t>(d.train_classes.size()), false);
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
         cfg, out_files, "zeroshot-csv", recipe);
}

struct ZeroshotArgs {
  std::string data = "fmnist", dir = data::kFashionMnistDir, fold = "both", model = "dsvdd", ratios = "0.01,0.05,0.1,0.2";
  std::string csv_path, label, train_classes, test_classes, one_hot, ignore, report;
  models::ZsConfig cfg;
  models::RecipeOverrides ra;
  MvtecZeroshotArgs mvtec;
};

}  // namespace

Command add_zeroshot(CLI::App& app, const AddCommon& add_common, const CommonOptions& common) {
  auto a = std::make_shared<ZeroshotArgs>();
  auto* zs = app.add_subcommand("zeroshot", "zero-shot detection: meta-train ACR on some classes, score batches of unseen ones (FMNIST-ZS, a CSV, or MVTec AD segmentation with --mvtec)");
  add_common(zs);
  add_report_option(zs, a->report);


  zs->add_option("--data", a->data, "built-in data set: fmnist")->capture_default_str();
  zs->add_option("--csv", a->csv_path, "a labelled table instead (classes are tasks)");
  zs->add_option("--label", a->label, "with --csv: the class column");
  zs->add_option("--train-classes", a->train_classes, "with --csv: meta-training classes, comma-separated");
  zs->add_option("--test-classes", a->test_classes, "with --csv: unseen test classes, comma-separated");
  zs->add_option("--one-hot", a->one_hot, "with --csv: categorical columns to one-hot encode");

  zs->add_option("--ignore", a->ignore, "with --csv: columns kept out of the features (identifiers, free text)");
  zs->add_option("--batch-normals", a->cfg.batch_normals, "normals per test batch")->capture_default_str();
  zs->add_option("--data-dir", a->dir, "directory with the Fashion-MNIST IDX files")->capture_default_str();
  zs->add_option("--fold", a->fold, "A, B or both")->capture_default_str();
  zs->add_option("--model", a->model, "dsvdd (ACR-DSVDD) or, with --csv, ntl (ACR-NTL)")->capture_default_str();

  zs->add_option("--recipe", a->ra.recipe,
                 "auto (images: few-class below 20 training classes, else paper; tables: paper, which a search on "
                 "scikit-learn's digits did not beat), paper (acr.md exactly) or few-class (task augmentation; "
                 "docs/acr_augmentation.md)")
      ->capture_default_str();
  zs->add_option("--task-aug", a->ra.task_aug, "task augmentation, overriding the recipe's: none, dihedral-invert or dihedral-invert-16 (images), permute (tables)");
  zs->add_option("--iters", a->ra.iters, "meta-training iterations (default: the recipe's: 2000, few-class on images 1000; with --mvtec 50)");
  zs->add_option("--task-normals", a->ra.normals, "normals per training task (default: the recipe's, 15; with --mvtec 30 images at one position)");
  zs->add_option("--task-anomalies", a->ra.anomalies, "pseudo-anomalies per training task (default: the recipe's, 15)");
  zs->add_option("--lr", a->ra.lr, "Adam learning rate (default: the recipe's: 1e-3, few-class on images 3e-3; with --mvtec 3e-4)");
  zs->add_option("--eval-every", a->cfg.eval_every, "score ACR on the test batches every N iterations (a learning curve; 0: off)")
      ->capture_default_str();
  zs->add_option("--tasks-per-pass", a->ra.tasks_per_pass, "tasks per forward/backward pass (0: all; same gradients)")
      ->capture_default_str();
  zs->add_option("--ratios", a->ratios, "anomaly ratios, comma-separated")->capture_default_str();
  // ACR on MVTec AD (acr.md §11): zero-shot segmentation with a frozen backbone.
  auto& mv = a->mvtec;
  zs->add_option("--mvtec", mv.root, "MVTec AD root: ACR's zero-shot segmentation (acr.md §11), one model per held-out category");
  zs->add_option("--category", mv.category, "with --mvtec: the held-out category (trained on the others under ROOT)");
  zs->add_flag("--all", mv.all, "with --mvtec: hold out each category in turn");
  zs->add_option("--backbone", mv.backbone, "with --mvtec: the frozen feature extractor: resnet18, resnet50 or wide_resnet50_2 (a level of 64, 128, ... channels)")->capture_default_str();
  zs->add_option("--weights", mv.weights, "with --mvtec: its torchvision weights (scripts/export_torchvision.py NAME --pretrained)");
  zs->add_option("--level", mv.level, "with --mvtec: the backbone level whose maps are the patch features (3: layer3)")
      ->capture_default_str();
  zs->add_option("--size", mv.size, "with --mvtec: resize the shorter side to SIZE (Lanczos)")->capture_default_str();
  zs->add_option("--crop", mv.crop, "with --mvtec: then centre-crop CROP x CROP (the maps' size)")->capture_default_str();
  zs->add_option("--batch", mv.batch, "with --mvtec: images per backbone forward pass")->capture_default_str();
  zs->add_option("--cache", mv.cache, "with --mvtec: feature cache directory (default: ~/.cache/normad/features)");
  zs->add_flag("--no-cache", mv.no_cache, "with --mvtec: neither read nor write cached features");
  zs->add_option("--maps", mv.maps, "with --mvtec: write each test image's anomaly map as a PNG overlay under DIR");
  zs->add_flag("--no-test-noisy-copies", mv.no_test_noisy_copies,
               "with --mvtec: test batches of the real rows only (acr.md §12 item 3; default: the released code's N noisy copies)");
  add_checkpoint_options(zs, a->cfg.state_file, a->cfg.checkpoint_every, a->cfg.resume_from, "iterations",
                         "one fold per run", "results");

  return {zs, [a, zs, &common] {
            models::ZsConfig& cfg = a->cfg;
            models::RecipeOverrides& ra = a->ra;
            auto given_any = [&](const char* name) { return zs->get_option(name)->count() > 0; };
            const std::vector<const char*> mvtec_only = {"--category", "--all", "--backbone", "--weights", "--level", "--size",
                                                         "--crop", "--batch", "--cache", "--no-cache", "--maps",
                                                         "--no-test-noisy-copies"};
            if (!a->mvtec.root.empty()) {
              for (const char* o : {"--csv", "--data", "--fold", "--recipe", "--task-aug", "--task-anomalies", "--eval-every",
                                    "--batch-normals", "--tasks-per-pass", "--ratios", "--model", "--checkpoint", "--resume",
                                    "--label", "--data-dir", "--train-classes", "--test-classes", "--one-hot", "--ignore",
                                    "--checkpoint-every"})
                if (given_any(o)) throw Error(std::string(o) + ": not with --mvtec (ACR on MVTec AD follows acr.md §11)");
              MvtecZeroshotArgs m = a->mvtec;
              if (given_any("--iters")) m.iters = ra.iters;
              if (given_any("--task-normals")) m.normals = ra.normals;
              if (given_any("--lr")) m.lr = ra.lr;
              zeroshot_mvtec(m, common.seed, {common.json, a->report});
              return;
            }
            for (const char* o : mvtec_only)
              if (given_any(o)) throw Error(std::string(o) + ": only with --mvtec ROOT");
            cfg.seed = common.seed;
            cfg.device = compute_device();
            cfg.comm = &world();  // under mpirun: the ranks share each iteration's tasks
            cfg.device_comm = gradient_ranks(cfg.device);
            if (zs->get_option("--iters")->count() && ra.iters < 0) throw Error("--iters: must be >= 0");
            if (!a->ignore.empty() && a->csv_path.empty()) throw Error("--ignore: only with --csv (a table's columns)");
            if (check_checkpoint_options(cfg.state_file, cfg.checkpoint_every, cfg.resume_from) && a->fold == "both" &&
                a->csv_path.empty())
              throw Error("--checkpoint / --resume: one fold per run (--fold A or --fold B)");
            // Recipe overrides: -1 means "the recipe's", so a negative value given by hand is an
            // error, not a silent default.
            auto given = [&](const char* name) { return zs->get_option(name)->count() > 0; };
            if (given("--lr") && !(ra.lr > 0)) throw Error("--lr: must be a positive number, got " + std::to_string(ra.lr));
            if (given("--task-normals") && ra.normals < 2) throw Error("--task-normals: must be >= 2");
            if (given("--task-anomalies") && ra.anomalies < 1) throw Error("--task-anomalies: must be >= 1");
            if (ra.tasks_per_pass < 0) throw Error("--tasks-per-pass: must be >= 0 (0: all tasks in one pass)");
            if (cfg.eval_every < 0) throw Error("--eval-every: must be >= 0 (0: off)");
            if (cfg.batch_normals < 1) throw Error("--batch-normals: must be >= 1");
            ra.batch_normals_given = given("--batch-normals");
            if (a->model != "dsvdd" && a->model != "ntl") throw Error("--model: '" + a->model + "' is not dsvdd or ntl");
            cfg.ratios = parse_ratios(a->ratios);
            models::ZsConfig probe;
            models::resolve_recipe(probe, ra, 0, false);  // a bad recipe or augmentation name fails before any data is read
            if (!a->csv_path.empty())
              zeroshot_csv(a->csv_path, a->label, a->train_classes, a->test_classes, a->one_hot, a->ignore, a->model, cfg,
                           ra, {common.json, a->report});
            else if (a->model != "dsvdd") throw Error("--model ntl: only with --csv (FMNIST-ZS uses ACR-DSVDD)");
            else if (a->data == "fmnist") zeroshot_fmnist(a->dir, a->fold, cfg, ra, {common.json, a->report});
            else throw Error("--data: unknown data set '" + a->data + "' (available: fmnist; or --csv FILE)");
          },
          [] { return true; }};  // every form meta-trains ACR, data-parallel across ranks
}

}  // namespace normad::cli
