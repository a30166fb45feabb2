// normad weight files in the safetensors format (https://github.com/huggingface/safetensors).
// Format: u64 little-endian N | N bytes of JSON header {"name": {"dtype", "shape", "data_offsets":
// [b, e]}, "__metadata__": {str: str}} padded with spaces to a multiple of 8 | data buffer, with
// [b, e) relative to the buffer start. Tested by tests/test_safetensors.cpp.
//
// Parsing follows the reference implementation's validation: every byte of the data buffer belongs
// to exactly one tensor (no overlaps, no gaps, no trailing bytes), so any file we accept the
// reference accepts too. Every check happens before any tensor is allocated, so the memory used is
// bounded by a small multiple of the file size whatever the header claims.
#include "nn/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <json.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

namespace normad::nn {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; a big-endian host would need byte swaps");

namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeader = 100'000'000;  // the reference implementation's limit
constexpr int kMaxDepth = 16;                 // real headers nest 3 deep (file, entry, shape)
constexpr size_t kMaxRank = 64;               // no real tensor comes close

// ---- dtype decoding ------------------------------------------------------------------------

enum class Dtype { F32, F16, BF16, F64, I64, I32 };

struct DtypeInfo {
  const char* name;
  Dtype dtype;
  uint64_t size;  // bytes per element
};

constexpr DtypeInfo kDtypes[] = {
    {"F32", Dtype::F32, 4}, {"F16", Dtype::F16, 2}, {"BF16", Dtype::BF16, 2},
    {"F64", Dtype::F64, 8}, {"I64", Dtype::I64, 8}, {"I32", Dtype::I32, 4},
};

// IEEE half -> float: rebias the exponent (15 -> 127); subnormals are mant * 2^-24 exactly.
float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) return std::bit_cast<float>(sign);  // +-0
    float v = float(mant) * (1.0f / 16777216.0f);      // subnormal, exact in float32
    bits = sign | std::bit_cast<uint32_t>(v);
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf or nan (payload kept)
  } else {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  }
  return std::bit_cast<float>(bits);
}

// bfloat16 is the top half of a float32.
float bf16_to_f32(uint16_t h) { return std::bit_cast<float>(uint32_t(h) << 16); }

