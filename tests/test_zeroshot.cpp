// FMNIST-ZS helpers (models/fmnist_zs.h): anomaly counts per ratio (fmnist_zs.md §5) and the two
// raw-pixel baselines against hand-computed values.
#include "models/omniglot_net.h"
#include "models/zeroshot.h"
#include "tests/helpers.h"

using namespace normad;

TEST_CASE("fmnist_zs: n_a = max(1, floor(200 r / (1 - r))) gives 2, 10, 22, 50", "[fmnist_zs]") {
  CHECK(models::anomalies_for_ratio(200, 0.01) == 2);
  CHECK(models::anomalies_for_ratio(200, 0.05) == 10);
  CHECK(models::anomalies_for_ratio(200, 0.10) == 22);
  CHECK(models::anomalies_for_ratio(200, 0.20) == 50);  // 200 * 0.2 / 0.8 is 49.999... in binary
  CHECK(models::anomalies_for_ratio(200, 0.001) == 1);
  CHECK_THROWS_AS(models::anomalies_for_ratio(200, 1.0), Error);
}

TEST_CASE("fmnist_zs: batch-mean L2 and kNN baselines by hand", "[fmnist_zs]") {
  // Four points on a line: 0, 1, 2, 10 (1-d rows).
  Tensor x = Tensor::from({4, 1}, {0, 1, 2, 10});
  auto l2 = models::batch_l2_scores(x);  // mean 3.25
  CHECK(l2[0] == Approx(3.25));
  CHECK(l2[3] == Approx(6.75));
  auto knn = models::knn_scores(x, 2);  // mean distance to the 2 nearest other rows
  CHECK(knn[0] == Approx(1.5));   // 1, 2
  CHECK(knn[1] == Approx(1.0));   // 1, 1
  CHECK(knn[3] == Approx(8.5));   // 8, 9
  CHECK_THROWS_AS(models::knn_scores(x, 4), Error);
}
