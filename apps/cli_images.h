// Shared parts of normad's image subcommands (apps/cmd_features.cpp, apps/cmd_mvg.cpp): the image
// source and pipeline options, and the helpers both use.
// Math: none. Tested by tests/test_cli_images.cpp.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

#include "data/image.h"
#include "data/image_sets.h"
#include "models/gaussian_ad.h"
#include "models/image_features.h"

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
  std::string features, model, out, report;  // report: mvg eval --report FILE
  double pca = 0, npca = 0, fpr = 0.05, calibration = 0.2;
  bool f32_cutoff = false;
};

// The image pipeline options (--weights, --levels, --size, --crop, --filter, --shorter-side, --batch).
void add_pipeline_options(CLI::App* c, ImageArgs& a, bool weights_required);
void add_max_pixels_option(CLI::App* c, ImageArgs& a);  // --max-image-pixels
void add_source_options(CLI::App* c, ImageArgs& a);     // --images, --mvtec, --category (+ max pixels)
// Sets the process-wide decoding limit from --max-image-pixels (checked).
void apply_max_image_pixels(const ImageArgs& a);
std::string num(double v);  // shortest readable form: 0.2, not 0.200000
models::FeatureSpec feature_spec(const ImageArgs& a);  // the pipeline options, checked
// The images of one directory, named by file name; none is an error naming the directory.
std::vector<data::ImageItem> dir_items(const std::string& dir, const std::string& option);
// The items of --images DIR or --mvtec ROOT --category C (split), with names.
std::vector<data::ImageItem> source_items(const ImageArgs& a, const std::string& split);
std::string source_name(const ImageArgs& a, const std::string& split);  // the data, in messages
models::GaussianAdOptions gaussian_options(const ImageArgs& a, bool pca_given, bool npca_given);
std::string format_row(const std::string& name, const float* v, int64_t n);  // name,f0,f1,... ("%.9g")
// name,score,prediction with scores "%.17g" (they read back to the same double), atomically.
void write_scores(const std::string& out, const std::vector<std::string>& names, const std::vector<double>& scores,
                  double threshold);
std::vector<std::string> item_names(const std::vector<data::ImageItem>& items);
// Runs fn; std::bad_alloc becomes an Error saying which options lower the memory.
void with_image_memory_message(const std::function<void()>& fn);

using data::join_list;

}  // namespace normad::cli
