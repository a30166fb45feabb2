// normad image decoding, resizing, cropping and normalisation (see data/image.h).
// Math: separable resampling out[o] = sum_k w[o, k] in[first[o] + k], weights precomputed once per
// axis (PIL's precompute_coeffs for the filtered modes), double accumulation, float storage.
// Tested by tests/test_images.cpp (closed forms and torch / PIL parity fixtures).
#include "data/image.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>

#include "tensor/parallel.h"

// stb_image's implementation lives in this file only; its own code trips -Wall -Wextra.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#define STB_IMAGE_IMPLEMENTATION
#define STBI_FAILURE_USERMSG  // "Corrupt PNG" rather than "bad IHDR len"-style codes where both exist
// PNG and BMP only. stb 2.27 (Debian 12's) overruns its buffers on crafted JPEG (a DHT segment
// with more than 256 codes: nothings/stb#1289, fixed in 2.28) and 16-bit PNM files
// (nothings/stb#1166), both found here by tests/fuzz/fuzz_image.cpp; JPEG goes to libjpeg-turbo
// (below), the other formats are refused.
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#include <stb_image.h>
#pragma GCC diagnostic pop

#include <jpeglib.h>
#include <jerror.h>

#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace normad::data {

// ---- decoding --------------------------------------------------------------------------------

