// Table models from normad model files: see apps/cli_models.h.
// Math: state values of a Linear(a, b) = a b (+ b with a bias); of a BatchNorm over C channels =
// 2 C running statistics + 1 counter (+ 2 C with affine); a network's = the sum over its layers.
// Tested by tests/test_cli.cpp (the counts against built networks, score round trips, oversized
// metadata) and fuzzed by tests/fuzz/fuzz_model.cpp.
#include "apps/cli_models.h"

#include <charconv>
#include <cmath>
#include <cstdio>

#include "apps/cli_util.h"
#include "models/acr_nets.h"

namespace normad::cli {

std::vector<int64_t> parse_widths(const std::string& s, const std::string& what) {
  std::vector<int64_t> out;
  for (auto& item : split_list(s, what.c_str())) {
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

}  // namespace

TableModel load_table_model(const nn::Safetensors& f, const std::string& path) {
  nn::check_finite(f);
  if (!f.has_meta("normad.kind")) throw Error(path + ": not a normad model file (no metadata field normad.kind)");
  TableModel m;
  m.kind = f.meta("normad.kind");
  const std::string& k = m.kind;
  if (k != "ntl" && k != "dsvdd" && k != "acr-dsvdd" && k != "acr-ntl")
    throw Error(path + ": metadata field 'normad.kind' = '" + k + "' is not ntl, dsvdd, acr-dsvdd or acr-ntl");
  m.threshold = f.meta_number("normad.threshold");
  try {
    m.pre = data::Preprocess::from_metadata(f.metadata);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  // The network's input width must be the preprocessing's output width (a file that disagrees with
  // itself is the model file's fault, not the data's).
  const int64_t features = static_cast<int64_t>(m.pre.columns().size());
  auto check_width = [&](const std::string& field, int64_t width) {
    if (width != features)
      throw Error(path + ": metadata field '" + field + "' = " + std::to_string(width) + ", but the stored preprocessing makes " +
                  std::to_string(features) + " features");
  };
  if (k == "acr-dsvdd" || k == "acr-ntl") {
    if (f.has_meta("acr.batch")) m.acr_batch = f.meta_int("acr.batch", 2, int64_t(1) << 30);
    const int64_t F = f.meta_int("acr.in", 1, int64_t(1) << 24);
    check_width("acr.in", F);
    check_declared(acr_state_values(k, F), f, path, "acr.in = " + std::to_string(F));
    Generator unused(0);
    m.acr = make_acr(k, F, unused);
    for (auto& [name, t] : m.acr->state()) {
      auto it = f.tensors.find(name);
      if (it == f.tensors.end() || it->second.shape() != t.shape())
        throw Error(path + ": tensor '" + name + "' missing or of the wrong shape");
      t.copy_(it->second);
    }
    m.acr->to(compute_device());  // loaded on the host: model files are device-independent
  } else if (k == "ntl") {
    models::NtlConfig cfg;
    try {
      cfg = models::ntl_from_metadata(f.metadata);
    } catch (const Error& e) {
      throw Error(path + ": " + e.what());
    }
    check_width("ntl.x_dim", cfg.x_dim);
    check_declared(ntl_state_values(cfg), f, path, "ntl.*");
    m.ntl = std::make_unique<models::NeutralAD>(cfg);
    try {
      nn::load_state(*m.ntl, f, true);
    } catch (const Error& e) {
      throw Error(path + ": " + e.what());
    }
    m.ntl->to(compute_device());
  } else {
    if (!f.tensors.count("c")) throw Error(path + ": dsvdd model without its centre tensor 'c'");
    const int64_t in = f.meta_int("dsvdd.in", 1, int64_t(1) << 24);
    check_width("dsvdd.in", in);
    const auto widths = parse_widths(f.meta("dsvdd.widths"), path + ": metadata field 'dsvdd.widths'");
    check_declared(svdd_mlp_state_values(in, widths), f, path, "dsvdd.in, dsvdd.widths");
    m.svdd = std::make_unique<models::DeepSvdd>(models::svdd_mlp(in, widths));
    nn::LoadReport rep = nn::load_state(*m.svdd->net, f, false);  // the file also holds c
    if (!rep.missing.empty() || !rep.mismatched.empty() || rep.unexpected != std::vector<std::string>{"c"})
      throw Error(path + ": " + rep.str());
    const Tensor& c = f.tensors.at("c");
    if (c.shape() != Shape{widths.back()})
      throw Error(path + ": tensor 'c' has shape " + shape_str(c.shape()) + ", expected [" +
                  std::to_string(widths.back()) + "] (the last width)");
    m.svdd->c = c.to(compute_device());
    m.svdd->net->to(compute_device());
  }
  return m;
}

std::vector<double> TableModel::score(const Tensor& x, int64_t batch) {
  if (acr) {
    if (batch == 1) throw Error("--batch: ACR scores batches of at least 2 rows (their own BN statistics)");
    return acr->score(x, false, batch ? batch : acr_batch);
  }
  if (ntl) return models::score_ntl(*ntl, x, batch ? batch : 1000);
  return svdd->score(x, batch ? batch : 1000);
}

}  // namespace normad::cli
