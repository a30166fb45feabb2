// Metrics tests (eval/metrics.h): closed forms, and scikit-learn on 40 random cases with ties
// (tests/make_sklearn_fixtures.py) at 1e-12 relative (both sides compute in double).
#include "eval/metrics.h"
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
