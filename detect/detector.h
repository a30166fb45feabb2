// The detector API: one object per fitted anomaly detector, in the vocabulary of PyOD, DeepOD and
// alibi-detect: fit, decision_function (higher = more anomalous), predict (1 = above threshold()),
// infer_threshold (the conformal (1 - fpr) quantile of normal data the model never saw), save, and
// Detector::load, which returns the right detector for any normad model file.
// Math: predict(x) = [decision_function(x) > threshold()].
// The command line calls these same functions (apps/cmd_*.cpp): tests/test_detect.cpp checks that
// the API's scores equal `normad score` / `normad mvg score` bit for bit for every model kind.
//
// Typical use (a table model; detect/table_detector.h for the options):
//   auto det = normad::Detector::load("model.safetensors");          // ntl, dsvdd, acr-*, gaussian-ad
//   std::vector<double> s = det->decision_function(normad::read_table("new.csv"));
//   std::vector<int> flagged = det->predict(normad::read_table("new.csv"));
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/csv.h"
#include "eval/metrics.h"
#include "tensor/tensor.h"

namespace normad {

// A table as read from a file: named columns, cells as text (data::Csv). Models encode it with the
// preprocessing they were fitted with (one-hot columns, standardisation), so columns may come in
// any order and carry the label or ignored columns.
using Table = data::Csv;
// A CSV file, or a level-5 MAT-file (ODDS's X and y; recognised by content).
Table read_table(const std::string& path);
// Numbers as a table: columns x0 .. x{F-1} of x [N, F] (printed "%.9g", which reads back to the
// same float32), and with `labels` (N of them) a last column `label_column`.
Table table_from_tensor(const Tensor& x, const std::vector<std::string>& labels = {},
                        const std::string& label_column = "label");

class Detector {
 public:
  virtual ~Detector() = default;

  // "ntl", "dsvdd", "acr-dsvdd", "acr-ntl" or "gaussian-ad".
  virtual std::string kind() const = 0;

  // One score per row (higher = more anomalous); a non-finite score is an Error naming the row.
  virtual std::vector<double> decision_function(const Table& x) = 0;
  // x [N, F]: raw numbers in the column order of the data the model was fitted on (table models:
  // read as table_from_tensor(x) with the model's column names; Gaussian-AD: the concatenated
  // feature levels).
  virtual std::vector<double> decision_function(const Tensor& x) = 0;

  // 1 where the score is above threshold(), else 0.
  std::vector<int> predict(const Table& x);
  std::vector<int> predict(const Tensor& x);

  // The decision threshold and how it was set (rule, target fpr, achieved rate, rows).
  double threshold() const { return threshold_.threshold; }
  const eval::ThresholdReport& threshold_report() const { return threshold_; }
  // Sets the threshold from normal rows the model was not fitted on: the conformal (1 - fpr)
  // quantile of their scores (eval::fpr_rule, rule "reference"). Returns the report.
  virtual const eval::ThresholdReport& infer_threshold(const Table& normals, double fpr) = 0;

  // A normad model file (safetensors, written atomically): load() gives the same scores back.
  virtual void save(const std::string& path) const = 0;
  // Any normad model file: a TableDetector (ntl, dsvdd, acr-dsvdd, acr-ntl) or an ImageDetector
  // (gaussian-ad), on `device`. An Error names the file and the field that is wrong.
  static std::unique_ptr<Detector> load(const std::string& path, Device device = Device::CPU);

 protected:
  eval::ThresholdReport threshold_;
};

// Non-finite scores are an error naming the row (its file and line where the table has them),
// never a quiet "normal"; `what` says which scores ("anomaly", "reference", ...).
void check_scores(const std::vector<double>& scores, const Table& rows, const std::string& what);

}  // namespace normad
