// normad report (see report/report.h): reads a results document, checks the fields each section
// needs, and writes the page section by section: a header naming the document, a settings table,
// then the tables and plots of its kind.
// Tested by tests/test_report.cpp and tests/report_chromium.sh.
#include "report/report.h"

#include <json.hpp>
#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <optional>

#include "data/image.h"
#include "eval/metrics.h"
#include "eval/pixel_metrics.h"
#include "report/svg.h"
#include "tensor/tensor.h"

// stb's PNG writer: its implementation lives in this file only (static), and its own code trips
// -Wall -Wextra.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>
#pragma GCC diagnostic pop

namespace normad::report {

namespace {

using nlohmann::json;

// ---- reading the document: every missing or mistyped field is an Error naming it ----

// The value at `key` of object `j` (path `where`), required to be of the tested type.
const json& field(const json& j, const std::string& key, const std::string& where, bool (json::*is_type)() const,
                  const char* type_name) {
  if (!j.is_object() || !j.contains(key))
    throw Error(where + ": no '" + key + "' field");
  const json& v = j.at(key);
  if (!(v.*is_type)()) throw Error(where + "." + key + ": expected " + type_name + ", found " + v.type_name());
  return v;
}
double number(const json& j, const std::string& key, const std::string& where) {
  return field(j, key, where, &json::is_number, "a number").get<double>();
}
const json& array(const json& j, const std::string& key, const std::string& where) {
  return field(j, key, where, &json::is_array, "an array");
}
std::string text(const json& j, const std::string& key, const std::string& where) {
  return field(j, key, where, &json::is_string, "a string").get<std::string>();
}
// A whole number in [lo, hi] (counts, sizes, 0/1 labels).
int64_t integer(const json& j, const std::string& key, const std::string& where, int64_t lo, int64_t hi) {
  const double v = number(j, key, where);
  if (!(v >= double(lo) && v <= double(hi) && v == std::floor(v)))
    throw Error(where + "." + key + ": " + short_number(v, 10) + " is not an integer in [" + std::to_string(lo) + ", " +
                std::to_string(hi) + "]");
  return int64_t(v);
}
// An array of numbers; NaN and infinity cannot be stored in JSON (they arrive as null: an Error).
std::vector<double> numbers(const json& j, const std::string& key, const std::string& where) {
  std::vector<double> out;
  const json& a = array(j, key, where);
  for (size_t i = 0; i < a.size(); ++i) {
    if (!a[i].is_number())
      throw Error(where + "." + key + "[" + std::to_string(i) + "]: expected a number, found " + a[i].type_name() +
                  (a[i].is_null() ? " (a NaN or infinite score?)" : ""));
    out.push_back(a[i].get<double>());
  }
  return out;
}
std::vector<int> labels01(const json& j, const std::string& key, const std::string& where) {
  std::vector<int> out;
  const std::vector<double> values = numbers(j, key, where);
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i] != 0 && values[i] != 1)
      throw Error(where + "." + key + "[" + std::to_string(i) + "]: " + short_number(values[i]) + " is not 0 or 1");
    out.push_back(int(values[i]));
  }
  return out;
}

// Scalar settings of the document (strings, numbers, booleans) as text, in key order.
std::vector<std::pair<std::string, std::string>> scalars(const json& j, const std::vector<std::string>& skip) {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (std::find(skip.begin(), skip.end(), it.key()) != skip.end()) continue;
    const json& v = it.value();
    if (v.is_string()) out.emplace_back(it.key(), v.get<std::string>());
    else if (v.is_number_float()) out.emplace_back(it.key(), short_number(v.get<double>(), 6));
    else if (v.is_number() || v.is_boolean()) out.emplace_back(it.key(), v.dump());
  }
  return out;
}

// ---- HTML pieces ----

std::string table(const std::vector<std::string>& head, const std::vector<std::vector<std::string>>& rows,
                  const std::string& css_class) {
  std::string s = "<table class=\"" + css_class + "\"><tr>";
  for (const std::string& h : head) s += "<th>" + xml_escape(h) + "</th>";
  s += "</tr>\n";
  for (const auto& r : rows) {
    s += "<tr>";
    for (const std::string& c : r) s += "<td>" + xml_escape(c) + "</td>";
    s += "</tr>\n";
  }
  return s + "</table>\n";
}

std::string settings_table(const std::vector<std::pair<std::string, std::string>>& kv) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& [k, v] : kv) rows.push_back({k, v});
  return table({"setting", "value"}, rows, "settings");
}

std::string fixed(double v, int decimals) {
  char b[48];
  std::snprintf(b, sizeof b, "%.*f", decimals, v);
  return b;
}

