// normad tensor storage, allocators, shapes, views and device moves (see tensor/tensor.h).
// Math: numel = prod(shape); a scalar has shape [] and numel 1; storage bytes = 4 max(numel, 1).
// Tested by tests/test_tensor.cpp.
#include "tensor/tensor.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "tensor/backend.h"
#include "tensor/caching_pool.h"

namespace normad {

namespace {
constexpr size_t kHostAlignment = 64;
// Tensors from this size on come from the caching pool (whole pages of their own); smaller ones
// from malloc, which serves them from its heap anyway.
constexpr size_t kPooledBytes = 64 << 10;

// Pages straight from the kernel, returned to it when the pool evicts them (page aligned).
void* map_pages(size_t bytes, void*) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}
void unmap_pages(void* p, size_t bytes, void*) { munmap(p, bytes); }

// Host memory for the CPU and Reference devices, 64-byte aligned. Large blocks go through a
// bounded caching pool over mmap (tensor/caching_pool.h): a training step's tensors repeat their
// sizes, so the next step reuses the same pages (no page faults, no zeroing by the kernel), while
// the pool never holds more than twice the most bytes ever in use at once (in use + cached <=
// 2 peak). Before it, glibc's heap served them: freed blocks fragmented the heap and its footprint
// reached 2.4x the tensors' peak (ACR-NTL step: 405 MiB of tensors, 978 MiB resident; 564 with the
// pool); returning them with munmap on every free instead costs fresh page faults for every op
// output.
class HostAllocator final : public Allocator {
 public:
  explicit HostAllocator(Device d) : device_(d) {}
  Device device() const override { return device_; }
  void flush() override { pool_.flush(); }

 protected:
  void* do_allocate(size_t bytes) override {
    if (bytes >= kPooledBytes) return pool_.allocate(bytes);
    // aligned_alloc needs a size that is a multiple of the alignment
    const size_t rounded = (bytes + kHostAlignment - 1) / kHostAlignment * kHostAlignment;
    return std::aligned_alloc(kHostAlignment, rounded);
  }
  void do_release(void* p, size_t bytes) override {
    if (bytes >= kPooledBytes) return pool_.release(p, bytes);
    std::free(p);
  }
  int64_t cached_bytes() const override { return pool_.cached_bytes(); }

 private:
  Device device_;
  CachingPool pool_{RawMemory{&map_pages, &unmap_pages, nullptr}, /*bounded=*/true};
};
}  // namespace

void prefer_huge_pages(void* data, size_t bytes) {
#ifdef MADV_HUGEPAGE
  constexpr uintptr_t kPage = 4096, kHuge = uintptr_t(2) << 20;
  if (bytes < kHuge) return;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + kPage - 1) & ~(kPage - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) & ~(kPage - 1);
  if (end > begin) (void)madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);  // advice only
#else
  (void)data;
  (void)bytes;
#endif
}

const char* device_name(Device d) {
  switch (d) {
    case Device::CPU: return "cpu";
    case Device::Reference: return "reference";
    case Device::CUDA: return "cuda";
  }
  return "?";
}

Device parse_device(const std::string& name) {
  for (Device d : {Device::CPU, Device::Reference, Device::CUDA})
    if (name == device_name(d)) return d;
  throw Error("unknown device '" + name + "' (cpu, reference or cuda)");
}

// ---- allocators ------------------------------------------------------------------------------

void* Allocator::allocate(size_t bytes) {
  void* p = do_allocate(bytes);
  if (!p)
    throw Error(std::string("out of memory on ") + device_name(device()) + ": " +
                std::to_string(bytes) + " bytes requested, " + std::to_string(in_use_.load()) +
                " in use");
  const int64_t now = in_use_.fetch_add(static_cast<int64_t>(bytes)) + static_cast<int64_t>(bytes);
  // Raise the peak to `now` unless another thread already raised it further.
  int64_t peak = peak_.load();
  while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
  }
  allocations_.fetch_add(1);
  return p;
}

void Allocator::release(void* p, size_t bytes) {
  if (!p) return;
  do_release(p, bytes);
  in_use_.fetch_sub(static_cast<int64_t>(bytes));
}

MemoryStats Allocator::stats() const {
  return {in_use_.load(), peak_.load(), cached_bytes(), allocations_.load()};
}

void Allocator::reset_peak() { peak_.store(in_use_.load()); }

// Never destroyed (as the CUDA allocator): a tensor freed during static destruction, after the
// allocator's own destructor, would otherwise release into a destroyed pool.
Allocator& cpu_allocator() {
  static HostAllocator* const a = new HostAllocator(Device::CPU);
  return *a;
}

Allocator& allocator_for(Device d) {
  static HostAllocator* const reference = new HostAllocator(Device::Reference);
  if (d == Device::CPU) return cpu_allocator();
  if (d == Device::Reference) return *reference;
  Allocator* cuda = cuda_allocator();
  if (!cuda) throw Error("cuda: " + cuda_unavailable_reason());
  return *cuda;
}

// ---- storage -----------------------------------------------------------------------------

Storage::Storage(size_t n_bytes, Device dev)
    : bytes(n_bytes), device(dev), allocator(&allocator_for(dev)) {
  ptr = allocator->allocate(bytes);
}