namespace {

struct StbFree {
  void operator()(unsigned char* p) const { stbi_image_free(p); }
};

std::atomic<int64_t> g_max_image_pixels{kDefaultMaxImagePixels};

// ---- JPEG through libjpeg-turbo ----
// libjpeg reports errors through error_exit, which must not return: it longjmps back to the
// setjmp in jpeg_decode, whose frame holds no C++ object (a longjmp skips destructors). Warnings
// (corrupt or truncated data, which libjpeg would paint grey and go on) are errors here, like
// PIL's "image file is truncated".
struct JpegErrors {
  jpeg_error_mgr mgr;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};
void jpeg_fail(j_common_ptr c) {
  JpegErrors* e = reinterpret_cast<JpegErrors*>(c->err);
  (*c->err->format_message)(c, e->message);
  longjmp(e->jump, 1);
}
// Warnings that mean wrong pixels (truncated or corrupt entropy-coded data, which libjpeg would
// paint grey) are errors; harmless ones (extraneous bytes before a marker, an unknown JFIF
// revision, an odd progression) are ignored, as PIL ignores them.
void jpeg_message(j_common_ptr c, int level) {
  if (level >= 0) return;
  const int code = c->err->msg_code;
  if (code == JWRN_JPEG_EOF || code == JWRN_HIT_MARKER || code == JWRN_HUFF_BAD_CODE || code == JWRN_MUST_RESYNC ||
      code == JWRN_NOT_SEQUENTIAL)
    jpeg_fail(c);
}
// A progressive JPEG of thousands of tiny scans decodes for minutes: more than this many is an
// error (djpeg's -maxscans guard for untrusted input).
constexpr int kMaxJpegScans = 500;
void jpeg_scan_limit(j_common_ptr c) {
  if (reinterpret_cast<j_decompress_ptr>(c)->input_scan_number <= kMaxJpegScans) return;
  JpegErrors* e = reinterpret_cast<JpegErrors*>(c->err);
  std::snprintf(e->message, JMSG_LENGTH_MAX, "more than %d scans", kMaxJpegScans);
  longjmp(e->jump, 1);
}

struct JpegResult {
  unsigned char* pixels = nullptr;  // malloc'ed [h, w, channels]; null after a header-only read
  unsigned char* cmyk_row = nullptr;  // malloc'ed scratch row for CMYK files
  int h = 0, w = 0;
  bool too_large = false;  // the header declares more than max_pixels: nothing decoded
};

// stb's CMYK -> RGB for Adobe (inverted) CMYK: channel * K / 255, rounded as stbi__blinn_8x8.
unsigned char blinn(unsigned x, unsigned y) {
  const unsigned t = x * y + 128;
  return static_cast<unsigned char>((t + (t >> 8)) >> 8);
}

// Reads the header and, with channels 1 or 3, the pixels (grey or RGB; CMYK and YCCK files are
// converted as stb converts them) of the JPEG file f, unless the header declares more than
// max_pixels. Returns false with `message` on any error.
bool jpeg_decode(FILE* f, int channels, int64_t max_pixels, JpegResult* result, char* message) {
  jpeg_decompress_struct cinfo;
  JpegErrors errors;
  jpeg_progress_mgr progress{};
  cinfo.err = jpeg_std_error(&errors.mgr);
  errors.mgr.error_exit = jpeg_fail;
  errors.mgr.emit_message = jpeg_message;
  progress.progress_monitor = jpeg_scan_limit;
  if (setjmp(errors.jump)) {
    jpeg_destroy_decompress(&cinfo);
    std::free(result->pixels);
    std::free(result->cmyk_row);
    result->pixels = result->cmyk_row = nullptr;
    std::memcpy(message, errors.message, JMSG_LENGTH_MAX);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  cinfo.progress = &progress;
  jpeg_stdio_src(&cinfo, f);
  jpeg_read_header(&cinfo, TRUE);
  result->h = static_cast<int>(cinfo.image_height);
  result->w = static_cast<int>(cinfo.image_width);
  result->too_large = int64_t(result->h) * result->w > max_pixels;
  if (channels == 0 || result->too_large) {
    jpeg_destroy_decompress(&cinfo);
    return true;
  }
  const bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  cinfo.out_color_space = cmyk ? JCS_CMYK : channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(&cinfo);
  result->h = static_cast<int>(cinfo.output_height);
  result->w = static_cast<int>(cinfo.output_width);
  const size_t w = cinfo.output_width, row = w * size_t(channels);
  result->pixels = static_cast<unsigned char*>(std::malloc(row * cinfo.output_height));
  if (cmyk) result->cmyk_row = static_cast<unsigned char*>(std::malloc(4 * w));
  if (!result->pixels || (cmyk && !result->cmyk_row)) {
    std::snprintf(errors.message, JMSG_LENGTH_MAX, "out of memory");
    longjmp(errors.jump, 1);
  }
  while (cinfo.output_scanline < cinfo.output_height) {
    unsigned char* out = result->pixels + row * cinfo.output_scanline;
    JSAMPROW dst = cmyk ? result->cmyk_row : out;
    jpeg_read_scanlines(&cinfo, &dst, 1);
    if (!cmyk) continue;
    for (size_t x = 0; x < w; ++x) {
      const unsigned char* p = result->cmyk_row + 4 * x;
      const unsigned char r = blinn(p[0], p[3]), g = blinn(p[1], p[3]), b = blinn(p[2], p[3]);
      if (channels == 3) out[3 * x] = r, out[3 * x + 1] = g, out[3 * x + 2] = b;
      else out[x] = static_cast<unsigned char>((r * 77 + g * 150 + b * 29) >> 8);  // stbi__compute_y
    }
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  std::free(result->cmyk_row);
  result->cmyk_row = nullptr;
  return true;
}

bool is_jpeg(const std::string& path) {
  unsigned char magic[3] = {0, 0, 0};
  std::ifstream(path, std::ios::binary).read(reinterpret_cast<char*>(magic), 3);
  return magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF;
}

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};

void check_declared_size(const std::string& path, int w, int h);

// JPEG header or pixels (channels 0: the size only); an Error names the file and libjpeg's reason,
// or the pixel limit (checked on the header the pixels are decoded from).
JpegResult read_jpeg(const std::string& path, int channels) {
  std::unique_ptr<FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) throw Error(path + ": cannot open");
  JpegResult r;
  char message[JMSG_LENGTH_MAX] = {0};
  if (!jpeg_decode(f.get(), channels, channels ? max_image_pixels() : INT64_MAX, &r, message))
    throw Error(path + ": cannot decode image (JPEG: " + message + ")");
  if (r.too_large) check_declared_size(path, r.w, r.h);  // throws
  return r;
}

// The image's (width, height, ok) from its header: libjpeg for JPEG, stb for PNG and BMP.
bool header_size(const std::string& path, int* w, int* h, std::string* why) {
  if (is_jpeg(path)) {
    const JpegResult r = read_jpeg(path, 0);
    *w = r.w, *h = r.h;
    return true;
  }
  int n = 0;
  if (stbi_info(path.c_str(), w, h, &n)) {
    // stb 2.27 reports a top-down BMP's height as stored, negative (found by the fuzzer: the pixel
    // limit saw a negative size and let any such file through): the size is the magnitude.
    *w = std::abs(*w), *h = std::abs(*h);
    return true;
  }
  const char* reason = stbi_failure_reason();
  *why = reason ? reason : "unknown reason";
  if (*why == "Image not of any known type, or corrupt")
    *why = "not a PNG, JPEG or BMP file, or corrupt: normad decodes those three";
  return false;
}

// The header's size, checked against the limit before any pixel memory exists.
void check_declared_size(const std::string& path, int w, int h) {
  const int64_t pixels = int64_t(w) * h, limit = max_image_pixels();
  if (pixels > limit)
    throw Error(path + ": the image declares " + std::to_string(w) + " x " + std::to_string(h) + " = " +
                std::to_string(pixels) + " pixels, more than the limit of " + std::to_string(limit) +
                " (--max-image-pixels raises it)");
}

// Decodes `path` to `channels` (1 or 3) uint8 channels, interleaved [H, W, channels]: JPEG with
// libjpeg-turbo (as PIL does: grey is the Y channel), PNG and BMP with stb (grey <-> RGB
// converted, alpha dropped). stb's failure reason is thread-local in 2.27 (STBI_THREAD_LOCAL) and
// libjpeg keeps its state per call, so parallel loads are safe.
std::unique_ptr<unsigned char, StbFree> decode(const std::string& path, int channels, int* h, int* w) {
  if (!std::filesystem::is_regular_file(path)) throw Error(path + ": no such image file");
  std::string why;
  if (!header_size(path, w, h, &why)) throw Error(path + ": cannot decode image (" + why + ")");
  check_declared_size(path, *w, *h);
  if (is_jpeg(path)) {
    const JpegResult r = read_jpeg(path, channels);
    *h = r.h, *w = r.w;
    return std::unique_ptr<unsigned char, StbFree>(r.pixels);  // malloc'ed: stbi_image_free is free()
  }
  int n_in = 0;
  unsigned char* px = stbi_load(path.c_str(), w, h, &n_in, channels);
  if (!px) {
    const char* reason = stbi_failure_reason();
    throw Error(path + ": cannot decode image (" + std::string(reason ? reason : "unknown reason") + ")");
  }
  return std::unique_ptr<unsigned char, StbFree>(px);
}

}  // namespace