// ROC and precision-recall plots of one or more scored sets (one series each).
struct Scored {
  std::string label;
  std::vector<double> scores;
  std::vector<int> labels;
};
// The ROC polyline without its collinear points (a point between two on the same vertical or
// horizontal line, as scikit-learn's drop_intermediate): the same drawing, far fewer points on
// large sets.
std::vector<std::pair<double, double>> roc_points(const std::vector<eval::CurvePoint>& curve) {
  std::vector<std::pair<double, double>> out;
  for (size_t k = 0; k < curve.size(); ++k) {
    const bool inner = k > 0 && k + 1 < curve.size();
    if (inner && ((curve[k - 1].fpr == curve[k].fpr && curve[k].fpr == curve[k + 1].fpr) ||
                  (curve[k - 1].tpr == curve[k].tpr && curve[k].tpr == curve[k + 1].tpr)))
      continue;
    out.emplace_back(curve[k].fpr, curve[k].tpr);
  }
  return out;
}
// The PR curve as steps: AP is the step sum, so precision_k holds from recall_{k-1} to recall_k
// (a straight line between the points would draw more area than AP counts).
std::vector<std::pair<double, double>> pr_steps(const std::vector<eval::CurvePoint>& curve) {
  std::vector<std::pair<double, double>> out{{curve.front().recall, curve.front().precision}};
  for (size_t k = 1; k < curve.size(); ++k) {
    if (curve[k].recall == curve[k - 1].recall) continue;  // a run of normals: recall unchanged
    out.emplace_back(curve[k - 1].recall, curve[k].precision);
    out.emplace_back(curve[k].recall, curve[k].precision);
  }
  return out;
}
std::string roc_and_pr(const std::vector<Scored>& sets) {
  std::vector<Series> roc, pr;
  for (size_t i = 0; i < sets.size(); ++i) {
    const auto curve = eval::threshold_curve(sets[i].scores, sets[i].labels);
    // one set: the legend says AUROC / AP; several: each entry names its set and carries its own
    const std::string auroc = fixed(eval::auroc(sets[i].scores, sets[i].labels), 3);
    const std::string ap = fixed(eval::average_precision(sets[i].scores, sets[i].labels), 3);
    const bool one = sets.size() == 1;
    roc.push_back(Series{one ? "AUROC " + auroc : sets[i].label + " (" + auroc + ")", palette(i), roc_points(curve)});
    pr.push_back(Series{one ? "AP " + ap : sets[i].label + " (" + ap + ")", palette(i), pr_steps(curve)});
  }
  if (sets.size() == 1) {  // the precision of flagging everything: the anomaly share
    const auto& y = sets[0].labels;
    const double share = double(std::count(y.begin(), y.end(), 1)) / double(y.size());
    pr.push_back(Series{"anomaly share " + short_number(share), "#999", {{0, share}, {1, share}}, true});
  }
  return line_plot("roc", Axes{"ROC curve", "false-positive rate", "true-positive rate", 0, 1, 0, 1}, roc, true) +
         line_plot("pr", Axes{"Precision-recall curve", "recall", "precision", 0, 1, 0, 1.02}, pr);
}