Storage::~Storage() { allocator->release(ptr, bytes); }

// Copies `bytes` from a block on device `from` to one on device `to` (one side or both on the host).
static void copy_between(void* dst, Device to, const void* src, Device from, size_t bytes) {
  if (bytes == 0) return;
  if (is_host(from) && is_host(to)) {
    std::memcpy(dst, src, bytes);
  } else if (is_host(from)) {
    backend_for(to).copy_from_host(dst, src, bytes);
  } else if (is_host(to)) {
    backend_for(from).copy_to_host(dst, src, bytes);
  } else {
    backend_for(to).copy(dst, src, bytes);  // one GPU device type today: same backend
  }
}

void Storage::move_to(Device to) {
  if (to == device) return;
  Allocator* dst_alloc = &allocator_for(to);
  void* dst = dst_alloc->allocate(bytes);
  try {
    copy_between(dst, to, ptr, device, bytes);
  } catch (...) {
    dst_alloc->release(dst, bytes);
    throw;
  }
  allocator->release(ptr, bytes);
  ptr = dst;
  device = to;
  allocator = dst_alloc;
}

// ---- shapes ------------------------------------------------------------------------------

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

DimSplit split_at(const Shape& s, int64_t dim) {
  DimSplit p;
  for (int64_t i = 0; i < dim; ++i) p.outer *= s[i];
  p.r = s[dim];
  for (size_t i = dim + 1; i < s.size(); ++i) p.inner *= s[i];
  return p;
}

Shape reduced_shape(const Shape& s, const std::vector<int64_t>& dims, bool keepdim) {
  Shape out;
  for (int64_t d = 0; d < static_cast<int64_t>(s.size()); ++d) {
    const bool reduced = std::find(dims.begin(), dims.end(), d) != dims.end();
    if (!reduced) out.push_back(s[d]);
    else if (keepdim) out.push_back(1);
  }
  return out;
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

// ---- tensors -----------------------------------------------------------------------------

Tensor::Tensor(Shape shape, float fill) : Tensor(full(std::move(shape), fill, Device::CPU)) {}

Tensor Tensor::empty(Shape shape, Device dev) {
  Tensor t;
  t.shape_ = std::move(shape);
  t.numel_ = shape_numel(t.shape_);
  // At least one element, so that every defined tensor has a block (data() is never null).
  t.storage_ = std::make_shared<Storage>(sizeof(float) * std::max<int64_t>(t.numel_, 1), dev);
  return t;
}

Tensor Tensor::full(Shape shape, float v, Device dev) {
  Tensor t = empty(std::move(shape), dev);
  t.fill_(v);
  return t;
}

Tensor Tensor::from(Shape shape, const std::vector<float>& values, Device dev) {
  int64_t n = shape_numel(shape);
  if (n != static_cast<int64_t>(values.size()))
    throw Error("Tensor::from: shape " + shape_str(shape) + " needs " + std::to_string(n) +
                " values, got " + std::to_string(values.size()));
  Tensor t = empty(std::move(shape), dev);
  copy_between(t.device_data(), dev, values.data(), Device::CPU, sizeof(float) * n);
  return t;
}

namespace {
std::atomic<bool> g_strict_device{[] {
  const char* v = std::getenv("NORMAD_STRICT_DEVICE");
  return v != nullptr && std::string(v) == "1";
}()};
}  // namespace

void set_strict_device(bool on) { g_strict_device = on; }
bool strict_device() { return g_strict_device; }

void Tensor::check_host_access(const char* what) const {
  const Device d = storage_->device;
  if (is_host(d) && !(d == Device::Reference && g_strict_device)) return;
  throw Error(std::string(what) + ": the tensor " + shape_str(shape_) + " is on " + device_name(d) +
              "; copy it to the host first (.to(Device::CPU))" +
              (is_host(d) ? " [strict device mode: the reference device stands in for a GPU]" : ""));
}

int64_t Tensor::size(int64_t d) const { return shape_[wrap_dim(d, dim(), "Tensor::size")]; }

float Tensor::item() const {
  if (numel_ != 1) throw Error("item: tensor of shape " + shape_str(shape_) + " is not a scalar");
  float v;
  copy_between(&v, Device::CPU, device_data(), device(), sizeof(float));
  return v;
}

std::vector<float> Tensor::to_vector() const {
  std::vector<float> v(numel_);
  if (numel_) copy_between(v.data(), Device::CPU, device_data(), device(), sizeof(float) * numel_);
  return v;
}

Tensor Tensor::to(Device to) const {
  if (!defined() || device() == to) return *this;
  Tensor t = empty(shape_, to);
  copy_between(t.device_data(), to, device_data(), device(), sizeof(float) * numel_);
  return t;
}

void Tensor::move_to(Device to) {
  if (defined()) storage_->move_to(to);
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
  Tensor t = empty(shape_, device());
  t.copy_(*this);
  return t;
}

void Tensor::copy_(const Tensor& src) {
  if (src.numel() != numel_)
    throw Error("copy_: source " + shape_str(src.shape()) + " does not fit " + shape_str(shape_));
  copy_between(device_data(), device(), src.device_data(), src.device(), sizeof(float) * numel_);
}

void Tensor::fill_(float v) {
  if (defined()) backend_for(device()).fill(*this, v);
}

}  // namespace normad
