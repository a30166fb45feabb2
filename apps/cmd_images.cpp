// normad features / mvg fit / mvg score / mvg eval (see cmd_images.h). Errors are normad::Error
// (exit code 2 in main); every output file is written atomically.
#include "apps/cmd_images.h"

#include <json.hpp>

#include <cmath>
#include <functional>
#include <cstdio>
#include <filesystem>
#include <new>

#include "apps/cli_util.h"
#include "data/csv.h"
#include "eval/metrics.h"
#include "models/image_features.h"
#include "models/gaussian_ad.h"
#include "tensor/ops.h"

namespace normad::cli {

struct ImageArgs {
  // Image sources.
  std::string images, mvtec, category, split = "train", score_split = "test", reference;
  bool all = false;
  // Feature pipeline.
  std::string backbone, weights, levels, filter = "bilinear";
  int size = 0, crop = 0;
  bool shorter_side = false;
  int64_t batch = 16;
  int64_t max_image_pixels = data::kDefaultMaxImagePixels;
  // Gaussian-AD.
  std::string features, model, out;
  double pca = 0, npca = 0, fpr = 0.05, calibration = 0.2;
  bool f32_cutoff = false;
};

namespace {

std::string num(double v) {  // shortest readable form: 0.2, not 0.200000
  char b[32];
  std::snprintf(b, sizeof b, "%g", v);
  return b;
}

void add_pipeline_options(CLI::App* c, ImageArgs& a, bool weights_required) {
  auto* w = c->add_option("--weights", a.weights, "torchvision weights (.safetensors, scripts/export_torchvision.py)");
  c->add_option("--levels", a.levels, "feature levels, comma-separated (default: all of the backbone's)");
  c->add_option("--size", a.size, "resize to SIZE x SIZE (default: the backbone's native size)");
  c->add_option("--crop", a.crop, "centre crop after resizing (0: none)")->capture_default_str();
  c->add_option("--filter", a.filter, "bilinear (OpenCV, the official code), bilinear-aa, lanczos or nearest")
      ->capture_default_str();
  c->add_flag("--shorter-side", a.shorter_side, "resize the shorter side to SIZE (torchvision Resize) instead of SIZE x SIZE");
  c->add_option("--batch", a.batch, "images per forward pass")->capture_default_str();
  if (weights_required) w->required();
}

void add_max_pixels_option(CLI::App* c, ImageArgs& a) {
  c->add_option("--max-image-pixels", a.max_image_pixels,
                "refuse images declaring more pixels (width x height) before decoding them")
      ->capture_default_str();
}

void add_source_options(CLI::App* c, ImageArgs& a) {
  c->add_option("--images", a.images, "a directory of images (PNG, JPEG, BMP)");
  c->add_option("--mvtec", a.mvtec, "MVTec AD root (ROOT/<category>/train/good, test/<defect>, ground_truth)");
  c->add_option("--category", a.category, "with --mvtec: the category");
  add_max_pixels_option(c, a);
}

// Feature levels copied to --device for scoring (Gaussian-AD scores there: see level_distances).
std::vector<Tensor> on_compute_device(const std::vector<Tensor>& levels) {
  std::vector<Tensor> out;
  for (const Tensor& t : levels) out.push_back(t.to(compute_device()));
  return out;
}

models::FeatureSpec feature_spec(const ImageArgs& a) {
  if (a.size < 0 || a.size > models::kMaxImageSize)
    throw Error("--size: expected 1.." + std::to_string(models::kMaxImageSize) + " pixels (0: the backbone's native size), got " +
                std::to_string(a.size));
  if (a.crop < 0 || a.crop > models::kMaxImageSize || (a.size > 0 && a.crop > a.size))
    throw Error("--crop: expected 0 (none) up to --size, got " + std::to_string(a.crop));
  try {
    data::parse_resize_filter(a.filter);
  } catch (const Error& e) {
    throw Error(std::string("--filter: ") + e.what());
  }
  models::FeatureSpec s;
  s.backbone = a.backbone;
  s.weights = a.weights;
  if (!a.levels.empty()) s.levels = models::parse_levels(a.levels, "--levels");
  s.prep.size = a.size;
  s.prep.crop = a.crop;
  s.prep.filter = a.filter;
  s.prep.shorter_side = a.shorter_side;
  s.batch = a.batch;
  s.device = compute_device();
  return s;
}

// The images of one directory, named by file name; none is an error naming the directory.
std::vector<data::ImageItem> dir_items(const std::string& dir, const std::string& option) {
  std::vector<data::ImageItem> items;
  for (const std::string& name : data::list_images(dir)) {
    data::ImageItem it;
    it.path = (std::filesystem::path(dir) / name).string();
    it.name = name;
    items.push_back(it);
  }
  if (items.empty()) throw Error(dir + ": no images (.png, .jpg, .jpeg, .bmp) for " + option);
  return items;
}

// The items of --images DIR or --mvtec ROOT --category C (split), with names.
std::vector<data::ImageItem> source_items(const ImageArgs& a, const std::string& split) {
  if (!a.images.empty() == !a.mvtec.empty()) throw Error("give exactly one of --images DIR and --mvtec ROOT");
  if (!a.mvtec.empty()) {
    if (a.category.empty()) throw Error("--mvtec needs --category");
    return data::mvtec_items(a.mvtec, a.category, split);
  }
  return dir_items(a.images, "--images");
}

// What the training data is called in messages.
std::string source_name(const ImageArgs& a, const std::string& split) {
  if (!a.features.empty()) return a.features;
  if (!a.images.empty()) return a.images;
  return (std::filesystem::path(a.mvtec) / a.category / split).string();
}

models::GaussianAdOptions gaussian_options(const ImageArgs& a, bool pca_given, bool npca_given) {
  models::GaussianAdOptions o;
  if (pca_given && npca_given) throw Error("--pca and --npca: give at most one");
  if (pca_given) o.reduction = "pca", o.variance = a.pca;
  if (npca_given) o.reduction = "npca", o.variance = a.npca;
  if (o.reduction != "none" && !(o.variance > 0 && o.variance < 1))
    throw Error("--" + o.reduction + ": the variance threshold must be in (0, 1), got " + num(o.variance));
  if (a.f32_cutoff) o.rcond = models::kRcondF32;
  return o;
}

std::string format_row(const std::string& name, const float* v, int64_t n) {
  std::string s = data::csv_field(name);
  char buf[32];
  for (int64_t j = 0; j < n; ++j) {
    std::snprintf(buf, sizeof buf, ",%.9g", v[j]);
    s += buf;
  }
  return s + "\n";
}

// A non-finite score (or feature) must never become a quiet label: an Error naming the row.
void check_finite(const std::vector<double>& scores, const std::vector<std::string>& names, const std::string& where) {
  for (size_t i = 0; i < scores.size(); ++i)
    if (!std::isfinite(scores[i]))
      throw Error(where + ": row '" + names[i] + "' scores " + std::to_string(scores[i]) +
                  ", expected a finite number (non-finite features or model values)");
}

void write_scores(const std::string& out, const std::vector<std::string>& names, const std::vector<double>& scores,
                  double threshold) {
  std::string text = "name,score,prediction\n";
  char buf[64];
  for (size_t i = 0; i < scores.size(); ++i) {
    std::snprintf(buf, sizeof buf, ",%.9g,%d\n", scores[i], scores[i] > threshold ? 1 : 0);
    text += data::csv_field(names[i]) + buf;
  }
  write_atomic(out, text);
}

double sem(const std::vector<double>& v) {  // sample std (ddof 1) / sqrt(n)
  if (v.size() < 2) return 0;
  double m = 0, ss = 0;
  for (double x : v) m += x / double(v.size());
  for (double x : v) ss += (x - m) * (x - m);
  return std::sqrt(ss / double(v.size() - 1)) / std::sqrt(double(v.size()));
}

std::vector<std::string> item_names(const std::vector<data::ImageItem>& items) {
  std::vector<std::string> names;
  for (const auto& it : items) names.push_back(it.name);
  return names;
}

template <typename T>
std::vector<T> pick(const std::vector<T>& v, const std::vector<int64_t>& idx) {
  std::vector<T> out;
  for (int64_t i : idx) out.push_back(v[size_t(i)]);
  return out;
}

std::vector<Tensor> pick_rows(const std::vector<Tensor>& levels, const std::vector<int64_t>& idx) {
  std::vector<Tensor> out;
  for (const Tensor& t : levels) out.push_back(index_select(t, idx));
  return out;
}

std::vector<int64_t> model_dims(const models::GaussianAd& m) {
  std::vector<int64_t> d;
  for (const auto& lv : m.levels) d.push_back(lv.dim);
  return d;
}

template <typename T>
std::string join_list(const std::vector<T>& v) {  // "128,512"
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

// The pipeline fields a features CSV must share with the model or CSV it is used with (the weights
// path may differ, their SHA-256 may not).
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

// The model's image pipeline, its weights checked against the SHA-256 it stores (by the
// FeatureExtractor, which hashes them once; the error here says which weights were used).
models::FeatureExtractor scoring_extractor(const models::GaussianAd& m, const ImageArgs& a) {
  if (!m.info.count("features.backbone"))
    throw Error(a.model + ": fitted on " +
                (m.info.count("features.csv") ? "the features CSV " + m.info.at("features.csv") : "a features CSV") +
                " without a '# normad-features' line, so it does not know the backbone, weights or preprocessing "
                "of its features; score a features CSV made the same way with --features, or fit on `normad "
                "features` output or on images");
  models::FeatureSpec spec = models::FeatureSpec::from_metadata(m.info, a.model);
  const std::string stored = spec.weights, want = spec.weights_sha256;
  if (!a.weights.empty()) spec.weights = a.weights;
  const std::string which = a.weights.empty()
                                ? "the weights path stored in the model (features.weights, relative to its directory)"
                                : "--weights";
  if (!std::filesystem::is_regular_file(spec.weights))
    throw Error(a.model + ": weights " + spec.weights + " (" + which + ") not found; give --weights FILE with the "
                "weights it was fitted with (SHA-256 " + want + ")");
  spec.batch = a.batch;
  spec.device = compute_device();
  try {
    return models::FeatureExtractor(spec);  // refuses weights whose SHA-256 is not `want`
  } catch (const Error& e) {
    throw Error(a.model + ": fitted with the weights " + stored + " (SHA-256 " + want + "); with " + spec.weights +
                " (" + which + "): " + e.what() + "; use the weights the model was fitted with, or fit a new model");
  }
}

}  // namespace

ImageCommands::ImageCommands(CLI::App& app, const std::function<void(CLI::App*)>& common, const std::string& json_path)
    : a_(std::make_unique<ImageArgs>()), json_path_(json_path) {
  ImageArgs& a = *a_;
  features_ = app.add_subcommand("features", "pooled backbone features of images -> CSV (a '# normad-features' line, "
                                             "then name,f0,f1,...; levels in order)");
  common(features_);
  features_->add_option("--backbone", a.backbone, "resnet18, resnet50, wide_resnet50_2, efficientnet_b0 or efficientnet_b4")->required();
  add_pipeline_options(features_, a, true);
  add_source_options(features_, a);
  features_->add_option("--split", a.split, "with --mvtec: train or test")->capture_default_str();
  features_->add_option("--out", a.out, "features CSV")->required();

  mvg_ = app.add_subcommand("mvg", "Gaussian-AD: a multivariate Gaussian per feature level, Mahalanobis scores (gaussian_ad.md)");
  mvg_->require_subcommand(1);
  fit_ = mvg_->add_subcommand("fit", "fit on normal images or features and write a model file");
  common(fit_);
  fit_->add_option("--features", a.features, "a features CSV (from normad features: its levels and pipeline) instead of images");
  fit_->add_option("--backbone", a.backbone, "with images: the backbone");
  add_pipeline_options(fit_, a, false);
  add_source_options(fit_, a);
  fit_->add_option("--calibration", a.calibration,
                   "hold out this fraction of the training images (or rows), drawn with --seed; the Gaussian is fitted "
                   "on the rest and the decision threshold is the conformal (1 - fpr) quantile of the held-out scores")
      ->capture_default_str();
  fit_->add_option("--reference", a.reference,
                   "instead of --calibration: fit on all training data and set the decision threshold on these normal "
                   "data (an image directory, or a features CSV with --features)");
  fit_->add_option("--pca", a.pca, "keep the leading components explaining > T of the variance");
  fit_->add_option("--npca", a.npca, "drop the leading components explaining T of the variance (NPCA; 0.99 = 'NPCA 1%')");
  fit_->add_option("--fpr", a.fpr,
                   "share of new normal data the decision threshold may flag, set by a conformal quantile (at most fpr "
                   "is guaranteed from 1/fpr - 1 held-out rows on, 19 at 0.05; below 2/fpr - 1, 39 at 0.05, the "
                   "threshold is their maximum)")
      ->capture_default_str();
  fit_->add_flag("--f32-cutoff", a.f32_cutoff, "pinvh with float32's cut-off, as the reference on float32 features");
  fit_->add_option("--out", a.out, "model file (.safetensors)")->required();

  score_ = mvg_->add_subcommand("score", "score images or features with a model; writes name,score,prediction (1: above the threshold)");
  common(score_);
  score_->add_option("--model", a.model, "model file from mvg fit")->required();
  score_->add_option("--features", a.features, "a features CSV");
  score_->add_option("--weights", a.weights, "with images: the model's weights at another path (checked by SHA-256)");
  score_->add_option("--batch", a.batch, "images per forward pass")->capture_default_str();
  add_source_options(score_, a);
  score_->add_option("--split", a.score_split, "with --mvtec: train or test")->capture_default_str();
  score_->add_option("--out", a.out, "scores CSV (prediction: 1 above the model's decision threshold)")->required();

  eval_ = mvg_->add_subcommand("eval", "MVTec AD: fit on train/good, image AUROC on the test split, per category");
  common(eval_);
  eval_->add_option("--mvtec", a.mvtec, "MVTec AD root")->required();
  eval_->add_option("--category", a.category, "one category");
  eval_->add_flag("--all", a.all, "every category under the root, with mean and SEM");
  eval_->add_option("--backbone", a.backbone, "the backbone")->required();
  add_pipeline_options(eval_, a, true);
  add_max_pixels_option(eval_, a);
  eval_->add_option("--pca", a.pca, "PCA variance threshold");
  eval_->add_option("--npca", a.npca, "NPCA variance threshold");
  eval_->add_flag("--f32-cutoff", a.f32_cutoff, "pinvh with float32's cut-off");
}

ImageCommands::~ImageCommands() = default;

bool ImageCommands::run() {
  try {
    return run_chosen();
  } catch (const std::bad_alloc&) {
    throw Error("out of memory: lower --batch or --size (a level of p features also needs p x p doubles to fit)");
  }
}

bool ImageCommands::run_chosen() {
  ImageArgs& a = *a_;
  if (a.max_image_pixels < 1)
    throw Error("--max-image-pixels: expected >= 1, got " + std::to_string(a.max_image_pixels));
  data::set_max_image_pixels(a.max_image_pixels);
  if (*features_) {
    models::FeatureExtractor fx(feature_spec(a));  // a bad backbone, weights or level fails first
    const std::vector<data::ImageItem> items = source_items(a, a.split);
    Progress p{"features", false};
    const Tensor f = fx.extract(data::item_paths(items), std::ref(p));
    const int64_t D = f.size(1);
    const std::vector<int64_t> dims = fx.dims();
    std::string text = models::features_csv_line(fx.spec(), dims, a.out) + "name";
    for (int64_t j = 0; j < D; ++j) text += ",f" + std::to_string(j);
    text += "\n";
    for (size_t i = 0; i < items.size(); ++i) text += format_row(items[i].name, f.data() + int64_t(i) * D, D);
    write_atomic(a.out, text);
    std::printf("%zu images, %lld features (%s levels %s at %dx%d; per level %s), wrote %s\n", items.size(),
                (long long)D, fx.spec().backbone.c_str(), join_list(fx.spec().levels).c_str(),
                fx.spec().prep.size, fx.spec().prep.size, join_list(dims).c_str(), a.out.c_str());
    if (!json_path_.empty())
      write_json(json_path_, nlohmann::json({{"rows", items.size()}, {"dims", dims}, {"backbone", fx.spec().backbone},
                                          {"levels", fx.spec().levels}, {"weights", fx.spec().weights},
                                          {"weights_sha256", fx.spec().weights_sha256}, {"out", a.out}}));
    return true;
  }
  if (*fit_) {
    const auto o = gaussian_options(a, fit_->count("--pca") > 0, fit_->count("--npca") > 0);
    if (!(a.fpr > 0 && a.fpr < 1)) throw Error("--fpr: must be in (0, 1), got " + num(a.fpr));
    if (!a.reference.empty() && fit_->count("--calibration"))
      throw Error("--calibration and --reference: give one (held-out training rows, or separate normal data)");
    const uint64_t seed = fit_->get_option("--seed")->as<uint64_t>();
    const std::string rule = a.reference.empty() ? "calibration" : "reference";
    const std::string source = source_name(a, "train/good");
    models::GaussianAd m;
    int64_t rows = 0, fit_rows = 0;
    std::vector<double> scores;       // normal scores the threshold is set on
    std::vector<std::string> names;   // their rows, for errors
    // Fit errors (too few rows, a level without variance) name the training data.
    auto fitting = [&](const auto& fn) {
      try {
        fn();
      } catch (const Error& e) {
        throw Error(source + ": " + e.what());
      }
    };
    if (!a.features.empty()) {
      if (!a.images.empty() || !a.mvtec.empty() || !a.backbone.empty() || !a.weights.empty() || !a.levels.empty() ||
          a.size || a.crop)
        throw Error("--features: give either a features CSV or images with --backbone (and its pipeline options), not both");
      const models::FeaturesCsv t = models::read_features_csv(a.features);
      rows = t.table.x.size(0);
      const std::vector<Tensor> all = t.levels();
      fitting([&] {
        std::vector<int64_t> fit_idx, cal_idx;
        if (a.reference.empty()) {
          const eval::CalibrationSplit sp = eval::calibration_split(rows, a.calibration, seed);
          fit_idx = sp.fit, cal_idx = sp.calibration;
        }
        models::GaussianFitter fitter(t.dims, o);
        fitter.add(fit_idx.empty() ? all : pick_rows(all, fit_idx));
        fit_rows = fitter.count();
        m = fitter.finish();
        if (a.reference.empty()) {
          scores = m.score(on_compute_device(pick_rows(all, cal_idx)));
          names = pick(t.table.labels, cal_idx);
        }
      });
      if (!a.reference.empty()) {
        const models::FeaturesCsv ref = models::read_features_csv(a.reference);
        if (ref.dims != t.dims)
          throw Error(a.reference + ": feature columns per level " + join_list(ref.dims) + ", " + a.features + " has " +
                      join_list(t.dims));
        check_same_pipeline(ref.pipeline, a.reference, t.pipeline, a.features);
        scores = m.score(on_compute_device(ref.levels()));
        names = ref.table.labels;
      }
      // The CSV's pipeline (weights re-anchored at the model's directory); none for a hand-made CSV.
      if (!t.pipeline.empty()) m.info = models::FeatureSpec::from_metadata(t.pipeline, a.features).to_metadata(a.out);
      m.info["features.csv"] = a.features;
    } else {
      if (a.backbone.empty() || a.weights.empty()) throw Error("mvg fit: give --features CSV, or --backbone and --weights with images");
      const std::vector<data::ImageItem> items = source_items(a, "train");
      rows = int64_t(items.size());
      models::FeatureExtractor fx(feature_spec(a));
      std::vector<data::ImageItem> fit_items = items, normal = a.reference.empty() ? items : dir_items(a.reference, "--reference");
      if (a.reference.empty()) {
        fitting([&] {
          const eval::CalibrationSplit sp = eval::calibration_split(rows, a.calibration, seed);
          fit_items = pick(items, sp.fit), normal = pick(items, sp.calibration);
        });
      }
      Progress p{"fit", false}, pr{"threshold", false};
      fitting([&] { m = models::fit_images(fx, data::item_paths(fit_items), o, std::ref(p)); });
      fit_rows = int64_t(fit_items.size());
      scores = models::score_images(fx, m, data::item_paths(normal), std::ref(pr));
      names = item_names(normal);
      m.info = fx.spec().to_metadata(a.out);
    }
    check_finite(scores, names, rule == "calibration" ? source + " (held-out rows)" : a.reference);
    m.set_thresholds(a.fpr, scores, rule);
    m.info["fit.rows"] = std::to_string(fit_rows);
    if (rule == "calibration") {
      m.info["fit.calibration"] = num(a.calibration);
      m.info["fit.seed"] = std::to_string(seed);
    } else {
      m.info["fit.reference"] = a.reference;
    }
    m.save(a.out);
    std::printf("fitted %zu level(s) on %lld of the %lld rows of %s (reduction %s), wrote %s\n", m.levels.size(),
                (long long)fit_rows, (long long)rows, source.c_str(), o.reduction.c_str(), a.out.c_str());
    std::printf("decision threshold (sets the labels), rule %s%s: %s\n", rule.c_str(),
                rule == "calibration" ? (" (--calibration " + num(a.calibration) + ", --seed " +
                                         std::to_string(seed) + ": rows held out of the fit)").c_str()
                                      : (" (" + a.reference + ")").c_str(),
                m.threshold.describe().c_str());
    std::printf("chi-square thresholds per level (information only, no labels: each keeps %g of a level's normal "
                "data only if its features were Gaussian with the fitted mean and covariance):\n", 1 - a.fpr);
    for (size_t l = 0; l < m.levels.size(); ++l)
      std::printf("  level %zu: %lld -> %lld dims, shrinkage %.4g, chi2 threshold %.4g\n", l,
                  (long long)m.levels[l].dim, (long long)m.levels[l].reduced, m.levels[l].shrinkage,
                  m.chi2_thresholds[l]);
    if (!json_path_.empty()) {
      nlohmann::json js{{"rows", rows}, {"fit_rows", fit_rows}, {"levels", m.levels.size()},
                        {"reduction", o.reduction}, {"fpr", a.fpr}, {"chi2_thresholds", m.chi2_thresholds},
                        {"out", a.out}};
      js["threshold"] = {{"value", m.threshold.threshold}, {"rule", m.threshold.rule},
                         {"target", m.threshold.target}, {"achieved", m.threshold.achieved},
                         {"rows", m.threshold.rows}};
      for (const auto& lv : m.levels) js["shrinkage"].push_back(lv.shrinkage), js["dims"].push_back(lv.reduced);
      write_json(json_path_, js);
    }
    return true;
  }
  if (*score_) {
    const models::GaussianAd m = models::GaussianAd::load(a.model);
    std::vector<std::string> names;
    std::vector<double> scores;
    std::string where;
    if (!a.features.empty()) {
      if (!a.images.empty() || !a.mvtec.empty()) throw Error("--features: give either a features CSV or images, not both");
      const models::FeaturesCsv t = models::read_features_csv(a.features);
      const std::vector<int64_t> want = model_dims(m);
      int64_t total = 0;
      for (int64_t d : want) total += d;
      if (t.table.x.size(1) != total || (!t.pipeline.empty() && t.dims != want))
        throw Error(a.features + ": feature columns per level " + join_list(t.dims) + ", " + a.model + " expects " +
                    join_list(want) + " (" + std::to_string(total) + " columns)");
      check_same_pipeline(t.pipeline, a.features, m.info, a.model);
      models::FeaturesCsv cut = t;
      cut.dims = want;
      names = t.table.labels;
      scores = m.score(on_compute_device(cut.levels()));
      where = a.features;
    } else {
      const models::FeatureExtractor fx = scoring_extractor(m, a);
      const std::vector<data::ImageItem> items = source_items(a, a.score_split);
      if (fx.dims() != model_dims(m))
        throw Error(a.model + ": levels of " + join_list(model_dims(m)) + " features, but its pipeline gives " +
                    join_list(fx.dims()));
      Progress p{"score", false};
      scores = models::score_images(fx, m, data::item_paths(items), std::ref(p));
      names = item_names(items);
      where = source_name(a, a.score_split);
    }
    check_finite(scores, names, where);
    const double thr = m.decision_threshold();
    write_scores(a.out, names, scores, thr);
    int64_t flagged = 0;
    for (double s : scores) flagged += s > thr;
    std::printf("scored %zu rows, %lld above the decision threshold %.6g (rule %s: fpr %g on %lld normal rows), "
                "wrote %s\n", scores.size(), (long long)flagged, thr, m.threshold.rule.c_str(), m.threshold.target,
                (long long)m.threshold.rows, a.out.c_str());
    if (!json_path_.empty())
      write_json(json_path_, nlohmann::json({{"rows", scores.size()}, {"flagged", flagged}, {"threshold", thr},
                                          {"threshold_rule", m.threshold.rule}, {"out", a.out}}));
    return true;
  }
  if (*eval_) {
    if (a.all == !a.category.empty()) throw Error("mvg eval: give exactly one of --category C and --all");
    const auto o = gaussian_options(a, eval_->count("--pca") > 0, eval_->count("--npca") > 0);
    const std::vector<std::string> cats =
        a.all ? data::mvtec_categories(a.mvtec) : std::vector<std::string>{a.category};
    if (cats.empty()) throw Error(a.mvtec + ": no category with train/good");
    models::FeatureExtractor fx(feature_spec(a));
    const std::string levels = join_list(fx.spec().levels);
    std::printf("Gaussian-AD on MVTec AD: %s levels %s, %dx%d %s%s, reduction %s%s, one fit on all train/good "
                "images per category\n",
                fx.spec().backbone.c_str(), levels.c_str(), fx.spec().prep.size,
                fx.spec().prep.size, fx.spec().prep.filter.c_str(),
                fx.spec().prep.crop ? (", crop " + std::to_string(fx.spec().prep.crop)).c_str() : "",
                o.reduction.c_str(), o.reduction == "none" ? "" : (" " + num(o.variance)).c_str());
    nlohmann::json js{{"backbone", fx.spec().backbone}, {"weights", fx.spec().weights},
                      {"levels", fx.spec().levels}, {"reduction", o.reduction}};
    std::vector<double> aurocs;
    for (const std::string& c : cats) {
      const auto train = data::mvtec_items(a.mvtec, c, "train"), test = data::mvtec_items(a.mvtec, c, "test");
      Progress pf{c + " fit", false}, ps{c + " test", false};
      const models::GaussianAd m =
          models::fit_images(fx, data::item_paths(train), o, std::ref(pf));
      const std::vector<double> s =
          models::score_images(fx, m, data::item_paths(test), std::ref(ps));
      check_finite(s, item_names(test), (std::filesystem::path(a.mvtec) / c / "test").string());
      const double auc = eval::auroc(s, data::item_labels(test));
      aurocs.push_back(auc);
      std::printf("%-12s train %4zu  test %4zu  image AUROC %.1f\n", c.c_str(), train.size(), test.size(), 100 * auc);
      js["categories"][c] = {{"auroc", auc}, {"train", train.size()}, {"test", test.size()}};
    }
    if (a.all) {
      double mean = 0;
      for (double v : aurocs) mean += v / double(aurocs.size());
      std::printf("%-12s %zu categories  image AUROC %.1f ± %.1f (mean ± SEM)\n", "mean", aurocs.size(), 100 * mean,
                  100 * sem(aurocs));
      js["mean"] = mean;
      js["sem"] = sem(aurocs);
    }
    if (!json_path_.empty()) write_json(json_path_, js);
    return true;
  }
  return false;
}

}  // namespace normad::cli
