// Fuzz target: the features CSV reader (models/image_features.h read_features_csv): the optional
// "# normad-features {json}" line (nlohmann::json, the image pipeline's fields, the level widths)
// and the CSV after it. Checks beyond "no crash, only normad::Error": the level widths sum to the
// table's width and levels() cuts the table into them. Seeds: corpus/fuzz_features_csv.
#include "models/image_features.h"
#include "tests/fuzz/fuzz_util.h"

using namespace normad;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::scratch_file(data, size, ".csv");
  fuzz::expect_clean("features csv", [&] {
    const models::FeaturesCsv f = models::read_features_csv(path);
    int64_t sum = 0;
    for (int64_t d : f.dims) sum += d;
    fuzz::require(sum == f.table.x.size(1), "features csv", "level widths do not sum to the table's width");
    const auto levels = f.levels();
    fuzz::require(levels.size() == f.dims.size(), "features csv", "levels() and dims disagree");
  });
  return 0;
}
