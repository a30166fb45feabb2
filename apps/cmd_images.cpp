// normad features / mvg fit / mvg score / mvg eval (see cmd_images.h). Errors are normad::Error
// (exit code 2 in main); every output file is written atomically.
#include "apps/cmd_images.h"

#include <json.hpp>

#include <cmath>
#include <functional>
#include <cstdio>

#include "apps/cli_util.h"
#include "data/csv.h"
#include "eval/metrics.h"
#include "models/image_features.h"
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
  // Gaussian-AD.
  std::string features, model, out;
  double pca = 0, npca = 0, fpr = 0.01;
  bool f32_cutoff = false;
};

namespace {

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

void add_source_options(CLI::App* c, ImageArgs& a) {
  c->add_option("--images", a.images, "a directory of images (PNG, JPEG, BMP)");
  c->add_option("--mvtec", a.mvtec, "MVTec AD root (ROOT/<category>/train/good, test/<defect>, ground_truth)");
  c->add_option("--category", a.category, "with --mvtec: the category");
}

models::FeatureSpec feature_spec(const ImageArgs& a) {
  models::FeatureSpec s;
  s.backbone = a.backbone;
  s.weights = a.weights;
  if (!a.levels.empty()) s.levels = models::parse_levels(a.levels, "--levels");
  s.prep.size = a.size;
  s.prep.crop = a.crop;
  s.prep.filter = a.filter;
  s.prep.shorter_side = a.shorter_side;
  s.batch = a.batch;
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

models::GaussianAdOptions gaussian_options(const ImageArgs& a, bool pca_given, bool npca_given) {
  models::GaussianAdOptions o;
  if (pca_given && npca_given) throw Error("--pca and --npca: give at most one");
  if (pca_given) o.reduction = "pca", o.variance = a.pca;
  if (npca_given) o.reduction = "npca", o.variance = a.npca;
  if (o.reduction != "none" && !(o.variance > 0 && o.variance < 1))
    throw Error("--" + o.reduction + ": the variance threshold must be in (0, 1), got " + std::to_string(o.variance));
  if (a.f32_cutoff) o.rcond = models::kRcondF32;
  return o;
}

// A features CSV (name,f0,f1,...) -> names and [N, F].
data::Table read_features(const std::string& path) {
  data::Table t = data::read_table(path, "name");
  if (t.x.size(0) == 0) throw Error(path + ": no rows");
  return t;
}

std::string format_row(const std::string& name, const float* v, int64_t n) {
  std::string s = name;
  char buf[32];
  for (int64_t j = 0; j < n; ++j) {
    std::snprintf(buf, sizeof buf, ",%.9g", v[j]);
    s += buf;
  }
  return s + "\n";
}

void write_scores(const std::string& out, const std::vector<std::string>& names, const std::vector<double>& scores,
                  double threshold) {
  std::string text = "name,score,label\n";
  char buf[64];
  for (size_t i = 0; i < scores.size(); ++i) {
    std::snprintf(buf, sizeof buf, ",%.9g,%d\n", scores[i], scores[i] > threshold ? 1 : 0);
    text += names[i] + buf;
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

}  // namespace

ImageCommands::ImageCommands(CLI::App& app, const std::function<void(CLI::App*)>& common, const std::string& json_path)
    : a_(std::make_unique<ImageArgs>()), json_path_(json_path) {
  ImageArgs& a = *a_;
  features_ = app.add_subcommand("features", "pooled backbone features of images -> CSV (name,f0,f1,...; levels in order)");
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
  fit_->add_option("--features", a.features, "a features CSV (name,f0,...; one level) instead of images");
  fit_->add_option("--backbone", a.backbone, "with images: the backbone");
  add_pipeline_options(fit_, a, false);
  add_source_options(fit_, a);
  fit_->add_option("--reference", a.reference,
                   "normal reference data for the empirical threshold (an image directory, or a features CSV with "
                   "--features); default: the training data (in-sample)");
  fit_->add_option("--pca", a.pca, "keep the leading components explaining > T of the variance");
  fit_->add_option("--npca", a.npca, "drop the leading components explaining T of the variance (NPCA; 0.99 = 'NPCA 1%')");
  fit_->add_option("--fpr", a.fpr, "thresholds flag this fraction of normal data")->capture_default_str();
  fit_->add_flag("--f32-cutoff", a.f32_cutoff, "pinvh with float32's cut-off, as the reference on float32 features");
  fit_->add_option("--out", a.out, "model file (.safetensors)")->required();

  score_ = mvg_->add_subcommand("score", "score images or features with a model; writes name,score,label");
  common(score_);
  score_->add_option("--model", a.model, "model file from mvg fit")->required();
  score_->add_option("--features", a.features, "a features CSV");
  score_->add_option("--weights", a.weights, "with images: weights overriding the path stored in the model");
  score_->add_option("--batch", a.batch, "images per forward pass")->capture_default_str();
  add_source_options(score_, a);
  score_->add_option("--split", a.score_split, "with --mvtec: train or test")->capture_default_str();
  score_->add_option("--out", a.out, "scores CSV (label: 1 above the model's threshold)")->required();

  eval_ = mvg_->add_subcommand("eval", "MVTec AD: fit on train/good, image AUROC on the test split, per category");
  common(eval_);
  eval_->add_option("--mvtec", a.mvtec, "MVTec AD root")->required();
  eval_->add_option("--category", a.category, "one category");
  eval_->add_flag("--all", a.all, "every category under the root, with mean and SEM");
  eval_->add_option("--backbone", a.backbone, "the backbone")->required();
  add_pipeline_options(eval_, a, true);
  eval_->add_option("--pca", a.pca, "PCA variance threshold");
  eval_->add_option("--npca", a.npca, "NPCA variance threshold");
  eval_->add_flag("--f32-cutoff", a.f32_cutoff, "pinvh with float32's cut-off");
}

ImageCommands::~ImageCommands() = default;

bool ImageCommands::run() {
  ImageArgs& a = *a_;
  if (*features_) {
    models::FeatureExtractor fx(feature_spec(a));  // a bad backbone, weights or level fails first
    const std::vector<data::ImageItem> items = source_items(a, a.split);
    Progress p{"features", false};
    const Tensor f = fx.extract(data::item_paths(items), std::ref(p));
    const int64_t D = f.size(1);
    std::string text = "name";
    for (int64_t j = 0; j < D; ++j) text += ",f" + std::to_string(j);
    text += "\n";
    for (size_t i = 0; i < items.size(); ++i) text += format_row(items[i].name, f.data() + int64_t(i) * D, D);
    write_atomic(a.out, text);
    std::printf("%zu images, %lld features (%s levels %s at %dx%d), wrote %s\n", items.size(), (long long)D,
                fx.spec().backbone.c_str(), fx.spec().to_metadata().at("features.levels").c_str(), fx.spec().prep.size,
                fx.spec().prep.size, a.out.c_str());
    return true;
  }
  if (*fit_) {
    const auto o = gaussian_options(a, fit_->count("--pca") > 0, fit_->count("--npca") > 0);
    if (!(a.fpr > 0 && a.fpr < 1)) throw Error("--fpr: must be in (0, 1), got " + std::to_string(a.fpr));
    models::GaussianAd m;
    int64_t n = 0;
    if (!a.features.empty()) {
      if (!a.images.empty() || !a.mvtec.empty() || !a.backbone.empty() || !a.weights.empty() || !a.levels.empty() ||
          a.size || a.crop)
        throw Error("--features: give either a features CSV or images with --backbone (and its pipeline options), not both");
      const data::Table t = read_features(a.features);
      models::GaussianFitter fitter({t.x.size(1)}, o);
      fitter.add({t.x});
      m = fitter.finish();
      n = t.x.size(0);
      const data::Table ref = a.reference.empty() ? t : read_features(a.reference);
      if (ref.x.size(1) != t.x.size(1))
        throw Error(a.reference + ": " + std::to_string(ref.x.size(1)) + " features, " + a.features + " has " +
                    std::to_string(t.x.size(1)));
      m.empirical_preferred = !a.reference.empty();
      m.set_thresholds(a.fpr, m.score({ref.x}));
      m.info["features.csv"] = a.features;
      m.info["threshold.source"] = a.reference.empty() ? "chi2; empirical from the training rows (in-sample)"
                                                       : "empirical from " + a.reference;
    } else {
      if (a.backbone.empty() || a.weights.empty()) throw Error("mvg fit: give --features CSV, or --backbone and --weights with images");
      const std::vector<data::ImageItem> items = source_items(a, "train");
      models::FeatureExtractor fx(feature_spec(a));
      Progress p{"fit", false};
      m = models::fit_images(fx, data::item_paths(items), o, std::ref(p));
      n = int64_t(items.size());
      std::vector<std::string> ref = data::item_paths(items);
      std::string source = "training images (in-sample)";
      if (!a.reference.empty()) {
        ref = data::item_paths(dir_items(a.reference, "--reference"));
        source = "reference images " + a.reference;
        m.empirical_preferred = true;
      }
      Progress pr{"threshold", false};
      models::set_image_thresholds(fx, m, a.fpr, ref, source, std::ref(pr));
    }
    m.save(a.out);
    std::printf("fitted %zu level(s) on %lld rows (reduction %s), decision threshold %.6g at fpr %g, wrote %s\n",
                m.levels.size(), (long long)n, o.reduction.c_str(), m.decision_threshold(), a.fpr, a.out.c_str());
    for (size_t l = 0; l < m.levels.size(); ++l)
      std::printf("  level %zu: %lld -> %lld dims, shrinkage %.4g, chi2 threshold %.4g\n", l,
                  (long long)m.levels[l].dim, (long long)m.levels[l].reduced, m.levels[l].shrinkage,
                  m.chi2_thresholds[l]);
    if (!json_path_.empty()) {
      nlohmann::json js{{"rows", n}, {"levels", m.levels.size()}, {"reduction", o.reduction},
                        {"threshold", m.decision_threshold()}, {"fpr", a.fpr}, {"out", a.out}};
      for (const auto& lv : m.levels) js["shrinkage"].push_back(lv.shrinkage), js["dims"].push_back(lv.reduced);
      write_atomic(json_path_, js.dump(2) + "\n");
    }
    return true;
  }
  if (*score_) {
    const models::GaussianAd m = models::GaussianAd::load(a.model);
    std::vector<std::string> names;
    std::vector<double> scores;
    if (!a.features.empty()) {
      if (!a.images.empty() || !a.mvtec.empty()) throw Error("--features: give either a features CSV or images, not both");
      const data::Table t = read_features(a.features);
      if (m.levels.size() != 1)
        throw Error(a.model + " has " + std::to_string(m.levels.size()) +
                    " feature levels and a features CSV is one: score images with it, or fit on the CSV");
      if (t.x.size(1) != m.levels[0].dim)
        throw Error(a.features + ": " + std::to_string(t.x.size(1)) + " features, " + a.model + " expects " +
                    std::to_string(m.levels[0].dim));
      names = t.labels;
      scores = m.score({t.x});
    } else {
      models::FeatureSpec spec = models::FeatureSpec::from_metadata(m.info, a.model);
      if (!a.weights.empty()) spec.weights = a.weights;
      spec.batch = a.batch;
      const std::vector<data::ImageItem> items = source_items(a, a.score_split);
      models::FeatureExtractor fx(spec);
      Progress p{"score", false};
      scores = models::score_images(fx, m, data::item_paths(items), std::ref(p));
      for (const auto& it : items) names.push_back(it.name);
    }
    const double thr = m.decision_threshold();
    write_scores(a.out, names, scores, thr);
    int64_t flagged = 0;
    for (double s : scores) flagged += s > thr;
    std::printf("scored %zu rows, %lld above the threshold %.6g, wrote %s\n", scores.size(), (long long)flagged, thr,
                a.out.c_str());
    if (!json_path_.empty())
      write_atomic(json_path_, nlohmann::json{{"rows", scores.size()}, {"flagged", flagged}, {"threshold", thr},
                                              {"out", a.out}}.dump(2) + "\n");
    return true;
  }
  if (*eval_) {
    if (a.all == !a.category.empty()) throw Error("mvg eval: give exactly one of --category C and --all");
    const auto o = gaussian_options(a, eval_->count("--pca") > 0, eval_->count("--npca") > 0);
    const std::vector<std::string> cats =
        a.all ? data::mvtec_categories(a.mvtec) : std::vector<std::string>{a.category};
    if (cats.empty()) throw Error(a.mvtec + ": no category with train/good");
    models::FeatureExtractor fx(feature_spec(a));
    std::printf("Gaussian-AD on MVTec AD: %s levels %s, %dx%d %s%s, reduction %s%s, one fit on all train/good "
                "images per category\n",
                fx.spec().backbone.c_str(), fx.spec().to_metadata().at("features.levels").c_str(), fx.spec().prep.size,
                fx.spec().prep.size, fx.spec().prep.filter.c_str(),
                fx.spec().prep.crop ? (", crop " + std::to_string(fx.spec().prep.crop)).c_str() : "",
                o.reduction.c_str(), o.reduction == "none" ? "" : (" " + std::to_string(o.variance)).c_str());
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
    if (!json_path_.empty()) write_atomic(json_path_, js.dump(2) + "\n");
    return true;
  }
  return false;
}

}  // namespace normad::cli
