// normad tensor: a float32, contiguous, row-major N-d array over shared, device-tagged storage.
// Math: element (i0, ..., ik) lives at data()[sum_j i_j * stride_j] with stride_j = prod_{l>j} shape_l.
// Tested by tests/test_tensor.cpp (shapes, views, storage, devices, allocators, errors) and every op
// test that builds on it.
//
// Shape legend used across normad: N batch, C channels, H, W spatial, D embedding, G groups, T tasks.
//
// Memory: a Tensor holds a shared_ptr<Storage> {pointer, bytes, device, allocator}. Views (reshape)
// and copies of a Tensor share the Storage, so moving it (Storage::move_to, Module::to) moves every
// view with it. Each device has one Allocator that counts bytes in use and the peak.
// Ops dispatch on the device of their inputs (tensor/backend.h); docs/backends.md is the guide.
#pragma once

#include <atomic>
#include <cstddef>
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

// Where a tensor's storage lives and which backend runs its ops:
//   CPU        host memory, the fast kernels (native, OpenBLAS or Eigen GEMM, oneTBB, vectorised loops)
//   Reference  host memory, the plain-loop reference kernels (double accumulation), for checking
//   CUDA       GPU memory, the CUDA kernels (cuda/; present when built with nvcc and a GPU is found)
enum class Device { CPU, Reference, CUDA };
const char* device_name(Device d);  // "cpu", "reference", "cuda"
Device parse_device(const std::string& name);  // the inverse; throws naming the accepted names
inline bool is_host(Device d) { return d != Device::CUDA; }
// Strict device mode, for tests on machines without a GPU: Reference tensors then refuse host
// access (data()) as CUDA tensors always do, so a CPU-only run of a model on Device::Reference finds
// every host read that would stop the same model on a GPU. Off by default; on when the environment
// has NORMAD_STRICT_DEVICE=1 at start-up, or through set_strict_device.
void set_strict_device(bool on);
bool strict_device();

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s);  // "[2, 3, 4]"
int64_t shape_numel(const Shape& s);
// A shape seen around one dim: [outer, r, inner] with r = s[dim] (the kernels' view of a reduced,
// sliced or concatenated dim; dim in range).
struct DimSplit {
  int64_t outer = 1, r = 1, inner = 1;
};
DimSplit split_at(const Shape& s, int64_t dim);
// s without the (sorted, unique) dims in `dims`, or with them as 1 when keepdim.
Shape reduced_shape(const Shape& s, const std::vector<int64_t>& dims, bool keepdim);

// Bytes in use and the high-water mark of one allocator (tensor storage, including the scratch
// kernels take as tensors from the pool, e.g. the convolution weight gradients' partial sums; not
// their std::vector scratch).
struct MemoryStats {
  int64_t in_use = 0;       // bytes held by live tensors
  int64_t peak = 0;         // the most ever in use since start (or reset_peak)
  int64_t cached = 0;       // bytes kept for reuse by a caching allocator (not in use)
  int64_t allocations = 0;  // allocate() calls served
};

// One per device. allocate/release count; do_allocate/do_release are what a backend implements
// (the CPU's aligned heap blocks; the CUDA backend's caching pool with best-fit reuse).
class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual Device device() const = 0;
  void* allocate(size_t bytes);            // throws normad::Error naming the device and the size
  void release(void* p, size_t bytes);
  virtual void flush() {}                  // hand cached blocks back to the system
  MemoryStats stats() const;
  void reset_peak();

 protected:
  virtual void* do_allocate(size_t bytes) = 0;  // nullptr when out of memory
  virtual void do_release(void* p, size_t bytes) = 0;
  virtual int64_t cached_bytes() const { return 0; }

 private:
  std::atomic<int64_t> in_use_{0}, peak_{0}, allocations_{0};
};

// 64-byte aligned host blocks (one cache line; an AVX-512 register).
Allocator& cpu_allocator();
// The allocator of a device (throws for CUDA when the CUDA backend is absent).
Allocator& allocator_for(Device d);

