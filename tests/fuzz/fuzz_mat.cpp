// Fuzz target: the level-5 MAT-file reader (data/mat.h read_mat, with zlib-compressed elements)
// and the ODDS table view (read_odds). The inflate cap is lowered to 64 MiB here so a small input
// that declares a huge compressed element tests the cap, not the machine. Checks beyond "no crash,
// only normad::Error": every array has rank >= 2; ODDS labels are 0/1, one per row of X.
// Seeds: corpus/fuzz_mat.
#include "data/mat.h"
#include "tests/fuzz/fuzz_util.h"

using namespace normad;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::scratch_file(data, size, ".mat");
  fuzz::expect_clean("mat", [&] {
    for (const auto& [name, t] : data::read_mat(path, uint64_t(64) << 20))
      fuzz::require(t.dim() >= 2, "mat", "array '" + name + "' has rank < 2");
  });
  fuzz::expect_clean("odds", [&] {
    const data::OddsTable t = data::read_odds(path);
    fuzz::require(t.X.dim() == 2 && int64_t(t.y.size()) == t.X.size(0), "odds", "X and y disagree");
    for (int v : t.y) fuzz::require(v == 0 || v == 1, "odds", "a label other than 0/1");
  });
  return 0;
}