const char* kStyle = R"(body{font-family:sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ccc}
.source{color:#555;margin:0 0 12px}.note{color:#7a4b00;background:#fff6e0;padding:6px 10px;border-left:3px solid #e0a000}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}.plots{display:flex;flex-wrap:wrap;gap:12px}
.grid{display:flex;flex-wrap:wrap;gap:8px}figure{margin:0;text-align:center;font-size:11px}
figure img{display:block;border:3px solid #1f77b4}figure.anomalous img{border-color:#d62728}
)";

std::string page(const std::string& title, const std::string& source, const std::string& body) {
  return "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + xml_escape(title) +
         "</title>\n<style>" + kStyle + "</style></head>\n<body>\n<h1>" + xml_escape(title) +
         "</h1>\n<p class=\"source\">from <code>" + xml_escape(source) + "</code></p>\n" + body +
         "</body></html>\n";
}

// ---- eval: one scored table or image set against its labels ----

std::string eval_page(const json& j, const std::string& source) {
  const std::vector<double> s = numbers(j, "scores", source);
  const std::vector<int> y = labels01(j, "labels", source);
  if (s.size() != y.size())
    throw Error(source + ": " + std::to_string(s.size()) + " scores but " + std::to_string(y.size()) + " labels");
  const int64_t anomalies = std::count(y.begin(), y.end(), 1), n = int64_t(y.size());
  if (anomalies == 0 || anomalies == n) throw Error(source + ": the labels need both normal (0) and anomalous (1) rows");
  // The page's metrics come from the stored scores; a document whose own figures disagree with them
  // (edited, or written by another version) is an error, not a page with two answers.
  const double auroc = eval::auroc(s, y), ap = eval::average_precision(s, y);
  const double f1 = eval::f1_at_true_ratio(s, y), f1_max = eval::f1_max(s, y);
  auto agrees = [&](const std::string& key, double value, bool required) {
    if (!required && !j.contains(key)) return;
    if (!(std::abs(number(j, key, source) - value) <= 1e-9))
      throw Error(source + ": its " + key + " " + short_number(number(j, key, source), 6) +
                  " disagrees with its scores and labels (" + short_number(value, 6) + ")");
  };
  agrees("auroc", auroc, true), agrees("ap", ap, true), agrees("f1", f1, false), agrees("f1_max", f1_max, false);
  agrees("rows", double(n), false), agrees("anomalies", double(anomalies), false);
  std::string body = "<h2>Metrics</h2>\n";
  std::vector<std::vector<std::string>> rows{{"rows", std::to_string(n)},
                                             {"anomalies", std::to_string(anomalies)},
                                             {"AUROC", fixed(auroc, 4)},
                                             {"AP", fixed(ap, 4)},
                                             {"F1 (threshold at the true anomaly ratio)", fixed(f1, 4)},
                                             {"F1-max", fixed(f1_max, 4)}};
  // The model's threshold, seen through its predictions: score > threshold is flagged, so it lies
  // in [highest unflagged score, lowest flagged score).
  std::optional<double> threshold;
  std::string threshold_label, note;
  if (j.contains("flagged")) {
    const std::vector<int> flagged = labels01(j, "flagged", source);
    if (flagged.size() != s.size()) throw Error(source + ": 'flagged' has " + std::to_string(flagged.size()) + " entries for " + std::to_string(s.size()) + " scores");
    double lo = -INFINITY, hi = INFINITY;
    int64_t fp = 0, tp = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      if (flagged[i]) hi = std::min(hi, s[i]), (y[i] ? tp : fp) += 1;
      else lo = std::max(lo, s[i]);
    }
    agrees("threshold_fpr", double(fp) / double(n - anomalies), false);
    agrees("threshold_recall", double(tp) / double(anomalies), false);
    rows.push_back({"normal rows flagged at the model's threshold", fixed(100.0 * double(fp) / double(n - anomalies), 1) + "% (" +
                                                                       std::to_string(fp) + " of " + std::to_string(n - anomalies) + ")"});
    rows.push_back({"anomalies flagged (recall)", fixed(100.0 * double(tp) / double(anomalies), 1) + "%"});
    if (lo < hi) {
      threshold = std::isinf(hi) ? lo : std::isinf(lo) ? hi : (lo + hi) / 2;
      threshold_label = std::isinf(hi) ? "threshold: nothing flagged" : std::isinf(lo) ? "threshold: all flagged" : "threshold";
      // the bounds in the table, with the digits that tell them apart
      int digits = 4;
      while (digits < 17 && !std::isinf(lo) && !std::isinf(hi) && short_number(lo, digits) == short_number(hi, digits)) ++digits;
      rows.push_back({"the model's threshold (from its predictions)",
                      std::isinf(hi)   ? "above the highest score " + short_number(lo, digits)
                      : std::isinf(lo) ? "below the lowest score " + short_number(hi, digits)
                                       : "between " + short_number(lo, digits) + " and " + short_number(hi, digits)});
    } else {
      note = "The predictions are not one threshold on these scores: some flagged rows score lower than unflagged "
             "ones (as when scores depend on the batch they were scored in, ACR's), so no threshold is drawn.";
    }
  }
  body += table({"metric", "value"}, rows, "metrics");
  body += "<h2>Curves and scores</h2>\n<div class=\"plots\">\n" + roc_and_pr({Scored{"", s, y}});
  std::vector<double> normal_scores, anomalous_scores;
  for (size_t i = 0; i < s.size(); ++i) (y[i] ? anomalous_scores : normal_scores).push_back(s[i]);
  body += histogram("Scores", "anomaly score", normal_scores, anomalous_scores, threshold, threshold_label) + "</div>\n";
  if (!note.empty()) body += "<p class=\"note\">" + xml_escape(note) + "</p>\n";
  body += "<h2>Settings</h2>\n" + settings_table(scalars(j, {"auroc", "ap", "f1", "f1_max", "rows", "anomalies",
                                                                "threshold_fpr", "threshold_recall"}));
  return page("normad eval report", source, body);
}