// Reads one element at p (possibly unaligned: offsets inside the buffer need not be aligned).
template <class T>
T load_unaligned(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

void decode(float* out, const char* src, int64_t n, Dtype dt) {
  switch (dt) {
    case Dtype::F32:
      if (n) std::memcpy(out, src, size_t(n) * 4);
      break;
    case Dtype::F16:
      for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(load_unaligned<uint16_t>(src + 2 * i));
      break;
    case Dtype::BF16:
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(load_unaligned<uint16_t>(src + 2 * i));
      break;
    case Dtype::F64:
      for (int64_t i = 0; i < n; ++i) out[i] = float(load_unaligned<double>(src + 8 * i));
      break;
    case Dtype::I64:
      for (int64_t i = 0; i < n; ++i) out[i] = float(load_unaligned<int64_t>(src + 8 * i));
      break;
    case Dtype::I32:
      for (int64_t i = 0; i < n; ++i) out[i] = float(load_unaligned<int32_t>(src + 4 * i));
      break;
  }
}

// ---- header validation ---------------------------------------------------------------------

// Nesting depth of a JSON text, ignoring brackets inside strings. Checked before parsing so a
// header of 100 MB of '[' cannot make nlohmann build millions of nested values.
bool depth_within(const std::string& s, size_t begin, size_t end, int limit) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (size_t i = begin; i < end; ++i) {
    char c = s[i];
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

// A non-negative JSON integer (floats like 2.0, negatives and strings are rejected).
bool as_u64(const json& v, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return true;
  }
  if (v.is_number_integer() && v.get<int64_t>() >= 0) {
    *out = uint64_t(v.get<int64_t>());
    return true;
  }
  return false;
}

// One validated header entry, before its data is decoded.
struct Entry {
  std::string name;
  const DtypeInfo* dtype;
  Shape shape;
  int64_t numel;
  uint64_t begin, end;
};

// Validates one "name": {...} entry against a data buffer of `buf_len` bytes.
Entry parse_entry(const std::string& file, const std::string& name, const json& v,
                  uint64_t buf_len) {
  auto fail = [&](const std::string& msg) {
    return Error(file + ": tensor '" + name + "': " + msg);
  };
  if (!v.is_object()) throw fail("entry is not a JSON object");
  Entry e{name, nullptr, {}, 0, 0, 0};

  // dtype: one of the names we decode
  auto it = v.find("dtype");
  if (it == v.end()) throw fail("missing 'dtype'");
  if (!it->is_string()) throw fail("'dtype' is not a string");
  const std::string& dt = it->get_ref<const std::string&>();
  for (const auto& d : kDtypes)
    if (dt == d.name) e.dtype = &d;
  if (!e.dtype) throw fail("unsupported dtype '" + dt + "' (reads F32, F16, BF16, F64, I64, I32)");

  // shape: array of non-negative integers; the product must fit int64 even ignoring zeros, so
  // no later stride computation can overflow
  it = v.find("shape");
  if (it == v.end()) throw fail("missing 'shape'");
  if (!it->is_array()) throw fail("'shape' is not an array");
  if (it->size() > kMaxRank) throw fail("'shape' has rank " + std::to_string(it->size()));
  uint64_t prod_nonzero = 1;
  bool has_zero = false;
  for (const auto& d : *it) {
    uint64_t n;
    if (!as_u64(d, &n)) throw fail("'shape' entry " + d.dump() + " is not a non-negative integer");
    if (n == 0) has_zero = true;
    else if (__builtin_mul_overflow(prod_nonzero, n, &prod_nonzero) ||
             prod_nonzero > uint64_t(std::numeric_limits<int64_t>::max()))
      throw fail("shape " + it->dump() + " overflows the element count");
    e.shape.push_back(int64_t(n));
  }
  e.numel = has_zero ? 0 : int64_t(prod_nonzero);

  // data_offsets: [begin, end] inside the buffer, length = numel * element size
  it = v.find("data_offsets");
  if (it == v.end()) throw fail("missing 'data_offsets'");
  if (!it->is_array() || it->size() != 2 || !as_u64((*it)[0], &e.begin) ||
      !as_u64((*it)[1], &e.end))
    throw fail("'data_offsets' " + it->dump() + " is not [begin, end] of non-negative integers");
  if (e.begin > e.end) throw fail("data_offsets " + it->dump() + " has begin > end");
  if (e.end > buf_len)
    throw fail("data_offsets " + it->dump() + " outside the data buffer of " +
               std::to_string(buf_len) + " bytes");
  uint64_t nbytes;
  if (__builtin_mul_overflow(uint64_t(e.numel), e.dtype->size, &nbytes) ||
      nbytes != e.end - e.begin)
    throw fail("data_offsets " + it->dump() + " span " + std::to_string(e.end - e.begin) +
               " bytes but shape " + shape_str(e.shape) + " of " + dt + " needs " +
               std::to_string(uint64_t(e.numel)) + " x " + std::to_string(e.dtype->size));
  return e;
}

}  // namespace

// ---- reading -------------------------------------------------------------------------------

