// Gaussian-AD (models/gaussian_ad.h) against scikit-learn / scipy fixtures written by
// tests/make_sklearn_fixtures.py: Ledoit-Wolf mean, covariance, shrinkage, precision and
// Mahalanobis distances (n < p, n = p, n > p, p = 1, a large offset), PCA / NPCA component counts
// and reduced-space distances, χ² thresholds. Without fixtures: streaming in any split equals one
// batch, a closed-form 1-D case, the thresholds, save / load and malformed model files; the
// weights' SHA-256 (OpenSSL) against published digests and weights paths relative to a model file.
// Fixture references are float64 read back as float32, so comparisons allow ~1e-6 relative.
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "helpers.h"
#include "models/gaussian_ad.h"
#include "models/image_features.h"
#include "nn/safetensors.h"
#include "tensor/parallel.h"

using namespace normad;
using namespace normad::models;

namespace {

Eigen::MatrixXd as_matrix(const Tensor& t) {
  const int64_t r = t.size(0), c = t.dim() == 2 ? t.size(1) : 1;
  Eigen::MatrixXd m(r, c);
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < c; ++j) m(i, j) = t.data()[i * c + j];
  return m;
}

// max |got − ref| / max |ref|
double rel_err(const Eigen::MatrixXd& got, const Eigen::MatrixXd& ref) {
  REQUIRE(got.rows() == ref.rows());
  REQUIRE(got.cols() == ref.cols());
  return (got - ref).cwiseAbs().maxCoeff() / std::max(ref.cwiseAbs().maxCoeff(), 1e-300);
}

Tensor random_rows(int64_t n, int64_t p, uint64_t seed, float offset = 0) {
  Tensor t({n, p});
  uint64_t s = seed * 6364136223846793005ULL + 1442695040888963407ULL;
  for (int64_t i = 0; i < t.numel(); ++i) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    t.data()[i] = offset + float((s >> 33) % 20000) / 10000.f - 1.f + (i % p == 0 ? float(i % 7) : 0.f);
  }
  return t;
}

}  // namespace

TEST_CASE("gaussian-ad: Ledoit-Wolf, precision and distances match scikit-learn", "[gaussian][parity]") {
  const std::string path = test::fixture("gaussian_ad.safetensors");
  if (path.empty()) return;
  const auto f = nn::load_safetensors(path);
  const int cases = int(f.tensors.at("lw_cases").item());
  REQUIRE(cases == 6);
  for (int i = 0; i < cases; ++i) {
    const std::string k = "lw" + std::to_string(i) + ".";
    const Tensor& x = f.tensors.at(k + "x");
    const int64_t n = x.size(0), p = x.size(1);
    INFO("case " << i << ": n = " << n << ", p = " << p);
    // Streamed in uneven batches (3 rows, then the rest): the sums do not depend on the split.
    GaussianFitter fit({p});
    const int64_t first = std::min<int64_t>(3, n);
    fit.add({slice(x, 0, 0, first)});
    if (first < n) fit.add({slice(x, 0, first, n)});
    const GaussianAd model = fit.finish();
    const GaussianLevel& lv = model.levels[0];
    CHECK(rel_err(lv.mean, as_matrix(f.tensors.at(k + "mean"))) < 1e-6);
    CHECK(lv.shrinkage == Approx(f.tensors.at(k + "shrinkage").item()).epsilon(1e-5).margin(1e-9));
    CHECK(rel_err(lv.precision, as_matrix(f.tensors.at(k + "precision"))) < 1e-4);
    MomentSums sums(p);
    sums.add(x.data(), n);
    CHECK(rel_err(sums.ledoit_wolf().covariance, as_matrix(f.tensors.at(k + "cov"))) < 1e-5);
    const Eigen::MatrixXd d = model.level_distances({f.tensors.at(k + "xt")});
    CHECK(rel_err(d, as_matrix(f.tensors.at(k + "dist"))) < 1e-4);
  }
}

