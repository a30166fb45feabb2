// Test helper: a tiny Fashion-MNIST look-alike in IDX files, for the commands that read the
// Fashion-MNIST directory (oneclass, zeroshot --data fmnist).
#pragma once

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "tensor/random.h"

namespace normad::test {

// Writes an uncompressed IDX file of uint8 values (big-endian sizes).
inline void write_idx(const std::string& path, const std::vector<uint32_t>& dims, const std::vector<uint8_t>& v) {
  std::ofstream f(path, std::ios::binary);
  const char head[4] = {0, 0, 8, char(dims.size())};
  f.write(head, 4);
  for (uint32_t d : dims) {
    const char be[4] = {char(d >> 24), char(d >> 16), char(d >> 8), char(d)};
    f.write(be, 4);
  }
  f.write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size()));
}
// A tiny Fashion-MNIST look-alike: `per_class` images of each of 10 classes per split; class k
// lights rows 2k..2k+3 over noise.
inline std::string write_tiny_fmnist(const std::filesystem::path& dir, int train_per_class, int test_per_class) {
  std::filesystem::create_directories(dir);
  normad::Generator g(3);
  for (auto [split, per] : {std::pair<std::string, int>{"train", train_per_class}, {"t10k", test_per_class}}) {
    std::vector<uint8_t> px, lab;
    for (int i = 0; i < 10 * per; ++i) {
      const int k = i % 10;
      lab.push_back(uint8_t(k));
      for (int p = 0; p < 28 * 28; ++p)
        px.push_back(uint8_t(std::min(255.f, g.uniform1(0.f, 60.f) + ((p / 28) / 2 - k == 0 || (p / 28) / 2 - k == 1 ? 180.f : 0.f))));
    }
    const uint32_t n = uint32_t(10 * per);
    write_idx((dir / (split + "-images-idx3-ubyte")).string(), {n, 28, 28}, px);
    write_idx((dir / (split + "-labels-idx1-ubyte")).string(), {n}, lab);
  }
  return dir.string();
}

}  // namespace normad::test
