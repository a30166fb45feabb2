// Tests for nn/safetensors: round trips, the byte layout read back by hand, decoding of F16/BF16/
// F64/I64/I32 from hand-built bytes with known values, one normad::Error per malformed header
// field, a truncation/bit-flip loop (parse or throw, never crash) and Module load reports.
// Exact comparisons throughout: every value here is representable in float32.
#include "tests/helpers.h"

#include <json.hpp>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>

#include "nn/safetensors.h"

using namespace normad;
using Catch::Contains;

namespace {

// A fresh path under the temp dir, unique per process, removed (with its .tmp) on destruction.
struct TempPath {
  std::string path;
  explicit TempPath(const std::string& name) {
    path = (std::filesystem::temp_directory_path() /
            ("normad_st_" + std::to_string(::getpid()) + "_" + name))
               .string();
    cleanup();
  }
  ~TempPath() { cleanup(); }
  void cleanup() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
    std::filesystem::remove(path + ".tmp", ec);
  }
};

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Appends the little-endian bytes of v (the library static_asserts a little-endian host).
template <class T>
void put(std::string& s, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  s.append(b, sizeof(T));
}

// u64 header length + header text + data, with no padding (the reader must not require it).
std::string st_file(const std::string& header, const std::string& data = "") {
  std::string s;
  put<uint64_t>(s, header.size());
  return s + header + data;
}

// Parses `bytes` as file "bad.safetensors", expecting a normad::Error; returns its message.
std::string parse_error(const std::string& bytes) {
  try {
    nn::parse_safetensors(bytes, "bad.safetensors");
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

std::string f32_entry(const std::string& shape, const std::string& offsets) {
  return R"({"dtype": "F32", "shape": )" + shape + R"(, "data_offsets": )" + offsets + "}";
}

// Two parameters and a buffer, with a child so names are dotted like torch's state_dict.
struct TinyHead : nn::Module {
  TinyHead() {
    register_parameter("weight", Tensor::from({2, 3}, {1, 2, 3, 4, 5, 6}));
    register_buffer("running_mean", Tensor::from({3}, {0.5f, -0.5f, 0.25f}));
  }
  Var forward(const Var& x) override { return x; }
};

struct TinyNet : nn::Module {
  std::shared_ptr<TinyHead> head;
  TinyNet() {
    register_parameter("scale", Tensor::scalar(2.f));
    head = register_module("head", std::make_shared<TinyHead>());
  }
  Var forward(const Var& x) override { return head->forward(x); }
  void fill(float v) {
    for (auto& [k, t] : state_dict()) t.fill_(v);
  }
  // the state_dict entry called `name` (shares storage with the module)
  Tensor get(const std::string& name) const {
    for (auto& [k, t] : state_dict())
      if (k == name) return t;
    throw Error("no state entry " + name);
  }
};

}  // namespace

TEST_CASE("safetensors round trip keeps tensors shapes and metadata", "[safetensors]") {
  TempPath p("roundtrip.safetensors");
  std::vector<std::pair<std::string, Tensor>> ts = {
      {"b.weight", Tensor::from({2, 3}, {1.5f, -2.f, 3.25f, 0.f, -0.f, 1e-30f})},
      {"a.bias", Tensor::from({3}, {std::numeric_limits<float>::infinity(), -7.f, 65504.f})},
      {"scalar", Tensor::scalar(42.f)},
      {"empty", Tensor::zeros({0, 4})},
      {"net.0.conv.weight", Tensor::from({1, 1, 2, 2}, {0.1f, 0.2f, 0.3f, 0.4f})},
  };
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "grüße, \"quoted\""}};
  nn::save_safetensors(p.path, ts, meta);
  CHECK_FALSE(std::filesystem::exists(p.path + ".tmp"));

  nn::Safetensors f = nn::load_safetensors(p.path);
  CHECK(f.metadata == meta);
  REQUIRE(f.tensors.size() == ts.size());
  for (const auto& [k, t] : ts) {
    INFO("tensor " << k);
    REQUIRE(f.tensors.count(k) == 1);
    const Tensor& g = f.tensors.at(k);
    CHECK(g.shape() == t.shape());
    CHECK(g.to_vector() == t.to_vector());  // bit-exact (-0.f == 0.f aside)
  }
  CHECK(std::signbit(f.tensors.at("b.weight").data()[4]));  // -0 survives
  CHECK(f.tensors.at("scalar").dim() == 0);

  // Saving again replaces the file.
  nn::save_safetensors(p.path, {{"x", Tensor::scalar(1.f)}});
  f = nn::load_safetensors(p.path);
  CHECK(f.tensors.size() == 1);
  CHECK(f.metadata.empty());
}

