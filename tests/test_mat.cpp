// MAT-file reader tests. Level-5 files are built byte by byte here (plain and miCOMPRESSED elements, both
// byte orders, small data elements, storage types other than double, skipped classes); scipy.io.savemat
// files come from scripts/make_mat_fixture.py; truncated, malformed and hostile files must raise a
// normad::Error naming the file. Values are exact (small integers and halves survive float32).
#include <zlib.h>

#include <bit>
#include <fstream>
#include <random>
#include <set>

#include "data/csv.h"
#include "data/mat.h"
#include "tests/helpers.h"

using namespace normad;

namespace {

using Bytes = std::vector<uint8_t>;

// MAT-file data types and classes used below (MathWorks "MAT-File Format", tables 1-1 and 1-3).
enum : uint32_t {
  mi_int8 = 1, mi_uint8 = 2, mi_int16 = 3, mi_uint16 = 4, mi_int32 = 5, mi_uint32 = 6, mi_single = 7,
  mi_double = 9, mi_int64 = 12, mi_uint64 = 13, mi_matrix = 14, mi_compressed = 15,
};
enum : uint32_t {
  mx_cell = 1, mx_struct = 2, mx_char = 4, mx_sparse = 5, mx_double = 6, mx_single = 7, mx_int8 = 8,
  mx_uint8 = 9, mx_int16 = 10, mx_uint16 = 11, mx_int32 = 12, mx_uint32 = 13, mx_int64 = 14, mx_uint64 = 15,
};
constexpr uint32_t flag_logical = 0x0200, flag_complex = 0x0800;

std::string tmp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("normad_test_mat_" + name + ".mat")).string();
}

