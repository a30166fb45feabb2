// Tests of models/data_parallel.h without an MPI launcher: R threads of this process play the
// ranks through ThreadRanks (a Communicator whose all-reduce sums in rank order, as MPI's does for
// these sizes). The references are the single process: acr_backward over all T tasks and
// meta_train alone. What must hold:
//   - rank_share's shares cover [0, T) in order, differ by at most one, and are empty when R > T;
//   - every rank ends an iteration with the same gradients, loss and BN running statistics, equal
//     to the single process's within float summation order (the merged exponential average too),
//     num_batches_tracked exactly;
//   - meta_train on 2 and 3 ranks leaves the same model bytes on every rank, close to one process's;
//   - a rank whose model drifted is caught by check_replicas_agree.
// (tests/test_cli_mpi.cpp runs the command line under mpiexec -np 2.)
#include <catch2/catch.hpp>

#include <barrier>
#include <cstring>
#include <thread>

#include "helpers.h"
#include "models/acr.h"
#include "models/acr_nets.h"
#include "models/data_parallel.h"
#include "models/gaussian_ad.h"
#include "models/zeroshot.h"
#include "nn/layers.h"

using namespace normad;

namespace {

// R ranks as threads of this process. Collectives: every rank writes its part, a barrier, every
// rank reads the result, a barrier (so a slot is not overwritten before everyone has read it).
class ThreadRanks {
 public:
  explicit ThreadRanks(int ranks) : size(ranks), sync(ranks), parts(static_cast<size_t>(ranks)) {}
  const int size;
  std::barrier<> sync;
  std::vector<std::vector<char>> parts;  // each rank's bytes in the collective under way
};

class ThreadRank : public Communicator {
 public:
  ThreadRank(ThreadRanks& group, int rank) : g_(group), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return g_.size; }
  std::string name() const override { return "threads"; }
  void all_reduce_sum(float* data, int64_t n) override { reduce(data, n); }
  void all_reduce_sum(double* data, int64_t n) override { reduce(data, n); }
  void all_gather(float* data, const std::vector<int64_t>& counts) override { gather(data, counts); }
  void all_gather(double* data, const std::vector<int64_t>& counts) override { gather(data, counts); }
  void broadcast(void* data, int64_t bytes, int root) override {
    if (rank_ == root) g_.parts[0].assign(static_cast<char*>(data), static_cast<char*>(data) + bytes);
    g_.sync.arrive_and_wait();
    std::memcpy(data, g_.parts[0].data(), size_t(bytes));
    g_.sync.arrive_and_wait();
  }
  [[noreturn]] void abort(const std::string& message, int) override { throw Error("abort: " + message); }

 private:
  template <class T>
  void reduce(T* data, int64_t n) {
    g_.parts[size_t(rank_)].assign(reinterpret_cast<char*>(data), reinterpret_cast<char*>(data + n));
    g_.sync.arrive_and_wait();
    for (int64_t i = 0; i < n; ++i) {  // in rank order on every rank: the same sums everywhere
      T s = 0;
      for (int q = 0; q < g_.size; ++q) s += reinterpret_cast<const T*>(g_.parts[size_t(q)].data())[i];
      data[i] = s;
    }
    g_.sync.arrive_and_wait();
  }
  template <class T>
  void gather(T* data, const std::vector<int64_t>& counts) {
    int64_t at = 0;
    for (int q = 0; q < rank_; ++q) at += counts[size_t(q)];
    g_.parts[size_t(rank_)].assign(reinterpret_cast<char*>(data + at), reinterpret_cast<char*>(data + at + counts[size_t(rank_)]));
    g_.sync.arrive_and_wait();
    at = 0;
    for (int q = 0; q < g_.size; ++q) {
      std::memcpy(data + at, g_.parts[size_t(q)].data(), g_.parts[size_t(q)].size());
      at += counts[size_t(q)];
    }
    g_.sync.arrive_and_wait();
  }
  ThreadRanks& g_;
  int rank_;
};

