// TEMPORARY stub (the reference backend lands from branch ref-backend): host memory only.
#include <algorithm>
#include <cstring>

#include "tensor/backend.h"

namespace normad {
namespace {
void host_copy(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void host_fill(Tensor& t, float v) { std::fill_n(t.data(), t.numel(), v); }
}  // namespace
const Backend& reference_backend() {
  static const Backend b{.name = "reference", .device = Device::Reference, .copy_from_host = host_copy,
                         .copy_to_host = host_copy, .copy = host_copy, .fill = host_fill};
  return b;
}
}  // namespace normad