void write_file(const std::string& p, const Bytes& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

void append(Bytes& dst, const Bytes& src) { dst.insert(dst.end(), src.begin(), src.end()); }

// Appends the `size` low bytes of v in the file's byte order.
void put(Bytes& b, uint64_t v, int size, bool big) {
  for (int k = 0; k < size; ++k) b.push_back(uint8_t(v >> (big ? 8 * (size - 1 - k) : 8 * k)));
}

// Values encoded as storage type `type` (each value is cast to that C type first).
Bytes encode(const std::vector<double>& v, uint32_t type, bool big) {
  Bytes b;
  for (double x : v) {
    switch (type) {
      case mi_int8: put(b, std::bit_cast<uint8_t>(int8_t(x)), 1, big); break;
      case mi_uint8: put(b, uint8_t(x), 1, big); break;
      case mi_int16: put(b, std::bit_cast<uint16_t>(int16_t(x)), 2, big); break;
      case mi_uint16: put(b, uint16_t(x), 2, big); break;
      case mi_int32: put(b, std::bit_cast<uint32_t>(int32_t(x)), 4, big); break;
      case mi_uint32: put(b, uint32_t(x), 4, big); break;
      case mi_single: put(b, std::bit_cast<uint32_t>(float(x)), 4, big); break;
      case mi_double: put(b, std::bit_cast<uint64_t>(x), 8, big); break;
      case mi_int64: put(b, std::bit_cast<uint64_t>(int64_t(x)), 8, big); break;
      case mi_uint64: put(b, uint64_t(x), 8, big); break;
      default: FAIL("encode: no storage type " << type);
    }
  }
  return b;
}

// A data element: full 8-byte tag, or the small form (byte count in the upper 16 bits of the first
// word, data in the second) when `small`; payload padded with zeros to a multiple of 8.
Bytes element(uint32_t type, const Bytes& payload, bool big, bool small = false) {
  Bytes b;
  if (small) {
    REQUIRE(payload.size() <= 4);
    put(b, (uint64_t(payload.size()) << 16) | type, 4, big);
  } else {
    put(b, type, 4, big);
    put(b, payload.size(), 4, big);
  }
  append(b, payload);
  while (b.size() % 8) b.push_back(0);
  return b;
}

// One miMATRIX variable. Values are column-major, as MATLAB stores them.
struct MatVar {
  std::string name;
  std::vector<int32_t> dims;
  std::vector<double> values;
  uint32_t cls = mx_double;       // array class
  uint32_t type = mi_double;      // storage type of the real part
  uint32_t flags = 0;             // flag bits: logical, complex
  std::vector<double> imag = {};  // imaginary part, written when non-empty
  bool has_tail = false;          // write `tail` instead of the real part (cells, structs, sparse)
  Bytes tail = {};
};

Bytes matrix(const MatVar& v, bool big) {
  Bytes p, f, d;
  put(f, v.cls | v.flags, 4, big);
  put(f, 0, 4, big);  // nzmax: sparse arrays only
  append(p, element(mi_uint32, f, big));
  for (int32_t x : v.dims) put(d, std::bit_cast<uint32_t>(x), 4, big);
  append(p, element(mi_int32, d, big));
  // Names of up to 4 characters use the small data element form, as MATLAB and scipy write them.
  append(p, element(mi_int8, Bytes(v.name.begin(), v.name.end()), big, v.name.size() <= 4));
  if (v.has_tail) {
    append(p, v.tail);
  } else {
    append(p, element(v.type, encode(v.values, v.type, big), big));
    if (!v.imag.empty()) append(p, element(v.type, encode(v.imag, v.type, big), big));
  }
  return element(mi_matrix, p, big);
}

// A miCOMPRESSED element wrapping `inner` (a whole data element) in a zlib stream; never padded.
Bytes compressed(const Bytes& inner, bool big) {
  uLongf n = compressBound(uLong(inner.size()));
  Bytes z(n);
  REQUIRE(compress2(z.data(), &n, inner.data(), uLong(inner.size()), 6) == Z_OK);
  z.resize(n);
  Bytes b;
  put(b, mi_compressed, 4, big);
  put(b, n, 4, big);
  append(b, z);
  return b;
}

// 116 bytes of text, 8 bytes of subsystem offset, version, endian indicator ("IM" read little-endian).
Bytes header(bool big, uint16_t version = 0x0100) {
  const std::string text = "MATLAB 5.0 MAT-file, written by tests/test_mat.cpp";
  Bytes b(124, 0);
  std::fill(b.begin(), b.begin() + 116, uint8_t(' '));
  std::copy(text.begin(), text.end(), b.begin());
  put(b, version, 2, big);
  b.push_back(big ? 'M' : 'I');
  b.push_back(big ? 'I' : 'M');
  return b;
}

// A whole file: header plus one element per variable, each wrapped in miCOMPRESSED when `z`.
Bytes mat_file(const std::vector<MatVar>& vars, bool big = false, bool z = false) {
  Bytes b = header(big);
  for (const MatVar& v : vars) append(b, z ? compressed(matrix(v, big), big) : matrix(v, big));
  return b;
}

// The ODDS-shaped pair used throughout: X = [1 -4; 2 5; 3 6] (column-major 1 2 3 -4 5 6), y = [0; 1; 0].
MatVar odds_x() { return {"X", {3, 2}, {1, 2, 3, -4, 5, 6}}; }
MatVar odds_y() { return {"y", {3, 1}, {0, 1, 0}}; }

std::set<std::string> keys(const std::map<std::string, Tensor>& m) {
  std::set<std::string> k;
  for (const auto& [name, t] : m) k.insert(name);
  return k;
}

// Root of the source tree, from this file's path (CMake compiles it by absolute path).
std::filesystem::path source_root() {
  return std::filesystem::path(__FILE__).parent_path().parent_path();
}

}  // namespace

// Every malformed case must be a normad::Error whose message names the file and says what is wrong.
#define CHECK_MAT_ERROR(expr, path, what)                                             \
  do {                                                                                \
    REQUIRE_THROWS_AS(expr, normad::Error);                                           \
    CHECK_THROWS_WITH(expr, Catch::Contains(path) && Catch::Contains(what));          \
  } while (0)

