// normad detection metrics; anomalies (label 1) are the positive class, higher score = more anomalous.
// Math: AUROC = (1 / (n+ n-)) sum_{i in +} sum_{j in -} [1(s_i > s_j) + 1/2 1(s_i = s_j)] (via average
// ranks); AP = sum_k (R_k - R_{k-1}) P_k over distinct thresholds, descending (scikit-learn's
// average_precision_score); F1 = 2 TP / (2 TP + FP + FN).
// Tested by tests/test_metrics.cpp against scikit-learn fixtures (random cases, ties included) and
// closed forms.
#pragma once

#include <cstdint>
#include <vector>

namespace normad::eval {

double auroc(const std::vector<double>& scores, const std::vector<int>& labels);
double average_precision(const std::vector<double>& scores, const std::vector<int>& labels);
// F1 at the true anomaly ratio (ntl_dsvdd.md B.5): threshold = the (100 n_normal / n)-th percentile
// of the scores (NumPy linear interpolation), a score above it is flagged.
double f1_at_true_ratio(const std::vector<double>& scores, const std::vector<int>& labels);
// The best F1 over all thresholds (each distinct score).
double f1_max(const std::vector<double>& scores, const std::vector<int>& labels);
// F1 of given 0/1 predictions.
double f1_score(const std::vector<int>& predicted, const std::vector<int>& labels);

// PyOD's rule: the (1 - contamination) percentile of the training scores (NumPy linear
// interpolation); a score above it is flagged.
double contamination_threshold(std::vector<double> train_scores, double contamination = 0.1);
// The threshold that flags a fraction `fpr` of normal reference scores (same percentile rule).
double fpr_threshold(std::vector<double> normal_scores, double fpr);
// NumPy's percentile with linear interpolation, q in [0, 100].
double percentile(std::vector<double> values, double q);

}  // namespace normad::eval
