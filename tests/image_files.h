// Test helper: writes small image files with stb_image_write (PNG, BMP, JPEG) for the image,
// data-set and CLI tests. stb's implementation is static, so each test file gets its own copy.
#pragma once

#include <catch2/catch.hpp>
#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>
#pragma GCC diagnostic pop

#include "tensor/random.h"

namespace normad::test {

// Interleaved HWC uint8 pixels of a deterministic pattern with `comp` channels.
inline std::vector<unsigned char> pattern(int h, int w, int comp) {
  std::vector<unsigned char> px(size_t(h) * w * comp);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < comp; ++c) px[(size_t(y) * w + x) * comp + c] = (x * 37 + y * 11 + c * 50) % 256;
  return px;
}

enum class Fmt { png, bmp, jpg };

// Writes HWC pixels (comp channels) to `path`, creating its directory.
inline void write_image(const std::string& path, int h, int w, int comp, const std::vector<unsigned char>& px,
                        Fmt fmt = Fmt::png) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  int ok = 0;
  if (fmt == Fmt::png) ok = stbi_write_png(path.c_str(), w, h, comp, px.data(), w * comp);
  if (fmt == Fmt::bmp) ok = stbi_write_bmp(path.c_str(), w, h, comp, px.data());
  if (fmt == Fmt::jpg) ok = stbi_write_jpg(path.c_str(), w, h, comp, px.data(), 100);
  REQUIRE(ok);
}

// A 24 x 24 RGB PNG of noise around grey `base` (draws from g, pixel by pixel); with `defect` a
// bright 8 x 8 square at rows 6..13, columns 8..15 (an MVTec-like "crack").
inline void write_noisy_image(const std::string& path, int base, bool defect, Generator& g) {
  std::vector<unsigned char> px(24 * 24 * 3);
  for (int i = 0; i < 24 * 24 * 3; ++i) {
    const int y = i / 72, x = (i / 3) % 24;
    const bool in = defect && y >= 6 && y < 14 && x >= 8 && x < 16;
    px[size_t(i)] = (unsigned char)std::clamp(base + int(g.uniform1(-20, 20)) + (in ? 120 : 0), 0, 255);
  }
  write_image(path, 24, 24, 3, px);
}

}  // namespace normad::test
