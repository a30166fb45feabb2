// Data-parallel ACR meta-training over a communicator (tensor/comm.h; issue 18). Every rank draws
// the same T tasks of an iteration from the shared random streams (so the tasks are those a single
// process draws), computes the gradients of its contiguous share of them, and one all-reduce of a
// flat buffer sums the shares: every rank then holds the whole iteration's gradients and takes the
// same optimiser step. BatchNorm needs no synchronisation in the forward pass (each task is its own
// BN batch); its running statistics, an exponential average over the tasks in order, are merged
// exactly (below), so the model file and the stationary scores match the single process too.
// Math: share_r = rank_share(T, r, R) = [floor(T r / R), floor(T (r+1) / R)); g = sum_r sum_{t in share_r} (1/T) grad L_t.
// Running statistics with d = 1 - momentum, rank r's share [a_r, b_r) of n_r tasks started from
// R_0 and left R_r: R_T = d^T R_0 + sum_r d^(T - b_r) (R_r - d^(n_r) R_0) (in double).
// Tested by tests/test_data_parallel.cpp (rank_share, the merge against a single process with a
// simulated communicator) and tests/test_cli_mpi.cpp (the command line under mpiexec -np 2).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "models/acr.h"
#include "tensor/comm.h"

namespace normad::models {

// What one shared step moved between the ranks (for benchmarks and docs/distributed.md).
struct ShareStats {
  int64_t float_values = 0, double_values = 0;  // all-reduced per step
  double reduce_seconds = 0;                    // in the all-reduces (waiting for other ranks included)
};

// acr_backward (models/acr.h) of one iteration of `tasks` tasks stacked in x [T*Q, ...] (every
// rank passes the whole iteration), computing only this rank's share and summing the shares'
// gradients, the loss and BN's running statistics over `comm`. Afterwards every rank holds the
// gradients (accumulated into, like acr_backward: zero them before), running statistics and loss
// of the whole iteration. A parameter gets a gradient when any rank's share reached it. In a
// single process it is acr_backward itself (bit for bit).
// With `device_comm` (device buffers: NCCL, gpu_world()) and the model on a GPU, the gradients are
// summed there in one flat device buffer; the loss, flags and BN statistics still go through comm.
double acr_backward_shared(AcrModel& model, const Tensor& x, const std::vector<int>& y, int64_t tasks,
                           int64_t per_pass, Communicator& comm, ShareStats* stats = nullptr,
                           Communicator* device_comm = nullptr);

// After training: an Error on every rank (naming `what`) unless every rank holds the same model
// bytes (parameters and buffers), which the same summed gradients must give. A 64-bit digest.
void check_replicas_agree(const AcrModel& model, Communicator& comm, const std::string& what);

}  // namespace normad::models
