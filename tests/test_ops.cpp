// Forward tests of tensor ops against closed forms or plain loops (tensor/ops.h), and
// determinism across thread counts; the GEMM ops under each engine built in (tensor/gemm.h).
#include <cmath>
#include <cstring>
#include <Eigen/Core>
#include "tensor/cpu.h"
#include "tensor/gemm.h"
#include "tensor/parallel.h"
#include "tensor/register_tile.h"
#include "tests/helpers.h"

using namespace normad;

using test::EngineScope;
using test::engine_name;
using test::gemm_engines;

TEST_CASE("elementwise: broadcasting and closed forms", "[ops]") {
  Tensor a = Tensor::from({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = Tensor::from({3}, {10, 20, 30});
  Tensor c = Tensor::from({2, 1}, {100, 200});
  test::expect_close(add(a, b), Tensor::from({2, 3}, {11, 22, 33, 14, 25, 36}), 0, 0, "a+b");
  test::expect_close(mul(a, c), Tensor::from({2, 3}, {100, 200, 300, 800, 1000, 1200}), 0, 0, "a*c");
  test::expect_close(sub(c, b), Tensor::from({2, 3}, {90, 80, 70, 190, 180, 170}), 0, 0, "c-b");
  test::expect_close(div(a, Tensor::scalar(2)), mul_scalar(a, 0.5f), 0, 0, "a/2");
  CHECK(broadcast_shape({4, 1, 3}, {2, 1}) == Shape{4, 2, 3});
  CHECK_THROWS_WITH(add(a, Tensor({4})), Catch::Contains("[2, 3]") && Catch::Contains("[4]"));
  Tensor x = Tensor::from({5}, {-2, -0.5, 0, 0.5, 2});
  test::expect_close(relu(x), Tensor::from({5}, {0, 0, 0, 0.5, 2}), 0, 0, "relu");
  // NaN propagates (as in PyTorch) instead of becoming a quiet 0, here and in pairwise distances.
  CHECK(std::isnan(relu(Tensor::from({1}, {NAN})).item()));
  CHECK(std::isnan(pairwise_sqdist(Tensor::from({1, 2}, {NAN, 1}), Tensor::from({1, 2}, {0, 1})).item()));
  test::expect_close(leaky_relu(x, 0.1f), Tensor::from({5}, {-0.2f, -0.05f, 0, 0.5, 2}), 1e-7, 0, "leaky");
  test::expect_close(clamp(x, -1, 1), Tensor::from({5}, {-1, -0.5, 0, 0.5, 1}), 0, 0, "clamp");
  for (float v : {-80.f, -2.f, 0.f, 3.f, 80.f}) {
    Tensor s = sigmoid(Tensor::scalar(v));
    CHECK(s.item() == Approx(1.0 / (1.0 + std::exp(-double(v)))).margin(1e-7));
    CHECK(silu(Tensor::scalar(v)).item() == Approx(v / (1.0 + std::exp(-double(v)))).margin(1e-6));
  }
  test::expect_close(exp(log(add_scalar(abs(x), 1))), add_scalar(abs(x), 1), 1e-6, 1e-6, "exp log");
  test::expect_close(pow(sqrt(add_scalar(abs(x), 1)), 2), add_scalar(abs(x), 1), 1e-6, 1e-6, "sqrt^2");
}

TEST_CASE("broadcasting in parallel pieces matches plain loops", "[ops]") {
  // Large enough for several pieces on two threads, so pieces start inside the odometer: b
  // broadcast along the last dim (the DCL loss's [N, V, V] - [N, V, 1]), along the first ([1, V,
  // V]: dims 1, 2 merge), along a middle dim with size-1 dims between, both operands broadcast, and
  // shapes that merge into one dim (split into pieces themselves).
  set_num_threads(2);
  Generator g(5);
  for (auto [shape_a, shape_b] : {std::pair{Shape{2048, 20, 20}, Shape{2048, 20, 1}},
                                  std::pair{Shape{2048, 20, 20}, Shape{1, 20, 20}},
                                  std::pair{Shape{30, 1, 40, 70}, Shape{30, 1, 1, 70}},
                                  std::pair{Shape{700, 1, 90}, Shape{1, 60, 1}},
                                  std::pair{Shape{3000, 100}, Shape{1}},  // one merged dim, b a scalar
                                  std::pair{Shape{1, 70000}, Shape{70000}}}) {  // equal sizes, other ranks
    const Tensor a = g.normal(shape_a), b = g.normal(shape_b);
    const Shape out_shape = broadcast_shape(shape_a, shape_b);
    const Tensor got = sub(a, b);
    REQUIRE(got.shape() == out_shape);
    // plain loop over the output's 4-d index (shapes padded on the left with 1s)
    auto dims = [](Shape s) {
      while (s.size() < 4) s.insert(s.begin(), 1);
      return s;
    };
    const Shape o = dims(out_shape), sa = dims(shape_a), sb = dims(shape_b);
    auto at = [](const Tensor& t, const Shape& s, const int64_t* i) {
      int64_t off = 0;
      for (int d = 0; d < 4; ++d) off = off * s[d] + (s[d] == 1 ? 0 : i[d]);
      return t.data()[off];
    };
    int64_t i[4], flat = 0;
    for (i[0] = 0; i[0] < o[0]; ++i[0])
      for (i[1] = 0; i[1] < o[1]; ++i[1])
        for (i[2] = 0; i[2] < o[2]; ++i[2])
          for (i[3] = 0; i[3] < o[3]; ++i[3], ++flat)
            REQUIRE(got.data()[flat] == at(a, sa, i) - at(b, sb, i));
  }
  set_num_threads(0);
}

TEST_CASE("reductions: sum, mean, max, logsumexp", "[ops]") {
  Generator g(1);
  Tensor x = g.normal({3, 4, 5});
  // Plain-loop references.
  Tensor s1({3, 5}), s02({4});
  double total = 0;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j)
      for (int k = 0; k < 5; ++k) {
        float v = x.data()[(i * 4 + j) * 5 + k];
        s1.data()[i * 5 + k] += v;
        s02.data()[j] += v;
        total += v;
      }
  test::expect_close(sum(x, {1}), s1, 1e-5, 1e-5, "sum dim 1");
  test::expect_close(sum(x, {0, 2}), s02, 1e-5, 1e-5, "sum dims 0,2");
  CHECK(sum(x, {-1}, true).shape() == Shape{3, 4, 1});
  // all dims but one over rows of >= 16 values: the one-pass sum (16 double lanes), rows with a
  // tail (63 = 3 x 16 + 15), the kept dim first, inner or after a leading 1; a NaN reaches only
  // its own channel
  for (const auto& [shape, dims] : std::vector<std::pair<Shape, std::vector<int64_t>>>{
           {{5, 3, 7, 9}, {0, 2, 3}}, {{6, 40, 17}, {1, 2}}, {{1, 4, 33}, {0, 2}}, {{2, 5, 16}, {0, 2}}}) {
    Tensor y = g.normal(shape);
    const int64_t keep = dims[0] == 0 ? (dims[1] == 1 ? 2 : 1) : 0;
    int64_t A = 1, B = 1;
    for (int64_t i = 0; i < keep; ++i) A *= shape[i];
    for (size_t i = keep + 1; i < shape.size(); ++i) B *= shape[i];
    y.data()[(A - 1) * shape[keep] * B + B - 1] = NAN;  // the last row of channel 0
    Tensor s = sum(y, dims);
    REQUIRE(s.shape() == Shape{shape[keep]});
    REQUIRE(std::isnan(s.data()[0]));
    for (int64_t c = 1; c < shape[keep]; ++c) {
      double ref = 0;
      for (int64_t a = 0; a < A; ++a)
        for (int64_t b = 0; b < B; ++b) ref += y.data()[(a * shape[keep] + c) * B + b];
      REQUIRE(s.data()[c] == Approx(ref).margin(1e-5));
    }
  }
  // one dim folded over strided rows, in blocks of up to 32 columns: each output the double sum
  // of its column in row order, rounded once (so exactly the loop's value); full and partial
  // blocks, outer 1 (a bias gradient [300, 45] -> [45]) and outer 2 ([2, 50, 70] over dim 1)
  for (const auto& [shape, dim] : std::vector<std::pair<Shape, int64_t>>{{{300, 45}, 0}, {{2, 50, 70}, 1}}) {
    Tensor y = g.normal(shape);
    const int64_t outer = dim == 0 ? 1 : shape[0], r = shape[dim], inner = shape.back();
    Tensor s = sum(y, {dim});
    REQUIRE(s.numel() == outer * inner);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        double ref = 0;
        for (int64_t k = 0; k < r; ++k) ref += y.data()[(o * r + k) * inner + i];
        REQUIRE(s.data()[o * inner + i] == static_cast<float>(ref));
      }
  }
  CHECK(sum(x).item() == Approx(total).margin(1e-4));
  CHECK(mean(x).item() == Approx(total / 60).margin(1e-6));
  Tensor am;
  Tensor m = max(x, 1, false, &am);
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 5; ++k) {
      float best = -1e30f;
      int bi = 0;
      for (int j = 0; j < 4; ++j)
        if (x.data()[(i * 4 + j) * 5 + k] > best) best = x.data()[(i * 4 + j) * 5 + k], bi = j;
      REQUIRE(m.data()[i * 5 + k] == best);
      REQUIRE(am.data()[i * 5 + k] == bi);
    }
  Tensor big = Tensor::from({1, 3}, {1000, 1000, 1000});
  CHECK(logsumexp(big, 1).item() == Approx(1000 + std::log(3.0)));
  Tensor lse = logsumexp(x, 2);
  for (int r = 0; r < 12; ++r) {
    double s = 0;
    for (int k = 0; k < 5; ++k) s += std::exp(double(x.data()[r * 5 + k]));
    REQUIRE(lse.data()[r] == Approx(std::log(s)).epsilon(1e-5));
  }
  // the one-pass logsumexp is the composed max, sub, exp, sum, log, add bit for bit, over the last
  // dim and a strided one; rows of -inf (-> -inf), +inf (-> NaN, as composed) and a NaN
  Tensor z = g.normal({4, 6, 7});
  for (int k = 0; k < 7; ++k) z.data()[7 + k] = -INFINITY;  // row (0, 1) over dim 2
  z.data()[2 * 7 + 3] = INFINITY;
  z.data()[3 * 7 + 1] = NAN;
  for (int64_t d : {2, 1, 0}) {
    Tensor m = max(z, d, true, nullptr);
    for (int64_t i = 0; i < m.numel(); ++i)
      if (std::isinf(m.data()[i])) m.data()[i] = 0.f;
    Tensor composed = add(log(sum(exp(sub(z, m)), {d}, true)), m);
    Tensor fused = logsumexp(z, d, true);
    REQUIRE(fused.shape() == composed.shape());
    for (int64_t i = 0; i < fused.numel(); ++i) {
      INFO("dim " << d << " output " << i);
      const float f = fused.data()[i], c = composed.data()[i];
      REQUIRE(((std::isnan(f) && std::isnan(c)) || std::memcmp(&f, &c, sizeof f) == 0));
    }
  }
  CHECK(logsumexp(z, 2).data()[1] == -INFINITY);
  // the same over rows longer than the fused pass's block of 1024 shifted values ([2, 2500]) and
  // blocks of several rows that do not divide a task's ([300, 20]: 51 rows a block)
  for (const Shape& shape : {Shape{2, 2500}, Shape{300, 20}}) {
    Tensor w = g.normal(shape);
    Tensor m = max(w, 1, true, nullptr);
    Tensor composed = add(log(sum(exp(sub(w, m)), {1}, true)), m);
    Tensor fused = logsumexp(w, 1, true);
    REQUIRE(fused.to_vector() == composed.to_vector());
  }
}

