// Training checkpoints (see nn/checkpoint.h).
// Math: none; the state is copied as it is (float32 tensors, the generators' engine states, counts).
// Tested by tests/test_checkpoint.cpp.
#include "nn/checkpoint.h"

#include <openssl/evp.h>

#include <charconv>
#include <cstdio>
#include <memory>

#include "nn/safetensors.h"

namespace normad::nn {

namespace {

std::string join_counts(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

std::vector<int64_t> split_counts(const std::string& s, const std::string& where) {
  std::vector<int64_t> out;
  if (!s.empty() && s.back() == ',') throw Error(where + ": '" + s + "' is not a list of counts");
  size_t at = 0;
  while (at < s.size()) {
    const size_t end = std::min(s.find(',', at), s.size());
    int64_t v = 0;
    const auto [p, ec] = std::from_chars(s.data() + at, s.data() + end, v);
    if (ec != std::errc() || p != s.data() + end || v < 0) throw Error(where + ": '" + s + "' is not a list of counts");
    out.push_back(v);
    at = end + 1;
  }
  return out;
}

}  // namespace

void save_checkpoint(const std::string& path, const TrainingState& state, int64_t step,
                     const std::map<std::string, std::string>& run, const std::map<std::string, std::string>& extra) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [name, t] : state.model) tensors.emplace_back("model." + name, t.to(Device::CPU));
  std::map<std::string, std::string> meta{{"normad.kind", "checkpoint"}, {"ckpt.step", std::to_string(step)}};
  if (state.optimizer) {
    for (const auto& [name, t] : state.optimizer->state_tensors()) tensors.emplace_back("adam." + name, t.to(Device::CPU));
    meta["ckpt.adam_steps"] = join_counts(state.optimizer->step_counts());
  }
  for (const auto& [name, g] : state.generators) meta["ckpt.rng." + name] = g->state();
  for (const auto& [key, value] : run) meta["ckpt.run." + key] = value;
  for (const auto& [key, value] : extra) meta["ckpt.extra." + key] = value;
  save_safetensors(path, tensors, meta);
}

int64_t load_checkpoint(const std::string& path, const TrainingState& state,
                        const std::map<std::string, std::string>& run, std::map<std::string, std::string>* extra) {
  const Safetensors f = load_safetensors(path);
  if (!f.has_meta("normad.kind") || f.meta("normad.kind") != "checkpoint")
    throw Error(path + ": not a normad checkpoint (metadata normad.kind is not 'checkpoint')");
  // The same run: every identifying field equal, none missing or extra.
  for (const auto& [key, value] : run) {
    const std::string k = "ckpt.run." + key;
    if (!f.has_meta(k))
      throw Error(path + ": checkpoint of another kind of run: " + key + " is '" + value + "' now and not recorded there");
    if (f.meta(k) != value)
      throw Error(path + ": checkpoint of another run: " + key + " is '" + f.meta(k) + "' there, '" + value +
                  "' now (resume with the options and data it was written with)");
  }
  for (const auto& [k, v] : f.metadata)
    if (k.rfind("ckpt.run.", 0) == 0 && !run.count(k.substr(9)))
      throw Error(path + ": checkpoint of another kind of run: " + k.substr(9) + " is '" + v + "' there and not set now");
  const int64_t step = f.meta_int("ckpt.step", 0, INT64_MAX);
  for (const auto& [name, t] : state.model) {
    const auto it = f.tensors.find("model." + name);
    if (it == f.tensors.end() || it->second.shape() != t.shape())
      throw Error(path + ": tensor 'model." + name + "' missing or of another shape than the model's " +
                  shape_str(t.shape()));
  }
  check_finite(f);
  for (const auto& [name, t] : state.model) {
    Tensor dst = t;  // shares the model's storage
    dst.copy_(f.tensors.at("model." + name).to(t.device()));
  }
  if (state.optimizer) {
    std::map<std::string, Tensor> moments;
    for (const auto& [name, t] : f.tensors)
      if (name.rfind("adam.", 0) == 0) moments[name.substr(5)] = t;
    try {
      state.optimizer->set_state(moments, split_counts(f.meta("ckpt.adam_steps"), path + ": ckpt.adam_steps"));
    } catch (const Error& e) {
      throw Error(path + ": " + e.what());
    }
  }
  for (const auto& [name, g] : state.generators) {
    try {
      g->set_state(f.meta("ckpt.rng." + name));
    } catch (const Error& e) {
      throw Error(path + ": generator '" + name + "': " + e.what());
    }
  }
  if (extra) {
    extra->clear();
    for (const auto& [k, v] : f.metadata)
      if (k.rfind("ckpt.extra.", 0) == 0) (*extra)[k.substr(11)] = v;
  }
  return step;
}

std::string join_doubles(const std::vector<double>& v) {
  std::string s;
  char buf[32];
  for (size_t i = 0; i < v.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%s%.17g", i ? "," : "", v[i]);
    s += buf;
  }
  return s;
}

std::vector<double> split_doubles(const std::string& s, const std::string& where) {
  std::vector<double> out;
  if (s.empty()) return out;
  size_t at = 0;
  while (true) {
    const size_t end = std::min(s.find(',', at), s.size());
    double v = 0;
    const auto [p, ec] = std::from_chars(s.data() + at, s.data() + end, v);
    if (ec != std::errc() || p != s.data() + end) throw Error(where + ": '" + s.substr(at, end - at) + "' is not a number");
    out.push_back(v);
    if (end == s.size()) return out;
    at = end + 1;
  }
}

std::string digest(const std::vector<Tensor>& tensors) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  check(ctx && EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) == 1, "digest", "SHA-256 could not be started");
  for (const Tensor& t0 : tensors) {
    const Tensor t = t0.to(Device::CPU);
    for (int64_t s : t.shape()) EVP_DigestUpdate(ctx.get(), &s, sizeof s);
    EVP_DigestUpdate(ctx.get(), t.data(), sizeof(float) * size_t(t.numel()));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  check(EVP_DigestFinal_ex(ctx.get(), md, &len) == 1, "digest", "SHA-256 failed");
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) out += {hex[md[i] >> 4], hex[md[i] & 15]};
  return out;
}

}  // namespace normad::nn
