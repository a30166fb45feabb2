// normad: the command line. Subcommands, one file each: `zeroshot` (apps/cmd_zeroshot.cpp: ACR on
// FMNIST-ZS or a labelled CSV), `oneclass` (cmd_oneclass.cpp: Deep SVDD per normal class on
// Fashion-MNIST), `train` / `score` (cmd_train.cpp, cmd_score.cpp: table models through the detector
// API, detect/), `eval` (cmd_eval.cpp: metrics of a scores file), `features` and `mvg`
// (cmd_features.cpp, cmd_mvg.cpp: Gaussian-AD on images). This file only wires them: the options
// every subcommand shares, the checks before any work, and one line per error with exit code 2.
// Output files are written to a temporary name and renamed, so nothing is left half-written.
// Math: none. Tested by tests/test_cli*.cpp (error cases, exit codes) and by `make demo`.
#include <CLI/CLI.hpp>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <new>
#include <thread>
#include <vector>

#include "apps/cli_commands.h"
#include "apps/cli_util.h"
#include "tensor/backend.h"
#include "tensor/comm.h"
#include "tensor/parallel.h"
#include "tensor/profile.h"

using namespace normad;

int main(int argc, char** argv) {
  // Line-buffered stdout keeps result lines in order with the progress lines on stderr, also when
  // both go to one file.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  CLI::App app{"normad: deep anomaly detection (ACR zero-shot, Deep SVDD, NeuTraL-AD, Gaussian-AD)"};
  app.require_subcommand(1);
  // What this build computes with: results round differently under each GEMM engine and device.
  app.set_version_flag("--version", std::function<std::string()>([] {
    // cuda_backend() is null without a GPU too; the table exists whenever the backend was compiled
    return "normad: CPU GEMM " + cpu_gemm_engine() + "; CUDA backend " +
           (cuda_backend_table() ? (device_available(Device::CUDA)
                                        ? std::string("built, GPU found")
                                        : "built, no GPU (" + device_unavailable_reason(Device::CUDA) + ")")
                                 : std::string("not built")) +
           "; MPI " + (built_with_mpi() ? "built" : "not built") + ", NCCL " + (built_with_nccl() ? "built" : "not built");
  }), "Print what this build computes with (CPU GEMM engine, CUDA, MPI, NCCL) and exit");
  // Parse errors: one line, like every other error (CLI11 would add a second one).
  app.failure_message([](const CLI::App*, const CLI::Error& e) { return "normad: " + std::string(e.what()) + "\n"; });
  cli::CommonOptions common;
  auto add_common = [&common](CLI::App* sub) {
    sub->add_option("--seed", common.seed, "random seed")->capture_default_str();
    sub->add_option("--threads", common.threads, "threads (0: all cores)")->capture_default_str();
    sub->add_option("--json", common.json, "also write machine-readable results to FILE");
    sub->add_option("--device", common.device,
                    "where models run: cpu or cuda (reference: the plain-loop kernels, slow, for checking; docs/cuda.md)")
        ->capture_default_str();
    sub->add_flag("--tf32", common.tf32, "with --device cuda: TF32 tensor-core matrix products (faster, ~1e-3 relative error)");
    sub->add_option("--profile", common.profile,
                    "time every op call: a Chrome trace to FILE (Perfetto, chrome://tracing) and a per-op table on stderr "
                    "(docs/profiling.md)");
  };
  const std::vector<cli::Command> commands = {
      cli::add_zeroshot(app, add_common, common), cli::add_oneclass(app, add_common, common),
      cli::add_eval(app, add_common, common),     cli::add_train(app, add_common, common),
      cli::add_score(app, add_common, common),    cli::add_features(app, add_common, common),
      cli::add_mvg(app, add_common, common),      cli::add_report(app, add_common, common)};

  cli::check_numeric_options(app);
  try {
    cli::check_subcommand(app, argc, argv);
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  } catch (const Error& e) {  // an unknown command, or --version reading a bad NORMAD_GEMM
    std::fprintf(stderr, "normad: %s\n", e.what());
    return 2;
  }
  // Under an MPI launcher (mpirun, srun) every rank runs this program; MPI starts here. An error
  // on any rank from now on ends the whole job (Communicator::abort): a rank that just returned
  // would leave the others waiting in a collective.
  Communicator* ranks = nullptr;
  int error_fd = -1;  // ranks other than 0: their standard error, kept for their own errors
  auto fail = [&ranks, &error_fd](const std::string& message) {
    if (error_fd >= 0) std::fflush(stderr), dup2(error_fd, STDERR_FILENO);
    if (ranks && ranks->size() > 1) ranks->abort(message, 2);
    std::fprintf(stderr, "normad: %s\n", message.c_str());
    return 2;
  };
  try {
    if (launched_by_mpi()) ranks = &world();
    if (ranks && ranks->size() > 1) {
      for (const cli::Command& c : commands)
        if (*c.app && !(c.runs_across_ranks && c.runs_across_ranks())) {
          const auto chosen = c.app->get_subcommands();  // mvg fit / score / eval
          throw Error("normad " + c.app->get_name() + (chosen.empty() ? "" : " " + chosen[0]->get_name()) +
                      " with these options does not share its work between ranks (" + std::to_string(ranks->size()) +
                      " were started; every one would do the whole job): run it without mpirun. Across ranks: "
                      "zeroshot, train --model acr-dsvdd / acr-ntl, mvg fit / score on images (docs/distributed.md)");
        }
      // Results, progress and warnings are printed by rank 0; the others print only their errors.
      if (ranks->rank() != 0) {
        error_fd = dup(STDERR_FILENO);
        const int null_fd = open("/dev/null", O_WRONLY);
        if (error_fd < 0 || null_fd < 0 || dup2(null_fd, STDOUT_FILENO) < 0 || dup2(null_fd, STDERR_FILENO) < 0)
          throw Error("cannot silence the output of rank " + std::to_string(ranks->rank()));
        close(null_fd);
      }
    }
    // More threads than 4 x the hardware's only slows a run down; 1000 is a typo, not a setting.
    const int hardware = std::max(1u, std::thread::hardware_concurrency());
    if (common.threads < 0 || common.threads > 4 * hardware)
      throw Error("--threads: must be 0 (all cores) to " + std::to_string(4 * hardware) + " (4 x the " +
                  std::to_string(hardware) + " hardware threads here), got " + std::to_string(common.threads));
    set_num_threads(common.threads);
    cli::select_device(common.device, common.tf32);
    cli::check_run_paths(app);  // outputs that would fail or overwrite an input are found now, not after the run
    if (!common.profile.empty()) profile::start();
    for (const cli::Command& c : commands)
      if (*c.app) c.run();
    if (!common.profile.empty() && cli::writes_outputs()) {  // the run succeeded: its trace and table (rank 0's)
      profile::stop();
      profile::print_table(stderr, profile::summarize(), profile::measure_ceiling());
      profile::write_trace(common.profile);
      std::fprintf(stderr, "wrote the trace of %zu op calls to %s\n", profile::events().size(), common.profile.c_str());
    }
  } catch (const Error& e) {
    return fail(e.what());
  } catch (const std::bad_alloc&) {
    return fail("out of memory: an input file or an option (sizes, batch, widths, K) asks for more memory than this "
                "machine has");
  } catch (const std::filesystem::filesystem_error& e) {
    return fail(e.what());
  } catch (const std::exception& e) {
    // Anything else is a bug in normad, not a user error: say so rather than leak a library's words.
    return fail(std::string("internal error (") + e.what() + "); please report it with the command line");
  }
  return 0;
}
