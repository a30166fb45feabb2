// Shared parts of normad's image subcommands: see apps/cli_images.h.
// Math: sem = sample std (ddof 1) / sqrt(n). Tested by tests/test_cli_images.cpp.
#include "apps/cli_images.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <new>

#include "apps/cli_util.h"
#include "data/csv.h"
#include "detect/image_detector.h"
#include "tensor/ops.h"

namespace normad::cli {

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

void write_scores(const std::string& out, const std::vector<std::string>& names, const std::vector<double>& scores,
                  double threshold) {
  std::string text = "name,score,prediction\n";
  char buf[64];
  for (size_t i = 0; i < scores.size(); ++i) {
    std::snprintf(buf, sizeof buf, ",%.17g,%d\n", scores[i], scores[i] > threshold ? 1 : 0);
    text += data::csv_field(names[i]) + buf;
  }
  write_atomic(out, text);
}


std::vector<std::string> item_names(const std::vector<data::ImageItem>& items) {
  std::vector<std::string> names;
  for (const auto& it : items) names.push_back(it.name);
  return names;
}



void apply_max_image_pixels(const ImageArgs& a) {
  if (a.max_image_pixels < 1)
    throw Error("--max-image-pixels: expected >= 1, got " + std::to_string(a.max_image_pixels));
  data::set_max_image_pixels(a.max_image_pixels);
}

void with_image_memory_message(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::bad_alloc&) {
    throw Error("out of memory: lower --batch or --size (a level of p features also needs p x p doubles to fit)");
  }
}

}  // namespace normad::cli
