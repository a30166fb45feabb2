// Pixel- and image-level metrics of anomaly maps (see eval/pixel_metrics.h, pixel_metrics.md).
// One exact sweep over the pooled pixels gives AUROC, AP, F1-max and the PRO curve together.
// Tested by tests/test_pixel_metrics.cpp.
#include "eval/pixel_metrics.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "eval/metrics.h"
#include "tensor/parallel.h"
#include "tensor/tensor.h"

namespace normad::eval {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A float's bits as an unsigned key that sorts like the float (-0 taken as +0 so that equal
// scores share one key).
uint32_t sortable_key(float v) {
  if (v == 0.0f) v = 0.0f;
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

void check_finite(const float* maps, int64_t count, const char* what) {
  for (int64_t i = 0; i < count; ++i)
    if (!std::isfinite(maps[i]))
      throw Error(std::string(what) + ": the anomaly map value at flat index " + std::to_string(i) + " is " +
                  (std::isnan(maps[i]) ? "NaN" : "infinite"));
}

}  // namespace

int64_t label_regions(const float* mask, int64_t height, int64_t width, int32_t* labels, bool eight) {
  const int64_t size = height * width;
  for (int64_t i = 0; i < size; ++i) labels[i] = 0;
  std::vector<int64_t> stack;
  int32_t count = 0;
  // Flood fill from each unlabelled defect pixel in row-major order: components are numbered in
  // the order of their first pixel, as scipy.ndimage.label numbers them.
  for (int64_t start = 0; start < size; ++start) {
    if (!(mask[start] > 0) || labels[start] != 0) continue;
    labels[start] = ++count;
    stack.push_back(start);
    while (!stack.empty()) {
      const int64_t at = stack.back();
      stack.pop_back();
      const int64_t r = at / width, c = at % width;
      for (int64_t dr = -1; dr <= 1; ++dr)
        for (int64_t dc = -1; dc <= 1; ++dc) {
          if ((dr == 0 && dc == 0) || (!eight && dr != 0 && dc != 0)) continue;
          const int64_t rr = r + dr, cc = c + dc;
          if (rr < 0 || rr >= height || cc < 0 || cc >= width) continue;
          const int64_t next = rr * width + cc;
          if (mask[next] > 0 && labels[next] == 0) labels[next] = count, stack.push_back(next);
        }
    }
  }
  return count;
}

PixelMetrics pixel_metrics(const float* maps, const float* masks, int64_t n, int64_t height, int64_t width,
                           double fpr_limit) {
  check(n >= 1 && height >= 1 && width >= 1, "pixel_metrics", "needs at least one image of at least one pixel");
  check(fpr_limit > 0 && fpr_limit <= 1, "pixel_metrics", "the FPR limit must be in (0, 1]");
  const int64_t plane = height * width, total = n * plane;
  check(total < (int64_t(1) << 32), "pixel_metrics", std::to_string(total) + " pixels: at most 2^32 per call");
  check_finite(maps, total, "pixel_metrics");

  // ---- regions: 8-connected components of each mask, numbered across the images ----
  PixelMetrics out;
  out.pixels = total;
  std::vector<int32_t> region(static_cast<size_t>(total));
  std::vector<int64_t> region_size{0};  // [0] unused: id 0 = outside every region
  for (int64_t i = 0; i < n; ++i) {
    int32_t* ids = region.data() + i * plane;
    const int64_t k = label_regions(masks + i * plane, height, width, ids, true);
    const int32_t offset = static_cast<int32_t>(region_size.size() - 1);
    region_size.resize(region_size.size() + size_t(k), 0);
    for (int64_t p = 0; p < plane; ++p)
      if (ids[p]) ids[p] += offset, ++region_size[size_t(ids[p])];
  }
  out.regions = static_cast<int64_t>(region_size.size()) - 1;
  for (int64_t p = 0; p < total; ++p) out.defect_pixels += masks[p] > 0;
  const int64_t pos = out.defect_pixels, neg = total - pos;
  if (pos == 0 || neg == 0) {  // one class only: no curve is defined
    out.auroc = out.ap = out.f1_max = out.aupro = kNaN;
    return out;
  }

  // ---- one exact sort of (score, pixel) keys, ascending; the sweep walks it from the top ----
  // (eval::auroc and friends sort doubles with indices; here 8-byte keys keep 30 M pixels in
  // 240 MB and give all curves and the PRO in one pass.)
  std::vector<uint64_t> keys(static_cast<size_t>(total));
  for (int64_t p = 0; p < total; ++p) keys[size_t(p)] = (uint64_t(sortable_key(maps[p])) << 32) | uint64_t(p);
  parallel_sort(keys.begin(), keys.end());  // keys are distinct: the order does not depend on threads

  // ---- the sweep: one step per distinct score, highest first ----
  int64_t tp = 0, fp = 0;
  double pro_sum = 0;  // sum over regions of the share of their pixels at or above the score
  double prev_fpr = 0, prev_tpr = 0, prev_pro = 0;
  double auroc = 0, ap = 0, f1 = 0, aupro_area = 0;
  bool aupro_done = false;
  for (int64_t hi = total; hi > 0;) {
    const uint32_t score_key = uint32_t(keys[size_t(hi - 1)] >> 32);
    int64_t lo = hi;
    while (lo > 0 && uint32_t(keys[size_t(lo - 1)] >> 32) == score_key) {  // every pixel sharing the value
      const int64_t p = int64_t(keys[size_t(lo - 1)] & 0xffffffffu);
      if (masks[p] > 0) ++tp, pro_sum += 1.0 / double(region_size[size_t(region[size_t(p)])]);
      else ++fp;
      --lo;
    }
    hi = lo;
    const double fpr = double(fp) / double(neg), tpr = double(tp) / double(pos);
    const double pro = std::min(1.0, pro_sum / double(out.regions));
    auroc += (fpr - prev_fpr) * (tpr + prev_tpr) / 2;              // trapezoid; ties count one half
    ap += (tpr - prev_tpr) * (double(tp) / double(tp + fp));       // recall step x precision
    if (tp > 0) f1 = std::max(f1, 2.0 * double(tp) / double(2 * tp + fp + (pos - tp)));
    // AUPRO: the trapezoid under (FPR, PRO) up to fpr_limit, the last segment cut there with PRO
    // interpolated linearly.
    if (!aupro_done) {
      if (fpr <= fpr_limit) {
        aupro_area += (fpr - prev_fpr) * (pro + prev_pro) / 2;
      } else {
        const double cut = prev_pro + (pro - prev_pro) * (fpr_limit - prev_fpr) / (fpr - prev_fpr);
        aupro_area += (fpr_limit - prev_fpr) * (prev_pro + cut) / 2;
        aupro_done = true;
      }
    }
    prev_fpr = fpr, prev_tpr = tpr, prev_pro = pro;
  }
  // The curve ends at (1, 1) with every pixel flagged, so the limit (<= 1) is always reached.
  out.auroc = auroc, out.ap = ap, out.f1_max = f1;
  out.aupro = aupro_area / fpr_limit;
  return out;
}

std::vector<double> map_maxima(const float* maps, int64_t n, int64_t height, int64_t width) {
  const int64_t plane = height * width;
  check(plane >= 1, "map_maxima", "maps need at least one pixel");
  check_finite(maps, n * plane, "map_maxima");
  std::vector<double> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out[size_t(i)] = *std::max_element(maps + i * plane, maps + (i + 1) * plane);
  return out;
}

ImageMetrics image_metrics(const std::vector<double>& scores, const std::vector<int>& labels) {
  int64_t anomalous = 0;
  for (int l : labels) anomalous += l;
  if (anomalous == 0 || anomalous == int64_t(labels.size())) return {kNaN, kNaN, kNaN};
  return {auroc(scores, labels), average_precision(scores, labels), f1_max(scores, labels)};
}

ImageMetrics image_metrics(const float* maps, const float* masks, int64_t n, int64_t height, int64_t width) {
  const int64_t plane = height * width;
  std::vector<int> labels(static_cast<size_t>(n), 0);
  for (int64_t i = 0; i < n; ++i)
    labels[size_t(i)] = std::any_of(masks + i * plane, masks + (i + 1) * plane, [](float v) { return v > 0; });
  return image_metrics(map_maxima(maps, n, height, width), labels);
}

}  // namespace normad::eval
