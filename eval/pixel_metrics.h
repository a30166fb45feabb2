// Pixel- and image-level metrics of anomaly maps (../shared/specs/pixel_metrics.md, MVTec AD's
// conventions): pixel AUROC, AP and F1-max over every pixel of a class's test images pooled, the
// per-region overlap curve (PRO) and its normalised area up to FPR 0.3 (AUPRO), and the image
// metrics of each map's maximum.
// Math: sweep the pooled scores from high to low, one step per distinct value; at each step
// TP, FP (defect / normal pixels at or above it), FPR = FP / #normal, TPR = TP / #defect,
// P = TP / (TP + FP); AUROC = trapezoid area under (FPR, TPR); AP = sum (R_k - R_k-1) P_k;
// F1-max = max 2PR / (P + R); PRO = (1/K) sum_k |C_k at or above| / |C_k| over the K 8-connected
// components of the masks; AUPRO = (1/0.3) * trapezoid area of (FPR, PRO) from 0 to 0.3.
// Memory: exact, no binning: one sort of 8-byte keys (float32 score, pixel index) per pixel, plus
// 4 bytes of region id per pixel (about 12 bytes per pixel, 100 MB for 8 M pixels).
// Tested by tests/test_pixel_metrics.cpp against tests/make_pixel_fixtures.py (scikit-learn's
// curves, scipy.ndimage.label's components, AUPRO from the definition) and hand-made cases.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace normad::eval {

// Connected components of one mask [H, W] (value > 0 = defect) with 8-connectivity (a 3x3
// structuring element of ones, scipy.ndimage.label's structure=np.ones((3, 3))) or, with
// eight = false, 4-connectivity. Writes 0 for background and 1..K to `labels` [H, W] in the order
// of each component's first pixel in row-major order; returns K.
int64_t label_regions(const float* mask, int64_t height, int64_t width, int32_t* labels, bool eight = true);

struct PixelMetrics {
  double auroc = 0, ap = 0, f1_max = 0;
  double aupro = 0;  // NaN when the masks hold no defect pixel (no region: PRO is undefined)
  int64_t pixels = 0, defect_pixels = 0, regions = 0;
};

// Maps and masks of N images of H x W, row-major [N, H, W]. Scores must be finite (an Error
// otherwise); a mask pixel > 0 is a defect. With no defect pixel (or no normal pixel) AUROC, AP,
// F1-max and AUPRO are NaN: undefined, never 0 or 1. `fpr_limit` is the AUPRO integration bound.
PixelMetrics pixel_metrics(const float* maps, const float* masks, int64_t n, int64_t height, int64_t width,
                           double fpr_limit = 0.3);

struct ImageMetrics {
  double auroc = 0, ap = 0, f1_max = 0;  // NaN unless both good and defective images are present
};
// Image score = the maximum of its map; label = its mask has a defect pixel.
ImageMetrics image_metrics(const float* maps, const float* masks, int64_t n, int64_t height, int64_t width);
// The same from image scores and labels (0 good, 1 defective) given directly.
ImageMetrics image_metrics(const std::vector<double>& scores, const std::vector<int>& labels);
// Each [H, W] map's maximum, for n maps [n, H, W].
std::vector<double> map_maxima(const float* maps, int64_t n, int64_t height, int64_t width);

// The seven figures of a category in acr.md §14.1's column order: their JSON key (normad zeroshot
// --mvtec, the report) and their column name.
struct FigureName {
  const char* key;
  const char* label;
};
inline constexpr std::array<FigureName, 7> kSegmentationFigures = {{{"image_auroc", "image AUROC"},
                                                                    {"image_f1_max", "image F1-max"},
                                                                    {"image_ap", "image AP"},
                                                                    {"pixel_auroc", "pixel AUROC"},
                                                                    {"pixel_f1_max", "pixel F1-max"},
                                                                    {"pixel_ap", "pixel AP"},
                                                                    {"aupro", "AUPRO (FPR 0.3)"}}};
// A category's figures in that order.
inline std::array<double, 7> segmentation_figures(const ImageMetrics& image, const PixelMetrics& pixel) {
  return {image.auroc, image.f1_max, image.ap, pixel.auroc, pixel.f1_max, pixel.ap, pixel.aupro};
}

}  // namespace normad::eval
