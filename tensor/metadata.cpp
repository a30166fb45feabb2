// normad metadata reader (see tensor/metadata.h): std::from_chars over the whole field, so "1e3x",
// " 5" and "nan" are refused rather than read in part.
// Tested by tests/test_metadata.cpp.
#include "tensor/metadata.h"

#include <charconv>
#include <cmath>

#include "tensor/tensor.h"

namespace normad {

MetadataReader::MetadataReader(const std::map<std::string, std::string>& fields, std::string file)
    : fields_(fields), file_(std::move(file)) {}

bool MetadataReader::has(const std::string& key) const { return fields_.count(key) > 0; }

const std::string& MetadataReader::text(const std::string& key, const std::string& expected) const {
  auto it = fields_.find(key);
  if (it == fields_.end())
    throw Error(file_ + ": metadata field '" + key + "' is missing" + (expected.empty() ? "" : " (" + expected + ")"));
  return it->second;
}

double MetadataReader::number(const std::string& key) const {
  const std::string& v = text(key);
  double x = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (ec != std::errc() || end != v.data() + v.size() || !std::isfinite(x))
    throw Error(file_ + ": metadata field '" + key + "' = '" + v + "' is not a finite number");
  return x;
}

int64_t MetadataReader::integer(const std::string& key, int64_t lo, int64_t hi) const {
  const std::string& v = text(key);
  int64_t x = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (ec != std::errc() || end != v.data() + v.size() || x < lo || x > hi)
    throw Error(file_ + ": metadata field '" + key + "' = '" + v + "' is not an integer in [" + std::to_string(lo) +
                ", " + std::to_string(hi) + "]");
  return x;
}

}  // namespace normad
