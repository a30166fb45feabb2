// ACR: zero-shot anomaly detection by meta-training through batch normalisation (acr.md), in two
// variants behind one interface. BN always uses the current batch's statistics, in training (one
// group per task) and at test time (one batch, or balanced chunks of about `chunk` rows, each with
// its own statistics: score_chunks never leaves a small remainder batch).
// Math: ACR-DSVDD d_i = ||z_i - c||^2, L_n = d, L_a = 1/d (§4.1); ACR-NTL L_n = DCL, L_a =
// (1/(K ln K)) sum_k -ln(1 - pos_k/den_k) (§4.2); task loss = (1/Q) [sum_normal L_n + sum_anomalous
// L_a] (§4.3); iteration loss = mean over the T tasks = (1 / (T Q)) sum over all rows.
// Tested by tests/test_acr.cpp (grouped pass = per-task loop in loss and gradients, PyTorch golden
// iterations, a synthetic problem it must separate).
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "nn/module.h"
#include "nn/optim.h"
#include "tensor/random.h"

namespace normad::models {

// An ACR detector: the meta-training loss of T tasks in one pass, and batch-level scores.
class AcrModel {
 public:
  virtual ~AcrModel() = default;
  // Mean loss of T tasks stacked as x [T*Q, ...] with labels y (0 normal, 1 pseudo-anomaly), all in
  // one forward pass with grouped BN (each task its own statistics). Builds the autograd graph.
  virtual Var loss(const Tensor& x, const std::vector<int>& y, int64_t tasks) = 0;
  // L_n for every row, BN on the batch's statistics (the chunks of score_chunks(N, chunk)) or, with
  // stationary, on the running statistics. No graph, no running-statistics update. Zero-shot scores
  // depend on the batch: a row is scored relative to the others in its chunk.
  virtual std::vector<double> score(const Tensor& x, bool stationary = false, int64_t chunk = 1000) = 0;
  virtual std::vector<Var> parameters() const = 0;
  // Every parameter and buffer under its model-file name (values sharing storage, on the model's
  // device): the network's state_dict and, for ACR-DSVDD, the centre "c".
  virtual std::vector<std::pair<std::string, Tensor>> state() const = 0;
  // Moves every parameter and buffer (the network's and, for ACR-DSVDD, the centre c) to `d`.
  virtual void to(Device d) = 0;
  // The network (its BatchNorm layers' running statistics are merged across ranks, models/data_parallel.h).
  virtual nn::Module& network() = 0;
};

class AcrDsvdd : public AcrModel {
 public:
  // `net` maps [N, ...] to z [N, D] (the Omniglot net, the tabular MLP, ...); c ~ N(0, I) drawn
  // from `init` (acr.md §8).
  AcrDsvdd(std::shared_ptr<nn::Module> net, int64_t embed, Generator& init);

  Var loss(const Tensor& x, const std::vector<int>& y, int64_t tasks) override;
  std::vector<double> score(const Tensor& x, bool stationary = false, int64_t chunk = 1000) override;
  std::vector<Var> parameters() const override;
  std::vector<std::pair<std::string, Tensor>> state() const override;
  void to(Device d) override;
  nn::Module& network() override { return *net; }

  std::shared_ptr<nn::Module> net;
  Var c;  // centre [D], trainable

 private:
  Var distances(const Var& z);  // [N] of ||z_i - c||^2
};

// The tabular NTL of acr.md §7.4: K forward-type transformations, each Linear(D -> h, bias), ReLU,
// Linear(h -> h), ReLU, Linear(h -> D); the encoder the MLP of §7.3 without its final BN. All
// PyTorch-default initialised from `init`. State names: trans.<k>.{0,2,4}.*, enc.{0..9}.*.
class TabNtl : public nn::Module {
 public:
  TabNtl(int64_t x_dim, Generator& init, int64_t K = 19, int64_t hidden = 128, int64_t embed = 32);
  Var forward(const Var& x) override;  // x [N, D] -> z [N, K+1, Z], BN over all views (one group)
  // The same with T tasks of Q rows: each task's K+1 views of its Q rows form one BN group.
  Var embed(const Var& x, int64_t tasks);
  int64_t views() const { return static_cast<int64_t>(trans_.size()) + 1; }

 private:
  std::vector<std::shared_ptr<nn::Sequential>> trans_;
  std::shared_ptr<nn::Sequential> enc_;
};

class AcrNtl : public AcrModel {
 public:
  explicit AcrNtl(std::shared_ptr<TabNtl> net, float tau = 0.1f) : net(std::move(net)), tau(tau) {}
  Var loss(const Tensor& x, const std::vector<int>& y, int64_t tasks) override;
  std::vector<double> score(const Tensor& x, bool stationary = false, int64_t chunk = 1000) override;
  std::vector<Var> parameters() const override { return net->parameters(); }
  std::vector<std::pair<std::string, Tensor>> state() const override { return net->state_dict(); }
  void to(Device d) override { net->to(d); }
  nn::Module& network() override { return *net; }

  std::shared_ptr<TabNtl> net;
  float tau;
};

// The iteration loss of T tasks and its gradients, `per_pass` tasks at a time: each pass is one
// grouped forward and backward of per_pass tasks whose loss is scaled by per_pass / T, so the
// gradients accumulate to exactly those of model.loss(x, y, T) (tasks never share BN statistics,
// and running statistics update once per task in order either way). Smaller passes keep the
// activations in cache. Returns the loss value. Gradients are accumulated, not zeroed.
// `of_tasks` (0: `tasks`) is the iteration's whole task count when x holds only a share of it
// (a rank's share, models/data_parallel.h): each pass is then scaled by per_pass / of_tasks.
double acr_backward(AcrModel& model, const Tensor& x, const std::vector<int>& y, int64_t tasks, int64_t per_pass,
                    int64_t of_tasks = 0);

// How N rows are cut into BN batches for scoring: k = clamp(round(N / chunk), 1, N / 2) consecutive
// chunks whose sizes differ by at most one, so no chunk is a small remainder (1,001 rows at chunk
// 1,000 are one batch, 1,500 are two of 750) and none has fewer than 2 rows. Returns [begin, end)
// pairs. An Error for N < 2 (BN over one row has no statistics) or chunk < 2.
std::vector<std::pair<int64_t, int64_t>> score_chunks(int64_t rows, int64_t chunk);
// Rows [b, e) of x moved to `device` (x itself, not a copy, when that is all of x already there).
Tensor chunk_rows(const Tensor& x, int64_t b, int64_t e, Device device);

// Per-row loss: L_n on normal rows, L_a on anomalous ones, summed and divided by the row count.
Var acr_reduce(const Var& ln, const Var& la, const std::vector<int>& y);
// The row indices with y = 0 (normal) and y != 0 (anomalous), in order.
std::pair<std::vector<int64_t>, std::vector<int64_t>> rows_by_label(const std::vector<int>& y);

}  // namespace normad::models