TEST_CASE("exp: the vector exp gives std::exp's values bit for bit, whatever a value's position", "[ops]") {
  // a sweep over [-110, 95] (results from 0 through denormals to overflow, every table entry and
  // both signs of r) and the special values; checked once over all 2^32 floats (docs/profiling.md)
  std::vector<float> v;
  for (int i = 0; i <= 200000; ++i) v.push_back(-110.f + 205.f * float(i) / 200000.f);
  for (float s : {0.f, -0.f, 1e-30f, -1e-30f, 1e-45f, 88.72f, 88.73f, -87.33f, -103.27f, -103.29f, -103.97f,
                  -103.98f, -104.f, 3.4e38f, -3.4e38f, INFINITY, -INFINITY, NAN})
    v.push_back(s);
  const Tensor x = Tensor::from({int64_t(v.size())}, v);
  const Tensor e = exp(x);
  for (size_t i = 0; i < v.size(); ++i) {
    const float got = e.data()[i], want = std::exp(v[i]);
    INFO("exp(" << v[i] << ") = " << got << ", std::exp " << want);
    REQUIRE(((std::isnan(got) && std::isnan(want)) || std::memcmp(&got, &want, sizeof got) == 0));
  }
  // in place (logsumexp's use): the special lanes' inputs must not be read back from the output
  std::vector<float> in_place = v;
  cpu::exp_floats(in_place.data(), in_place.data(), int64_t(in_place.size()));
  for (size_t i = 0; i < v.size(); ++i) {
    const float a = e.data()[i], b = in_place[i];
    INFO("in place, exp(" << v[i] << ")");
    REQUIRE(((std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, sizeof a) == 0));
  }
  // from offset 5 on, every value sits in another lane, the last ones in the padded tail vector
  const Tensor shifted = exp(slice(x, 0, 5, x.numel()));
  for (int64_t i = 5; i < x.numel(); ++i) {
    const float a = e.data()[i], b = shifted.data()[i - 5];
    REQUIRE(((std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, sizeof a) == 0));
  }
}

