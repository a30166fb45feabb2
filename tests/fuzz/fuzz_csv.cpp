// Fuzz target: the CSV reader (data/csv.h parse_csv) and the preprocessing that turns a parsed file
// into a numeric table (Preprocess::fit / apply, and its model-file metadata round trip).
// Checks beyond "no crash, only normad::Error": every parsed row has the header's width with a
// line number that grows; a table re-encoded from the fitted preprocessing's metadata equals the
// first encoding bit for bit. Seeds: tests/fuzz/corpus/fuzz_csv.
#include <cstring>

#include "data/csv.h"
#include "tests/fuzz/fuzz_util.h"

using namespace normad;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::expect_clean("csv", [&] {
    const data::Csv csv = data::parse_csv(text, "fuzz.csv");
    for (size_t i = 0; i < csv.rows.size(); ++i) {
      fuzz::require(csv.rows[i].size() == csv.header.size(), "csv", "row width differs from the header");
      fuzz::require(i == 0 || csv.lines[i] > csv.lines[i - 1], "csv", "line numbers do not grow");
    }
    if (csv.rows.empty()) return;
    // The last column as label, the first one-hot encoded when there are at least three columns.
    data::PreprocessOptions opt;
    opt.standardise = true;
    if (csv.header.size() >= 2) opt.label = csv.header.back();
    if (csv.header.size() >= 3) opt.one_hot = {csv.header.front()};
    const data::Preprocess pre = data::Preprocess::fit(csv, opt);
    const data::Table a = pre.apply(csv);
    const data::Table b = data::Preprocess::from_metadata(pre.to_metadata()).apply(csv);
    fuzz::require(a.x.shape() == b.x.shape() && a.columns == b.columns && a.labels == b.labels, "csv",
                  "the metadata round trip changed the table's shape, columns or labels");
    fuzz::require(std::memcmp(a.x.data(), b.x.data(), sizeof(float) * a.x.numel()) == 0, "csv",
                  "the metadata round trip changed a value");
  });
  return 0;
}
