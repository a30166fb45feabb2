// The image detector (Gaussian-AD): see detect/image_detector.h.
// Math: score(x) = (1/L) Σ_l Mahalanobis_l(f_l(x)), f_l the pooled level l of the backbone.
// Tested by tests/test_detect.cpp and tests/test_cli_images.cpp.
#include "detect/image_detector.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "eval/metrics.h"
#include "tensor/ops.h"

namespace normad {

namespace {

std::vector<Tensor> on_device(const std::vector<Tensor>& levels, Device device) {
  std::vector<Tensor> out;
  for (const Tensor& t : levels) out.push_back(t.to(device));
  return out;
}

std::vector<Tensor> pick_rows(const std::vector<Tensor>& levels, const std::vector<int64_t>& idx) {
  std::vector<Tensor> out;
  for (const Tensor& t : levels) out.push_back(index_select(t, idx));
  return out;
}

template <typename T>
std::vector<T> pick(const std::vector<T>& v, const std::vector<int64_t>& idx) {
  std::vector<T> out;
  for (int64_t i : idx) out.push_back(v[size_t(i)]);
  return out;
}

// Fit errors (too few rows, a level without variance) name the training data.
template <class F>
void naming(const std::string& source, F&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    throw Error(source + ": " + e.what());
  }
}

std::string short_text(double v) {  // as the CLI prints options: 0.2, not 0.200000
  char b[32];
  std::snprintf(b, sizeof b, "%g", v);
  return b;
}


}  // namespace

// The pipeline fields a features CSV must share with the model (the weights path may differ,
// their SHA-256 may not).
void check_same_pipeline(const std::map<std::string, std::string>& csv, const std::string& csv_path,
                         const std::map<std::string, std::string>& other, const std::string& other_path) {
  for (const char* key : {"features.backbone", "features.weights_sha256", "features.levels", "features.size",
                          "features.crop", "features.filter", "features.shorter_side"}) {
    auto c = csv.find(key), o = other.find(key);
    if (c != csv.end() && o != other.end() && c->second != o->second)
      throw Error(csv_path + ": field '" + key + "' is '" + c->second + "', " + other_path + " has '" + o->second +
                  "' (features made with another pipeline)");
  }
}

void check_finite_scores(const std::vector<double>& scores, const std::vector<std::string>& names,
                         const std::string& where) {
  for (size_t i = 0; i < scores.size(); ++i)
    if (!std::isfinite(scores[i]))
      throw Error(where + ": row '" + names[i] + "' scores " + std::to_string(scores[i]) +
                  ", expected a finite number (non-finite features or model values)");
}

// ---- fitting (`normad mvg fit`) ----
// Step by step: split the training rows (seeded) unless a reference is given, stream the fit rows
// into the Gaussian fitter, score the held-out (or reference) rows, put the threshold at their
// conformal (1 - fpr) quantile, and record how it was made.

void ImageDetector::finish_fit(const std::vector<double>& normal_scores, const std::vector<std::string>& names,
                               const std::string& where, const ImageFitOptions& o, bool has_reference,
                               const std::string& reference) {
  check_finite_scores(normal_scores, names, where);
  model_.set_thresholds(o.fpr, normal_scores, has_reference ? "reference" : "calibration");
  threshold_ = model_.threshold;
  model_.info["fit.rows"] = std::to_string(fit_summary_.fit_rows);
  if (!has_reference) {
    model_.info["fit.calibration"] = short_text(o.calibration);
    model_.info["fit.seed"] = std::to_string(o.seed);
  } else {
    model_.info["fit.reference"] = reference;
  }
}

ImageDetector ImageDetector::fit(const models::FeatureSpec& spec, const std::vector<std::string>& train,
                                 const ImageFitOptions& o, const std::vector<std::string>& reference,
                                 const std::string& source, const std::string& reference_source) {
  check(o.fpr > 0 && o.fpr < 1, "ImageDetector::fit", "fpr must be in (0, 1), got " + short_text(o.fpr));
  ImageDetector d;
  d.path_ = "ImageDetector::fit(" + source + ")";  // what errors name until the model is saved and loaded
  d.device_ = o.device, d.batch_ = spec.batch;
  models::FeatureSpec on_device_spec = spec;
  on_device_spec.device = o.device;
  d.extractor_.emplace(on_device_spec);  // the backbone, its weights hashed once
  const models::FeatureExtractor& fx = *d.extractor_;
  std::vector<std::string> fit_paths = train, normal = reference;
  if (reference.empty())
    naming(source, [&] {
      const eval::CalibrationSplit sp = eval::calibration_split(int64_t(train.size()), o.calibration, o.seed);
      fit_paths = pick(train, sp.fit), normal = pick(train, sp.calibration);
    });
  naming(source, [&] { d.model_ = models::fit_images(fx, fit_paths, o.gaussian, o.fit_progress, o.comm); });
  d.fit_summary_ = {int64_t(train.size()), int64_t(fit_paths.size())};
  d.fitted_spec_ = fx.spec();
  d.model_.info = fx.spec().to_metadata("model.safetensors");
  d.model_.info["features.weights"] = std::filesystem::absolute(fx.spec().weights).string();  // until save(path)
  const std::vector<double> scores = models::score_images(fx, d.model_, normal, o.threshold_progress, o.comm);
  d.finish_fit(scores, normal, reference.empty() ? source + " (held-out rows)" : reference_source, o,
               !reference.empty(), reference_source);
  return d;
}