TEST_CASE("layout: permute, concat, stack, slice, index_select", "[ops]") {
  Tensor x = Tensor::from({2, 3}, {1, 2, 3, 4, 5, 6});
  test::expect_close(transpose(x, 0, 1), Tensor::from({3, 2}, {1, 4, 2, 5, 3, 6}), 0, 0, "T");
  Generator g(2);
  Tensor y = g.normal({2, 3, 4});
  Tensor p = permute(y, {2, 0, 1});
  CHECK(p.shape() == Shape{4, 2, 3});
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) REQUIRE(p.data()[(k * 2 + i) * 3 + j] == y.data()[(i * 3 + j) * 4 + k]);
  test::expect_close(concat({x, x}, 1), Tensor::from({2, 6}, {1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6}), 0, 0, "cat");
  CHECK(stack({x, x, x}, 0).shape() == Shape{3, 2, 3});
  test::expect_close(slice(x, 1, 1, 3), Tensor::from({2, 2}, {2, 3, 5, 6}), 0, 0, "slice");
  test::expect_close(slice(x, 1, -1, 100), Tensor::from({2, 1}, {3, 6}), 0, 0, "slice neg");
  test::expect_close(index_select(x, {1, 1, 0}), Tensor::from({3, 3}, {4, 5, 6, 4, 5, 6, 1, 2, 3}), 0, 0, "gather");
  CHECK_THROWS_AS(index_select(x, {2}), Error);
  CHECK_THROWS_AS(concat({x, Tensor({3, 3})}, 1), Error);
  CHECK(flatten(y).shape() == Shape{2, 12});
}