TEST_CASE("safetensors file layout read back by hand", "[safetensors]") {
  TempPath p("layout.safetensors");
  nn::save_safetensors(p.path,
                       {{"zeta", Tensor::from({2}, {1.f, -2.f})},
                        {"alpha", Tensor::from({1, 3}, {0.5f, 0.25f, 8.f})}},
                       {{"k", "v"}});
  std::string bytes = read_bytes(p.path);
  REQUIRE(bytes.size() >= 8);

  // header length: 8 bytes, little-endian, assembled byte by byte
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(bytes[i]);
  CHECK(n % 8 == 0);                          // padded like the reference writer
  REQUIRE(bytes.size() == 8 + n + 5 * 4);     // header + 5 floats, nothing else
  std::string header = bytes.substr(8, n);
  CHECK(header.front() == '{');
  size_t close = header.find_last_of('}');
  CHECK(header.find_first_not_of(' ', close + 1) == std::string::npos);  // padding is spaces

  auto h = nlohmann::json::parse(header);
  CHECK(h["__metadata__"] == nlohmann::json({{"k", "v"}}));
  CHECK(h["alpha"]["dtype"] == "F32");
  CHECK(h["alpha"]["shape"] == nlohmann::json({1, 3}));
  // keys sorted, data packed in key order: alpha first
  CHECK(h["alpha"]["data_offsets"] == nlohmann::json({0, 12}));
  CHECK(h["zeta"]["data_offsets"] == nlohmann::json({12, 20}));
  CHECK(h.size() == 3);

  // data: the float32 bit patterns, little-endian
  const char* data = bytes.data() + 8 + n;
  auto f32_at = [&](int i) {
    uint32_t b = 0;
    for (int k = 3; k >= 0; --k) b = (b << 8) | uint8_t(data[4 * i + k]);
    return b;
  };
  CHECK(f32_at(0) == 0x3F000000u);  // 0.5
  CHECK(f32_at(2) == 0x41000000u);  // 8
  CHECK(f32_at(3) == 0x3F800000u);  // 1
  CHECK(f32_at(4) == 0xC0000000u);  // -2
}

TEST_CASE("safetensors decodes F16 BF16 F64 I64 and I32", "[safetensors]") {
  // F16 first with 7 elements (14 bytes) so the following tensors start unaligned.
  std::string data;
  const uint16_t f16[] = {0x3C00, 0xC000, 0x0001, 0x03FF, 0x7BFF, 0x7C00, 0x8000};
  for (uint16_t h : f16) put(data, h);                                    // [0, 14)
  for (uint16_t h : {0x3F80, 0xC040, 0x4049}) put(data, uint16_t(h));     // [14, 20)
  for (double d : {1.5, -0.1, 1e-3}) put(data, d);                        // [20, 44)
  for (int64_t v : {int64_t(-5), int64_t(1) << 40, int64_t(3)}) put(data, v);  // [44, 68)
  for (int32_t v : {-7, 123456}) put(data, v);                            // [68, 76)
  put(data, uint16_t(0x7E00));                                            // [76, 78) F16 nan
  std::string header = R"({"h": {"dtype": "F16", "shape": [7], "data_offsets": [0, 14]},
    "b": {"dtype": "BF16", "shape": [3, 1], "data_offsets": [14, 20]},
    "d": {"dtype": "F64", "shape": [3], "data_offsets": [20, 44]},
    "l": {"dtype": "I64", "shape": [1, 3], "data_offsets": [44, 68]},
    "i": {"dtype": "I32", "shape": [2], "data_offsets": [68, 76]},
    "nan": {"dtype": "F16", "shape": [], "data_offsets": [76, 78]}})";
  nn::Safetensors f = nn::parse_safetensors(st_file(header, data), "mixed");

  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> h = f.tensors.at("h").to_vector();
  CHECK(h[0] == 1.f);
  CHECK(h[1] == -2.f);
  CHECK(h[2] == std::ldexp(1.f, -24));           // smallest subnormal
  CHECK(h[3] == std::ldexp(1023.f, -24));        // largest subnormal
  CHECK(h[4] == 65504.f);                        // largest finite half
  CHECK(h[5] == inf);
  CHECK((h[6] == 0.f && std::signbit(h[6])));    // -0
  CHECK(std::isnan(f.tensors.at("nan").item()));
  CHECK(f.tensors.at("b").shape() == Shape{3, 1});
  CHECK(f.tensors.at("b").to_vector() == std::vector<float>{1.f, -3.f, 3.140625f});
  CHECK(f.tensors.at("d").to_vector() == std::vector<float>{1.5f, float(-0.1), float(1e-3)});
  CHECK(f.tensors.at("l").to_vector() == std::vector<float>{-5.f, std::ldexp(1.f, 40), 3.f});
  CHECK(f.tensors.at("i").to_vector() == std::vector<float>{-7.f, 123456.f});
}

