// Image → pooled backbone features → Gaussian-AD (see image_features.h).
#include "models/image_features.h"

#include <openssl/evp.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <json.hpp>
#include <sstream>

#include "tensor/metadata.h"
#include "tensor/ops.h"

namespace normad::models {

namespace {

namespace fs = std::filesystem;

std::string join_ints(const std::vector<int>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

constexpr const char* kFeaturesLine = "# normad-features ";

// parse_csv counts lines in the text it is given: add the `by` lines removed before it to the
// "path:LINE:" that starts its messages.
std::string shift_line(const std::string& msg, const std::string& path, int64_t by) {
  const std::string head = path + ":";
  if (by == 0 || msg.rfind(head, 0) != 0) return msg;
  const char* b = msg.data() + head.size();
  int64_t line = 0;
  const auto [end, ec] = std::from_chars(b, msg.data() + msg.size(), line);
  if (ec != std::errc() || end == b || *end != ':') return msg;
  return head + std::to_string(line + by) + std::string(end);
}

}  // namespace

namespace {
std::string hex(const unsigned char* bytes, unsigned int n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < n; ++i) out += {digits[bytes[i] >> 4], digits[bytes[i] & 15]};
  return out;
}
}  // namespace

std::string file_sha256(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  check(fs::is_regular_file(path) && f.good(), path, "cannot read the file (expected a weights file)");
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  check(ctx && EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) == 1, path, "SHA-256 could not be started (OpenSSL)");
  std::vector<char> buf(1 << 20);
  while (f) {
    f.read(buf.data(), std::streamsize(buf.size()));
    if (f.gcount() > 0) check(EVP_DigestUpdate(ctx.get(), buf.data(), size_t(f.gcount())) == 1, path, "SHA-256 failed");
  }
  check(f.eof(), path, "read error while computing its SHA-256");
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  check(EVP_DigestFinal_ex(ctx.get(), md, &len) == 1, path, "SHA-256 failed");
  return hex(md, len);
}

std::string text_sha256(const std::string& text) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  check(EVP_Digest(text.data(), text.size(), md, &len, EVP_sha256(), nullptr) == 1, "text_sha256", "SHA-256 failed");
  return hex(md, len);
}

std::string path_relative_to(const std::string& target, const std::string& file) {
  const fs::path dir = fs::absolute(fs::path(file)).parent_path();
  std::error_code ec;
  const fs::path rel = fs::relative(fs::absolute(target), dir, ec);  // weakly canonical on both sides
  return ec || rel.empty() ? fs::absolute(target).lexically_normal().string() : rel.string();
}

std::string path_resolved_from(const std::string& stored, const std::string& file) {
  const fs::path p(stored);
  if (p.is_absolute()) return p.string();
  return (fs::path(file).parent_path() / p).lexically_normal().string();
}

std::map<std::string, std::string> FeatureSpec::to_metadata(const std::string& file) const {
  return {{"features.backbone", backbone},
          {"features.weights", path_relative_to(weights, file)},
          {"features.weights_sha256", weights_sha256},
          {"features.levels", join_ints(levels)},
          {"features.size", std::to_string(prep.size)},
          {"features.crop", std::to_string(prep.crop)},
          {"features.filter", prep.filter},
          {"features.shorter_side", prep.shorter_side ? "1" : "0"}};
}

FeatureSpec FeatureSpec::from_metadata(const std::map<std::string, std::string>& meta, const std::string& file) {
  const MetadataReader m(meta, file);
  auto get = [&](const std::string& key) -> const std::string& {
    return m.text(key, "expected the image pipeline its features were made with");
  };
  FeatureSpec s;
  s.backbone = get("features.backbone");
  s.weights = path_resolved_from(get("features.weights"), file);
  s.weights_sha256 = get("features.weights_sha256");
  check(s.weights_sha256.size() == 64 && s.weights_sha256.find_first_not_of("0123456789abcdef") == std::string::npos,
        file, "field 'features.weights_sha256' must be 64 lowercase hex digits, got '" + s.weights_sha256 + "'");
  s.levels = parse_levels(get("features.levels"), file + ": field 'features.levels'");
  s.prep.size = int(m.integer("features.size", 1, kMaxImageSize));
  s.prep.crop = int(m.integer("features.crop", 0, s.prep.size));
  s.prep.filter = get("features.filter");
  s.prep.shorter_side = m.flag("features.shorter_side");
  try {
    data::parse_resize_filter(s.prep.filter);
  } catch (const Error& e) {
    throw Error(file + ": field 'features.filter': " + e.what());
  }
  return s;
}