TEST_CASE("concat of an output larger than the caches (streaming stores) matches a plain loop", "[ops]") {
  // [4, 3 + 20, 1, 100003] floats: 36.8 MB, over streams_output's 16 MB; blocks of odd lengths so
  // that most start inside a cache line (the plain head and tail of each streamed block)
  set_num_threads(2);
  Generator g(6);
  const Tensor a = g.normal({4, 3, 1, 100003}), b = g.normal({4, 20, 1, 100003});
  const Tensor got = concat({a, b}, 1);
  REQUIRE(got.shape() == Shape{4, 23, 1, 100003});
  const int64_t inner = 100003;
  for (int64_t o = 0; o < 4; ++o)
    for (int64_t k = 0; k < 23; ++k)
      for (int64_t i = 0; i < inner; ++i) {
        const float want = k < 3 ? a.data()[(o * 3 + k) * inner + i] : b.data()[(o * 20 + k - 3) * inner + i];
        REQUIRE(got.data()[(o * 23 + k) * inner + i] == want);
      }
  set_num_threads(0);
}

TEST_CASE("slice and slice_add in parallel pieces match plain loops", "[ops]") {
  // slice copies, slice_add adds, in pieces of ~16K values: one long block cut into several
  // ([2, 4, 10000] dim 1 [1, 4): 30000 values a block), many short blocks to a piece ([5001, 6, 3]
  // dim 1 [2, 5), pieces starting mid-block: 45009 values), and an empty slice; on two threads (one
  // makes a single call with the whole range, no piece starting inside a block)
  set_num_threads(2);
  Generator g(4);
  for (auto [shape, start, end] : {std::tuple{Shape{2, 4, 10000}, 1, 4}, std::tuple{Shape{5001, 6, 3}, 2, 5},
                                   std::tuple{Shape{3, 6, 5}, 2, 2}}) {
    const Tensor x = g.normal(shape);
    const int64_t outer = shape[0], n = shape[1], inner = shape[2], len = end - start;
    Tensor want({outer, len, inner});
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t k = 0; k < len; ++k)
        for (int64_t i = 0; i < inner; ++i)
          want.data()[(o * len + k) * inner + i] = x.data()[(o * n + start + k) * inner + i];
    const Tensor got = slice(x, 1, start, end);
    REQUIRE(got.shape() == want.shape());
    for (int64_t i = 0; i < want.numel(); ++i) REQUIRE(got.data()[i] == want.data()[i]);
    // slice_add: out (a copy of x) += a gradient on rows [start, end) of dim 1, the rest untouched
    const Tensor grad = g.normal({outer, len, inner});
    Tensor out = x.clone(), sum_want = x.clone();
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t k = 0; k < len; ++k)
        for (int64_t i = 0; i < inner; ++i)
          sum_want.data()[(o * n + start + k) * inner + i] += grad.data()[(o * len + k) * inner + i];
    slice_add_(out, grad, 1, start);
    for (int64_t i = 0; i < x.numel(); ++i) REQUIRE(out.data()[i] == sum_want.data()[i]);
  }
  set_num_threads(0);
}

TEST_CASE("matmul and bmm match a plain triple loop in every transpose mode", "[ops]") {
  const cpu::GemmEngine engine = GENERATE(from_range(gemm_engines()));
  EngineScope scope(engine);
  INFO("GEMM engine " << engine_name(engine));
  Generator g(3);
  // gemm's column-block split (3 x 200 x 600) and its depth split: 4 chunks of 2250 (K = 9000), 16
  // of 2500 (K = 40000)
  // native engine: a transposed A from 128 rows on by row blocks (128 x 300: 66 + 62 rows), row
  // blocks of whole 6-row tiles (570 x 40: 7 x 72 + 66); 270 x 420 x 660: row blocks sharing one
  // packed B (when transposed) of two column blocks (640 + 20) and two depth blocks (2 x 210)
  for (auto [M, K, N] : {std::tuple{5, 7, 3}, std::tuple{130, 70, 90}, std::tuple{3, 64, 300},
                          std::tuple{3, 200, 600}, std::tuple{20, 9000, 24}, std::tuple{5, 40000, 7},
                          std::tuple{128, 50, 300}, std::tuple{570, 30, 40}, std::tuple{270, 420, 660}}) {
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        Tensor a = g.normal(ta ? Shape{K, M} : Shape{M, K});
        Tensor b = g.normal(tb ? Shape{N, K} : Shape{K, N});
        Tensor ref({M, N});
        for (int i = 0; i < M; ++i)
          for (int j = 0; j < N; ++j) {
            double s = 0;
            for (int k = 0; k < K; ++k)
              s += double(ta ? a.data()[k * M + i] : a.data()[i * K + k]) *
                   (tb ? b.data()[j * K + k] : b.data()[k * N + j]);
            ref.data()[i * N + j] = float(s);
          }
        const std::string mode = "M " + std::to_string(M) + " K " + std::to_string(K) + " N " +
                                 std::to_string(N) + " ta=" + std::to_string(ta) + " tb=" + std::to_string(tb);
        // a float sum of K products of N(0, 1) values rounds off by up to ~K 2^-24 (the depth
        // split's chunks too); one product left out or counted twice is off by ~1
        const double atol = 1e-4 * std::max(1.0, K / 1000.0);
        test::expect_close(matmul(a, b, ta, tb), ref, atol, 1e-4, "matmul " + mode);
        // accumulate: C += op(A) op(B) onto C = 1 (the depth split adds its first chunk to C)
        Tensor acc = Tensor::full({M, N}, 1.f);
        cpu::gemm(acc.data(), a.data(), b.data(), M, N, K, ta, tb, true);
        test::expect_close(acc, add_scalar(ref, 1.f), atol, 1e-4, "gemm accumulate " + mode);
      }
  }
  Tensor a = g.normal({4, 3, 5}), b = g.normal({1, 5, 2});
  Tensor c = bmm(a, b);
  CHECK(c.shape() == Shape{4, 3, 2});
  for (int i = 0; i < 4; ++i) {
    Tensor ai = slice(a, 0, i, i + 1).reshape({3, 5});
    test::expect_close(slice(c, 0, i, i + 1).reshape({3, 2}), matmul(ai, b.reshape({5, 2})), 1e-5,
                       1e-5, "bmm batch " + std::to_string(i));
  }
  CHECK_THROWS_WITH(matmul(Tensor({2, 3}), Tensor({4, 5})), Catch::Contains("[2, 3]"));
  CHECK(bmm(Tensor({0, 3, 5}), Tensor({1, 5, 2})).shape() == Shape{0, 3, 2});  // empty batch
}