TEST_CASE("mat: double X 3x2 and y 3x1, plain and compressed, both byte orders", "[data][mat]") {
  const bool big = GENERATE(false, true);
  const bool z = GENERATE(false, true);
  INFO("big-endian " << big << ", miCOMPRESSED " << z);
  const MatVar extra{"long_name", {1, 2}, {7, 8}};  // 9 characters: a normal (not small) name element
  const std::string p = tmp_path("xy");
  write_file(p, mat_file({odds_x(), odds_y(), extra}, big, z));

  const auto all = data::read_mat(p);
  CHECK(keys(all) == std::set<std::string>{"X", "y", "long_name"});
  // Column-major 1 2 3 -4 5 6 with dims [3, 2] is the row-major matrix [[1, -4], [2, 5], [3, 6]].
  CHECK(all.at("X").shape() == Shape{3, 2});
  CHECK(all.at("X").to_vector() == std::vector<float>{1, -4, 2, 5, 3, 6});
  CHECK(all.at("y").shape() == Shape{3, 1});
  CHECK(all.at("long_name").shape() == Shape{1, 2});
  CHECK(all.at("long_name").to_vector() == std::vector<float>{7, 8});

  const data::OddsTable t = data::read_odds(p);
  CHECK(t.X.shape() == Shape{3, 2});
  CHECK(t.X.to_vector() == std::vector<float>{1, -4, 2, 5, 3, 6});
  CHECK(t.y == std::vector<int>{0, 1, 0});
}

TEST_CASE("mat: storage types other than the class are converted, rank 3 is reordered", "[data][mat]") {
  const bool big = GENERATE(false, true);
  INFO("big-endian " << big);
  // MATLAB saves a double matrix of small integers as miUINT8 or miINT16 to save space.
  std::vector<MatVar> vars = {
      {"X", {3, 2}, {0, 1, 2, 253, 254, 255}, mx_double, mi_uint8},
      {"neg", {1, 2}, {-300, 299}, mx_double, mi_int16},
      {"s", {2, 1}, {0.5, -2.25}, mx_single, mi_single},
      {"i8", {1, 2}, {-128, 127}, mx_int8, mi_int8},
      {"u16", {1, 1}, {65535}, mx_uint16, mi_uint16},
      {"i32", {1, 2}, {-2147483648.0, 2147483647.0}, mx_int32, mi_int32},
      {"u32", {1, 1}, {4294967295.0}, mx_uint32, mi_uint32},
      {"i64", {1, 1}, {-1099511627776.0}, mx_int64, mi_int64},  // -2^40
      {"u64", {1, 1}, {1099511627776.0}, mx_uint64, mi_uint64},
      // logical labels as a [1, n] row: class uint8 with the logical flag
      {"y", {1, 3}, {1, 0, 1}, mx_uint8, mi_uint8, flag_logical},
      // [2, 3, 2] filled with its column-major index j = i0 + 2 i1 + 6 i2
      {"cube", {2, 3, 2}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}},
      {"empty", {0, 0}, {}},
  };
  const std::string p = tmp_path("types");
  write_file(p, mat_file(vars, big));
  const auto all = data::read_mat(p);
  REQUIRE(all.size() == vars.size());
  CHECK(all.at("X").to_vector() == std::vector<float>{0, 253, 1, 254, 2, 255});
  CHECK(all.at("neg").to_vector() == std::vector<float>{-300, 299});
  CHECK(all.at("s").to_vector() == std::vector<float>{0.5f, -2.25f});
  CHECK(all.at("i8").to_vector() == std::vector<float>{-128, 127});
  CHECK(all.at("u16").item() == 65535.f);
  CHECK(all.at("i32").to_vector() == std::vector<float>{-2147483648.f, 2147483648.f});
  CHECK(all.at("u32").item() == 4294967296.f);  // nearest float32
  CHECK(all.at("i64").item() == -1099511627776.f);
  CHECK(all.at("u64").item() == 1099511627776.f);
  CHECK(all.at("y").shape() == Shape{1, 3});
  CHECK(all.at("empty").shape() == Shape{0, 0});

  // Row-major element (i0, i1, i2) sits at (i0 * 3 + i1) * 2 + i2 and must hold i0 + 2 i1 + 6 i2.
  const Tensor& cube = all.at("cube");
  REQUIRE(cube.shape() == Shape{2, 3, 2});
  for (int i0 = 0; i0 < 2; ++i0)
    for (int i1 = 0; i1 < 3; ++i1)
      for (int i2 = 0; i2 < 2; ++i2)
        CHECK(cube.data()[(i0 * 3 + i1) * 2 + i2] == float(i0 + 2 * i1 + 6 * i2));

  const data::OddsTable t = data::read_odds(p);
  CHECK(t.X.shape() == Shape{3, 2});
  CHECK(t.y == std::vector<int>{1, 0, 1});
}

