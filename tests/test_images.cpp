// Image input tests: decoding of PNG / BMP / JPEG files written here with stb_image_write, the
// MVTec AD and Folder layouts on generated trees, closed forms for the resizers, and parity with
// torch F.interpolate and PIL Image.resize (fixture family "resize" of tests/make_fixtures.py).
// Tolerances: PNG and BMP decode exactly; JPEG (quality 100, no chroma subsampling) within 4 grey
// levels; resize parity |got - ref| <= 1e-4 grey levels (4e-7 of the 0..255 range; measured
// 1.5e-5 = one float32 ulp for bilinear and bilinear-aa, 0 for lanczos and nearest); the end-to-end
// pipelines against torchvision on PIL images within 1.5 grey levels per pixel and 0.4 on average
// (PIL rounds to integers after each pass; measured 1.14 / 0.31 for Lanczos, 0.99 / 0.30 for
// bilinear-aa), and against torch's float64 bilinear within 1e-3 grey levels.
//
// Shapes: C channels, H, W spatial, N images.
#include <cstring>
#include <fstream>

#include "data/image.h"
#include "data/image_sets.h"
#include "nn/safetensors.h"
#include "tensor/parallel.h"
#include "tests/helpers.h"
#include "tests/image_files.h"


using namespace normad;
using normad::test::expect_close;
using normad::test::Fmt;
using normad::test::pattern;
using normad::test::write_image;
namespace fs = std::filesystem;

namespace {

// A fresh, empty directory for one test case (test cases may run in parallel under ctest).
std::string fresh_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("normad_test_images_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

// A small RGB PNG of the pattern (content irrelevant for the layout tests).
void touch_png(const std::string& path, int side = 16) { write_image(path, side, side, 3, pattern(side, side, 3)); }

// A grey mask side x side: 255 on the left half, 0 on the right.
void write_mask(const std::string& path, int side = 16) {
  std::vector<unsigned char> px(size_t(side) * side);
  for (int y = 0; y < side; ++y)
    for (int x = 0; x < side; ++x) px[size_t(y) * side + x] = x < side / 2 ? 255 : 0;
  write_image(path, side, side, 1, px);
}

void write_text(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

// Value of channel c at (y, x) of a [C, H, W] tensor.
float at(const Tensor& t, int64_t c, int64_t y, int64_t x) {
  return t.data()[(c * t.size(1) + y) * t.size(2) + x];
}

std::vector<std::string> names(const std::vector<data::ImageItem>& items) {
  std::vector<std::string> out;
  for (const auto& it : items) out.push_back(it.name);
  return out;
}

// The resize cases tests/make_fixtures.py (make_resize) writes.
constexpr int kResizeCases = 6;
// "r0", "r1", ...: the resize fixture's cases (built with += : GCC 12 warns falsely on "r" + string).
std::string case_prefix(int i) {
  std::string p = "r";
  p += std::to_string(i);
  return p;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, double(std::fabs(a.data()[i] - b.data()[i])));
  return m;
}

}  // namespace

// ---- decoding --------------------------------------------------------------------------------

TEST_CASE("image: PNG and BMP decode exactly, JPEG closely, grey gives three equal channels", "[image]") {
  const std::string dir = fresh_dir("decode");
  const int h = 5, w = 7;
  const auto rgb = pattern(h, w, 3);
  for (Fmt fmt : {Fmt::png, Fmt::bmp}) {
    const std::string p = dir + (fmt == Fmt::png ? "/rgb.png" : "/rgb.bmp");
    write_image(p, h, w, 3, rgb, fmt);
    Tensor t = data::load_image_rgb(p);
    REQUIRE(t.shape() == Shape{3, h, w});
    int bad = 0;
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        for (int c = 0; c < 3; ++c) bad += at(t, c, y, x) != rgb[(size_t(y) * w + x) * 3 + c];
    INFO(p);
    CHECK(bad == 0);
  }
  // grey, grey + alpha and RGBA: three equal channels / alpha dropped
  const auto grey = pattern(h, w, 1);
  write_image(dir + "/grey.png", h, w, 1, grey);
  write_image(dir + "/grey_alpha.png", h, w, 2, pattern(h, w, 2));
  write_image(dir + "/rgba.png", h, w, 4, pattern(h, w, 4));
  Tensor g = data::load_image_rgb(dir + "/grey.png");
  Tensor ga = data::load_image_rgb(dir + "/grey_alpha.png");
  Tensor ra = data::load_image_rgb(dir + "/rgba.png");
  REQUIRE(g.shape() == Shape{3, h, w});
  int bad = 0;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        const float v = grey[size_t(y) * w + x];  // the pattern's channel 0 is the same in every file
        bad += at(g, c, y, x) != v;
        bad += at(ga, c, y, x) != v;
        bad += at(ra, c, y, x) != rgb[(size_t(y) * w + x) * 3 + c];
      }
  CHECK(bad == 0);
  Tensor g1 = data::load_image_gray(dir + "/grey.png");
  CHECK(g1.shape() == Shape{h, w});
  CHECK(g1.data()[3] == grey[3]);

