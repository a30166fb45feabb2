// The image detector: Gaussian-AD (gaussian_ad.md) on pooled backbone features, with the image
// pipeline and backbone weights (checked by SHA-256) its model file records. `normad mvg fit` is
// ImageDetector::fit / fit_features + save; `normad mvg score` is ImageDetector::load + score_images
// / score_features.
// Math: score(x) = (1/L) Σ_l Mahalanobis_l(pool(level_l(backbone(prep(x))))).
// Tested by tests/test_detect.cpp (API = CLI bit for bit, API fit = mvg fit's file byte for byte,
// decoded buffers = files) and
// tests/test_cli_images.cpp.
//
// Typical use:
//   normad::ImageDetector det = normad::ImageDetector::load("bottle.safetensors");
//   std::vector<double> s = det.score_images({"test/000.png", "test/001.png"});
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "detect/detector.h"
#include "models/image_features.h"

namespace normad {

// How ImageDetector::fit sets up Gaussian-AD and its decision threshold (`normad mvg fit`'s options).
struct ImageFitOptions {
  models::GaussianAdOptions gaussian;  // reduction (none, pca, npca), its variance share, rcond
  double fpr = 0.05;                   // share of new normal images the threshold may flag
  double calibration = 0.2;            // share held out of the fit for the threshold (no reference)
  uint64_t seed = 0;                   // the held-out draw
  Device device = Device::CPU;         // where the backbone and the scoring run (spec.device is not read)
  models::ProgressFn fit_progress, threshold_progress;
  // A sharded fit (an MPI job): each rank extracts its share of the fit and held-out images, the
  // moment sums and the held-out scores are combined; every rank ends with the same detector (the
  // caller saves it once). Null: this process alone.
  Communicator* comm = nullptr;
};

class ImageDetector : public Detector {
 public:
  // Fits Gaussian-AD on normal image files with the pipeline `spec` (backbone, weights, levels,
  // preparation): on all of `train` but a seeded `calibration` share held out, the threshold the
  // conformal (1 - fpr) quantile of the held-out images' scores; or, with `reference` images, on
  // all of `train` with the threshold on the reference. `source` and `reference_source` name the
  // data in errors (a non-finite score names its image) and the model records the latter
  // (fit.reference). `normad mvg fit` is this + save.
  static ImageDetector fit(const models::FeatureSpec& spec, const std::vector<std::string>& train,
                           const ImageFitOptions& o, const std::vector<std::string>& reference = {},
                           const std::string& source = "the training images",
                           const std::string& reference_source = "the reference images");
  // The same on a features CSV of `normad features` (its rows are images), with a reference CSV of
  // the same pipeline instead of held-out rows when given (`reference_path` names it in errors and
  // in the model). A CSV without a pipeline line fits too; such a model scores features only.
  static ImageDetector fit_features(const models::FeaturesCsv& train, const std::string& train_path,
                                    const ImageFitOptions& o, const models::FeaturesCsv* reference = nullptr,
                                    const std::string& reference_path = "");
  struct FitSummary {
    int64_t rows = 0, fit_rows = 0;  // training rows given, rows the Gaussian was fitted on
  };
  const FitSummary& fit_summary() const { return fit_summary_; }

  // weights: the backbone weights file to use instead of the path the model stores (relative to the
  // model file); it must have the SHA-256 the model was fitted with.
  static ImageDetector load(const std::string& path, Device device = Device::CPU, const std::string& weights = "",
                            int64_t batch = 16);
  static ImageDetector from_file(const nn::Safetensors& f, const std::string& path, Device device = Device::CPU,
                                 const std::string& weights = "", int64_t batch = 16);

  std::string kind() const override { return "gaussian-ad"; }
  // Features as `normad features` writes them: columns f0 .. f{D-1} (the levels concatenated; a
  // `name` column is skipped), or a tensor x [N, D].
  std::vector<double> decision_function(const Table& x) override;
  std::vector<double> decision_function(const Tensor& x) override;
  // A features CSV (models::read_features_csv): its levels must be the model's and its pipeline
  // the model's (backbone, weights' SHA-256, levels, image preparation).
  std::vector<double> score_features(const models::FeaturesCsv& features, const std::string& where);
  // Image files, decoded and prepared as the model's pipeline says, in batches. A non-finite score
  // is an Error naming `where` and the row's entry of `names` (default: the paths).
  // With `comm` each rank scores its share of the paths and every rank returns all the scores.
  std::vector<double> score_images(const std::vector<std::string>& paths, const models::ProgressFn& progress = {},
                                   const std::vector<std::string>& names = {}, const std::string& where = "score_images",
                                   Communicator* comm = nullptr);
  // Decoded images, each [3, H, W] RGB 0..255 (data::load_image_rgb), prepared the same way.
  std::vector<double> score_decoded(const std::vector<Tensor>& images);
  const eval::ThresholdReport& infer_threshold(const Table& normals, double fpr) override;
  // A fitted detector records its pipeline with the weights path relative to `path`'s directory
  // (model().save(path) would keep the absolute path the detector holds in memory).
  void save(const std::string& path) const override;

  const models::GaussianAd& model() const { return model_; }
  // The model's image pipeline, built on first use: its backbone with weights of the SHA-256 the
  // model stores, giving the model's level widths (an Error naming the model file otherwise).
  const models::FeatureExtractor& extractor();
  std::vector<int64_t> dims() const;  // features per level

 private:
  std::string path_, weights_;
  Device device_ = Device::CPU;
  int64_t batch_ = 16;
  models::GaussianAd model_;
  std::optional<models::FeatureExtractor> extractor_;  // built on the first image
  std::optional<models::FeatureSpec> fitted_spec_;     // fit: the pipeline, written by save(path)
  FitSummary fit_summary_;
  // Held-out or reference scores -> the decision threshold and the fit.* fields.
  void finish_fit(const std::vector<double>& normal_scores, const std::vector<std::string>& names,
                  const std::string& where, const ImageFitOptions& o, bool has_reference, const std::string& reference);
  std::vector<double> score_levels(const std::vector<Tensor>& levels, const std::vector<std::string>& names,
                                   const std::string& where);
};

// The pipeline fields a features CSV must share with a model or another CSV (backbone, weights'
// SHA-256, levels, size, crop, filter, shorter side; the weights path may differ): an Error naming
// the field and both files.
void check_same_pipeline(const std::map<std::string, std::string>& csv, const std::string& csv_path,
                         const std::map<std::string, std::string>& other, const std::string& other_path);
// Non-finite scores of named rows (image names): an Error naming the first, never a quiet label.
void check_finite_scores(const std::vector<double>& scores, const std::vector<std::string>& names,
                         const std::string& where);

}  // namespace normad