// Asks the kernel to back the whole pages of [data, data + bytes) with 2 MiB pages (Linux's
// transparent huge pages, where they are enabled or in "madvise" mode) before they are first
// touched: one page fault per 2 MiB instead of one per 4 KiB. For large buffers outside the
// tensor pool (Gaussian-AD's [p, p] double matrices: a fresh 25 MB one cost 66 ms of page faults
// on the 2-core development VM, 5 ms in 2 MiB pages). Nothing happens below 2 MiB, on other
// systems, or where the kernel declines; the contents are unchanged.
void prefer_huge_pages(void* data, size_t bytes);

// A block of memory on one device. Owned through shared_ptr by every tensor that views it.
struct Storage {
  void* ptr = nullptr;
  size_t bytes = 0;
  Device device = Device::CPU;
  Allocator* allocator = nullptr;

  Storage(size_t bytes, Device device);  // allocates from allocator_for(device)
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  // Moves the bytes to another device in place: every tensor sharing this storage follows.
  void move_to(Device to);
};

class Tensor {
 public:
  Tensor() = default;                             // undefined: no storage, rank 0, numel 0
  explicit Tensor(Shape shape, float fill = 0.f);  // CPU tensor filled with `fill`

  // Uninitialised values: for op outputs that write every element (saves a pass over memory).
  static Tensor empty(Shape shape, Device dev = Device::CPU);
  static Tensor full(Shape shape, float v, Device dev = Device::CPU);
  static Tensor zeros(Shape shape, Device dev = Device::CPU) { return full(std::move(shape), 0.f, dev); }
  static Tensor ones(Shape shape, Device dev = Device::CPU) { return full(std::move(shape), 1.f, dev); }
  static Tensor scalar(float v, Device dev = Device::CPU) { return full(Shape{}, v, dev); }
  // Copies `values` (size must equal the product of `shape`).
  static Tensor from(Shape shape, const std::vector<float>& values, Device dev = Device::CPU);
  static Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.device()); }
  static Tensor empty_like(const Tensor& t) { return empty(t.shape(), t.device()); }

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  int64_t size(int64_t d) const;  // d may be negative (from the end)
  int64_t numel() const { return numel_; }
  Device device() const { return storage_ ? storage_->device : Device::CPU; }

  // Host element access (CPU and Reference tensors). On a CUDA tensor it throws a normad::Error
  // naming `what` (the op or caller): move it with to(Device::CPU) first.
  // Inline: kernels call it inside loops.
  float* data(const char* what = "element access") { return host_ptr(what); }
  const float* data(const char* what = "element access") const { return host_ptr(what); }
  // The raw pointer on the tensor's own device, unchecked: for backend kernels only.
  float* device_data() const { return storage_ ? static_cast<float*>(storage_->ptr) : nullptr; }
  float item() const;  // numel must be 1 (copies from the device)
  std::vector<float> to_vector() const;  // copies from the device

  // A copy on device `to` (this tensor itself when it is already there).
  Tensor to(Device to) const;
  // Moves the storage (and so every view of it) to `to` in place.
  void move_to(Device to);

  // A view with the same storage; one entry may be -1 (inferred). Throws on a size mismatch.
  Tensor reshape(Shape shape) const;
  Tensor clone() const;                     // deep copy on the same device
  void copy_(const Tensor& src);            // same numel; copies values in (across devices too)
  void fill_(float v);
  bool same_storage(const Tensor& o) const { return storage_ == o.storage_; }

 private:
  float* host_ptr(const char* what) const {
    if (storage_ && storage_->device != Device::CPU) [[unlikely]] check_host_access(what);
    return device_data();
  }
  void check_host_access(const char* what) const;  // throws for CUDA, and Reference when strict
  std::shared_ptr<Storage> storage_;
  Shape shape_;
  int64_t numel_ = 0;
};

// Normalises a possibly negative dim against rank `rank`; throws naming `what` if out of range.
int64_t wrap_dim(int64_t d, int64_t rank, const char* what);

// Throws normad::Error("<what>: <msg>") when cond is false.
void check(bool cond, const std::string& what, const std::string& msg);

}  // namespace normad