ImageDetector ImageDetector::fit_features(const models::FeaturesCsv& t, const std::string& train_path,
                                          const ImageFitOptions& o, const models::FeaturesCsv* reference,
                                          const std::string& reference_path) {
  check(o.fpr > 0 && o.fpr < 1, "ImageDetector::fit_features", "fpr must be in (0, 1), got " + short_text(o.fpr));
  ImageDetector d;
  d.path_ = "ImageDetector::fit_features(" + train_path + ")";  // named in errors until saved and loaded
  d.device_ = o.device;
  const int64_t rows = t.table.x.size(0);
  const std::vector<Tensor> all = t.levels();
  std::vector<double> scores;      // normal scores the threshold is set on
  std::vector<std::string> names;  // their rows, for errors
  naming(train_path, [&] {
    std::vector<int64_t> fit_idx, cal_idx;
    if (!reference) {
      const eval::CalibrationSplit sp = eval::calibration_split(rows, o.calibration, o.seed);
      fit_idx = sp.fit, cal_idx = sp.calibration;
    }
    models::GaussianFitter fitter(t.dims, o.gaussian);
    fitter.add(fit_idx.empty() ? all : pick_rows(all, fit_idx));
    d.fit_summary_ = {rows, fitter.count()};
    d.model_ = fitter.finish();
    if (!reference) {
      scores = d.model_.score(on_device(pick_rows(all, cal_idx), o.device));
      names = pick(t.table.labels, cal_idx);
    }
  });
  if (reference) {
    if (reference->dims != t.dims)
      throw Error(reference_path + ": feature columns per level " + data::join_list(reference->dims) + ", " +
                  train_path + " has " + data::join_list(t.dims));
    check_same_pipeline(reference->pipeline, reference_path, t.pipeline, train_path);
    scores = d.model_.score(on_device(reference->levels(), o.device));
    names = reference->table.labels;
  }
  // The CSV's pipeline (weights re-anchored at the model's directory by save); none for a hand-made CSV.
  if (!t.pipeline.empty()) {
    d.fitted_spec_ = models::FeatureSpec::from_metadata(t.pipeline, train_path);
    d.model_.info = d.fitted_spec_->to_metadata("model.safetensors");
    d.model_.info["features.weights"] = std::filesystem::absolute(d.fitted_spec_->weights).string();  // until save
  }
  d.model_.info["features.csv"] = train_path;
  const std::string reference_name = reference_path.empty() ? "the reference features" : reference_path;
  d.finish_fit(scores, names, reference ? reference_name : train_path + " (held-out rows)", o, reference != nullptr,
               reference_name);
  return d;
}

void ImageDetector::save(const std::string& path) const {
  if (!fitted_spec_) return model_.save(path);
  // A fitted model's pipeline, its weights path relative to the model file's directory.
  models::GaussianAd m = model_;
  for (auto& [key, value] : fitted_spec_->to_metadata(path)) m.info[key] = value;
  m.save(path);
}

ImageDetector ImageDetector::load(const std::string& path, Device device, const std::string& weights, int64_t batch) {
  return from_file(nn::load_safetensors(path), path, device, weights, batch);
}

ImageDetector ImageDetector::from_file(const nn::Safetensors& f, const std::string& path, Device device,
                                       const std::string& weights, int64_t batch) {
  ImageDetector d;
  d.path_ = path, d.weights_ = weights, d.device_ = device, d.batch_ = batch;
  d.model_ = models::GaussianAd::from_file(f, path);
  d.threshold_ = d.model_.threshold;
  return d;
}

std::vector<int64_t> ImageDetector::dims() const {
  std::vector<int64_t> d;
  for (const auto& lv : model_.levels) d.push_back(lv.dim);
  return d;
}

