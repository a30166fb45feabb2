// normad image input: decoding (stb_image: PNG, BMP; libjpeg-turbo: JPEG), resizing with the filters of the
// reference pipelines, centre crop and ImageNet normalisation, one image or a batch.
// Math: out[o] = sum_k w[o, k] * in[first[o] + k] along W, then along H (separable), with
//   bilinear     OpenCV / torch (align_corners=False): src = (o + 0.5) * in/out - 0.5 clamped at 0,
//                two taps (1 - frac, frac), no antialiasing;
//   bilinear-aa  PIL BILINEAR / torch antialias=True: triangle filter, support 1 * max(in/out, 1);
//   lanczos      PIL LANCZOS: sinc(x) sinc(x/3) on |x| < 3, support 3 * max(in/out, 1);
//   nearest      PIL NEAREST: src = floor((o + 0.5) * in/out).
// Tested by tests/test_images.cpp: decoding of files written with stb_image_write, closed forms
// (constant images, ramps, crop offsets) and parity with torch F.interpolate and PIL
// Image.resize on float images (tests/make_fixtures.py, family "resize").
//
// Shape legend: N batch, C channels, H, W spatial (input), Ho, Wo (output), S side length.
//
// Which preprocessing matches which paper (ImagePrep presets below):
//   Gaussian-AD, official code (gaussian_ad.md §3): OpenCV read, albumentations Resize to S x S with
//     INTER_LINEAR ("bilinear"), S the backbone's native size (B4 380, ResNets 224), no crop.
//   MahalanobisAD-pytorch (byungjae89, the re-implementation quoted in gaussian_ad.md §10):
//     torchvision Resize(256, Image.ANTIALIAS) + CenterCrop(224) on PIL images. Image.ANTIALIAS
//     is PIL's LANCZOS, so this is "lanczos" with shorter_side 256 and crop 224, like ACR.
//   ACR on MVTec AD (acr.md §7.5): PIL Lanczos, shorter side 256, centre crop 224 ("lanczos").
//   torchvision transforms.Resize on PIL images with its default interpolation is "bilinear-aa".
//
// Remaining differences to the references (measured in tests/test_images.cpp):
//   - PIL and OpenCV resample 8-bit images in fixed point and round to integers 0..255 after
//     every pass (PIL: after the horizontal and after the vertical pass); normad resamples in
//     float with double accumulation (PIL's own algorithm for mode "F" images) and in the
//     preprocessing pipeline clamps to 0..255 after each pass but does not round. Against
//     torchvision + PIL on a noisy 300x320 PNG: Lanczos max 1.14 / mean 0.31 grey levels,
//     bilinear-aa max 0.99 / mean 0.30. OpenCV's 8-bit INTER_LINEAR (11-bit fixed-point weights,
//     rounded output) was not measured (no cv2 here); expect at most about half a grey level.
//   - JPEG is decoded by libjpeg-turbo, as PIL does (bit-identical on the RGB and CMYK fixtures of
//     tests/test_images.cpp); PNG and BMP decode bit-exactly.
//   - 16-bit PNGs are reduced to 8 bits by stb (value >> 8).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace normad::data {

// ---- decoding --------------------------------------------------------------------------------

// The largest image (width x height) decoded before anything is allocated for it: PIL's
// MAX_IMAGE_PIXELS (89 478 485, about 0.25 GiB of 8-bit RGB; the float tensor is 4x that). A file
// declaring more is an error naming its size and the limit, not a many-GB allocation (a 945 KB
// PNG can declare 18000 x 18000). The CLI's --max-image-pixels raises it for real large images.
constexpr int64_t kDefaultMaxImagePixels = 89478485;
void set_max_image_pixels(int64_t pixels);  // >= 1; process-wide
int64_t max_image_pixels();

// Decodes an image file to [3, H, W] floats 0..255 (RGB). Grayscale and grey+alpha become three
// equal channels; alpha is dropped. A missing, unreadable or malformed file throws normad::Error
// naming the file and stb's reason.
Tensor load_image_rgb(const std::string& path);
// Decodes to one channel [H, W] 0..255 (colour files: stb's luma (77 R + 150 G + 29 B) >> 8).
Tensor load_image_gray(const std::string& path);
// Width and height from the file header without decoding; throws like load_image_rgb.
std::pair<int64_t, int64_t> image_size_hw(const std::string& path);  // (H, W)

// ---- resizing --------------------------------------------------------------------------------

enum class ResizeFilter { nearest, bilinear, bilinear_aa, lanczos };

// "nearest", "bilinear", "bilinear-aa", "lanczos"; anything else throws listing these.
ResizeFilter parse_resize_filter(const std::string& name);
const char* resize_filter_name(ResizeFilter filter);

