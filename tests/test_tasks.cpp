// Task sampler tests (data/tasks.h): composition as acr.md §6 / fmnist_zs.md §4, distinctness,
// reproducibility from the seed.
#include <algorithm>
#include <set>

#include "data/task_aug.h"
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

TEST_CASE("task_aug: dihedral-invert transformations on a 2x2 image, each a bijection", "[data][tasks]") {
  // a b / c d as [1, 1, 2, 2]
  Tensor x = Tensor::from({1, 1, 2, 2}, {1, 2, 3, 4});
  const std::vector<std::vector<float>> want = {
      {1, 2, 3, 4},  // identity
      {2, 1, 4, 3},  // horizontal flip
      {3, 4, 1, 2},  // vertical flip
      {2, 4, 1, 3},  // rot90 counter-clockwise (torch.rot90(x, 1, (2, 3)))
      {4, 3, 2, 1},  // rot180
      {3, 1, 4, 2},  // rot270
      {1, 3, 2, 4},  // transpose
      {0, -1, -2, -3},  // 1 - x
  };
  for (int64_t k = 0; k < 8; ++k) CHECK(data::dihedral_invert(x, k).to_vector() == want[k]);
  // On a larger image with distinct values every spatial transformation permutes the values and
  // has an inverse among the eight (so no information is lost); inversion is its own inverse.
  Generator g(3);
  Tensor big = g.uniform({2, 3, 5, 5});
  const int64_t inverse[8] = {0, 1, 2, 5, 4, 3, 6, 7};
  for (int64_t k = 0; k < 8; ++k) {
    INFO("transformation " << k);
    Tensor y = data::dihedral_invert(big, k);
    if (k < 7) CHECK(data::dihedral_invert(y, inverse[k]).to_vector() == big.to_vector());
    else test::expect_close(data::dihedral_invert(y, 7), big, 1e-6, 0, "1 - (1 - x)");  // float rounding
    if (k > 0) CHECK(y.to_vector() != big.to_vector());
  }
  CHECK_THROWS_WITH(data::dihedral_invert(Tensor({1, 1, 2, 3}), 1), Catch::Contains("square images"));
  CHECK_THROWS_WITH(data::dihedral_invert(Tensor({1, 1, 2, 3}), 7), Catch::Contains("square images"));
  CHECK(data::dihedral(x, 7).to_vector() == std::vector<float>{4, 2, 3, 1});  // anti-transpose
  // the 8 dihedral maps are distinct; dihedral-invert-16 draws each of them with and without 1 - x
  std::set<std::vector<float>> seen, all16;
  Tensor inv = add_scalar(neg(big), 1.f);
  for (int64_t k = 0; k < 8; ++k) {
    seen.insert(data::dihedral(big, k).to_vector());
    all16.insert(data::dihedral(big, k).to_vector());
    all16.insert(data::dihedral(inv, k).to_vector());
  }
  CHECK(seen.size() == 8);
  REQUIRE(all16.size() == 16);
  std::set<std::vector<float>> drawn;
  Generator d(1);
  for (int rep = 0; rep < 300; ++rep) drawn.insert(data::task_aug("dihedral-invert-16").apply(big, d).to_vector());
  CHECK(drawn == all16);
}

TEST_CASE("task_aug: permute moves columns, the same seed draws the same augmented tasks", "[data][tasks]") {
  Tensor x = Tensor::from({2, 3}, {1, 2, 3, 4, 5, 6});
  CHECK(data::permute_columns(x, {2, 0, 1}).to_vector() == std::vector<float>{3, 1, 2, 6, 4, 5});
  CHECK_THROWS_WITH(data::permute_columns(x, {0, 0, 1}), Catch::Contains("not a permutation"));
  Generator g(5);
  Tensor t = g.normal({4, 7});
  for (const std::string name : {"permute", "dihedral-invert", "none"}) {
    INFO(name);
    const data::TaskAug& aug = data::task_aug(name);
    Tensor in = name == "dihedral-invert" ? g.uniform({3, 1, 4, 4}) : t;
    Generator a(9), b(9);
    for (int rep = 0; rep < 5; ++rep) CHECK(aug.apply(in, a).to_vector() == aug.apply(in, b).to_vector());
  }
  // permute is a bijection: the sorted values of every row are unchanged
  Generator p(11);
  Tensor y = data::task_aug("permute").apply(t, p);
  for (int64_t i = 0; i < 4; ++i) {
    auto r0 = slice(t, 0, i, i + 1).to_vector(), r1 = slice(y, 0, i, i + 1).to_vector();
    std::sort(r0.begin(), r0.end()), std::sort(r1.begin(), r1.end());
    CHECK(r0 == r1);
  }
  // ... and it moves columns: the identity map would pass the check above, so require that some
  // draw reorders them, one permutation for all rows of a task (every row moved alike).
  bool moved = false;
  for (int rep = 0; rep < 8 && !moved; ++rep) {
    Tensor z = data::task_aug("permute").apply(t, p);
    moved = z.to_vector() != t.to_vector();
    if (moved)
      for (int64_t j = 0; j < t.size(1); ++j) {  // column j of z is one column of t, in every row
        int64_t src = -1;
        for (int64_t c = 0; c < t.size(1) && src < 0; ++c)
          if (z.data()[j] == t.data()[c]) src = c;
        REQUIRE(src >= 0);
        for (int64_t i = 0; i < t.size(0); ++i) CHECK(z.data()[i * t.size(1) + j] == t.data()[i * t.size(1) + src]);
      }
  }
  CHECK(moved);
  // "none" draws nothing: the generator is left where it was
  Generator n1(4), n2(4);
  data::task_aug("none").apply(t, n1);
  CHECK(n1.randint(0, 1000000) == n2.randint(0, 1000000));
  CHECK_THROWS_WITH(data::task_aug("mixup"), Catch::Contains("'mixup' is unknown"));
  CHECK(data::task_aug_names() == std::vector<std::string>{"none", "dihedral-invert", "dihedral-invert-16", "permute"});
}