  // JPEG of a smooth image at quality 100 (stb writes no chroma subsampling above 90)
  const int jh = 16, jw = 24;
  std::vector<unsigned char> smooth(size_t(jh) * jw * 3);
  for (int y = 0; y < jh; ++y)
    for (int x = 0; x < jw; ++x)
      for (int c = 0; c < 3; ++c) smooth[(size_t(y) * jw + x) * 3 + c] = 40 + 5 * x + 3 * y + 20 * c;
  write_image(dir + "/smooth.jpg", jh, jw, 3, smooth, Fmt::jpg);
  Tensor j = data::load_image_rgb(dir + "/smooth.jpg");
  REQUIRE(j.shape() == Shape{3, jh, jw});
  double worst = 0;
  for (int y = 0; y < jh; ++y)
    for (int x = 0; x < jw; ++x)
      for (int c = 0; c < 3; ++c)
        worst = std::max(worst, double(std::fabs(at(j, c, y, x) - smooth[(size_t(y) * jw + x) * 3 + c])));
  INFO("JPEG max abs error " << worst << " grey levels");
  CHECK(worst <= 4);
}

TEST_CASE("image: JPEG decodes through libjpeg, and formats other than PNG, JPEG and BMP are refused", "[image]") {
  // stb 2.27 overran its buffers on crafted JPEG (a DHT segment of more than 256 codes) and 16-bit
  // PNM files; the fuzzer's inputs are in tests/fuzz/regressions/fuzz_image/. JPEG now goes to
  // libjpeg-turbo, and stb is built for PNG and BMP only.
  const std::string dir = fresh_dir("formats");
  const int h = 12, w = 20;
  std::vector<unsigned char> smooth(size_t(h) * w * 3), grey(size_t(h) * w);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      for (int c = 0; c < 3; ++c) smooth[(size_t(y) * w + x) * 3 + c] = 30 + 6 * x + 4 * y + 25 * c;
      grey[size_t(y) * w + x] = 50 + 7 * x + 3 * y;
    }
  write_image(dir + "/rgb.jpg", h, w, 3, smooth, Fmt::jpg);
  write_image(dir + "/grey.jpg", h, w, 1, grey, Fmt::jpg);
  // A grey JPEG gives three equal channels; a colour JPEG read as grey is its Y (luma) channel.
  const Tensor g3 = data::load_image_rgb(dir + "/grey.jpg"), y1 = data::load_image_gray(dir + "/rgb.jpg");
  REQUIRE(g3.shape() == Shape{3, h, w});
  REQUIRE(y1.shape() == Shape{h, w});
  CHECK(data::image_size_hw(dir + "/rgb.jpg") == std::pair<int64_t, int64_t>{h, w});
  double worst_grey = 0, worst_luma = 0;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const size_t i = size_t(y) * w + x;
      for (int c = 0; c < 3; ++c) worst_grey = std::max(worst_grey, double(std::fabs(at(g3, c, y, x) - grey[i])));
      const double luma = 0.299 * smooth[3 * i] + 0.587 * smooth[3 * i + 1] + 0.114 * smooth[3 * i + 2];
      worst_luma = std::max(worst_luma, std::fabs(y1.data()[i] - luma));
    }
  CHECK(worst_grey <= 3);
  CHECK(worst_luma <= 4);
  // A JPEG cut short is an error (libjpeg's warning), not an image padded with grey.
  {
    std::ifstream in(dir + "/rgb.jpg", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(dir + "/cut.jpg", std::ios::binary) << bytes.substr(0, bytes.size() * 2 / 3);
  }
  CHECK_THROWS_WITH(data::load_image_rgb(dir + "/cut.jpg"), Catch::Contains(dir + "/cut.jpg") && Catch::Contains("JPEG"));
  // PNM (8 and 16 bit) and GIF files: refused, naming the file and the formats normad reads.
  std::ofstream(dir + "/p8.ppm", std::ios::binary) << "P6\n2 1\n255\n" << std::string(6, '\x7f');
  std::ofstream(dir + "/p16.ppm", std::ios::binary) << "P6\n2 1\n65535\n" << std::string(12, '\x7f');
  std::ofstream(dir + "/a.gif", std::ios::binary) << "GIF89a" << std::string(20, '\0');
  for (const std::string name : {"p8.ppm", "p16.ppm", "a.gif"}) {
    INFO(name);
    CHECK_THROWS_WITH(data::load_image_rgb(dir + "/" + name),
                      Catch::Contains(dir + "/" + name) && Catch::Contains("not a PNG, JPEG or BMP file"));
    CHECK_THROWS_WITH(data::image_size_hw(dir + "/" + name), Catch::Contains("not a PNG, JPEG or BMP file"));
  }
}