FeatureExtractor::FeatureExtractor(FeatureSpec spec) : spec_(std::move(spec)) {
  net_ = make_backbone(spec_.backbone);
  // The weights' identity: recorded in model files and features CSVs, checked when given.
  const std::string sha = file_sha256(spec_.weights);
  check(spec_.weights_sha256.empty() || spec_.weights_sha256 == sha, spec_.weights,
        "SHA-256 " + sha + ", expected " + spec_.weights_sha256 + " (not the weights the features were made with)");
  spec_.weights_sha256 = sha;
  load_backbone(*net_, spec_.weights);
  net_->to(spec_.device);  // loaded on the host, run on the spec's device
  if (spec_.levels.empty())
    for (int l = 0; l < net_->num_levels(); ++l) spec_.levels.push_back(l);
  for (size_t i = 0; i < spec_.levels.size(); ++i) {
    const int l = spec_.levels[i];
    check(l >= 0 && l < net_->num_levels(), "--levels",
          spec_.backbone + " has levels 0.." + std::to_string(net_->num_levels() - 1) + ", got " + std::to_string(l));
    check(i == 0 || l > spec_.levels[i - 1], "--levels", "must be increasing (features come in level order)");
  }
  if (spec_.prep.size == 0) spec_.prep.size = net_->native_size();
  spec_.prep.validate();
  check(spec_.batch >= 1, "--batch", "must be >= 1, got " + std::to_string(spec_.batch));
}

std::vector<int64_t> FeatureExtractor::dims() const {
  std::vector<int64_t> d;
  for (int l : spec_.levels) d.push_back(net_->level_channels()[size_t(l)]);
  return d;
}

std::vector<Tensor> FeatureExtractor::pooled(const Tensor& images) const {
  std::vector<Tensor> maps = net_->features(images.to(spec_.device), spec_.levels);
  for (Tensor& m : maps) m = global_avg_pool(m);  // [N, C, H, W] -> [N, C]
  return maps;
}

std::vector<Tensor> FeatureExtractor::maps(const Tensor& images) const {
  return net_->features(images.to(spec_.device), spec_.levels);
}

void FeatureExtractor::for_each_batch_maps(const std::vector<std::string>& paths,
                                           const std::function<void(const std::vector<Tensor>&)>& each,
                                           const ProgressFn& progress) const {
  file_batches(paths, each, progress, false);
}

void FeatureExtractor::for_each_batch(const std::vector<std::string>& paths,
                                      const std::function<void(const std::vector<Tensor>&)>& each,
                                      const ProgressFn& progress) const {
  file_batches(paths, each, progress, true);
}

void FeatureExtractor::file_batches(const std::vector<std::string>& paths,
                                    const std::function<void(const std::vector<Tensor>&)>& each,
                                    const ProgressFn& progress, bool pool) const {
  batches(
      int64_t(paths.size()),
      [&](int64_t b, int64_t e) {
        return data::load_batch(std::vector<std::string>(paths.begin() + b, paths.begin() + e), spec_.prep);
      },
      [&](int64_t i) { return paths[size_t(i)]; }, each, progress, pool);
}

void FeatureExtractor::for_each_batch(const std::vector<Tensor>& images,
                                      const std::function<void(const std::vector<Tensor>&)>& each,
                                      const ProgressFn& progress) const {
  batches(
      int64_t(images.size()),
      [&](int64_t b, int64_t e) {
        return data::preprocess_batch(std::vector<Tensor>(images.begin() + b, images.begin() + e), spec_.prep);
      },
      [](int64_t i) { return "image " + std::to_string(i); }, each, progress);
}