TEST_CASE("gaussian-ad: PCA and NPCA keep scikit-learn's components and distances", "[gaussian][parity]") {
  const std::string path = test::fixture("gaussian_ad.safetensors");
  if (path.empty()) return;
  const auto f = nn::load_safetensors(path);
  const int cases = int(f.tensors.at("pca_cases").item());
  REQUIRE(cases == 6);
  for (int i = 0; i < cases; ++i) {
    const std::string k = "pca" + std::to_string(i) + ".";
    const auto kind = f.tensors.at(k + "kind").to_vector();
    GaussianAdOptions o;
    o.reduction = kind[0] > 0.5 ? "npca" : "pca";
    o.variance = double(kind[1]);
    // The threshold was float64 in the fixture; float32 0.9 etc. is within 1e-8 of it, far from
    // any cumulative ratio here.
    const Tensor& x = f.tensors.at(k + "x");
    INFO("case " << i << ": " << o.reduction << " " << o.variance);
    GaussianFitter fit({x.size(1)}, o);
    fit.add({x});
    const GaussianAd model = fit.finish();
    const GaussianLevel& lv = model.levels[0];
    CHECK(lv.reduced == int64_t(f.tensors.at(k + "k").item()));
    CHECK(lv.shrinkage == Approx(f.tensors.at(k + "shrinkage").item()).epsilon(1e-4).margin(1e-9));
    const Eigen::MatrixXd d = model.level_distances({f.tensors.at(k + "xt")});
    CHECK(rel_err(d, as_matrix(f.tensors.at(k + "dist"))) < 1e-4);
  }
}

TEST_CASE("gaussian-ad: chi-square thresholds match scipy", "[gaussian][parity]") {
  const std::string path = test::fixture("gaussian_ad.safetensors");
  if (path.empty()) return;
  const auto f = nn::load_safetensors(path);
  const auto dofs = f.tensors.at("chi2.dof").to_vector();
  const Tensor& ref = f.tensors.at("chi2.threshold");  // [dof, coverage]
  REQUIRE(ref.size(1) == 9);
  for (size_t i = 0; i < dofs.size(); ++i)
    for (int j = 0; j < 9; ++j) {
      // Coverages erf(n / √2), n = 1..8, computed here (float32 would round them to 1), then 0.99.
      const double p = j < 8 ? sigma_coverage(j + 1) : 0.99;
      INFO("dof " << dofs[i] << ", coverage " << p);
      CHECK(chi2_distance_threshold(int64_t(dofs[i]), p) ==
            Approx(ref.data()[int64_t(i) * 9 + j]).epsilon(1e-6));
    }
  CHECK(sigma_coverage(3) == Approx(0.9973002039367398).epsilon(1e-12));
  CHECK_THROWS_WITH(chi2_distance_threshold(0, 0.5), Catch::Contains("degree of freedom"));
  CHECK_THROWS_WITH(chi2_distance_threshold(3, 1.0), Catch::Contains("coverage"));
}