// Resizes [C, H, W] (or [H, W]) to [C, out_h, out_w]: the W axis first, then H (PIL's order).
// An axis whose size does not change is left untouched, so equal sizes return a copy.
// Example: resize(x [3, 900, 900], 256, 256, ResizeFilter::lanczos) -> [3, 256, 256].
Tensor resize(const Tensor& img,           // [C, H, W] or [H, W]
              int64_t out_h,               // Ho >= 1
              int64_t out_w,               // Wo >= 1
              ResizeFilter filter,         // see the file header
              bool clamp_8bit = false);    // clamp to 0..255 after each pass, as PIL on 8-bit images

// torchvision Resize(S) on an H x W image: the shorter side becomes S and the longer side
// int(S * long / short) (truncated). Returns (Ho, Wo).
std::pair<int64_t, int64_t> shorter_side_size(int64_t h, int64_t w, int64_t s);
Tensor resize_shorter_side(const Tensor& img, int64_t s, ResizeFilter filter, bool clamp_8bit = false);

// torchvision CenterCrop offsets: top = round((H - ch) / 2), left = round((W - cw) / 2), with
// Python's round (half to even). Returns (top, left); the crop must fit (ch <= H, cw <= W).
std::pair<int64_t, int64_t> center_crop_offset(int64_t h, int64_t w, int64_t ch, int64_t cw);
Tensor center_crop(const Tensor& img,  // [C, H, W] or [H, W]
                   int64_t ch,         // crop height <= H
                   int64_t cw);        // crop width <= W

// ---- normalisation ---------------------------------------------------------------------------

// x / 255, minus ImageNet mean (0.485, 0.456, 0.406), divided by std (0.229, 0.224, 0.225),
// per channel of a [3, H, W] image with values 0..255. Returns a new tensor.
Tensor imagenet_normalize(const Tensor& img);
// The inverse, back to 0..255 (clamped): what a prepared image looks like, for overlays.
Tensor imagenet_denormalize(const Tensor& img);

// ---- preprocessing pipelines -----------------------------------------------------------------

// Decode -> resize (clamped to 0..255 after each pass, like PIL's 8-bit resize; only Lanczos can
// overshoot) -> centre crop -> ImageNet normalisation.
struct ImagePrep {
  int size = 224;                   // S: output side (S x S), or the shorter side if shorter_side
  int crop = 0;                     // centre crop to crop x crop after resizing; 0: no crop
  std::string filter = "bilinear";  // "bilinear", "bilinear-aa", "lanczos" or "nearest"
  bool shorter_side = false;        // false: resize to S x S (aspect not kept); true: torchvision Resize(S)

  // Throws naming the field: size < 1, crop < 0, crop > size, an unknown filter name.
  void validate() const;

  // Gaussian-AD official code: bilinear S x S, no crop (S = 380 for EfficientNet-B4, 224 ResNets).
  static ImagePrep gaussian_ad(int size);
  // ACR on MVTec AD and MahalanobisAD-pytorch: Lanczos, shorter side 256, centre crop 224.
  static ImagePrep acr_mvtec();
};

// Output (Ho, Wo) of `prep` for an H x W input (validates prep). Without a crop and with
// shorter_side, non-square inputs give non-square outputs.
std::pair<int64_t, int64_t> prep_output_size(int64_t h, int64_t w, const ImagePrep& prep);

// The pipeline on a decoded [3, H, W] 0..255 image -> [3, Ho, Wo] normalised.
Tensor preprocess_image(const Tensor& img, const ImagePrep& prep);
// load_image_rgb + preprocess_image.
Tensor load_preprocessed(const std::string& path, const ImagePrep& prep);
// N files decoded in parallel (oneTBB, one image per task; the result does not depend on the
// thread count) -> [N, 3, Ho, Wo]. Every image must give the same (Ho, Wo); otherwise, and on a
// decoding error, throws naming the first offending file in list order.
Tensor load_batch(const std::vector<std::string>& paths, const ImagePrep& prep);
// The same on decoded images, each [3, H, W] RGB 0..255 (load_image_rgb's form): errors name
// "image i" (a wrong shape, prepared sizes that differ).
Tensor preprocess_batch(const std::vector<Tensor>& images, const ImagePrep& prep);

// A ground-truth mask: decoded to grey, resized with nearest neighbour by the same size rule as
// the images (filter ignored), the same centre crop, then 1 where the grey value is > 0 and 0
// elsewhere -> [Ho, Wo]. Masks must be stored losslessly (PNG/BMP): JPEG noise would count as defect.
Tensor load_mask(const std::string& path, const ImagePrep& prep);

}  // namespace normad::data
