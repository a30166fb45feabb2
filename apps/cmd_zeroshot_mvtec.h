// `normad zeroshot --mvtec ROOT`: ACR's zero-shot anomaly segmentation on MVTec AD (acr.md §11),
// run from apps/cmd_zeroshot.cpp. Math: see models/acr_mvtec.h.
// Tested by tests/test_acr_mvtec.cpp (a generated MVTec-layout set: metrics, maps, JSON, errors).
#pragma once

#include <string>

#include "apps/cli_commands.h"

namespace normad::cli {

struct MvtecZeroshotArgs {
  std::string root, category, backbone = "wide_resnet50_2", weights, cache, maps;
  bool all = false, no_cache = false, no_test_noisy_copies = false;
  int level = 3, size = 256, crop = 224;
  int64_t batch = 16;
  int64_t iters = 50, normals = 30;  // acr.md §9 (the zeroshot options --iters, --task-normals override)
  double lr = 3e-4;                  // --lr overrides
};

// Where features are cached without --cache: $XDG_CACHE_HOME/normad/features, else
// $HOME/.cache/normad/features, else nowhere.
std::string default_feature_cache();

void zeroshot_mvtec(const MvtecZeroshotArgs& a, uint64_t seed, const ResultFiles& out_files);

}  // namespace normad::cli
