// `normad zeroshot --mvtec ROOT`: ACR on MVTec AD (acr.md §7.5, §11; models/acr_mvtec.h).
// Steps: patch features of every category's training images and of the held-out categories' test
// images (cached), one FeatureSVDD meta-trained per held-out category on the others, maps and
// metrics per category, their mean beside the published row (acr.md §14.1), maps as PNG overlays.
// Tested by tests/test_acr_mvtec.cpp.
#include "apps/cmd_zeroshot_mvtec.h"

#include <json.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "apps/cli_images.h"
#include "apps/cli_util.h"
#include "data/image.h"
#include "data/image_sets.h"
#include "eval/metrics.h"
#include "models/acr_mvtec.h"
#include "report/report.h"
#include "tensor/comm.h"
#include "tensor/parallel.h"

namespace normad::cli {

namespace fs = std::filesystem;

namespace {

// acr.md §14.1, ACR's published mean over the 15 classes (%), third-party transcription, in
// eval::kSegmentationFigures' order.
constexpr std::array<double, 7> kPublished = {85.8, 91.3, 92.9, 92.5, 44.2, 38.9, 72.7};

// A figure in % with one decimal, "-" where undefined (NaN).
std::string pct(double v) {
  if (!std::isfinite(v)) return "-";
  char b[16];
  std::snprintf(b, sizeof b, "%.1f", 100 * v);
  return b;
}
nlohmann::json number_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

// Where the prepared crop lies in the original image: the report draws maps over that region.
report::CropBox crop_box(const std::string& path, const data::ImagePrep& prep) {
  const auto [h0, w0] = data::image_size_hw(path);
  const auto [h1, w1] = data::prep_output_size(h0, w0, data::ImagePrep{prep.size, 0, prep.filter, prep.shorter_side});
  if (prep.crop == 0) return {0, 0, h0, w0};
  const auto [top, left] = data::center_crop_offset(h1, w1, prep.crop, prep.crop);
  const double sy = double(h0) / double(h1), sx = double(w0) / double(w1);
  report::CropBox b;
  b.top = std::lround(top * sy), b.left = std::lround(left * sx);
  b.height = std::min<int64_t>(h0 - b.top, std::lround(prep.crop * sy));
  b.width = std::min<int64_t>(w0 - b.left, std::lround(prep.crop * sx));
  return b;
}

// A map [H, W] averaged over blocks to at most `side` x `side` (the report's thumbnails).
std::vector<double> small_map(const float* map, int64_t h, int64_t w, int64_t side, int64_t& out_h, int64_t& out_w) {
  const int64_t f = std::max<int64_t>(1, (std::max(h, w) + side - 1) / side);
  out_h = (h + f - 1) / f, out_w = (w + f - 1) / f;
  std::vector<double> out(size_t(out_h * out_w));
  for (int64_t y = 0; y < out_h; ++y)
    for (int64_t x = 0; x < out_w; ++x) {
      double s = 0;
      int64_t n = 0;
      for (int64_t yy = y * f; yy < std::min(h, (y + 1) * f); ++yy)
        for (int64_t xx = x * f; xx < std::min(w, (x + 1) * f); ++xx) s += map[yy * w + xx], ++n;
      out[size_t(y * out_w + x)] = std::round(s / double(n) * 1e4) / 1e4;  // 4 decimals keep the JSON small
    }
  return out;
}

// --maps DIR: DIR/<category>/<defect>/<stem>.png, the prepared image with its map blended over it
// and the ground truth's outline, written atomically.
void write_maps(const std::string& dir, const std::string& category, const models::AcrMvtecResult& r,
                const std::vector<data::ImageItem>& items, const Tensor& masks, const data::ImagePrep& prep) {
  outputs_barrier();  // every rank got this far; then rank 0 alone draws and writes
  if (!writes_outputs()) return;
  const int64_t plane = r.map_h * r.map_w;
  for (size_t i = 0; i < items.size(); ++i) {
    const Tensor image = data::imagenet_denormalize(data::load_preprocessed(items[i].path, prep));  // [3, H, W]
    check(image.size(1) == r.map_h && image.size(2) == r.map_w, items[i].path, "prepared image and map sizes differ");
    const std::vector<uint8_t> rgb = report::heat_overlay(image.data(), r.map_h, r.map_w, r.maps.data() + i * plane,
                                                          masks.data() + i * plane);
    const fs::path out = fs::path(dir) / category / items[i].defect / (fs::path(items[i].path).stem().string() + ".png");
    check(fs::absolute(out).lexically_normal() != fs::absolute(items[i].path).lexically_normal(), out.string(),
          "--maps would overwrite the test image itself; choose a directory outside the data set");
    std::error_code ec;
    fs::create_directories(out.parent_path(), ec);
    check(!ec, out.parent_path().string(), "cannot create the maps directory: " + ec.message());
    write_atomic(out.string(), report::png_bytes(rgb, r.map_h, r.map_w));
  }
}

std::string join_names(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

}  // namespace

std::string default_feature_cache() {
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return (fs::path(x) / "normad" / "features").string();
  if (const char* h = std::getenv("HOME"); h && *h) return (fs::path(h) / ".cache" / "normad" / "features").string();
  return "";
}

void zeroshot_mvtec(const MvtecZeroshotArgs& a, uint64_t seed, const ResultFiles& out_files) {
  if (a.all == !a.category.empty()) throw Error("--mvtec: give exactly one of --category C and --all");
  if (a.weights.empty())
    throw Error("--mvtec needs --weights FILE (/usr/bin/python3 scripts/export_torchvision.py " + a.backbone + " " +
                a.backbone + ".safetensors --pretrained)");
  if (a.no_cache && !a.cache.empty()) throw Error("--no-cache and --cache: give one of them");
  if (a.size < 1 || a.size > models::kMaxImageSize)
    throw Error("--size: expected 1.." + std::to_string(models::kMaxImageSize) + ", got " + std::to_string(a.size));
  if (a.crop < 0 || a.crop > a.size)
    throw Error("--crop: expected 0 (none) up to --size " + std::to_string(a.size) + ", got " + std::to_string(a.crop));
  if (a.iters < 1) throw Error("--iters: must be >= 1");
  if (a.normals < 2) throw Error("--task-normals: must be >= 2");
  if (!(a.lr > 0)) throw Error("--lr: must be a positive number");
  if (a.batch < 1) throw Error("--batch: must be >= 1");
  const std::vector<std::string> present = data::mvtec_categories(a.root);
  if (!a.all && std::find(present.begin(), present.end(), a.category) == present.end())
    throw Error("--category: '" + a.category + "' has no train/good under " + a.root + " (categories: " +
                join_names(present) + ")");
  if (present.size() < 3)
    throw Error(a.root + ": ACR needs at least 3 categories (the held-out one and 2 or more to train on), each with "
                "train/good; found " + std::to_string(present.size()) +
                (present.empty() ? std::string(" (is it a category's folder instead of the MVTec AD root?)")
                                 : " (" + join_names(present) + ")"));
  const std::vector<std::string> held_out = a.all ? present : std::vector<std::string>{a.category};
  if (!a.maps.empty()) {
    // Overlays inside the data set would be read as images by later runs (or overwrite them).
    const fs::path maps = fs::weakly_canonical(fs::absolute(a.maps)), root = fs::weakly_canonical(fs::absolute(a.root));
    const auto [r_end, m_it] = std::mismatch(root.begin(), root.end(), maps.begin(), maps.end());
    if (r_end == root.end())
      throw Error("--maps " + a.maps + ": inside the data set " + a.root + "; choose a directory outside it");
    if (fs::exists(a.maps) && !fs::is_directory(a.maps)) throw Error("--maps " + a.maps + ": exists and is not a directory");
  }

  // ---- the feature pipeline: acr.md §7.5 (Lanczos, shorter side 256, centre crop 224) ----
  models::FeatureSpec spec;
  spec.backbone = a.backbone;
  spec.weights = a.weights;
  spec.levels = {a.level};
  spec.prep = data::ImagePrep::acr_mvtec();
  spec.prep.size = a.size, spec.prep.crop = a.crop;
  spec.batch = a.batch;
  spec.device = compute_device();
  const models::FeatureExtractor fx = [&] {
    try {
      return models::FeatureExtractor(spec);
    } catch (const Error& e) {  // the extractor names its option --levels; here it is --level
      std::string m = e.what();
      if (const size_t at = m.find("--levels"); at != std::string::npos) m.replace(at, 8, "--level");
      throw Error(m);
    }
  }();
  const int64_t C = fx.dims().at(0);
  if (C < 64 || (C & (C - 1)) != 0)
    throw Error("--level " + std::to_string(a.level) + " of " + a.backbone + " has " + std::to_string(C) +
                " channels; FeatureSVDD halves them down to 32, so it needs 64, 128, ..., 1024 (wide_resnet50_2: level 3)");
  const std::string cache = a.no_cache ? "" : a.cache.empty() ? default_feature_cache() : a.cache;
  models::AcrMvtecConfig cfg;
  cfg.iters = a.iters, cfg.normals = a.normals, cfg.lr = a.lr, cfg.seed = seed;
  cfg.test_noisy_copies = !a.no_test_noisy_copies;
  cfg.device = compute_device();
  cfg.comm = &world();  // under mpirun: the ranks share each iteration's tasks (every rank extracts the features)
  std::printf("ACR on MVTec AD (acr.md §11): %s level %d (%lld channels), %lld iterations x %lld tasks x (%lld + %lld noisy), "
              "lr %g, test batches %s, seed %llu, %d threads, feature cache %s\n",
              a.backbone.c_str(), a.level, (long long)C, (long long)cfg.iters, (long long)cfg.tasks, (long long)cfg.normals,
              (long long)cfg.normals, cfg.lr,
              cfg.test_noisy_copies ? "with N noisy copies (the released code)" : "of the real rows only (acr.md §12 item 3)",
              (unsigned long long)seed, num_threads(), cache.empty() ? "off" : cache.c_str());

  // ---- patch features: every category's training images, the held-out ones' test images ----
  // The categories whose training images are used: all of them with --all, the others with
  // --category C (C's own training images are never read). Every list first, so that a category
  // too small for a task fails before any extraction.
  std::vector<std::string> trained;
  for (const std::string& cat : present)
    if (a.all || cat != a.category) trained.push_back(cat);
  std::map<std::string, std::vector<data::ImageItem>> train_items, test_items;
  for (const std::string& cat : trained) {
    train_items[cat] = data::mvtec_items(a.root, cat, "train");
    if (int64_t(train_items[cat].size()) < cfg.normals)
      throw Error((fs::path(a.root) / cat / "train" / "good").string() + ": " + std::to_string(train_items[cat].size()) +
                  " images, fewer than the " + std::to_string(cfg.normals) +
                  " distinct images a training task takes (lower --task-normals to at most " +
                  std::to_string(train_items[cat].size()) + "; acr.md §6 uses 30)");
  }
  for (const std::string& cat : held_out) test_items[cat] = data::mvtec_items(a.root, cat, "test");
  auto extract = [&](const std::string& cat, const std::string& split) {
    const std::vector<data::ImageItem>& items = (split == "train" ? train_items : test_items).at(cat);
    Progress p{cat + "/" + split + " features", false};
    models::PatchFeatures f = models::patch_features(fx, items, cache, cat + "/" + split, std::ref(p), writes_outputs());
    std::fprintf(stderr, "%s/%s: %zu images, %s in %.1f s\n", cat.c_str(), split.c_str(), items.size(),
                 f.from_cache ? "read from the cache" : "extracted", f.seconds);
    return f;
  };
  auto out_of_memory = [](const std::function<void()>& fn) {
    try {
      fn();
    } catch (const std::bad_alloc&) {
      throw Error("out of memory: the training features of every category are held at once (MVTec AD at level 3: "
                  "2.9 GB); lower --batch, or hold out fewer categories");
    }
  };
  // Training features of every category stay in memory; a held-out category's test features and
  // masks only while it runs.
  std::map<std::string, models::PatchFeatures> train;
  std::map<std::string, double> extract_seconds;
  out_of_memory([&] {
    for (const std::string& cat : trained) {
      train[cat] = extract(cat, "train");
      extract_seconds[cat] += train[cat].seconds;
    }
  });

  // ---- one model per held-out category ----
  nlohmann::json js;
  js["kind"] = "zeroshot-mvtec";
  js["protocol"] = "ACR on MVTec AD (acr.md §11)";
  js["root"] = fs::absolute(a.root).string();
  js["backbone"] = a.backbone;
  js["weights_sha256"] = fx.spec().weights_sha256;
  js["level"] = a.level;
  js["weights"] = fs::absolute(a.weights).string();
  js["size"] = a.size;
  js["crop"] = a.crop;
  js["seed"] = seed;
  js["iters"] = cfg.iters;
  js["tasks"] = cfg.tasks;
  js["task_normals"] = cfg.normals;
  js["lr"] = cfg.lr;
  js["test_noisy_copies"] = cfg.test_noisy_copies;
  js["sigma"] = cfg.sigma;
  js["threads"] = num_threads();
  js["pixel_metrics"] = "exact (one sort of all pixels' scores, no binning)";
  std::printf("\n%-12s %6s %6s %6s %6s %6s %6s %6s %6s %8s %8s %8s\n", "category", "train", "test", "I-AUC", "I-F1",
              "I-AP", "P-AUC", "P-F1", "P-AP", "AUPRO", "train s", "test s");
  std::vector<std::array<double, 7>> all;
  for (const std::string& cat : held_out) {
    std::vector<const models::PatchFeatures*> others;
    for (const std::string& o : present)
      if (o != cat) others.push_back(&train.at(o));
    models::PatchFeatures test;
    Tensor masks;  // [N, 224, 224]
    out_of_memory([&] {
      test = extract(cat, "test");
      masks = data::load_item_masks(test.items, spec.prep);
    });
    extract_seconds[cat] += test.seconds;
    // Images are labelled by their folder (acr.md §7.5); a defect whose mask the centre crop cuts
    // away leaves a "defective" image without a defect pixel: counted and reported.
    int64_t empty_masks = 0;
    const int64_t plane = masks.size(1) * masks.size(2);
    for (size_t i = 0; i < test.items.size(); ++i)
      if (test.items[i].label == 1 &&
          std::none_of(masks.data() + int64_t(i) * plane, masks.data() + int64_t(i + 1) * plane, [](float v) { return v > 0; }))
        ++empty_masks;
    if (empty_masks)
      std::fprintf(stderr, "%s: %lld of %lld defective test images have no defect pixel in the %lld x %lld crop (no "
                   "ground_truth folder, or defects outside the crop): their pixels count as normal%s\n", cat.c_str(),
                   (long long)empty_masks, (long long)test.items.size(), (long long)masks.size(1), (long long)masks.size(2),
                   empty_masks == int64_t(std::count_if(test.items.begin(), test.items.end(), [](const data::ImageItem& it) { return it.label == 1; }))
                       ? "; no pixel metrics for this category" : "");
    Progress p{cat + " meta-training"};
    const models::AcrMvtecResult r = models::acr_mvtec_class(others, test, masks, cat, cfg, std::ref(p));
    const std::array<double, 7> f = eval::segmentation_figures(r.image, r.pixel);
    all.push_back(f);
    std::printf("%-12s %6lld %6lld %6s %6s %6s %6s %6s %6s %8s %8.1f %8.1f\n", cat.c_str(), (long long)r.train_images,
                (long long)r.test_images, pct(f[0]).c_str(), pct(f[1]).c_str(), pct(f[2]).c_str(), pct(f[3]).c_str(),
                pct(f[4]).c_str(), pct(f[5]).c_str(), pct(f[6]).c_str(), r.train_seconds, r.test_seconds);
    std::fflush(stdout);
    nlohmann::json jc;
    for (size_t k = 0; k < f.size(); ++k) jc[eval::kSegmentationFigures[k].key] = number_or_null(f[k]);
    jc["train_categories"] = r.train_categories;
    jc["train_images"] = r.train_images;
    jc["test"] = r.test_images;
    jc["test_anomalous"] = r.test_anomalous;
    jc["noisy_copies"] = r.noisy_copies;
    jc["pixels"] = r.pixel.pixels;
    jc["defect_pixels"] = r.pixel.defect_pixels;
    jc["regions"] = r.pixel.regions;
    jc["defective_without_mask_pixels"] = empty_masks;
    jc["extract_seconds"] = extract_seconds.at(cat);
    jc["train_seconds"] = r.train_seconds;
    jc["test_seconds"] = r.test_seconds;
    jc["final_loss"] = r.final_loss;
    // Items in file order; the 8 highest-scored carry their map (small), which the report draws.
    std::vector<size_t> order(r.image_scores.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return r.image_scores[x] > r.image_scores[y]; });
    std::vector<bool> with_map(order.size(), false);
    for (size_t k = 0; k < std::min<size_t>(8, order.size()); ++k) with_map[order[k]] = true;
    const auto& items = test.items;
    for (size_t i = 0; i < items.size(); ++i) {
      nlohmann::json item{{"name", items[i].name}, {"path", fs::absolute(items[i].path).string()},
                          {"label", items[i].label}, {"score", r.image_scores[i]}};
      if (with_map[i]) {
        int64_t mh = 0, mw = 0;
        const std::vector<double> m = small_map(r.maps.data() + i * r.map_h * r.map_w, r.map_h, r.map_w, 56, mh, mw);
        const report::CropBox b = crop_box(items[i].path, spec.prep);
        item["map"] = {{"height", mh}, {"width", mw}, {"values", m}};
        item["crop"] = {{"top", b.top}, {"left", b.left}, {"height", b.height}, {"width", b.width}};
      }
      jc["items"].push_back(item);
    }
    js["categories"][cat] = jc;
    if (!a.maps.empty()) write_maps(a.maps, cat, r, items, masks, spec.prep);
  }
  // ---- the mean over the held-out categories, beside the published row ----
  std::vector<double> mean(kPublished.size(), 0);
  for (size_t k = 0; k < kPublished.size(); ++k) {
    std::vector<double> v;
    for (const auto& f : all)
      if (std::isfinite(f[k])) v.push_back(f[k]);
    mean[k] = v.size() == all.size() ? eval::mean(v) : NAN;  // a class without the figure: no mean
    js["mean"][eval::kSegmentationFigures[k].key] = number_or_null(mean[k]);
    js["published"][eval::kSegmentationFigures[k].key] = kPublished[k] / 100;
  }
  if (held_out.size() > 1)
    std::printf("%-12s %6s %6s %6s %6s %6s %6s %6s %6s %8s\n", "mean", "", "", pct(mean[0]).c_str(), pct(mean[1]).c_str(),
                pct(mean[2]).c_str(), pct(mean[3]).c_str(), pct(mean[4]).c_str(), pct(mean[5]).c_str(), pct(mean[6]).c_str());
  // The published row is a mean over MVTec AD's 15 categories: beside any other set it is context only.
  std::vector<std::string> official(data::kMvtecCategories.begin(), data::kMvtecCategories.end()), sorted_held = held_out;
  std::sort(official.begin(), official.end());
  std::sort(sorted_held.begin(), sorted_held.end());
  const bool comparable = sorted_held == official;
  js["published_comparable"] = comparable;
  std::printf("%-12s %6s %6s %6.1f %6.1f %6.1f %6.1f %6.1f %6.1f %8.1f   (acr.md §14.1: MVTec AD, 15 categories%s)\n",
              "published", "", "", kPublished[0], kPublished[1], kPublished[2], kPublished[3],
              kPublished[4], kPublished[5], kPublished[6],
              comparable ? "" : ("; not comparable with this run's " + std::to_string(held_out.size()) + " categories").c_str());
  if (!a.maps.empty()) std::printf("maps: %s/<category>/<defect>/<image>.png\n", a.maps.c_str());
  outputs_barrier();
  write_results(js, out_files);
}

}  // namespace normad::cli