// The fused Linear forward (tensor/ops.h linear: the bias added as the GEMM writes y) against the
// composed matmul + add and against the double reference, through every split gemm() makes: one
// call, row blocks, column blocks (the bias offset per block), the depth split (the bias in the
// first chunk only); then a NaN and an infinite bias reach exactly their own column.
TEST_CASE("linear = matmul + add: every gemm split, under each engine", "[ops]") {
  const cpu::GemmEngine engine = GENERATE(from_range(gemm_engines()));
  EngineScope scope(engine);
  INFO("GEMM engine " << engine_name(engine));
  Generator g(12);
  // (3, 512, 600): column blocks (128 wide under native, 80 under the others, the last panel an edge)
  for (auto [N, K, F] : {std::tuple<int64_t, int64_t, int64_t>{5, 7, 3}, {600, 70, 90}, {3, 512, 600},
                         {20, 9000, 24}, {4, 0, 6}}) {
    const Tensor x = g.normal({N, K}), w = g.normal({F, K}), b = g.normal({F}, 0.f, 3.f);
    const std::string mode = "N " + std::to_string(N) + " K " + std::to_string(K) + " F " + std::to_string(F);
    const Tensor fused = linear(x, w, b);
    const double atol = 1e-4 * std::max<double>(1.0, K / 1000.0);
    test::expect_close(fused, add(matmul(x, w, false, true), b), atol, 1e-4, "composed " + mode);
    test::expect_close(fused, linear(x.to(Device::Reference), w.to(Device::Reference), b.to(Device::Reference)).to(Device::CPU),
                       atol, 1e-4, "reference " + mode);
  }
  Tensor x = g.normal({7, 40}), w = g.normal({70, 40}), b = g.normal({70});
  b.data()[3] = std::nanf("");
  b.data()[65] = INFINITY;
  const Tensor y = linear(x, w, b);
  for (int64_t i = 0; i < 7; ++i)
    for (int64_t j = 0; j < 70; ++j) {
      const float v = y.data()[i * 70 + j];
      if (j == 3) CHECK(std::isnan(v));
      else if (j == 65) CHECK(v == INFINITY);
      else REQUIRE(std::isfinite(v));
    }
}

TEST_CASE("pairwise_sqdist and l2_normalize against direct formulas", "[ops]") {
  Generator g(4);
  Tensor a = g.normal({9, 6}), b = g.normal({7, 6});
  Tensor d = pairwise_sqdist(a, b);
  for (int i = 0; i < 9; ++i)
    for (int j = 0; j < 7; ++j) {
      double s = 0;
      for (int k = 0; k < 6; ++k) s += std::pow(double(a.data()[i * 6 + k]) - b.data()[j * 6 + k], 2);
      REQUIRE(d.data()[i * 7 + j] == Approx(s).margin(1e-4));
    }
  Tensor self = pairwise_sqdist(a, a);
  // |a|^2 + |a|^2 - 2|a|^2 cancels to rounding error; the clamp keeps it >= 0.
  for (int i = 0; i < 9; ++i) REQUIRE(self.data()[i * 9 + i] == Approx(0.0).margin(1e-5));
  Tensor n = l2_normalize(a);
  for (int i = 0; i < 9; ++i) {
    double s = 0;
    for (int k = 0; k < 6; ++k) s += double(n.data()[i * 6 + k]) * n.data()[i * 6 + k];
    REQUIRE(s == Approx(1.0).epsilon(1e-6));
  }
  CHECK(l2_normalize(Tensor({1, 3})).to_vector() == std::vector<float>{0, 0, 0});
}