Safetensors parse_safetensors(const std::string& bytes, const std::string& name) {
  auto fail = [&](const std::string& msg) { return Error(name + ": " + msg); };
  // 8-byte header length; the subtraction below cannot wrap once size >= 8
  if (bytes.size() < 8)
    throw fail("file of " + std::to_string(bytes.size()) +
               " bytes is too short for the header length");
  uint64_t n = load_unaligned<uint64_t>(bytes.data());
  if (n > kMaxHeader) throw fail("header length " + std::to_string(n) + " exceeds 100 MB");
  if (n > bytes.size() - 8)
    throw fail("header length " + std::to_string(n) + " runs past the end of the file (" +
               std::to_string(bytes.size()) + " bytes)");
  if (!depth_within(bytes, 8, 8 + n, kMaxDepth))
    throw fail("header nests deeper than " + std::to_string(kMaxDepth) + " levels");

  // nlohmann without exceptions: invalid JSON (or invalid UTF-8) gives a discarded value
  json h = json::parse(bytes.begin() + 8, bytes.begin() + 8 + std::ptrdiff_t(n), nullptr, false);
  if (h.is_discarded()) throw fail("header is not valid JSON");
  if (!h.is_object()) throw fail("header is not a JSON object");

  // Validate every entry before allocating anything; the data buffer is what follows the header.
  Safetensors out;
  const uint64_t buf_len = bytes.size() - 8 - n;
  std::vector<Entry> entries;
  for (const auto& [key, v] : h.items()) {
    if (key == "__metadata__") {
      if (!v.is_object()) throw fail("__metadata__ is not a JSON object");
      for (const auto& [mk, mv] : v.items()) {
        if (!mv.is_string()) throw fail("__metadata__ value '" + mk + "' is not a string");
        out.metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(name, key, v, buf_len));
  }

  // Sorted by offsets, each tensor must start where the previous one ended and the last must end
  // at the end of the file: rejects overlaps (two names reading the same bytes), holes and
  // trailing bytes, as the reference implementation does.
  std::vector<const Entry*> order;
  for (const auto& e : entries) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t pos = 0;
  for (const Entry* e : order) {
    if (e->begin < pos)
      throw fail("tensor '" + e->name + "' data [" + std::to_string(e->begin) + ", " +
                 std::to_string(e->end) + ") overlaps another tensor (ending at " +
                 std::to_string(pos) + ")");
    if (e->begin > pos)
      throw fail("gap in the data buffer: bytes [" + std::to_string(pos) + ", " +
                 std::to_string(e->begin) + ") before tensor '" + e->name +
                 "' belong to no tensor");
    pos = e->end;
  }
  if (pos != buf_len)
    throw fail("data buffer has " + std::to_string(buf_len - pos) +
               " trailing bytes after the last tensor (ends at " + std::to_string(pos) + " of " +
               std::to_string(buf_len) + ")");

  // Everything is consistent: allocate and decode.
  out.name = name;
  const char* buf = bytes.data() + 8 + n;
  for (const auto& e : entries) {
    Tensor t(e.shape);
    decode(t.data(), buf + e.begin, e.numel, e.dtype->dtype);
    out.tensors.emplace(e.name, std::move(t));
  }
  return out;
}

// Reads the whole file (weights are needed in memory anyway) and parses it.
Safetensors load_safetensors(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw Error(path + ": is a directory, not a file");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path + ": cannot open safetensors file");
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) throw Error(path + ": read error");
  return parse_safetensors(ss.str(), path);
}

// ---- writing -------------------------------------------------------------------------------

void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  // keys sorted; data packed in that order (the reference writer's order for an all-F32 file)
  std::map<std::string, const Tensor*> sorted;
  for (const auto& [k, t] : tensors) {
    if (k == "__metadata__") throw Error(path + ": '__metadata__' is reserved, not a tensor name");
    if (!t.defined()) throw Error(path + ": tensor '" + k + "' is undefined");
    if (!sorted.emplace(k, &t).second) throw Error(path + ": duplicate tensor name '" + k + "'");
  }

  // The header JSON; nlohmann's default object is a std::map, so dump() emits keys sorted.
  std::string header;
  try {
    json h = json::object();
    uint64_t offset = 0;
    for (const auto& [k, t] : sorted) {
      uint64_t nbytes = uint64_t(t->numel()) * 4;
      h[k] = {{"dtype", "F32"}, {"shape", t->shape()}, {"data_offsets", {offset, offset + nbytes}}};
      offset += nbytes;
    }
    if (!metadata.empty()) h["__metadata__"] = metadata;
    header = h.dump();  // throws on names that are not valid UTF-8
  } catch (const json::exception& e) {
    throw Error(path + ": cannot build the header: " + e.what());
  }
  header.append((8 - header.size() % 8) % 8, ' ');  // pad so the data buffer starts 8-aligned

  // Write everything to a sibling temp file (named per process: concurrent writers never share
  // one), flush it to the disk, then rename over the target (atomic on POSIX): after a crash of
  // the process or the machine the target is the old file or the new one, never a torn one.
  const std::string tmp = path + ".tmp" + std::to_string(::getpid());
  auto cleanup_and_fail = [&](const std::string& msg) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    return Error(path + ": " + msg);
  };
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw cleanup_and_fail("cannot open '" + tmp + "' for writing");
    uint64_t n = header.size();
    char len[8];
    std::memcpy(len, &n, 8);  // little-endian host (static_assert above)
    f.write(len, 8);
    f.write(header.data(), std::streamsize(header.size()));
    // float32 data as stored in memory (little-endian), in the header's key order
    // (a tensor on another device is copied to the host first; a host tensor is written in place)
    for (const auto& [k, t] : sorted)
      if (t->numel()) {
        const Tensor host = t->device() == Device::CPU ? *t : t->to(Device::CPU);
        f.write(reinterpret_cast<const char*>(host.data()), std::streamsize(t->numel()) * 4);
      }
    f.flush();
    if (!f) throw cleanup_and_fail("write to '" + tmp + "' failed");
  }
  const int fd = ::open(tmp.c_str(), O_RDONLY);
  const bool synced = fd >= 0 && ::fsync(fd) == 0;
  if (fd >= 0) ::close(fd);
  if (!synced) throw cleanup_and_fail("cannot flush '" + tmp + "' to the disk");
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw cleanup_and_fail("cannot rename '" + tmp + "': " + ec.message());
}

