// Tests of the tensor core (tensor/tensor.h, tensor/random.h): shapes, views, copies, errors and
// reproducible random numbers.
#include "tests/helpers.h"

using namespace normad;

TEST_CASE("tensor: shape, numel, views share storage", "[tensor]") {
  Tensor t = Tensor::from({2, 3}, {1, 2, 3, 4, 5, 6});
  CHECK(t.dim() == 2);
  CHECK(t.numel() == 6);
  CHECK(t.size(-1) == 3);
  Tensor r = t.reshape({3, -1});
  CHECK(r.shape() == Shape{3, 2});
  CHECK(r.same_storage(t));
  r.data()[0] = 10;
  CHECK(t.data()[0] == 10);  // a view
  Tensor c = t.clone();
  c.data()[1] = 20;
  CHECK(t.data()[1] == 2);  // a copy
  CHECK(Tensor::scalar(3).item() == 3);
  CHECK(Tensor::scalar(3).shape().empty());
}

TEST_CASE("tensor: bad shapes throw normad::Error naming the shapes", "[tensor]") {
  Tensor t({2, 3});
  CHECK_THROWS_WITH(t.reshape({4, 2}), Catch::Contains("[2, 3]") && Catch::Contains("[4, 2]"));
  CHECK_THROWS_AS(t.reshape({-1, -1}), Error);
  CHECK_THROWS_AS(t.item(), Error);
  CHECK_THROWS_AS(t.size(2), Error);
  CHECK_THROWS_AS(Tensor::from({2, 2}, {1, 2, 3}), Error);
}

TEST_CASE("random: same seed gives the same numbers and moments are right", "[random]") {
  Generator a(42), b(42), c(43);
  Tensor x = a.normal({10000}), y = b.normal({10000}), z = c.normal({10000});
  CHECK(x.to_vector() == y.to_vector());
  CHECK(x.to_vector() != z.to_vector());
  double m = 0, v = 0;
  for (float f : x.to_vector()) m += f;
  m /= x.numel();
  for (float f : x.to_vector()) v += (f - m) * (f - m);
  v /= x.numel();
  CHECK(std::fabs(m) < 0.05);      // standard error 0.01
  CHECK(std::fabs(v - 1) < 0.05);  // standard error ~0.014
  Tensor u = a.uniform({10000}, 2.f, 3.f);
  for (float f : u.to_vector()) REQUIRE((f >= 2.f && f < 3.f));
  Tensor bern = a.bernoulli({10000}, 0.3f);
  double s = 0;
  for (float f : bern.to_vector()) s += f;
  CHECK(std::fabs(s / 10000 - 0.3) < 0.03);
  auto p = a.permutation(100);
  std::vector<int64_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 100; ++i) REQUIRE(sorted[i] == i);
  CHECK(p != sorted);
}