// The model's image pipeline, its weights checked against the SHA-256 it stores (by the
// FeatureExtractor, which hashes them once; the error says which weights were used).
const models::FeatureExtractor& ImageDetector::extractor() {
  if (extractor_) return *extractor_;
  if (fitted_spec_ && weights_.empty()) {  // fitted here: the pipeline as given, its weights path resolved
    models::FeatureSpec spec = *fitted_spec_;
    spec.batch = batch_, spec.device = device_;
    extractor_.emplace(spec);
    return *extractor_;
  }
  const models::GaussianAd& m = model_;
  if (!m.info.count("features.backbone"))
    throw Error(path_ + ": fitted on " +
                (m.info.count("features.csv") ? "the features CSV " + m.info.at("features.csv") : "a features CSV") +
                " without a '# normad-features' line, so it does not know the backbone, weights or preprocessing "
                "of its features; score a features CSV made the same way with --features, or fit on `normad "
                "features` output or on images");
  models::FeatureSpec spec = models::FeatureSpec::from_metadata(m.info, path_);
  const std::string stored = spec.weights, want = spec.weights_sha256;
  if (!weights_.empty()) spec.weights = weights_;
  const std::string which = weights_.empty()
                                ? "the weights path stored in the model (features.weights, relative to its directory)"
                                : "--weights";
  if (!std::filesystem::is_regular_file(spec.weights))
    throw Error(path_ + ": weights " + spec.weights + " (" + which + ") not found; give --weights FILE with the "
                "weights it was fitted with (SHA-256 " + want + ")");
  spec.batch = batch_;
  spec.device = device_;
  std::optional<models::FeatureExtractor> fx;  // kept only once every check has passed
  try {
    fx.emplace(spec);  // refuses weights whose SHA-256 is not `want`
  } catch (const Error& e) {
    throw Error(path_ + ": fitted with the weights " + stored + " (SHA-256 " + want + "); with " + spec.weights +
                " (" + which + "): " + e.what() + "; use the weights the model was fitted with, or fit a new model");
  }
  if (fx->dims() != dims())
    throw Error(path_ + ": levels of " + data::join_list(dims()) + " features, but its pipeline gives " +
                data::join_list(fx->dims()));
  extractor_ = std::move(fx);
  return *extractor_;
}

std::vector<double> ImageDetector::score_levels(const std::vector<Tensor>& levels,
                                                const std::vector<std::string>& names, const std::string& where) {
  const std::vector<double> s = model_.score(on_device(levels, device_));
  check_finite_scores(s, names, where);
  return s;
}

std::vector<double> ImageDetector::score_features(const models::FeaturesCsv& t, const std::string& where) {
  const std::vector<int64_t> want = dims();
  int64_t total = 0;
  for (int64_t d : want) total += d;
  if (t.table.x.size(1) != total || (!t.pipeline.empty() && t.dims != want))
    throw Error(where + ": feature columns per level " + data::join_list(t.dims) + ", " + path_ + " expects " +
                data::join_list(want) + " (" + std::to_string(total) + " columns)");
  check_same_pipeline(t.pipeline, where, model_.info, path_);
  models::FeaturesCsv cut = t;
  cut.dims = want;
  return score_levels(cut.levels(), t.table.labels, where);
}

std::vector<double> ImageDetector::decision_function(const Table& x) {
  // The feature columns as numbers (a `name` column, as normad features writes it, is skipped).
  models::FeaturesCsv t;
  data::PreprocessOptions o;
  if (data::column_index(x, "name") >= 0) o.label = "name";
  t.table = data::Preprocess::fit(x, o).apply(x);
  if (t.table.labels.empty())
    for (size_t i = 0; i < x.rows.size(); ++i) t.table.labels.push_back(std::to_string(i));
  t.dims = {t.table.x.size(1)};
  return score_features(t, x.path);
}

std::vector<double> ImageDetector::decision_function(const Tensor& x) {
  if (x.dim() != 2) throw Error("decision_function: x has shape " + shape_str(x.shape()) + ", expected [N, D]");
  models::FeaturesCsv t;
  t.table.x = x;
  for (int64_t i = 0; i < x.size(0); ++i) t.table.labels.push_back(std::to_string(i));
  t.dims = {x.size(1)};
  return score_features(t, "decision_function(x)");
}

std::vector<double> ImageDetector::score_images(const std::vector<std::string>& paths,
                                                const models::ProgressFn& progress,
                                                const std::vector<std::string>& names, const std::string& where,
                                                Communicator* comm) {
  const std::vector<double> s = models::score_images(extractor(), model_, paths, progress, comm);
  check_finite_scores(s, names.empty() ? paths : names, where);
  return s;
}

std::vector<double> ImageDetector::score_decoded(const std::vector<Tensor>& images) {
  // The same batches as score_images runs on files (the same passes, the same sums).
  const std::vector<double> s = models::score_images(extractor(), model_, images);
  std::vector<std::string> names;
  for (size_t i = 0; i < images.size(); ++i) names.push_back("image " + std::to_string(i));
  check_finite_scores(s, names, "score_decoded");
  return s;
}

const eval::ThresholdReport& ImageDetector::infer_threshold(const Table& normals, double fpr) {
  model_.set_thresholds(fpr, decision_function(normals), "reference");
  threshold_ = model_.threshold;
  return threshold_;
}

}  // namespace normad