// ---- zeroshot: ACR and its baselines per anomaly ratio, per batch, and while training ----

std::string zeroshot_page(const json& j, const std::string& source) {
  static const std::vector<std::pair<std::string, std::string>> methods{
      {"acr", "ACR"}, {"stationary", "stationary"}, {"batch_l2", "batch-mean L2"}, {"knn", "kNN-5"}};
  const json& ratios = array(j, "ratios", source);
  std::vector<double> ratio_values;
  std::vector<std::vector<std::string>> mean_rows;
  for (size_t i = 0; i < ratios.size(); ++i) {
    const std::string where = source + ".ratios[" + std::to_string(i) + "]";
    ratio_values.push_back(number(ratios[i], "ratio", where));
    std::vector<std::string> row{short_number(ratio_values.back())};
    for (const auto& m : methods) row.push_back(fixed(number(ratios[i], m.first, where), 3));
    mean_rows.push_back(row);
  }
  std::string body = "<h2>AUROC per anomaly ratio (mean over the folds)</h2>\n" +
                     table({"anomaly ratio", "ACR", "stationary", "batch-mean L2", "kNN-5"}, mean_rows, "ratios");
  // Per fold: mean (std) over its test batches at each ratio, the numbers the CLI prints.
  const json empty = json::array();
  const json& folds = array(j, "folds", source);  // every zero-shot run writes its folds
  // values[ratio][method]: every batch's AUROC of every fold, for the strip plot
  std::vector<std::vector<std::vector<double>>> values(ratio_values.size(), std::vector<std::vector<double>>(methods.size()));
  std::vector<Series> curves;
  std::vector<std::vector<std::vector<double>>> fold_means;  // [fold][ratio][method], folds with batches
  for (size_t f = 0; f < folds.size(); ++f) {
    const std::string where = source + ".folds[" + std::to_string(f) + "]";
    const std::string fold = folds[f].contains("fold") ? text(folds[f], "fold", where) : std::to_string(f);
    std::vector<std::vector<std::vector<double>>> per(ratio_values.size(), std::vector<std::vector<double>>(methods.size()));
    const json& batches = folds[f].contains("batches") ? array(folds[f], "batches", where) : empty;
    for (size_t b = 0; b < batches.size(); ++b) {
      const std::string bw = where + ".batches[" + std::to_string(b) + "]";
      const double r = number(batches[b], "ratio", bw);
      const auto it = std::find(ratio_values.begin(), ratio_values.end(), r);
      if (it == ratio_values.end()) throw Error(bw + ": ratio " + short_number(r) + " is not one of the document's ratios");
      for (size_t m = 0; m < methods.size(); ++m) {
        const double v = number(batches[b], methods[m].first, bw);
        per[size_t(it - ratio_values.begin())][m].push_back(v);
        values[size_t(it - ratio_values.begin())][m].push_back(v);
      }
    }
    std::vector<std::vector<std::string>> rows;
    if (!batches.empty()) fold_means.emplace_back(ratio_values.size(), std::vector<double>(methods.size()));
    for (size_t r = 0; r < ratio_values.size(); ++r) {
      if (!batches.empty())
        for (size_t m = 0; m < methods.size(); ++m) fold_means.back()[r][m] = eval::mean(per[r][m]);
      std::vector<std::string> row{short_number(ratio_values[r]), std::to_string(per[r][0].size())};
      for (size_t m = 0; m < methods.size(); ++m)
        row.push_back(fixed(eval::mean(per[r][m]), 3) + " (" + fixed(eval::population_std(per[r][m]), 3) + ")");
      rows.push_back(row);
    }
    std::string secs;
    if (folds[f].contains("secs_per_iter")) secs = ", " + short_number(number(folds[f], "secs_per_iter", where)) + " s per iteration";
    if (!batches.empty())
      body += "<h2>Fold " + xml_escape(fold) + ": mean (std) AUROC over its test batches" + xml_escape(secs) + "</h2>\n" +
              table({"anomaly ratio", "batches", "ACR", "stationary", "batch-mean L2", "kNN-5"}, rows, "fold");
    // A learning curve: ACR's mean AUROC at each ratio, every --eval-every iterations.
    if (folds[f].contains("curve")) {
      const json& curve = array(folds[f], "curve", where);
      for (size_t r = 0; r < ratio_values.size(); ++r) {
        Series ser{"fold " + fold + ", ratio " + short_number(ratio_values[r]), palette(curves.size()), {}, f % 2 == 1, true};
        for (size_t c = 0; c < curve.size(); ++c) {
          const std::string cw = where + ".curve[" + std::to_string(c) + "]";
          const std::vector<double> acr = numbers(curve[c], "acr", cw);
          if (acr.size() != ratio_values.size())
            throw Error(cw + ".acr: " + std::to_string(acr.size()) + " values for " + std::to_string(ratio_values.size()) + " ratios");
          ser.points.emplace_back(number(curve[c], "iter", cw), acr[r]);
        }
        curves.push_back(std::move(ser));
      }
    }
  }
  // The first table shows the stored means over the folds: when every fold carries its batches,
  // they must be the means of the batch means (as `normad zeroshot` computed them).
  if (!fold_means.empty() && fold_means.size() == folds.size())
    for (size_t r = 0; r < ratio_values.size(); ++r)
      for (size_t m = 0; m < methods.size(); ++m) {
        double sum = 0;
        for (const auto& fm : fold_means) sum += fm[r][m];
        const double stored = number(ratios[r], methods[m].first, source + ".ratios[" + std::to_string(r) + "]");
        if (!(std::abs(sum / double(fold_means.size()) - stored) <= 1e-9))  // NaN (no batches) fails too
          throw Error(source + ".ratios[" + std::to_string(r) + "]." + methods[m].first + ": " + short_number(stored, 6) +
                      " disagrees with the mean of its folds' batches (" + short_number(sum / double(fold_means.size()), 6) + ")");
      }
  std::vector<std::string> groups;
  for (double r : ratio_values) groups.push_back("ratio " + short_number(r));
  std::vector<std::pair<std::string, std::string>> legend;
  for (size_t m = 0; m < methods.size(); ++m) legend.emplace_back(methods[m].second, palette(m));
  body += "<h2>Every test batch</h2>\n<div class=\"plots\">\n" +
          strip_plot("AUROC of each test batch (bar: mean)", "AUROC", groups, legend, values, 0, 1);
  if (!curves.empty()) {
    auto [x0, x1] = data_range(curves, false);
    body += line_plot("learning-curve", Axes{"Learning curve (ACR, mean AUROC over the test batches)", "iteration",
                                             "AUROC", std::max(0.0, x0), x1, 0, 1},
                      curves);
  }
  body += "</div>\n";
  if (curves.empty()) body += "<p class=\"note\">No learning curve: the run was not made with --eval-every.</p>\n";
  body += "<h2>Settings</h2>\n" + settings_table(scalars(j, {}));
  return page("normad zero-shot report" + (j.contains("protocol") ? ": " + text(j, "protocol", source) : std::string()),
              source, body);
}

