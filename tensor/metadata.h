// normad metadata: the one reader of the text fields a model file (safetensors __metadata__) or a
// features CSV's header carries. Every field is text; numbers are read whole (no trailing
// characters, finite), integers within the bounds the caller allows, and each failure is a
// normad::Error naming the file and the field. Used by nn/ (Safetensors::meta_*), data/
// (Preprocess::from_metadata), models/ (NTL config, image pipeline, Gaussian-AD) and detect/.
// Math: none. Tested by tests/test_metadata.cpp.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace normad {

class MetadataReader {
 public:
  // `file` names the source in errors ("model.safetensors", "features.csv:1").
  MetadataReader(const std::map<std::string, std::string>& fields, std::string file);
  MetadataReader(std::map<std::string, std::string>&&, std::string) = delete;  // it keeps a reference

  bool has(const std::string& key) const;
  // The field's text; a missing field is an Error ("FILE: metadata field 'KEY' is missing", with
  // `expected` appended in parentheses when given: what such a file should have come from).
  const std::string& text(const std::string& key, const std::string& expected = "") const;
  // One finite number, the whole field ("FILE: metadata field 'KEY' = 'V' is not a finite number").
  double number(const std::string& key) const;
  // An integer in [lo, hi], the whole field ("... is not an integer in [lo, hi]").
  int64_t integer(const std::string& key, int64_t lo, int64_t hi) const;
  // A flag written as 0 or 1.
  bool flag(const std::string& key) const { return integer(key, 0, 1) == 1; }

  const std::string& file() const { return file_; }

 private:
  const std::map<std::string, std::string>& fields_;
  std::string file_;
};

}  // namespace normad
