// Helpers of the CUDA kernel-family tests (tests/test_cuda_*.cpp): running a kernel body on the
// host, comparing with NaN meeting NaN, the reference backend's result of a public op, and the
// GPU-or-skip guard of [cuda] cases.
// Math: |got - ref| <= atol + rtol |ref| per element, NaN only against NaN and inf only against the
// same inf (atol = rtol = 0: bit for bit up to the sign of zero).
// Tested by use: the callers' [cuda_body] cases fail when a body's index is broken.
#pragma once

#include <cmath>
#include <string>

#include "helpers.h"
#include "tensor/backend.h"

namespace normad::test {

// A body over n elements as the grid-stride kernel runs it (each element written by one call, so
// any order gives the same result).
template <class Body>
void run_on_host(int64_t n, const Body& body) {
  for (int64_t i = 0; i < n; ++i) body(i);
}

// expect_close with non-finite values compared as values: NaN == NaN, inf == the same inf.
inline void expect_match(const Tensor& got_any, const Tensor& ref_any, double atol, double rtol,
                         const std::string& what) {
  const Tensor got = got_any.to(Device::CPU), ref = ref_any.to(Device::CPU);
  REQUIRE(got.shape() == ref.shape());
  int64_t bad = 0;
  std::string first;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const double g = got.data()[i], r = ref.data()[i];
    const bool ok = std::isnan(r) ? std::isnan(g)
                    : std::isinf(r) ? g == r
                                    : std::fabs(g - r) <= atol + rtol * std::fabs(r);
    if (!ok && bad++ < 5)
      first += "  [" + std::to_string(i) + "] got " + std::to_string(g) + " ref " + std::to_string(r) + "\n";
  }
  INFO(what << " (atol " << atol << ", rtol " << rtol << "): " << bad << " of " << got.numel()
            << " differ\n" << first);
  CHECK(bad == 0);
}

// Catch2 v2 has no SKIP: tests/helpers.h gpu_or_skip prints the line ctest's
// SKIP_REGULAR_EXPRESSION matches and says to return.
inline bool have_gpu() { return gpu_or_skip(); }

}  // namespace normad::test