TEST_CASE("ops give bit-identical results with 1 and 2 threads", "[ops][determinism]") {
  const cpu::GemmEngine engine = GENERATE(from_range(gemm_engines()));
  EngineScope scope(engine);
  INFO("GEMM engine " << engine_name(engine));
  Generator g(5);
  Tensor a = g.normal({300, 200}), b = g.normal({200, 150}), x = g.normal({64, 16, 12, 12});
  Tensor deep_a = g.normal({130, 3000}), deep_b = g.normal({70, 3000}), conv_w = g.normal({8, 16, 3, 3});
  Tensor split_a = g.normal({20000, 30}), split_b = g.normal({20000, 40});
  Tensor split_at = transpose(split_a, 0, 1), split_bt = transpose(split_b, 0, 1);
  auto run = [&] {
    Generator g_adam(6);
    std::vector<Tensor> r;
    r.push_back(matmul(a, b));
    r.push_back(matmul(deep_a, deep_b, false, true));  // K deep enough for Eigen to block it
    r.push_back(matmul(split_a, split_b, true, false));  // gemm's depth split: 9 chunks of 2223
    r.push_back(matmul(split_bt, split_at, false, true));  // the same split, the other modes
    r.push_back(linear(a, b.reshape({150, 200}), slice(sum(a, {1}), 0, 0, 150)));  // row blocks
    r.push_back(linear(split_a.reshape({30, 20000}), split_b.reshape({40, 20000}), sum(split_b, {0})));  // depth split
    r.push_back(bmm(a.reshape({2, 150, 200}), b.reshape({1, 200, 150})));
    r.push_back(conv2d(x, conv_w, Tensor(), Conv2dArgs{}));
    r.push_back(sum(a, {0}));
    r.push_back(sum(x, {0, 2, 3}));  // one pass (a bias gradient)
    r.push_back(batch_norm_train(x, Tensor(), Tensor(), 1e-5f, 4, nullptr));
    r.push_back(pairwise_sqdist(a, a));
    r.push_back(exp(a));
    // Adam (vectorised, in parallel chunks): 100003 values, so the chunk edges fall mid-vector
    Tensor w = g_adam.normal({100003}), grad = g_adam.normal({100003}), m = g_adam.normal({100003});
    Tensor v = mul(m, m);
    adam_step(w, grad, m, v, AdamParams{1e-2f, 0.9f, 0.999f, 1e-8f, 1e-4f, 3});
    r.insert(r.end(), {w, m, v});
    return r;
  };
  set_num_threads(1);
  auto one = run();
  set_num_threads(2);
  auto two = run();
  set_num_threads(0);
  for (size_t i = 0; i < one.size(); ++i) REQUIRE(one[i].to_vector() == two[i].to_vector());
}

TEST_CASE("the GEMM engine: the automatic choice, the override, and a build without OpenBLAS", "[ops]") {
  const std::string auto_desc = cpu::gemm_engine_description();
  INFO(auto_desc);
  // automatic: native where built for AVX-512 (16-float vectors); else OpenBLAS where it is built
  // in (and its kernels fit the CPU), else Eigen
  if (cpu::kVec == 16) CHECK(cpu::gemm_engine() == cpu::GemmEngine::native);
  if (!cpu::openblas_built_in()) {
    CHECK(cpu::gemm_engine() == (cpu::kVec == 16 ? cpu::GemmEngine::native : cpu::GemmEngine::eigen));
    CHECK_THROWS_WITH(cpu::set_gemm_engine(cpu::GemmEngine::openblas), Catch::Contains("no OpenBLAS"));
  }
  CHECK(auto_desc.rfind(std::string(engine_name(cpu::gemm_engine())) + " (", 0) == 0);
  {
    EngineScope scope(cpu::GemmEngine::eigen);
    CHECK(cpu::gemm_engine() == cpu::GemmEngine::eigen);
  }
  CHECK(cpu::gemm_engine_description() == auto_desc);  // back to the automatic choice
  // both engines give the same product up to float rounding
  Generator g(6);
  Tensor a = g.normal({70, 300}), b = g.normal({300, 90});
  std::vector<Tensor> out;
  for (cpu::GemmEngine e : gemm_engines()) {
    EngineScope scope(e);
    out.push_back(matmul(a, b));
  }
  for (size_t i = 1; i < out.size(); ++i)
    test::expect_close(out[i], out[0], 1e-4, 1e-4, std::string(engine_name(gemm_engines()[i])) + " vs eigen");
}

