// normad report: one self-contained HTML page from the results a normad command wrote with --json
// (eval, zeroshot, mvg eval): tables, inline SVG plots and embedded PNG images, with no JavaScript
// and nothing fetched over the network.
// Math: ROC and precision-recall points from eval::threshold_curve (the page's AUROC and AP are
// recomputed from the stored scores and must agree with the stored ones); histograms show the
// share of each class's scores per bin.
// Tested by tests/test_report.cpp (the page's parts for each kind of results, the curves' points,
// bad documents) and tests/report_chromium.sh (headless Chromium renders the page to a screenshot).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace normad::report {

// Which command wrote a results document: its "kind" field, or for documents written before
// there was one, "zeroshot" when it has "protocol" and "ratios". Anything else is an Error naming
// `source` and the kinds a report can show.
std::string results_kind(const std::string& results_json, const std::string& source);

// The HTML page for a results document (JSON text); `source` names it in the page and in errors.
// eval: metrics, ROC and PR curves, score histograms of normals and anomalies with the model's
// threshold (when the predictions are one threshold on the scores); zeroshot: the run's settings,
// per-ratio tables per fold, per-batch AUROCs of every method, learning curves where --eval-every
// recorded them; mvg eval: per-category AUROCs and ROC curves, and a grid of each category's
// highest-scored test images (with a heat-map overlay where an item carries a "map").
std::string render_html(const std::string& results_json, const std::string& source);

// An RGB image [H, W, 3] (bytes) as a PNG file's bytes (stb_image_write), and as a data: URL.
std::string png_bytes(const std::vector<uint8_t>& rgb, int64_t height, int64_t width);
std::string png_data_url(const std::vector<uint8_t>& rgb, int64_t height, int64_t width);

// A thumbnail of an image file, longer side `size` pixels, RGB bytes [h, w, 3]; with `map`
// ([map_h, map_w] values in [0, 1], any size) a heat map blended over it (resized bilinearly,
// colours blue (0), cyan, green, yellow, red (1), half opaque).
struct Thumbnail {
  int64_t height = 0, width = 0;
  std::vector<uint8_t> rgb;
};
// `crop` ({top, left, height, width} in the file's pixels, height 0: none) cuts the image first,
// for maps made on a crop of it (MVTec AD's 224 centre crop of the 256 resize).
struct CropBox {
  int64_t top = 0, left = 0, height = 0, width = 0;
};
Thumbnail thumbnail(const std::string& image_path, int64_t size, const std::vector<float>* map = nullptr,
                    int64_t map_h = 0, int64_t map_w = 0, const CropBox& crop = {});

// An anomaly-map overlay: `image` [3, H, W] 0..255 (planar) with `map` [H, W] (values in [0, 1])
// blended half over it in the colours above, and, with `mask` ([H, W], > 0 = defect), the
// ground truth's outline (defect pixels with a 4-neighbour outside the defect) drawn in white.
// Returns RGB bytes [H, W, 3].
std::vector<uint8_t> heat_overlay(const float* image, int64_t height, int64_t width, const float* map,
                                  const float* mask = nullptr);

}  // namespace normad::report