// ---- modules -------------------------------------------------------------------------------

std::string LoadReport::str() const {
  if (ok()) return "all tensors matched";
  std::ostringstream os;
  auto list = [&](const char* what, const std::vector<std::string>& v) {
    if (v.empty()) return;
    os << "\n  " << v.size() << " " << what << ":";
    for (const auto& s : v) os << " " << s << ";";
  };
  os << "state dict mismatch:";
  list("missing (in the module, not in the file)", missing);
  list("unexpected (in the file, not in the module)", unexpected);
  list("shape mismatched", mismatched);
  return os.str();
}

namespace {
// `file` empty: no file prefix (load_state's callers add it, as for its other errors).
void check_finite_tensor(const std::string& file, const std::string& name, const Tensor& t) {
  const float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i)
    if (!std::isfinite(p[i]))
      throw Error((file.empty() ? std::string() : file + ": ") + "tensor '" + name + "' holds " +
                  (std::isnan(p[i]) ? "NaN" : "an infinity") + " at flat index " + std::to_string(i) +
                  ", expected finite weights");
}
}  // namespace

void check_finite(const Safetensors& f) {
  for (const auto& [k, t] : f.tensors) check_finite_tensor(f.name, k, t);
}

LoadReport load_state(Module& m, const Safetensors& f, bool strict) {
  // Match module names against the file: copy on equal shapes, report everything else.
  LoadReport r;
  auto state = m.state_dict();
  std::vector<std::pair<Tensor*, std::map<std::string, Tensor>::const_iterator>> copies;  // (module, file entry)
  std::map<std::string, bool> seen;
  for (auto& [k, t] : state) {
    seen[k] = true;
    auto it = f.tensors.find(k);
    if (it == f.tensors.end()) {
      r.missing.push_back(k);
    } else if (it->second.shape() != t.shape()) {
      r.mismatched.push_back(k + ": file " + shape_str(it->second.shape()) + " vs module " +
                             shape_str(t.shape()));
    } else {
      copies.emplace_back(&t, it);
    }
  }
  for (const auto& [k, t] : f.tensors)
    if (!seen.count(k)) r.unexpected.push_back(k);
  // strict checks everything first, so a failed load leaves the module untouched
  if (strict && !r.ok()) throw Error(r.str());
  for (auto& [dst, src] : copies) check_finite_tensor("", src->first, src->second);  // before anything is copied
  for (auto& [dst, src] : copies) dst->copy_(src->second);  // in place: shares storage with the module
  return r;
}

void save_module(const std::string& path, const Module& m,
                 const std::map<std::string, std::string>& metadata) {
  save_safetensors(path, m.state_dict(), metadata);
}

LoadReport load_module(Module& m, const std::string& path, bool strict) {
  Safetensors f = load_safetensors(path);
  try {
    return load_state(m, f, strict);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

}  // namespace normad::nn
