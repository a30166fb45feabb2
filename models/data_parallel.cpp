// Data-parallel ACR meta-training (see models/data_parallel.h). Tested by
// tests/test_data_parallel.cpp and, under mpiexec -np 2, tests/test_cli_mpi.cpp.
#include "models/data_parallel.h"

#include <chrono>
#include <cmath>
#include <cstring>

#include "nn/checkpoint.h"
#include "nn/layers.h"
#include "tensor/ops.h"

namespace normad::models {

namespace {

// A tensor's values as doubles on the host (running statistics may live on a GPU).
std::vector<double> host_doubles(const Tensor& t) {
  const Tensor h = t.to(Device::CPU);
  return std::vector<double>(h.data(), h.data() + h.numel());
}

// Writes `values` (host floats) into t, wherever t lives.
void assign(Tensor& t, const float* values) {
  const Tensor h = Tensor::from(t.shape(), std::vector<float>(values, values + t.numel()));
  t.copy_(h);
}

}  // namespace

double acr_backward_shared(AcrModel& model, const Tensor& x, const std::vector<int>& y, int64_t tasks,
                           int64_t per_pass, Communicator& comm, ShareStats* stats, Communicator* device_comm) {
  if (comm.size() == 1) return acr_backward(model, x, y, tasks, per_pass);
  check(tasks >= 1 && x.size(0) % tasks == 0 && static_cast<int64_t>(y.size()) == x.size(0), "acr_backward_shared",
        std::to_string(y.size()) + " labels for " + shape_str(x.shape()) + " in " + std::to_string(tasks) + " tasks");
  const int64_t Q = x.size(0) / tasks;
  const auto [begin, end] = rank_share(tasks, comm.rank(), comm.size());
  const int64_t mine = end - begin;

  // ---- the running statistics before this rank's share (R_0, the same on every rank) ----
  std::vector<nn::BatchNorm*> bns = nn::batch_norms(model.network());
  std::vector<std::vector<double>> before_mean(bns.size()), before_var(bns.size());
  std::vector<double> before_count(bns.size(), 0);
  for (size_t i = 0; i < bns.size(); ++i) {
    if (!bns[i]->running_mean.defined()) continue;  // track_running_stats = false
    before_mean[i] = host_doubles(bns[i]->running_mean);
    before_var[i] = host_doubles(bns[i]->running_var);
    before_count[i] = host_doubles(bns[i]->num_batches_tracked)[0];
  }

  // ---- this rank's share: gradients of (1/T) sum over its tasks ----
  double loss = 0;
  if (mine > 0) {
    const std::vector<int> ys(y.begin() + begin * Q, y.begin() + end * Q);
    loss = acr_backward(model, slice(x, 0, begin * Q, end * Q), ys, mine, std::min(per_pass, mine), tasks);
  }

  // ---- one flat float buffer of every gradient; doubles: the loss, "has a gradient" flags, BN ----
  std::vector<Var> params = model.parameters();
  const Device device = params.at(0).data().device();
  const bool on_device = device_comm && device_comm->device_buffers() && device != Device::CPU;
  int64_t total = 0;
  for (const Var& p : params) total += p.numel();
  std::vector<float> grads;  // on the host
  Tensor flat;               // on the device (NCCL)
  std::vector<double> extra{loss};
  if (on_device) {
    std::vector<Tensor> parts;
    for (const Var& p : params)
      parts.push_back(p.grad().defined() ? p.grad().reshape({p.numel()}) : Tensor::zeros({p.numel()}, device));
    flat = concat(parts, 0);  // [total], a fresh buffer on the device
  } else {
    grads.assign(static_cast<size_t>(total), 0.f);
  }
  int64_t at = 0;
  for (const Var& p : params) {
    if (!on_device && p.grad().defined()) {
      const Tensor g = p.grad().to(Device::CPU);
      std::memcpy(grads.data() + at, g.data(), sizeof(float) * size_t(p.numel()));
    }
    extra.push_back(p.grad().defined() ? 1.0 : 0.0);
    at += p.numel();
  }
  // Rank r's contribution to the merged running statistics: d^(T - b_r) (R_r - d^(n_r) R_0).
  for (size_t i = 0; i < bns.size(); ++i) {
    if (before_mean[i].empty()) continue;
    const double d = double(1.f - bns[i]->momentum);  // the kernel's decay, computed in float
    const double late = std::pow(d, double(tasks - end)), kept = std::pow(d, double(mine));
    const std::vector<double> mean = host_doubles(bns[i]->running_mean), var = host_doubles(bns[i]->running_var);
    for (size_t c = 0; c < mean.size(); ++c) extra.push_back(late * (mean[c] - kept * before_mean[i][c]));
    for (size_t c = 0; c < var.size(); ++c) extra.push_back(late * (var[c] - kept * before_var[i][c]));
  }
  const auto t0 = std::chrono::steady_clock::now();
  if (on_device) device_comm->all_reduce_sum(flat.device_data(), total);
  else comm.all_reduce_sum(grads.data(), total);
  comm.all_reduce_sum(extra.data(), static_cast<int64_t>(extra.size()));
  if (stats) {
    stats->float_values = total, stats->double_values = static_cast<int64_t>(extra.size());
    stats->reduce_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  // ---- every rank: the summed gradients, then R_T = d^T R_0 + sum of the contributions ----
  at = 0;
  size_t e = 1;
  for (Var& p : params) {
    if (extra[e++] > 0) {  // some rank's share reached this parameter
      if (!p.grad().defined()) p.node()->grad = Tensor::zeros(p.shape(), p.data().device());
      if (on_device) p.node()->grad.copy_(slice(flat, 0, at, at + p.numel()).reshape(p.shape()));
      else assign(p.node()->grad, grads.data() + at);
    }
    at += p.numel();
  }
  for (size_t i = 0; i < bns.size(); ++i) {
    if (before_mean[i].empty()) continue;
    const double all = std::pow(double(1.f - bns[i]->momentum), double(tasks));
    using Stat = std::pair<Tensor*, const std::vector<double>*>;
    for (auto [stat, before] : {Stat{&bns[i]->running_mean, &before_mean[i]}, Stat{&bns[i]->running_var, &before_var[i]}}) {
      std::vector<float> merged(before->size());
      for (size_t c = 0; c < merged.size(); ++c) merged[c] = static_cast<float>(all * (*before)[c] + extra[e++]);
      assign(*stat, merged.data());
    }
    const float count = static_cast<float>(before_count[i] + double(tasks));  // one per task, as in one process
    assign(bns[i]->num_batches_tracked, &count);
  }
  return extra[0];
}

void check_replicas_agree(const AcrModel& model, Communicator& comm, const std::string& what) {
  if (comm.size() == 1) return;
  std::vector<Tensor> tensors;
  for (const auto& [name, t] : model.state()) tensors.push_back(t);
  const std::string mine = nn::digest(tensors);
  std::string first = mine;
  comm.broadcast(first.data(), static_cast<int64_t>(first.size()), 0);  // SHA-256 hex: the same length everywhere
  double differ = first == mine ? 0.0 : 1.0;
  comm.all_reduce_sum(&differ, 1);
  check(differ == 0, what,
        "after training, " + std::to_string(int64_t(differ)) + " of " + std::to_string(comm.size()) +
            " ranks hold a model that differs from rank 0's (the summed gradients must give the same bytes on every "
            "rank: ranks on different CPU types or libraries round differently)");
}

}  // namespace normad::models
