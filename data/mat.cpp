// normad MAT-file reader (see data/mat.h). The whole file is read into memory and walked element by
// element; every tag, byte count and dimension is checked against the bytes actually present before use,
// so a truncated or hostile file is a normad::Error, never an out-of-bounds read or a huge allocation.
// Math: MATLAB element (i0, ..., ik) sits at column-major offset i0 + d0*(i1 + d1*(i2 + ...)).
// Reference: MathWorks "MAT-File Format" (level 5), tables 1-1 (data types) and 1-3 (array classes).
// Tested by tests/test_mat.cpp.
#include "data/mat.h"

#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace normad::data {

namespace {

// Data types in a tag (table 1-1). 8, 10 and 11 are reserved.
enum MiType : uint32_t {
  mi_int8 = 1, mi_uint8 = 2, mi_int16 = 3, mi_uint16 = 4, mi_int32 = 5, mi_uint32 = 6,
  mi_single = 7, mi_double = 9, mi_int64 = 12, mi_uint64 = 13,
  mi_matrix = 14, mi_compressed = 15, mi_utf8 = 16,
};

// Array classes, the low byte of the first array-flags word (table 1-3).
enum MxClass : uint32_t {
  mx_cell = 1, mx_struct = 2, mx_object = 3, mx_char = 4, mx_sparse = 5,
  mx_double = 6, mx_uint64 = 15,  // 6..15: double, single, int8, uint8, ..., int64, uint64
  mx_function = 16, mx_opaque = 17,
};
constexpr uint32_t flag_complex = 0x0800;  // bit 12 of the flags word; logical (0x0200) needs nothing

constexpr int max_depth = 4;                       // compressed-in-compressed: MATLAB writes depth 1
constexpr uint64_t max_numel = uint64_t(1) << 40;  // overflow guard; the present data is the real limit

// Bytes per value of a numeric storage type; 0 for anything else.
int mi_size(uint32_t type) {
  switch (type) {
    case mi_int8: case mi_uint8: return 1;
    case mi_int16: case mi_uint16: return 2;
    case mi_int32: case mi_uint32: case mi_single: return 4;
    case mi_double: case mi_int64: case mi_uint64: return 8;
    default: return 0;
  }
}

// Assembles `size` bytes into an unsigned integer in the file's byte order (host order never matters).
uint64_t load_bits(const uint8_t* p, int size, bool big) {
  uint64_t v = 0;
  for (int k = 0; k < size; ++k) v |= uint64_t(p[big ? k : size - 1 - k]) << (8 * (size - 1 - k));
  return v;
}

// One stored value of storage type `type` as a double (C++20 makes the unsigned -> signed casts modular).
double load_value(const uint8_t* p, uint32_t type, bool big) {
  const uint64_t v = load_bits(p, mi_size(type), big);
  switch (type) {
    case mi_int8: return static_cast<int8_t>(v);
    case mi_uint8: return static_cast<uint8_t>(v);
    case mi_int16: return static_cast<int16_t>(v);
    case mi_uint16: return static_cast<uint16_t>(v);
    case mi_int32: return static_cast<int32_t>(v);
    case mi_uint32: return static_cast<uint32_t>(v);
    case mi_single: return std::bit_cast<float>(static_cast<uint32_t>(v));
    case mi_double: return std::bit_cast<double>(v);
    case mi_int64: return static_cast<double>(static_cast<int64_t>(v));
    default: return static_cast<double>(v);  // mi_uint64
  }
}

// Name of a class we skip, or nullptr for the numeric classes we read.
const char* skipped_kind(uint32_t cls) {
  if (cls >= mx_double && cls <= mx_uint64) return nullptr;
  switch (cls) {
    case mx_cell: return "cell";
    case mx_struct: return "struct";
    case mx_object: return "object";
    case mx_char: return "char";
    case mx_sparse: return "sparse";
    case mx_function: return "function handle";
    default: return "opaque";
  }
}

// A data element located in a buffer: tag fields plus how far to step to the next element.
struct Element {
  uint32_t type = 0;
  const uint8_t* data = nullptr;
  size_t nbytes = 0;  // payload bytes
  size_t total = 0;   // tag + payload + padding to 8 bytes (miCOMPRESSED payloads are not padded)
};

struct Parser {
  const std::string& path;
  uint64_t max_inflate;                        // cap per miCOMPRESSED payload
  bool big = false;                            // "MI" file: big-endian
  std::map<std::string, Tensor> arrays;        // dense real numeric arrays
  std::map<std::string, std::string> skipped;  // name -> kind of the arrays not read ("sparse", ...)

