// NeuTraL-AD (see models/ntl.h). Tested by tests/test_ntl.cpp.
#include "models/ntl.h"


#include <cmath>
#include <cstdio>
#include <limits>
#include <utility>

#include "nn/optim.h"
#include "tensor/backend.h"
#include "tensor/metadata.h"
#include "tensor/parallel.h"

namespace normad::models {

namespace {

// Similarities s = <u_a, u_b> / tau of the L2-normalised views of z [N, V, Z] -> [N, V, V].
Var view_similarities(const Var& z, float tau, const char* what) {
  check(z.dim() == 3 && z.size(1) >= 3, what, "expects [N, K+1, Z] with K >= 2, got " + shape_str(z.shape()));
  const int64_t N = z.size(0), V = z.size(1), Z = z.size(2);
  Var u = reshape(l2_normalize(reshape(z, {N * V, Z})), {N, V, Z});
  return bmm(u, u, false, true) / tau;
}

// ln sum_l exp s(k, l) over the l not excluded, for the transformed views k = 1..K -> [N, K].
// A -inf added to an excluded entry drops it from the log-sum-exp (and from its gradient).
Var masked_lse(const Var& sim, bool exclude_original) {
  const int64_t V = sim.size(1);
  const float ninf = -std::numeric_limits<float>::infinity();
  Tensor mask = Tensor::zeros({1, V, V});
  for (int64_t k = 0; k < V; ++k) {
    mask.data()[k * V + k] = ninf;  // a view is never its own negative
    if (exclude_original && k > 0) mask.data()[k * V] = ninf;
  }
  return slice(logsumexp(add(sim, Var(mask.to(sim.data().device()))), 2), 1, 1, V);
}

float dcl_scale(int64_t K) { return static_cast<float>(K) * std::log(static_cast<float>(K)); }

// DCL's two terms for the transformed views k = 1..K of sim [N, V, V]: ln den_k (the log-sum-exp of
// s(k, l) over l != k) and ln pos_k = s(k, 0), each [N, K].
std::pair<Var, Var> log_den_and_pos(const Var& sim) {
  const int64_t N = sim.size(0), K = sim.size(1) - 1;
  return {masked_lse(sim, false), reshape(slice(slice(sim, 1, 1, K + 1), 2, 0, 1), {N, K})};
}

}  // namespace

Var dcl_loss(const Var& z, float tau) {
  const auto [den, pos] = log_den_and_pos(view_similarities(z, tau, "dcl_loss"));
  return sum(sub(den, pos), {1}) / dcl_scale(z.size(1) - 1);
}

Var dcl_anomaly_loss(const Var& z, float tau) {
  Var sim = view_similarities(z, tau, "dcl_anomaly_loss");
  const int64_t K = z.size(1) - 1;
  // -ln(1 - pos/den) = ln den - ln(den - pos), den - pos = sum over l not in {0, k}.
  return sum(sub(masked_lse(sim, false), masked_lse(sim, true)), {1}) / dcl_scale(K);
}

Var dcl_acr_sum(const Var& z, const std::vector<int64_t>& normal, const std::vector<int64_t>& anomalous, float tau) {
  // One pass over what both losses share: the similarities s [N, V, V] and ln den_k [N, K].
  Var sim = view_similarities(z, tau, "dcl_acr_sum");
  const auto [den, pos] = log_den_and_pos(sim);
  Var total = Var(Tensor::scalar(0.f, sim.data().device()));
  if (!normal.empty())  // DCL of the normal rows: sum_k ln den_k - s(k, 0)
    total = add(total, sum(index_select(sub(den, pos), normal)));
  if (!anomalous.empty()) {  // the anomaly loss of the anomalous rows only: sum_k ln den_k - ln(den_k - pos_k)
    Var den_minus_pos = masked_lse(index_select(sim, anomalous), true);
    total = add(total, sum(sub(index_select(den, anomalous), den_minus_pos)));
  }
  return total / dcl_scale(z.size(1) - 1);
}

NtlConfig ntl_defaults(NtlConfig c) {
  check(c.x_dim > 0, "NeutralAD", "x_dim must be positive");
  check(c.K >= 2, "NeutralAD", "needs K >= 2 transformations, got " + std::to_string(c.K));
  check(c.trans_type == "forward" || c.trans_type == "residual" || c.trans_type == "mul", "NeutralAD",
        "trans_type must be forward, residual or mul, got '" + c.trans_type + "'");
  check(c.trans_layers >= 1 && c.enc_layers >= 1, "NeutralAD", "needs at least one layer");
  if (!c.trans_hidden) c.trans_hidden = c.x_dim;
  // ntl_dsvdd.md B.2: x_dim < 32 -> z = h = 2 x_dim; up to 300 -> z 32, h 64; else z 64, h 256.
  const int64_t h = c.x_dim < 32 ? 2 * c.x_dim : c.x_dim <= 300 ? 64 : 256;
  const int64_t z = c.x_dim < 32 ? 2 * c.x_dim : c.x_dim <= 300 ? 32 : 64;
  if (!c.enc_hidden) c.enc_hidden = h;
  if (!c.z_dim) c.z_dim = z;
  return c;
}

NeutralAD::NeutralAD(const NtlConfig& cfg) : cfg_(ntl_defaults(cfg)) {
  const auto& c = cfg_;
  for (int64_t k = 0; k < c.K; ++k) {
    // M_k: Linear layers without bias, ReLU between them, x_dim -> hidden -> ... -> x_dim.
    auto m = std::make_shared<nn::Sequential>();
    int64_t in = c.x_dim;
    for (int64_t l = 0; l < c.trans_layers; ++l) {
      const int64_t out = l + 1 == c.trans_layers ? c.x_dim : c.trans_hidden;
      m->push_back(std::make_shared<nn::Linear>(in, out, c.trans_bias));
      if (l + 1 < c.trans_layers) m->push_back(std::make_shared<nn::ReLU>());
      in = out;
    }
    trans_.push_back(register_module("trans." + std::to_string(k), m));
  }
  // Encoder: (enc_layers - 1) x [Linear, BN1d (affine = bias) if enabled, ReLU], Linear -> z.
  enc_ = register_module("enc", std::make_shared<nn::Sequential>());
  int64_t in = c.x_dim;
  for (int64_t l = 0; l + 1 < c.enc_layers; ++l) {
    enc_->push_back(std::make_shared<nn::Linear>(in, c.enc_hidden, c.enc_bias));
    if (c.batch_norm) enc_->push_back(std::make_shared<nn::BatchNorm1d>(c.enc_hidden, 1e-5f, 0.1f, c.enc_bias));
    enc_->push_back(std::make_shared<nn::ReLU>());
    in = c.enc_hidden;
  }
  enc_->push_back(std::make_shared<nn::Linear>(in, c.z_dim, c.enc_bias));
}

Var NeutralAD::embed(const Var& x) {
  check(x.dim() == 2 && x.size(1) == cfg_.x_dim, "NeutralAD",
        "expects [N, " + std::to_string(cfg_.x_dim) + "], got " + shape_str(x.shape()));
  const int64_t N = x.size(0), V = cfg_.K + 1;
  std::vector<Var> views{x};
  for (auto& m : trans_) {
    Var t = (*m)(x);
    if (cfg_.trans_type == "residual") t = add(x, t);
    else if (cfg_.trans_type == "mul") t = mul(sigmoid(t), x);
    views.push_back(t);
  }
  // One encoder pass over all views (its BN, when enabled, pools them, B.1).
  Var z = (*enc_)(concat(views, 0));                             // [V N, Z]
  return permute(reshape(z, {V, N, cfg_.z_dim}), {1, 0, 2});   // [N, V, Z]
}

Var NeutralAD::forward(const Var& x) { return dcl_loss(embed(x), cfg_.tau); }

std::map<std::string, std::string> ntl_metadata(const NtlConfig& c) {
  auto b = [](bool v) { return std::string(v ? "1" : "0"); };
  char tau[32];
  std::snprintf(tau, sizeof tau, "%.9g", c.tau);
  return {{"ntl.x_dim", std::to_string(c.x_dim)}, {"ntl.K", std::to_string(c.K)}, {"ntl.trans_type", c.trans_type},
          {"ntl.trans_layers", std::to_string(c.trans_layers)}, {"ntl.trans_hidden", std::to_string(c.trans_hidden)},
          {"ntl.enc_layers", std::to_string(c.enc_layers)}, {"ntl.enc_hidden", std::to_string(c.enc_hidden)},
          {"ntl.z_dim", std::to_string(c.z_dim)}, {"ntl.batch_norm", b(c.batch_norm)},
          {"ntl.trans_bias", b(c.trans_bias)}, {"ntl.enc_bias", b(c.enc_bias)}, {"ntl.tau", tau}};
}

NtlConfig ntl_from_metadata(const std::map<std::string, std::string>& meta, const std::string& file) {
  // Strict (tensor/metadata.h): each field whole, sizes bounded as `train` bounds them, before
  // anything is allocated from them.
  const MetadataReader m(meta, file);
  NtlConfig c;
  c.x_dim = m.integer("ntl.x_dim", 1, 1 << 20), c.K = m.integer("ntl.K", 2, 1000);
  c.trans_type = m.text("ntl.trans_type");
  c.trans_layers = m.integer("ntl.trans_layers", 1, 64), c.trans_hidden = m.integer("ntl.trans_hidden", 0, 1 << 16);
  c.enc_layers = m.integer("ntl.enc_layers", 1, 64), c.enc_hidden = m.integer("ntl.enc_hidden", 0, 1 << 16);
  c.z_dim = m.integer("ntl.z_dim", 0, 1 << 16);
  c.batch_norm = m.flag("ntl.batch_norm"), c.trans_bias = m.flag("ntl.trans_bias"), c.enc_bias = m.flag("ntl.enc_bias");
  c.tau = static_cast<float>(m.number("ntl.tau"));
  if (!(c.tau > 0)) throw Error(file + ": metadata field 'ntl.tau' = '" + m.text("ntl.tau") + "' is not a positive temperature");
  return ntl_defaults(c);  // validates
}

NtlTrainResult train_ntl(NeutralAD& net, const Tensor& x, const NtlTrainConfig& cfg, Generator& g,
                         const NtlProgress& progress) {
  check(x.dim() == 2 && x.size(0) >= 2, "train_ntl", "needs at least 2 rows, got " + shape_str(x.shape()));
  check(cfg.epochs >= 1 && cfg.batch >= 2, "train_ntl", "needs epochs >= 1 and batch >= 2");
  check(cfg.patience >= 0 && cfg.select_from >= 1, "train_ntl", "needs patience >= 0 and select_from >= 1");
  nn::Adam opt(net.parameters(), cfg.lr, 0.9f, 0.999f, 1e-8f, cfg.weight_decay);
  nn::StepLR sched(opt, cfg.lr_step, cfg.lr_gamma);
  const int64_t n = x.size(0);
  NtlTrainResult r;
  std::vector<double>& losses = r.losses;
  // B.5 selection: a copy of the best epoch's state (parameters and buffers), restored at the end
  // when `selected` (kept allocated from the start so that a checkpoint always has the same parts).
  auto state = net.state_dict();
  std::vector<Tensor> best;
  for (auto& [name, t] : state) best.push_back(t.clone());
  bool selected = false;
  double best_loss = INFINITY;
  int64_t since_best = 0;
  // Checkpoints: the state, the best copy, Adam and the generator; the losses and the selection
  // counters as fields. The run: every training setting and a digest of the rows.
  const nn::CheckpointPlan& plan = cfg.checkpoint;
  auto training_state = [&] {
    nn::TrainingState ts{net.state_dict(), &opt, {{"shuffle", &g}}};
    for (size_t i = 0; i < state.size(); ++i) ts.model.emplace_back("best." + state[i].first, best[i]);
    return ts;
  };
  std::map<std::string, std::string> run = plan.run;
  int64_t start = 0;
  if (plan.active()) {
    char hp[96];
    std::snprintf(hp, sizeof hp, "lr %.9g wd %.9g gamma %.9g", double(cfg.lr), double(cfg.weight_decay), double(cfg.lr_gamma));
    run.insert({{"epochs", std::to_string(cfg.epochs)}, {"batch", std::to_string(cfg.batch)}, {"optimiser", hp},
                {"lr_step", std::to_string(cfg.lr_step)},
                {"selection", std::to_string(cfg.patience) + " from " + std::to_string(cfg.select_from)},
                {"device", device_name(net.device())}, {"threads", std::to_string(num_threads())},
                {"gemm", cpu_gemm_engine()}, {"data", nn::digest({x})}});
  }
  if (!plan.resume.empty()) {
    std::map<std::string, std::string> extra;
    start = nn::load_checkpoint(plan.resume, training_state(), run, &extra);
    const std::string where = plan.resume + ": checkpoint field";
    try {
      losses = nn::split_doubles(extra.at("losses"), where + " losses");
      const auto sel = nn::split_doubles(extra.at("selection"), where + " selection");
      check(sel.size() == 4 && int64_t(losses.size()) == start && start <= cfg.epochs, where, "selection or losses");
      selected = sel[0] != 0, best_loss = sel[1], since_best = int64_t(sel[2]), r.selected_epoch = int64_t(sel[3]);
    } catch (const std::out_of_range&) {
      throw Error(plan.resume + ": not a checkpoint of NeuTraL-AD training (no losses or selection fields)");
    }
    sched.set_last_epoch(start);  // StepLR counts epochs
    if (plan.resumed) plan.resumed(start);
  }
  net.train();
  for (int64_t e = start; e < cfg.epochs; ++e) {
    auto order = g.permutation(n);
    double total = 0;
    int64_t batches = 0;
    for (int64_t s = 0; s < n; s += cfg.batch) {
      // A last batch of one row would make encoder BN (when enabled) undefined; it is dropped.
      if (n - s == 1 && s > 0) break;
      std::vector<int64_t> idx(order.begin() + s, order.begin() + std::min(n, s + cfg.batch));
      Var loss = mean(net(Var(index_select(x, idx).to(net.device()))));  // the batch on the network's device
      const double v = loss.item();
      nn::check_loss(v, "NeuTraL-AD", "epoch", e + 1);  // before the step: NaN never reaches the weights
      opt.zero_grad();
      loss.backward();
      opt.step();
      total += v, ++batches;
    }
    sched.step();  // per epoch (ntl_dsvdd.md B.5)
    losses.push_back(total / double(batches));
    if (progress) progress(e + 1, cfg.epochs, losses.back());
    if (cfg.patience > 0 && e + 1 >= cfg.select_from) {
      if (losses.back() <= best_loss) {
        best_loss = losses.back(), since_best = 0, r.selected_epoch = e + 1, selected = true;
        for (size_t i = 0; i < state.size(); ++i) best[i].copy_(state[i].second);
      } else if (++since_best >= cfg.patience) {
        break;
      }
    }
    if (plan.due(e + 1))
      nn::save_checkpoint(plan.file, training_state(), e + 1, run,
                          {{"losses", nn::join_doubles(losses)},
                           {"selection", nn::join_doubles({selected ? 1.0 : 0.0, best_loss, double(since_best),
                                                           double(r.selected_epoch)})}});
  }
  r.selection_applied = selected;
  if (!selected) {
    r.selected_epoch = int64_t(losses.size());
  } else {
    for (size_t i = 0; i < state.size(); ++i) state[i].second.copy_(best[i]);
  }
  return r;
}

std::vector<double> score_ntl(NeutralAD& net, const Tensor& x, int64_t batch) {
  check(batch >= 1, "score_ntl", "batch must be >= 1");
  NoGradGuard ng;
  net.eval();
  std::vector<double> out;
  for (int64_t s = 0; s < x.size(0); s += batch)
    for (float v : net(Var(slice(x, 0, s, std::min(x.size(0), s + batch)).to(net.device()))).data().to_vector())
      out.push_back(v);
  return out;
}

}  // namespace normad::models