TEST_CASE("mat: char, cell, struct and sparse arrays are skipped, X or y of such a class is an error",
          "[data][mat]") {
  const bool z = GENERATE(false, true);
  MatVar chr{"name", {1, 3}, {'a', 'b', 'c'}, mx_char, mi_uint16};
  MatVar cell{"c", {1, 1}, {}, mx_cell};
  cell.has_tail = true;
  cell.tail = matrix({"", {1, 1}, {5}}, false);  // one unnamed double inside
  MatVar st{"st", {1, 1}, {}, mx_struct};
  st.has_tail = true;
  st.tail = element(mi_int32, {4, 0, 0, 0}, false, true);  // field-name length; the rest never read
  MatVar sp{"sp", {2, 2}, {}, mx_sparse};
  sp.has_tail = true;
  sp.tail = element(mi_int32, Bytes(8, 0), false);  // row indices; the rest never read
  Bytes file = mat_file({chr, odds_x(), cell, st, odds_y(), sp}, false, z);
  append(file, element(mi_matrix, {}, false));  // an empty miMATRIX placeholder: ignored
  const std::string p = tmp_path("skip");
  write_file(p, file);
  CHECK(keys(data::read_mat(p)) == std::set<std::string>{"X", "y"});
  CHECK(data::read_odds(p).y == std::vector<int>{0, 1, 0});

  // Renamed copies (move-assigning a std::string avoids a false GCC 12 -Wrestrict warning).
  MatVar x_sparse = sp;
  x_sparse.name = std::string("X");
  const std::string q = tmp_path("sparse_x");
  write_file(q, mat_file({x_sparse, odds_y()}, false, z));
  CHECK(data::read_mat(q).count("X") == 0);
  CHECK_MAT_ERROR(data::read_odds(q), q, "'X' is a sparse array");
  MatVar y_char = chr;
  y_char.name = std::string("y");
  write_file(q, mat_file({odds_x(), y_char}, false, z));
  CHECK_MAT_ERROR(data::read_odds(q), q, "'y' is a char array");
}

TEST_CASE("mat: scipy.io.savemat fixtures, plain and compressed", "[data][mat]") {
  // Written by scripts/make_mat_fixture.py (python3-scipy); values follow its closed forms.
  for (const char* name : {"mat_scipy.mat", "mat_scipy_z.mat"}) {
    const std::string p = (source_root() / "tests" / "fixtures" / name).string();
    // Committed to the repository, so never skipped.
    REQUIRE(std::filesystem::exists(p));
    INFO(p);
    const auto all = data::read_mat(p);
    // title (char), cellv (cell), st (struct) and sp (sparse) are skipped.
    CHECK(keys(all) == std::set<std::string>{"X", "y", "cube", "i32", "u8", "f32", "i64", "flag", "row",
                                             "long_variable_name"});
    const Tensor& x = all.at("X");
    REQUIRE(x.shape() == Shape{7, 3});
    for (int i = 0; i < 7; ++i)
      for (int j = 0; j < 3; ++j) CHECK(x.data()[i * 3 + j] == float((10 * i + j + 0.5) * (j == 1 ? -1 : 1)));
    CHECK(all.at("y").shape() == Shape{7, 1});
    const Tensor& cube = all.at("cube");
    REQUIRE(cube.shape() == Shape{2, 3, 4});
    for (int k = 0; k < 24; ++k) CHECK(cube.data()[k] == float(k));  // numpy arange(24).reshape(2, 3, 4)
    CHECK(all.at("i32").to_vector() == std::vector<float>{-3, 0, 7, 2147483648.f, -2147483648.f, 5});
    CHECK(all.at("u8").to_vector() == std::vector<float>{0, 255, 17});
    CHECK(all.at("f32").to_vector() == std::vector<float>{0.25f, -1.5f, 3.f, 1e-3f});
    CHECK(all.at("i64").to_vector() == std::vector<float>{-1099511627776.f, 12345});
    CHECK(all.at("flag").to_vector() == std::vector<float>{1, 0, 1});
    CHECK(all.at("row").shape() == Shape{1, 4});
    CHECK(all.at("row").to_vector() == std::vector<float>{1, 2, 3, 4});
    CHECK(all.at("long_variable_name").item() == 42.f);
    const data::OddsTable t = data::read_odds(p);
    CHECK(t.X.shape() == Shape{7, 3});
    CHECK(t.y == std::vector<int>{0, 1, 0, 0, 1, 0, 0});
  }
}