TEST_CASE("gaussian-ad: one feature is a z-score and streaming equals one batch", "[gaussian]") {
  // p = 1: no shrinkage, Σ = biased variance, M(x) = |x − μ| / σ.
  const Tensor x = Tensor::from({4, 1}, {1, 2, 3, 6});  // μ = 3, σ² = (4 + 1 + 0 + 9) / 4 = 3.5
  GaussianFitter fit({1});
  fit.add({x});
  const GaussianAd m = fit.finish();
  CHECK(m.levels[0].shrinkage == 0);
  const Eigen::MatrixXd d = m.level_distances({Tensor::from({2, 1}, {3, 10})});
  CHECK(d(0, 0) == Approx(0).margin(1e-12));
  CHECK(d(1, 0) == Approx(7 / std::sqrt(3.5)).epsilon(1e-6));  // the model is stored in float32

  // Two levels, many rows with a large offset, any batch split: same model to rounding.
  const Tensor a = random_rows(700, 20, 1, 50.f), b = random_rows(700, 5, 2);
  GaussianFitter one({20, 5}), many({20, 5});
  one.add({a, b});
  for (int64_t r = 0; r < 700;) {
    const int64_t e = std::min<int64_t>(700, r + 1 + r % 97);
    many.add({slice(a, 0, r, e), slice(b, 0, r, e)});
    r = e;
  }
  REQUIRE(many.count() == 700);
  const GaussianAd m1 = one.finish(), m2 = many.finish();
  for (size_t l = 0; l < 2; ++l) {
    CHECK(rel_err(m2.levels[l].precision, m1.levels[l].precision) < 1e-9);
    CHECK(m2.levels[l].shrinkage == Approx(m1.levels[l].shrinkage).epsilon(1e-9));
  }
  const auto s1 = m1.score({a, b}), s2 = m2.score({a, b});
  for (size_t i = 0; i < s1.size(); i += 50) CHECK(s2[i] == Approx(s1[i]).epsilon(1e-9));
  // The score is the mean of the level distances.
  const Eigen::MatrixXd d2 = m1.level_distances({a, b});
  CHECK(s1[3] == Approx((d2(3, 0) + d2(3, 1)) / 2).epsilon(1e-12));
}

TEST_CASE("gaussian-ad: the fit is bit-identical with 1 and 2 threads", "[gaussian][determinism]") {
  // p = 300: three column blocks of the moment sums, five of L⁻¹ and P, each one engine call, so
  // the split over threads cannot change a bit; 1100 rows: two row blocks of the streaming sums.
  const Tensor x = random_rows(1100, 300, 9);
  auto fit = [&] {
    GaussianFitter f({300});
    f.add({x});
    return f.finish();
  };
  set_num_threads(1);
  const GaussianAd one = fit();
  set_num_threads(2);
  const GaussianAd two = fit();
  set_num_threads(0);
  REQUIRE(one.levels[0].whiten.size() == two.levels[0].whiten.size());
  CHECK(one.levels[0].whiten == two.levels[0].whiten);
  CHECK(one.levels[0].precision == two.levels[0].precision);
  CHECK(one.levels[0].shrinkage == two.levels[0].shrinkage);
  // ... and right, at this size (several SYRK blocks, Cholesky panels and precision tiles): the
  // moment sums against the centred product XᵀX / n, the precision against the inverse of the
  // Ledoit-Wolf covariance (the model stores float32: 1e-6).
  Eigen::MatrixXd xd(1100, 300);
  for (int64_t i = 0; i < 1100; ++i)
    for (int64_t j = 0; j < 300; ++j) xd(i, j) = x.data()[i * 300 + j];
  const Eigen::MatrixXd centred = xd.rowwise() - xd.colwise().mean();
  MomentSums sums(300);
  sums.add(x.data(), 1100);
  CHECK(rel_err(sums.covariance(), centred.transpose() * centred / 1100.0) < 1e-12);
  const LedoitWolf lw = sums.ledoit_wolf();
  CHECK(rel_err(one.levels[0].precision, lw.covariance.inverse()) < 1e-6);
}

TEST_CASE("gaussian-ad: pinvh drops directions with no variance", "[gaussian]") {
  // No shrinkage and a direction with (almost) no variance: the eigen path drops it, the kept
  // direction gives a 1-D z-score on column 0.
  auto mat2 = [](double a, double b, double c) {
    Eigen::MatrixXd m(2, 2);
    m << a, b, b, c;
    return m;
  };
  LedoitWolf lw;
  lw.mean = Eigen::VectorXd::Zero(2);
  lw.covariance = mat2(4, 0, 1e-20);
  lw.shrinkage = 0;
  lw.scale = 2;
  const Whitening w = whitening(lw);
  CHECK_FALSE(w.cholesky);
  CHECK(w.dropped == 1);
  CHECK(w.precision(0, 0) == Approx(0.25));
  CHECK(w.precision(1, 1) == Approx(0).margin(1e-12));
  lw.shrinkage = 0.5;
  lw.covariance = mat2(4, 1, 3);
  const Whitening c = whitening(lw);
  CHECK(c.cholesky);
  CHECK(rel_err(c.precision, mat2(4, 1, 3).inverse()) < 1e-12);
}

