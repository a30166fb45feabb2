// Metrics tests (eval/metrics.h): closed forms, and scikit-learn on 40 random cases with ties
// (tests/make_sklearn_fixtures.py) at 1e-12 relative (both sides compute in double).
#include "eval/metrics.h"

#include <algorithm>
#include <cmath>

#include "tensor/random.h"
#include "nn/safetensors.h"
#include "tests/helpers.h"

using namespace normad;

TEST_CASE("metrics: closed forms and ties", "[metrics]") {
  // Perfect and reversed rankings; all-tied scores give 1/2.
  CHECK(eval::auroc({0.1, 0.2, 0.9, 0.8}, {0, 0, 1, 1}) == 1.0);
  CHECK(eval::auroc({0.9, 0.8, 0.1, 0.2}, {0, 0, 1, 1}) == 0.0);
  CHECK(eval::auroc({0.5, 0.5, 0.5}, {0, 1, 1}) == 0.5);
  // One tie between a positive and a negative counts one half: pairs (3 > 1), (3 > 2), (2 = 2), (1 < 2).
  CHECK(eval::auroc({3, 2, 2, 1}, {1, 1, 0, 0}) == Approx(3.5 / 4));
  // AP: ranking + - + : precision 1 at recall 1/2, 2/3 at recall 1.
  CHECK(eval::average_precision({3, 2, 1}, {1, 0, 1}) == Approx(0.5 * 1 + 0.5 * 2.0 / 3));
  CHECK(eval::f1_at_true_ratio({3, 2, 1}, {1, 0, 1}) == Approx(0.5));  // threshold 1.67 flags 3, 2: TP 1, FP 1, FN 1
  // B.5's strict rule with ties: the 75th percentile of {1, 2, 2, 2} is 2, and nothing is above it.
  CHECK(eval::f1_at_true_ratio({2, 2, 2, 1}, {1, 0, 0, 0}) == 0.0);
  CHECK(eval::f1_max({3, 2, 1}, {1, 0, 1}) == Approx(0.8));            // all flagged: 2*2/(2*2+1)
  CHECK(eval::percentile({1, 2, 3, 4}, 50) == 2.5);
  CHECK(eval::contamination_threshold({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.1) == Approx(9.0));
  CHECK_THROWS_WITH(eval::auroc({1, 2}, {1, 1}), Catch::Contains("both"));
  CHECK_THROWS_WITH(eval::auroc({1, 2}, {1}), Catch::Contains("2 scores but 1 labels"));
  CHECK_THROWS_AS(eval::auroc({1, 2}, {0, 2}), Error);
}

TEST_CASE("metrics: AUROC, AP, F1-max and percentiles match scikit-learn / NumPy", "[metrics][parity]") {
  std::string path = test::fixture("metrics.safetensors");
  if (path.empty()) return;
  auto f = nn::load_safetensors(path);
  const int n = static_cast<int>(f.tensors.at("n_cases").item());
  REQUIRE(n == 40);
  for (int i = 0; i < n; ++i) {
    std::string p = "c" + std::to_string(i);
    auto sf = f.tensors.at(p + ".s").to_vector(), yf = f.tensors.at(p + ".y").to_vector();
    auto ref = f.tensors.at(p + ".ref").to_vector();
    std::vector<double> s(sf.begin(), sf.end());
    std::vector<int> y(yf.begin(), yf.end());
    INFO(p << ": n = " << s.size());
    // ref was stored in float64 but read back as float32, hence 1e-6 relative.
    CHECK(eval::auroc(s, y) == Approx(ref[0]).epsilon(1e-6));
    CHECK(eval::average_precision(s, y) == Approx(ref[1]).epsilon(1e-6));
    CHECK(eval::f1_max(s, y) == Approx(ref[2]).epsilon(1e-6));
    CHECK(eval::percentile(s, 90.0) == Approx(ref[3]).epsilon(1e-6));
    CHECK(eval::percentile(s, 37.5) == Approx(ref[4]).epsilon(1e-6));
  }
}

// The report draws ROC and PR from threshold_curve: its points must give back the metrics printed
// beside them (trapezoid area = AUROC, step sum = AP), on a hand case and on the 40 fixtures.
namespace {
void check_curve_matches_metrics(const std::vector<double>& s, const std::vector<int>& y) {
  const auto curve = eval::threshold_curve(s, y);
  REQUIRE(curve.size() >= 2);
  CHECK(std::isinf(curve.front().threshold));
  CHECK(curve.back().fpr == 1.0);
  CHECK(curve.back().tpr == 1.0);
  double area = 0, ap = 0;
  for (size_t k = 1; k < curve.size(); ++k) {
    CHECK(curve[k].threshold < curve[k - 1].threshold);
    area += (curve[k].fpr - curve[k - 1].fpr) * (curve[k].tpr + curve[k - 1].tpr) / 2;
    ap += (curve[k].recall - curve[k - 1].recall) * curve[k].precision;
  }
  CHECK(area == Approx(eval::auroc(s, y)).epsilon(1e-12));
  CHECK(ap == Approx(eval::average_precision(s, y)).epsilon(1e-12));
}
}  // namespace

TEST_CASE("metrics: the ROC / PR points give back AUROC and AP", "[metrics]") {
  // + - + with scores 3, 2, 1: after nothing, flag 3 (tp 1), 2 (fp 1), 1 (tp 2)
  const auto c = eval::threshold_curve({3, 2, 1}, {1, 0, 1});
  REQUIRE(c.size() == 4);
  CHECK(c[1].threshold == 3.0);
  CHECK(c[1].tpr == 0.5);
  CHECK(c[1].fpr == 0.0);
  CHECK(c[2].fpr == 1.0);
  CHECK(c[2].precision == 0.5);
  CHECK(c[3].precision == Approx(2.0 / 3));
  check_curve_matches_metrics({3, 2, 2, 1}, {1, 1, 0, 0});  // a tie across the classes: one point
  CHECK(eval::threshold_curve({3, 2, 2, 1}, {1, 1, 0, 0}).size() == 4);
  CHECK_THROWS_WITH(eval::threshold_curve({1, 2}, {0, 0}), Catch::Contains("both"));
  std::string path = test::fixture("metrics.safetensors");
  if (path.empty()) return;
  auto f = nn::load_safetensors(path);
  for (int i = 0; i < 40; ++i) {
    const std::string p = "c" + std::to_string(i);
    auto sf = f.tensors.at(p + ".s").to_vector(), yf = f.tensors.at(p + ".y").to_vector();
    INFO(p);
    check_curve_matches_metrics(std::vector<double>(sf.begin(), sf.end()), std::vector<int>(yf.begin(), yf.end()));
  }
}

TEST_CASE("metrics: conformal threshold closed form and its false-positive guarantee", "[metrics][trust]") {
  using namespace normad::eval;
  std::vector<double> s;
  for (int i = 1; i <= 40; ++i) s.push_back(41 - i);  // 40..1, unsorted order
  // k = ceil(41 * 0.95) = 39 -> the 39th smallest of 1..40; k = ceil(41 * 0.5) = 21.
  CHECK(conformal_threshold(s, 0.05) == 39);
  CHECK(conformal_threshold(s, 0.5) == 21);
  CHECK(conformal_expected_fpr(40, 0.05) == Approx(1 - 39.0 / 41));
  // Fewer rows than 1/fpr - 1: the maximum, and about 1/(n+1) of new rows above it.
  CHECK(conformal_threshold({3, 1, 2}, 0.05) == 3);
  CHECK(conformal_expected_fpr(3, 0.05) == Approx(0.25));
  // The guarantee: over many draws of 36 calibration scores, the share of new scores above the
  // threshold averages 1 - k/37 = 2.7% (<= 5%). NumPy's interpolated quantile averages about 7.3%.
  normad::Generator g(11);
  double conformal = 0, interpolated = 0;
  const int reps = 400, fresh = 2000;
  for (int r = 0; r < reps; ++r) {
    std::vector<double> cal(36), nw(fresh);
    for (double& v : cal) v = g.normal1();
    for (double& v : nw) v = g.normal1();
    conformal += flagged_share(nw, conformal_threshold(cal, 0.05)) / reps;
    interpolated += flagged_share(nw, fpr_threshold(cal, 0.05)) / reps;
  }
  CHECK(conformal == Approx(conformal_expected_fpr(36, 0.05)).margin(0.006));
  CHECK(conformal <= 0.05);
  CHECK(interpolated > 0.065);  // why the interpolated quantile is not the default
  // fpr_rule reports what it did and refuses a collapsed model or a NaN score.
  const ThresholdReport rep = fpr_rule(s, 0.05, "calibration");
  CHECK(rep.threshold == 39);
  CHECK(rep.achieved == Approx(1.0 / 40));
  CHECK(rep.rows == 40);
  CHECK_THROWS_WITH(fpr_rule({2, 2, 2}, 0.05, "calibration"), Catch::Contains("all 3 scores are equal"));
  CHECK_THROWS_WITH(fpr_rule({1, NAN, 2}, 0.05, "reference"), Catch::Contains("row 1"));
  // The split: seeded, disjoint, complete, sorted; too few rows is an error naming the option.
  const CalibrationSplit a = calibration_split(10, 0.2, 5), b = calibration_split(10, 0.2, 5);
  CHECK(a.calibration == b.calibration);
  CHECK(a.calibration.size() == 2);
  std::vector<int64_t> all = a.fit;
  all.insert(all.end(), a.calibration.begin(), a.calibration.end());
  std::sort(all.begin(), all.end());
  for (int64_t i = 0; i < 10; ++i) CHECK(all[i] == i);
  CHECK(std::is_sorted(a.fit.begin(), a.fit.end()));
  CHECK_THROWS_WITH(calibration_split(2, 0.2, 0), Catch::Contains("--calibration"));
  CHECK_THROWS_WITH(calibration_split(10, 1.0, 0), Catch::Contains("--calibration"));
}
