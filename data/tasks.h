// normad task sampling for ACR meta-training (acr.md §6, fmnist_zs.md §4): a class is a task; a task
// is n_normal distinct rows of one class plus n_anom pseudo-anomalies, each from a uniformly drawn
// other class (with replacement) and a uniformly drawn row of it (with replacement), shuffled.
// Tested by tests/test_tasks.cpp (composition, distinctness, reproducibility).
#pragma once

#include <vector>

#include "tensor/random.h"

namespace normad::data {

// rows[c] = the row indices whose label is c, in row order.
std::vector<std::vector<int64_t>> rows_by_class(const std::vector<int64_t>& labels, int64_t classes);

struct Task {
  std::vector<int64_t> rows;  // row indices into the data set, shuffled
  std::vector<int> labels;    // 0 normal, 1 pseudo-anomaly, aligned with rows
};

// `classes` are the classes tasks may use (the fold's training classes).
Task sample_task(const std::vector<std::vector<int64_t>>& by_class, const std::vector<int64_t>& classes,
                 int64_t n_normal, int64_t n_anom, Generator& g);

// k distinct values of [0, n) uniformly (Floyd's algorithm), in random order.
std::vector<int64_t> sample_distinct(int64_t n, int64_t k, Generator& g);

}  // namespace normad::data