TEST_CASE("mat: a file truncated at any length raises an error naming the file", "[data][mat]") {
  const bool z = GENERATE(false, true);
  const Bytes full = mat_file({odds_x(), odds_y()}, false, z);
  const std::string p = tmp_path(z ? "trunc_z" : "trunc");
  // Every prefix lacks y or part of it; the one ending right after X is a valid file without y.
  for (size_t len = 0; len < full.size(); ++len) {
    INFO("length " << len << " of " << full.size());
    write_file(p, Bytes(full.begin(), full.begin() + len));
    REQUIRE_THROWS_AS(data::read_odds(p), normad::Error);
    CHECK_THROWS_WITH(data::read_odds(p), Catch::Contains(p));
  }
  write_file(p, Bytes(full.begin(), full.begin() + 100));
  CHECK_MAT_ERROR(data::read_mat(p), p, "128-byte header");
  write_file(p, Bytes(full.begin(), full.begin() + 132));
  CHECK_MAT_ERROR(data::read_mat(p), p, "truncated");
  write_file(p, Bytes(full.begin(), full.end() - 3));
  CHECK_MAT_ERROR(data::read_mat(p), p, "truncated");
  CHECK_MAT_ERROR(data::read_mat(tmp_path("does_not_exist")), "does_not_exist", "no such MAT-file");
}

