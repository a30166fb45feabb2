// Image → pooled backbone features → Gaussian-AD, the pipeline behind `normad features` and
// `normad mvg` (gaussian_ad.md §1-§4, §9): decode and preprocess a batch of images (data/image.h),
// run a frozen backbone (models/backbones.h) to the deepest requested level, global-average-pool
// each level, and either return the vectors or feed them straight into a streaming Gaussian fit.
// Math: f_l(x) = mean_{h,w} level_l(x)[:, h, w]; score(x) = (1/L) Σ_l M_l(f_l(x)).
// Tested by tests/test_cli_images.cpp on a generated MVTec-like tree: the CSV features equal
// extract() (at another batch size), a model fitted on images equals one fitted on their CSV,
// thresholds from reference images.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/image.h"
#include "data/image_sets.h"
#include "models/backbones.h"
#include "models/gaussian_ad.h"

namespace normad::models {

struct FeatureSpec {
  std::string backbone;     // a backbone_names() entry
  std::string weights;      // torchvision safetensors file (scripts/export_torchvision.py)
  std::vector<int> levels;  // empty: every level of the backbone
  data::ImagePrep prep;     // size 0: the backbone's native size (gaussian_ad.md §3)
  int64_t batch = 16;       // images per forward pass

  // The spec as metadata fields ("features.backbone", ...) and back, so a model file remembers how
  // its features were made.
  std::map<std::string, std::string> to_metadata() const;
  static FeatureSpec from_metadata(const std::map<std::string, std::string>& meta, const std::string& file);
};

// (done, total) after each batch.
using ProgressFn = std::function<void(int64_t, int64_t)>;

class FeatureExtractor {
 public:
  explicit FeatureExtractor(FeatureSpec spec);  // builds the backbone and loads the weights
  const FeatureSpec& spec() const { return spec_; }
  std::vector<int64_t> dims() const;  // C_l of the chosen levels

  // Pooled features of images [N, 3, S, S] (already preprocessed): one [N, C_l] per level.
  std::vector<Tensor> pooled(const Tensor& images) const;
  // The files in batches of spec().batch, in order; `each` gets every batch's pooled levels.
  void for_each_batch(const std::vector<std::string>& paths,
                      const std::function<void(const std::vector<Tensor>&)>& each,
                      const ProgressFn& progress = {}) const;
  // All files' pooled levels concatenated → [N, Σ C_l].
  Tensor extract(const std::vector<std::string>& paths, const ProgressFn& progress = {}) const;

 private:
  FeatureSpec spec_;
  std::shared_ptr<Backbone> net_;
};

// Streaming Gaussian-AD fit on the images: batch by batch into the moment sums, so memory is
// O(d²) per level whatever the number of images (PCA / NPCA hold the pooled vectors once).
// The model's info records the feature spec.
GaussianAd fit_images(const FeatureExtractor& fx, const std::vector<std::string>& paths,
                      const GaussianAdOptions& options, const ProgressFn& progress = {});
// Thresholds at `fpr`: χ² per level and, with more than one level or model.empirical_preferred,
// the empirical one from the scores of `normal` images (normal reference data; the training
// images themselves are in-sample and so flag fewer than `fpr` of new normal images; a second
// backbone pass over them). One level with χ² labels needs no images.
void set_image_thresholds(const FeatureExtractor& fx, GaussianAd& model, double fpr,
                          const std::vector<std::string>& normal, const std::string& source,
                          const ProgressFn& progress = {});
// Scores of the images, batch by batch.
std::vector<double> score_images(const FeatureExtractor& fx, const GaussianAd& model,
                                 const std::vector<std::string>& paths, const ProgressFn& progress = {});

// "0,2,4" -> {0, 2, 4}; `where` names the option or file in the error for a non-integer entry.
std::vector<int> parse_levels(const std::string& text, const std::string& where);

}  // namespace normad::models
