// Tests of eval/pixel_metrics.h and models/anomaly_maps.h: pixel AUROC / AP / F1-max, AUPRO and the
// image metrics against tests/make_pixel_fixtures.py (scikit-learn, scipy.ndimage.label, AUPRO from
// pixel_metrics.md's definition) on 25 cases (ties, one-pixel and diagonal regions, all-normal,
// 224 x 224); bilinear upsampling against torch's interpolate and the blur against scipy's
// gaussian_filter; and closed forms by hand.
#include <catch2/catch.hpp>

#include <cmath>

#include "eval/metrics.h"
#include "eval/pixel_metrics.h"
#include "models/anomaly_maps.h"
#include "nn/safetensors.h"
#include "tests/helpers.h"

using namespace normad;

namespace {
// Same value or both NaN (undefined), else within tol.
bool close_or_both_nan(double got, double want, double tol) {
  if (std::isnan(want)) return std::isnan(got);
  return std::abs(got - want) <= tol;
}
}  // namespace

TEST_CASE("pixel metrics: AUROC, AP, F1-max, AUPRO and regions match the Python reference", "[pixel][parity]") {
  const std::string path = test::fixture("pixel_metrics.safetensors");
  if (path.empty()) return;
  const auto f = nn::load_safetensors(path);
  const int n_cases = static_cast<int>(f.tensors.at("n_cases").item());
  REQUIRE(n_cases >= 20);
  for (int i = 0; i < n_cases; ++i) {
    const std::string p = "c" + std::to_string(i);
    const Tensor& maps = f.tensors.at(p + ".maps");
    const Tensor& masks = f.tensors.at(p + ".masks");
    const std::vector<float> ref = f.tensors.at(p + ".ref").to_vector();  // F64 stored, read as float32
    const int64_t N = maps.size(0), H = maps.size(1), W = maps.size(2);
    INFO(p << ": " << N << " x " << H << " x " << W);
    const eval::PixelMetrics m = eval::pixel_metrics(maps.data(), masks.data(), N, H, W);
    // 1e-6 as the issue asks, plus the float32 rounding of the stored reference (values <= 1).
    CHECK(close_or_both_nan(m.auroc, ref[0], 1e-6 + 6e-8));
    CHECK(close_or_both_nan(m.ap, ref[1], 1e-6 + 6e-8));
    CHECK(close_or_both_nan(m.f1_max, ref[2], 1e-6 + 6e-8));
    CHECK(close_or_both_nan(m.aupro, ref[3], 1e-4));
    const eval::ImageMetrics im = eval::image_metrics(maps.data(), masks.data(), N, H, W);
    CHECK(close_or_both_nan(im.auroc, ref[4], 1e-6 + 6e-8));
    CHECK(close_or_both_nan(im.ap, ref[5], 1e-6 + 6e-8));
    CHECK(close_or_both_nan(im.f1_max, ref[6], 1e-6 + 6e-8));
    CHECK(m.regions == int64_t(ref[7]));
    // 4-connectivity, image by image
    std::vector<int32_t> labels(size_t(H * W));
    int64_t four = 0;
    for (int64_t k = 0; k < N; ++k) four += eval::label_regions(masks.data() + k * H * W, H, W, labels.data(), false);
    CHECK(four == int64_t(ref[8]));
  }
}

TEST_CASE("pixel metrics: hand cases (diagonal regions, one region's PRO, all scores equal, errors)", "[pixel]") {
  // Two defect pixels touching at a corner: one region under 8-connectivity, two under 4.
  const std::vector<float> diag{1, 0, 0, 1};
  std::vector<int32_t> lab(4);
  CHECK(eval::label_regions(diag.data(), 2, 2, lab.data(), true) == 1);
  CHECK(lab == std::vector<int32_t>{1, 0, 0, 1});
  CHECK(eval::label_regions(diag.data(), 2, 2, lab.data(), false) == 2);
  CHECK(lab == std::vector<int32_t>{1, 0, 0, 2});

  // 1 x 10 image: a 2-pixel region scoring 9 and 1, normals 8, 7, ..., 1 (one tie with the defect).
  //  scores: [9, 1 | 8 7 6 5 4 3 2 1]; masks [1, 1 | 0 ...]
  const std::vector<float> maps{9, 1, 8, 7, 6, 5, 4, 3, 2, 1}, masks{1, 1, 0, 0, 0, 0, 0, 0, 0, 0};
  const eval::PixelMetrics m = eval::pixel_metrics(maps.data(), masks.data(), 1, 1, 10);
  CHECK(m.regions == 1);
  CHECK(m.defect_pixels == 2);
  // AUROC by pairs: defect 9 beats all 8 normals; defect 1 ties one normal (1/2): (8 + 0.5) / 16.
  std::vector<double> s(maps.begin(), maps.end());
  std::vector<int> y(masks.begin(), masks.end());
  CHECK(m.auroc == Approx(8.5 / 16).margin(1e-12));
  CHECK(m.ap == Approx(eval::average_precision(s, y)).margin(1e-12));
  CHECK(m.f1_max == Approx(eval::f1_max(s, y)).margin(1e-12));
  // PRO is 1/2 from the first step (score 9) until score 1, where FPR jumps from 6/8 to 1: the area
  // up to FPR 0.3 is 0.3 * 1/2, normalised 1/2.
  CHECK(m.aupro == Approx(0.5).margin(1e-12));

  // All scores equal: AUROC 1/2, AP = the defect share, AUPRO = the area under the line from
  // (0, 0) to (1, 1) up to 0.3, normalised: 0.15.
  const std::vector<float> flat(10, 2.5f);
  const eval::PixelMetrics e = eval::pixel_metrics(flat.data(), masks.data(), 1, 1, 10);
  CHECK(e.auroc == Approx(0.5).margin(1e-12));
  CHECK(e.ap == Approx(0.2).margin(1e-12));
  CHECK(e.aupro == Approx(0.15).margin(1e-12));

  // No defect pixel: undefined, never 0 or 1.
  const std::vector<float> none(10, 0.f);
  const eval::PixelMetrics u = eval::pixel_metrics(maps.data(), none.data(), 1, 1, 10);
  CHECK(std::isnan(u.auroc));
  CHECK(std::isnan(u.aupro));
  CHECK(u.regions == 0);
  // A NaN score is an error naming it, not a silent result.
  std::vector<float> bad = maps;
  bad[3] = NAN;
  CHECK_THROWS_WITH(eval::pixel_metrics(bad.data(), masks.data(), 1, 1, 10), Catch::Contains("NaN"));
  // The same pixels in any image split give the same pooled metrics; regions are per image.
  const eval::PixelMetrics two = eval::pixel_metrics(maps.data(), masks.data(), 2, 1, 5);
  CHECK(two.auroc == m.auroc);
  CHECK(two.regions == 1);
}