TEST_CASE("image: JPEG decodes as PIL decodes it, CMYK files included", "[image]") {
  // Both use libjpeg-turbo; PIL converts Adobe CMYK to RGB as stb did (channel x K / 255).
  const std::string rgb = test::fixture("jpeg_rgb.jpg"), cmyk = test::fixture("jpeg_cmyk.jpg");
  const std::string fx_path = test::fixture("resize.safetensors");
  if (rgb.empty() || cmyk.empty() || fx_path.empty()) return;  // skip_or_fail reported the missing file
  const nn::Safetensors fx = nn::load_safetensors(fx_path);
  for (const auto& [path, key] : {std::pair<std::string, std::string>{rgb, "jpeg.rgb"}, {cmyk, "jpeg.cmyk"}}) {
    INFO(path);
    const Tensor t = data::load_image_rgb(path);
    const Tensor& ref = fx.tensors.at(key);
    REQUIRE(t.shape() == ref.shape());
    int bad = 0;
    for (int64_t i = 0; i < t.numel(); ++i) bad += t.data()[i] != ref.data()[i];
    CHECK(bad == 0);
  }
}

TEST_CASE("image: missing, truncated and malformed files name the file", "[image]") {
  const std::string dir = fresh_dir("errors");
  CHECK_THROWS_WITH(data::load_image_rgb(dir + "/nope.png"),
                    Catch::Contains("nope.png") && Catch::Contains("no such"));
  write_text(dir + "/text.png", "this is not a PNG file\n");
  CHECK_THROWS_WITH(data::load_image_rgb(dir + "/text.png"),
                    Catch::Contains("text.png") && Catch::Contains("cannot decode"));
  write_text(dir + "/empty.png", "");
  CHECK_THROWS_WITH(data::load_image_rgb(dir + "/empty.png"), Catch::Contains("empty.png"));
  // a noisy PNG (large IDAT) cut in half
  std::vector<unsigned char> noise(64 * 64 * 3);
  Generator gen(5);
  Tensor u = gen.uniform({int64_t(noise.size())}, 0.f, 255.f);
  for (size_t i = 0; i < noise.size(); ++i) noise[i] = static_cast<unsigned char>(u.data()[i]);
  write_image(dir + "/full.png", 64, 64, 3, noise);
  std::ifstream in(dir + "/full.png", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write_text(dir + "/truncated.png", bytes.substr(0, bytes.size() / 2));
  CHECK_NOTHROW(data::load_image_rgb(dir + "/full.png"));
  CHECK_THROWS_WITH(data::load_image_rgb(dir + "/truncated.png"),
                    Catch::Contains("truncated.png") && Catch::Contains("cannot decode"));
  CHECK_THROWS_WITH(data::image_size_hw(dir + "/text.png"), Catch::Contains("text.png"));
  CHECK(data::image_size_hw(dir + "/full.png") == std::pair<int64_t, int64_t>{64, 64});
}

TEST_CASE("image: a declared size over the pixel limit is refused before decoding", "[image]") {
  // A 2x2 PNG whose header is rewritten to declare 18000 x 18000 (stb checks no CRC): decoding it
  // would first allocate ~1 GB of pixels (5.8 GB of floats downstream); it must fail on the header.
  const std::string dir = fresh_dir("declared");
  write_image(dir + "/small.png", 2, 2, 3, test::pattern(2, 2, 3));
  std::ifstream in(dir + "/small.png", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  REQUIRE(bytes.substr(12, 4) == "IHDR");
  for (int k : {16, 20}) {  // width, then height: big-endian 18000 = 0x00004650
    bytes[k] = 0, bytes[k + 1] = 0, bytes[k + 2] = char(0x46), bytes[k + 3] = char(0x50);
  }
  write_text(dir + "/huge.png", bytes);
  CHECK(data::max_image_pixels() == data::kDefaultMaxImagePixels);
  CHECK_THROWS_WITH(data::load_image_rgb(dir + "/huge.png"),
                    Catch::Contains("huge.png") && Catch::Contains("18000 x 18000") &&
                        Catch::Contains("limit of 89478485") && Catch::Contains("--max-image-pixels"));
  CHECK_THROWS_WITH(data::load_image_gray(dir + "/huge.png"), Catch::Contains("limit of"));
  // the limit is exact: a 4 x 4 image passes at 16 pixels, not at 15
  write_image(dir + "/four.png", 4, 4, 3, test::pattern(4, 4, 3));
  data::set_max_image_pixels(16);
  CHECK_NOTHROW(data::load_image_rgb(dir + "/four.png"));
  data::set_max_image_pixels(15);
  CHECK_THROWS_WITH(data::load_image_rgb(dir + "/four.png"), Catch::Contains("4 x 4 = 16 pixels"));
  // A top-down BMP stores its height negative; stb's header reader passed it on, so the limit saw a
  // negative pixel count and let any such file through (the fuzzer's input:
  // tests/fuzz/regressions/fuzz_image/stb_bmp_top_down_negative_height.bmp).
  write_image(dir + "/four.bmp", 4, 4, 3, test::pattern(4, 4, 3), Fmt::bmp);
  std::ifstream bin(dir + "/four.bmp", std::ios::binary);
  std::string bmp((std::istreambuf_iterator<char>(bin)), std::istreambuf_iterator<char>());
  REQUIRE(bmp.substr(0, 2) == "BM");
  const int32_t down = -4;  // biHeight at byte 22, little-endian
  std::memcpy(&bmp[22], &down, 4);
  write_text(dir + "/down.bmp", bmp);
  CHECK(data::image_size_hw(dir + "/down.bmp") == std::pair<int64_t, int64_t>{4, 4});
  CHECK_THROWS_WITH(data::load_image_rgb(dir + "/down.bmp"), Catch::Contains("4 x 4 = 16 pixels"));
  data::set_max_image_pixels(16);
  CHECK(data::load_image_rgb(dir + "/down.bmp").shape() == Shape{3, 4, 4});
  CHECK_THROWS_AS(data::set_max_image_pixels(0), Error);
  data::set_max_image_pixels(data::kDefaultMaxImagePixels);
}

// ---- resizing: closed forms ------------------------------------------------------------------

TEST_CASE("image: resize closed forms - constants, ramps, integer factors", "[image]") {
  using data::ResizeFilter;
  const std::vector<ResizeFilter> all = {ResizeFilter::nearest, ResizeFilter::bilinear,
                                         ResizeFilter::bilinear_aa, ResizeFilter::lanczos};
  // A constant image stays constant (every filter's weights sum to 1), up and down.
  Tensor c = Tensor::full({2, 9, 14}, 117.f);
  for (ResizeFilter f : all)
    for (auto [oh, ow] : {std::pair{4, 5}, std::pair{23, 31}, std::pair{9, 3}}) {
      Tensor r = data::resize(c, oh, ow, f);
      REQUIRE(r.shape() == Shape{2, oh, ow});
      expect_close(r, Tensor::full({2, oh, ow}, 117.f), 1e-4, 0,
                   std::string("constant, ") + data::resize_filter_name(f));
    }
  // A ramp v = 3 x + 1 along W, upscaled 10 -> 25 with bilinear: 3 clamp(src, 0, 9) + 1 with
  // src = (o + 0.5) 10/25 - 0.5 (a ramp in the interior, flat at the clamped borders).
  Tensor ramp({1, 2, 10});
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 10; ++x) ramp.data()[y * 10 + x] = 3.f * x + 1.f;
  Tensor want({1, 2, 25});
  for (int y = 0; y < 2; ++y)
    for (int o = 0; o < 25; ++o)
      want.data()[y * 25 + o] = 3.f * std::clamp((o + 0.5f) * 10.f / 25.f - 0.5f, 0.f, 9.f) + 1.f;
  expect_close(data::resize(ramp, 2, 25, ResizeFilter::bilinear), want, 1e-4, 1e-6, "bilinear ramp");
  // Upscaling: the antialiased triangle filter equals plain bilinear interpolation.
  Generator gen(3);
  Tensor x = gen.uniform({3, 6, 11}, 0.f, 255.f);
  expect_close(data::resize(x, 17, 20, ResizeFilter::bilinear_aa),
               data::resize(x, 17, 20, ResizeFilter::bilinear), 1e-3, 0, "upscale aa == bilinear");
  // Factor 2: nearest repeats pixels, bilinear down by 2 averages pairs (OpenCV's INTER_AREA case).
  Tensor up = data::resize(x, 12, 22, ResizeFilter::nearest);
  Tensor down = data::resize(x, 3, 11, ResizeFilter::bilinear);
  Tensor want_up({3, 12, 22}), want_down({3, 3, 11});
  for (int ch = 0; ch < 3; ++ch) {
    for (int y = 0; y < 12; ++y)
      for (int xx = 0; xx < 22; ++xx) want_up.data()[(ch * 12 + y) * 22 + xx] = at(x, ch, y / 2, xx / 2);
    for (int y = 0; y < 3; ++y)
      for (int xx = 0; xx < 11; ++xx)
        want_down.data()[(ch * 3 + y) * 11 + xx] = 0.5f * (at(x, ch, 2 * y, xx) + at(x, ch, 2 * y + 1, xx));
  }
  expect_close(up, want_up, 0, 0, "nearest x2");
  expect_close(down, want_down, 1e-3, 0, "bilinear /2");
  // Same size: an exact copy, for every filter; [H, W] input keeps its rank.
  for (ResizeFilter f : all) expect_close(data::resize(x, 6, 11, f), x, 0, 0, "same size");
  CHECK(data::resize(Tensor::ones({5, 4}), 2, 3, ResizeFilter::lanczos).shape() == Shape{2, 3});
  CHECK_THROWS_WITH(data::resize(Tensor::ones({1, 1, 5, 4}), 2, 3, ResizeFilter::bilinear),
                    Catch::Contains("[1, 1, 5, 4]"));
  CHECK_THROWS_WITH(data::resize(x, 0, 3, ResizeFilter::bilinear), Catch::Contains("0x3"));
  CHECK_THROWS_WITH(data::parse_resize_filter("bicubic"), Catch::Contains("bicubic"));
}

TEST_CASE("image: centre crop and shorter side follow torchvision's rounding", "[image]") {
  using P = std::pair<int64_t, int64_t>;
  // top = round((H - ch) / 2) with Python's round: ties to even (15.5 -> 16, 16.5 -> 16, 1.5 -> 2).
  CHECK(data::center_crop_offset(256, 256, 224, 224) == P{16, 16});
  CHECK(data::center_crop_offset(255, 255, 224, 224) == P{16, 16});
  CHECK(data::center_crop_offset(257, 257, 224, 224) == P{16, 16});
  CHECK(data::center_crop_offset(259, 260, 224, 224) == P{18, 18});
  CHECK(data::center_crop_offset(10, 7, 3, 4) == P{4, 2});
  CHECK_THROWS_WITH(data::center_crop_offset(10, 7, 11, 4), Catch::Contains("11x4"));
  // crop content: an arange image
  Tensor img({2, 10, 7});
  for (int64_t i = 0; i < img.numel(); ++i) img.data()[i] = float(i);
  Tensor cr = data::center_crop(img, 3, 4);
  REQUIRE(cr.shape() == Shape{2, 3, 4});
  CHECK(at(cr, 0, 0, 0) == 4 * 7 + 2);
  CHECK(at(cr, 1, 2, 3) == 70 + 6 * 7 + 5);
  // shorter side S, longer side int(S * long / short)
  CHECK(data::shorter_side_size(300, 320, 256) == P{256, 273});
  CHECK(data::shorter_side_size(320, 300, 256) == P{273, 256});
  CHECK(data::shorter_side_size(481, 640, 256) == P{256, 340});
  CHECK(data::resize_shorter_side(Tensor::ones({3, 30, 20}), 10, data::ResizeFilter::bilinear).shape() ==
        Shape{3, 15, 10});
}

TEST_CASE("image: preprocessing options are validated and normalise with ImageNet statistics", "[image]") {
  data::ImagePrep p;
  CHECK_NOTHROW(p.validate());
  p.filter = "cubic";
  CHECK_THROWS_WITH(p.validate(), Catch::Contains("cubic"));
  p = data::ImagePrep{.size = 100, .crop = 120};
  CHECK_THROWS_WITH(p.validate(), Catch::Contains("crop 120") && Catch::Contains("size 100"));
  p = data::ImagePrep{.size = 0};
  CHECK_THROWS_WITH(p.validate(), Catch::Contains("size"));
  CHECK(data::prep_output_size(300, 320, data::ImagePrep::acr_mvtec()) == std::pair<int64_t, int64_t>{224, 224});
  CHECK(data::prep_output_size(300, 320, data::ImagePrep{.size = 64, .shorter_side = true}) ==
        std::pair<int64_t, int64_t>{64, 68});
  CHECK(data::prep_output_size(300, 320, data::ImagePrep::gaussian_ad(380)) ==
        std::pair<int64_t, int64_t>{380, 380});
  // A constant grey image: every pixel (v / 255 - mean_c) / std_c.
  Tensor img = Tensor::full({3, 20, 30}, 200.f);
  Tensor out = data::preprocess_image(img, data::ImagePrep{.size = 8, .crop = 6, .filter = "lanczos"});
  REQUIRE(out.shape() == Shape{3, 6, 6});
  const float mean[3] = {0.485f, 0.456f, 0.406f}, sd[3] = {0.229f, 0.224f, 0.225f};
  for (int c = 0; c < 3; ++c) CHECK(at(out, c, 5, 5) == Approx((200.f / 255.f - mean[c]) / sd[c]).epsilon(1e-5));
}

// ---- data set layouts ------------------------------------------------------------------------

TEST_CASE("image: MVTec AD layout - order, labels, names, masks", "[image]") {
  const std::string root = fresh_dir("mvtec");
  // bottle: full layout with ground truth; a text file and a hidden file are ignored
  for (const char* f : {"002.png", "000.png", "001.png"}) touch_png(root + "/bottle/train/good/" + f);
  write_text(root + "/bottle/train/good/readme.txt", "not an image");
  touch_png(root + "/bottle/train/good/.hidden.png");
  for (const char* f : {"001.png", "000.png"}) touch_png(root + "/bottle/test/good/" + f);
  for (const char* f : {"001.png", "000.png"}) touch_png(root + "/bottle/test/broken_large/" + f);
  touch_png(root + "/bottle/test/contamination/000.png");
  for (const char* f : {"000_mask.png", "001_mask.png"}) write_mask(root + "/bottle/ground_truth/broken_large/" + f);
  write_mask(root + "/bottle/ground_truth/contamination/000_mask.png");
  // cable: no ground_truth directory at all, upper-case extensions
  touch_png(root + "/cable/train/good/000.PNG");
  touch_png(root + "/cable/test/cut/000.PNG");
  // notes: not a category (no train/good)
  fs::create_directories(root + "/notes/test");

  auto train = data::mvtec_items(root, "bottle", "train");
  CHECK(names(train) == std::vector<std::string>{"good/000.png", "good/001.png", "good/002.png"});
  CHECK(data::item_labels(train) == std::vector<int>{0, 0, 0});
  CHECK(train[1].path == (fs::path(root) / "bottle/train/good/001.png").string());
  CHECK(train[1].mask.empty());

  auto test = data::mvtec_items(root, "bottle", "test");
  CHECK(names(test) == std::vector<std::string>{"broken_large/000.png", "broken_large/001.png",
                                                "contamination/000.png", "good/000.png", "good/001.png"});
  CHECK(data::item_labels(test) == std::vector<int>{1, 1, 1, 0, 0});
  CHECK(test[1].defect == "broken_large");
  CHECK(test[1].mask == (fs::path(root) / "bottle/ground_truth/broken_large/001_mask.png").string());
  CHECK(test[2].mask == (fs::path(root) / "bottle/ground_truth/contamination/000_mask.png").string());
  CHECK(test[3].mask.empty());

  auto cable = data::mvtec_items(root, "cable", "test");
  REQUIRE(cable.size() == 1);
  CHECK(cable[0].label == 1);
  CHECK(cable[0].mask.empty());
  CHECK(data::mvtec_categories(root) == std::vector<std::string>{"bottle", "cable"});
  CHECK(data::kMvtecCategories.size() == 15);

  // images and masks through a preprocessing: S x S = 8; the mask's left half is 1
  const data::ImagePrep prep{.size = 8, .filter = "bilinear-aa"};
  Tensor x = data::load_item_images(test, prep);
  CHECK(x.shape() == Shape{5, 3, 8, 8});
  Tensor m = data::load_item_masks(test, prep);
  REQUIRE(m.shape() == Shape{5, 8, 8});
  CHECK(m.data()[0 * 64 + 3] == 1.f);  // broken_large/000, row 0, x = 3 (left half)
  CHECK(m.data()[0 * 64 + 4] == 0.f);
  double good_sum = 0;
  for (int i = 3 * 64; i < 5 * 64; ++i) good_sum += m.data()[i];
  CHECK(good_sum == 0);
  // crop after a shorter-side resize, like acr.md §7.5 at a small scale
  Tensor m2 = data::load_mask(test[0].mask, data::ImagePrep{.size = 12, .crop = 8, .shorter_side = true});
  REQUIRE(m2.shape() == Shape{8, 8});
  CHECK(m2.data()[3] == 1.f);  // crop offset 2: column 3 is source column 5 of 12 (left half)
  CHECK(m2.data()[4] == 0.f);
}

TEST_CASE("image: MVTec AD errors name the path", "[image]") {
  const std::string root = fresh_dir("mvtec_errors");
  CHECK_THROWS_WITH(data::mvtec_items(root + "/absent", "bottle", "train"), Catch::Contains("absent"));
  CHECK_THROWS_WITH(data::mvtec_items(root, "bottle", "train"), Catch::Contains("bottle"));
  fs::create_directories(root + "/grid/train/good");
  CHECK_THROWS_WITH(data::mvtec_items(root, "grid", "train"),
                    Catch::Contains("grid") && Catch::Contains("good") && Catch::Contains("no images"));
  CHECK_THROWS_WITH(data::mvtec_items(root, "grid", "test"), Catch::Contains("test"));
  CHECK_THROWS_WITH(data::mvtec_items(root, "grid", "val"), Catch::Contains("val"));
  // capsule: ground truth for crack exists but 001_mask.png is missing
  touch_png(root + "/capsule/train/good/000.png");
  touch_png(root + "/capsule/test/crack/000.png");
  touch_png(root + "/capsule/test/crack/001.png");
  write_mask(root + "/capsule/ground_truth/crack/000_mask.png");
  CHECK_THROWS_WITH(data::mvtec_items(root, "capsule", "test"), Catch::Contains("crack/001_mask.png"));
  CHECK_THROWS_WITH(data::mvtec_categories(root + "/absent"), Catch::Contains("absent"));
}

TEST_CASE("image: Folder layout - normals, anomalies and masks matched by stem", "[image]") {
  const std::string dir = fresh_dir("folder");
  for (const char* f : {"b.png", "a.jpg"}) touch_png(dir + "/normal/" + f);
  touch_png(dir + "/abnormal/x.png");
  touch_png(dir + "/abnormal/y.bmp");
  write_mask(dir + "/masks/x_mask.png");
  write_mask(dir + "/masks/y.png");
  auto items = data::folder_items(dir + "/normal", dir + "/abnormal/", dir + "/masks");
  CHECK(names(items) == std::vector<std::string>{"normal/a.jpg", "normal/b.png", "abnormal/x.png", "abnormal/y.bmp"});
  CHECK(data::item_labels(items) == std::vector<int>{0, 0, 1, 1});
  CHECK(items[0].mask.empty());
  CHECK(items[2].mask == (fs::path(dir) / "masks/x_mask.png").string());
  CHECK(items[3].mask == (fs::path(dir) / "masks/y.png").string());
  CHECK(data::folder_items(dir + "/normal", "", "").size() == 2);
  // a missing mask is named
  write_mask(dir + "/masks2/x.png");
  CHECK_THROWS_WITH(data::folder_items(dir + "/normal", dir + "/abnormal", dir + "/masks2"),
                    Catch::Contains("y") && Catch::Contains("missing mask") && Catch::Contains("y.bmp"));
  CHECK_THROWS_WITH(data::folder_items(dir + "/absent", "", ""), Catch::Contains("absent"));
  fs::create_directories(dir + "/empty");
  CHECK_THROWS_WITH(data::folder_items(dir + "/empty", "", ""), Catch::Contains("empty") && Catch::Contains("no images"));
}

TEST_CASE("image: load_batch is the same for 1 and 2 threads and names a bad file", "[image]") {
  const std::string dir = fresh_dir("batch");
  std::vector<std::string> paths;
  for (int i = 0; i < 6; ++i) {
    const std::string p = dir + "/" + std::to_string(i) + ".png";
    write_image(p, 20 + i, 30 - i, 3, pattern(20 + i, 30 - i, 3));
    paths.push_back(p);
  }
  const data::ImagePrep prep{.size = 16, .crop = 12, .filter = "lanczos", .shorter_side = true};
  set_num_threads(1);
  Tensor one = data::load_batch(paths, prep);
  set_num_threads(2);
  Tensor two = data::load_batch(paths, prep);
  set_num_threads(0);
  REQUIRE(one.shape() == Shape{6, 3, 12, 12});
  expect_close(two, one, 0, 0, "threads");
  Tensor single = data::load_preprocessed(paths[4], prep);
  double d = 0;
  for (int64_t i = 0; i < single.numel(); ++i) d = std::max(d, double(std::fabs(single.data()[i] - one.data()[4 * single.numel() + i])));
  CHECK(d == 0);
  // without a crop, the shorter-side sizes differ between files: an error naming the file
  CHECK_THROWS_WITH(data::load_batch(paths, data::ImagePrep{.size = 16, .shorter_side = true}),
                    Catch::Contains("1.png"));
  paths[3] = dir + "/missing.png";
  CHECK_THROWS_WITH(data::load_batch(paths, prep), Catch::Contains("missing.png"));
}

// ---- parity with torch and PIL ---------------------------------------------------------------

TEST_CASE("image: resize parity with torch F.interpolate and PIL Image.resize", "[image]") {
  const std::string path = test::fixture("resize.safetensors");
  if (path.empty()) return;
  const auto fx = nn::load_safetensors(path).tensors;
  auto get = [&](const std::string& k) -> const Tensor& {
    auto it = fx.find(k);
    if (it == fx.end()) throw Error("resize.safetensors: no tensor '" + k + "'");
    return it->second;
  };
  // reference key -> filter; tolerance in grey levels (values 0..255, Lanczos overshoot to ~+-300)
  const std::vector<std::tuple<std::string, data::ResizeFilter, double>> refs = {
      {"bilinear", data::ResizeFilter::bilinear, 1e-4},
      {"bilinear_aa_torch", data::ResizeFilter::bilinear_aa, 1e-4},
      {"bilinear_aa_pil", data::ResizeFilter::bilinear_aa, 1e-4},
      {"lanczos", data::ResizeFilter::lanczos, 1e-4},
      {"nearest", data::ResizeFilter::nearest, 0.0}};
  for (const auto& [key, filter, atol] : refs) {
    double worst = 0;
    int cases = 0;
    for (int i = 0; fx.count(case_prefix(i) + ".x"); ++i, ++cases) {
      const std::string p = case_prefix(i);
      const auto size = get(p + ".size").to_vector();
      Tensor got = data::resize(get(p + ".x"), int64_t(size[0]), int64_t(size[1]), filter);
      expect_close(got, get(p + "." + key), atol, 0, p + "." + key);
      if (got.shape() == get(p + "." + key).shape()) worst = std::max(worst, max_abs_diff(got, get(p + "." + key)));
    }
    INFO(key << ": max abs error " << worst << " grey levels");
    CHECK(worst <= atol);
    CHECK(cases == kResizeCases);  // every case of tests/make_fixtures.py make_resize ran
  }
  // torchvision CenterCrop offsets and Resize(S) sizes
  const auto crops = get("crop.cases").to_vector(), offs = get("crop.offsets").to_vector();
  for (size_t k = 0; 4 * k < crops.size(); ++k) {
    auto got = data::center_crop_offset(crops[4 * k], crops[4 * k + 1], crops[4 * k + 2], crops[4 * k + 3]);
    INFO("crop case " << k);
    CHECK(got == std::pair<int64_t, int64_t>{int64_t(offs[2 * k]), int64_t(offs[2 * k + 1])});
  }
  const auto sc = get("shorter.cases").to_vector(), ss = get("shorter.sizes").to_vector();
  for (size_t k = 0; 3 * k < sc.size(); ++k) {
    INFO("shorter-side case " << k);
    CHECK(data::shorter_side_size(sc[3 * k], sc[3 * k + 1], sc[3 * k + 2]) ==
          std::pair<int64_t, int64_t>{int64_t(ss[2 * k]), int64_t(ss[2 * k + 1])});
  }
}

TEST_CASE("image: end-to-end preprocessing against torchvision on a PNG", "[image]") {
  const std::string path = test::fixture("resize.safetensors");
  const std::string png = test::fixture("resize_pipeline.png");
  if (path.empty() || png.empty()) return;
  const auto fx = nn::load_safetensors(path).tensors;
  // A difference d after normalisation is d * 255 * std_c grey levels.
  const double sd[3] = {0.229, 0.224, 0.225};
  struct Case {
    std::string key;
    data::ImagePrep prep;
    double max_grey, mean_grey;  // tolerances in grey levels: worst pixel, mean over pixels
  };
  const std::vector<Case> cases = {
      // PIL on uint8: fixed-point weights, rounding after each pass, clipping (data/image.h)
      {"pipe.lanczos", data::ImagePrep::acr_mvtec(), 1.5, 0.4},
      {"pipe.bilinear_aa", {.size = 256, .crop = 224, .filter = "bilinear-aa", .shorter_side = true}, 1.5, 0.4},
      // torch in float64: the same arithmetic as normad's, up to float rounding
      {"pipe.bilinear", data::ImagePrep::gaussian_ad(64), 1e-3, 1e-4}};
  for (const auto& c : cases) {
    Tensor got = data::load_preprocessed(png, c.prep);
    const Tensor& ref = fx.at(c.key);
    REQUIRE(got.shape() == ref.shape());
    double worst = 0, mean = 0;
    const int64_t hw = got.size(1) * got.size(2);
    for (int64_t i = 0; i < got.numel(); ++i) {
      const double d = std::fabs(got.data()[i] - ref.data()[i]) * 255 * sd[i / hw];
      worst = std::max(worst, d);
      mean += d / double(got.numel());
    }
    INFO(c.key << ": max " << worst << ", mean " << mean << " grey levels");
    CHECK(worst <= c.max_grey);
    CHECK(mean <= c.mean_grey);
  }
}