void set_max_image_pixels(int64_t pixels) {
  if (pixels < 1) throw Error("max image pixels must be >= 1, got " + std::to_string(pixels));
  g_max_image_pixels.store(pixels);
}
int64_t max_image_pixels() { return g_max_image_pixels.load(); }

Tensor load_image_rgb(const std::string& path) {
  int h = 0, w = 0;
  auto px = decode(path, 3, &h, &w);
  // interleaved HWC uint8 -> planar [3, H, W] float
  Tensor out = Tensor::empty({3, h, w});
  const int64_t hw = int64_t(h) * w;
  float* o = out.data();
  for (int64_t i = 0; i < hw; ++i)
    for (int c = 0; c < 3; ++c) o[c * hw + i] = px.get()[3 * i + c];
  return out;
}

Tensor load_image_gray(const std::string& path) {
  int h = 0, w = 0;
  auto px = decode(path, 1, &h, &w);
  Tensor out = Tensor::empty({h, w});
  for (int64_t i = 0; i < int64_t(h) * w; ++i) out.data()[i] = px.get()[i];
  return out;
}

std::pair<int64_t, int64_t> image_size_hw(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) throw Error(path + ": no such image file");
  int w = 0, h = 0;
  std::string why;
  if (!header_size(path, &w, &h, &why)) throw Error(path + ": cannot read image header (" + why + ")");
  return {h, w};
}

// ---- resampling weights ----------------------------------------------------------------------