// Runs fn(rank communicator, rank) on R threads; an exception on any rank is rethrown here.
void on_ranks(int R, const std::function<void(Communicator&, int)>& fn) {
  ThreadRanks group(R);
  std::vector<std::exception_ptr> errors(static_cast<size_t>(R));
  std::vector<std::thread> threads;
  for (int r = 0; r < R; ++r)
    threads.emplace_back([&, r] {
      ThreadRank c(group, r);
      try {
        fn(c, r);
      } catch (...) {
        errors[size_t(r)] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

std::unique_ptr<models::AcrModel> make_model(const std::string& kind, int64_t F, uint64_t seed) {
  Generator init(seed);
  if (kind == "ntl") return std::make_unique<models::AcrNtl>(std::make_shared<models::TabNtl>(F, init, 3, 16, 8));
  return std::make_unique<models::AcrDsvdd>(models::tabular_mlp(F, init, 16, 8), 8, init);
}

std::vector<float> values(const Tensor& t) { return std::vector<float>(t.data(), t.data() + t.numel()); }

}  // namespace

TEST_CASE("data parallel: rank shares cover the tasks in order and differ by at most one", "[data_parallel]") {
  for (int64_t T : {0, 1, 5, 32})
    for (int R : {1, 2, 3, 7, 40}) {
      int64_t next = 0, smallest = T, largest = 0;
      for (int r = 0; r < R; ++r) {
        const auto [b, e] = rank_share(T, r, R);
        CHECK(b == next);
        next = e;
        smallest = std::min(smallest, e - b), largest = std::max(largest, e - b);
      }
      CHECK(next == T);
      CHECK(largest - smallest <= 1);
    }
  CHECK(rank_share(32, 1, 2) == std::pair<int64_t, int64_t>{16, 32});
  CHECK(rank_share(2, 1, 3) == std::pair<int64_t, int64_t>{0, 1});  // 2 * 1 / 3 = 0, 2 * 2 / 3 = 1
  CHECK_THROWS_WITH(rank_share(4, 2, 2), Catch::Contains("rank 2 of 2"));
}

TEST_CASE("data parallel: one shared iteration gives every rank the single process's gradients, loss and BN statistics",
          "[data_parallel]") {
  const int64_t F = 6, Q = 10;
  for (const std::string kind : {"dsvdd", "ntl"})
    for (auto [T, R, per_pass] : {std::tuple{int64_t(6), 2, int64_t(6)}, {int64_t(7), 3, int64_t(2)}, {int64_t(2), 3, int64_t(1)}}) {
      INFO(kind << ": " << T << " tasks on " << R << " ranks, " << per_pass << " per pass");
      Generator g(21);
      const Tensor x = g.normal({T * Q, F});
      std::vector<int> y;
      for (int64_t i = 0; i < T * Q; ++i) y.push_back(i % Q >= 7);  // 7 normals and 3 pseudo-anomalies per task
      // Two iterations, so the second starts from running statistics the first moved.
      auto single = make_model(kind, F, 5);
      std::vector<double> single_loss;
      for (int it = 0; it < 2; ++it) {
        for (Var& p : single->parameters()) p.zero_grad();
        single_loss.push_back(models::acr_backward(*single, x, y, T, T));
      }
      std::vector<std::unique_ptr<models::AcrModel>> ranks;
      for (int r = 0; r < R; ++r) ranks.push_back(make_model(kind, F, 5));
      std::vector<std::vector<double>> losses(static_cast<size_t>(R));
      models::ShareStats stats;
      on_ranks(R, [&](Communicator& c, int r) {
        for (int it = 0; it < 2; ++it) {
          for (Var& p : ranks[size_t(r)]->parameters()) p.zero_grad();
          losses[size_t(r)].push_back(
              models::acr_backward_shared(*ranks[size_t(r)], x, y, T, per_pass, c, r == 0 ? &stats : nullptr));
        }
      });
      for (int it = 0; it < 2; ++it) CHECK(losses[0][size_t(it)] == Approx(single_loss[size_t(it)]).epsilon(1e-6));
      const auto ps = single->parameters();
      CHECK(stats.float_values == [&] { int64_t n = 0; for (const Var& p : ps) n += p.numel(); return n; }());
      for (int r = 0; r < R; ++r) {
        CHECK(losses[size_t(r)] == losses[0]);  // the same sum everywhere
        const auto pr = ranks[size_t(r)]->parameters();
        for (size_t i = 0; i < ps.size(); ++i) {
          REQUIRE(pr[i].grad().defined() == ps[i].grad().defined());
          if (!ps[i].grad().defined()) continue;
          CHECK(values(pr[i].grad()) == values(ranks[0]->parameters()[i].grad()));  // bit for bit across ranks
          test::expect_close(pr[i].grad(), ps[i].grad(), 1e-5, 1e-4, "gradient " + std::to_string(i));
        }
        const auto bs = nn::batch_norms(single->network()), br = nn::batch_norms(ranks[size_t(r)]->network());
        REQUIRE(bs.size() == br.size());
        REQUIRE(!bs.empty());
        for (size_t i = 0; i < bs.size(); ++i) {
          CHECK(br[i]->num_batches_tracked.item() == bs[i]->num_batches_tracked.item());
          CHECK(br[i]->num_batches_tracked.item() == float(2 * T));
          test::expect_close(br[i]->running_mean, bs[i]->running_mean, 1e-6, 1e-5, "running mean " + std::to_string(i));
          test::expect_close(br[i]->running_var, bs[i]->running_var, 1e-6, 1e-5, "running var " + std::to_string(i));
          CHECK(values(br[i]->running_var) == values(nn::batch_norms(ranks[0]->network())[i]->running_var));
        }
      }
    }
}

TEST_CASE("data parallel: meta_train on 2 and 3 ranks leaves one model on every rank, close to one process's",
          "[data_parallel]") {
  const int64_t F = 5, classes = 4, rows = 30;
  Generator g(31);
  Tensor x = g.normal({classes * rows, F});
  std::vector<int64_t> y;
  for (int64_t c = 0; c < classes; ++c)
    for (int64_t i = 0; i < rows; ++i) {
      y.push_back(c);
      x.data()[(c * rows + i) * F + c] += 3.f;  // each class its own mean
    }
  models::ZsConfig cfg;
  cfg.iters = 12, cfg.tasks = 5, cfg.normals = 6, cfg.anomalies = 4, cfg.lr = 1e-2f, cfg.lr_step = 5;
  const std::vector<int64_t> train{0, 1, 2, 3};
  auto single = make_model("dsvdd", F, 9);
  Generator rng(10);
  models::meta_train(*single, x, y, classes, train, cfg, rng);
  for (int R : {2, 3}) {
    INFO(R << " ranks");
    std::vector<std::unique_ptr<models::AcrModel>> ranks;
    for (int r = 0; r < R; ++r) ranks.push_back(make_model("dsvdd", F, 9));
    on_ranks(R, [&](Communicator& c, int r) {
      models::ZsConfig rc = cfg;
      rc.comm = &c;
      Generator rr(10);  // every rank draws the same tasks
      models::meta_train(*ranks[size_t(r)], x, y, classes, train, rc, rr);
    });
    // Every rank holds the same bytes. Against one process: a Linear bias right before a BatchNorm
    // has a true gradient of 0 (BN subtracts the batch mean), so its gradient is rounding noise,
    // which Adam scales to steps of about lr: those biases, and the running means that follow them,
    // differ with the summation order and change no score computed on batch statistics. Everything
    // else, and the scores, must agree.
    const auto s1 = single->state();
    auto before_bn = [&](const std::string& name) {  // "<k>.bias" with "<k+1>.running_mean" in the state
      const size_t dot = name.find('.');
      if (dot == std::string::npos) return false;  // the centre c
      if (name.substr(dot) == ".running_mean") return true;
      if (name.substr(dot) != ".bias") return false;
      const std::string next = std::to_string(std::stoi(name.substr(0, dot)) + 1) + ".running_mean";
      for (const auto& [n, t] : s1)
        if (n == next) return true;
      return false;
    };
    const std::vector<double> scores = single->score(x);
    int compared = 0;
    for (int r = 0; r < R; ++r) {
      const auto sr = ranks[size_t(r)]->state();
      for (size_t i = 0; i < s1.size(); ++i) {
        CHECK(values(sr[i].second) == values(ranks[0]->state()[i].second));
        if (before_bn(s1[i].first)) continue;
        ++compared;
        // 12 Adam steps at lr 1e-2 from gradients that differ in the last bits.
        test::expect_close(sr[i].second, s1[i].second, 1e-3, 1e-3, s1[i].first);
      }
      const std::vector<double> sr_scores = ranks[size_t(r)]->score(x);
      for (size_t i = 0; i < scores.size(); ++i) CHECK(sr_scores[i] == Approx(scores[i]).epsilon(1e-3).margin(1e-4));
    }
    CHECK(compared >= 10 * R);  // weights, BN affine parameters, running variances, c
  }
}

TEST_CASE("data parallel: check_replicas_agree finds a rank whose model differs", "[data_parallel]") {
  std::vector<std::unique_ptr<models::AcrModel>> ranks;
  for (int r = 0; r < 2; ++r) ranks.push_back(make_model("dsvdd", 4, 3));
  on_ranks(2, [&](Communicator& c, int r) { models::check_replicas_agree(*ranks[size_t(r)], c, "same"); });
  ranks[1]->parameters()[0].data().data()[0] += 1e-6f;
  std::vector<std::string> errors(2);
  on_ranks(2, [&](Communicator& c, int r) {
    try {
      models::check_replicas_agree(*ranks[size_t(r)], c, "drifted");
    } catch (const Error& e) {
      errors[size_t(r)] = e.what();
    }
  });
  for (const std::string& e : errors) {  // every rank says so, not just the one that differs
    CHECK_THAT(e, Catch::Contains("drifted"));
    CHECK_THAT(e, Catch::Contains("1 of 2 ranks"));
  }
}

// ---- sharded Gaussian-AD fits (models/gaussian_ad.h: MomentSums::all_reduce, finish(comm)) ----

namespace {

// [n, p] rows around a large offset (1e4: the sums must not cancel), correlated columns.
Tensor gaussian_rows(int64_t n, int64_t p, uint64_t seed) {
  Generator g(seed);
  Tensor x = g.normal({n, p});
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 1; j < p; ++j) x.data()[i * p + j] += 0.5f * x.data()[i * p + j - 1] + 1e4f;
  return x;
}

double rel(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b) { return (a - b).norm() / std::max(b.norm(), 1e-300); }

}  // namespace

TEST_CASE("data parallel: sharded moment sums equal one process's, whatever each rank's shift", "[data_parallel]") {
  const int64_t n = 203, p = 7;
  const Tensor x = gaussian_rows(n, p, 41);
  models::MomentSums one(p);
  one.add(x.data(), n);
  for (int R : {2, 3, 5}) {
    INFO(R << " ranks");
    std::vector<models::MomentSums> ranks(static_cast<size_t>(R), models::MomentSums(p));
    on_ranks(R, [&](Communicator& c, int r) {
      const auto [b, e] = rank_share(n, r, R);
      // Two batches per rank: each rank's shift is its own first batch's mean.
      const int64_t mid = (b + e) / 2;
      ranks[size_t(r)].add(x.data() + b * p, mid - b);
      ranks[size_t(r)].add(x.data() + mid * p, e - mid);
      ranks[size_t(r)].all_reduce(c);
    });
    for (int r = 0; r < R; ++r) {
      const models::MomentSums& m = ranks[size_t(r)];
      CHECK(m.count() == n);
      CHECK(rel(m.mean(), one.mean()) < 1e-13);
      CHECK(rel(m.covariance(), one.covariance()) < 1e-10);
      const models::LedoitWolf a = m.ledoit_wolf(), b = one.ledoit_wolf();
      CHECK(a.shrinkage == Approx(b.shrinkage).epsilon(1e-9));  // uses the fourth moments s3, s4
      CHECK(rel(a.covariance, b.covariance) < 1e-10);
      CHECK(m.mean() == ranks[0].mean());  // the same sums on every rank
    }
  }
  // A rank with no rows (3 ranks, 2 rows: rank 0 gets none) takes the shift of the first that has some.
  models::MomentSums two(p);
  two.add(x.data(), 2);
  std::vector<models::MomentSums> ranks(3, models::MomentSums(p));
  on_ranks(3, [&](Communicator& c, int r) {
    const auto [b, e] = rank_share(2, r, 3);
    ranks[size_t(r)].add(x.data() + b * p, e - b);
    ranks[size_t(r)].all_reduce(c);
  });
  CHECK(rank_share(2, 0, 3).second == 0);
  for (const auto& m : ranks) {
    CHECK(m.count() == 2);
    CHECK(rel(m.covariance(), two.covariance()) < 1e-10);
  }
}

TEST_CASE("data parallel: a sharded GaussianFitter gives one process's model (none, pca, npca)", "[data_parallel]") {
  const int64_t n = 150;
  const std::vector<int64_t> dims{6, 4};
  const std::vector<Tensor> all_levels{gaussian_rows(n, 6, 51), gaussian_rows(n, 4, 52)};
  // 3 ranks; and 9 ranks on 7 rows, where rank 0 and others have none (the shift and the
  // components come from elsewhere, the empty ranks still join every collective).
  for (auto [reduction, R, rows] : {std::tuple{std::string("none"), 3, n}, {"pca", 3, n}, {"npca", 3, n},
                                     {"none", 9, int64_t(7)}, {"npca", 9, int64_t(7)}}) {
    INFO(reduction << ", " << R << " ranks, " << rows << " rows");
    models::GaussianAdOptions o;
    o.reduction = reduction, o.variance = 0.9;
    const std::vector<Tensor> levels{slice(all_levels[0], 0, 0, rows), slice(all_levels[1], 0, 0, rows)};
    models::GaussianFitter one(dims, o);
    one.add(levels);
    const models::GaussianAd ref = one.finish();
    std::vector<models::GaussianAd> got(static_cast<size_t>(R));
    on_ranks(R, [&](Communicator& c, int r) {
      models::GaussianFitter f(dims, o);
      const auto [b, e] = rank_share(rows, r, R);
      if (e > b) f.add({slice(levels[0], 0, b, e), slice(levels[1], 0, b, e)});
      got[size_t(r)] = f.finish(&c);
    });
    const Eigen::MatrixXd d_ref = ref.level_distances(levels);
    for (int r = 0; r < R; ++r) {
      REQUIRE(got[size_t(r)].levels.size() == 2);
      for (size_t l = 0; l < 2; ++l) {
        CHECK(got[size_t(r)].levels[l].reduced == ref.levels[l].reduced);
        CHECK(got[size_t(r)].levels[l].shrinkage == Approx(ref.levels[l].shrinkage).epsilon(1e-8));
      }
      // The model is stored in float32 (round_to_float): distances agree to float precision.
      CHECK(rel(got[size_t(r)].level_distances(levels), d_ref) < 1e-6);
      CHECK(got[size_t(r)].level_distances(levels) == got[0].level_distances(levels));
    }
  }
}
