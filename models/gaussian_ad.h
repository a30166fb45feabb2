// Gaussian-AD (gaussian_ad.md): per feature level a multivariate Gaussian (sample mean + Ledoit-Wolf
// shrunk covariance, exactly as scikit-learn's LedoitWolf), scored by the Mahalanobis distance; the
// image score is the mean of the level distances (§6).
// Math: Σ_LW = (1 − a)·S + a·(tr S / p)·I (§5); M(x) = √((x − μ)ᵀ P (x − μ)) = ||W (x − μ)|| with
// P = WᵀW, W = L⁻¹ from the Cholesky factor Σ_LW = L Lᵀ (or the pseudo-inverse square root when
// eigenvalues must be dropped, as scipy's pinvh does).
// Streaming: MomentSums keeps n, Σy, Σyyᵀ, Σ||y||²y and Σ||y||⁴ (y = x − shift), enough for the
// mean, S and Ledoit-Wolf's fourth-moment term, so memory is O(p²) whatever the number of rows.
// PCA / NPCA (§7) need a second pass in the reduced space, so the fitter then holds the float
// features once.
// Tested by tests/test_gaussian_ad.cpp: mean, covariance, shrinkage, precision, distances, PCA /
// NPCA against scikit-learn fixtures (tests/make_sklearn_fixtures.py), χ² quantiles against scipy,
// streaming in any batch split equals one batch, save/load round trip, malformed model files.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "eval/metrics.h"
#include "nn/safetensors.h"
#include "tensor/comm.h"
#include "tensor/tensor.h"

namespace normad::models {

// scipy pinvh cut-offs (gaussian_ad.md §5): eigenvalues with |λ| <= rcond·max|λ| are dropped.
inline constexpr double kRcondF64 = 1e6 * 2.220446049250313e-16;
inline constexpr double kRcondF32 = 1e3 * 1.1920928955078125e-07;

// scikit-learn's LedoitWolf().fit(X) (store_precision, assume_centered=False).
struct LedoitWolf {
  Eigen::VectorXd mean;        // [p]
  Eigen::MatrixXd covariance;  // [p, p], Σ_LW
  double shrinkage = 0;        // a in [0, 1]
  double scale = 0;            // m = tr(S) / p
};

// Streaming sums over rows of a [n, p] matrix, accumulated in double around `shift` (the first
// batch's mean, so that large offsets do not cancel).
class MomentSums {
 public:
  explicit MomentSums(int64_t p);
  void add(const float* rows, int64_t n);  // rows: [n, p] row-major
  void add(const Eigen::MatrixXd& rows);   // [n, p]
  int64_t count() const { return n_; }
  int64_t dim() const { return p_; }
  Eigen::VectorXd mean() const;
  Eigen::MatrixXd covariance() const;  // biased (divide by n), full symmetric
  LedoitWolf ledoit_wolf() const;
  // Sums over every rank's rows (a sharded fit, issue 18): each rank's sums are first moved to one
  // shift (the lowest rank with rows broadcasts its own; y' = y + d with d = own shift - that one):
  //   s1' = s1 + n d, S2' = S2 + s1 dᵀ + d s1ᵀ + n d dᵀ,
  //   s3' = s3 + 2 S2 d + tr(S2) d + 2 (s1·d) d + |d|² s1 + n |d|² d,
  //   s4' = s4 + 4 dᵀS2 d + 4 s3·d + 2 |d|² tr(S2) + 4 |d|² s1·d + n |d|⁴,
  // then all-reduced in double. Afterwards every rank holds the sums of all rows: the moments of
  // one process that added them all (to double rounding: d is a difference of two batch means).
  void all_reduce(Communicator& comm);