// ---- mvg eval and zeroshot --mvtec: per-category figures, ROC curves, the highest-scored images ----

// A figure that may be undefined (null: e.g. AUPRO of a category without defect pixels).
double number_or_nan(const json& j, const std::string& key, const std::string& where) {
  if (j.contains(key) && j[key].is_null()) return NAN;
  const double v = number(j, key, where);
  if (!(v >= 0 && v <= 1)) throw Error(where + "." + key + ": " + short_number(v) + " is outside [0, 1]");
  return v;
}
std::string percent_or_dash(double v) { return std::isfinite(v) ? fixed(100 * v, 1) : "-"; }

// `zeroshot`: the zeroshot --mvtec document (kind zeroshot-mvtec), else mvg eval's.
std::string image_categories_page(const json& j, const std::string& source, bool zeroshot) {
  const json& cats = field(j, "categories", source, &json::is_object, "an object");
  const std::string auroc_key = zeroshot ? "image_auroc" : "auroc";
  std::vector<std::vector<std::string>> rows;
  std::vector<std::vector<double>> figures;  // zeroshot: per category, eval::kSegmentationFigures' order
  std::vector<Scored> sets;
  std::string grids;
  bool any_map = false;
  for (auto it = cats.begin(); it != cats.end(); ++it) {
    const std::string where = source + ".categories." + it.key();
    const int64_t tests = integer(it.value(), "test", where, 0, int64_t(1) << 40);
    if (zeroshot) {
      std::vector<double> f;
      std::vector<std::string> row{it.key(), std::to_string(integer(it.value(), "train_images", where, 0, int64_t(1) << 40)),
                                   std::to_string(tests)};
      for (const auto& [key, name] : eval::kSegmentationFigures) {
        f.push_back(number_or_nan(it.value(), key, where));
        row.push_back(percent_or_dash(f.back()));
      }
      figures.push_back(f);
      rows.push_back(row);
    } else {
      rows.push_back({it.key(), std::to_string(integer(it.value(), "train", where, 0, int64_t(1) << 40)),
                      std::to_string(tests), fixed(100 * number(it.value(), "auroc", where), 1)});
    }
    if (!it.value().contains("items")) continue;
    const json& items = array(it.value(), "items", where);
    if (int64_t(items.size()) != tests)
      throw Error(where + ": " + std::to_string(items.size()) + " items for its test count " + std::to_string(tests));
    Scored set{it.key(), {}, {}};
    for (size_t i = 0; i < items.size(); ++i) {
      const std::string iw = where + ".items[" + std::to_string(i) + "]";
      set.scores.push_back(number(items[i], "score", iw));
      set.labels.push_back(int(integer(items[i], "label", iw, 0, 1)));
    }
    // The table shows the stored AUROC: it must be the one its items give.
    const int64_t anomalous = std::count(set.labels.begin(), set.labels.end(), 1);
    if (anomalous == 0 || anomalous == int64_t(set.labels.size()))
      throw Error(where + ".items: needs both normal (label 0) and anomalous (label 1) test images");
    const double recomputed = eval::auroc(set.scores, set.labels);
    if (std::abs(recomputed - number(it.value(), auroc_key, where)) > 1e-9)
      throw Error(where + ": its " + auroc_key + " " + short_number(number(it.value(), auroc_key, where), 6) +
                  " disagrees with its items' scores and labels (" + short_number(recomputed, 6) + ")");
    // The grid: the category's 8 highest-scored test images, border red for a true anomaly.
    std::vector<size_t> order(items.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return set.scores[a] > set.scores[b]; });
    grids += "<h3>" + xml_escape(it.key()) + "</h3>\n<div class=\"grid\">\n";
    for (size_t k = 0; k < std::min<size_t>(8, order.size()); ++k) {
      const json& item = items[order[k]];
      const std::string iw = where + ".items[" + std::to_string(order[k]) + "]";
      const std::string path = text(item, "path", iw);
      const std::string name = item.contains("name") ? text(item, "name", iw) : path;
      std::vector<float> map;
      int64_t mh = 0, mw = 0;
      if (item.contains("map")) {
        any_map = true;
        const json& m = item["map"];
        mh = integer(m, "height", iw + ".map", 1, 1 << 14), mw = integer(m, "width", iw + ".map", 1, 1 << 14);
        for (double v : numbers(m, "values", iw + ".map")) {
          if (!(v >= 0 && v <= 1)) throw Error(iw + ".map: a value " + short_number(v) + " is outside [0, 1] (maps are min-max scaled)");
          map.push_back(float(v));
        }
        if (int64_t(map.size()) != mh * mw)
          throw Error(iw + ".map: " + std::to_string(map.size()) + " values for " + std::to_string(mh) + " x " + std::to_string(mw));
      }
      CropBox crop;  // the region of the file the map covers (zeroshot --mvtec: the centre crop)
      if (item.contains("crop")) {
        const std::string cw = iw + ".crop";
        crop = {integer(item["crop"], "top", cw, 0, 1 << 20), integer(item["crop"], "left", cw, 0, 1 << 20),
                integer(item["crop"], "height", cw, 1, 1 << 20), integer(item["crop"], "width", cw, 1, 1 << 20)};
      }
      const Thumbnail t = thumbnail(path, 128, map.empty() ? nullptr : &map, mh, mw, crop);
      grids += std::string("<figure class=\"") + (set.labels[order[k]] ? "anomalous" : "normal") + "\"><img alt=\"" +
               xml_escape(name) + "\" width=\"" + std::to_string(t.width) + "\" height=\"" + std::to_string(t.height) +
               "\" src=\"" + png_data_url(t.rgb, t.height, t.width) + "\"><figcaption>" + xml_escape(name) + "<br>score " +
               short_number(set.scores[order[k]], 4) + "</figcaption></figure>\n";
    }
    grids += "</div>\n";
    sets.push_back(std::move(set));
  }
  std::string body;
  if (zeroshot) {
    // The stored mean must be the categories' mean (undefined where a category lacks the figure),
    // shown beside the published row.
    const json& mean = field(j, "mean", source, &json::is_object, "an object");
    std::vector<std::string> mean_row{"mean", "", ""}, published_row{"published (acr.md §14.1)", "", ""};
    for (size_t k = 0; k < eval::kSegmentationFigures.size(); ++k) {
      double sum = 0;
      bool defined = !figures.empty();
      for (const auto& f : figures) sum += f[k], defined = defined && std::isfinite(f[k]);
      const double want = defined ? sum / double(figures.size()) : NAN, stored = number_or_nan(mean, eval::kSegmentationFigures[k].key, source + ".mean");
      if (std::isfinite(want) != std::isfinite(stored) || (std::isfinite(want) && std::abs(want - stored) > 1e-9))
        throw Error(source + ".mean." + eval::kSegmentationFigures[k].key + ": " + short_number(stored, 6) +
                    " disagrees with its categories' mean (" + short_number(want, 6) + ")");
      mean_row.push_back(percent_or_dash(stored));
      published_row.push_back(j.contains("published") ? percent_or_dash(number_or_nan(j["published"], eval::kSegmentationFigures[k].key,
                                                                                      source + ".published"))
                                                      : "-");
    }
    rows.push_back(mean_row);
    rows.push_back(published_row);
    std::vector<std::string> head{"category", "train images", "test"};
    for (const auto& [key, name] : eval::kSegmentationFigures) head.push_back(std::string(name) + " (%)");
    body = "<h2>Per category</h2>\n" + table(head, rows, "categories") +
           "<p class=\"note\">Published: ACR's mean over MVTec AD's 15 categories (third-party transcription); "
           "a run on other data or fewer categories is not comparable with it.</p>\n";
  } else {
    if (j.contains("mean")) {
      // the stored mean and SEM must be those of the categories' AUROCs (sample std / sqrt(n))
      std::vector<double> aurocs;
      for (auto it = cats.begin(); it != cats.end(); ++it) aurocs.push_back(number(it.value(), "auroc", source));
      const double m = eval::mean(aurocs), sem = eval::standard_error(aurocs);
      if (!(std::abs(number(j, "mean", source) - m) <= 1e-9) ||
          (j.contains("sem") && !(std::abs(number(j, "sem", source) - sem) <= 1e-9)))
        throw Error(source + ": its mean / sem disagree with its categories' AUROCs (" + short_number(m, 6) + " / " +
                    short_number(sem, 6) + ")");
      rows.push_back({"mean (± SEM)", "", "", fixed(100 * number(j, "mean", source), 1) + " ± " +
                                                   fixed(100 * (j.contains("sem") ? number(j, "sem", source) : NAN), 1)});
    }
    body = "<h2>Image AUROC per category</h2>\n" + table({"category", "train", "test", "image AUROC (%)"}, rows, "categories");
  }
  if (!sets.empty())
    body += "<h2>Curves (image level)</h2>\n<div class=\"plots\">\n" + roc_and_pr(sets) +
            "</div>\n<h2>Highest-scored test images</h2>\n" +
            "<p>Blue border: normal (good), red: a true anomaly; sorted by score, highest first. " +
            std::string(any_map ? "An image with a per-pixel anomaly map shows it blended over the image: blue (0), "
                                  "cyan, green, yellow, red (1)."
                                : "Gaussian-AD scores whole images, so these carry no heat map.") +
            "</p>\n" + grids;
  body += "<h2>Settings</h2>\n" + settings_table(scalars(j, {"mean", "sem"}));
  return page(zeroshot ? "normad ACR zero-shot report (MVTec AD)" : "normad Gaussian-AD report (MVTec AD)", source, body);
}

}  // namespace

