// `normad eval`: AUROC, AP and F1 of a scores file against the labels of the file that was scored.
// Math: eval/metrics.h (AUROC as the Mann-Whitney statistic, AP, F1 at the true anomaly ratio).
// Tested by tests/test_cli.cpp and tests/test_cli_trust.cpp.
#include <json.hpp>

#include <algorithm>
#include <cstdio>

#include "apps/cli_commands.h"
#include "apps/cli_util.h"
#include "data/csv.h"
#include "eval/metrics.h"

namespace normad::cli {

namespace {

// `normad eval`: AUROC, AP and F1 of a scores file (columns "score" and "index" or "name") against
// the labels of the file that was scored. Scores and labels are paired by key, never by position:
// "index" is the 0-based row of the labels file (normad score's output), "name" matches a "name"
// column of the labels file (normad mvg score's output). Labels are 0/1 (1 = anomaly) or, with
// --normal V, any values where V marks the normal rows. With a "prediction" column (the model's
// threshold decision) it also reports the share of normal rows flagged (false-positive rate) and of
// anomalies flagged (recall).
void eval_scores(const std::string& scores_path, const std::string& labels_path, const std::string& label,
                 const std::string& normal, const ResultFiles& out_files) {
  const data::Csv scores = data::read_csv(scores_path);
  const auto column = data::column_index;
  const int64_t sc = column(scores, "score");
  if (sc < 0) throw Error(scores_path + ": no 'score' column (expected normad score's index,score,prediction)");
  const int64_t by_name = column(scores, "name"), by_index = column(scores, "index");
  if (by_name < 0 && by_index < 0)
    throw Error(scores_path + ": no 'index' or 'name' column to pair each score with its row of " + labels_path);
  const int64_t pred_col = column(scores, "prediction");
  data::Csv lab = data::read_csv(labels_path);
  // A scores file (normad score / mvg score's columns only) is never ground truth.
  const bool scores_shape = column(lab, "score") >= 0 && std::all_of(lab.header.begin(), lab.header.end(), [](const std::string& h) {
    return h == "index" || h == "name" || h == "score" || h == "prediction";
  });
  if (scores_shape)
    throw Error(labels_path + ": this is a scores file (columns " + lab.header.front() + ", ...), not ground truth: " +
                "pass the data file with the true labels as --labels");
  if (label == "prediction" && column(scores, "prediction") >= 0)
    throw Error("--label prediction: 'prediction' is the name of normad's threshold decision, not a label");
  const int64_t li = column(lab, label);
  if (li < 0) {
    std::string cols;
    for (auto& h : lab.header) cols += (cols.empty() ? "'" : ", '") + h + "'";
    throw Error(labels_path + ": label column '" + label + "' not found (columns: " + cols + "); set it with --label");
  }
  const int64_t n = static_cast<int64_t>(scores.rows.size());
  if (n != static_cast<int64_t>(lab.rows.size()))
    throw Error(scores_path + " has " + std::to_string(n) + " scores but " + labels_path + " has " +
                std::to_string(lab.rows.size()) + " rows: every row needs exactly one score");
  // Key of each labels row -> its position; each score's key must be found exactly once.
  std::map<std::string, int64_t> row_of;
  const int64_t lab_name = by_name >= 0 ? column(lab, "name") : -1;
  if (by_name >= 0 && lab_name < 0)
    throw Error(labels_path + ": no 'name' column to match the names in " + scores_path);
  for (int64_t i = 0; i < n; ++i) {
    const std::string key = by_name >= 0 ? lab.rows[i][lab_name] : std::to_string(i);
    if (!row_of.emplace(key, i).second) throw Error(labels_path + ":" + std::to_string(lab.lines[i]) + ": name '" + key + "' appears twice");
  }
  std::vector<double> s(n);
  std::vector<int> flagged(n, 0);
  std::vector<std::string> values(n);
  std::vector<int64_t> value_line(n);
  std::vector<bool> used(n, false);
  for (int64_t i = 0; i < n; ++i) {
    const std::string where = scores_path + ":" + std::to_string(scores.lines[i]);
    const std::string& cell = scores.rows[i][sc];
    char* end = nullptr;
    s[i] = std::strtod(cell.c_str(), &end);
    if (cell.empty() || *end != '\0') throw Error(where + ": score '" + cell + "' is not a number");
    if (!std::isfinite(s[i])) throw Error(where + ": score '" + cell + "' is not finite");
    const std::string& key = scores.rows[i][by_name >= 0 ? by_name : by_index];
    auto it = row_of.find(key);
    if (it == row_of.end())
      throw Error(where + ": " + (by_name >= 0 ? "name '" : "index '") + key + "' has no row in " + labels_path +
                  (by_name >= 0 ? "" : " (index is the 0-based row of the scored file)"));
    if (used[it->second]) throw Error(where + ": " + key + " is scored twice");
    used[it->second] = true;
    values[i] = lab.rows[it->second][li];
    value_line[i] = lab.lines[it->second];
    if (pred_col >= 0) {
      const std::string& p = scores.rows[i][pred_col];
      if (p != "0" && p != "1") throw Error(where + ": prediction '" + p + "' is not 0 or 1");
      flagged[i] = p == "1";
    }
  }
  std::vector<int> y;
  if (!normal.empty()) {
    y = data::anomaly_labels(values, normal);
  } else {
    for (int64_t i = 0; i < n; ++i) {
      if (values[i] != "0" && values[i] != "1")
        throw Error(labels_path + ":" + std::to_string(value_line[i]) + ": label '" + values[i] + "' in column '" +
                    label + "' is not 0 or 1 (pass --normal VALUE for class labels)");
      y.push_back(values[i] == "1");
    }
  }
  const int64_t anomalies = std::count(y.begin(), y.end(), 1);
  if (anomalies == 0 || anomalies == n)
    throw Error(labels_path + ": every row of column '" + label + "' is " + (anomalies ? "an anomaly" : "normal") +
                (normal.empty() ? "" : " (--normal " + normal + ")") + "; AUROC, AP and F1 need both");
  const double auroc = eval::auroc(s, y), ap = eval::average_precision(s, y);
  const double f1 = eval::f1_at_true_ratio(s, y), f1max = eval::f1_max(s, y);
  std::printf("rows %lld, anomalies %lld (paired by %s)\nAUROC   %.4f\nAP      %.4f\nF1      %.4f  (threshold at the true anomaly ratio)\nF1-max  %.4f\n",
              (long long)n, (long long)anomalies, by_name >= 0 ? "name" : "index", auroc, ap, f1, f1max);
  // The results document: the metrics, and every score with its label (and the model's decision),
  // in the scores file's order, which `normad report` draws its curves and histograms from.
  nlohmann::json js{{"kind", "eval"}, {"scores_file", scores_path}, {"labels_file", labels_path},
                    {"label", label}, {"normal", normal}, {"paired_by", by_name >= 0 ? "name" : "index"},
                    {"auroc", auroc}, {"ap", ap}, {"f1", f1}, {"f1_max", f1max}, {"rows", n}, {"anomalies", anomalies},
                    {"scores", s}, {"labels", y}};
  if (pred_col >= 0) js["flagged"] = flagged;
  if (pred_col >= 0) {
    // The model's own threshold, as stored in its file: what a user of `prediction` gets.
    int64_t fp = 0, tp = 0;
    for (int64_t i = 0; i < n; ++i) (y[i] ? tp : fp) += flagged[i];
    const double fpr = n - anomalies ? double(fp) / double(n - anomalies) : 0, recall = anomalies ? double(tp) / double(anomalies) : 0;
    std::printf("at the model's threshold: %.1f%% of normal rows flagged (false-positive rate, %lld of %lld), "
                "%.1f%% of anomalies flagged (recall)\n",
                100 * fpr, (long long)fp, (long long)(n - anomalies), 100 * recall);
    js["threshold_fpr"] = fpr, js["threshold_recall"] = recall;
  }
  write_results(js, out_files);
}

struct EvalArgs {
  std::string scores_path, labels_path, label = "label", normal, report;
};

}  // namespace

Command add_eval(CLI::App& app, const AddCommon& add_common, const CommonOptions& common) {
  auto a = std::make_shared<EvalArgs>();
  auto* ev = app.add_subcommand("eval", "AUROC, AP and F1 of a scores file against labels");
  add_common(ev);
  ev->add_option("--scores", a->scores_path,
                 "scores CSV with 'score' and 'index' (normad score) or 'name' (normad mvg score) columns")->required();
  ev->add_option("--labels", a->labels_path,
                 "the scored data file with its true labels; paired with the scores by index (row) or by name")->required();
  ev->add_option("--label", a->label, "label column")->capture_default_str();
  ev->add_option("--normal", a->normal, "the label value of normal rows (default: labels are 0/1)");
  add_report_option(ev, a->report);
  return {ev, [a, &common] { eval_scores(a->scores_path, a->labels_path, a->label, a->normal, {common.json, a->report}); }};
}

}  // namespace normad::cli
