// normad detection metrics (see eval/metrics.h).
// Every function validates its input and throws normad::Error naming the problem.
// Tested by tests/test_metrics.cpp.
#include "eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <string>

#include "tensor/random.h"
#include "tensor/tensor.h"

namespace normad::eval {

namespace {
// Counts positives and checks sizes and labels; `need_both` requires both classes present.
int64_t count_pos(const std::vector<double>& s, const std::vector<int>& y, const char* what,
                  bool need_both) {
  check(s.size() == y.size(), what,
        std::to_string(s.size()) + " scores but " + std::to_string(y.size()) + " labels");
  int64_t pos = 0;
  for (int l : y) {
    check(l == 0 || l == 1, what, "labels must be 0 or 1, got " + std::to_string(l));
    pos += l;
  }
  if (need_both)
    check(pos > 0 && pos < static_cast<int64_t>(y.size()), what,
          "needs both normal (0) and anomalous (1) labels");
  for (double v : s) check(!std::isnan(v), what, "a score is NaN");
  return pos;
}

// Indices sorted by descending score (stable, so equal scores keep their input order).
std::vector<size_t> order_desc(const std::vector<double>& s) {
  std::vector<size_t> idx(s.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return s[a] > s[b]; });
  return idx;
}

// Cumulative (tp, fp) at each distinct threshold, walking scores from high to low; calls
// f(tp, fp) once per distinct score.
template <class F>
void sweep(const std::vector<double>& s, const std::vector<int>& y, F f) {
  auto idx = order_desc(s);
  int64_t tp = 0, fp = 0;
  for (size_t i = 0; i < idx.size(); ++i) {
    (y[idx[i]] ? tp : fp) += 1;
    if (i + 1 == idx.size() || s[idx[i + 1]] != s[idx[i]]) f(tp, fp);
  }
}
}  // namespace

double auroc(const std::vector<double>& s, const std::vector<int>& y) {
  const int64_t pos = count_pos(s, y, "auroc", true), neg = int64_t(y.size()) - pos;
  // Mann-Whitney U with average ranks: tied scores share the mean of their ranks (= 1/2 per tie).
  std::vector<size_t> idx(s.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return s[a] < s[b]; });
  double rank_sum = 0;
  for (size_t i = 0; i < idx.size();) {
    size_t j = i;
    while (j < idx.size() && s[idx[j]] == s[idx[i]]) ++j;
    const double avg_rank = (double(i + 1) + double(j)) / 2;  // ranks i+1..j
    for (size_t k = i; k < j; ++k)
      if (y[idx[k]]) rank_sum += avg_rank;
    i = j;
  }
  return (rank_sum - double(pos) * (pos + 1) / 2) / (double(pos) * neg);
}

double average_precision(const std::vector<double>& s, const std::vector<int>& y) {
  const int64_t pos = count_pos(s, y, "average_precision", false);
  check(pos > 0, "average_precision", "needs at least one anomalous (1) label");
  double ap = 0, prev_recall = 0;
  sweep(s, y, [&](int64_t tp, int64_t fp) {
    const double recall = double(tp) / pos, precision = double(tp) / double(tp + fp);
    ap += (recall - prev_recall) * precision;
    prev_recall = recall;
  });
  return ap;
}

std::vector<CurvePoint> threshold_curve(const std::vector<double>& s, const std::vector<int>& y) {
  const int64_t pos = count_pos(s, y, "threshold_curve", true), neg = int64_t(y.size()) - pos;
  std::vector<CurvePoint> curve{CurvePoint{std::numeric_limits<double>::infinity(), 0, 0, 1, 0}};
  // sweep() visits the distinct scores from high to low; the score itself is the lowest flagged.
  const std::vector<size_t> idx = order_desc(s);
  sweep(s, y, [&](int64_t tp, int64_t fp) {
    CurvePoint p;  // tp + fp rows flagged so far: the last of them has this run's score
    p.threshold = s[idx[size_t(tp + fp) - 1]];
    p.fpr = double(fp) / double(neg);
    p.tpr = p.recall = double(tp) / double(pos);
    p.precision = double(tp) / double(tp + fp);
    curve.push_back(p);
  });
  return curve;
}