std::string results_kind(const std::string& results_json, const std::string& source) {
  json j;
  try {
    j = json::parse(results_json);
  } catch (const json::parse_error& e) {  // its text gives the position
    throw Error(source + ": not a JSON document (" + e.what() + ")");
  }
  if (!j.is_object()) throw Error(source + ": a results document is a JSON object, found " + std::string(j.type_name()));
  std::string kind;
  if (j.contains("kind") && j["kind"].is_string()) kind = j["kind"].get<std::string>();
  else if (j.contains("protocol") && j.contains("ratios")) kind = "zeroshot";  // written before "kind" existed
  if (kind != "eval" && kind != "zeroshot" && kind != "mvg-eval" && kind != "zeroshot-mvtec")
    throw Error(source + ": " + (kind.empty() ? std::string("no 'kind' field") : "kind '" + kind + "'") +
                "; a report shows the --json results of normad eval, zeroshot or mvg eval");
  return kind;
}

std::string render_html(const std::string& results_json, const std::string& source) {
  const std::string kind = results_kind(results_json, source);
  const json j = json::parse(results_json);
  try {
    if (kind == "eval") return eval_page(j, source);
    if (kind == "zeroshot") return zeroshot_page(j, source);
    return image_categories_page(j, source, kind == "zeroshot-mvtec");
  } catch (const json::exception& e) {  // a field of a type the checks above did not foresee
    throw Error(source + ": " + e.what());
  }
}

