// Fuzz target: image decoding (data/image.h: PNG and BMP through stb_image, JPEG through
// libjpeg-turbo; any other format must be refused) and the preprocessing after it (resize with each filter, centre crop, masks). The pixel
// limit is lowered to 2^20 here so that inputs declaring large images test the limit, not the
// machine (the default is 89,478,485, data/image.h). Checks beyond "no crash, only normad::Error":
// a decoded image has the size image_size_hw reported and values in 0..255; preprocessing gives
// prep_output_size's shape, finite values. Seeds: corpus/fuzz_image.
#include <cmath>

#include "data/image.h"
#include "tests/fuzz/fuzz_util.h"

using namespace normad;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  data::set_max_image_pixels(int64_t(1) << 20);
  const std::string path = fuzz::scratch_file(data, size, ".img");
  // The last byte picks the filter and the size rule, so every path is reachable from any image.
  const uint8_t pick = size ? data[size - 1] : 0;
  static const char* filters[] = {"bilinear", "bilinear-aa", "lanczos", "nearest"};
  data::ImagePrep prep;
  prep.filter = filters[pick & 3];
  prep.shorter_side = pick & 4;
  prep.size = 8 + (pick >> 4);
  prep.crop = (pick & 8) ? 7 : 0;
  fuzz::expect_clean("image", [&] {
    const auto [h, w] = data::image_size_hw(path);
    const Tensor rgb = data::load_image_rgb(path);
    fuzz::require(rgb.shape() == Shape{3, h, w}, "image", "decoded size differs from image_size_hw");
    for (int64_t i = 0; i < rgb.numel(); ++i)
      fuzz::require(rgb.data()[i] >= 0.f && rgb.data()[i] <= 255.f, "image", "a value outside 0..255");
    const Tensor gray = data::load_image_gray(path);
    fuzz::require(gray.numel() == h * w, "image", "grey image of another size");
    const Tensor x = data::preprocess_image(rgb, prep);
    const auto [ho, wo] = data::prep_output_size(h, w, prep);
    fuzz::require(x.shape() == Shape{3, ho, wo}, "image", "preprocessed shape differs from prep_output_size");
    for (int64_t i = 0; i < x.numel(); ++i)
      fuzz::require(std::isfinite(x.data()[i]), "image", "a non-finite preprocessed value");
    const Tensor mask = data::load_mask(path, prep);
    fuzz::require(mask.shape() == Shape{ho, wo}, "image", "mask shape differs from prep_output_size");
  });
  return 0;
}