  Parser(const std::string& p, uint64_t cap) : path(p), max_inflate(cap) {}

  [[noreturn]] void fail(const std::string& msg) const { throw Error(path + ": " + msg); }
  uint32_t u32(const uint8_t* p) const { return static_cast<uint32_t>(load_bits(p, 4, big)); }

  // Reads the tag at p with `avail` bytes left in the enclosing buffer.
  Element tag(const uint8_t* p, size_t avail, const std::string& what) const {
    // Both forms occupy at least 8 bytes: a full tag, or a small element's 4-byte tag + 4 data bytes.
    if (avail < 8)
      fail("truncated MAT-file: " + std::to_string(avail) + " bytes left for the tag of the " + what);
    Element e;
    const uint32_t w0 = u32(p);
    if (w0 >> 16) {
      // Small data element: byte count in the upper 16 bits, type in the lower, data inline.
      e.type = w0 & 0xffff;
      e.nbytes = w0 >> 16;
      e.data = p + 4;
      e.total = 8;
      if (e.nbytes > 4)
        fail("the " + what + " is a small data element claiming " + std::to_string(e.nbytes) +
             " bytes (at most 4)");
      return e;
    }
    e.type = w0;
    e.nbytes = u32(p + 4);
    e.data = p + 8;
    if (e.nbytes > avail - 8)
      fail("truncated MAT-file: the " + what + " claims " + std::to_string(e.nbytes) + " bytes but " +
           std::to_string(avail - 8) + " are left");
    const size_t padded = e.type == mi_compressed ? e.nbytes : (e.nbytes + 7) / 8 * 8;
    e.total = 8 + std::min(padded, avail - 8);  // tolerate a missing pad after the very last element
    return e;
  }

  // A sequence of top-level elements (the file body, or an inflated miCOMPRESSED payload).
  void elements(const uint8_t* p, size_t n, int depth) {
    size_t off = 0;
    while (off < n) {
      const Element e = tag(p + off, n - off, "data element at offset " + std::to_string(off));
      if (e.type == mi_matrix) {
        matrix(e.data, e.nbytes);
      } else if (e.type == mi_compressed) {
        if (depth + 1 > max_depth)
          fail("miCOMPRESSED elements nested more than " + std::to_string(max_depth) + " deep");
        const std::vector<uint8_t> inner = inflate_payload(e.data, e.nbytes);
        elements(inner.data(), inner.size(), depth + 1);
      }
      // Any other type never appears at the top level of a MAT-file; step over it like MATLAB does.
      off += e.total;
    }
  }

