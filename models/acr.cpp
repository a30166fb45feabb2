// ACR-DSVDD (see models/acr.h). Tested by tests/test_acr.cpp.
#include "models/acr.h"

#include <algorithm>

#include "nn/layers.h"

namespace normad::models {

AcrDsvdd::AcrDsvdd(std::shared_ptr<nn::Module> n, int64_t embed, Generator& init)
    : net(std::move(n)), c(init.normal(Shape{embed}), true) {}

std::vector<Var> AcrDsvdd::parameters() const {
  std::vector<Var> ps = net->parameters();
  ps.push_back(c);
  return ps;
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
  Var d = distances((*net)(Var(x)));
  nn::set_bn_groups(*net, 1);
  std::vector<int64_t> normal, anomalous;
  for (size_t i = 0; i < y.size(); ++i) (y[i] ? anomalous : normal).push_back(static_cast<int64_t>(i));
  // L_n = d on normals, L_a = 1/d on pseudo-anomalies (no epsilon, acr.md §4.1); plain mean over
  // all T*Q rows equals the mean of the per-task means (equal Q).
  Var total = Var(Tensor::scalar(0.f));
  if (!normal.empty()) total = add(total, sum(index_select(d, normal)));
  if (!anomalous.empty()) total = add(total, sum(pow(index_select(d, anomalous), -1.f)));
  return total / static_cast<float>(y.size());
}

std::vector<double> AcrDsvdd::score(const Tensor& x, bool stationary, int64_t chunk) {
  NoGradGuard ng;
  net->eval();
  nn::set_bn_groups(*net, 1);
  nn::set_bn_batch_stats_in_eval(*net, !stationary);
  std::vector<double> out;
  const int64_t n = x.size(0);
  // acr.md §3: a test batch of more than `chunk` rows is cut into consecutive chunks, each
  // normalised with its own statistics.
  for (int64_t s = 0; s < n; s += chunk) {
    Tensor part = slice(x, 0, s, std::min(n, s + chunk));
    Var d = distances((*net)(Var(part)));
    for (float v : d.data().to_vector()) out.push_back(v);
  }
  nn::set_bn_batch_stats_in_eval(*net, false);
  return out;
}

}  // namespace normad::models
