// Task augmentation for ACR meta-training: each training task draws one transformation and applies
// it to all of its rows (normals and pseudo-anomalies alike), so few training classes still give
// many training distributions (issue 5; acr.md's AnoShift recipe permutes feature columns the same
// way). Never applied to test batches.
// Registry (one function each):
// - none: the paper's recipe, no transformation and no random draw.
// - dihedral-invert (images [Q, C, S, S]): one of 8 uniformly: identity, horizontal flip, vertical
//   flip, rotation by 90, 180, 270 degrees (counter-clockwise), transpose, intensity inversion 1 - x
//   (seven of the eight dihedral maps, the anti-transpose left out, plus the inversion; 1 - x is an
//   inversion only for values in [0, 1], as FMNIST-ZS's images are).
// - dihedral-invert-16 (images): all 8 dihedral maps (the anti-transpose included), each with or
//   without 1 - x: 16 transformations.
// - permute (tables [Q, D]): one uniformly random permutation of the D columns per task.
// Tested by tests/test_tasks.cpp (each transformation is a bijection, closed forms on a 2x2 image,
// reproducibility, unknown names).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "tensor/random.h"
#include "tensor/tensor.h"

namespace normad::data {

struct TaskAug {
  std::string name, doc;
  // Transforms one task's rows x [Q, ...]; draws its choice from g (a stream of its own).
  std::function<Tensor(const Tensor& x, Generator& g)> apply;
};

// The registered augmentation `name`; an unknown name is an error listing the known ones.
const TaskAug& task_aug(const std::string& name);
std::vector<std::string> task_aug_names();

// The dihedral map k in [0, 8) on x [Q, C, S, S]: identity, horizontal flip, vertical flip,
// rotation by 90, 180, 270 degrees (counter-clockwise), transpose, anti-transpose.
Tensor dihedral(const Tensor& x, int64_t k);
// Transformation k in [0, 8) of dihedral-invert: dihedral(x, k) for k < 7, and 1 - x for k = 7.
Tensor dihedral_invert(const Tensor& x, int64_t k);
// out[:, j] = x[:, perm[j]] for x [Q, D].
Tensor permute_columns(const Tensor& x, const std::vector<int64_t>& perm);

}  // namespace normad::data
