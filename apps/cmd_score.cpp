// `normad score`: a table scored with a model file from `normad train` (its stored preprocessing,
// threshold and, for ACR, batch size), one row per input row: index (0-based row of the data
// file), the id column when there is one, score, prediction (1: above the model's threshold).
// The scoring is normad::TableDetector's (detect/table_detector.h), the same path the API takes.
// Math: prediction = [score > threshold]. Scores are written "%.17g" (they read back to the same
// double). Tested by tests/test_cli.cpp, tests/test_cli_trust.cpp and tests/test_detect.cpp.
#include <json.hpp>

#include <algorithm>
#include <cstdio>

#include "apps/cli_commands.h"
#include "apps/cli_util.h"
#include "detect/table_detector.h"

namespace normad::cli {

namespace {

struct ScoreArgs {
  std::string model, data, out, id;
  int64_t batch = 0;
};

void score(const ScoreArgs& a, const CommonOptions& common) {
  if (a.out.empty()) throw Error("--out: missing");
  if (a.batch < 0) throw Error("--batch: must be >= 0 (0: the model's)");
  TableDetector model = TableDetector::load(a.model, compute_device());
  const double threshold = model.threshold();
  const data::Csv rows = data::read_csv(a.data);
  // The identifier column: --id, else the model's (train --id); one from the model that this file
  // lacks is left out with a note, one asked for is an error. A column the model never saw can be
  // the id (it is then skipped like an ignored column).
  const std::string id = !a.id.empty() ? a.id : model.id_column();
  const int64_t id_col = id.empty() ? -1 : data::column_index(rows, id);
  if (id_col < 0 && !a.id.empty()) throw Error("--id: column '" + id + "' not found in " + a.data);
  if (id_col < 0 && !id.empty())
    std::fprintf(stderr, "normad: %s has no column '%s' (the model's --id): the scores carry the row index only\n",
                 a.data.c_str(), id.c_str());
  if (id_col >= 0 && (id == "index" || id == "score" || id == "prediction"))
    throw Error("--id: column '" + id + "' would clash with the scores file's own column of that name");
  // ACR: batch-level scores, the file's rows in balanced chunks of about acr.batch rows, each with
  // its own statistics (models/acr.h score_chunks).
  const bool acr = model.kind() == "acr-dsvdd" || model.kind() == "acr-ntl";
  if (acr && a.batch && a.batch != model.acr_batch())
    std::fprintf(stderr, "normad: --batch %lld differs from the %lld rows per batch the threshold was set with; "
                         "zero-shot scores depend on the batch, so the threshold may not hold\n",
                 (long long)a.batch, (long long)model.acr_batch());
  if (acr && a.batch == 1) throw Error("--batch: ACR scores batches of at least 2 rows (their own BN statistics)");
  const std::vector<double> scores = model.score(rows, a.batch, id_col >= 0 ? std::vector<std::string>{id}
                                                                             : std::vector<std::string>{});
  const data::Table& enc = model.last_encoding();
  if (enc.unknown_categories)
    std::fprintf(stderr, "normad: %lld cells had categories unseen in training (encoded as zeros)\n",
                 (long long)enc.unknown_categories);
  if (enc.extreme_cells)
    std::fprintf(stderr,
                 "normad: warning: %lld cells are more than %g training standard deviations from the mean (first: %s); "
                 "the scores of their rows say little\n",
                 (long long)enc.extreme_cells, data::kExtremeStd, enc.first_extreme.c_str());
  std::string text = id_col >= 0 ? "index," + data::csv_field(id) + ",score,prediction\n" : "index,score,prediction\n";
  char line[96];
  for (size_t i = 0; i < scores.size(); ++i) {
    text += std::to_string(i) + ",";
    if (id_col >= 0) text += data::csv_field(rows.rows[i][size_t(id_col)]) + ",";
    std::snprintf(line, sizeof line, "%.17g,%d\n", scores[i], scores[i] > threshold ? 1 : 0);
    text += line;
  }
  write_atomic(a.out, text);
  int64_t flagged = 0;
  for (double v : scores) flagged += v > threshold;
  const std::string& rule = model.threshold_report().rule;
  std::printf("scored %zu rows, %lld above the threshold %.6g (rule: %s), wrote %s\n", scores.size(), (long long)flagged,
              threshold, rule.c_str(), a.out.c_str());
  if (!common.json.empty())
    write_json(common.json, nlohmann::json{{"rows", scores.size()}, {"flagged", flagged}, {"threshold", threshold},
                                           {"threshold_rule", rule}, {"out", a.out}});
}

}  // namespace

Command add_score(CLI::App& app, const AddCommon& add_common, const CommonOptions& common) {
  auto a = std::make_shared<ScoreArgs>();
  auto* scs = app.add_subcommand("score", "score a table with a model file; writes index,score,prediction");
  add_common(scs);
  scs->add_option("--model", a->model, "model file from normad train")->required();
  scs->add_option("--data", a->data, "CSV table to score")->required();
  scs->add_option("--out", a->out, "scores CSV")->required();
  scs->add_option("--id", a->id, "an identifier column of --data to write beside each score (default: the "
                                 "model's, from train --id)");
  scs->add_option("--batch", a->batch,
                  "rows per forward pass; 0: the model's. ACR: rows per batch of statistics, by default the batch "
                  "size the model's threshold was set with (zero-shot scores depend on the batch)")
      ->capture_default_str();
  return {scs, [a, &common] { score(*a, common); }};
}

}  // namespace normad::cli
