// normad weight files in the safetensors format: 8-byte little-endian header length, a JSON header
// {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}, raw
// little-endian data. Writes F32; reads F32, F16, BF16, F64 and I64 (converted to F32).
// Parsing is bounds-checked: a truncated or hostile file is a normad::Error naming the file.
// Tested by tests/test_safetensors.cpp (round trip, malformed files, Module load reports).
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "nn/module.h"
#include "tensor/metadata.h"

namespace normad::nn {

struct Safetensors {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
  std::string name;  // the file name given to parse / load, for error messages

  // Metadata fields, strictly parsed (tensor/metadata.h); an Error names the file, the field and
  // what was expected.
  MetadataReader meta_reader() const { return MetadataReader(metadata, name); }
  const std::string& meta(const std::string& key) const { return meta_reader().text(key); }  // must be present
  bool has_meta(const std::string& key) const { return metadata.count(key) > 0; }
  double meta_number(const std::string& key) const { return meta_reader().number(key); }  // one finite number
  int64_t meta_int(const std::string& key, int64_t lo, int64_t hi) const {  // an integer in [lo, hi]
    return meta_reader().integer(key, lo, hi);
  }
};
// An Error naming the file, the tensor and the first bad index when a tensor holds NaN or infinity.
// The parser itself keeps such values (the format allows them); weights are checked where they
// enter a model (load_state, and model loaders that read tensors directly).
void check_finite(const Safetensors& f);

// Parses the bytes of a file; `name` is used in error messages.
Safetensors parse_safetensors(const std::string& bytes, const std::string& name);
Safetensors load_safetensors(const std::string& path);
// Writes to path + ".tmp" then renames, so a failure leaves no half-written file.
void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

struct LoadReport {
  std::vector<std::string> missing;     // in the module, not in the file
  std::vector<std::string> unexpected;  // in the file, not in the module
  std::vector<std::string> mismatched;  // "name: file [..] vs module [..]"
  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  std::string str() const;
};

// Copies matching tensors into the module's parameters and buffers (in place). With strict, any
// problem throws a normad::Error listing it; otherwise the report says what was skipped. A
// non-finite value in a tensor that would be copied is always an Error naming the tensor (callers
// add the file name, as for the other errors).
LoadReport load_state(Module& m, const Safetensors& f, bool strict = true);
void save_module(const std::string& path, const Module& m,
                 const std::map<std::string, std::string>& metadata = {});
LoadReport load_module(Module& m, const std::string& path, bool strict = true);

}  // namespace normad::nn
