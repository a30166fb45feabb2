// Image → pooled backbone features → Gaussian-AD, the pipeline behind `normad features` and
// `normad mvg` (gaussian_ad.md §1-§4, §9): decode and preprocess a batch of images (data/image.h),
// run a frozen backbone (models/backbones.h) to the deepest requested level, global-average-pool
// each level, and either return the vectors or feed them straight into a streaming Gaussian fit.
// Math: f_l(x) = mean_{h,w} level_l(x)[:, h, w]; score(x) = (1/L) Σ_l M_l(f_l(x)).
// Tested by tests/test_cli_images.cpp on a generated MVTec-like tree: the CSV features equal
// extract() (at another batch size), a model fitted on images equals one fitted on their CSV (one
// and several levels), held-out and reference thresholds, the weights check; file_sha256 against
// known digests in tests/test_gaussian_ad.cpp.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/csv.h"
#include "data/image.h"
#include "data/image_sets.h"
#include "models/backbones.h"
#include "models/gaussian_ad.h"

namespace normad::models {

// Largest image side (--size, --crop, features.size): far above any backbone's native size (B7: 600).
inline constexpr int kMaxImageSize = 4096;

struct FeatureSpec {
  std::string backbone;        // a backbone_names() entry
  std::string weights;         // torchvision safetensors file (scripts/export_torchvision.py)
  std::string weights_sha256;  // of the weights file; FeatureExtractor fills it when empty, checks it when not
  std::vector<int> levels;     // empty: every level of the backbone
  data::ImagePrep prep;        // size 0: the backbone's native size (gaussian_ad.md §3)
  int64_t batch = 16;          // images per forward pass
  Device device = Device::CPU; // where the backbone runs (not stored: features are device-independent)

  // The spec as metadata fields ("features.backbone", ...) and back, so a model file or a features
  // CSV remembers how its features were made. The weights path is stored relative to the directory
  // of `file` (the model or CSV the fields go to), so moving them together keeps it valid, and is
  // read back relative to it. from_metadata's errors name `file` and the field.
  std::map<std::string, std::string> to_metadata(const std::string& file) const;
  static FeatureSpec from_metadata(const std::map<std::string, std::string>& meta, const std::string& file);
};

// Hex SHA-256 of a file's bytes (OpenSSL's EVP digest); an Error naming the file if it cannot be read.
std::string file_sha256(const std::string& path);
// Hex SHA-256 of a string's bytes.
std::string text_sha256(const std::string& text);
// `target` as seen from the directory of `file` (relative when possible) and back.
std::string path_relative_to(const std::string& target, const std::string& file);
std::string path_resolved_from(const std::string& stored, const std::string& file);

// (done, total) after each batch.
using ProgressFn = std::function<void(int64_t, int64_t)>;

class FeatureExtractor {
 public:
  explicit FeatureExtractor(FeatureSpec spec);  // builds the backbone and loads the weights
  const FeatureSpec& spec() const { return spec_; }
  std::vector<int64_t> dims() const;  // C_l of the chosen levels

  // Pooled features of images [N, 3, S, S] (already preprocessed, on the host): one [N, C_l] per
  // level, on spec().device.
  std::vector<Tensor> pooled(const Tensor& images) const;
  // The chosen levels' maps [N, C_l, H_l, W_l], not pooled (ACR on MVTec AD scores each position).
  std::vector<Tensor> maps(const Tensor& images) const;
  // The files in batches of spec().batch, in order; `each` gets every batch's pooled levels (on
  // spec().device). A non-finite feature is an Error naming the image and the level.
  void for_each_batch(const std::vector<std::string>& paths,
                      const std::function<void(const std::vector<Tensor>&)>& each,
                      const ProgressFn& progress = {}) const;
  // The same on decoded images, each [3, H, W] RGB 0..255 (data::load_image_rgb), prepared by
  // spec().prep; errors name "image i".
  void for_each_batch(const std::vector<Tensor>& images,
                      const std::function<void(const std::vector<Tensor>&)>& each,
                      const ProgressFn& progress = {}) const;
  // for_each_batch(paths, ...) with each level's maps [B, C_l, H_l, W_l] instead of the pooled vectors.
  void for_each_batch_maps(const std::vector<std::string>& paths,
                           const std::function<void(const std::vector<Tensor>&)>& each,
                           const ProgressFn& progress = {}) const;
  // All files' pooled levels concatenated → [N, Σ C_l], on the host.
  Tensor extract(const std::vector<std::string>& paths, const ProgressFn& progress = {}) const;