double mean(const std::vector<double>& v) {
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  double s = 0;
  for (double x : v) s += x;
  return s / double(v.size());
}

double population_std(const std::vector<double>& v) {
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return v.empty() ? m : std::sqrt(s / double(v.size()));
}

double standard_error(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  double m = 0, ss = 0;
  for (double x : v) m += x / double(v.size());
  for (double x : v) ss += (x - m) * (x - m);
  return std::sqrt(ss / double(v.size() - 1)) / std::sqrt(double(v.size()));
}

double f1_score(const std::vector<int>& pred, const std::vector<int>& y) {
  check(pred.size() == y.size(), "f1_score", "sizes differ");
  int64_t tp = 0, fp = 0, fn = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    tp += pred[i] && y[i];
    fp += pred[i] && !y[i];
    fn += !pred[i] && y[i];
  }
  return tp == 0 ? 0.0 : 2.0 * tp / double(2 * tp + fp + fn);
}

double f1_at_true_ratio(const std::vector<double>& s, const std::vector<int>& y) {
  const int64_t pos = count_pos(s, y, "f1_at_true_ratio", false);
  if (pos == 0) return 0.0;
  const double n = double(s.size()), thr = percentile(s, 100.0 * (n - double(pos)) / n);
  std::vector<int> pred(s.size());
  for (size_t i = 0; i < s.size(); ++i) pred[i] = s[i] > thr;
  return f1_score(pred, y);
}

double f1_max(const std::vector<double>& s, const std::vector<int>& y) {
  const int64_t pos = count_pos(s, y, "f1_max", false);
  double best = 0;
  sweep(s, y, [&](int64_t tp, int64_t fp) {
    if (tp) best = std::max(best, 2.0 * tp / double(tp + fp + pos));  // FN = pos - tp
  });
  return best;
}

double percentile(std::vector<double> v, double q) {
  check(!v.empty(), "percentile", "no values");
  check(q >= 0 && q <= 100, "percentile", "q must be in [0, 100], got " + std::to_string(q));
  std::sort(v.begin(), v.end());
  const double pos = q / 100.0 * double(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos)), hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - double(lo)) * (v[hi] - v[lo]);
}

double contamination_threshold(std::vector<double> train, double contamination) {
  check(contamination > 0 && contamination < 0.5, "contamination_threshold",
        "contamination must be in (0, 0.5), got " + std::to_string(contamination));
  return percentile(std::move(train), 100.0 * (1.0 - contamination));
}

double fpr_threshold(std::vector<double> normal, double fpr) {
  check(fpr > 0 && fpr < 1, "fpr_threshold", "fpr must be in (0, 1), got " + std::to_string(fpr));
  return percentile(std::move(normal), 100.0 * (1.0 - fpr));
}

CalibrationSplit calibration_split(int64_t n, double fraction, uint64_t seed, int64_t min_fit) {
  if (!(fraction > 0 && fraction < 1))
    throw Error("--calibration: the held-out fraction must be in (0, 1), got " + std::to_string(fraction));
  const int64_t held = std::max<int64_t>(1, static_cast<int64_t>(std::llround(fraction * double(n))));
  if (n - held < min_fit)
    throw Error("--calibration " + std::to_string(fraction) + ": " + std::to_string(n) + " normal rows leave " +
                std::to_string(n - held) + " to fit on after holding out " + std::to_string(held) + "; need at least " +
                std::to_string(min_fit));
  Generator g(seed);
  std::vector<int64_t> perm = g.permutation(n);
  CalibrationSplit s;
  s.calibration.assign(perm.begin(), perm.begin() + held);
  s.fit.assign(perm.begin() + held, perm.end());
  std::sort(s.calibration.begin(), s.calibration.end());
  std::sort(s.fit.begin(), s.fit.end());
  return s;
}

double flagged_share(const std::vector<double>& scores, double threshold) {
  if (scores.empty()) return 0;
  int64_t k = 0;
  for (double v : scores) k += v > threshold;
  return double(k) / double(scores.size());
}

