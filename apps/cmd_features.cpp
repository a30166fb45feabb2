// `normad features`: pooled backbone features of images to a CSV (a '# normad-features' line with
// the pipeline, then name,f0,f1,...; levels in order), gaussian_ad.md "Features CSV".
// Math: f_l(x) = mean_{h,w} level_l(x)[:, h, w]. Tested by tests/test_cli_images.cpp (the CSV
// equals FeatureExtractor::extract at another batch size).
#include <json.hpp>

#include <cstdio>
#include <memory>

#include "apps/cli_commands.h"
#include "apps/cli_images.h"
#include "apps/cli_util.h"

namespace normad::cli {

namespace {

void run_features(const ImageArgs& a, const CommonOptions& common) {
  apply_max_image_pixels(a);
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
  if (!common.json.empty())
    write_json(common.json, nlohmann::json({{"rows", items.size()}, {"dims", dims}, {"backbone", fx.spec().backbone},
                                        {"levels", fx.spec().levels}, {"weights", fx.spec().weights},
                                        {"weights_sha256", fx.spec().weights_sha256}, {"out", a.out}}));
}

}  // namespace

Command add_features(CLI::App& app, const AddCommon& add_common, const CommonOptions& common) {
  auto a = std::make_shared<ImageArgs>();
  auto* features = app.add_subcommand("features", "pooled backbone features of images -> CSV (a '# normad-features' line, "
                                             "then name,f0,f1,...; levels in order)");
  add_common(features);
  features->add_option("--backbone", a->backbone, "resnet18, resnet50, wide_resnet50_2, efficientnet_b0 or efficientnet_b4")->required();
  add_pipeline_options(features, *a, true);
  add_source_options(features, *a);
  features->add_option("--split", a->split, "with --mvtec: train or test")->capture_default_str();
  features->add_option("--out", a->out, "features CSV")->required();
  return {features, [a, &common] { with_image_memory_message([&] { run_features(*a, common); }); }};
}

}  // namespace normad::cli