namespace {

// Weights of one axis: output index o reads count[o] inputs from first[o] on, with weights
// w[o * taps + k]. Computed once per axis and reused for every row / column and channel.
struct AxisWeights {
  int64_t taps = 0;
  std::vector<int64_t> first, count;
  std::vector<double> w;
};

// PIL NEAREST (ImagingScaleAffine): src = int(x), x starting at scale / 2 and advanced by `scale`
// per output, in double, exactly as PIL accumulates it.
AxisWeights nearest_weights(int64_t in, int64_t out) {
  AxisWeights a;
  a.taps = 1;
  a.first.resize(out);
  a.count.assign(out, 1);
  a.w.assign(out, 1.0);
  const double scale = double(in) / double(out);
  double xo = scale * 0.5;
  for (int64_t o = 0; o < out; ++o) {
    a.first[o] = std::min<int64_t>(int64_t(xo), in - 1);
    xo += scale;
  }
  return a;
}

// OpenCV INTER_LINEAR / torch bilinear (align_corners=False, no antialias): half-pixel centres,
// source coordinate clamped at 0; at the last input pixel the second tap drops out. The coordinate
// stays in double (torch's float64 path); OpenCV and torch's float32 path round it to float, which
// moves a weight by up to ~1e-5 at 300-pixel sizes (0.004 grey levels).
AxisWeights bilinear_weights(int64_t in, int64_t out) {
  AxisWeights a;
  a.taps = 2;
  a.first.resize(out);
  a.count.resize(out);
  a.w.assign(out * 2, 0.0);
  const double scale = double(in) / double(out);
  for (int64_t o = 0; o < out; ++o) {
    double src = (o + 0.5) * scale - 0.5;
    if (src < 0.0) src = 0.0;
    const int64_t i0 = int64_t(std::floor(src));
    const double frac = src - double(i0);
    if (i0 >= in - 1) {  // right edge: the last pixel alone
      a.first[o] = in - 1;
      a.count[o] = 1;
      a.w[o * 2] = 1.0;
      continue;
    }
    a.first[o] = i0;
    a.count[o] = 2;
    a.w[o * 2] = 1.0 - frac;
    a.w[o * 2 + 1] = frac;
  }
  return a;
}

double triangle_filter(double x) {  // PIL bilinear_filter, support 1
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

double sinc(double x) {
  if (x == 0.0) return 1.0;
  x *= M_PI;
  return std::sin(x) / x;
}

double lanczos3_filter(double x) {  // PIL lanczos_filter, support 3
  return (-3.0 <= x && x < 3.0) ? sinc(x) * sinc(x / 3.0) : 0.0;
}

// PIL's precompute_coeffs (Resample.c): the kernel is stretched by the down-scale factor
// (filterscale = max(in/out, 1)), centred at (o + 0.5) * in/out, evaluated at input pixel centres
// and normalised to sum 1. torch's antialias=True path computes the same weights.
AxisWeights filtered_weights(int64_t in, int64_t out, double (*filter)(double), double support0) {
  AxisWeights a;
  const double scale = double(in) / double(out);
  const double filterscale = std::max(scale, 1.0);
  const double support = support0 * filterscale;
  a.taps = int64_t(std::ceil(support)) * 2 + 1;
  a.first.resize(out);
  a.count.resize(out);
  a.w.assign(out * a.taps, 0.0);
  const double ss = 1.0 / filterscale;
  for (int64_t o = 0; o < out; ++o) {
    const double center = (o + 0.5) * scale;
    // int() truncates toward zero as in PIL; negative values are clamped to 0 right after.
    int64_t xmin = int64_t(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int64_t xmax = int64_t(center + support + 0.5);
    if (xmax > in) xmax = in;
    const int64_t n = xmax - xmin;
    double* w = &a.w[o * a.taps];
    double total = 0.0;
    for (int64_t k = 0; k < n; ++k) {
      w[k] = filter((k + xmin - center + 0.5) * ss);
      total += w[k];
    }
    if (total != 0.0)
      for (int64_t k = 0; k < n; ++k) w[k] /= total;
    a.first[o] = xmin;
    a.count[o] = n;
  }
  return a;
}

AxisWeights axis_weights(int64_t in, int64_t out, ResizeFilter filter) {
  switch (filter) {
    case ResizeFilter::nearest: return nearest_weights(in, out);
    case ResizeFilter::bilinear: return bilinear_weights(in, out);
    case ResizeFilter::bilinear_aa: return filtered_weights(in, out, triangle_filter, 1.0);
    case ResizeFilter::lanczos: return filtered_weights(in, out, lanczos3_filter, 3.0);
  }
  throw Error("resize: unknown filter");
}

// Clamps every value to [lo, hi] (PIL's clip8 after each pass of an 8-bit resize).
void clamp_values(Tensor& t, float lo, float hi) {
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = std::clamp(t.data()[i], lo, hi);
}

// Along W: src [R, Win] rows -> dst [R, Wout] (R = C * H).
void resample_rows(float* dst, const float* src, int64_t rows, int64_t win, int64_t wout,
                   const AxisWeights& a) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = src + r * win;
    float* d = dst + r * wout;
    for (int64_t o = 0; o < wout; ++o) {
      const double* w = &a.w[o * a.taps];
      const float* x = s + a.first[o];
      double acc = 0.0;
      for (int64_t k = 0; k < a.count[o]; ++k) acc += x[k] * w[k];
      d[o] = float(acc);
    }
  }
}

// Along H: src [C, Hin, W] -> dst [C, Hout, W]; whole rows are accumulated so the inner loop runs
// along contiguous memory. Each output element sums its taps in the same order as PIL.
void resample_cols(float* dst, const float* src, int64_t channels, int64_t hin, int64_t hout,
                   int64_t w, const AxisWeights& a) {
  std::vector<double> acc(w);
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t o = 0; o < hout; ++o) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t k = 0; k < a.count[o]; ++k) {
        const double wk = a.w[o * a.taps + k];
        const float* row = src + (c * hin + a.first[o] + k) * w;
        for (int64_t x = 0; x < w; ++x) acc[x] += row[x] * wk;
      }
      float* d = dst + (c * hout + o) * w;
      for (int64_t x = 0; x < w; ++x) d[x] = float(acc[x]);
    }
  }
}

