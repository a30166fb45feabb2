// Helpers shared by normad's subcommands: atomic file writes, progress lines, comma lists.
// Math: none. Tested through tests/test_cli.cpp (no half-written outputs, error messages).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <json.hpp>

#include "data/csv.h"
#include "tensor/comm.h"
#include "tensor/tensor.h"

namespace normad::cli {

// The device models train and score on (--device; cpu by default). Data loading, metrics and
// file writing stay on the host; each batch is copied to this device and results come back.
Device& compute_device();
// Applies --device NAME and --tf32: checks the device can be used here (an Error saying why not,
// e.g. no GPU) and that --tf32 goes with cuda.
void select_device(const std::string& name, bool tf32);

// A file or directory named by an option, e.g. {"--out", "scores.csv"}.
struct PathArg {
  std::string option, path;
};
// Checks the run's outputs before any work starts, so a long run never ends on an unwritable path
// or overwrites its own data. An Error names the option and the path when an output
//   - is the same file as an input (the same path, a hard link or a symlink: device and inode),
//   - is named by two outputs (--out = --json),
//   - is a directory, or its directory does not exist or cannot be written (a probe file is
//     created and removed there: permissions, a read-only file system).
// Inputs that do not exist are left to their readers (which name them).
void check_paths(const std::vector<PathArg>& inputs, const std::vector<PathArg>& outputs);

// Whether this process writes the run's outputs and prints its progress and results: a process
// alone, or rank 0 of a job an MPI launcher started (tensor/comm.h). The other ranks compute their
// shares and print only their errors.
bool writes_outputs();

// Every rank of an MPI job reached this point without an error (one small all-reduce). Called on
// every rank right before a command's first output, so that a rank that failed (and so ended the
// job) leaves no output from rank 0 behind. Nothing in a process alone.
void outputs_barrier();

// Where data-parallel ranks sum the gradients of a model on `device`: NCCL (gpu_world()) for a
// GPU model when several ranks run and NCCL was built, else null (through world() on the host).
Communicator* gradient_ranks(Device device);

// Writes `text` to path via a temporary file + rename, so a failure leaves nothing half-written.
// On a rank other than 0 (writes_outputs() false) it writes nothing: rank 0 writes every output.
void write_atomic(const std::string& path, const std::string& text);

// The run's memory so far, for --json: per device the tensor bytes in use and at the peak
// (the allocators' counters: tensor storage only) and the process's peak resident set (getrusage:
// everything, code and libraries included).
nlohmann::json memory_report();
// Writes js plus {"memory": memory_report(), "device": the --device name} to path atomically (invalid UTF-8 in a string becomes
// U+FFFD instead of an exception).
void write_json(const std::string& path, nlohmann::json js);
// What write_json adds to a results document (the run's memory, device, TF32 setting), and the
// document as write_json writes it (2-space indent, invalid UTF-8 replaced).
nlohmann::json with_run_info(nlohmann::json js);
std::string json_text(const nlohmann::json& js);

// Progress on stderr: a redrawn bar on a terminal, plain lines every 10 s otherwise. `loss` is
// shown unless show_loss is false (feature extraction). Silent where writes_outputs() is false.
struct Progress {
  std::string label;
  bool show_loss = true;
  bool tty = false;
  std::chrono::steady_clock::time_point t0, last;
  explicit Progress(std::string label, bool show_loss = true);
  void operator()(int64_t done, int64_t total, double loss = 0);
};

using data::split_list;  // "a,b,c" -> {"a", "b", "c"} (data/csv.h)

}  // namespace normad::cli
