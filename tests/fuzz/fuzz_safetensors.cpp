// Fuzz target: the safetensors parser (nn/safetensors.h) and the metadata readers normad applies to
// a model file's header: numbers and integers (Safetensors::meta_number / meta_int), the table
// preprocessing (Preprocess::from_metadata), the NTL architecture (ntl_from_metadata) and the image
// pipeline (FeatureSpec::from_metadata). Checks beyond "no crash, only normad::Error": a parsed file
// written back by save_safetensors parses to the same tensors (bit for bit) and metadata.
// Seeds: corpus/fuzz_safetensors (model files normad wrote, cut to small tensors).
#include <cstring>

#include "data/csv.h"
#include "models/image_features.h"
#include "models/ntl.h"
#include "nn/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

using namespace normad;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nn::Safetensors f;
  if (!fuzz::parse_safetensors(data, size, &f)) return 0;
  fuzz::expect_clean("check_finite", [&] { nn::check_finite(f); });
  for (const auto& kv : f.metadata) {
    const std::string& key = kv.first;  // not a structured binding: clang 14 cannot capture one
    fuzz::expect_clean("meta_number", [&] { f.meta_number(key); });
    fuzz::expect_clean("meta_int", [&] { f.meta_int(key, 0, int64_t(1) << 24); });
  }
  fuzz::expect_clean("Preprocess::from_metadata", [&] { data::Preprocess::from_metadata(f.metadata); });
  fuzz::expect_clean("ntl_from_metadata", [&] { models::ntl_from_metadata(f.metadata); });
  fuzz::expect_clean("FeatureSpec::from_metadata",
                     [&] { models::FeatureSpec::from_metadata(f.metadata, "fuzz.safetensors"); });
  // Round trip through the writer.
  fuzz::expect_clean("save_safetensors", [&] {
    const std::string path = fuzz::scratch_file(nullptr, 0, ".safetensors");
    std::vector<std::pair<std::string, Tensor>> tensors(f.tensors.begin(), f.tensors.end());
    nn::save_safetensors(path, tensors, f.metadata);
    const nn::Safetensors g = nn::load_safetensors(path);
    fuzz::require(g.metadata == f.metadata, "safetensors", "metadata changed in a write and read back");
    fuzz::require(g.tensors.size() == f.tensors.size(), "safetensors", "tensor count changed in a round trip");
    for (const auto& [name, t] : f.tensors) {
      const auto it = g.tensors.find(name);
      fuzz::require(it != g.tensors.end() && it->second.shape() == t.shape(), "safetensors",
                    "tensor '" + name + "' lost or reshaped in a round trip");
      fuzz::require(std::memcmp(it->second.data(), t.data(), sizeof(float) * t.numel()) == 0, "safetensors",
                    "tensor '" + name + "' changed in a round trip");
    }
  });
  return 0;
}
