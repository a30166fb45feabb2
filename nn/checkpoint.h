// Training checkpoints: the state of a run between two steps, so that --resume continues a killed
// run to the result the uninterrupted run gives, bit for bit (same threads, same device).
// File: safetensors, written atomically (save_safetensors: a temporary file, then rename), with
//   tensors   model.<name>  every parameter and buffer;  adam.m.<i>, adam.v.<i>  Adam's moments
//   metadata  normad.kind = checkpoint, ckpt.step (steps done), ckpt.adam_steps (per parameter),
//             ckpt.rng.<name> (each generator's engine state), ckpt.run.<key> (what identifies the
//             run: options, data digest), ckpt.extra.<key> (the caller's own fields)
// Resuming with another run's checkpoint (any ckpt.run field differs) is an error naming the field.
// Tested by tests/test_checkpoint.cpp (round trip of every part; a run killed by SIGKILL and resumed
// equals the uninterrupted run).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "nn/optim.h"
#include "tensor/random.h"

namespace normad::nn {

// What a checkpoint saves and restores, by reference: the model's state (tensors sharing its
// storage, any device), its Adam optimiser and the run's generators.
struct TrainingState {
  std::vector<std::pair<std::string, Tensor>> model;
  Adam* optimizer = nullptr;
  std::vector<std::pair<std::string, Generator*>> generators;
};

// Writes `state` after `step` steps to `path`.
void save_checkpoint(const std::string& path, const TrainingState& state, int64_t step,
                     const std::map<std::string, std::string>& run,
                     const std::map<std::string, std::string>& extra = {});

// Restores `state` from `path` and returns the steps it had done; `extra` receives the caller's
// fields. Errors name the file: not a checkpoint, another run (the differing field), a missing or
// reshaped tensor, a bad generator state.
int64_t load_checkpoint(const std::string& path, const TrainingState& state,
                        const std::map<std::string, std::string>& run,
                        std::map<std::string, std::string>* extra = nullptr);

// A hex SHA-256 of the tensors' bytes (shapes included), for ckpt.run: the same data, or not.
std::string digest(const std::vector<Tensor>& tensors);

// What a training loop is asked to do about checkpoints (part of its config): write to `file`
// every `every` steps (epochs or iterations), continue from `resume`, identify the run by `run`
// (the loop adds its own settings and a digest of its data), and tell `resumed` the steps already
// done after a resume.
struct CheckpointPlan {
  std::string file, resume;
  int64_t every = 0;
  std::map<std::string, std::string> run;
  std::function<void(int64_t)> resumed;
  bool active() const { return !file.empty() || !resume.empty(); }
  bool due(int64_t done) const { return !file.empty() && every > 0 && done % every == 0; }
};

// Doubles as text that reads back to the same bits ("%.17g", comma-separated), and back; the
// reader names `where` in its errors.
std::string join_doubles(const std::vector<double>& v);
std::vector<double> split_doubles(const std::string& s, const std::string& where);

}  // namespace normad::nn
