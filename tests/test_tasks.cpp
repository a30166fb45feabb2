// Task sampler tests (data/tasks.h): composition as acr.md §6 / fmnist_zs.md §4, distinctness,
// reproducibility from the seed.
#include <set>

#include "data/tasks.h"
#include "tests/helpers.h"

using namespace normad;

TEST_CASE("tasks: 15 distinct normals of one class, 15 pseudo-anomalies of other classes, shuffled", "[data][tasks]") {
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < 700; ++i) labels.push_back(i % 7);  // class c has rows c, c+7, ...
  auto by_class = data::rows_by_class(labels, 7);
  const std::vector<int64_t> classes{0, 1, 2, 3, 4};
  Generator g(1);
  std::set<int64_t> normal_classes;
  for (int rep = 0; rep < 50; ++rep) {
    data::Task t = data::sample_task(by_class, classes, 15, 15, g);
    REQUIRE(t.rows.size() == 30);
    std::set<int64_t> normals;
    int64_t normal_class = -1, n_anom = 0;
    for (size_t i = 0; i < t.rows.size(); ++i) {
      const int64_t c = labels[t.rows[i]];
      REQUIRE(c < 5);  // only the given classes
      if (t.labels[i] == 0) {
        REQUIRE((normal_class < 0 || c == normal_class));
        normal_class = c;
        normals.insert(t.rows[i]);
      } else {
        ++n_anom;
      }
    }
    for (size_t i = 0; i < t.rows.size(); ++i)
      if (t.labels[i] == 1) REQUIRE(labels[t.rows[i]] != normal_class);
    CHECK(normals.size() == 15);  // distinct
    CHECK(n_anom == 15);
    CHECK(t.labels != std::vector<int>(t.labels.size(), t.labels[0]));
    normal_classes.insert(normal_class);
  }
  CHECK(normal_classes.size() == 5);  // every class gets drawn
  Generator a(9), b(9);
  CHECK(data::sample_task(by_class, classes, 15, 15, a).rows == data::sample_task(by_class, classes, 15, 15, b).rows);
  CHECK_THROWS_AS(data::sample_distinct(5, 6, g), Error);
  CHECK_THROWS_WITH(data::rows_by_class({0, 9}, 3), Catch::Contains("row 1"));
}
