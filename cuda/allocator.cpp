// normad's CUDA allocator: the caching pool (tensor/caching_pool.h) over cudaMalloc/cudaFree, as the
// normad::Allocator of Device::CUDA, and the scratch blocks of cuda/device.h from the same cache.
// Math: blocks of round_up(n, 512) bytes, best-fit reuse, flush and retry once on out-of-memory.
// Tested by tests/test_caching_pool.cpp: the pool logic with a fake raw allocator (runs anywhere);
// tests/test_cuda.cpp: this file's cudaMalloc side and the counters only on a GPU ([cuda]).
#include <cstdlib>
#include <string>

#include "cuda/check.h"
#include "cuda/device.h"
#include "tensor/backend.h"
#include "tensor/caching_pool.h"

namespace normad::cuda {

namespace {

// Raw device memory for the pool: nullptr on out-of-memory (the pool then flushes and retries);
// any other failure is an error.
void* raw_alloc(size_t bytes, void*) {
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, bytes);
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // clear it: a later launch check must not report this
    return nullptr;
  }
  NORMAD_CUDA_CHECK(err);
  return p;
}

// cudaFree waits for the device, so a cached block still read by queued work is freed after it.
void raw_free(void* p, size_t, void*) { NORMAD_CUDA_CHECK(cudaFree(p)); }

class CudaAllocator final : public Allocator {
 public:
  CudaAllocator() : pool_(RawMemory{&raw_alloc, &raw_free, nullptr}) {}
  Device device() const override { return Device::CUDA; }
  void flush() override { pool_.flush(); }

  // A block of `bytes` from the pool, or a normad::Error saying how memory stands.
  void* take(size_t bytes, const char* what) {
    if (void* p = pool_.allocate(bytes)) return p;
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    cudaGetLastError();
    throw Error("cuda: out of memory allocating " + std::to_string(bytes) + " bytes for " + what + " (" +
                std::to_string(pool_.in_use_bytes()) + " bytes in use by normad, " +
                std::to_string(pool_.cached_bytes()) + " cached after a flush; device " +
                std::to_string(free_b) + " of " + std::to_string(total_b) + " bytes free)");
  }
  void give(void* p, size_t bytes) {
    pool_.release(p, bytes);
    if (no_cache_) pool_.flush();  // each block straight back to cudaFree (for compute-sanitizer)
  }

 protected:
  void* do_allocate(size_t bytes) override { return take(bytes, "a tensor"); }
  void do_release(void* p, size_t bytes) override { give(p, bytes); }
  int64_t cached_bytes() const override { return pool_.cached_bytes(); }

 private:
  CachingPool pool_;
  // NORMAD_CUDA_NO_CACHE=1: no reuse, so compute-sanitizer's memcheck sees each tensor's own
  // allocation (an overrun into a reused, larger cached block would be invisible). Slow; for checks.
  const bool no_cache_ = [] {
    const char* v = std::getenv("NORMAD_CUDA_NO_CACHE");
    return v != nullptr && std::string(v) == "1";
  }();
};

CudaAllocator* the_allocator() {
  // Never destroyed: tensors released during static destruction still return their blocks here.
  static CudaAllocator* a = present() ? new CudaAllocator : nullptr;
  return a;
}

}  // namespace

Scratch::Scratch(size_t bytes) : ptr_(nullptr), bytes_(bytes) {
  if (!present()) throw Error("cuda: " + unavailable_reason());
  ptr_ = the_allocator()->take(bytes, "kernel scratch");
}

Scratch::~Scratch() { the_allocator()->give(ptr_, bytes_); }

}  // namespace normad::cuda

namespace normad {
Allocator* cuda_allocator() { return cuda::the_allocator(); }
}  // namespace normad