TEST_CASE("safetensors rejects malformed files with a message naming the problem",
          "[safetensors]") {
  std::string d8(8, '\0'), d12(12, '\0');
  std::string long_len;
  put<uint64_t>(long_len, 200);
  long_len += "{}";
  std::string huge_len;
  put<uint64_t>(huge_len, uint64_t(1) << 40);
  huge_len += "{}";
  std::string deep = std::string(100, '[') + std::string(100, ']');

  struct Case {
    const char* what;
    std::string bytes;
    std::vector<std::string> expect;  // substrings of the message
  };
  std::vector<Case> cases = {
      {"empty file", "", {"too short"}},
      {"7 bytes", "1234567", {"too short"}},
      {"header past end", long_len, {"header length 200", "past the end"}},
      {"header > 100 MB", huge_len, {"exceeds 100 MB"}},
      {"not json", st_file("{\"a\": "), {"not valid JSON"}},
      {"invalid utf-8", st_file("{\"\xff\xfe\": {}}"), {"not valid JSON"}},
      {"json array", st_file("[1, 2]"), {"not a JSON object"}},
      {"deep nesting", st_file(deep), {"nests deeper"}},
      {"entry not object", st_file(R"({"w": 3})"), {"tensor 'w'", "not a JSON object"}},
      {"missing dtype", st_file(R"({"w": {"shape": [2], "data_offsets": [0, 8]}})", d8),
       {"tensor 'w'", "missing 'dtype'"}},
      {"dtype not string",
       st_file(R"({"w": {"dtype": 4, "shape": [2], "data_offsets": [0, 8]}})", d8),
       {"tensor 'w'", "'dtype' is not a string"}},
      {"unknown dtype",
       st_file(R"({"w": {"dtype": "F8_E4M3", "shape": [8], "data_offsets": [0, 8]}})", d8),
       {"tensor 'w'", "unsupported dtype 'F8_E4M3'"}},
      {"missing shape", st_file(R"({"w": {"dtype": "F32", "data_offsets": [0, 8]}})", d8),
       {"tensor 'w'", "missing 'shape'"}},
      {"shape not array", st_file(R"({"w": )" + f32_entry("2", "[0, 8]") + "}", d8),
       {"tensor 'w'", "'shape' is not an array"}},
      {"negative dim", st_file(R"({"w": )" + f32_entry("[-2]", "[0, 8]") + "}", d8),
       {"tensor 'w'", "'shape' entry -2 is not a non-negative integer"}},
      {"fractional dim", st_file(R"({"w": )" + f32_entry("[2.5]", "[0, 8]") + "}", d8),
       {"tensor 'w'", "'shape' entry 2.5"}},
      {"float dim", st_file(R"({"w": )" + f32_entry("[2.0]", "[0, 8]") + "}", d8),
       {"tensor 'w'", "not a non-negative integer"}},
      {"string dim", st_file(R"({"w": )" + f32_entry(R"(["2"])", "[0, 8]") + "}", d8),
       {"tensor 'w'", "not a non-negative integer"}},
      {"shape overflow",
       st_file(R"({"w": )" + f32_entry("[4294967296, 4294967296, 0]", "[0, 0]") + "}"),
       {"tensor 'w'", "overflows"}},
      {"dim past u64",
       st_file(R"({"w": )" + f32_entry("[18446744073709551616]", "[0, 8]") + "}", d8),
       {"tensor 'w'", "not a non-negative integer"}},
      {"missing offsets", st_file(R"({"w": {"dtype": "F32", "shape": [2]}})", d8),
       {"tensor 'w'", "missing 'data_offsets'"}},
      {"one offset", st_file(R"({"w": )" + f32_entry("[2]", "[8]") + "}", d8),
       {"tensor 'w'", "'data_offsets' [8] is not [begin, end]"}},
      {"string offset", st_file(R"({"w": )" + f32_entry("[2]", R"([0, "8"])") + "}", d8),
       {"tensor 'w'", "'data_offsets'"}},
      {"negative offset", st_file(R"({"w": )" + f32_entry("[2]", "[-8, 0]") + "}", d8),
       {"tensor 'w'", "'data_offsets'"}},
      {"begin > end", st_file(R"({"w": )" + f32_entry("[0]", "[8, 4]") + "}", d8),
       {"tensor 'w'", "begin > end"}},
      {"outside buffer", st_file(R"({"w": )" + f32_entry("[4]", "[0, 16]") + "}", d8),
       {"tensor 'w'", "outside the data buffer of 8 bytes"}},
      {"huge offsets",
       st_file(R"({"w": )" + f32_entry("[1]", "[18446744073709551611, 18446744073709551615]") +
               "}"),
       {"tensor 'w'", "outside the data buffer"}},
      {"length != numel * size", st_file(R"({"w": )" + f32_entry("[3]", "[0, 8]") + "}", d8),
       {"tensor 'w'", "span 8 bytes", "needs 3 x 4"}},
      {"dtype size",
       st_file(R"({"w": {"dtype": "F16", "shape": [2], "data_offsets": [0, 8]}})", d8),
       {"tensor 'w'", "needs 2 x 2"}},
      {"overlap",
       st_file(R"({"a": )" + f32_entry("[2]", "[0, 8]") + R"(, "b": )" +
                   f32_entry("[2]", "[4, 12]") + "}",
               d12),
       {"tensor 'b'", "overlaps"}},
      {"same region twice",
       st_file(R"({"a": )" + f32_entry("[2]", "[0, 8]") + R"(, "b": )" +
                   f32_entry("[2]", "[0, 8]") + "}",
               d8),
       {"overlaps"}},
      {"gap",
       st_file(R"({"a": )" + f32_entry("[1]", "[0, 4]") + R"(, "b": )" +
                   f32_entry("[1]", "[8, 12]") + "}",
               d12),
       {"gap", "[4, 8)", "tensor 'b'"}},
      {"trailing bytes", st_file(R"({"w": )" + f32_entry("[1]", "[0, 4]") + "}", d8),
       {"4 trailing bytes"}},
      {"metadata not object", st_file(R"({"__metadata__": ["a"]})"),
       {"__metadata__ is not a JSON object"}},
      {"metadata value not string", st_file(R"({"__metadata__": {"epoch": 3}})"),
       {"__metadata__ value 'epoch' is not a string"}},
  };
  for (const auto& c : cases) {
    INFO("case: " << c.what);
    REQUIRE_THROWS_AS(nn::parse_safetensors(c.bytes, "bad.safetensors"), Error);
    std::string msg = parse_error(c.bytes);
    CHECK_THAT(msg, Contains("bad.safetensors"));
    for (const auto& e : c.expect) CHECK_THAT(msg, Contains(e));
  }

  // The same shapes parse when consistent: the checks above are not over-eager.
  CHECK_NOTHROW(nn::parse_safetensors(st_file(R"({"w": )" + f32_entry("[2]", "[0, 8]") + "}", d8),
                                      "good"));
  CHECK_NOTHROW(nn::parse_safetensors(st_file("{}"), "no tensors"));
  CHECK_NOTHROW(nn::parse_safetensors(
      st_file(R"({"e": )" + f32_entry("[0, 3]", "[0, 0]") + R"(, "w": )" +
                  f32_entry("[2]", "[0, 8]") + "}",
              d8),
      "empty tensor beside a full one"));
}

