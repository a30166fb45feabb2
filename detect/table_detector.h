// Table detectors: one-class NeuTraL-AD ("ntl", ntl_dsvdd.md), Deep SVDD ("dsvdd") and the
// zero-shot ACR models ("acr-dsvdd", "acr-ntl", acr.md) on tables, with the preprocessing they were
// fitted with (one-hot columns, standardisation on the fitted rows) and a decision threshold set on
// normal rows the model did not fit. `normad train` and `normad score` are these functions.
// Math: score(x) = model(standardise(encode(x))); threshold = the conformal (1 - fpr) quantile of
// held-out normal scores (calibration, default), of a reference table (reference), or PyOD's
// contamination quantile of the training scores (contamination).
// Tested by tests/test_detect.cpp (API = CLI bit for bit, save/load round trips, errors),
// tests/test_cli.cpp, tests/test_model_files.cpp and tests/test_checkpoint.cpp.
//
// Typical use (PyOD: DeepSVDD().fit(X).decision_function(X_new)):
//   normad::TableFitOptions o;
//   o.model = "dsvdd", o.label = "class", o.normal = "0";          // fit on the rows of class 0
//   normad::TableDetector det = normad::TableDetector::fit(normad::read_table("train.csv"), o);
//   det.save("model.safetensors");
//   std::vector<double> s = det.decision_function(normad::read_table("new.csv"));
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "detect/detector.h"
#include "models/acr.h"
#include "models/deep_svdd.h"
#include "models/ntl.h"
#include "models/zeroshot.h"
#include "nn/safetensors.h"
#include "tensor/random.h"

namespace normad {

// How the decision threshold is set after fitting.
struct ThresholdOptions {
  // "calibration": hold out `calibration` of the normal rows (ACR: of each class; a seeded draw),
  //   fit on the rest, threshold at the conformal (1 - fpr) quantile of the held-out scores;
  // "reference": fit on all rows, threshold on `reference` (one-class with a label: its rows whose
  //   label is the normal value, or all rows when it lacks the label column; ACR: every row);
  // "contamination": PyOD's rule, flag `contamination` of the TRAINING scores (optimistic).
  std::string rule = "calibration";
  double fpr = 0.05, calibration = 0.2, contamination = 0.1;
  std::optional<Table> reference;
};

struct TableFitOptions {
  std::string model = "ntl";               // ntl, dsvdd (one-class) or acr-dsvdd, acr-ntl (classes as tasks)
  std::string label, normal;               // label column; one-class: the training rows' label value
  std::vector<std::string> one_hot;        // categorical columns to one-hot encode
  std::vector<std::string> ignore;         // columns kept out of the features
  std::string id;                          // an identifier column: ignored, stored for normad score
  // One-class training (ntl, dsvdd): epochs, batch, lr, weight decay; NTL's model selection.
  // NTL's transformations default to mul: on the breast-cancer split of the README, residual (the
  // thyroid / arrhythmia configs of ntl_dsvdd.md B.6) scores below chance (AUROC 0.18 / 0.47 /
  // 0.33, seeds 0-2), mul 0.79 / 0.83 / 0.89.
  models::NtlTrainConfig train;
  int64_t K = 11;                          // NTL transformations
  std::string trans_type = "mul";          // NTL: forward, residual or mul
  std::vector<int64_t> widths = {64, 32};  // dsvdd: layer widths, the last the representation
  // ACR: the classes that become tasks (empty: all), the recipe and its overrides, rows per BN
  // batch when scoring (stored in the model).
  std::vector<std::string> train_classes;
  models::RecipeOverrides recipe = {"auto", "", 2000, 0, -1, -1, -1, false};
  int64_t acr_batch = 200;
  ThresholdOptions threshold;
  uint64_t seed = 0;
  Device device = Device::CPU;
  // Checkpoints (epochs; ACR: iterations): the state file, one to resume from, the interval.
  std::string checkpoint, resume;
  int64_t checkpoint_every = 0;
  // acr-*: the ranks that share each meta-training iteration's tasks (models/data_parallel.h);
  // null: this process alone. Every rank ends with the same model; the caller saves it once.
  Communicator* comm = nullptr;
  Communicator* device_comm = nullptr;  // with comm and a GPU model: NCCL for the gradients (ZsConfig::device_comm)
  // What the fit reports: lines (the CLI prints them) and (done, total, loss) progress.
  std::function<void(const std::string&)> log;
  std::function<void(int64_t, int64_t, double)> progress;
};

// What fitting did, beyond the model: for --json and the report.
struct TableFitReport {
  int64_t rows = 0;                         // rows fitted
  std::vector<double> losses;               // per epoch (ntl, dsvdd)
  std::vector<std::string> classes;         // ACR: the classes that were tasks
  int64_t smallest_batch = 0, largest_batch = 0, threshold_batches = 0;  // ACR: batches the threshold saw
};

// The options' values on their own (model name, threshold rule and its values, training settings,
// label / normal pairing), before any data is read; TableDetector::fit checks them again.
void check_fit_options(const TableFitOptions& options);

// Copies share the networks (scoring does not change them); thresholds and metadata are their own.
class TableDetector : public Detector {
 public:
  // Fits on `data` (checked cell by cell before training) and sets the threshold by options.threshold.
  static TableDetector fit(const Table& data, const TableFitOptions& options);
  // x [N, F] of normal rows (one-class), or with `classes` (N of them) the classes of ACR's tasks.
  static TableDetector fit(const Tensor& x, TableFitOptions options, const std::vector<std::string>& classes = {});
  // A model file's contents (nn::load_safetensors): every error names `path` and the field.
  static TableDetector from_file(const nn::Safetensors& f, const std::string& path, Device device = Device::CPU);
  static TableDetector load(const std::string& path, Device device = Device::CPU);