 private:
  FeatureSpec spec_;
  std::shared_ptr<Backbone> net_;
  // The files in batches, pooled or not (for_each_batch, for_each_batch_maps).
  void file_batches(const std::vector<std::string>& paths, const std::function<void(const std::vector<Tensor>&)>& each,
                    const ProgressFn& progress, bool pool) const;
  // Images [begin, end) prepared as one batch by load(begin, end); name(i) in errors.
  void batches(int64_t n, const std::function<Tensor(int64_t, int64_t)>& load,
               const std::function<std::string(int64_t)>& name,
               const std::function<void(const std::vector<Tensor>&)>& each, const ProgressFn& progress,
               bool pool = true) const;
};

// Streaming Gaussian-AD fit on the images: batch by batch into the moment sums, so memory is
// O(d²) per level whatever the number of images (PCA / NPCA hold the pooled vectors once).
// The caller records the spec in model.info (fx.spec().to_metadata(model file)).
// With `comm` (an MPI job, issue 18) each rank extracts only its share of the paths
// (rank_share) and the moment sums are all-reduced: every rank returns the model of all images.
GaussianAd fit_images(const FeatureExtractor& fx, const std::vector<std::string>& paths,
                      const GaussianAdOptions& options, const ProgressFn& progress = {}, Communicator* comm = nullptr);
// Scores of the images, batch by batch. With `comm` each rank scores its share and every rank
// returns all the scores, in the order of `paths`.
std::vector<double> score_images(const FeatureExtractor& fx, const GaussianAd& model,
                                 const std::vector<std::string>& paths, const ProgressFn& progress = {},
                                 Communicator* comm = nullptr);
// The same on decoded images (FeatureExtractor::for_each_batch on tensors).
std::vector<double> score_images(const FeatureExtractor& fx, const GaussianAd& model,
                                 const std::vector<Tensor>& images, const ProgressFn& progress = {});

// "0,2,4" -> {0, 2, 4}; `where` names the option or file in the error for a non-integer entry.
std::vector<int> parse_levels(const std::string& text, const std::string& where);

// Features CSV (`normad features`, gaussian_ad.md "Features CSV"): an optional first line
//   # normad-features {"features.backbone":"resnet18","features.dims":"128,512",...}
// (the FeatureSpec metadata, weights relative to the CSV's directory, plus features.dims: the
// column count of each level, in order), then the header name,f0,f1,... and one row per image.
// pandas reads it with comment='#'. A CSV without the line (made by hand) is one level of every
// feature column, with no pipeline.
struct FeaturesCsv {
  data::Table table;                             // labels: the names; x [N, D]
  std::map<std::string, std::string> pipeline;   // the first line's fields; empty without it
  std::vector<int64_t> dims;                     // columns per level, summing to D
  std::vector<Tensor> levels() const;            // x cut into [N, dims[l]] per level
};
// The first line for `spec` (as to_metadata(path)) with the level dims.
std::string features_csv_line(const FeatureSpec& spec, const std::vector<int64_t>& dims, const std::string& path);
// Reads a features CSV. Errors name the file, the line (counted in the file, the first line
// included) and the column: a non-number or non-finite cell, a malformed first line, dims that do
// not add up to the feature columns, no rows.
FeaturesCsv read_features_csv(const std::string& path);

}  // namespace normad::models