void FeatureExtractor::batches(int64_t n, const std::function<Tensor(int64_t, int64_t)>& load,
                               const std::function<std::string(int64_t)>& name,
                               const std::function<void(const std::vector<Tensor>&)>& each,
                               const ProgressFn& progress, bool pool) const {
  for (int64_t b = 0; b < n; b += spec_.batch) {
    const Tensor images = load(b, std::min(n, b + spec_.batch));
    const std::vector<Tensor> lv = pool ? pooled(images) : maps(images);
    // A backbone that overflows gives inf / NaN features, which would score as NaN: name the image
    // (checked on a host copy: no copy when the backbone runs on the CPU).
    for (size_t l = 0; l < lv.size(); ++l) {
      const Tensor host = lv[l].to(Device::CPU);
      const int64_t per_image = host.numel() / host.size(0), channel_size = per_image / host.size(1);
      for (int64_t i = 0; i < host.numel(); ++i)
        if (!std::isfinite(host.data()[i]))  // the name is built only for the error
          check(false, name(b + i / per_image),
                  "level " + std::to_string(spec_.levels[l]) + " feature " + std::to_string(i % per_image / channel_size) + " is " +
                    std::to_string(host.data()[i]) + ", expected a finite number (the backbone " + spec_.backbone +
                    " with " + spec_.weights + " overflowed)");
    }
    each(lv);
    if (progress) progress(std::min(n, b + spec_.batch), n);
  }
}

Tensor FeatureExtractor::extract(const std::vector<std::string>& paths, const ProgressFn& progress) const {
  std::vector<Tensor> rows;
  for_each_batch(paths, [&](const std::vector<Tensor>& lv) { rows.push_back(concat(lv, 1).to(Device::CPU)); }, progress);
  check(!rows.empty(), "features", "no images");
  return concat(rows, 0);
}

namespace {
template <typename Images>
std::vector<double> score_batches(const FeatureExtractor& fx, const GaussianAd& model, const Images& images,
                                  const ProgressFn& progress) {
  std::vector<double> scores;
  fx.for_each_batch(images, [&](const std::vector<Tensor>& lv) {
    const std::vector<double> s = model.score(lv);
    scores.insert(scores.end(), s.begin(), s.end());
  }, progress);
  return scores;
}
}  // namespace

namespace {
// This rank's share of the paths (all of them without a communicator).
std::vector<std::string> my_share(const std::vector<std::string>& paths, Communicator* comm) {
  if (!comm || comm->size() == 1) return paths;
  const auto [begin, end] = rank_share(int64_t(paths.size()), comm->rank(), comm->size());
  return std::vector<std::string>(paths.begin() + begin, paths.begin() + end);
}
}  // namespace

std::vector<double> score_images(const FeatureExtractor& fx, const GaussianAd& model,
                                 const std::vector<std::string>& paths, const ProgressFn& progress,
                                 Communicator* comm) {
  const std::vector<std::string> mine = my_share(paths, comm);
  std::vector<double> scores = mine.empty() ? std::vector<double>{} : score_batches(fx, model, mine, progress);
  if (!comm || comm->size() == 1) return scores;
  // Every rank's scores in path order: this rank's at its share's offset, then one all-gather.
  std::vector<int64_t> counts;
  for (int r = 0; r < comm->size(); ++r) {
    const auto [b, e] = rank_share(int64_t(paths.size()), r, comm->size());
    counts.push_back(e - b);
  }
  std::vector<double> all(paths.size(), 0.0);
  const int64_t at = rank_share(int64_t(paths.size()), comm->rank(), comm->size()).first;
  std::copy(scores.begin(), scores.end(), all.begin() + at);
  comm->all_gather(all.data(), counts);
  return all;
}

std::vector<double> score_images(const FeatureExtractor& fx, const GaussianAd& model,
                                 const std::vector<Tensor>& images, const ProgressFn& progress) {
  return score_batches(fx, model, images, progress);
}

GaussianAd fit_images(const FeatureExtractor& fx, const std::vector<std::string>& paths,
                      const GaussianAdOptions& options, const ProgressFn& progress, Communicator* comm) {
  GaussianFitter fitter(fx.dims(), options);
  // The fit's moment sums are in double on the host (gaussian_ad.md): the pooled vectors come back.
  const std::vector<std::string> mine = my_share(paths, comm);  // a rank with none still joins finish()
  if (!mine.empty())
    fx.for_each_batch(mine, [&](const std::vector<Tensor>& lv) {
      std::vector<Tensor> host;
      for (const Tensor& t : lv) host.push_back(t.to(Device::CPU));
      fitter.add(host);
    }, progress);
  return fitter.finish(comm);
}

