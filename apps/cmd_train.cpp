// `normad train`: one-class NeuTraL-AD or Deep SVDD on the normal rows of a table, or ACR on its
// labelled classes, written as a model file whose metadata holds the architecture, the
// preprocessing and the threshold with its rule, so `score` needs nothing else. The work is
// normad::TableDetector::fit (detect/table_detector.h); this file maps the options onto it.
// Math: see detect/table_detector.h. Tested by tests/test_cli.cpp, tests/test_cli_trust.cpp,
// tests/test_checkpoint.cpp and tests/test_detect.cpp (API = CLI).
#include <json.hpp>

#include <cstdio>
#include <filesystem>

#include "apps/cli_commands.h"
#include "apps/cli_util.h"
#include "detect/table_detector.h"
#include "tensor/comm.h"

namespace normad::cli {

namespace {

// How a model file's threshold is set (train): the held-out normal rows by default, a reference
// file of normal rows, or PyOD's contamination of the training scores (an explicit choice).
struct ThresholdArgs {
  double fpr = 0.05, calibration = 0.2, contamination = 0.1;
  std::string reference;
  bool calibration_given = false, contamination_given = false;

  bool fpr_given = false;

  // Names the rule the options choose (which of them were given; their values are checked by
  // check_fit_options), before any data is read or a model trained.
  std::string rule() const {
    if (int(!reference.empty()) + int(calibration_given) + int(contamination_given) > 1)
      throw Error("--calibration, --reference and --contamination are alternative threshold rules: give at most one");
    if (contamination_given && fpr_given)
      throw Error("--fpr sets the calibration and reference rules; --contamination is a rule of its own");
    if (!reference.empty()) {
      std::error_code ec;
      if (!std::filesystem::is_regular_file(reference, ec)) throw Error("--reference: " + reference + ": no such file");
      return "reference";
    }
    return contamination_given ? "contamination" : "calibration";
  }
};


struct TrainArgs {
  std::string model = "ntl", data, label, normal, one_hot, out, trans_type = "mul", widths = "64,32";
  std::string ignore, id;     // columns kept out of the features; id is also written by normad score
  std::string checkpoint, resume;
  int64_t checkpoint_every = 0;
  std::string train_classes;  // ACR: the classes that become tasks (default: all)
  int64_t iters = 2000;       // ACR meta-training iterations
  std::string recipe = "auto", task_aug;
  int64_t K = 11;
  ThresholdArgs thr;
  models::NtlTrainConfig train;
};

void train(const TrainArgs& a, int64_t acr_batch, const CommonOptions& common) {
  if (a.out.empty()) throw Error("--out: missing");
  TableFitOptions o;
  o.model = a.model;
  o.label = a.label, o.normal = a.normal, o.id = a.id;
  if (!a.one_hot.empty()) o.one_hot = split_list(a.one_hot, "--one-hot");
  if (!a.ignore.empty()) o.ignore = split_list(a.ignore, "--ignore");
  o.train = a.train;
  o.K = a.K, o.trans_type = a.trans_type;
  if (a.model == "dsvdd") o.widths = parse_widths(a.widths, "--widths");
  if (!a.train_classes.empty()) o.train_classes = split_list(a.train_classes, "--train-classes");
  o.recipe = {a.recipe, a.task_aug, a.iters, 0, -1, -1, -1, false};
  o.acr_batch = acr_batch;
  o.threshold.rule = a.thr.rule();
  o.threshold.fpr = a.thr.fpr, o.threshold.calibration = a.thr.calibration;
  o.threshold.contamination = a.thr.contamination;
  check_fit_options(o);  // every option's value before any data is read
  if (o.threshold.rule == "reference") o.threshold.reference = data::read_csv(a.thr.reference);
  o.seed = common.seed;
  o.device = compute_device();
  o.checkpoint = a.checkpoint, o.resume = a.resume, o.checkpoint_every = a.checkpoint_every;
  o.comm = &world();  // acr-* under mpirun: the ranks share each iteration's tasks
  o.device_comm = gradient_ranks(o.device);
  o.log = [](const std::string& line) { std::printf("%s\n", line.c_str()); };
  Progress p{"train"};
  o.progress = std::ref(p);
  const TableDetector det = TableDetector::fit(data::read_csv(a.data), o);
  outputs_barrier();
  if (writes_outputs()) det.save(a.out);  // every rank holds the same model; rank 0 writes it
  const TableFitReport& r = det.fit_report();
  const eval::ThresholdReport& thr = det.threshold_report();
  nlohmann::json js{{"model", a.model}, {"rows", r.rows}, {"threshold", thr.threshold}, {"threshold_rule", thr.rule},
                    {"threshold_target", thr.target}, {"threshold_achieved", thr.achieved},
                    {"threshold_rows", thr.rows}};
  if (!r.classes.empty()) {
    std::printf("threshold set on %lld batches of %lld-%lld rows (one class each); normad score cuts a file into "
                "batches of about %lld rows (--batch, stored in the model); wrote %s\n",
                (long long)r.threshold_batches, (long long)r.smallest_batch, (long long)r.largest_batch,
                (long long)acr_batch, a.out.c_str());
    js["classes"] = r.classes, js["batch"] = acr_batch, js["threshold_batches"] = {r.smallest_batch, r.largest_batch};
  } else {
    std::printf("final loss %.4f, %lld rows fitted, wrote %s\n", r.losses.back(), (long long)r.rows, a.out.c_str());
    js["epoch_loss"] = r.losses;
  }
  js["out"] = a.out;
  if (!common.json.empty()) write_json(common.json, js);
}

}  // namespace

Command add_train(CLI::App& app, const AddCommon& add_common, const CommonOptions& common) {
  auto a = std::make_shared<TrainArgs>();
  TrainArgs& ta = *a;
  auto* tr = app.add_subcommand("train", "fit a detector (one-class on normal rows, or ACR on labelled classes) and write a model file");
  add_common(tr);
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
  add_checkpoint_options(tr, ta.checkpoint, ta.checkpoint_every, ta.resume, "epochs (acr-*: iterations)", "",
                         "model file");
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
  return {tr, [a, train_batch, fpr, calibration, contamination, &common] {
            TrainArgs& ta = *a;
            if (ta.iters < 0) throw Error("--iters: must be >= 0");
            check_checkpoint_options(ta.checkpoint, ta.checkpoint_every, ta.resume);
            ta.thr.calibration_given = calibration->count() > 0;
            ta.thr.contamination_given = contamination->count() > 0;
            ta.thr.fpr_given = fpr->count() > 0;
            // ACR: --batch is the rows per BN batch when scoring (default 200).
            const bool acr = ta.model == "acr-dsvdd" || ta.model == "acr-ntl";
            train(ta, acr ? (train_batch->count() ? ta.train.batch : 200) : 0, common);
          },
          [a] { return a->model == "acr-dsvdd" || a->model == "acr-ntl"; }};  // data-parallel meta-training
}

}  // namespace normad::cli
