// Patch scores -> anomaly maps (see models/anomaly_maps.h). Tested by tests/test_pixel_metrics.cpp.
#include "models/anomaly_maps.h"

#include <cmath>
#include <string>

#include "tensor/parallel.h"
#include "tensor/tensor.h"

namespace normad::models {

namespace {

// scipy.ndimage's 'reflect' mode: index i of a line of n samples, mirrored about the half-sample
// edges as often as needed (period 2n).
int64_t reflect_index(int64_t i, int64_t n) {
  int64_t m = i % (2 * n);
  if (m < 0) m += 2 * n;
  return m < n ? m : 2 * n - 1 - m;
}

}  // namespace

std::vector<float> upsample_bilinear(const std::vector<float>& maps, int64_t n, int64_t h, int64_t w, int64_t out_h,
                                     int64_t out_w) {
  check(n >= 1 && h >= 1 && w >= 1 && out_h >= 1 && out_w >= 1, "upsample_bilinear", "sizes must be positive");
  check(int64_t(maps.size()) == n * h * w, "upsample_bilinear", "maps hold " + std::to_string(maps.size()) +
                                                                     " values for " + std::to_string(n) + " x " +
                                                                     std::to_string(h) + " x " + std::to_string(w));
  // Per output row / column: the two source indices and weights, computed in float as ATen does
  // (area_pixel_compute_scale, area_pixel_compute_source_index with align_corners = false).
  struct Tap {
    int64_t i0, i1;
    float l0, l1;
  };
  auto taps = [](int64_t in, int64_t out) {
    const float scale = float(in) / float(out);
    std::vector<Tap> t(static_cast<size_t>(out));
    for (int64_t d = 0; d < out; ++d) {
      float src = scale * (float(d) + 0.5f) - 0.5f;
      if (src < 0) src = 0;
      const int64_t i0 = static_cast<int64_t>(src);
      const int64_t i1 = i0 + (i0 < in - 1 ? 1 : 0);
      const float l1 = src - float(i0);
      t[size_t(d)] = {i0, i1, 1.0f - l1, l1};
    }
    return t;
  };
  const std::vector<Tap> rows = taps(h, out_h), cols = taps(w, out_w);
  std::vector<float> out(static_cast<size_t>(n * out_h * out_w));
  parallel_for(n, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float* src = maps.data() + i * h * w;
      float* dst = out.data() + i * out_h * out_w;
      for (int64_t y = 0; y < out_h; ++y) {
        const Tap& r = rows[size_t(y)];
        for (int64_t x = 0; x < out_w; ++x) {
          const Tap& c = cols[size_t(x)];
          dst[y * out_w + x] = r.l0 * (c.l0 * src[r.i0 * w + c.i0] + c.l1 * src[r.i0 * w + c.i1]) +
                               r.l1 * (c.l0 * src[r.i1 * w + c.i0] + c.l1 * src[r.i1 * w + c.i1]);
        }
      }
    }
  });
  return out;
}

std::vector<double> gaussian_taps(double sigma, double truncate) {
  check(sigma > 0 && truncate > 0, "gaussian_blur", "sigma and truncate must be positive");
  const int64_t radius = static_cast<int64_t>(truncate * sigma + 0.5);  // scipy's _gaussian_kernel1d
  std::vector<double> t(static_cast<size_t>(2 * radius + 1));
  double sum = 0;
  for (int64_t x = -radius; x <= radius; ++x) sum += t[size_t(x + radius)] = std::exp(-0.5 / (sigma * sigma) * double(x * x));
  for (double& v : t) v /= sum;
  return t;
}

std::vector<float> gaussian_blur(const std::vector<float>& maps, int64_t n, int64_t h, int64_t w, double sigma,
                                 double truncate) {
  check(int64_t(maps.size()) == n * h * w, "gaussian_blur", "maps hold " + std::to_string(maps.size()) + " values for " +
                                                                std::to_string(n) + " x " + std::to_string(h) + " x " +
                                                                std::to_string(w));
  const std::vector<double> taps = gaussian_taps(sigma, truncate);
  const int64_t radius = (int64_t(taps.size()) - 1) / 2;
  std::vector<float> out(maps.size());
  parallel_for(n, 1, [&](int64_t b, int64_t e) {
    std::vector<double> pass(static_cast<size_t>(h * w));
    for (int64_t i = b; i < e; ++i) {
      const float* src = maps.data() + i * h * w;
      // Along H first (scipy filters axis 0, then axis 1), kept in double between the passes.
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x) {
          double s = 0;
          for (int64_t k = -radius; k <= radius; ++k) s += taps[size_t(k + radius)] * src[reflect_index(y + k, h) * w + x];
          pass[size_t(y * w + x)] = s;
        }
      float* dst = out.data() + i * h * w;
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x) {
          double s = 0;
          for (int64_t k = -radius; k <= radius; ++k) s += taps[size_t(k + radius)] * pass[size_t(y * w + reflect_index(x + k, w))];
          dst[y * w + x] = float(s);
        }
    }
  });
  return out;
}

std::pair<float, float> min_max_scale(std::vector<float>& maps, const char* what) {
  check(!maps.empty(), what, "no map values to scale");
  float lo = maps[0], hi = maps[0];
  for (float v : maps) {
    if (!std::isfinite(v)) throw Error(std::string(what) + ": an anomaly map value is " + (std::isnan(v) ? "NaN" : "infinite"));
    lo = std::min(lo, v), hi = std::max(hi, v);
  }
  if (!(hi > lo))
    throw Error(std::string(what) + ": every anomaly map value is " + std::to_string(lo) +
                " (the model scores every patch alike: a collapsed model)");
  const double range = double(hi) - double(lo);
  for (float& v : maps) v = float((double(v) - double(lo)) / range);
  return {lo, hi};
}

}  // namespace normad::models
