// normad task sampling (see data/tasks.h). Tested by tests/test_tasks.cpp.
#include "data/tasks.h"

#include <algorithm>
#include <unordered_set>

namespace normad::data {

std::vector<std::vector<int64_t>> rows_by_class(const std::vector<int64_t>& labels, int64_t classes) {
  std::vector<std::vector<int64_t>> out(classes);
  for (size_t i = 0; i < labels.size(); ++i) {
    check(labels[i] >= 0 && labels[i] < classes, "rows_by_class",
          "label " + std::to_string(labels[i]) + " at row " + std::to_string(i) + " outside [0, " +
              std::to_string(classes) + ")");
    out[labels[i]].push_back(static_cast<int64_t>(i));
  }
  return out;
}

std::vector<int64_t> sample_distinct(int64_t n, int64_t k, Generator& g) {
  check(k >= 0 && k <= n, "sample_distinct",
        "cannot draw " + std::to_string(k) + " distinct values from " + std::to_string(n));
  // Floyd: for j = n-k..n-1 pick t in [0, j]; take t unless taken, else j. Uniform k-subsets.
  std::unordered_set<int64_t> seen;
  std::vector<int64_t> out;
  for (int64_t j = n - k; j < n; ++j) {
    int64_t t = g.randint(0, j + 1);
    if (!seen.insert(t).second) {
      seen.insert(j);
      t = j;
    }
    out.push_back(t);
  }
  // Floyd's output order is not uniform; shuffle it.
  for (int64_t i = k - 1; i > 0; --i) std::swap(out[i], out[g.randint(0, i + 1)]);
  return out;
}

Task sample_task(const std::vector<std::vector<int64_t>>& by_class, const std::vector<int64_t>& classes,
                 int64_t n_normal, int64_t n_anom, Generator& g) {
  check(classes.size() >= 2, "sample_task", "needs at least 2 classes");
  const int64_t j = g.randint(0, static_cast<int64_t>(classes.size()));
  const auto& own = by_class.at(classes[j]);
  Task t;
  for (int64_t i : sample_distinct(static_cast<int64_t>(own.size()), n_normal, g)) {
    t.rows.push_back(own[i]);
    t.labels.push_back(0);
  }
  for (int64_t a = 0; a < n_anom; ++a) {
    // another class uniformly (with replacement), then a row of it uniformly
    int64_t k = g.randint(0, static_cast<int64_t>(classes.size()) - 1);
    if (k >= j) ++k;
    const auto& other = by_class.at(classes[k]);
    t.rows.push_back(other[g.randint(0, static_cast<int64_t>(other.size()))]);
    t.labels.push_back(1);
  }
  // shuffle rows and labels together
  for (int64_t i = static_cast<int64_t>(t.rows.size()) - 1; i > 0; --i) {
    const int64_t r = g.randint(0, i + 1);
    std::swap(t.rows[i], t.rows[r]);
    std::swap(t.labels[i], t.labels[r]);
  }
  return t;
}

}  // namespace normad::data