// The native engine's own blocking (tensor/sgemm.cpp: depth blocks of <= 384, 640 columns, 132 rows,
// panels of whole vectors, tiles of 6 rows), called directly on operands inside larger buffers as
// gemm()'s blocks pass them, with and without a bias per column (in every column block): every
// element against a double triple loop within the float summation bound K 2^-24 sum_k |a_ik b_kj|
// (one product dropped or counted twice is far outside it), the gaps between rows of C untouched,
// K = 0 an empty sum.
TEST_CASE("native_sgemm: depth, column, row and tile edges against a triple loop", "[ops]") {
  Generator g(11);
  // (140, 700, 800): row blocks 132 + 8 (tiles of 6 + 2 rows), column blocks 640 + 60 (a panel
  // of 4 vectors with 4 unused lanes on AVX-512), depth 3 x 267; (7, 65, 385): one column past a
  // panel, depth 2 x 193; (1, 1, 1); (5, 3, 0): an empty sum
  // (B [K, N] is read in place up to 2048 rows of C, panels of whole vectors: 80 = 64 + 16 columns
  // both in place, 65 = 64 in place + 1 packed, 700 = 640 in place + 60 packed; 2049 rows pack all)
  // Each call also with op(B) packed beforehand (native_pack_b, as gemm() shares it between row
  // blocks): the same bits.
  for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{140, 700, 800}, {7, 65, 385}, {9, 80, 50},
                         {2049, 33, 20}, {1, 1, 1}, {5, 3, 0}})
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (int acc = 0; acc < 2; ++acc) {
          const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
          const Tensor a = g.normal({(ta ? K : M) * lda + 1}), b = g.normal({(tb ? N : K) * ldb + 1});
          const Tensor bias = g.normal({N});  // per column of C; every other call without one
          const bool with_bias = (ta + tb + acc) % 2 == 1;
          const float* A = a.data();
          const float* B = b.data();
          std::vector<float> c(M * ldc);
          for (size_t i = 0; i < c.size(); ++i) c[i] = int64_t(i % ldc) >= N ? -7.f : 0.5f;  // gaps: -7
          std::vector<float> c_prepacked = c;
          cpu::native_sgemm(c.data(), ldc, A, lda, B, ldb, M, N, K, ta, tb, acc, with_bias ? bias.data() : nullptr);
          std::vector<float> packed(std::max<int64_t>(1, cpu::native_packed_b_floats(K, N)));
          cpu::native_pack_b(packed.data(), B, ldb, K, N, tb);
          cpu::native_sgemm(c_prepacked.data(), ldc, A, lda, nullptr, ldb, M, N, K, ta, tb, acc,
                            with_bias ? bias.data() : nullptr, packed.data());
          CHECK(std::memcmp(c.data(), c_prepacked.data(), c.size() * sizeof(float)) == 0);
          const std::string mode = "M " + std::to_string(M) + " N " + std::to_string(N) + " K " + std::to_string(K) +
                                   " ta=" + std::to_string(ta) + " tb=" + std::to_string(tb) + " acc=" + std::to_string(acc) +
                                   " bias=" + std::to_string(with_bias);
          INFO(mode);
          int64_t bad = 0;
          for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < ldc; ++j) {
              const float got = c[i * ldc + j];
              if (j >= N) {
                bad += got != -7.f;
                continue;
              }
              double s = (acc ? 0.5 : 0.0) + (with_bias ? bias.data()[j] : 0.f), bound = std::abs(s);
              for (int64_t k = 0; k < K; ++k) {
                const double p = double(ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]);
                s += p;
                bound += std::abs(p);
              }
              bad += !(std::abs(got - s) <= (K + 1) * 0x1p-24 * (bound + 0.5) + 1e-7);
            }
          CHECK(bad == 0);
        }
}

// The same blocking in double (native_dgemm: gemm_f64 under the native engine, panels of 32
// columns on AVX-512), also subtracting (acc -1: B packed negated): every element against a long
// double triple loop within K 2^-53 sum_k |a_ik b_kj|, the gaps between rows of C untouched.
TEST_CASE("native_dgemm: store, add and subtract at block and tile edges against a triple loop", "[ops]") {
  Generator g(12);
  // (140, 700, 400): row blocks 132 + 8, column blocks 640 + 60 (a full panel and one of 28
  // valid columns), depth 2 x 200; (7, 65, 385): one column past two panels, depth 2 x 193
  for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{140, 700, 400}, {7, 65, 385}, {1, 1, 1}, {5, 3, 0}})
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (int acc = -1; acc <= 1; ++acc) {
          const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
          const std::vector<float> af = g.normal({(ta ? K : M) * lda + 1}).to_vector();
          const std::vector<float> bf = g.normal({(tb ? N : K) * ldb + 1}).to_vector();
          // doubles with bits below float precision, so a float product would be caught
          std::vector<double> A(af.size()), B(bf.size());
          for (size_t i = 0; i < A.size(); ++i) A[i] = double(af[i]) * (1 + 1e-9 * double(i % 7));
          for (size_t i = 0; i < B.size(); ++i) B[i] = double(bf[i]) * (1 - 1e-9 * double(i % 5));
          std::vector<double> c(M * ldc);
          for (size_t i = 0; i < c.size(); ++i) c[i] = int64_t(i % ldc) >= N ? -7.0 : 0.5;  // gaps: -7
          cpu::native_dgemm(c.data(), ldc, A.data(), lda, B.data(), ldb, M, N, K, ta, tb, acc);
          INFO("M " << M << " N " << N << " K " << K << " ta=" << ta << " tb=" << tb << " acc=" << acc);
          int64_t bad = 0;
          for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < ldc; ++j) {
              const double got = c[i * ldc + j];
              if (j >= N) {
                bad += got != -7.0;
                continue;
              }
              long double s = 0, bound = 0.5;
              for (int64_t k = 0; k < K; ++k) {
                const long double p =
                    (long double)(ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]);
                s += p;
                bound += std::abs(p);
              }
              const long double want = acc == 0 ? s : acc > 0 ? 0.5L + s : 0.5L - s;
              bad += !(std::abs((long double)got - want) <= (K + 1) * 0x1p-53L * bound);
            }
          CHECK(bad == 0);
        }
}