  std::string kind() const override { return kind_; }
  // Scores rows in passes of `batch` rows (0: the model's; ACR: balanced chunks of about acr_batch()
  // rows, each with its own statistics, models/acr.h score_chunks). `extra_ignored`: columns of x
  // to leave out besides the model's own (an id column the model never saw).
  std::vector<double> decision_function(const Table& x) override { return score(x, 0, {}); }
  std::vector<double> decision_function(const Tensor& x) override;
  std::vector<double> score(const Table& x, int64_t batch, const std::vector<std::string>& extra_ignored);
  // ACR: the rows of x as ONE batch (its own BN statistics; zero-shot scores depend on the batch).
  std::vector<double> score_batch(const Table& x);
  const eval::ThresholdReport& infer_threshold(const Table& normals, double fpr) override;
  void save(const std::string& path) const override;

  const data::Preprocess& preprocess() const { return pre_; }
  // Counts of the last scored table's unusual cells (data::Table): unseen categories, extreme values.
  const data::Table& last_encoding() const { return encoded_; }
  int64_t acr_batch() const { return acr_batch_; }
  const std::string& id_column() const { return id_; }
  const std::map<std::string, std::string>& metadata() const { return meta_; }
  const TableFitReport& fit_report() const { return report_; }
  // The network's scores of already encoded rows x [N, F] (batch as in score()).
  std::vector<double> score_encoded(const Tensor& x, int64_t batch);

 private:
  std::string kind_, id_;
  data::Preprocess pre_;
  int64_t acr_batch_ = 1000;  // ACR: rows per batch the threshold was set with (acr.batch)
  std::shared_ptr<models::AcrModel> acr_;
  std::shared_ptr<models::NeutralAD> ntl_;
  std::shared_ptr<models::DeepSvdd> svdd_;
  std::map<std::string, std::string> meta_;  // the model file's metadata (architecture, threshold, ...)
  TableFitReport report_;
  data::Table encoded_;
  void set_threshold(const eval::ThresholdReport& r);
  data::Table encode(const Table& x, const std::vector<std::string>& extra_ignored);
};

// Model-file helpers (also used by the fuzz target and the tests).
// "64,32" -> {64, 32}: positive integers up to 2^20; `what` names the option or field in errors.
std::vector<int64_t> parse_widths(const std::string& s, const std::string& what);
// The ACR model of a model-file kind, for F features; `init` draws its weights.
std::unique_ptr<models::AcrModel> make_acr(const std::string& kind, int64_t F, Generator& init);
// Values in the state of each architecture (parameters and buffers, as the file stores them),
// counted without building it. In double: metadata can declare sizes whose product overflows int64.
double ntl_state_values(const models::NtlConfig& c);  // c after ntl_defaults
double svdd_mlp_state_values(int64_t in, const std::vector<int64_t>& widths);
double acr_state_values(const std::string& kind, int64_t F);

}  // namespace normad
