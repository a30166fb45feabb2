// Shared helpers of the fuzz targets (tests/fuzz/fuzz_*.cpp).
// The contract every target checks: on any input a parser either returns a value or throws
// normad::Error with a message; any other exception (std::bad_alloc, std::out_of_range, ...) is
// a failure and aborts, so libFuzzer reports it like a crash (and the replay test fails). Memory
// errors and undefined behaviour are caught by the sanitizers the fuzz build links
// (CMakeLists.txt, NORMAD_FUZZ).
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <string>
#include <typeinfo>

#include "nn/safetensors.h"
#include "tensor/tensor.h"

namespace normad::fuzz {

// Runs fn; a normad::Error is the parser's expected answer to bad input (its message must not be
// empty); anything else aborts with its type and message.
template <class Fn>
void expect_clean(const char* what, Fn&& fn) {
  try {
    fn();
  } catch (const normad::Error& e) {
    static const bool verbose = std::getenv("NORMAD_FUZZ_VERBOSE") != nullptr;  // to see which seeds are refused
    if (verbose) std::fprintf(stderr, "fuzz %s: Error: %s\n", what, e.what());
    if (std::string(e.what()).empty()) {
      std::fprintf(stderr, "fuzz %s: normad::Error with an empty message\n", what);
      std::abort();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz %s: unexpected %s: %s\n", what, typeid(e).name(), e.what());
    std::abort();
  } catch (...) {
    std::fprintf(stderr, "fuzz %s: unexpected non-standard exception\n", what);
    std::abort();
  }
}

// A property the target checks on a successful parse (a round trip, a bound); aborts when false.
inline void require(bool ok, const char* what, const std::string& detail) {
  if (ok) return;
  std::fprintf(stderr, "fuzz %s: %s\n", what, detail.c_str());
  std::abort();
}

// Writes the input to this process's scratch file "<TMPDIR or /tmp>/normad_fuzz_<pid><suffix>" for
// the parsers that read files (IDX through zlib's gz reader, .mat, images, model files), and returns
// its path. The same file is rewritten for every input.
inline std::string scratch_file(const uint8_t* data, size_t size, const std::string& suffix) {
  const char* dir = std::getenv("TMPDIR");
  const std::string path =
      std::string(dir && *dir ? dir : "/tmp") + "/normad_fuzz_" + std::to_string(::getpid()) + suffix;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  require(out.good(), "scratch_file", "cannot write " + path);
  return path;
}

// The input as a safetensors file: true with *out filled, false when the parser refused it with a
// normad::Error (anything else aborts, as in expect_clean).
inline bool parse_safetensors(const uint8_t* data, size_t size, nn::Safetensors* out) {
  bool parsed = false;
  expect_clean("safetensors", [&] {
    *out = nn::parse_safetensors(std::string(reinterpret_cast<const char*>(data), size), "fuzz.safetensors");
    parsed = true;
  });
  return parsed;
}

}  // namespace normad::fuzz