TEST_CASE("safetensors survives truncated and corrupted files", "[safetensors]") {
  TempPath p("fuzz.safetensors");
  nn::save_safetensors(p.path,
                       {{"w", Tensor::from({2, 2}, {1, 2, 3, 4})},
                        {"b", Tensor::from({2}, {5, 6})},
                        {"s", Tensor::scalar(7)}},
                       {{"epoch", "3"}});
  const std::string good = read_bytes(p.path);
  uint64_t n;
  std::memcpy(&n, good.data(), 8);
  REQUIRE_NOTHROW(nn::parse_safetensors(good, "good"));

  // parse or throw normad::Error; anything else (or a crash) fails the test
  int parsed = 0, rejected = 0;
  auto attempt = [&](const std::string& bytes) {
    try {
      nn::parse_safetensors(bytes, "fuzz");
      ++parsed;
    } catch (const Error&) {
      ++rejected;
    } catch (const std::exception& e) {
      FAIL("non-normad exception: " << e.what());
    }
  };

  // Every truncation loses bytes some tensor owns, so each one must be rejected.
  for (size_t len = 0; len < good.size(); ++len) attempt(good.substr(0, len));
  CHECK(parsed == 0);
  CHECK(rejected == int(good.size()));

  // Random byte flips in the length and header: 1-4 bytes per variant, fixed seed.
  std::mt19937 rng(20240611);
  std::uniform_int_distribution<size_t> pos(0, 8 + n - 1);
  std::uniform_int_distribution<int> byte(0, 255), count(1, 4);
  const char interesting[] = "{}[]\",:-0123456789eE. \\";
  parsed = rejected = 0;
  for (int v = 0; v < 600; ++v) {
    std::string bad = good;
    for (int k = count(rng); k > 0; --k) {
      size_t at = pos(rng);
      // half the time a JSON-significant character, so the parser gets past the first token
      bad[at] = (v % 2) ? char(byte(rng)) : interesting[byte(rng) % (sizeof(interesting) - 1)];
    }
    attempt(bad);
  }
  INFO("parsed " << parsed << ", rejected " << rejected);
  CHECK(parsed + rejected == 600);
  CHECK(rejected > 300);

  // Valid JSON with one leaf replaced by a hostile value, so the semantic checks (not the JSON
  // lexer) do the rejecting. flatten() gives paths like "/w/shape/0".
  const nlohmann::json header = nlohmann::json::parse(good.substr(8, n));
  const nlohmann::json flat = header.flatten();
  std::vector<std::string> leaves;
  for (const auto& [k, v] : flat.items()) leaves.push_back(k);
  const std::vector<nlohmann::json> hostile = {
      -1, 0, 1, 3, 16, 4294967296ull, 9223372036854775807ll, 18446744073709551615ull, 2.5,
      "F16", "F64", "I64", "x", nullptr, nlohmann::json::array(), nlohmann::json::object()};
  std::uniform_int_distribution<size_t> leaf(0, leaves.size() - 1), pick(0, hostile.size() - 1);
  parsed = rejected = 0;
  for (int v = 0; v < 400; ++v) {
    nlohmann::json h2 = header;
    h2[nlohmann::json::json_pointer(leaves[leaf(rng)])] = hostile[pick(rng)];
    if (v % 4 == 0) {  // and sometimes drop a whole field ("/w/dtype" -> erase "dtype" in "/w")
      nlohmann::json::json_pointer ptr(leaves[leaf(rng)]);
      if (ptr.parent_pointer().empty() || !h2.contains(ptr.parent_pointer())) continue;
      auto& parent = h2[ptr.parent_pointer()];
      if (parent.is_object()) parent.erase(ptr.back());
    }
    std::string hdr = h2.dump();
    attempt(st_file(hdr, good.substr(8 + n)));
  }
  INFO("structured: parsed " << parsed << ", rejected " << rejected);
  CHECK(parsed + rejected > 300);
  CHECK(rejected > 200);

  // Flips inside the data buffer change values, never validity.
  parsed = rejected = 0;
  std::uniform_int_distribution<size_t> dpos(8 + n, good.size() - 1);
  for (int v = 0; v < 50; ++v) {
    std::string bad = good;
    bad[dpos(rng)] ^= char(1 + byte(rng) % 255);
    attempt(bad);
  }
  CHECK(parsed == 50);
}