std::vector<int> parse_levels(const std::string& text, const std::string& where) {
  std::vector<int> levels;
  for (size_t i = 0; i <= text.size();) {
    size_t j = text.find(',', i);
    if (j == std::string::npos) j = text.size();
    const std::string item = text.substr(i, j - i);
    int v = 0;
    const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    check(!item.empty() && ec == std::errc() && end == item.data() + item.size(), where,
          "level '" + item + "' is not an integer");
    levels.push_back(v);
    i = j + 1;
  }
  return levels;
}

// ---- features CSV ----

std::string features_csv_line(const FeatureSpec& spec, const std::vector<int64_t>& dims, const std::string& path) {
  nlohmann::json js(spec.to_metadata(path));
  std::string d;
  for (size_t i = 0; i < dims.size(); ++i) d += (i ? "," : "") + std::to_string(dims[i]);
  js["features.dims"] = d;
  return kFeaturesLine + js.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::vector<Tensor> FeaturesCsv::levels() const {
  std::vector<Tensor> out;
  int64_t c = 0;
  for (int64_t d : dims) {
    out.push_back(slice(table.x, 1, c, c + d));
    c += d;
  }
  return out;
}

FeaturesCsv read_features_csv(const std::string& path) {
  check(fs::is_regular_file(path), path, "no such features CSV file");
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  check(bool(f), path, "cannot read the features CSV");
  std::string text = ss.str();
  if (text.rfind("\xEF\xBB\xBF", 0) == 0) text.erase(0, 3);  // a UTF-8 byte order mark
  FeaturesCsv out;
  int64_t skipped = 0;  // lines before the header, added back to line numbers in errors
  if (text.rfind(kFeaturesLine, 0) == 0) {
    const size_t eol = text.find('\n');
    const std::string line = text.substr(0, eol), js_text = line.substr(std::strlen(kFeaturesLine));
    text.erase(0, eol == std::string::npos ? text.size() : eol + 1);
    skipped = 1;
    const nlohmann::json js = nlohmann::json::parse(js_text, nullptr, false);
    check(js.is_object(), path + ":1", "the '# normad-features' line must hold one JSON object of string fields");
    for (const auto& [k, v] : js.items()) {
      check(v.is_string(), path + ":1", "field '" + k + "' must be a string, got " + v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      out.pipeline[k] = v.get<std::string>();
    }
    FeatureSpec::from_metadata(out.pipeline, path + ":1");  // the pipeline must be complete and valid
    check(out.pipeline.count("features.dims") > 0, path + ":1", "field 'features.dims' is missing (columns per level)");
    for (int d : parse_levels(out.pipeline.at("features.dims"), path + ":1: field 'features.dims'")) {
      check(d >= 1, path + ":1", "field 'features.dims' must list positive column counts, got " + std::to_string(d));
      out.dims.push_back(d);
    }
  }
  data::Csv csv;
  try {
    csv = data::parse_csv(text, path);
  } catch (const Error& e) {
    throw Error(shift_line(e.what(), path, skipped));
  }
  for (int64_t& l : csv.lines) l += skipped;  // read_table's error lines count in the whole file
  const bool named = std::find(csv.header.begin(), csv.header.end(), "name") != csv.header.end();
  check(named, path + ":" + std::to_string(1 + skipped), "no column 'name' (expected name,f0,f1,...)");
  check(!csv.rows.empty(), path, "no rows (expected one row of features per image)");
  data::Preprocess p;  // the identity: every column but name a numeric feature, in file order
  p.label = "name";
  for (const std::string& c : csv.header)
    if (c != "name") p.inputs.push_back(c);
  check(!p.inputs.empty(), path, "no feature columns after 'name'");
  out.table = p.apply(csv);  // names file, line and column of a non-finite or non-numeric cell
  const int64_t D = out.table.x.size(1);
  if (out.dims.empty()) out.dims = {D};
  int64_t total = 0;
  for (int64_t d : out.dims) total += d;
  check(total == D, path + ":1", "field 'features.dims' adds up to " + std::to_string(total) + " columns, the file has " +
                                      std::to_string(D) + " feature columns");
  return out;
}

}  // namespace normad::models
