// normad tensor: a float32, contiguous, row-major N-d array with shared storage and a device tag.
// Math: element (i0, ..., ik) lives at data()[sum_j i_j * stride_j] with stride_j = prod_{l>j} shape_l.
// Tested by tests/test_tensor.cpp (shapes, views, errors) and every op test that builds on it.
//
// Shape legend used across normad: N batch, C channels, H, W spatial, D embedding, G groups, T tasks.
//
// Only CPU storage exists today. The Device tag and the one dispatch point per op (see tensor/ops.h)
// are the seams for the CUDA backend: an op checks device() and calls the CUDA kernel there.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace normad {

// Every user-facing failure (bad shape, bad file, bad argument) is a normad::Error.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class Device { CPU, CUDA };

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s);  // "[2, 3, 4]"
int64_t shape_numel(const Shape& s);

class Tensor {
 public:
  Tensor() = default;                             // undefined: no storage, rank 0, numel 0
  explicit Tensor(Shape shape, float fill = 0.f);  // CPU tensor filled with `fill`

  // Uninitialised values: for op outputs that write every element (saves a pass over memory).
  static Tensor empty(Shape shape);
  static Tensor zeros(Shape shape) { return Tensor(std::move(shape), 0.f); }
  static Tensor ones(Shape shape) { return Tensor(std::move(shape), 1.f); }
  static Tensor full(Shape shape, float v) { return Tensor(std::move(shape), v); }
  static Tensor scalar(float v) { return Tensor(Shape{}, v); }
  // Copies `values` (size must equal the product of `shape`).
  static Tensor from(Shape shape, const std::vector<float>& values);
  static Tensor zeros_like(const Tensor& t) { return zeros(t.shape()); }

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  int64_t size(int64_t d) const;  // d may be negative (from the end)
  int64_t numel() const { return numel_; }
  Device device() const { return device_; }

  float* data() { return storage_.get(); }
  const float* data() const { return storage_.get(); }
  float item() const;  // numel must be 1
  std::vector<float> to_vector() const;

  // A view with the same storage; one entry may be -1 (inferred). Throws on a size mismatch.
  Tensor reshape(Shape shape) const;
  Tensor clone() const;                     // deep copy
  void copy_(const Tensor& src);            // same numel; copies values in
  void fill_(float v);
  bool same_storage(const Tensor& o) const { return storage_ == o.storage_; }

 private:
  std::shared_ptr<float[]> storage_;
  Shape shape_;
  int64_t numel_ = 0;
  Device device_ = Device::CPU;
};

// Normalises a possibly negative dim against rank `rank`; throws naming `what` if out of range.
int64_t wrap_dim(int64_t d, int64_t rank, const char* what);

// Throws normad::Error("<what>: <msg>") when cond is false.
void check(bool cond, const std::string& what, const std::string& msg);

}  // namespace normad
