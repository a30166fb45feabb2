// Table models read from normad model files (`normad train` writes them, `normad score` reads them):
// NeuTraL-AD ("ntl"), Deep SVDD ("dsvdd") and the zero-shot ACR models ("acr-dsvdd", "acr-ntl").
// A model file is a safetensors file whose metadata holds the kind ("normad.kind"), the
// architecture (ntl.*, dsvdd.*, acr.*), the preprocessing (csv.*) and the threshold.
// Loading is bounded by the file: before a network is built, the weights its metadata declares are
// counted (without allocating them) and must not exceed the values the file holds, so a small file
// that declares a huge architecture is an error, not an allocation of its declared size.
// Tested by tests/test_cli.cpp (score round trips, malformed model files) and fuzzed by
// tests/fuzz/fuzz_model.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "data/csv.h"
#include "models/acr.h"
#include "models/deep_svdd.h"
#include "models/ntl.h"
#include "nn/safetensors.h"
#include "tensor/random.h"

namespace normad::cli {

// "64,32" -> {64, 32}: positive integers up to 2^20; `what` names the option or field in errors.
std::vector<int64_t> parse_widths(const std::string& s, const std::string& what);

// The ACR model of a model-file kind, for F features; `init` draws its weights.
std::unique_ptr<models::AcrModel> make_acr(const std::string& kind, int64_t F, Generator& init);

// Values in the state of each architecture (parameters and buffers, as the file stores them),
// counted without building it. In double: metadata can declare sizes whose product overflows int64.
double ntl_state_values(const models::NtlConfig& c);  // c after ntl_defaults
double svdd_mlp_state_values(int64_t in, const std::vector<int64_t>& widths);
double acr_state_values(const std::string& kind, int64_t F);

// A table model read from a model file, on the compute device.
struct TableModel {
  std::string kind;             // ntl, dsvdd, acr-dsvdd or acr-ntl
  data::Preprocess pre;         // the training file's preprocessing
  double threshold = 0;         // normad.threshold: a score above it is an anomaly
  int64_t acr_batch = 1000;     // ACR: rows per batch the threshold was set with (acr.batch)
  std::unique_ptr<models::AcrModel> acr;
  std::unique_ptr<models::NeutralAD> ntl;
  std::unique_ptr<models::DeepSvdd> svdd;

  // Scores of the rows of x [N, F] (higher = more anomalous). batch: rows per pass (ACR: per BN
  // batch, the scores depend on it); 0 takes the model's (acr_batch, others 1000 rows).
  std::vector<double> score(const Tensor& x, int64_t batch);
};

// Reads a parsed model file; every error names `path` and the field or tensor.
TableModel load_table_model(const nn::Safetensors& f, const std::string& path);

}  // namespace normad::cli
