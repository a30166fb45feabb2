// Task augmentations (see data/task_aug.h). Tested by tests/test_tasks.cpp.
#include "data/task_aug.h"

#include "tensor/ops.h"

namespace normad::data {

namespace {
void check_square_images(const Tensor& x) {
  check(x.dim() == 4 && x.size(2) == x.size(3), "task augmentation (dihedral)",
        "needs square images [Q, C, S, S], got " + shape_str(x.shape()));
}
}  // namespace

Tensor dihedral(const Tensor& x, int64_t k) {
  check_square_images(x);
  check(k >= 0 && k < 8, "dihedral", "transformation must be in [0, 8), got " + std::to_string(k));
  if (k == 0) return x;
  const int64_t planes = x.size(0) * x.size(1), S = x.size(2);
  Tensor out = Tensor::empty(x.shape());
  const float* in = x.data();
  float* o = out.data();
  for (int64_t p = 0; p < planes; ++p) {
    const float* src = in + p * S * S;
    float* dst = o + p * S * S;
    for (int64_t i = 0; i < S; ++i)
      for (int64_t j = 0; j < S; ++j) {
        // dst[i][j] = src[r][c]
        int64_t r = i, c = j;
        switch (k) {
          case 1: c = S - 1 - j; break;                     // horizontal flip
          case 2: r = S - 1 - i; break;                     // vertical flip
          case 3: r = j, c = S - 1 - i; break;              // rotate 90 (counter-clockwise, torch.rot90)
          case 4: r = S - 1 - i, c = S - 1 - j; break;      // rotate 180
          case 5: r = S - 1 - j, c = i; break;              // rotate 270
          case 6: r = j, c = i; break;                      // transpose
          case 7: r = S - 1 - j, c = S - 1 - i; break;      // anti-transpose
        }
        dst[i * S + j] = src[r * S + c];
      }
  }
  return out;
}

Tensor dihedral_invert(const Tensor& x, int64_t k) {
  check(k >= 0 && k < 8, "dihedral_invert", "transformation must be in [0, 8), got " + std::to_string(k));
  if (k < 7) return dihedral(x, k);
  check_square_images(x);
  return add_scalar(neg(x), 1.f);  // 1 - x
}

Tensor permute_columns(const Tensor& x, const std::vector<int64_t>& perm) {
  check(x.dim() == 2 && int64_t(perm.size()) == x.size(1), "task augmentation permute",
        "needs rows [Q, D] and a permutation of D, got " + shape_str(x.shape()) + " and " +
            std::to_string(perm.size()) + " indices");
  const int64_t Q = x.size(0), D = x.size(1);
  std::vector<bool> seen(D, false);
  for (int64_t p : perm) {
    check(p >= 0 && p < D && !seen[p], "task augmentation permute", "not a permutation of " + std::to_string(D) + " columns");
    seen[p] = true;
  }
  Tensor out = Tensor::empty(x.shape());
  for (int64_t i = 0; i < Q; ++i)
    for (int64_t j = 0; j < D; ++j) out.data()[i * D + j] = x.data()[i * D + perm[j]];
  return out;
}

namespace {
const std::vector<TaskAug>& registry() {
  static const std::vector<TaskAug> r = {
      {"none", "no transformation (the paper's recipe)", [](const Tensor& x, Generator&) { return x; }},
      {"dihedral-invert", "images: identity, flips, rotations by 90/180/270, transpose or 1 - x, one per task",
       [](const Tensor& x, Generator& g) { return dihedral_invert(x, g.randint(0, 8)); }},
      {"dihedral-invert-16", "images: one of the 8 dihedral maps, then 1 - x or not: 16 per class",
       [](const Tensor& x, Generator& g) {
         const int64_t k = g.randint(0, 16);
         Tensor y = dihedral(x, k % 8);
         return k >= 8 ? add_scalar(neg(y), 1.f) : y;
       }},
      {"permute", "tables: one random permutation of the feature columns per task",
       [](const Tensor& x, Generator& g) {
         check(x.dim() == 2, "task augmentation permute", "needs rows [Q, D], got " + shape_str(x.shape()));
         return permute_columns(x, g.permutation(x.size(1)));
       }},
  };
  return r;
}
}  // namespace

std::vector<std::string> task_aug_names() {
  std::vector<std::string> out;
  for (auto& a : registry()) out.push_back(a.name);
  return out;
}

const TaskAug& task_aug(const std::string& name) {
  for (auto& a : registry())
    if (a.name == name) return a;
  std::string known;
  for (auto& n : task_aug_names()) known += (known.empty() ? "" : ", ") + n;
  throw Error("task augmentation '" + name + "' is unknown (known: " + known + ")");
}

}  // namespace normad::data
