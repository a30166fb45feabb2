// normad IDX reader (the MNIST family's format), gzip or plain, through zlib.
// Format: 2 zero bytes, a type byte (0x08 = uint8), the rank, then rank big-endian uint32 sizes and
// the values. Images come back as [N, 1, H, W] floats in [0, 1] (value / 255).
// Tested by tests/test_idx.cpp (files the test writes itself, truncated and malformed files).
#pragma once

#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace normad::data {

struct Idx {
  Shape shape;                 // sizes from the header
  std::vector<uint8_t> bytes;  // uint8 values, row-major
};

// Reads an IDX file of uint8 values; errors name the file and what is wrong.
Idx read_idx(const std::string& path);
Tensor read_idx_images(const std::string& path);          // [N, 1, H, W] in [0, 1]
std::vector<int64_t> read_idx_labels(const std::string& path);  // N labels

// Default Fashion-MNIST directory (Debian package dataset-fashion-mnist).
inline const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

struct Mnist {
  Tensor train_x, test_x;  // [N, 1, 28, 28]
  std::vector<int64_t> train_y, test_y;
};
// Loads train-images-idx3-ubyte(.gz) etc. from `dir`.
Mnist load_mnist_dir(const std::string& dir);

}  // namespace normad::data