  // The payload of one miMATRIX element: flags, dimensions, name, real part [, imaginary part].
  void matrix(const uint8_t* p, size_t n) {
    if (n == 0) return;  // empty placeholder element: no flags, nothing to read
    size_t off = 0;
    auto sub = [&](const std::string& what) {
      const Element e = tag(p + off, n - off, what);
      off += e.total;
      return e;
    };
    const Element flags = sub("array flags");
    if (flags.type != mi_uint32 || flags.nbytes != 8) fail("array flags are not 8 bytes of miUINT32");
    const uint32_t f0 = u32(flags.data);
    const uint32_t cls = f0 & 0xff;
    // Opaque (MCOS) objects carry a name but no dimensions: skip them before reading dimensions.
    Element dims{};
    if (cls != mx_opaque) {
      dims = sub("array dimensions");
      if (dims.type != mi_int32 || dims.nbytes < 8 || dims.nbytes % 4)
        fail("array dimensions are not two or more miINT32 values");
    }
    const Element name_e = sub("array name");
    if (name_e.type != mi_int8 && name_e.type != mi_uint8 && name_e.type != mi_utf8)
      fail("array name has data type " + std::to_string(name_e.type) + ", not miINT8");
    const std::string name(reinterpret_cast<const char*>(name_e.data), name_e.nbytes);
    const std::string var = "variable '" + name + "'";
    if (const char* kind = skipped_kind(cls)) {
      skipped[name] = kind;  // a later variable of the same name wins, as in scipy.io.loadmat
      arrays.erase(name);
      return;
    }
    if (f0 & flag_complex) fail(var + " is complex (only real arrays are supported)");

    // Dimensions: non-negative int32; the product is checked against the real part below.
    Shape shape;
    uint64_t numel = 1;
    for (size_t k = 0; k < dims.nbytes / 4; ++k) {
      const int32_t d = static_cast<int32_t>(u32(dims.data + 4 * k));
      if (d < 0) fail(var + " has negative dimension " + std::to_string(d));
      if (d != 0 && numel > max_numel / uint64_t(d)) fail(var + " has dimensions too large to hold");
      numel *= uint64_t(d);
      shape.push_back(d);
    }
    const Element re = sub("real part of " + var);
    const int esize = mi_size(re.type);
    if (esize == 0) fail(var + " stores its values as unsupported data type " + std::to_string(re.type));
    if (re.nbytes % esize)
      fail(var + ": real part of " + std::to_string(re.nbytes) + " bytes is not a whole number of " +
           std::to_string(esize) + "-byte values");
    // Only now allocate: numel equals a count of bytes that are really in the buffer.
    if (re.nbytes / esize != numel)
      fail(var + " has dimensions " + shape_str(shape) + " (" + std::to_string(numel) +
           " values) but its real part holds " + std::to_string(re.nbytes / esize));

    // Column-major -> row-major: walk the source in order with an odometer over the multi-index,
    // keeping the row-major destination offset up to date (strides[k] = prod of shape[l > k]).
    const size_t rank = shape.size();
    std::vector<int64_t> strides(rank, 1), idx(rank, 0);
    for (size_t k = rank - 1; k > 0; --k) strides[k - 1] = strides[k] * shape[k];
    Tensor t = Tensor::empty(shape);
    float* out = t.data();
    int64_t dst = 0;
    for (uint64_t j = 0; j < numel; ++j) {
      out[dst] = static_cast<float>(load_value(re.data + j * esize, re.type, big));
      // Advance i0 (fastest in column-major); carry into i1, i2, ... when a dimension wraps.
      for (size_t k = 0; k < rank; ++k) {
        dst += strides[k];
        if (++idx[k] < shape[k]) break;
        dst -= strides[k] * shape[k];
        idx[k] = 0;
      }
    }
    arrays[name] = t;
    skipped.erase(name);
  }

  // Inflates a zlib stream in 64 KiB steps, so memory follows the real output, capped at max_inflate.
  std::vector<uint8_t> inflate_payload(const uint8_t* p, size_t n) const {
    z_stream zs{};
    if (inflateInit(&zs) != Z_OK) fail("zlib inflateInit failed");
    struct End {
      z_stream* z;
      ~End() { inflateEnd(z); }
    } end{&zs};
    zs.next_in = const_cast<Bytef*>(p);
    zs.avail_in = static_cast<uInt>(n);  // n came from a u32 byte count
    std::vector<uint8_t> out, chunk(size_t(1) << 16);
    for (;;) {
      zs.next_out = chunk.data();
      zs.avail_out = static_cast<uInt>(chunk.size());
      const int r = inflate(&zs, Z_NO_FLUSH);
      // Z_BUF_ERROR here means no progress was possible: the input ended before the stream did.
      if (r == Z_BUF_ERROR) fail("miCOMPRESSED element: zlib stream is truncated");
      if (r != Z_OK && r != Z_STREAM_END)
        fail("miCOMPRESSED element: zlib error " + std::to_string(r) +
             (zs.msg ? std::string(" (") + zs.msg + ")" : ""));
      const size_t got = chunk.size() - zs.avail_out;
      if (out.size() + got > max_inflate)
        fail("miCOMPRESSED element inflates past the limit of " + std::to_string(max_inflate) + " bytes");
      out.insert(out.end(), chunk.begin(), chunk.begin() + got);
      if (r == Z_STREAM_END) return out;
    }
  }
};

std::vector<uint8_t> read_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw Error(path + ": no such MAT-file");
  const uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) throw Error(path + ": cannot stat (" + ec.message() + ")");
  std::ifstream f(path, std::ios::binary);
  std::vector<uint8_t> bytes(size);
  if (!f || !f.read(reinterpret_cast<char*>(bytes.data()), std::streamsize(size)))
    throw Error(path + ": cannot read");
  return bytes;
}