std::string png_bytes(const std::vector<uint8_t>& rgb, int64_t height, int64_t width) {
  check(height > 0 && width > 0 && int64_t(rgb.size()) == height * width * 3, "png_bytes",
        std::to_string(rgb.size()) + " bytes for a " + std::to_string(height) + " x " + std::to_string(width) + " RGB image");
  std::string out;
  auto append = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), size_t(size));
  };
  if (!stbi_write_png_to_func(append, &out, int(width), int(height), 3, rgb.data(), int(width * 3)))
    throw Error("png_bytes: stb_image_write failed");
  return out;
}

std::string png_data_url(const std::vector<uint8_t>& rgb, int64_t height, int64_t width) {
  const std::string png = png_bytes(rgb, height, width);
  std::string b64(4 * ((png.size() + 2) / 3) + 1, '\0');  // OpenSSL's base64, NUL-terminated
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()),
                                reinterpret_cast<const unsigned char*>(png.data()), int(png.size()));
  b64.resize(size_t(n));
  return "data:image/png;base64," + b64;
}

std::vector<uint8_t> heat_overlay(const float* image, int64_t height, int64_t width, const float* map,
                                  const float* mask) {
  const int64_t plane = height * width;
  std::vector<uint8_t> rgb(size_t(plane * 3));
  auto defect = [&](int64_t y, int64_t x) {
    return y >= 0 && y < height && x >= 0 && x < width && mask[y * width + x] > 0;
  };
  for (int64_t p = 0; p < plane; ++p) {
    float px[3] = {image[p], image[plane + p], image[2 * plane + p]};
    if (map) {
      // blue (0) -> cyan (1/4) -> green (1/2) -> yellow (3/4) -> red (1), blended half over the image
      const float v = std::clamp(std::isfinite(map[p]) ? map[p] : 0.f, 0.f, 1.f);
      const float r = std::clamp(4 * v - 2, 0.f, 1.f), g = std::clamp(std::min(4 * v, 4 - 4 * v), 0.f, 1.f),
                  b = std::clamp(2 - 4 * v, 0.f, 1.f);
      const float color[3] = {255 * r, 255 * g, 255 * b};
      for (int c = 0; c < 3; ++c) px[c] = 0.5f * px[c] + 0.5f * color[c];
    }
    if (mask) {  // the ground truth's outline
      const int64_t y = p / width, x = p % width;
      if (defect(y, x) && !(defect(y - 1, x) && defect(y + 1, x) && defect(y, x - 1) && defect(y, x + 1)))
        px[0] = px[1] = px[2] = 255.f;
    }
    for (int c = 0; c < 3; ++c) rgb[size_t(p * 3 + c)] = uint8_t(std::lround(std::clamp(px[c], 0.f, 255.f)));
  }
  return rgb;
}

