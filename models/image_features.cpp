// Image → pooled backbone features → Gaussian-AD (see image_features.h).
#include "models/image_features.h"

#include <charconv>

#include "tensor/ops.h"

namespace normad::models {

namespace {

std::string join_ints(const std::vector<int>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

}  // namespace

std::map<std::string, std::string> FeatureSpec::to_metadata() const {
  return {{"features.backbone", backbone},
          {"features.weights", weights},
          {"features.levels", join_ints(levels)},
          {"features.size", std::to_string(prep.size)},
          {"features.crop", std::to_string(prep.crop)},
          {"features.filter", prep.filter},
          {"features.shorter_side", prep.shorter_side ? "1" : "0"}};
}

FeatureSpec FeatureSpec::from_metadata(const std::map<std::string, std::string>& meta, const std::string& file) {
  auto get = [&](const std::string& key) -> const std::string& {
    auto it = meta.find(key);
    if (it == meta.end())
      throw Error(file + ": metadata field '" + key + "' is missing (a model fitted on --features has no image pipeline)");
    return it->second;
  };
  FeatureSpec s;
  s.backbone = get("features.backbone");
  s.weights = get("features.weights");
  s.levels = parse_levels(get("features.levels"), file + ": metadata field features.levels");
  try {
    s.prep.size = std::stoi(get("features.size"));
    s.prep.crop = std::stoi(get("features.crop"));
  } catch (const std::logic_error&) {
    throw Error(file + ": metadata fields features.size / crop are not integers");
  }
  s.prep.filter = get("features.filter");
  s.prep.shorter_side = get("features.shorter_side") == "1";
  return s;
}

FeatureExtractor::FeatureExtractor(FeatureSpec spec) : spec_(std::move(spec)) {
  net_ = make_backbone(spec_.backbone);
  load_backbone(*net_, spec_.weights);
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
  std::vector<Tensor> maps = net_->features(images, spec_.levels);
  for (Tensor& m : maps) m = global_avg_pool(m);  // [N, C, H, W] -> [N, C]
  return maps;
}

void FeatureExtractor::for_each_batch(const std::vector<std::string>& paths,
                                      const std::function<void(const std::vector<Tensor>&)>& each,
                                      const ProgressFn& progress) const {
  const int64_t n = int64_t(paths.size());
  for (int64_t b = 0; b < n; b += spec_.batch) {
    const std::vector<std::string> chunk(paths.begin() + b, paths.begin() + std::min(n, b + spec_.batch));
    each(pooled(data::load_batch(chunk, spec_.prep)));
    if (progress) progress(std::min(n, b + spec_.batch), n);
  }
}

Tensor FeatureExtractor::extract(const std::vector<std::string>& paths, const ProgressFn& progress) const {
  std::vector<Tensor> rows;
  for_each_batch(paths, [&](const std::vector<Tensor>& lv) { rows.push_back(concat(lv, 1)); }, progress);
  check(!rows.empty(), "features", "no images");
  return concat(rows, 0);
}

std::vector<double> score_images(const FeatureExtractor& fx, const GaussianAd& model,
                                 const std::vector<std::string>& paths, const ProgressFn& progress) {
  std::vector<double> scores;
  fx.for_each_batch(paths, [&](const std::vector<Tensor>& lv) {
    const std::vector<double> s = model.score(lv);
    scores.insert(scores.end(), s.begin(), s.end());
  }, progress);
  return scores;
}

GaussianAd fit_images(const FeatureExtractor& fx, const std::vector<std::string>& paths,
                      const GaussianAdOptions& options, const ProgressFn& progress) {
  GaussianFitter fitter(fx.dims(), options);
  fx.for_each_batch(paths, [&](const std::vector<Tensor>& lv) { fitter.add(lv); }, progress);
  GaussianAd model = fitter.finish();
  model.info = fx.spec().to_metadata();
  return model;
}

void set_image_thresholds(const FeatureExtractor& fx, GaussianAd& model, double fpr,
                          const std::vector<std::string>& normal, const std::string& source,
                          const ProgressFn& progress) {
  std::vector<double> scores;
  if (model.levels.size() > 1 || model.empirical_preferred) {
    check(!normal.empty(), "threshold", "no normal reference images");
    scores = score_images(fx, model, normal, progress);
  }
  model.set_thresholds(fpr, scores);
  model.info["threshold.source"] = scores.empty() ? "chi2" : source;
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

}  // namespace normad::models
