// ACR-DSVDD: zero-shot anomaly detection by meta-training Deep SVDD through batch normalisation
// (acr.md). BN always uses the current batch's statistics, in training (one group per task) and at
// test time (one batch, or chunks of at most `chunk` rows, each with its own statistics).
// Math: d_i = ||z_i - c||^2; task loss = (1/Q) [sum_normal d + sum_anomalous 1/d] (acr.md §4.1,
// §4.3); iteration loss = mean over the T tasks = (1 / (T Q)) sum over all rows.
// Tested by tests/test_acr.cpp (grouped pass = per-task loop in loss and gradients; a synthetic
// problem it must separate).
#pragma once

#include <memory>
#include <vector>

#include "nn/module.h"
#include "nn/optim.h"
#include "tensor/random.h"

namespace normad::models {

class AcrDsvdd {
 public:
  // `net` maps [N, ...] to z [N, D] (the Omniglot net, the tabular MLP, ...); c ~ N(0, I) drawn
  // from `init` (acr.md §8).
  AcrDsvdd(std::shared_ptr<nn::Module> net, int64_t embed, Generator& init);

  // Mean loss of T tasks stacked as x [T*Q, ...] with labels y (0 normal, 1 pseudo-anomaly), all in
  // one forward pass with grouped BN (each task its own statistics). Builds the autograd graph.
  Var loss(const Tensor& x, const std::vector<int>& y, int64_t tasks);
  // d for every row, BN on the batch's statistics (chunks of at most `chunk` rows) or, with
  // stationary, on the running statistics. No graph, no running-statistics update.
  std::vector<double> score(const Tensor& x, bool stationary = false, int64_t chunk = 1000);

  std::shared_ptr<nn::Module> net;
  Var c;  // centre [D], trainable
  std::vector<Var> parameters() const;

 private:
  Var distances(const Var& z);  // [N] of ||z_i - c||^2
};

}  // namespace normad::models
