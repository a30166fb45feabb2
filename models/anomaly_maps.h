// From patch scores to per-pixel anomaly maps (acr.md §11.4 steps 2-4, the MVTec AD convention):
// bilinear upsampling with half-pixel centres (PyTorch's interpolate, align_corners=False), a
// separable Gaussian blur with scipy.ndimage.gaussian_filter's kernel and 'reflect' boundary, and
// min-max scaling over a set of maps.
// Math: upsample src = max(0, (dst + 0.5) * in / out - 0.5), value = bilinear mix of the 2 x 2
// neighbours; blur: taps exp(-x^2 / (2 sigma^2)) / sum for |x| <= radius = int(truncate sigma + 0.5),
// boundary d c b a | a b c d | d c b a (half-sample symmetric, repeated); scale (v - min) / (max - min).
// Tested by tests/test_pixel_metrics.cpp against torch.nn.functional.interpolate and
// scipy.ndimage.gaussian_filter (tests/make_pixel_fixtures.py), and by hand on small cases.
#pragma once

#include <cstdint>
#include <vector>

namespace normad::models {

// Maps in [N, h, w] -> [N, out_h, out_w], in float as PyTorch computes it.
std::vector<float> upsample_bilinear(const std::vector<float>& maps, int64_t n, int64_t h, int64_t w, int64_t out_h,
                                     int64_t out_w);

// Each [H, W] map of [N, H, W] blurred (in double, stored as float); returns the new maps.
std::vector<float> gaussian_blur(const std::vector<float>& maps, int64_t n, int64_t h, int64_t w, double sigma = 4.0,
                                 double truncate = 4.0);

// The taps of gaussian_blur: 2 * radius + 1 weights summing to 1.
std::vector<double> gaussian_taps(double sigma, double truncate);

// (v - min) / (max - min) over all values, in place; returns {min, max}. All values equal (a
// collapsed model) or a non-finite value is an Error naming `what`.
std::pair<float, float> min_max_scale(std::vector<float>& maps, const char* what);

}  // namespace normad::models
