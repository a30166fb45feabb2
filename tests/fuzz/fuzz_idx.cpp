// Fuzz target: the IDX reader (data/idx.h), plain or gzip (zlib's gz reader picks by content), and
// its image and label views. Checks beyond "no crash, only normad::Error": the value count equals
// the product of the header's sizes; images are [N, 1, H, W] in [0, 1]. Seeds: corpus/fuzz_idx.
#include "data/idx.h"
#include "tests/fuzz/fuzz_util.h"

using namespace normad;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::scratch_file(data, size, ".idx");
  fuzz::expect_clean("idx", [&] {
    const data::Idx idx = data::read_idx(path);
    uint64_t n = 1;
    for (int64_t s : idx.shape) n *= static_cast<uint64_t>(s);
    fuzz::require(n == idx.bytes.size(), "idx", "value count differs from the header's sizes");
  });
  fuzz::expect_clean("idx images", [&] {
    const Tensor x = data::read_idx_images(path);
    fuzz::require(x.dim() == 4 && x.size(1) == 1, "idx images", "not [N, 1, H, W]");
    for (int64_t i = 0; i < x.numel(); ++i)
      fuzz::require(x.data()[i] >= 0.f && x.data()[i] <= 1.f, "idx images", "a value outside [0, 1]");
  });
  fuzz::expect_clean("idx labels", [&] { data::read_idx_labels(path); });
  return 0;
}