TEST_CASE("anomaly maps: bilinear upsampling equals torch's interpolate(align_corners=False)", "[pixel][parity]") {
  const std::string path = test::fixture("pixel_metrics.safetensors");
  if (path.empty()) return;
  const auto f = nn::load_safetensors(path);
  for (int j = 0; j < 2; ++j) {
    const Tensor& in = f.tensors.at("up" + std::to_string(j) + ".in");
    const Tensor& want = f.tensors.at("up" + std::to_string(j) + ".out");
    const std::vector<float> got =
        models::upsample_bilinear(in.to_vector(), in.size(0), in.size(1), in.size(2), want.size(1), want.size(2));
    REQUIRE(int64_t(got.size()) == want.numel());
    double worst = 0;
    for (int64_t k = 0; k < want.numel(); ++k) worst = std::max(worst, double(std::abs(got[size_t(k)] - want.data()[k])));
    INFO("up" << j << ": largest difference " << worst);
    CHECK(worst <= 1e-6);
  }
  // Upsampling a constant gives the constant; 1 x 2 -> 1 x 4 by hand: src x = (d + 0.5) / 2 - 0.5.
  CHECK(models::upsample_bilinear({3, 3, 3, 3}, 1, 2, 2, 5, 3) == std::vector<float>(15, 3.f));
  CHECK(models::upsample_bilinear({0, 4}, 1, 1, 2, 1, 4) == std::vector<float>{0, 1, 3, 4});
}

TEST_CASE("anomaly maps: the sigma 4 blur equals scipy's gaussian_filter (reflect, truncate 4)", "[pixel][parity]") {
  const std::vector<double> taps = models::gaussian_taps(4, 4);
  CHECK(taps.size() == 33);  // radius int(4 * 4 + 0.5) = 16
  double sum = 0;
  for (double t : taps) sum += t;
  CHECK(sum == Approx(1).margin(1e-15));
  const std::string path = test::fixture("pixel_metrics.safetensors");
  if (path.empty()) return;
  const auto f = nn::load_safetensors(path);
  for (int j = 0; j < 3; ++j) {
    const Tensor& in = f.tensors.at("gauss" + std::to_string(j) + ".in");
    const Tensor& want = f.tensors.at("gauss" + std::to_string(j) + ".out");
    const std::vector<float> got = models::gaussian_blur(in.to_vector(), 1, in.size(0), in.size(1), 4.0);
    double worst = 0, scale = 0;
    for (int64_t k = 0; k < want.numel(); ++k) {
      worst = std::max(worst, double(std::abs(got[size_t(k)] - want.data()[k])));
      scale = std::max(scale, double(std::abs(want.data()[k])));
    }
    INFO("gauss" << j << " (" << in.size(0) << " x " << in.size(1) << "): largest difference " << worst);
    CHECK(worst <= 2e-6 * std::max(1.0, scale));  // float32 storage of both sides
  }
}

TEST_CASE("anomaly maps: min-max scaling refuses a constant or non-finite map", "[pixel]") {
  std::vector<float> v{2, 4, 3};
  CHECK(models::min_max_scale(v, "t") == std::pair<float, float>{2, 4});
  CHECK(v == std::vector<float>{0, 1, 0.5f});
  std::vector<float> flat{1, 1};
  CHECK_THROWS_WITH(models::min_max_scale(flat, "bottle"), Catch::Contains("bottle") && Catch::Contains("collapsed"));
  std::vector<float> inf{1, INFINITY};
  CHECK_THROWS_WITH(models::min_max_scale(inf, "t"), Catch::Contains("infinite"));
}
