// normad IDX reader (see data/idx.h). zlib's gzread reads gzip and plain files alike.
// Math: value = byte / 255 for images. Tested by tests/test_idx.cpp.
#include "data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <memory>

namespace normad::data {

namespace {
struct GzCloser {
  void operator()(gzFile f) const { gzclose(f); }
};

// Reads exactly n bytes or throws naming the file and what was being read.
void read_exact(gzFile f, void* dst, size_t n, const std::string& path, const char* what) {
  size_t got = 0;
  while (got < n) {
    const unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - got, 1u << 30));
    const int r = gzread(f, static_cast<char*>(dst) + got, chunk);
    if (r <= 0) throw Error(path + ": truncated IDX file while reading " + what);
    got += static_cast<size_t>(r);
  }
}
}  // namespace

Idx read_idx(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) throw Error(path + ": no such IDX file");
  std::unique_ptr<gzFile_s, GzCloser> f(gzopen(path.c_str(), "rb"));
  if (!f) throw Error(path + ": cannot open");
  unsigned char magic[4];
  read_exact(f.get(), magic, 4, path, "the magic number");
  if (magic[0] != 0 || magic[1] != 0) throw Error(path + ": not an IDX file (bad magic number)");
  if (magic[2] != 0x08)
    throw Error(path + ": IDX value type 0x" + std::to_string(magic[2]) + " is not uint8 (0x08)");
  const int rank = magic[3];
  if (rank < 1 || rank > 4) throw Error(path + ": IDX rank " + std::to_string(rank) + " unsupported");
  Idx out;
  uint64_t n = 1;
  for (int d = 0; d < rank; ++d) {
    unsigned char b[4];
    read_exact(f.get(), b, 4, path, "the dimensions");
    const uint64_t s = (uint64_t(b[0]) << 24) | (uint64_t(b[1]) << 16) | (uint64_t(b[2]) << 8) | b[3];
    n *= s;
    if (n > (uint64_t(1) << 34)) throw Error(path + ": IDX dimensions too large");
    out.shape.push_back(static_cast<int64_t>(s));
  }
  // In chunks, so memory follows the values the file really holds, not the sizes its header
  // declares (a 20-byte file may declare 2^34 values; a gzip file's length says nothing).
  constexpr uint64_t chunk = uint64_t(1) << 24;
  while (out.bytes.size() < n) {
    const size_t done = out.bytes.size(), step = static_cast<size_t>(std::min(n - done, chunk));
    out.bytes.resize(done + step);
    read_exact(f.get(), out.bytes.data() + done, step, path, "the values");
  }
  return out;
}

Tensor read_idx_images(const std::string& path) {
  Idx idx = read_idx(path);
  if (idx.shape.size() != 3) throw Error(path + ": expected [N, H, W] images, got " + shape_str(idx.shape));
  Tensor t({idx.shape[0], 1, idx.shape[1], idx.shape[2]});
  for (size_t i = 0; i < idx.bytes.size(); ++i) t.data()[i] = idx.bytes[i] / 255.f;
  return t;
}

std::vector<int64_t> read_idx_labels(const std::string& path) {
  Idx idx = read_idx(path);
  if (idx.shape.size() != 1) throw Error(path + ": expected [N] labels, got " + shape_str(idx.shape));
  return std::vector<int64_t>(idx.bytes.begin(), idx.bytes.end());
}

Mnist load_mnist_dir(const std::string& dir) {
  // Prefer the .gz names the Debian package ships; accept unpacked files too.
  auto pick = [&](const std::string& stem) {
    for (const std::string& p : {dir + "/" + stem + ".gz", dir + "/" + stem})
      if (std::filesystem::exists(p)) return p;
    throw Error(dir + ": missing " + stem + "(.gz)");
  };
  Mnist m;
  m.train_x = read_idx_images(pick("train-images-idx3-ubyte"));
  m.train_y = read_idx_labels(pick("train-labels-idx1-ubyte"));
  m.test_x = read_idx_images(pick("t10k-images-idx3-ubyte"));
  m.test_y = read_idx_labels(pick("t10k-labels-idx1-ubyte"));
  if (m.train_x.size(0) != int64_t(m.train_y.size()) || m.test_x.size(0) != int64_t(m.test_y.size()))
    throw Error(dir + ": image and label counts differ");
  return m;
}

}  // namespace normad::data