TEST_CASE("safetensors file errors name the path and leave no temp file", "[safetensors]") {
  // missing file
  std::string missing = "/nonexistent_normad_dir/w.safetensors";
  REQUIRE_THROWS_AS(nn::load_safetensors(missing), Error);
  CHECK_THROWS_WITH(nn::load_safetensors(missing), Contains(missing) && Contains("cannot open"));

  // a directory is not a weight file
  TempPath dir("a_dir.safetensors");
  std::filesystem::create_directories(dir.path + "/inner");
  CHECK_THROWS_WITH(nn::load_safetensors(dir.path), Contains(dir.path) && Contains("directory"));

  // unwritable location: nothing is left behind
  std::vector<std::pair<std::string, Tensor>> ts = {{"w", Tensor::ones({2})}};
  REQUIRE_THROWS_AS(nn::save_safetensors(missing, ts), Error);
  CHECK_THROWS_WITH(nn::save_safetensors(missing, ts), Contains(missing));

  // the rename fails (target is a non-empty directory): the .tmp file is removed
  REQUIRE_THROWS_AS(nn::save_safetensors(dir.path, ts), Error);
  CHECK_THROWS_WITH(nn::save_safetensors(dir.path, ts), Contains(dir.path) && Contains("rename"));
  CHECK_FALSE(std::filesystem::exists(dir.path + ".tmp"));

  // bad tensor lists
  TempPath p("names.safetensors");
  CHECK_THROWS_WITH(
      nn::save_safetensors(p.path, {{"w", Tensor::ones({1})}, {"w", Tensor::ones({1})}}),
      Contains("duplicate tensor name 'w'"));
  CHECK_THROWS_WITH(nn::save_safetensors(p.path, {{"__metadata__", Tensor::ones({1})}}),
                    Contains("reserved"));
  CHECK_THROWS_WITH(nn::save_safetensors(p.path, {{"u", Tensor()}}), Contains("'u' is undefined"));
  CHECK_FALSE(std::filesystem::exists(p.path));
  CHECK_FALSE(std::filesystem::exists(p.path + ".tmp"));
}

