// normad detection metrics; anomalies (label 1) are the positive class, higher score = more anomalous.
// Math: AUROC = (1 / (n+ n-)) sum_{i in +} sum_{j in -} [1(s_i > s_j) + 1/2 1(s_i = s_j)] (via average
// ranks); AP = sum_k (R_k - R_{k-1}) P_k over distinct thresholds, descending (scikit-learn's
// average_precision_score); F1 = 2 TP / (2 TP + FP + FN).
// Tested by tests/test_metrics.cpp against scikit-learn fixtures (random cases, ties included) and
// closed forms.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace normad::eval {

double auroc(const std::vector<double>& scores, const std::vector<int>& labels);
double average_precision(const std::vector<double>& scores, const std::vector<int>& labels);
// F1 at the true anomaly ratio (ntl_dsvdd.md B.5): threshold = the (100 n_normal / n)-th percentile
// of the scores (NumPy linear interpolation), a score above it is flagged.
double f1_at_true_ratio(const std::vector<double>& scores, const std::vector<int>& labels);
// The best F1 over all thresholds (each distinct score).
double f1_max(const std::vector<double>& scores, const std::vector<int>& labels);
// One point of the ROC and precision-recall curves: everything scoring >= threshold is flagged.
struct CurvePoint {
  double threshold = 0;
  double fpr = 0, tpr = 0;            // ROC: false- and true-positive rates
  double precision = 1, recall = 0;   // PR (recall = tpr)
};
// The curves at every distinct score, highest first (scikit-learn's roc_curve without
// drop_intermediate, and precision_recall_curve reversed), after a first point flagging nothing
// (threshold +inf, fpr = tpr = recall = 0, precision 1). The trapezoid area under (fpr, tpr) is
// auroc(); sum_k (recall_k - recall_{k-1}) precision_k is average_precision(). Needs both labels.
std::vector<CurvePoint> threshold_curve(const std::vector<double>& scores, const std::vector<int>& labels);
// The mean and the population standard deviation (NumPy's std, ddof 0) of per-batch figures; NaN
// for an empty list.
double mean(const std::vector<double>& values);
double population_std(const std::vector<double>& values);
// The standard error of the mean: sample std (ddof 1) / sqrt(n); 0 below two values.
double standard_error(const std::vector<double>& values);
// F1 of given 0/1 predictions.
double f1_score(const std::vector<int>& predicted, const std::vector<int>& labels);

// PyOD's rule: the (1 - contamination) percentile of the training scores (NumPy linear
// interpolation); a score above it is flagged.
double contamination_threshold(std::vector<double> train_scores, double contamination = 0.1);
// The threshold that flags a fraction `fpr` of normal reference scores (same percentile rule).
double fpr_threshold(std::vector<double> normal_scores, double fpr);
// NumPy's percentile with linear interpolation, q in [0, 100].
double percentile(std::vector<double> values, double q);

// Threshold calibration on normal data the model did not train on (alibi-detect's infer_threshold):
// a model fitted to shrink its training scores cannot be calibrated on them, so a fraction of the
// normal rows is held out, the model is fitted on the rest, and the threshold is the (1 - fpr)
// quantile of the held-out scores in its finite-sample form (conformal_threshold). The split is a
// seeded permutation; both index lists come back in increasing order (file order is kept).
struct CalibrationSplit {
  std::vector<int64_t> fit;          // rows the model is fitted on
  std::vector<int64_t> calibration;  // held-out normal rows the threshold is set on
};
// round(fraction * n) rows held out, at least 1; at least `min_fit` rows stay for fitting. An Error
// names the option when n is too small or fraction is outside (0, 1).
CalibrationSplit calibration_split(int64_t n, double fraction, uint64_t seed, int64_t min_fit = 2);

// What a threshold rule gave: stored in model files and printed, so a user sees where it came from.
struct ThresholdReport {
  double threshold = 0;
  std::string rule;          // "calibration", "reference" or "contamination"
  double target = 0;         // the fpr (calibration, reference) or contamination asked for
  double achieved = 0;       // share of the normal rows it was set on that score above it
  double expected = 0;       // fpr rules: the expected share of new normal rows above it (conformal)
  int64_t rows = 0;          // how many normal rows it was set on
  std::string describe() const;  // one line: the rule, its rows, the target and the achieved rate
  std::map<std::string, std::string> to_metadata(const std::string& prefix) const;  // prefix + "threshold", ...
};
// Split-conformal threshold: the k-th smallest of n normal scores with k = ceil((n + 1)(1 - fpr)),
// or their maximum when k > n. A new normal score drawn like them exceeds it with probability
// 1 - k / (n + 1) <= fpr (at most fpr whenever k <= n). NumPy's interpolated quantile (fpr_threshold)
// is biased low for small n: at n = 36 and fpr 0.05 it flags about 7.3% of new normal rows (simulated, normal scores).
double conformal_threshold(std::vector<double> normal_scores, double fpr);
// The expected share of new normal scores above conformal_threshold of n scores: 1 - k / (n + 1).
double conformal_expected_fpr(int64_t n, double fpr);

// The conformal (1 - fpr) threshold of held-out (calibration) or reference normal scores;
// non-finite scores, or all scores equal (a collapsed model), are an Error. `rule` is
// "calibration" or "reference".
ThresholdReport fpr_rule(const std::vector<double>& normal_scores, double fpr, const std::string& rule);
// PyOD's contamination rule on training scores (optimistic: the model was fitted to shrink them).
ThresholdReport contamination_rule(const std::vector<double>& train_scores, double contamination);
// Share of `scores` strictly above `threshold`.
double flagged_share(const std::vector<double>& scores, double threshold);

}  // namespace normad::eval