// Splits [C, H, W] or [H, W] into (C, H, W); `what` names the caller in errors.
void chw(const Tensor& img, const char* what, int64_t* c, int64_t* h, int64_t* w) {
  if (img.dim() == 3) {
    *c = img.size(0), *h = img.size(1), *w = img.size(2);
  } else if (img.dim() == 2) {
    *c = 1, *h = img.size(0), *w = img.size(1);
  } else {
    throw Error(std::string(what) + ": expected an image [C, H, W] or [H, W], got " +
                shape_str(img.shape()));
  }
  if (*h < 1 || *w < 1) throw Error(std::string(what) + ": empty image " + shape_str(img.shape()));
}

// The output shape for (c, h, w) in the rank of `img`.
Shape like(const Tensor& img, int64_t c, int64_t h, int64_t w) {
  return img.dim() == 3 ? Shape{c, h, w} : Shape{h, w};
}

}  // namespace

ResizeFilter parse_resize_filter(const std::string& name) {
  if (name == "nearest") return ResizeFilter::nearest;
  if (name == "bilinear") return ResizeFilter::bilinear;
  if (name == "bilinear-aa") return ResizeFilter::bilinear_aa;
  if (name == "lanczos") return ResizeFilter::lanczos;
  throw Error("resize filter '" + name + "' unknown (nearest, bilinear, bilinear-aa, lanczos)");
}

const char* resize_filter_name(ResizeFilter filter) {
  switch (filter) {
    case ResizeFilter::nearest: return "nearest";
    case ResizeFilter::bilinear: return "bilinear";
    case ResizeFilter::bilinear_aa: return "bilinear-aa";
    case ResizeFilter::lanczos: return "lanczos";
  }
  return "?";
}

Tensor resize(const Tensor& img, int64_t out_h, int64_t out_w, ResizeFilter filter, bool clamp_8bit) {
  int64_t c, h, w;
  chw(img, "resize", &c, &h, &w);
  if (out_h < 1 || out_w < 1)
    throw Error("resize: output size " + std::to_string(out_h) + "x" + std::to_string(out_w) +
                " must be at least 1x1");
  Tensor cur = img;
  // W first, then H, as PIL's ImagingResampleInner; an unchanged axis is skipped (PIL does too).
  if (out_w != w) {
    Tensor next = Tensor::empty(like(img, c, h, out_w));
    resample_rows(next.data(), cur.data(), c * h, w, out_w, axis_weights(w, out_w, filter));
    if (clamp_8bit) clamp_values(next, 0.f, 255.f);
    cur = next;
  }
  if (out_h != h) {
    Tensor next = Tensor::empty(like(img, c, out_h, out_w));
    resample_cols(next.data(), cur.data(), c, h, out_h, out_w, axis_weights(h, out_h, filter));
    if (clamp_8bit) clamp_values(next, 0.f, 255.f);
    cur = next;
  }
  return cur.same_storage(img) ? img.clone() : cur;
}

