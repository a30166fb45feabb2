// Fuzz target: loading each kind of normad model file from a safetensors file and scoring with it:
// the table models of `normad train` (ntl, dsvdd, acr-dsvdd, acr-ntl: detect/table_detector.h
// load_table_model) and Gaussian-AD models of `normad mvg fit` (GaussianAd::load). Checks beyond
// "no crash, only normad::Error": a loaded model scores a small batch of rows with one score per
// row. Seeds: corpus/fuzz_model (model files normad trained on small tables and features).
#include "detect/table_detector.h"
#include "models/gaussian_ad.h"
#include "tests/fuzz/fuzz_util.h"

using namespace normad;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nn::Safetensors f;
  if (!fuzz::parse_safetensors(data, size, &f)) return 0;
  constexpr int64_t rows = 4;
  if (f.metadata.count("model")) {  // Gaussian-AD files carry model = gaussian-ad
    const std::string path = fuzz::scratch_file(data, size, ".safetensors");
    fuzz::expect_clean("GaussianAd::load", [&] {
      const models::GaussianAd m = models::GaussianAd::load(path);
      std::vector<Tensor> feats;
      for (const auto& lv : m.levels) feats.push_back(Tensor::zeros({rows, lv.dim}));
      fuzz::require(m.score(feats).size() == rows, "GaussianAd", "not one score per row");
    });
    return 0;
  }
  fuzz::expect_clean("load_table_model", [&] {
    TableDetector m = TableDetector::from_file(f, "fuzz.safetensors");
    const int64_t F = static_cast<int64_t>(m.preprocess().columns().size());
    fuzz::require(m.score_encoded(Tensor::zeros({rows, F}), 0).size() == rows, "table model", "not one score per row");
  });
  return 0;
}