TEST_CASE("mat: malformed headers and elements raise errors naming the file", "[data][mat]") {
  const std::string p = tmp_path("bad");
  const Bytes good = mat_file({odds_x(), odds_y()});
  SECTION("version 0x0200 (v7.3, HDF5)") {
    Bytes b = good;
    b[124] = 0x00, b[125] = 0x02;
    write_file(p, b);
    CHECK_MAT_ERROR(data::read_mat(p), p, "version 0x0200");
  }
  SECTION("no endian indicator") {
    Bytes b = good;
    b[126] = 'X';
    write_file(p, b);
    CHECK_MAT_ERROR(data::read_mat(p), p, "not a MATLAB level-5 MAT-file");
  }
  SECTION("complex data") {
    MatVar x = odds_x();
    x.flags = flag_complex;
    x.imag = {1, 1, 1, 1, 1, 1};
    write_file(p, mat_file({x}));
    CHECK_MAT_ERROR(data::read_mat(p), p, "'X' is complex");
  }
  SECTION("dimensions that do not match the data") {
    MatVar x = odds_x();
    x.dims = {3, 3};
    write_file(p, mat_file({x}));
    CHECK_MAT_ERROR(data::read_mat(p), p, "[3, 3] (9 values) but its real part holds 6");
  }
  SECTION("dimensions whose product overflows") {
    MatVar x = odds_x();
    x.dims = {2147483647, 2147483647, 2147483647, 2147483647};
    write_file(p, mat_file({x}));
    CHECK_MAT_ERROR(data::read_mat(p), p, "too large");
  }
  SECTION("a negative dimension") {
    MatVar x = odds_x();
    x.dims = {-3, -2};
    write_file(p, mat_file({x}));
    CHECK_MAT_ERROR(data::read_mat(p), p, "negative dimension");
  }
  SECTION("a real part that is not a whole number of values") {
    Bytes b = header(false), f, d;
    put(f, mx_double, 4, false), put(f, 0, 4, false);
    put(d, 1, 4, false), put(d, 1, 4, false);
    Bytes m = element(mi_uint32, f, false);
    append(m, element(mi_int32, d, false));
    append(m, element(mi_int8, {'X'}, false, true));
    append(m, element(mi_double, Bytes(7, 0), false));  // 7 bytes of "doubles"
    append(b, element(mi_matrix, m, false));
    write_file(p, b);
    CHECK_MAT_ERROR(data::read_mat(p), p, "not a whole number of 8-byte values");
  }
  SECTION("an unsupported storage type") {
    MatVar x = odds_x();
    x.has_tail = true;
    x.tail = element(mi_compressed, Bytes(48, 0), false);  // type 15 as a real part
    write_file(p, mat_file({x}));
    CHECK_MAT_ERROR(data::read_mat(p), p, "unsupported data type 15");
  }
  SECTION("a small data element claiming more than 4 bytes") {
    Bytes b = good;
    // X's name tag is the small element at 128 + 8 (miMATRIX tag) + 16 (flags) + 16 (dims).
    REQUIRE(b[168] == mi_int8);
    b[170] = 6;
    write_file(p, b);
    CHECK_MAT_ERROR(data::read_mat(p), p, "small data element claiming 6 bytes");
  }
  SECTION("a byte count past the end of the file") {
    Bytes b = good;
    b[132] = 0xff, b[133] = 0xff, b[134] = 0xff, b[135] = 0x7f;  // X's miMATRIX claims 2 GiB
    write_file(p, b);
    CHECK_MAT_ERROR(data::read_mat(p), p, "claims 2147483647 bytes");
  }
  SECTION("array flags of the wrong type") {
    Bytes b = good;
    b[136] = mi_int32;  // the flags tag (after the 8-byte miMATRIX tag)
    write_file(p, b);
    CHECK_MAT_ERROR(data::read_mat(p), p, "array flags");
  }
  SECTION("a bad zlib stream") {
    Bytes b = header(false);
    Bytes z = compressed(matrix(odds_x(), false), false);
    z[8] ^= 0xff;  // first byte of the zlib header
    append(b, z);
    write_file(p, b);
    CHECK_MAT_ERROR(data::read_mat(p), p, "zlib");
  }
  SECTION("a zlib stream cut short inside a consistent element") {
    Bytes z = compressed(matrix(odds_x(), false), false);
    Bytes cut(z.begin(), z.begin() + 8 + 12);
    cut[4] = 12, cut[5] = 0, cut[6] = 0, cut[7] = 0;  // byte count now says 12
    Bytes b = header(false);
    append(b, cut);
    write_file(p, b);
    CHECK_MAT_ERROR(data::read_mat(p), p, "zlib stream is truncated");
  }
  SECTION("a compressed element that inflates past the cap") {
    MatVar big{"big", {64, 64}, std::vector<double>(64 * 64, 1.0)};  // 32 KiB of doubles
    write_file(p, mat_file({big}, false, true));
    CHECK(data::read_mat(p).at("big").numel() == 64 * 64);
    CHECK_MAT_ERROR(data::read_mat(p, 4096), p, "past the limit of 4096 bytes");
  }
  SECTION("miCOMPRESSED nested too deep") {
    Bytes e = matrix(odds_x(), false);
    for (int k = 0; k < 2; ++k) e = compressed(e, false);
    Bytes b = header(false);
    append(b, e);
    write_file(p, b);
    CHECK(data::read_mat(p).count("X") == 1);  // two levels: accepted
    for (int k = 0; k < 4; ++k) e = compressed(e, false);
    b = header(false);
    append(b, e);
    write_file(p, b);
    CHECK_MAT_ERROR(data::read_mat(p), p, "nested");
  }
}