TEST_CASE("gaussian-ad: thresholds, model file round trip and bad files", "[gaussian]") {
  const Tensor a = random_rows(300, 6, 3), b = random_rows(300, 4, 4, -2.f);
  GaussianFitter fit({6, 4}, {"npca", 0.9});
  fit.add({a, b});
  GaussianAd m = fit.finish();
  m.info["backbone"] = "resnet18";
  const auto train = m.score({a, b});
  m.set_thresholds(0.05, train, "reference");  // in-sample here: only the rule's arithmetic is tested
  CHECK(m.chi2_thresholds.size() == 2);
  CHECK(m.chi2_thresholds[1] == Approx(chi2_distance_threshold(m.levels[1].reduced, 0.95)));
  int flagged = 0;
  for (double s : train) flagged += s > m.decision_threshold();
  CHECK(flagged == 14);  // conformal: the k = ceil(301 * 0.95) = 286th smallest of 300, 14 above it
  CHECK(m.threshold.rule == "reference");
  CHECK(m.threshold.rows == 300);
  CHECK(m.threshold.achieved == Approx(14.0 / 300));

  const auto dir = std::filesystem::temp_directory_path() / "normad_test_gaussian_ad";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "model.safetensors").string();
  m.save(path);
  CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
  const GaussianAd r = GaussianAd::load(path);
  CHECK(r.info.at("backbone") == "resnet18");
  CHECK(r.options.reduction == "npca");
  REQUIRE(r.levels.size() == 2);
  CHECK(r.levels[1].projection.rows() == m.levels[1].reduced);
  // finish() rounded the model to float32 as the file stores it: the loaded model is the same.
  CHECK(r.score({a, b}) == train);
  CHECK(r.decision_threshold() == m.decision_threshold());
  CHECK(r.threshold.rule == "reference");
  CHECK(r.threshold.rows == 300);
  CHECK(r.threshold.target == 0.05);
  CHECK(r.threshold.achieved == m.threshold.achieved);
  CHECK(r.chi2_thresholds == m.chi2_thresholds);
  CHECK(r.levels[0].shrinkage == m.levels[0].shrinkage);
  CHECK(r.options.rcond == m.options.rcond);

  // Scoring with the wrong width names the level and both shapes.
  CHECK_THROWS_WITH(r.score({a, random_rows(3, 5, 1)}), Catch::Contains("level 1") && Catch::Contains("[300, 4]"));
  // A weight file that is not a Gaussian-AD model, and one with a tensor missing.
  const std::string other = (dir / "other.safetensors").string();
  nn::save_safetensors(other, {{"w", Tensor::ones({2})}}, {{"model", "acr-dsvdd"}});
  CHECK_THROWS_WITH(GaussianAd::load(other), Catch::Contains(other) && Catch::Contains("gaussian-ad"));
  auto st = nn::load_safetensors(path);
  std::vector<std::pair<std::string, Tensor>> kept;
  for (auto& [k, v] : st.tensors)
    if (k != "level1.whiten") kept.emplace_back(k, v);
  nn::save_safetensors(other, kept, st.metadata);
  CHECK_THROWS_WITH(GaussianAd::load(other), Catch::Contains("level1.whiten"));
  // A number with trailing junk, a non-finite tensor value.
  auto meta = st.metadata;
  meta["level0.shrinkage"] = "0.3x";
  nn::save_safetensors(other, std::vector<std::pair<std::string, Tensor>>(st.tensors.begin(), st.tensors.end()), meta);
  CHECK_THROWS_WITH(GaussianAd::load(other), Catch::Contains("level0.shrinkage") && Catch::Contains("0.3x"));
  auto ts = std::vector<std::pair<std::string, Tensor>>(st.tensors.begin(), st.tensors.end());
  for (auto& [k, v] : ts)
    if (k == "level0.center") v.data()[1] = NAN;
  nn::save_safetensors(other, ts, st.metadata);
  CHECK_THROWS_WITH(GaussianAd::load(other), Catch::Contains("level0.center") && Catch::Contains("non-finite"));
  // A file from before held-out thresholds (no decision.threshold), a NaN decision threshold.
  meta = st.metadata;
  meta.erase("decision.threshold");
  nn::save_safetensors(other, std::vector<std::pair<std::string, Tensor>>(st.tensors.begin(), st.tensors.end()), meta);
  CHECK_THROWS_WITH(GaussianAd::load(other), Catch::Contains("decision.threshold") && Catch::Contains("mvg fit"));
  meta["decision.threshold"] = "nan";
  nn::save_safetensors(other, std::vector<std::pair<std::string, Tensor>>(st.tensors.begin(), st.tensors.end()), meta);
  CHECK_THROWS_WITH(GaussianAd::load(other), Catch::Contains("decision.threshold") && Catch::Contains("finite"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("gaussian-ad: bad options and shapes are clear errors", "[gaussian]") {
  CHECK_THROWS_WITH(GaussianFitter({4}, {"pcaa", 0.9}), Catch::Contains("none, pca or npca"));
  CHECK_THROWS_WITH(GaussianFitter({4}, {"pca", 1.5}), Catch::Contains("(0, 1)"));
  GaussianFitter fit({4, 3});
  CHECK_THROWS_WITH(fit.add({random_rows(5, 4, 1)}), Catch::Contains("expected 2 feature levels"));
  CHECK_THROWS_WITH(fit.add({random_rows(5, 4, 1), random_rows(5, 2, 1)}),
                    Catch::Contains("level 1") && Catch::Contains("[5, 3]"));
  CHECK_THROWS_WITH(fit.finish(), Catch::Contains("no training rows"));
  fit.add({random_rows(1, 4, 1), random_rows(1, 3, 1)});
  CHECK_THROWS_WITH(fit.finish(), Catch::Contains("at least 2 training rows"));
  // the rejected batch above (level 1 the wrong width) added nothing to level 0 either: one more
  // good row fits both levels on the same 2 rows
  fit.add({random_rows(1, 4, 2), random_rows(1, 3, 2)});
  const GaussianAd both = fit.finish();
  REQUIRE(both.levels.size() == 2);
  const std::vector<float> r1 = random_rows(1, 4, 1).to_vector(), r2 = random_rows(1, 4, 2).to_vector();
  for (int64_t j = 0; j < 4; ++j) CHECK(both.levels[0].mean(j) == Approx((double(r1[j]) + r2[j]) / 2).epsilon(1e-6));
  GaussianFitter flat({2});
  flat.add({Tensor::full({5, 2}, 3.f)});
  CHECK_THROWS_WITH(flat.finish(), Catch::Contains("level 0") && Catch::Contains("no variance"));
  // Labels need a threshold: χ² for one level, the empirical one for several.
  GaussianFitter one({4}), two({4, 3});
  one.add({random_rows(9, 4, 2)});
  two.add({random_rows(9, 4, 2), random_rows(9, 3, 3)});
  CHECK_THROWS_WITH(one.finish().decision_threshold(), Catch::Contains("no decision threshold"));
  GaussianAd m2 = two.finish();
  m2.set_thresholds(0.1, {}, "calibration");  // χ² only: no labels, and no model file
  CHECK_THROWS_WITH(m2.decision_threshold(), Catch::Contains("normal data it was not fitted on"));
  CHECK_THROWS_WITH(m2.save("never.safetensors"), Catch::Contains("decision threshold"));
  // A non-finite normal score cannot set a threshold.
  CHECK_THROWS_WITH(m2.set_thresholds(0.1, {1.0, NAN, 2.0}, "calibration"), Catch::Contains("row 1"));
}

TEST_CASE("gaussian-ad: weights SHA-256 and paths relative to the model file", "[gaussian]") {
  const auto dir = std::filesystem::temp_directory_path() / "normad_test_gaussian_ad_sha";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir / "sub");
  const std::string empty = (dir / "empty.bin").string(), abc = (dir / "abc.bin").string();
  std::ofstream(empty).close();
  std::ofstream(abc) << "abc";
  // FIPS 180-2 / NIST example digests.
  CHECK(file_sha256(empty) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(file_sha256(abc) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK_THROWS_WITH(file_sha256((dir / "none.bin").string()), Catch::Contains("none.bin"));
  // Stored relative to the model's directory, resolved back from it.
  const std::string model = (dir / "sub" / "m.safetensors").string();
  CHECK(path_relative_to(abc, model) == "../abc.bin");
  CHECK(path_resolved_from("../abc.bin", model) == (dir / "abc.bin").lexically_normal().string());
  CHECK(path_resolved_from("/x/w.safetensors", model) == "/x/w.safetensors");
  CHECK(path_relative_to("w.safetensors", "m.safetensors") == "w.safetensors");
  CHECK(path_resolved_from("w.safetensors", "m.safetensors") == "w.safetensors");
  std::filesystem::remove_all(dir);
}

TEST_CASE("gaussian-ad: chi-square thresholds against values not computed by the code", "[gaussian]") {
  // Without fixtures too: closed forms and table values. dof 2: F^-1(p) = -2 ln(1 - p) exactly;
  // dof 1: sqrt(F^-1(0.95)) = z_0.975 = 1.959963984540054; dof 10: F^-1(0.95) = 18.307038053275146.
  for (double p : {0.5, 0.9, 0.99, 0.999999})
    CHECK(chi2_distance_threshold(2, p) == Approx(std::sqrt(-2 * std::log(1 - p))).epsilon(1e-12));
  CHECK(chi2_distance_threshold(1, 0.95) == Approx(1.959963984540054).epsilon(1e-12));
  CHECK(chi2_distance_threshold(10, 0.95) == Approx(std::sqrt(18.307038053275146)).epsilon(1e-12));
}

TEST_CASE("gaussian-ad: Ledoit-Wolf on a closed-form case", "[gaussian]") {
  // Rows (+-a, 0) and (0, +-b), a = 2, b = 1 (n = 4, p = 2, mean 0), worked by hand through
  // scikit-learn's ledoit_wolf_shrinkage: S = diag(a^2/2, b^2/2) = diag(2, 0.5), mu = 1.25,
  // beta = (a^4 + b^4) / 32 = 17/32, delta = (a^2 - b^2)^2 / 16 = 9/16, shrinkage = 17/18;
  // covariance = (1/18) S + (17/18) mu I = diag(23.25/18, 21.75/18), so the Mahalanobis distance
  // of (1, 1) is sqrt(18/23.25 + 18/21.75). (Shrinkage 1 would give sqrt(2/1.25).)
  Tensor x = Tensor::from({4, 2}, {2, 0, -2, 0, 0, 1, 0, -1});
  GaussianFitter fit({2}, {});
  fit.add({x});
  GaussianAd m = fit.finish();
  CHECK(m.levels[0].shrinkage == Approx(17.0 / 18).epsilon(1e-9));
  const double want = std::sqrt(18 / 23.25 + 18 / 21.75);
  CHECK(m.score({Tensor::from({1, 2}, {1, 1})})[0] == Approx(want).epsilon(1e-6));
}