Thumbnail thumbnail(const std::string& image_path, int64_t size, const std::vector<float>* map, int64_t map_h,
                    int64_t map_w, const CropBox& crop) {
  Tensor img = data::load_image_rgb(image_path);  // [3, H, W] 0..255
  if (crop.height > 0) {
    check(crop.top >= 0 && crop.left >= 0 && crop.width > 0 && crop.top + crop.height <= img.size(1) &&
              crop.left + crop.width <= img.size(2),
          "thumbnail", image_path + ": the crop box lies outside the " + std::to_string(img.size(1)) + " x " +
                           std::to_string(img.size(2)) + " image");
    Tensor cut = Tensor::empty({3, crop.height, crop.width});
    for (int64_t k = 0; k < 3; ++k)
      for (int64_t y = 0; y < crop.height; ++y)
        std::copy_n(img.data() + (k * img.size(1) + crop.top + y) * img.size(2) + crop.left, crop.width,
                    cut.data() + (k * crop.height + y) * crop.width);
    img = cut;
  }
  const int64_t h = img.size(1), w = img.size(2);
  Thumbnail t;
  t.height = std::max<int64_t>(1, h >= w ? size : (h * size + w / 2) / w);
  t.width = std::max<int64_t>(1, w >= h ? size : (w * size + h / 2) / h);
  const std::vector<float> small =
      data::resize(img, t.height, t.width, data::ResizeFilter::bilinear_aa, true).to_vector();  // [3, h, w]
  std::vector<float> heat;
  if (map) {
    check(map_h > 0 && map_w > 0 && int64_t(map->size()) == map_h * map_w, "thumbnail",
          image_path + ": heat map of " + std::to_string(map->size()) + " values for " + std::to_string(map_h) + " x " +
              std::to_string(map_w));
    heat = data::resize(Tensor::from({map_h, map_w}, *map), t.height, t.width, data::ResizeFilter::bilinear).to_vector();
  }
  t.rgb = heat_overlay(small.data(), t.height, t.width, map ? heat.data() : nullptr);
  return t;
}

}  // namespace normad::report