std::pair<int64_t, int64_t> shorter_side_size(int64_t h, int64_t w, int64_t s) {
  if (h < 1 || w < 1 || s < 1)
    throw Error("resize shorter side: sizes must be positive (image " + std::to_string(h) + "x" +
                std::to_string(w) + ", side " + std::to_string(s) + ")");
  // torchvision _compute_resized_output_size: new_long = int(size * long / short) in Python floats.
  const int64_t shorter = std::min(h, w), longer = std::max(h, w);
  const int64_t new_long = int64_t(double(s) * double(longer) / double(shorter));
  return w <= h ? std::pair{new_long, s} : std::pair{s, new_long};
}

Tensor resize_shorter_side(const Tensor& img, int64_t s, ResizeFilter filter, bool clamp_8bit) {
  int64_t c, h, w;
  chw(img, "resize shorter side", &c, &h, &w);
  auto [oh, ow] = shorter_side_size(h, w, s);
  return resize(img, oh, ow, filter, clamp_8bit);
}

std::pair<int64_t, int64_t> center_crop_offset(int64_t h, int64_t w, int64_t ch, int64_t cw) {
  if (ch < 1 || cw < 1 || ch > h || cw > w)
    throw Error("center crop " + std::to_string(ch) + "x" + std::to_string(cw) +
                " does not fit the image " + std::to_string(h) + "x" + std::to_string(w));
  // Python's round(): ties to even; std::nearbyint does the same in the default rounding mode.
  return {int64_t(std::nearbyint((h - ch) / 2.0)), int64_t(std::nearbyint((w - cw) / 2.0))};
}

Tensor center_crop(const Tensor& img, int64_t ch, int64_t cw) {
  int64_t c, h, w;
  chw(img, "center crop", &c, &h, &w);
  auto [top, left] = center_crop_offset(h, w, ch, cw);
  Tensor out = Tensor::empty(like(img, c, ch, cw));
  for (int64_t k = 0; k < c; ++k)
    for (int64_t y = 0; y < ch; ++y)
      std::copy_n(img.data() + (k * h + top + y) * w + left, cw, out.data() + (k * ch + y) * cw);
  return out;
}

namespace {
const float kImagenetMean[3] = {0.485f, 0.456f, 0.406f}, kImagenetStd[3] = {0.229f, 0.224f, 0.225f};
}  // namespace

Tensor imagenet_denormalize(const Tensor& img) {
  check(img.dim() == 3 && img.size(0) == 3, "imagenet_denormalize", "expected an RGB image [3, H, W], got " + shape_str(img.shape()));
  Tensor out = Tensor::empty(img.shape());
  const int64_t hw = img.size(1) * img.size(2);
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t i = 0; i < hw; ++i)
      out.data()[c * hw + i] = std::clamp((img.data()[c * hw + i] * kImagenetStd[c] + kImagenetMean[c]) * 255.f, 0.f, 255.f);
  return out;
}

Tensor imagenet_normalize(const Tensor& img) {
  if (img.dim() != 3 || img.size(0) != 3)
    throw Error("imagenet normalisation: expected an RGB image [3, H, W], got " +
                shape_str(img.shape()));
  const float* mean = kImagenetMean;
  const float* stdev = kImagenetStd;
  Tensor out = Tensor::empty(img.shape());
  const int64_t hw = img.size(1) * img.size(2);
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t i = 0; i < hw; ++i)
      out.data()[c * hw + i] = (img.data()[c * hw + i] / 255.f - mean[c]) / stdev[c];
  return out;
}

// ---- preprocessing pipelines -----------------------------------------------------------------

void ImagePrep::validate() const {
  if (size < 1) throw Error("image prep: size must be >= 1, got " + std::to_string(size));
  if (crop < 0) throw Error("image prep: crop must be >= 0 (0: none), got " + std::to_string(crop));
  if (crop > size)
    throw Error("image prep: crop " + std::to_string(crop) + " is larger than size " +
                std::to_string(size));
  parse_resize_filter(filter);
}

ImagePrep ImagePrep::gaussian_ad(int size) {
  return ImagePrep{.size = size, .crop = 0, .filter = "bilinear", .shorter_side = false};
}

ImagePrep ImagePrep::acr_mvtec() {
  return ImagePrep{.size = 256, .crop = 224, .filter = "lanczos", .shorter_side = true};
}

