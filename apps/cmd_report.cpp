// `normad report RESULTS.json --out report.html`: the HTML report of a results document, and the
// --report FILE option that eval, zeroshot and mvg eval share (the same page, written at the end of
// the run). The page itself: report/report.h.
// Math: none. Tested by tests/test_report.cpp (CLI report = --report, bit for bit; errors) and
// tests/report_chromium.sh (the page in headless Chromium).
#include <filesystem>
#include <fstream>
#include <sstream>

#include "apps/cli_commands.h"
#include "apps/cli_util.h"
#include "report/report.h"

namespace normad::cli {

void add_report_option(CLI::App* sub, std::string& path) {
  sub->add_option("--report", path,
                  "also write an HTML report of the results to FILE (one self-contained page: tables, SVG plots; "
                  "the same as `normad report` on the --json file)");
}

void write_results(const nlohmann::json& js, const ResultFiles& files) {
  // One document for both files, so that --report FILE is the page `normad report` makes of the
  // --json FILE, byte for byte.
  const std::string text = json_text(with_run_info(js));
  if (!files.json.empty()) write_atomic(files.json, text);
  if (!files.report.empty()) {
    std::string kind = js.value("kind", std::string("results"));
    if (kind == "mvg-eval") kind = "mvg eval";
    write_atomic(files.report,
                 report::render_html(text, files.json.empty() ? "normad " + kind + " (no --json file written)" : files.json));
    std::printf("wrote the report %s\n", files.report.c_str());
  }
}

namespace {

struct ReportArgs {
  std::string results, out;
};

void run_report(const ReportArgs& a) {
  if (std::filesystem::is_directory(a.results)) throw Error(a.results + ": a directory, not a results document");
  std::ifstream f(a.results, std::ios::binary);
  if (!f) throw Error(a.results + ": cannot read");
  std::ostringstream text;
  text << f.rdbuf();
  write_atomic(a.out, report::render_html(text.str(), a.results));
  std::printf("wrote the report %s (%s results)\n", a.out.c_str(), report::results_kind(text.str(), a.results).c_str());
}

}  // namespace

Command add_report(CLI::App& app, const AddCommon&, const CommonOptions&) {
  auto a = std::make_shared<ReportArgs>();
  auto* rep = app.add_subcommand("report", "an HTML report (tables, ROC / PR curves, histograms, learning curves) of "
                                           "the --json results of eval, zeroshot or mvg eval");
  rep->add_option("RESULTS", a->results, "the results document (--json FILE of eval, zeroshot or mvg eval)")
      ->required();
  rep->add_option("--out", a->out, "the HTML file to write")->required();
  return {rep, [a] { run_report(*a); }};
}

}  // namespace normad::cli
