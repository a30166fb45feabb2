// ACR-DSVDD and ACR-NTL (see models/acr.h). Tested by tests/test_acr.cpp.
#include "models/acr.h"

#include <algorithm>
#include <cmath>

#include "models/ntl.h"
#include "nn/init.h"
#include "nn/layers.h"

namespace normad::models {

AcrDsvdd::AcrDsvdd(std::shared_ptr<nn::Module> n, int64_t embed, Generator& init)
    : net(std::move(n)), c(init.normal(Shape{embed}), true) {}

std::vector<Var> AcrDsvdd::parameters() const {
  std::vector<Var> ps = net->parameters();
  ps.push_back(c);
  return ps;
}

std::vector<std::pair<std::string, Tensor>> AcrDsvdd::state() const {
  auto t = net->state_dict();
  t.emplace_back("c", c.data());
  return t;
}

Var AcrDsvdd::distances(const Var& z) {
  Var diff = sub(z, c);  // [N, D] - [D] broadcasts
  return sum(mul(diff, diff), {1});
}

Var AcrDsvdd::loss(const Tensor& x, const std::vector<int>& y, int64_t tasks) {
  check(x.size(0) == static_cast<int64_t>(y.size()) && x.size(0) % tasks == 0, "AcrDsvdd::loss",
        std::to_string(y.size()) + " labels for input " + shape_str(x.shape()) + " in " +
            std::to_string(tasks) + " tasks");
  net->train();
  nn::set_bn_groups(*net, tasks);  // acr.md §3: one BN batch per task
  // The tasks go to the network's device (no copy when they are there already).
  Var d = distances((*net)(Var(x.to(net->device()))));
  nn::set_bn_groups(*net, 1);
  // L_n = d on normals, L_a = 1/d on pseudo-anomalies (no epsilon, acr.md §4.1).
  return acr_reduce(d, pow(d, -1.f), y);
}

void AcrDsvdd::to(Device d) {
  net->to(d);
  c.data().move_to(d);  // the centre is a parameter outside the network
  if (c.grad().defined()) const_cast<Tensor&>(c.grad()).move_to(d);
}

double acr_backward(AcrModel& model, const Tensor& x, const std::vector<int>& y, int64_t tasks, int64_t per_pass,
                    int64_t of_tasks) {
  check(static_cast<int64_t>(y.size()) == x.size(0), "acr_backward",
        std::to_string(y.size()) + " labels for " + std::to_string(x.size(0)) + " rows");
  check(tasks >= 1 && per_pass >= 1 && x.size(0) % tasks == 0, "acr_backward",
        "needs tasks >= 1, per_pass >= 1 and rows divisible by tasks, got " + shape_str(x.shape()) + " in " +
            std::to_string(tasks) + " tasks");
  if (of_tasks == 0) of_tasks = tasks;
  check(of_tasks >= tasks, "acr_backward", "a share of " + std::to_string(tasks) + " tasks of " + std::to_string(of_tasks));
  const int64_t Q = x.size(0) / tasks;
  double total = 0;
  for (int64_t t0 = 0; t0 < tasks; t0 += per_pass) {
    const int64_t n = std::min(per_pass, tasks - t0);
    std::vector<int> yb(y.begin() + t0 * Q, y.begin() + (t0 + n) * Q);
    Var part = model.loss(slice(x, 0, t0 * Q, (t0 + n) * Q), yb, n) * (float(n) / float(of_tasks));
    part.backward();
    total += part.item();
  }
  return total;
}

std::pair<std::vector<int64_t>, std::vector<int64_t>> rows_by_label(const std::vector<int>& y) {
  std::pair<std::vector<int64_t>, std::vector<int64_t>> rows;  // (normal, anomalous)
  for (size_t i = 0; i < y.size(); ++i) (y[i] ? rows.second : rows.first).push_back(static_cast<int64_t>(i));
  return rows;
}

Var acr_reduce(const Var& ln, const Var& la, const std::vector<int>& y) {
  const auto [normal, anomalous] = rows_by_label(y);
  // A plain mean over all T*Q rows equals the mean of the per-task means (equal Q), acr.md §4.3.
  Var total = Var(Tensor::scalar(0.f, ln.data().device()));
  if (!normal.empty()) total = add(total, sum(index_select(ln, normal)));
  if (!anomalous.empty()) total = add(total, sum(index_select(la, anomalous)));
  return total / static_cast<float>(y.size());
}

TabNtl::TabNtl(int64_t D, Generator& g, int64_t K, int64_t h, int64_t Z) {
  auto linear = [&](int64_t a, int64_t b) {
    auto l = std::make_shared<nn::Linear>(a, b);
    nn::init::torch_default_(l->weight.data(), &l->bias.data(), g);
    return l;
  };
  for (int64_t k = 0; k < K; ++k) {
    auto t = std::make_shared<nn::Sequential>(std::vector<nn::ModulePtr>{
        linear(D, h), std::make_shared<nn::ReLU>(), linear(h, h), std::make_shared<nn::ReLU>(), linear(h, D)});
    trans_.push_back(register_module("trans." + std::to_string(k), t));
  }
  enc_ = register_module("enc", std::make_shared<nn::Sequential>());
  for (int i = 0; i < 3; ++i) {
    enc_->push_back(linear(i ? h : D, h));
    enc_->push_back(std::make_shared<nn::BatchNorm1d>(h));
    enc_->push_back(std::make_shared<nn::ReLU>());
  }
  enc_->push_back(linear(h, Z));
}

Var TabNtl::embed(const Var& x, int64_t T) {
  const int64_t N = x.size(0), V = views(), Q = N / T;
  check(x.dim() == 2 && N % T == 0, "TabNtl", shape_str(x.shape()) + " does not split into " + std::to_string(T) + " tasks");
  // Each view through the encoder's first Linear (D -> h) as soon as it exists, then the views'
  // rows concatenated: a Linear acts row by row, so this is Linear(concat(views)) = concat(Linear(
  // views)), the same sums; the concatenation holds h = 128 columns instead of D = 570 (ACR-NTL's
  // step copied a [T V Q, D] = 93 MB concat and its gradient back out in 19 pieces), each view's
  // output is still in cache when the Linear reads it, and the view x itself needs no gradient.
  // (Its weight and bias gradients are now sums of the V views' parts, in view order, instead of
  // one product / one column sum over all T V Q rows: the same values, other rounding.)
  const nn::ModulePtr first_linear = (*enc_)[0];
  std::vector<Var> views_h;
  views_h.push_back((*first_linear)(x));
  for (auto& t : trans_) views_h.push_back((*first_linear)((*t)(x)));  // forward type: the view is T_k(x) (§7.4)
  const int64_t h = views_h[0].size(1);
  // rows in [T, V, Q, h] order: each task's views of its rows are contiguous, one BN group (each
  // view [T, Q, h] goes in as [T, 1, Q, h], concatenated along dim 1)
  for (Var& v : views_h) v = reshape(v, {T, 1, Q, h});
  Var z = reshape(concat(views_h, 1), {T * V * Q, h});
  nn::set_bn_groups(*enc_, T);
  z = enc_->forward_from(z, 1);
  nn::set_bn_groups(*enc_, 1);
  const int64_t Z = z.size(1);
  return reshape(permute(reshape(z, {T, V, Q, Z}), {0, 2, 1, 3}), {N, V, Z});  // [N, V, Z]
}

Var TabNtl::forward(const Var& x) { return embed(x, 1); }

Var AcrNtl::loss(const Tensor& x, const std::vector<int>& y, int64_t tasks) {
  check(x.size(0) == static_cast<int64_t>(y.size()), "AcrNtl::loss", "labels do not match the rows");
  net->train();
  Var z = net->embed(Var(x.to(net->device())), tasks);
  // acr_reduce(dcl_loss(z), dcl_anomaly_loss(z), y) in one pass (each computed only where used)
  const auto [normal, anomalous] = rows_by_label(y);
  return dcl_acr_sum(z, normal, anomalous, tau) / static_cast<float>(y.size());
}

std::vector<double> AcrNtl::score(const Tensor& x, bool stationary, int64_t chunk) {
  NoGradGuard ng;
  net->eval();
  nn::set_bn_batch_stats_in_eval(*net, !stationary);
  std::vector<double> out;
  for (auto [b, e] : score_chunks(x.size(0), chunk))
    for (float v : dcl_loss((*net)(Var(chunk_rows(x, b, e, net->device()))), tau).data().to_vector()) out.push_back(v);
  nn::set_bn_batch_stats_in_eval(*net, false);
  return out;
}

std::vector<double> AcrDsvdd::score(const Tensor& x, bool stationary, int64_t chunk) {
  NoGradGuard ng;
  net->eval();
  nn::set_bn_groups(*net, 1);
  nn::set_bn_batch_stats_in_eval(*net, !stationary);
  std::vector<double> out;
  // acr.md §3: a large test batch is cut into consecutive chunks, each normalised with its own
  // statistics (balanced, so that no chunk is a remainder of a few rows).
  for (auto [b, e] : score_chunks(x.size(0), chunk)) {
    Var d = distances((*net)(Var(chunk_rows(x, b, e, net->device()))));
    for (float v : d.data().to_vector()) out.push_back(v);
  }
  nn::set_bn_batch_stats_in_eval(*net, false);
  return out;
}

// Rows [b, e) of x on `device`: x itself when that is all of it on that device (no copy: the
// Omniglot scoring's 3 MB batch of 1000 was sliced and copied whole, 0.2-0.3 ms a call).
Tensor chunk_rows(const Tensor& x, int64_t b, int64_t e, Device device) {
  if (b == 0 && e == x.size(0) && x.device() == device) return x;
  return slice(x, 0, b, e).to(device);
}

std::vector<std::pair<int64_t, int64_t>> score_chunks(int64_t rows, int64_t chunk) {
  check(chunk >= 2, "ACR scoring", "the batch size must be >= 2 rows, got " + std::to_string(chunk));
  check(rows >= 2, "ACR scoring",
        "needs a batch of at least 2 rows (zero-shot scores come from the batch's own BN statistics), got " +
            std::to_string(rows));
  const int64_t k = std::clamp<int64_t>(static_cast<int64_t>(std::llround(double(rows) / double(chunk))), 1, rows / 2);
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int64_t i = 0; i < k; ++i) out.emplace_back(rows * i / k, rows * (i + 1) / k);
  return out;
}

}  // namespace normad::models
