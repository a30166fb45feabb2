// The detector API's shared parts: tables, predict, thresholds, and Detector::load, which reads a
// model file's kind and builds the detector for it. See detect/detector.h.
// Math: predict = [score > threshold]; threshold = conformal (1 - fpr) quantile of normal scores.
// Tested by tests/test_detect.cpp.
#include "detect/detector.h"

#include <cmath>
#include <cstdio>

#include "detect/image_detector.h"
#include "detect/table_detector.h"
#include "nn/safetensors.h"

namespace normad {

Table read_table(const std::string& path) { return data::read_csv(path); }

Table table_from_tensor(const Tensor& x, const std::vector<std::string>& labels, const std::string& label_column) {
  if (x.dim() != 2) throw Error("table_from_tensor: x has shape " + shape_str(x.shape()) + ", expected [N, F]");
  if (!labels.empty() && static_cast<int64_t>(labels.size()) != x.size(0))
    throw Error("table_from_tensor: " + std::to_string(labels.size()) + " labels for " + std::to_string(x.size(0)) +
                " rows");
  const Tensor host = x.to(Device::CPU);
  const int64_t n = host.size(0), f = host.size(1);
  Table t;
  t.path = "tensor";
  for (int64_t j = 0; j < f; ++j) t.header.push_back(std::string(1, 'x').append(std::to_string(j)));
  if (!labels.empty()) t.header.push_back(label_column);
  t.rows.resize(size_t(n));
  char cell[32];
  for (int64_t i = 0; i < n; ++i) {
    auto& row = t.rows[size_t(i)];
    row.reserve(t.header.size());
    for (int64_t j = 0; j < f; ++j) {
      std::snprintf(cell, sizeof cell, "%.9g", double(host.data()[i * f + j]));  // reads back to the same float
      row.emplace_back(cell);
    }
    if (!labels.empty()) row.push_back(labels[size_t(i)]);
    t.lines.push_back(i + 2);  // as if read from a file with a header line
  }
  return t;
}

void check_scores(const std::vector<double>& scores, const Table& rows, const std::string& what) {
  for (size_t i = 0; i < scores.size(); ++i)
    if (!std::isfinite(scores[i]))
      throw Error(rows.path + ":" + std::to_string(i < rows.lines.size() ? rows.lines[i] : int64_t(i) + 2) +
                  ": the " + what + " score of this row is " + (std::isnan(scores[i]) ? "NaN" : "infinite") +
                  " (the model's output overflowed: the row is extreme after the model's standardisation, or the "
                  "model is broken)");
}

namespace {
std::vector<int> above(const std::vector<double>& scores, double threshold) {
  std::vector<int> out(scores.size());
  for (size_t i = 0; i < scores.size(); ++i) out[i] = scores[i] > threshold ? 1 : 0;
  return out;
}
}  // namespace

std::vector<int> Detector::predict(const Table& x) { return above(decision_function(x), threshold()); }
std::vector<int> Detector::predict(const Tensor& x) { return above(decision_function(x), threshold()); }

std::unique_ptr<Detector> Detector::load(const std::string& path, Device device) {
  // Gaussian-AD files say model = gaussian-ad; table models say normad.kind.
  const nn::Safetensors f = nn::load_safetensors(path);
  auto it = f.metadata.find("model");
  if (it != f.metadata.end() && it->second == "gaussian-ad")
    return std::make_unique<ImageDetector>(ImageDetector::from_file(f, path, device));
  return std::make_unique<TableDetector>(TableDetector::from_file(f, path, device));
}

}  // namespace normad
