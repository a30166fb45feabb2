// normad tensor storage, shapes and views (see tensor/tensor.h).
// Math: numel = prod(shape); a scalar has shape [] and numel 1.
// Tested by tests/test_tensor.cpp.
#include "tensor/tensor.h"

#include <malloc.h>

#include <algorithm>
#include <cstring>
#include <sstream>

namespace normad {

namespace {
// glibc serves blocks above 128 KiB with mmap and returns them on free, so every large op output
// costs fresh page faults. Keeping them in the heap (no mmap up to 1 GiB, no trimming below
// 256 MiB) reuses the same pages from one training step to the next.
struct MallocTuning {
  MallocTuning() {
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
  }
} const g_malloc_tuning;
}  // namespace

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    if (d < 0) throw Error("negative dimension in shape " + shape_str(s));
    n *= d;
  }
  return n;
}

void check(bool cond, const std::string& what, const std::string& msg) {
  if (!cond) throw Error(what + ": " + msg);
}

int64_t wrap_dim(int64_t d, int64_t rank, const char* what) {
  int64_t w = d < 0 ? d + rank : d;
  if (w < 0 || w >= rank)
    throw Error(std::string(what) + ": dim " + std::to_string(d) + " out of range for rank " +
                std::to_string(rank));
  return w;
}

Tensor::Tensor(Shape shape, float fill) : shape_(std::move(shape)) {
  numel_ = shape_numel(shape_);
  // make_shared_for_overwrite leaves floats uninitialised; fill sets every element once.
  storage_ = std::make_shared_for_overwrite<float[]>(std::max<int64_t>(numel_, 1));
  std::fill_n(storage_.get(), numel_, fill);
}

Tensor Tensor::empty(Shape shape) {
  Tensor t;
  t.shape_ = std::move(shape);
  t.numel_ = shape_numel(t.shape_);
  t.storage_ = std::make_shared_for_overwrite<float[]>(std::max<int64_t>(t.numel_, 1));
  return t;
}

Tensor Tensor::from(Shape shape, const std::vector<float>& values) {
  int64_t n = shape_numel(shape);
  if (n != static_cast<int64_t>(values.size()))
    throw Error("Tensor::from: shape " + shape_str(shape) + " needs " + std::to_string(n) +
                " values, got " + std::to_string(values.size()));
  Tensor t(std::move(shape));
  std::copy(values.begin(), values.end(), t.data());
  return t;
}

int64_t Tensor::size(int64_t d) const { return shape_[wrap_dim(d, dim(), "Tensor::size")]; }

float Tensor::item() const {
  if (numel_ != 1) throw Error("item: tensor of shape " + shape_str(shape_) + " is not a scalar");
  return storage_[0];
}

std::vector<float> Tensor::to_vector() const {
  return std::vector<float>(data(), data() + numel_);
}

Tensor Tensor::reshape(Shape shape) const {
  int64_t infer = -1, known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (infer >= 0) throw Error("reshape: more than one -1 in " + shape_str(shape));
      infer = static_cast<int64_t>(i);
    } else {
      if (shape[i] < 0) throw Error("reshape: negative size in " + shape_str(shape));
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || numel_ % known != 0)
      throw Error("reshape: cannot reshape " + shape_str(shape_) + " to " + shape_str(shape));
    shape[infer] = numel_ / known;
  }
  if (shape_numel(shape) != numel_)
    throw Error("reshape: cannot reshape " + shape_str(shape_) + " (" + std::to_string(numel_) +
                " elements) to " + shape_str(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::clone() const {
  if (!defined()) return Tensor();
  Tensor t = Tensor::empty(shape_);
  std::memcpy(t.data(), data(), sizeof(float) * numel_);
  return t;
}

void Tensor::copy_(const Tensor& src) {
  if (src.numel() != numel_)
    throw Error("copy_: source " + shape_str(src.shape()) + " does not fit " + shape_str(shape_));
  std::memcpy(data(), src.data(), sizeof(float) * numel_);
}

void Tensor::fill_(float v) { std::fill_n(data(), numel_, v); }

}  // namespace normad
