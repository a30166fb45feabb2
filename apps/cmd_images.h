// normad's image subcommands: `features` (pooled backbone features of images to CSV) and `mvg`
// (Gaussian-AD: fit, score, eval on MVTec AD), gaussian_ad.md.
// Tested by tests/test_cli_images.cpp on a generated MVTec-like tree with seeded backbone weights.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <memory>
#include <string>

namespace normad::cli {

struct ImageArgs;

class ImageCommands {
 public:
  // Adds the subcommands to `app`; `common` adds --seed / --threads / --json to each.
  ImageCommands(CLI::App& app, const std::function<void(CLI::App*)>& common, const std::string& json_path);
  ~ImageCommands();
  bool run();  // runs the parsed subcommand; false when none of these was chosen

 private:
  bool run_chosen();
  std::unique_ptr<ImageArgs> a_;
  CLI::App *features_, *mvg_, *fit_, *score_, *eval_;
  const std::string& json_path_;
};

}  // namespace normad::cli