TEST_CASE("safetensors Module save/load round trip and load reports", "[safetensors]") {
  TempPath p("module.safetensors");
  TinyNet a;
  nn::save_module(p.path, a, {{"model", "tiny"}});
  CHECK(nn::load_safetensors(p.path).metadata.at("model") == "tiny");

  // load into a zeroed copy: values arrive in place (same storage as before the load)
  TinyNet b;
  b.fill(0.f);
  auto before = b.state_dict();
  REQUIRE(before.size() == 3);
  nn::LoadReport r = nn::load_module(b, p.path);
  CHECK(r.ok());
  CHECK(r.str() == "all tensors matched");
  auto after = b.state_dict();
  auto ref = a.state_dict();
  for (size_t i = 0; i < after.size(); ++i) {
    INFO(after[i].first);
    CHECK(after[i].second.data() == before[i].second.data());
    CHECK(after[i].second.to_vector() == ref[i].second.to_vector());
  }
  CHECK(b.head->named_parameters()[0].second.data().to_vector() ==
        std::vector<float>{1, 2, 3, 4, 5, 6});

  // a file with one name missing, one extra and one wrong shape
  nn::Safetensors f = nn::load_safetensors(p.path);
  f.tensors.erase("head.running_mean");
  f.tensors["extra.bias"] = Tensor::zeros({1});
  f.tensors["head.weight"] = Tensor::zeros({3, 2});
  f.tensors["scale"] = Tensor::scalar(9.f);

  b.fill(7.f);
  SECTION("strict throws listing every problem and changes nothing") {
    REQUIRE_THROWS_AS(nn::load_state(b, f, true), Error);
    CHECK_THROWS_WITH(nn::load_state(b, f, true),
                      Contains("head.running_mean") && Contains("extra.bias") &&
                          Contains("head.weight: file [3, 2] vs module [2, 3]"));
    CHECK(b.get("scale").item() == 7.f);  // scale untouched
  }
  SECTION("non-strict loads what matches and reports the rest") {
    nn::LoadReport r2 = nn::load_state(b, f, false);
    CHECK_FALSE(r2.ok());
    CHECK(r2.missing == std::vector<std::string>{"head.running_mean"});
    CHECK(r2.unexpected == std::vector<std::string>{"extra.bias"});
    REQUIRE(r2.mismatched.size() == 1);
    CHECK(r2.mismatched[0] == "head.weight: file [3, 2] vs module [2, 3]");
    CHECK_THAT(r2.str(), Contains("1 missing") && Contains("1 unexpected") &&
                             Contains("1 shape mismatched"));
    CHECK(b.get("scale").item() == 9.f);  // scale loaded
    CHECK(b.get("head.running_mean").to_vector() == std::vector<float>{7, 7, 7});
  }
  SECTION("load_module strict names the file") {
    TempPath q("module_bad.safetensors");
    nn::save_safetensors(q.path, {{"scale", Tensor::scalar(1.f)}});
    CHECK_THROWS_WITH(nn::load_module(b, q.path), Contains(q.path) && Contains("head.weight"));
    nn::LoadReport r3 = nn::load_module(b, q.path, false);
    CHECK(r3.missing.size() == 2);
    CHECK(b.get("scale").item() == 1.f);
  }
}
