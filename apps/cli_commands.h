// normad's subcommands, one file each (apps/cmd_<name>.cpp); apps/normad.cpp only wires them.
// Each add_<name> registers the subcommand and its options on `app` and returns what runs it when
// it was chosen. Options every subcommand has (--seed, --threads, --json, --device, --tf32,
// --profile) are added by `add_common` and read from `common` when the command runs.
// Tested by tests/test_cli*.cpp (every subcommand's errors, exit codes and outputs).
#pragma once

#include <CLI/CLI.hpp>
#include <json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>

namespace normad::cli {

struct CommonOptions {
  uint64_t seed = 0;
  int threads = 0;
  std::string json, device = "cpu", profile;
  bool tf32 = false;
};
using AddCommon = std::function<void(CLI::App*)>;

struct Command {
  Command(CLI::App* app, std::function<void()> run, std::function<bool()> runs_across_ranks = {})
      : app(app), run(std::move(run)), runs_across_ranks(std::move(runs_across_ranks)) {}
  CLI::App* app = nullptr;     // the subcommand (true when chosen)
  std::function<void()> run;   // runs it; errors are normad::Error (exit code 2 in main)
  // Whether the chosen form shares its work between the ranks of an MPI job (null: never). Under
  // mpirun with more than one rank, main refuses the others (every rank would do the whole job).
  std::function<bool()> runs_across_ranks;
};

Command add_zeroshot(CLI::App& app, const AddCommon& add_common, const CommonOptions& common);
Command add_oneclass(CLI::App& app, const AddCommon& add_common, const CommonOptions& common);
Command add_eval(CLI::App& app, const AddCommon& add_common, const CommonOptions& common);
Command add_train(CLI::App& app, const AddCommon& add_common, const CommonOptions& common);
Command add_score(CLI::App& app, const AddCommon& add_common, const CommonOptions& common);
Command add_features(CLI::App& app, const AddCommon& add_common, const CommonOptions& common);
Command add_mvg(CLI::App& app, const AddCommon& add_common, const CommonOptions& common);
Command add_report(CLI::App& app, const AddCommon& add_common, const CommonOptions& common);

// --report FILE (eval, zeroshot, mvg eval: apps/cmd_report.cpp), and the end of such a run: the
// results document to --json FILE and its HTML page (report/report.h) to --report FILE, each written
// whole or not at all; either path may be empty.
struct ResultFiles {
  std::string json, report;  // --json FILE, --report FILE
};
void add_report_option(CLI::App* sub, std::string& path);
void write_results(const nlohmann::json& js, const ResultFiles& files);

// Checks before any work (apps/cli_checks.cpp):
// the file options of the chosen subcommand: an output that would overwrite an input or cannot be
// written (cli::check_paths), --resume replaced only by --checkpoint;
void check_run_paths(const CLI::App& app);
// every numeric option finite, unsigned ones non-negative;
void check_numeric_options(CLI::App& app);
// a first argument that is no subcommand: an Error suggesting the close ones.
void check_subcommand(const CLI::App& app, int argc, char** argv, int at = 1);
// Adds --checkpoint FILE, --checkpoint-every N and --resume FILE to `sub`. `unit`: what N counts
// ("epochs"); `scope`: how much a file holds ("one fold per run", may be empty); `result`: what a
// resumed run ends with ("results", "model file").
void add_checkpoint_options(CLI::App* sub, std::string& file, int64_t& every, std::string& resume,
                            const std::string& unit, const std::string& scope, const std::string& result);
// --checkpoint FILE needs --checkpoint-every N and the other way round; true when either
// checkpoint option or --resume is given.
bool check_checkpoint_options(const std::string& file, int64_t every, const std::string& resume);

}  // namespace normad::cli