 private:
  void shift_and_add(Eigen::MatrixXd& y);    // y -= shift in place (setting it first), then add_block
  void add_block(const Eigen::MatrixXd& y);  // rows already shifted
  int64_t p_, n_ = 0;
  Eigen::VectorXd shift_, s1_, s3_;  // Σy, Σ||y||² y
  Eigen::MatrixXd s2_;               // Σ y yᵀ (lower triangle)
  double s4_ = 0;                    // Σ ||y||⁴
};

// P = pinvh(Σ) and W with P = WᵀW. Cholesky when nothing can be dropped (a > rcond·p, since then
// every eigenvalue is >= a·m > rcond·tr Σ >= rcond·max λ), else the symmetric eigen-decomposition.
struct Whitening {
  Eigen::MatrixXd whiten;     // [k', p]: k' = p, or the kept eigenvalues
  Eigen::MatrixXd precision;  // [p, p]
  int64_t dropped = 0;        // eigenvalues dropped by the cut-off
  bool cholesky = false;
};
Whitening whitening(const LedoitWolf& lw, double rcond = kRcondF64);

// PCA (§7): components of the covariance S ([p, p], any positive scale) with q = min(n, p) kept
// before the rule; returns the kept components as rows [k, p].
// "pca": components 0..c; "npca": max(c − 1, 0)..q − 1, c = first index with cumulative
// explained-variance ratio > t (0 if none).
struct Projection {
  Eigen::MatrixXd components;  // [k, p], orthonormal rows, by decreasing variance
};
Projection pca_projection(const Eigen::MatrixXd& cov, int64_t n, const std::string& kind,
                          double threshold);

// χ² threshold on one level's distance (§8): √(F⁻¹_{χ²(dof)}(p)), Boost.Math's quantile. The dof
// used by GaussianAd is the level's kept rank (whiten's rows): the reduced dimension k unless pinvh
// dropped directions.
double chi2_distance_threshold(int64_t dof, double p);
// n-sigma coverage of a 1-D Gaussian: erf(n / √2).
double sigma_coverage(double n_sigma);

struct GaussianAdOptions {
  std::string reduction = "none";  // none | pca | npca
  double variance = 0.99;          // t for pca / npca
  double rcond = kRcondF64;        // pinvh cut-off (kRcondF32 mimics float32 input)
};

// One level of a fitted model: M(x) = ||whiten·(x − center)||.
struct GaussianLevel {
  int64_t dim = 0;             // p, input features
  int64_t reduced = 0;         // k: the Gaussian's dimension (= p without reduction)
  double shrinkage = 0;
  int64_t dropped = 0;
  Eigen::VectorXd center;      // [p]
  Eigen::MatrixXd whiten;      // [k', p]
  bool lower = false;          // whiten is lower-triangular (Cholesky, no projection): half the flops
  Eigen::VectorXd mean;        // [k]: the Gaussian's mean in its own space
  Eigen::MatrixXd precision;   // [k, k]
  Eigen::MatrixXd projection;  // [k, p] for pca / npca, else empty
};

class GaussianAd {
 public:
  GaussianAdOptions options;
  std::vector<GaussianLevel> levels;
  // Thresholds. The decision threshold (labels) is on the combined score and comes from normal
  // data the model was not fitted on; the per-level χ² ones are information only (§8: they assume
  // Gaussian features and, fitted in-sample, flag far more than fpr of new normal images).
  double fpr = 0.05;
  std::vector<double> chi2_thresholds;     // per level, at coverage 1 − fpr (empty: not set)
  eval::ThresholdReport threshold;         // the decision threshold and its rule ("calibration" or "reference")
  bool has_threshold = false;
  std::map<std::string, std::string> info; // free metadata (backbone, levels, image prep, ...)

  // Mahalanobis distances [n, L] (double) for levels [n, p_l] each. Features on the CPU: in double
  // (Eigen). Features on another device (a GPU): there, in float32, one whitening GEMM per level
  // y = (x - center) W^T and the row norms |y|, then copied back (about 1e-6 relative to the double
  // distances: the fit's matrices are float-rounded already, round_to_float).
  Eigen::MatrixXd level_distances(const std::vector<Tensor>& feats) const;
  // Mean over levels of the distances (§6).
  std::vector<double> score(const std::vector<Tensor>& feats) const;
  // Sets fpr, the χ² thresholds and, from `normal_scores` (none: not set), the decision threshold:
  // eval::fpr_rule, the (1 − fpr) quantile of scores of normal rows the model was not fitted on;
  // `rule` is "calibration" (held out of the training data) or "reference" (a separate normal set).
  // A non-finite score is an Error.
  void set_thresholds(double fpr, const std::vector<double>& normal_scores, const std::string& rule);
  double decision_threshold() const;  // throws when it was never set

  void save(const std::string& path) const;  // safetensors, written atomically
  static GaussianAd load(const std::string& path);
  // A model file already read (Detector::load reads it once to learn its kind); errors name `path`.
  static GaussianAd from_file(const nn::Safetensors& f, const std::string& path);
};

// Streaming fit: add() batches of every level, then finish(). Without reduction only the moment
// sums are kept (O(p²) per level); with pca / npca the float features are also held once.
// finish() needs at least 2 rows and rounds the model to float32, as the model file stores it, so
// thresholds and scores computed in memory equal those of the saved file.
class GaussianFitter {
 public:
  GaussianFitter(std::vector<int64_t> dims, GaussianAdOptions options = {});
  void add(const std::vector<Tensor>& feats);  // one [b, p_l] tensor per level
  int64_t count() const { return n_; }
  // With `comm` (a sharded fit: each rank added its share of the rows) the sums are all-reduced
  // first (MomentSums::all_reduce) and PCA / NPCA use rank 0's components; every rank returns the
  // model of all rows.
  GaussianAd finish(Communicator* comm = nullptr) const;

 private:
  std::vector<int64_t> dims_;
  GaussianAdOptions opt_;
  int64_t n_ = 0;
  std::vector<MomentSums> sums_;
  std::vector<std::vector<float>> held_;  // [n, p_l] per level, pca / npca only
};

}  // namespace normad::models