// Parses the header and every element into ps.arrays and ps.skipped.
void parse_mat(Parser& ps) {
  const std::vector<uint8_t> bytes = read_file(ps.path);
  if (bytes.size() < 128)
    ps.fail("truncated MAT-file: " + std::to_string(bytes.size()) + " bytes, less than the 128-byte header");
  // Bytes 126-127 read "IM" when written little-endian (the int16 'M' << 8 | 'I'), "MI" when big-endian.
  if (bytes[126] == 'I' && bytes[127] == 'M') {
    ps.big = false;
  } else if (bytes[126] == 'M' && bytes[127] == 'I') {
    ps.big = true;
  } else {
    ps.fail("not a MATLAB level-5 MAT-file (no IM/MI endian indicator at byte 126; a v4 file?)");
  }
  const uint32_t version = static_cast<uint32_t>(load_bits(&bytes[124], 2, ps.big));
  if (version != 0x0100) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%04x", version);
    ps.fail(std::string("MAT-file version ") + hex + " is not 0x0100 (level 5)" +
            (version == 0x0200 ? "; v7.3 files are HDF5: save with -v7 instead" : ""));
  }
  ps.elements(bytes.data() + 128, bytes.size() - 128, 0);
}

}  // namespace

std::map<std::string, Tensor> read_mat(const std::string& path, uint64_t max_inflate) {
  Parser ps(path, max_inflate);
  parse_mat(ps);
  return std::move(ps.arrays);
}

OddsTable read_odds(const std::string& path) {
  Parser ps(path, kMatMaxInflate);
  parse_mat(ps);
  // A named dense array, or an error saying whether it is missing or of a kind we do not read.
  auto get = [&](const std::string& name) -> const Tensor& {
    if (auto it = ps.arrays.find(name); it != ps.arrays.end()) return it->second;
    if (auto it = ps.skipped.find(name); it != ps.skipped.end())
      ps.fail("variable '" + name + "' is a " + it->second + " array, not a dense numeric matrix");
    ps.fail("variable '" + name + "' is missing (an ODDS file holds X and y)");
  };
  OddsTable t;
  t.X = get("X");
  const Tensor& y = get("y");
  if (t.X.dim() != 2) ps.fail("variable 'X' has shape " + shape_str(t.X.shape()) + ", not [n, d]");
  const int64_t n = t.X.size(0);
  if (y.dim() != 2 || (y.size(0) != 1 && y.size(1) != 1))
    ps.fail("variable 'y' has shape " + shape_str(y.shape()) + ", not [n, 1] or [1, n]");
  if (y.numel() != n)
    ps.fail("variable 'y' holds " + std::to_string(y.numel()) + " labels but 'X' has " +
            std::to_string(n) + " rows");
  t.y.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    const float v = y.data()[i];
    if (v != 0.f && v != 1.f)
      ps.fail("variable 'y' holds " + std::to_string(v) + " at index " + std::to_string(i) + ", not 0 or 1");
    t.y[i] = static_cast<int>(v);
  }
  return t;
}

}  // namespace normad::data
