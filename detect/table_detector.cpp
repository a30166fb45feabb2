// Table detectors: see detect/table_detector.h. `normad train` is TableDetector::fit + save,
// `normad score` is TableDetector::load + score.
// Math: state values of a Linear(a, b) = a b (+ b with a bias); of a BatchNorm over C channels =
// 2 C running statistics + 1 counter (+ 2 C with affine); a network's = the sum over its layers.
// Tested by tests/test_detect.cpp, tests/test_cli.cpp, tests/test_model_files.cpp (the counts
// against built networks, oversized metadata) and fuzzed by tests/fuzz/fuzz_model.cpp.
#include "detect/table_detector.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>

#include "data/tasks.h"
#include "models/acr_nets.h"
#include "models/zeroshot.h"
#include "nn/checkpoint.h"

namespace normad {

// ---- model-file helpers ----

std::vector<int64_t> parse_widths(const std::string& s, const std::string& what) {
  std::vector<int64_t> out;
  for (const std::string& item : data::split_list(s, what.c_str())) {
    int64_t v = 0;
    auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (ec != std::errc() || end != item.data() + item.size() || v < 1 || v > (1 << 20))
      throw Error(what + ": '" + item + "' is not a positive integer up to 1048576");
    out.push_back(v);
  }
  return out;
}

std::unique_ptr<models::AcrModel> make_acr(const std::string& kind, int64_t F, Generator& init) {
  if (kind == "acr-ntl") return std::make_unique<models::AcrNtl>(std::make_shared<models::TabNtl>(F, init));
  return std::make_unique<models::AcrDsvdd>(models::tabular_mlp(F, init), 32, init);
}

namespace {

double linear_values(double in, double out, bool bias) { return in * out + (bias ? out : 0); }
double batchnorm_values(double channels, bool affine) { return 2 * channels + 1 + (affine ? 2 * channels : 0); }

double state_values(const std::vector<std::pair<std::string, Tensor>>& state) {
  double n = 0;
  for (const auto& [name, t] : state) n += static_cast<double>(t.numel());
  return n;
}

bool is_acr(const std::string& kind) { return kind == "acr-dsvdd" || kind == "acr-ntl"; }

}  // namespace

double ntl_state_values(const models::NtlConfig& c) {
  // K transformations x_dim -> trans_hidden ... -> x_dim, then the encoder (models/ntl.cpp).
  double trans = 0, in = static_cast<double>(c.x_dim);
  for (int64_t l = 0; l < c.trans_layers; ++l) {
    const double out = static_cast<double>(l + 1 == c.trans_layers ? c.x_dim : c.trans_hidden);
    trans += linear_values(in, out, c.trans_bias);
    in = out;
  }
  double enc = 0;
  in = static_cast<double>(c.x_dim);
  for (int64_t l = 0; l + 1 < c.enc_layers; ++l) {
    enc += linear_values(in, static_cast<double>(c.enc_hidden), c.enc_bias);
    if (c.batch_norm) enc += batchnorm_values(static_cast<double>(c.enc_hidden), c.enc_bias);
    in = static_cast<double>(c.enc_hidden);
  }
  enc += linear_values(in, static_cast<double>(c.z_dim), c.enc_bias);
  return static_cast<double>(c.K) * trans + enc;
}

double svdd_mlp_state_values(int64_t in, const std::vector<int64_t>& widths) {
  // Bias-free Linear layers, an affine-free BN after each but the last (models/deep_svdd.cpp).
  double n = 0, a = static_cast<double>(in);
  for (size_t i = 0; i < widths.size(); ++i) {
    const double b = static_cast<double>(widths[i]);
    n += linear_values(a, b, false);
    if (i + 1 < widths.size()) n += batchnorm_values(b, false);
    a = b;
  }
  return n;
}

double acr_state_values(const std::string& kind, int64_t F) {
  // Only the input and output layers of the ACR nets touch F, so the state is affine in F: count
  // it on networks built for F = 1 and 2 (small) and extrapolate. A test checks it at other F.
  Generator g(0);
  const double v1 = state_values(make_acr(kind, 1, g)->state());
  const double v2 = state_values(make_acr(kind, 2, g)->state());
  return v1 + static_cast<double>(F - 1) * (v2 - v1);
}

namespace {

// The file must hold at least the values its metadata declares, checked before building anything.
void check_declared(double declared, const nn::Safetensors& f, const std::string& path, const std::string& what) {
  double held = 0;
  for (const auto& [name, t] : f.tensors) held += static_cast<double>(t.numel());
  if (declared <= held) return;
  char msg[160];
  std::snprintf(msg, sizeof msg, " declares a network of %.0f weights, but the file holds only %.0f values", declared,
                held);
  throw Error(path + ": metadata " + what + msg + " (a truncated or corrupt model file)");
}

// The threshold report as a model file stores it (every field eval::ThresholdReport::to_metadata
// writes: normad.threshold, _rule, _target, _achieved, _expected, _rows).
eval::ThresholdReport threshold_from_metadata(const nn::Safetensors& f) {
  eval::ThresholdReport r;
  r.threshold = f.meta_number("normad.threshold");
  r.rule = f.has_meta("normad.threshold_rule") ? f.meta("normad.threshold_rule") : "unrecorded";
  if (f.has_meta("normad.threshold_target")) r.target = f.meta_number("normad.threshold_target");
  if (f.has_meta("normad.threshold_achieved")) r.achieved = f.meta_number("normad.threshold_achieved");
  if (f.has_meta("normad.threshold_expected")) r.expected = f.meta_number("normad.threshold_expected");
  if (f.has_meta("normad.threshold_rows")) r.rows = f.meta_int("normad.threshold_rows", 0, int64_t(1) << 40);
  return r;
}

}  // namespace

// ---- loading ----

TableDetector TableDetector::from_file(const nn::Safetensors& f, const std::string& path, Device device) {
  nn::check_finite(f);
  if (!f.has_meta("normad.kind")) throw Error(path + ": not a normad model file (no metadata field normad.kind)");
  TableDetector m;
  m.kind_ = f.meta("normad.kind");
  m.meta_ = f.metadata;
  const std::string& k = m.kind_;
  if (k != "ntl" && k != "dsvdd" && !is_acr(k))
    throw Error(path + ": metadata field 'normad.kind' = '" + k + "' is not ntl, dsvdd, acr-dsvdd or acr-ntl");
  m.threshold_ = threshold_from_metadata(f);
  if (f.has_meta("normad.id")) m.id_ = f.meta("normad.id");
  m.pre_ = data::Preprocess::from_metadata(f.metadata, path);  // its errors name the file and the field
  // The network's input width must be the preprocessing's output width (a file that disagrees with
  // itself is the model file's fault, not the data's).
  const int64_t features = static_cast<int64_t>(m.pre_.columns().size());
  auto check_width = [&](const std::string& field, int64_t width) {
    if (width != features)
      throw Error(path + ": metadata field '" + field + "' = " + std::to_string(width) + ", but the stored preprocessing makes " +
                  std::to_string(features) + " features");
  };
  if (is_acr(k)) {
    if (f.has_meta("acr.batch")) m.acr_batch_ = f.meta_int("acr.batch", 2, int64_t(1) << 30);
    const int64_t F = f.meta_int("acr.in", 1, int64_t(1) << 24);
    check_width("acr.in", F);
    check_declared(acr_state_values(k, F), f, path, "acr.in = " + std::to_string(F));
    Generator unused(0);
    m.acr_ = make_acr(k, F, unused);
    for (auto& [name, t] : m.acr_->state()) {
      auto it = f.tensors.find(name);
      if (it == f.tensors.end() || it->second.shape() != t.shape())
        throw Error(path + ": tensor '" + name + "' missing or of the wrong shape");
      t.copy_(it->second);
    }
    m.acr_->to(device);  // loaded on the host: model files are device-independent
  } else if (k == "ntl") {
    const models::NtlConfig cfg = models::ntl_from_metadata(f.metadata, path);  // errors name the file and field
    check_width("ntl.x_dim", cfg.x_dim);
    check_declared(ntl_state_values(cfg), f, path, "ntl.*");
    m.ntl_ = std::make_shared<models::NeutralAD>(cfg);
    try {
      nn::load_state(*m.ntl_, f, true);
    } catch (const Error& e) {
      throw Error(path + ": " + e.what());
    }
    m.ntl_->to(device);
  } else {
    if (!f.tensors.count("c")) throw Error(path + ": dsvdd model without its centre tensor 'c'");
    const int64_t in = f.meta_int("dsvdd.in", 1, int64_t(1) << 24);
    check_width("dsvdd.in", in);
    const auto widths = parse_widths(f.meta("dsvdd.widths"), path + ": metadata field 'dsvdd.widths'");
    check_declared(svdd_mlp_state_values(in, widths), f, path, "dsvdd.in, dsvdd.widths");
    m.svdd_ = std::make_shared<models::DeepSvdd>(models::svdd_mlp(in, widths));
    nn::LoadReport rep = nn::load_state(*m.svdd_->net, f, false);  // the file also holds c
    if (!rep.missing.empty() || !rep.mismatched.empty() || rep.unexpected != std::vector<std::string>{"c"})
      throw Error(path + ": " + rep.str());
    const Tensor& c = f.tensors.at("c");
    if (c.shape() != Shape{widths.back()})
      throw Error(path + ": tensor 'c' has shape " + shape_str(c.shape()) + ", expected [" +
                  std::to_string(widths.back()) + "] (the last width)");
    m.svdd_->c = c.to(device);
    m.svdd_->net->to(device);
  }
  return m;
}

TableDetector TableDetector::load(const std::string& path, Device device) {
  return from_file(nn::load_safetensors(path), path, device);
}

// ---- scoring ----

std::vector<double> TableDetector::score_encoded(const Tensor& x, int64_t batch) {
  if (batch < 0) throw Error("--batch: must be >= 0 (0: the model's)");
  if (acr_) {
    if (batch == 1) throw Error("--batch: ACR scores batches of at least 2 rows (their own BN statistics)");
    return acr_->score(x, false, batch ? batch : acr_batch_);
  }
  if (ntl_) return models::score_ntl(*ntl_, x, batch ? batch : 1000);
  return svdd_->score(x, batch ? batch : 1000);
}

data::Table TableDetector::encode(const Table& x, const std::vector<std::string>& extra_ignored) {
  if (extra_ignored.empty()) return pre_.apply(x);
  data::Preprocess pre = pre_;
  for (const std::string& c : extra_ignored)
    if (c != pre.label && std::find(pre.inputs.begin(), pre.inputs.end(), c) == pre.inputs.end() &&
        std::find(pre.ignored.begin(), pre.ignored.end(), c) == pre.ignored.end())
      pre.ignored.push_back(c);
  return pre.apply(x);
}

std::vector<double> TableDetector::score(const Table& x, int64_t batch, const std::vector<std::string>& extra_ignored) {
  encoded_ = encode(x, extra_ignored);
  std::vector<double> scores;
  try {
    scores = score_encoded(encoded_.x, batch);
  } catch (const Error& e) {
    throw Error(x.path + ": " + e.what());
  }
  check_scores(scores, x, "anomaly");
  return scores;
}

std::vector<double> TableDetector::decision_function(const Tensor& x) {
  // The tensor's columns are the model's input columns, in order; one-hot columns need their text.
  if (!pre_.categories.empty())
    throw Error("decision_function: the model one-hot encodes column '" + pre_.categories.begin()->first +
                "', so it scores a Table (the categories as text), not a Tensor");
  if (x.dim() != 2 || x.size(1) != static_cast<int64_t>(pre_.inputs.size()))
    throw Error("decision_function: x has shape " + shape_str(x.shape()) + ", the model takes [N, " +
                std::to_string(pre_.inputs.size()) + "] (its input columns, in order)");
  Table t = table_from_tensor(x);
  t.header = pre_.inputs;
  return decision_function(t);
}

std::vector<double> TableDetector::score_batch(const Table& x) {
  if (!acr_) return decision_function(x);  // one-class scores do not depend on the batch
  const int64_t n = static_cast<int64_t>(x.rows.size());
  if (n < 2) throw Error(x.path + ": score_batch: ACR scores batches of at least 2 rows (their own BN statistics)");
  return score(x, n, {});
}

// ---- thresholds ----

void TableDetector::set_threshold(const eval::ThresholdReport& r) {
  threshold_ = r;
  for (auto it = meta_.begin(); it != meta_.end();)  // a new rule replaces every field of the old one
    it = it->first.rfind("normad.threshold", 0) == 0 ? meta_.erase(it) : std::next(it);
  for (auto& kv : r.to_metadata("normad.")) meta_[kv.first] = kv.second;
}

const eval::ThresholdReport& TableDetector::infer_threshold(const Table& normals, double fpr) {
  if (!(fpr > 0 && fpr < 1)) throw Error("infer_threshold: fpr must be in (0, 1), got " + std::to_string(fpr));
  const std::vector<double> s = score(normals, 0, {});
  set_threshold(eval::fpr_rule(s, fpr, "reference"));
  if (acr_) {  // the batches the new threshold was set on (score() cut the rows into these)
    int64_t smallest = INT64_MAX, largest = 0;
    for (auto [b, e] : models::score_chunks(static_cast<int64_t>(normals.rows.size()), acr_batch_))
      smallest = std::min(smallest, e - b), largest = std::max(largest, e - b);
    meta_["acr.threshold_batches"] = std::to_string(smallest) + "-" + std::to_string(largest);
  }
  return threshold_;
}

void TableDetector::save(const std::string& path) const {
  std::vector<std::pair<std::string, Tensor>> tensors;
  if (acr_) tensors = acr_->state();
  else if (ntl_) tensors = ntl_->state_dict();
  else {
    tensors = svdd_->net->state_dict();
    tensors.emplace_back("c", svdd_->c);
  }
  nn::save_safetensors(path, tensors, meta_);
}

// ---- fitting ----

namespace {

void log_line(const TableFitOptions& o, const std::string& line) {
  if (o.log) o.log(line);
}

std::string format(const char* fmt, auto... args) {
  char b[512];
  std::snprintf(b, sizeof b, fmt, args...);
  return b;
}

// The preprocessing every table model uses: the label column, optional one-hot columns, and
// standardisation fitted on `rows` (the training rows); the id column is ignored like --ignore.
data::Preprocess fit_preprocess(const data::Csv& rows, const TableFitOptions& o) {
  data::PreprocessOptions opts;
  opts.label = o.label;
  opts.one_hot = o.one_hot;
  opts.ignore = o.ignore;
  if (!o.id.empty() && std::find(opts.ignore.begin(), opts.ignore.end(), o.id) == opts.ignore.end())
    opts.ignore.push_back(o.id);
  opts.standardise = true;
  return data::Preprocess::fit(rows, opts);
}

// The rows a model is fitted on and, for the calibration rule, the held-out normal rows its
// threshold is set on (a seeded draw of `calibration` of them; the model never sees them, nor does
// its standardisation). With `by_label` (ACR) the draw is made within each class, so every class
// keeps its share of rows for meta-training and for calibration. Every cell of `csv` is checked
// first, so a bad cell fails before training.
struct FitRows {
  data::Csv fit, held;
  data::Preprocess pre;  // fitted on `fit`
  data::Table table;     // `fit` encoded
};
FitRows split_and_preprocess(const data::Csv& csv, const TableFitOptions& o, bool by_label) {
  const data::Table all = fit_preprocess(csv, o).apply(csv);
  FitRows r{csv, {}, {}, {}};
  if (o.threshold.rule == "calibration") {
    std::map<std::string, std::vector<int64_t>> groups;  // label (or one group) -> rows
    for (int64_t i = 0; i < int64_t(csv.rows.size()); ++i) groups[by_label ? all.labels[i] : ""].push_back(i);
    std::vector<int64_t> fit, held;
    uint64_t stream = o.seed + 2;
    for (auto& [name, rows] : groups) {
      eval::CalibrationSplit sp;
      try {
        sp = eval::calibration_split(int64_t(rows.size()), o.threshold.calibration, stream++);
      } catch (const Error& e) {
        throw Error(by_label ? csv.path + ": class '" + name + "': " + e.what() : std::string(e.what()));
      }
      for (int64_t i : sp.fit) fit.push_back(rows[i]);
      for (int64_t i : sp.calibration) held.push_back(rows[i]);
    }
    std::sort(fit.begin(), fit.end());
    std::sort(held.begin(), held.end());
    r.fit = data::take_rows(csv, fit), r.held = data::take_rows(csv, held);
  }
  r.pre = fit_preprocess(r.fit, o);
  r.table = r.pre.apply(r.fit);
  return r;
}

// The normal rows of a reference table: with a label, those whose label is the normal value (the
// label column may be absent: then every row is taken as normal).
data::Csv reference_rows(const TableFitOptions& o) {
  data::Csv ref = *o.threshold.reference;
  if (!o.label.empty() && std::find(ref.header.begin(), ref.header.end(), o.label) != ref.header.end()) {
    ref = data::select_rows(ref, o.label, {o.normal});
    if (ref.rows.empty()) throw Error(ref.path + ": no row has " + o.label + " = '" + o.normal + "'");
  }
  if (ref.rows.empty()) throw Error(ref.path + ": no rows");
  return ref;
}

}  // namespace

void check_fit_options(const TableFitOptions& o) {
  if (!is_acr(o.model) && o.model != "ntl" && o.model != "dsvdd")
    throw Error("--model: '" + o.model + "' is not one of dsvdd, ntl, acr-dsvdd, acr-ntl");
  const ThresholdOptions& t = o.threshold;
  if (t.rule != "calibration" && t.rule != "reference" && t.rule != "contamination")
    throw Error("threshold rule '" + t.rule + "' is not calibration, reference or contamination");
  if (!(t.fpr > 0 && t.fpr < 1)) throw Error("--fpr: must be in (0, 1), got " + std::to_string(t.fpr));
  if (t.rule == "contamination" && !(t.contamination > 0 && t.contamination < 0.5))
    throw Error("--contamination: must be in (0, 0.5), got " + std::to_string(t.contamination));
  if (o.train.patience < 0)
    throw Error("--patience: must be >= 0 (0: keep the last epoch), got " + std::to_string(o.train.patience));
  if (!o.normal.empty() && o.label.empty())
    throw Error("--normal " + o.normal + ": needs --label, the column whose value it names");
  if (is_acr(o.model)) {
    if (o.label.empty()) throw Error("--model " + o.model + " needs --label COL (its classes are the tasks)");
    if (o.acr_batch < 2) throw Error("--batch: ACR scores batches of at least 2 rows, got " + std::to_string(o.acr_batch));
    return;
  }
  if (o.train.epochs < 1 || o.train.batch < 2) throw Error("--epochs must be >= 1 and --batch >= 2");
  if (!(o.train.lr > 0) || !std::isfinite(o.train.lr)) throw Error("--lr: must be a positive number");
  if (!(o.train.weight_decay >= 0) || !std::isfinite(o.train.weight_decay))
    throw Error("--weight-decay: must be a number >= 0");
  if (o.K < 2 || o.K > 1000) throw Error("--transformations: K must be in [2, 1000] (the loss divides by ln K)");
  if (o.trans_type != "forward" && o.trans_type != "residual" && o.trans_type != "mul")
    throw Error("--trans-type: '" + o.trans_type + "' is not forward, residual or mul");
  if (o.model == "dsvdd" && o.widths.empty()) throw Error("--widths: at least one layer width");
  if (!o.label.empty() && o.normal.empty()) throw Error("--label needs --normal VALUE (the normal class)");
}

TableDetector TableDetector::fit(const Tensor& x, TableFitOptions options, const std::vector<std::string>& classes) {
  if (x.dim() != 2) throw Error("fit: x has shape " + shape_str(x.shape()) + ", expected [N, F]");
  if (!classes.empty()) {
    if (static_cast<int64_t>(classes.size()) != x.size(0))
      throw Error("fit: " + std::to_string(classes.size()) + " classes for " + std::to_string(x.size(0)) + " rows");
    options.label = "label";
  }
  Table t = table_from_tensor(x, classes, "label");
  t.path = "fit(x)";
  return fit(t, options);
}

TableDetector TableDetector::fit(const Table& data, const TableFitOptions& o) {
  check_fit_options(o);
  if (o.threshold.rule == "reference" && !o.threshold.reference)
    throw Error("--reference: the reference rule needs a table of normal rows");
  const bool acr = is_acr(o.model);
  TableDetector m;
  m.kind_ = o.model;
  m.id_ = o.id;
  data::Csv csv = data;
  if (acr) {
    // ---- ACR: meta-train on the labelled classes of a table (each class a task, acr.md §6) ----
    if (!o.train_classes.empty()) csv = data::select_rows(csv, o.label, o.train_classes);
    auto [fit_csv, held_csv, pre, table] = split_and_preprocess(csv, o, true);
    const auto classes = data::label_classes(table.labels);
    const auto ids = data::label_ids(table.labels, classes);
    std::vector<int64_t> all(classes.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
    const int64_t F = table.x.size(1);
    models::ZsConfig cfg;
    cfg.seed = o.seed;
    cfg.device = o.device;
    const std::string recipe = models::resolve_recipe(cfg, o.recipe, static_cast<int64_t>(classes.size()), false);
    // Every class must fill a task's normals with the rows left after the hold-out.
    const auto class_rows = data::rows_by_class(ids, static_cast<int64_t>(classes.size()));
    for (size_t c = 0; c < classes.size(); ++c)
      if (static_cast<int64_t>(class_rows[c].size()) < cfg.normals)
        throw Error(data.path + ": class '" + classes[c] + "' has " + std::to_string(class_rows[c].size()) +
                    " rows to meta-train on" +
                    (o.threshold.rule == "calibration" ? " after --calibration holds some out" : "") +
                    ", fewer than the " + std::to_string(cfg.normals) + " normals a task needs");
    cfg.state_file = o.checkpoint, cfg.resume_from = o.resume, cfg.checkpoint_every = o.checkpoint_every;
    cfg.comm = o.comm, cfg.device_comm = o.device_comm;
    Generator init(o.seed), rng(o.seed + 1);
    std::shared_ptr<models::AcrModel> model = make_acr(o.model, F, init);
    model->to(o.device);
    log_line(o, format("%s: %zu classes as tasks, %lld rows, %lld features, %lld iterations, recipe %s, task "
                       "augmentation %s",
                       o.model.c_str(), classes.size(), (long long)table.x.size(0), (long long)F, (long long)cfg.iters,
                       recipe.c_str(), cfg.task_aug.c_str()));
    if (o.comm && o.comm->size() > 1)
      log_line(o, format("meta-training on %d ranks: each computes its share of the %lld tasks of every iteration",
                         o.comm->size(), (long long)cfg.tasks));
    auto resumed = [&o, iters = cfg.iters](int64_t done) {
      log_line(o, format("resumed from %s after iteration %lld of %lld", o.resume.c_str(), (long long)done,
                         (long long)iters));
    };
    models::meta_train(*model, table.x, ids, static_cast<int64_t>(classes.size()), all, cfg, rng, o.progress,
                       {{{"command", "train"}, {"model", o.model}, {"recipe", recipe}}, {}, {}, resumed});
    // Scores of a table whose rows come in classes: each class its own batches (its own
    // statistics), balanced chunks of about acr_batch rows; the batch sizes used are reported.
    std::vector<int64_t> batch_sizes;
    auto score_by_class = [&](const data::Table& t, const data::Csv& rows) {
      std::vector<double> out;
      std::map<std::string, std::vector<int64_t>> by;
      for (size_t i = 0; i < t.labels.size(); ++i) by[t.labels[i]].push_back(int64_t(i));
      for (auto& [name, r] : by) {
        if (r.size() < 2) continue;  // one row has no batch statistics
        for (auto [b, e] : models::score_chunks(int64_t(r.size()), o.acr_batch)) batch_sizes.push_back(e - b);
        for (double v : model->score(index_select(t.x, r), false, o.acr_batch)) out.push_back(v);
      }
      if (out.size() < 2) throw Error(rows.path + ": too few rows per class to score as batches for the threshold");
      return out;  // the threshold rules refuse a non-finite score
    };
    eval::ThresholdReport thr;
    if (o.threshold.rule == "contamination")
      thr = eval::contamination_rule(score_by_class(table, fit_csv), o.threshold.contamination);
    else if (o.threshold.rule == "calibration")
      thr = eval::fpr_rule(score_by_class(pre.apply(held_csv), held_csv), o.threshold.fpr, "calibration");
    else {
      const data::Csv& ref = *o.threshold.reference;
      std::vector<double> s = model->score(pre.apply(ref).x, false, o.acr_batch);
      for (auto [b, e] : models::score_chunks(int64_t(ref.rows.size()), o.acr_batch)) batch_sizes.push_back(e - b);
      check_scores(s, ref, "reference");
      thr = eval::fpr_rule(s, o.threshold.fpr, "reference");
    }
    m.report_.rows = table.x.size(0);
    m.report_.classes = classes;
    m.report_.smallest_batch = *std::min_element(batch_sizes.begin(), batch_sizes.end());
    m.report_.largest_batch = *std::max_element(batch_sizes.begin(), batch_sizes.end());
    m.report_.threshold_batches = static_cast<int64_t>(batch_sizes.size());
    m.meta_ = pre.to_metadata();
    m.meta_["acr.in"] = std::to_string(F);
    m.meta_["acr.recipe"] = recipe;
    m.meta_["acr.task_aug"] = cfg.task_aug;
    m.meta_["acr.iters"] = std::to_string(cfg.iters);
    m.meta_["acr.batch"] = std::to_string(o.acr_batch);
    m.meta_["acr.threshold_batches"] =
        std::to_string(m.report_.smallest_batch) + "-" + std::to_string(m.report_.largest_batch);
    m.pre_ = pre;
    m.acr_ = model;
    m.acr_batch_ = o.acr_batch;
    m.set_threshold(thr);
  } else {
    // ---- one-class NeuTraL-AD or Deep SVDD on the normal rows ----
    if (!o.label.empty()) {
      // One-class: train on the rows whose label is the normal value.
      csv = data::select_rows(csv, o.label, {o.normal});
      if (csv.rows.empty()) throw Error(data.path + ": no row has " + o.label + " = '" + o.normal + "'");
    }
    // The reference's normal rows are found before training, so a reference without any fails first.
    const data::Csv reference = o.threshold.rule == "reference" ? reference_rows(o) : data::Csv{};
    auto [fit_csv, held_csv, pre, table] = split_and_preprocess(csv, o, false);
    const int64_t F = table.x.size(1);
    manual_seed(o.seed);  // initialisation draws from the default generator
    Generator shuffle(o.seed + 1);
    m.meta_ = pre.to_metadata();
    const std::string widths = data::join_list(o.widths);
    // Epoch checkpoints: the trainer adds its settings and a digest of the rows to the run's fields.
    nn::CheckpointPlan plan{o.checkpoint, o.resume, o.checkpoint_every,
                            {{"command", "train"}, {"model", o.model}, {"widths", widths}, {"K", std::to_string(o.K)},
                             {"trans_type", o.trans_type}},
                            [&o](int64_t done) {
                              log_line(o, format("resumed from %s after epoch %lld of %lld", o.resume.c_str(),
                                                 (long long)done, (long long)o.train.epochs));
                            }};
    if (o.model == "ntl") {
      models::NtlConfig cfg;
      cfg.x_dim = F;
      cfg.K = o.K;
      cfg.trans_type = o.trans_type;
      m.ntl_ = std::make_shared<models::NeutralAD>(cfg);
      m.ntl_->to(o.device);
      log_line(o, format("NeuTraL-AD: %lld normal rows, %lld features, K = %lld (%s), %lld epochs",
                         (long long)table.x.size(0), (long long)F, (long long)cfg.K, cfg.trans_type.c_str(),
                         (long long)o.train.epochs));
      models::NtlTrainConfig train = o.train;
      train.checkpoint = plan;
      auto fit = models::train_ntl(*m.ntl_, table.x, train, shuffle, o.progress);
      m.report_.losses = fit.losses;
      if (fit.selection_applied)
        log_line(o, format("kept epoch %lld of the %zu run: the lowest training loss from epoch %lld on (patience %lld)",
                           (long long)fit.selected_epoch, fit.losses.size(), (long long)o.train.select_from,
                           (long long)o.train.patience));
      else
        log_line(o, format("kept the last epoch (%lld): %s", (long long)fit.selected_epoch,
                           o.train.patience == 0 ? "--patience 0 turns selection off"
                                                 : ("selection by training loss starts at epoch " +
                                                    std::to_string(o.train.select_from) + ", after the epochs run")
                                                       .c_str()));
      m.meta_["ntl.selected_epoch"] = std::to_string(fit.selected_epoch);
      for (auto& kv : models::ntl_metadata(m.ntl_->config())) m.meta_.insert(kv);
    } else {
      m.svdd_ = std::make_shared<models::DeepSvdd>(models::svdd_mlp(F, o.widths));
      m.svdd_->net->to(o.device);
      models::SvddTrainConfig cfg;
      cfg.epochs = o.train.epochs, cfg.batch = o.train.batch, cfg.lr = o.train.lr;
      cfg.weight_decay = o.train.weight_decay, cfg.milestones = {};
      cfg.checkpoint = plan;
      log_line(o, format("Deep SVDD: %lld normal rows, %lld features, widths %s, %lld epochs",
                         (long long)table.x.size(0), (long long)F, widths.c_str(), (long long)cfg.epochs));
      m.report_.losses = m.svdd_->fit(table.x, cfg, shuffle, o.progress);
      m.meta_["dsvdd.in"] = std::to_string(F);
      m.meta_["dsvdd.widths"] = widths;
    }
    m.pre_ = pre;
    m.report_.rows = table.x.size(0);
    // Threshold scores in the trainers' default passes (1024 rows; scores do not depend on them).
    auto score = [&m](const Tensor& x) { return m.ntl_ ? models::score_ntl(*m.ntl_, x) : m.svdd_->score(x); };
    eval::ThresholdReport thr;
    if (o.threshold.rule == "contamination") {
      const std::vector<double> train_scores = score(table.x);
      check_scores(train_scores, fit_csv, "training");
      thr = eval::contamination_rule(train_scores, o.threshold.contamination);
    } else {
      const data::Csv& rows = o.threshold.rule == "calibration" ? held_csv : reference;
      const std::vector<double> s = score(pre.apply(rows).x);
      check_scores(s, rows, o.threshold.rule);
      thr = eval::fpr_rule(s, o.threshold.fpr, o.threshold.rule);
    }
    m.set_threshold(thr);
  }
  log_line(o, m.threshold_.describe());
  m.meta_["normad.kind"] = o.model;
  if (!o.id.empty()) m.meta_["normad.id"] = o.id;
  return m;
}

}  // namespace normad