// Eigen sizes its GEMM blocks (and so the length of each partial sum) from the CPU's cache sizes;
// normad pins them (tensor/matmul.cpp) so that one binary gives the same bits on a 32 KiB-L1 and a
// 48 KiB-L1 machine. Without the pin, Eigen reports this machine's own sizes here.
TEST_CASE("Eigen's GEMM blocking does not follow the machine's cache sizes", "[ops][determinism]") {
  EngineScope scope(cpu::GemmEngine::eigen);
  const Tensor p = matmul(Tensor::ones({3, 4}), Tensor::ones({4, 5}));
  CHECK(p.to_vector().back() == 4.f);
  CHECK(Eigen::l1CacheSize() == 32 * 1024);
  CHECK(Eigen::l2CacheSize() == 1024 * 1024);
  CHECK(Eigen::l3CacheSize() == 32 * 1024 * 1024);
}

TEST_CASE("gemm_f64 and cholesky_f64 match plain loops under each engine", "[ops]") {
  const cpu::GemmEngine engine = GENERATE(from_range(gemm_engines()));
  EngineScope scope(engine);
  INFO("GEMM engine " << engine_name(engine));
  // Column-major blocks inside larger matrices (leading dimensions 41, 37, 29), every transpose,
  // overwrite and accumulate, against a triple loop in long double.
  const int64_t M = 13, N = 7, K = 19, lda = 41, ldb = 37, ldc = 29;
  std::vector<double> a(lda * 41), b(ldb * 37), c0(ldc * N);
  uint64_t s = 1;
  auto next = [&] { s = s * 6364136223846793005ULL + 1442695040888963407ULL; return double(s >> 11) / double(1ULL << 53) - 0.5; };
  for (double& v : a) v = next();
  for (double& v : b) v = next();
  for (double& v : c0) v = next();
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (bool acc : {false, true}) {
        std::vector<double> c = c0;
        cpu::gemm_f64(c.data(), ldc, a.data(), lda, b.data(), ldb, M, N, K, ta, tb, acc);
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = 0; j < N; ++j) {
            long double r = acc ? c0[i + j * ldc] : 0;
            for (int64_t k = 0; k < K; ++k)
              r += (long double)(ta ? a[k + i * lda] : a[i + k * lda]) * (tb ? b[j + k * ldb] : b[k + j * ldb]);
            INFO("ta " << ta << " tb " << tb << " acc " << acc << " at " << i << "," << j);
            REQUIRE(c[i + j * ldc] == Approx(double(r)).epsilon(0).margin(1e-13));
          }
        // rows beyond M in each column of C are not written
        for (int64_t j = 0; j < N; ++j)
          for (int64_t i = M; i < ldc; ++i) REQUIRE(c[i + j * ldc] == c0[i + j * ldc]);
      }
  // Cholesky of A = B Bᵀ + I, n = 400: panels of 128, 128, 128 and 16, so the first panel's solve
  // runs in two row blocks (272 rows below it) and its trailing update in three column blocks,
  // each a SYRK on its diagonal square and a GEMM below it (the last GEMM empty). L Lᵀ = A, the
  // strict upper triangle untouched; a matrix with a negative eigenvalue is reported, not factored.
  const int64_t n = 400;
  std::vector<double> bm(n * n), spd(n * n, 0.0);
  for (double& v : bm) v = next();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double r = i == j ? 1.0 : 0.0;
      for (int64_t k = 0; k < n; ++k) r += bm[i + k * n] * bm[j + k * n];
      spd[i + j * n] = r;
    }
  std::vector<double> l = spd;
  for (int64_t j = 1; j < n; ++j)
    for (int64_t i = 0; i < j; ++i) l[i + j * n] = 12345.0;  // a marker above the diagonal
  REQUIRE(cpu::cholesky_f64(l.data(), n));
  for (int64_t j = 1; j < n; ++j)
    for (int64_t i = 0; i < j; ++i) REQUIRE(l[i + j * n] == 12345.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j <= i; ++j) {
      long double r = 0;
      for (int64_t k = 0; k <= j; ++k) r += (long double)l[i + k * n] * l[j + k * n];
      REQUIRE(double(r) == Approx(spd[i + j * n]).epsilon(0).margin(1e-9));
    }
  std::vector<double> indefinite = spd;
  indefinite[7 + 7 * n] = -1.0;  // found in the first 128-wide panel
  CHECK_FALSE(cpu::cholesky_f64(indefinite.data(), n));
  indefinite = spd;
  indefinite[140 + 140 * n] = -1e6;  // found in the second, after the first panel's update
  CHECK_FALSE(cpu::cholesky_f64(indefinite.data(), n));
  indefinite = spd;
  indefinite[390 + 390 * n] = -1e6;  // in the last, after three panels' updates
  CHECK_FALSE(cpu::cholesky_f64(indefinite.data(), n));
}