namespace {
void check_finite_scores(const std::vector<double>& scores, const std::string& what) {
  for (size_t i = 0; i < scores.size(); ++i)
    if (!std::isfinite(scores[i]))
      throw Error(what + ": score of row " + std::to_string(i) + " is " + std::to_string(scores[i]) +
                  " (the model produced a non-finite score; the threshold would be meaningless)");
  // Every score equal: the model does not tell rows apart (a collapsed or diverged fit), and a
  // threshold on it would flag nothing or everything.
  if (scores.size() > 1 && std::all_of(scores.begin(), scores.end(), [&](double v) { return v == scores[0]; }))
    throw Error(what + ": all " + std::to_string(scores.size()) + " scores are equal (" + std::to_string(scores[0]) +
                "): the model gives every row the same score (a collapsed or diverged fit, or rows without variance; "
                "try a lower --lr, more epochs or more rows)");
}

// k = ceil((n + 1)(1 - fpr)), guarded against 0.95 * 40 = 37.99999... style rounding.
int64_t conformal_rank(int64_t n, double fpr) {
  check(fpr > 0 && fpr < 1, "conformal_threshold", "fpr must be in (0, 1), got " + std::to_string(fpr));
  check(n >= 1, "conformal_threshold", "no scores");
  return static_cast<int64_t>(std::ceil(double(n + 1) * (1.0 - fpr) - 1e-9));
}
}  // namespace

double conformal_threshold(std::vector<double> normal, double fpr) {
  const int64_t n = static_cast<int64_t>(normal.size()), k = conformal_rank(n, fpr);
  std::sort(normal.begin(), normal.end());
  return normal[static_cast<size_t>(std::min(k, n) - 1)];
}

double conformal_expected_fpr(int64_t n, double fpr) {
  return 1.0 - double(std::min(conformal_rank(n, fpr), n)) / double(n + 1);
}

ThresholdReport fpr_rule(const std::vector<double>& normal_scores, double fpr, const std::string& rule) {
  check(rule == "calibration" || rule == "reference", "fpr_rule", "rule must be calibration or reference");
  check_finite_scores(normal_scores, rule + " threshold");
  ThresholdReport r;
  r.threshold = conformal_threshold(normal_scores, fpr);
  r.rule = rule, r.target = fpr, r.rows = static_cast<int64_t>(normal_scores.size());
  r.achieved = flagged_share(normal_scores, r.threshold);
  r.expected = conformal_expected_fpr(r.rows, fpr);
  return r;
}

ThresholdReport contamination_rule(const std::vector<double>& train_scores, double contamination) {
  check_finite_scores(train_scores, "contamination threshold");
  ThresholdReport r;
  r.threshold = contamination_threshold(train_scores, contamination);
  r.rule = "contamination", r.target = contamination, r.rows = static_cast<int64_t>(train_scores.size());
  r.achieved = flagged_share(train_scores, r.threshold);
  return r;
}

std::string ThresholdReport::describe() const {
  char b[400];
  if (rule == "contamination")
    std::snprintf(b, sizeof b,
                  "threshold %.6g: contamination %g of the %lld training scores (optimistic: new normal data scores "
                  "higher than the data the model was fitted on)",
                  threshold, target, (long long)rows);
  else
    std::snprintf(b, sizeof b,
                  "threshold %.6g: fpr %g on %lld %s normal rows (conformal quantile; %.1f%% of them above it, "
                  "%.1f%% of new normal rows expected above it)",
                  threshold, target, (long long)rows, rule == "calibration" ? "held-out" : "reference", 100 * achieved,
                  100 * expected);
  std::string s = b;
  if (rule != "contamination" && double(rows + 1) * target < 1)
    s += "; only " + std::to_string(rows) + " rows: the threshold is their maximum and about 1/" +
         std::to_string(rows + 1) + " of new normal rows score above it, more than the fpr (hold out more rows)";
  return s;
}

std::map<std::string, std::string> ThresholdReport::to_metadata(const std::string& prefix) const {
  auto num = [](double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.17g", v);
    return std::string(b);
  };
  std::map<std::string, std::string> m{{prefix + "threshold", num(threshold)},
                                       {prefix + "threshold_rule", rule},
                                       {prefix + "threshold_target", num(target)},
                                       {prefix + "threshold_achieved", num(achieved)},
                                       {prefix + "threshold_rows", std::to_string(rows)}};
  if (rule != "contamination") m[prefix + "threshold_expected"] = num(expected);  // no guarantee otherwise
  return m;
}

}  // namespace normad::eval
