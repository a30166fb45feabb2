// IDX reader tests on small gzip and plain files written here; truncated and malformed files.
#include <sys/resource.h>
#include <zlib.h>

#include <fstream>

#include "data/idx.h"
#include "tests/helpers.h"

using namespace normad;

namespace {
std::string tmp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("normad_test_" + name)).string();
}
std::vector<unsigned char> idx_bytes(std::vector<uint32_t> dims, const std::vector<unsigned char>& v) {
  std::vector<unsigned char> b{0, 0, 0x08, static_cast<unsigned char>(dims.size())};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back((d >> s) & 0xff);
  b.insert(b.end(), v.begin(), v.end());
  return b;
}
void write_gz(const std::string& p, const std::vector<unsigned char>& b) {
  gzFile f = gzopen(p.c_str(), "wb");
  gzwrite(f, b.data(), static_cast<unsigned>(b.size()));
  gzclose(f);
}
void write_plain(const std::string& p, const std::vector<unsigned char>& b) {
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), b.size());
}
}  // namespace

TEST_CASE("idx: images and labels from gzip and plain files", "[data]") {
  std::vector<unsigned char> px(2 * 3 * 4);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<unsigned char>(i * 10);
  write_gz(tmp_path("img.gz"), idx_bytes({2, 3, 4}, px));
  write_plain(tmp_path("lab"), idx_bytes({2}, {7, 3}));
  Tensor x = data::read_idx_images(tmp_path("img.gz"));
  CHECK(x.shape() == Shape{2, 1, 3, 4});
  CHECK(x.data()[5] == Approx(50 / 255.0));
  CHECK(data::read_idx_labels(tmp_path("lab")) == std::vector<int64_t>{7, 3});
}

TEST_CASE("idx: missing, truncated and malformed files name the file", "[data]") {
  CHECK_THROWS_WITH(data::read_idx(tmp_path("nope")), Catch::Contains("nope"));
  auto full = idx_bytes({2, 3, 4}, std::vector<unsigned char>(24, 1));
  write_plain(tmp_path("trunc"), std::vector<unsigned char>(full.begin(), full.end() - 5));
  CHECK_THROWS_WITH(data::read_idx(tmp_path("trunc")), Catch::Contains("trunc") && Catch::Contains("truncated"));
  auto bad = full;
  bad[2] = 0x0D;  // float values: unsupported
  write_plain(tmp_path("type"), bad);
  CHECK_THROWS_WITH(data::read_idx(tmp_path("type")), Catch::Contains("uint8"));
  write_plain(tmp_path("lab3"), idx_bytes({2, 3, 4}, std::vector<unsigned char>(24, 1)));
  CHECK_THROWS_WITH(data::read_idx_labels(tmp_path("lab3")), Catch::Contains("[N] labels"));
}

TEST_CASE("idx: memory follows the values a file holds, not the sizes its header declares", "[data]") {
  // A 20-byte file declaring 4 x 65535 x 65535 values (16 GiB, under the 2^34 cap) resized its
  // buffer to 16 GiB before reading (std::bad_alloc, or the OOM killer); now it is read in 16 MiB
  // steps and fails at the first one.
  for (bool gz : {false, true}) {
    const std::string p = tmp_path(gz ? "huge.gz" : "huge");
    const auto b = idx_bytes({4, 65535, 65535}, {1, 2, 3, 4});
    gz ? write_gz(p, b) : write_plain(p, b);
    CHECK_THROWS_WITH(data::read_idx(p), Catch::Contains(p) && Catch::Contains("truncated"));
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  CHECK(ru.ru_maxrss < 1024 * 1024);  // KiB: the whole test process stayed under 1 GiB
}