std::pair<int64_t, int64_t> prep_output_size(int64_t h, int64_t w, const ImagePrep& prep) {
  prep.validate();
  if (prep.crop > 0) return {prep.crop, prep.crop};  // crop <= size <= both resized sides
  return prep.shorter_side ? shorter_side_size(h, w, prep.size)
                           : std::pair<int64_t, int64_t>{prep.size, prep.size};
}

namespace {
// Resize by the rule of `prep` with `filter` (values clamped to 0..255 after each pass, as for
// the 8-bit images of the reference pipelines), then the centre crop.
Tensor resize_and_crop(const Tensor& img, const ImagePrep& prep, ResizeFilter filter) {
  int64_t c, h, w;
  chw(img, "preprocess", &c, &h, &w);
  auto [rh, rw] = prep.shorter_side ? shorter_side_size(h, w, prep.size)
                                    : std::pair<int64_t, int64_t>{prep.size, prep.size};
  Tensor out = resize(img, rh, rw, filter, /*clamp_8bit=*/true);
  if (prep.crop > 0) out = center_crop(out, prep.crop, prep.crop);
  return out;
}
}  // namespace

Tensor preprocess_image(const Tensor& img, const ImagePrep& prep) {
  prep.validate();
  if (img.dim() != 3 || img.size(0) != 3)
    throw Error("preprocess: expected an RGB image [3, H, W], got " + shape_str(img.shape()));
  return imagenet_normalize(resize_and_crop(img, prep, parse_resize_filter(prep.filter)));
}

Tensor load_preprocessed(const std::string& path, const ImagePrep& prep) {
  prep.validate();
  return preprocess_image(load_image_rgb(path), prep);
}

namespace {

// n images prepared in parallel by prepare(i) -> [n, 3, Ho, Wo]; name(i) names image i in errors.
// `none` is the error for n = 0.
Tensor prepared_batch(int64_t n, const ImagePrep& prep, const std::function<Tensor(int64_t)>& prepare,
                      const std::function<std::string(int64_t)>& name, const char* none) {
  prep.validate();
  if (n == 0) throw Error(none);
  // In parallel; errors are kept per image and the first in list order is raised, so the message
  // does not depend on scheduling.
  std::vector<Tensor> images(n);
  std::vector<std::string> errors(n);
  parallel_for(n, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      try {
        images[i] = prepare(i);
      } catch (const std::exception& ex) {
        errors[i] = ex.what();
      }
    }
  });
  for (int64_t i = 0; i < n; ++i)
    if (!errors[i].empty()) throw Error(errors[i]);
  const Shape one = images[0].shape();  // [3, Ho, Wo]
  for (int64_t i = 1; i < n; ++i)
    if (images[i].shape() != one)
      throw Error(name(i) + ": preprocessed to " + shape_str(images[i].shape()) + " but " +
                  name(0) + " to " + shape_str(one) + " (use a crop or an S x S resize)");
  Tensor out = Tensor::empty({n, one[0], one[1], one[2]});
  const int64_t per = images[0].numel();
  for (int64_t i = 0; i < n; ++i) std::copy_n(images[i].data(), per, out.data() + i * per);
  return out;
}

}  // namespace

Tensor load_batch(const std::vector<std::string>& paths, const ImagePrep& prep) {
  return prepared_batch(
      int64_t(paths.size()), prep, [&](int64_t i) { return load_preprocessed(paths[size_t(i)], prep); },
      [&](int64_t i) { return paths[size_t(i)]; }, "load_batch: no image paths");
}

Tensor preprocess_batch(const std::vector<Tensor>& images, const ImagePrep& prep) {
  auto name = [](int64_t i) { return "image " + std::to_string(i); };
  return prepared_batch(
      int64_t(images.size()), prep,
      [&](int64_t i) {
        const Tensor& img = images[size_t(i)];
        if (img.dim() != 3 || img.size(0) != 3)
          throw Error(name(i) + " has shape " + shape_str(img.shape()) + ", expected [3, H, W] RGB 0..255");
        return preprocess_image(img.to(Device::CPU), prep);
      },
      name, "preprocess_batch: no images");
}

Tensor load_mask(const std::string& path, const ImagePrep& prep) {
  prep.validate();
  Tensor m = resize_and_crop(load_image_gray(path), prep, ResizeFilter::nearest);
  for (int64_t i = 0; i < m.numel(); ++i) m.data()[i] = m.data()[i] > 0.f ? 1.f : 0.f;
  return m;
}

}  // namespace normad::data
