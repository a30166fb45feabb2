// Checks every normad run makes before any work: output paths, numeric options, subcommand names,
// checkpoint options (see apps/cli_commands.h).
// Math: none (Damerau-Levenshtein distance for the suggestions). Tested by tests/test_cli_robust.cpp.
#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "apps/cli_commands.h"
#include "apps/cli_util.h"
#include "tensor/tensor.h"

namespace normad::cli {

// The file options of the chosen subcommand (and its own subcommand: mvg fit), split into inputs
// and outputs, for cli::check_paths. Options that name a kind (train --model ntl) or a built-in
// data set (zeroshot --data fmnist) count as inputs only when such a file exists.
void check_run_paths(const CLI::App& app) {
  static const std::vector<std::string> input_options = {"--data", "--csv", "--reference", "--features", "--model",
                                                          "--weights", "--scores", "--labels", "--data-dir",
                                                          "--images", "--mvtec", "RESULTS"};
  static const std::vector<std::string> output_options = {"--out", "--json", "--profile", "--checkpoint", "--report"};
  std::vector<cli::PathArg> inputs, outputs;
  std::vector<const CLI::App*> chosen;
  for (const CLI::App* sub : app.get_subcommands()) {
    chosen.push_back(sub);
    for (const CLI::App* inner : sub->get_subcommands()) chosen.push_back(inner);
  }
  for (const CLI::App* sub : chosen)
    for (const CLI::Option* opt : sub->get_options()) {
      if (opt->count() == 0) continue;
      std::string name;  // the long option, or a positional's name (report's RESULTS)
      if (!opt->get_lnames().empty()) name = "--" + opt->get_lnames().front();
      else if (opt->get_positional()) name = opt->get_name();
      else continue;
      const bool file_option = std::find(input_options.begin(), input_options.end(), name) != input_options.end() ||
                               std::find(output_options.begin(), output_options.end(), name) != output_options.end();
      for (const std::string& value : opt->results()) {
        if (file_option && value.empty()) throw Error(name + ": the file name is empty");
        if (std::find(input_options.begin(), input_options.end(), name) != input_options.end())
          inputs.push_back({name, value});
        if (std::find(output_options.begin(), output_options.end(), name) != output_options.end() && !value.empty())
          outputs.push_back({name, value});
      }
    }
  cli::check_paths(inputs, outputs);
  // --resume FILE is read before anything is written: --checkpoint may replace it (and usually
  // does, continuing the same file), no other output may.
  for (const CLI::App* sub : chosen) {
    const CLI::Option* resume = sub->get_option_no_throw("--resume");
    if (!resume || resume->count() == 0) continue;
    for (const cli::PathArg& out : outputs)
      if (out.option != "--checkpoint")
        cli::check_paths({{"--resume", resume->results().front()}}, {out});
  }
}

// Every numeric option of every subcommand: the value must be a finite number ("nan", "inf" and
// "1e999" are refused, naming the option), and an unsigned one must not be negative (CLI11 would
// wrap "--seed -1" to 2^64 - 1). Ranges particular to an option are checked where it is used.
void check_numeric_options(CLI::App& app) {
  const CLI::Validator finite(
      [](std::string& v) -> std::string {
        char* end = nullptr;
        const double x = std::strtod(v.c_str(), &end);
        if (end == v.c_str() || !std::isfinite(x)) return "must be a finite number, got '" + v + "'";
        return "";
      },
      "");
  const CLI::Validator non_negative(
      [](std::string& v) -> std::string {
        return v.find('-') != std::string::npos ? "must be a non-negative integer, got '" + v + "'" : "";
      },
      "");
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    for (CLI::Option* opt : sub->get_options()) {
      const std::string type = opt->get_type_name();
      if (type == "INT" || type == "UINT" || type == "FLOAT") opt->check(finite);
      if (type == "UINT") opt->check(non_negative);
    }
    check_numeric_options(*sub);
  }
}

// A first argument that is no subcommand: suggest the ones within two edits (trian -> train).
// Nested commands too (mvg fitt -> mvg fit).
void check_subcommand(const CLI::App& app, int argc, char** argv, int at) {
  const auto subs = app.get_subcommands([](const CLI::App*) { return true; });
  if (subs.empty() || argc <= at || argv[at][0] == '-') return;
  const std::string given = argv[at];
  std::vector<std::string> names;
  for (const CLI::App* sub : subs) {
    names.push_back(sub->get_name());
    if (sub->get_name() == given) return check_subcommand(*sub, argc, argv, at + 1);
  }
  auto distance = [](const std::string& a, const std::string& b) {  // Damerau-Levenshtein (adjacent swaps)
    std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
    for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
    for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
    for (size_t i = 1; i <= a.size(); ++i)
      for (size_t j = 1; j <= b.size(); ++j) {
        d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])});
        if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    return d[a.size()][b.size()];
  };
  std::string close, all;
  for (const std::string& n : names) {
    all += (all.empty() ? "" : ", ") + n;
    if (distance(given, n) <= 2) close += (close.empty() ? "" : " or ") + n;
  }
  const std::string parent = at > 1 ? std::string(argv[at - 1]) + " " : "";
  throw Error("unknown command '" + parent + given + "'" + (close.empty() ? "" : "; did you mean " + close + "?") +
              " (" + (at > 1 ? argv[at - 1] + std::string(" commands: ") : "commands: ") + all + ")");
}
void add_checkpoint_options(CLI::App* sub, std::string& file, int64_t& every, std::string& resume,
                            const std::string& unit, const std::string& scope, const std::string& result) {
  sub->add_option("--checkpoint", file, "write the training state to FILE every --checkpoint-every " + unit +
                                            " (atomically), for --resume" + (scope.empty() ? "" : "; " + scope));
  sub->add_option("--checkpoint-every", every, unit + " between checkpoints")->capture_default_str();
  sub->add_option("--resume", resume, "continue a run from its checkpoint FILE (same options and data): the same " +
                                          result + " as the uninterrupted run, bit for bit");
}

bool check_checkpoint_options(const std::string& file, int64_t every, const std::string& resume) {
  if (every < 0) throw Error("--checkpoint-every: must be >= 0 (0: no checkpoints)");
  if (!file.empty() && every == 0) throw Error("--checkpoint " + file + ": needs --checkpoint-every N");
  if (file.empty() && every > 0) throw Error("--checkpoint-every: needs --checkpoint FILE");
  return !file.empty() || !resume.empty();
}

}  // namespace normad::cli