TEST_CASE("mat: read_odds rejects missing or mismatched X and y", "[data][mat]") {
  const std::string p = tmp_path("odds_bad");
  SECTION("X missing") {
    write_file(p, mat_file({odds_y()}));
    CHECK_MAT_ERROR(data::read_odds(p), p, "'X' is missing");
  }
  SECTION("y missing") {
    write_file(p, mat_file({odds_x()}));
    CHECK_MAT_ERROR(data::read_odds(p), p, "'y' is missing");
  }
  SECTION("y longer than X") {
    write_file(p, mat_file({odds_x(), {"y", {4, 1}, {0, 1, 0, 0}}}));
    CHECK_MAT_ERROR(data::read_odds(p), p, "'y' holds 4 labels but 'X' has 3 rows");
  }
  SECTION("a label that is not 0 or 1") {
    write_file(p, mat_file({odds_x(), {"y", {3, 1}, {0, 2, 0}}}));
    CHECK_MAT_ERROR(data::read_odds(p), p, "at index 1, not 0 or 1");
  }
  SECTION("y a matrix") {
    write_file(p, mat_file({{"X", {6, 1}, {1, 2, 3, 4, 5, 6}}, {"y", {3, 2}, {0, 0, 0, 1, 1, 1}}}));
    CHECK_MAT_ERROR(data::read_odds(p), p, "'y' has shape [3, 2]");
  }
  SECTION("X of rank 3") {
    write_file(p, mat_file({{"X", {3, 1, 2}, {1, 2, 3, 4, 5, 6}}, odds_y()}));
    CHECK_MAT_ERROR(data::read_odds(p), p, "'X' has shape [3, 1, 2]");
  }
}

TEST_CASE("mat: randomly corrupted files either read or raise normad::Error", "[data][mat]") {
  // A small fuzz pass: any other exception fails the test, a crash fails the run (try it under ASan).
  const bool z = GENERATE(false, true);
  const Bytes good = mat_file({odds_x(), odds_y()}, false, z);
  const std::string p = tmp_path(z ? "fuzz_z" : "fuzz");
  std::mt19937 rng(z ? 7 : 3);
  int errors = 0;
  for (int it = 0; it < 400; ++it) {
    Bytes b = good;
    // Overwrite 1 to 4 bytes after the header with random values.
    for (int k = 1 + int(rng() % 4); k > 0; --k) b[128 + rng() % (b.size() - 128)] = uint8_t(rng());
    write_file(p, b);
    try {
      data::read_mat(p);
    } catch (const normad::Error& e) {
      CHECK_THAT(e.what(), Catch::Contains(p));
      ++errors;
    }
  }
  CHECK(errors > 0);  // the pass did reach the error paths
}

TEST_CASE("mat: read_csv recognises a MAT-file by content and reads ODDS's X and y as a table", "[data][mat]") {
  // `normad train --data cardio.mat` read the MAT-file as CSV ("line 1: ..."); every command that
  // takes a table goes through read_csv, so each now takes .mat files whatever their name.
  for (bool z : {false, true}) {
    const std::string p = tmp_path(z ? "table_z.dat" : "table.dat");  // not named .mat on purpose
    write_file(p, mat_file({odds_x(), odds_y()}, false, z));
    const data::Csv csv = data::read_csv(p);
    CHECK(csv.header == std::vector<std::string>{"x0", "x1", "y"});
    REQUIRE(csv.rows.size() == 3);
    // X = [1 -4; 2 5; 3 6] (column-major 1 2 3 -4 5 6), y = 0 1 0
    CHECK(csv.rows[0] == std::vector<std::string>{"1", "-4", "0"});
    CHECK(csv.rows[1] == std::vector<std::string>{"2", "5", "1"});
    CHECK(csv.rows[2] == std::vector<std::string>{"3", "6", "0"});
    const data::Table t = data::Preprocess::fit(csv, {.label = "y"}).apply(csv);
    CHECK(t.x.shape() == Shape{3, 2});
    CHECK(t.labels == std::vector<std::string>{"0", "1", "0"});
  }
  const std::string bad = tmp_path("table_bad.dat");
  Bytes b = mat_file({odds_x()});  // no y
  write_file(bad, b);
  CHECK_THROWS_WITH(data::read_csv(bad), Catch::Contains(bad) && Catch::Contains("'y'"));
}
