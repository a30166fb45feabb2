// Gaussian-AD: streaming Ledoit-Wolf Gaussians, PCA / NPCA, Mahalanobis scoring, thresholds and
// the model file (gaussian_ad.md §5-§8). See gaussian_ad.h for the math and the tests.
#include "models/gaussian_ad.h"

#include <algorithm>
#include <boost/math/distributions/chi_squared.hpp>
#include <cmath>

#include "eval/metrics.h"
#include "nn/safetensors.h"
#include "tensor/parallel.h"

namespace normad::models {

namespace {

constexpr int64_t kRowBlock = 256;  // rows converted to double at a time
constexpr int64_t kColBlock = 64;   // columns of Σ y yᵀ per parallel task

void require(bool ok, const std::string& msg) { check(ok, "gaussian-ad", msg); }

Eigen::MatrixXd to_double(const float* rows, int64_t n, int64_t p) {
  using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  return Eigen::Map<const RowMajor>(rows, n, p).cast<double>();
}

Tensor to_tensor(const Eigen::MatrixXd& m) {  // [rows, cols] float32, row-major
  Tensor t({m.rows(), m.cols()});
  for (int64_t i = 0; i < m.rows(); ++i)
    for (int64_t j = 0; j < m.cols(); ++j) t.data()[i * m.cols() + j] = float(m(i, j));
  return t;
}

Tensor to_tensor(const Eigen::VectorXd& v) {
  Tensor t({v.size()});
  for (int64_t i = 0; i < v.size(); ++i) t.data()[i] = float(v(i));
  return t;
}

}  // namespace

// ---- streaming moments ----

MomentSums::MomentSums(int64_t p)
    : p_(p), s1_(Eigen::VectorXd::Zero(p)), s3_(Eigen::VectorXd::Zero(p)),
      s2_(Eigen::MatrixXd::Zero(p, p)) {
  require(p > 0, "a feature level needs at least one column");
}

void MomentSums::add(const float* rows, int64_t n) {
  for (int64_t b = 0; b < n; b += kRowBlock) {
    const int64_t m = std::min(kRowBlock, n - b);
    add(to_double(rows + b * p_, m, p_));
  }
}

void MomentSums::add(const Eigen::MatrixXd& rows) {
  require(rows.cols() == p_, "rows have " + std::to_string(rows.cols()) + " columns, the level has " +
                                 std::to_string(p_));
  if (rows.rows() == 0) return;
  if (n_ == 0) shift_ = rows.colwise().mean().transpose();
  Eigen::MatrixXd y = rows.rowwise() - shift_.transpose();
  add_block(y);
}

void MomentSums::add_block(const Eigen::MatrixXd& y) {
  const Eigen::VectorXd sq = y.rowwise().squaredNorm();  // ||y_i||²
  s1_ += y.colwise().sum().transpose();
  s3_ += y.transpose() * sq;
  s4_ += sq.squaredNorm();
  // Lower triangle of Σ y yᵀ, one column block per task: each entry has one owner, so the sums
  // do not depend on the thread count.
  const int64_t nb = (p_ + kColBlock - 1) / kColBlock;
  parallel_for(nb, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t j = b * kColBlock, w = std::min(kColBlock, p_ - j);
      s2_.block(j, j, p_ - j, w).noalias() += y.rightCols(p_ - j).transpose() * y.middleCols(j, w);
    }
  });
  n_ += y.rows();
}

Eigen::VectorXd MomentSums::mean() const {
  require(n_ > 0, "no rows were added");
  return shift_ + s1_ / double(n_);
}

Eigen::MatrixXd MomentSums::covariance() const {
  require(n_ > 0, "no rows were added");
  const Eigen::VectorXd mu = s1_ / double(n_);  // mean of y
  Eigen::MatrixXd s = s2_.selfadjointView<Eigen::Lower>();
  s /= double(n_);
  s.noalias() -= mu * mu.transpose();
  return s;
}

LedoitWolf MomentSums::ledoit_wolf() const {
  LedoitWolf lw;
  lw.mean = mean();
  const Eigen::MatrixXd s = covariance();
  const double n = double(n_), p = double(p_);
  lw.scale = s.trace() / p;
  if (p_ == 1) {  // scikit-learn: no shrinkage for a single feature
    lw.covariance = s;
    return lw;
  }
  // Σ_i ||x̃_i||⁴ with x̃ = y − μ_y: expand ||x̃||² = a − 2b + c (a = ||y||², b = yᵀμ_y, c = ||μ_y||²).
  const Eigen::VectorXd mu = s1_ / n;
  const double c = mu.squaredNorm();
  const Eigen::MatrixXd s2 = s2_.selfadjointView<Eigen::Lower>();
  const double sum_b2 = mu.dot(s2 * mu), sum_ab = s3_.dot(mu), sum_a = s2.trace();
  const double fourth = s4_ + 4 * sum_b2 - 4 * sum_ab + 2 * c * sum_a - 3 * n * c * c;
  const double frob = s.squaredNorm();  // ||S||_F²
  const double m = lw.scale;
  const double delta = (frob - p * m * m) / p;
  double beta = (fourth / n - frob) / (n * p);
  beta = std::min(beta, delta);
  lw.shrinkage = (beta == 0 || delta <= 0) ? 0.0 : beta / delta;
  lw.covariance = (1 - lw.shrinkage) * s;
  lw.covariance.diagonal().array() += lw.shrinkage * m;
  return lw;
}

// ---- precision ----

Whitening whitening(const LedoitWolf& lw, double rcond) {
  const Eigen::MatrixXd& cov = lw.covariance;
  const int64_t p = cov.rows();
  Whitening w;
  if (lw.shrinkage > rcond * double(p) && lw.scale > 0) {
    Eigen::LLT<Eigen::MatrixXd> llt(cov);
    if (llt.info() == Eigen::Success) {
      w.whiten = llt.matrixL().solve(Eigen::MatrixXd::Identity(p, p));  // L⁻¹
      w.whiten.triangularView<Eigen::StrictlyUpper>().setZero();
      w.precision = w.whiten.transpose() * w.whiten;
      w.cholesky = true;
      return w;
    }
  }
  // scipy.linalg.pinvh: drop |λ| <= rcond·max|λ|; Σ_LW is positive semi-definite, so the kept
  // eigenvalues are positive and W = diag(λ^-1/2) Vᵀ.
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(cov);
  require(eig.info() == Eigen::Success, "eigen-decomposition of the covariance failed");
  const Eigen::VectorXd& lam = eig.eigenvalues();
  const double cut = rcond * lam.cwiseAbs().maxCoeff();
  std::vector<int64_t> keep;
  for (int64_t j = p - 1; j >= 0; --j)
    if (std::abs(lam(j)) > cut && lam(j) > 0) keep.push_back(j);
  w.dropped = p - int64_t(keep.size());
  w.whiten.resize(int64_t(keep.size()), p);
  for (size_t r = 0; r < keep.size(); ++r)
    w.whiten.row(int64_t(r)) = eig.eigenvectors().col(keep[r]).transpose() / std::sqrt(lam(keep[r]));
  w.precision = w.whiten.transpose() * w.whiten;
  return w;
}

// ---- PCA / NPCA ----

Projection pca_projection(const Eigen::MatrixXd& cov, int64_t n, const std::string& kind,
                          double threshold) {
  require(kind == "pca" || kind == "npca", "reduction must be none, pca or npca, got '" + kind + "'");
  require(threshold > 0 && threshold < 1,
          "variance threshold must be in (0, 1), got " + std::to_string(threshold));
  const int64_t p = cov.rows(), q = std::min(n, p);
  require(q >= 1, "PCA needs at least one row");
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(cov);
  require(eig.info() == Eigen::Success, "eigen-decomposition for PCA failed");
  // Descending order; the q leading components are those scikit-learn's PCA(None) returns.
  Eigen::VectorXd lam = eig.eigenvalues().reverse().head(q).cwiseMax(0.0);
  const double total = lam.sum();
  int64_t c = 0;
  double cum = 0;
  for (int64_t j = 0; j < q; ++j) {
    cum += total > 0 ? lam(j) / total : 0;
    if (cum > threshold) {
      c = j;
      break;
    }
  }
  Projection pr;
  // NPCA's boundary component c − 1: the reference's slice wraps around for c = 0; we keep from 0.
  pr.first = kind == "pca" ? 0 : std::max<int64_t>(c - 1, 0);
  pr.last = kind == "pca" ? c : q - 1;
  pr.components.resize(pr.last - pr.first + 1, p);
  for (int64_t j = pr.first; j <= pr.last; ++j)
    pr.components.row(j - pr.first) = eig.eigenvectors().col(p - 1 - j).transpose();
  return pr;
}

// ---- thresholds ----

double chi2_distance_threshold(int64_t dof, double p) {
  require(dof >= 1, "χ² needs at least one degree of freedom");
  require(p > 0 && p < 1, "coverage must be in (0, 1), got " + std::to_string(p));
  const boost::math::chi_squared dist{double(dof)};
  return std::sqrt(boost::math::quantile(dist, p));
}

double sigma_coverage(double n_sigma) { return std::erf(n_sigma / std::sqrt(2.0)); }

// ---- fitting ----

namespace {

GaussianLevel make_level(const LedoitWolf& lw, const Projection* pr, const Eigen::VectorXd& pca_mean,
                         double rcond) {
  GaussianLevel lv;
  const Whitening w = whitening(lw, rcond);
  lv.reduced = lw.mean.size();
  lv.shrinkage = lw.shrinkage;
  lv.dropped = w.dropped;
  lv.mean = lw.mean;
  lv.precision = w.precision;
  if (pr) {
    // g = C (x − μ_pca); M = ||W (g − μ_g)|| = ||W C (x − μ_pca − Cᵀ μ_g)|| (C has orthonormal rows).
    lv.dim = pr->components.cols();
    lv.projection = pr->components;
    lv.center = pca_mean + pr->components.transpose() * lw.mean;
    lv.whiten = w.whiten * pr->components;
  } else {
    lv.dim = lv.reduced;
    lv.center = lw.mean;
    lv.whiten = w.whiten;
  }
  return lv;
}

}  // namespace

GaussianLevel fit_level(const Eigen::MatrixXd& x, const GaussianAdOptions& o) {
  MomentSums sums(x.cols());
  for (int64_t b = 0; b < x.rows(); b += kRowBlock) sums.add(Eigen::MatrixXd(x.middleRows(b, std::min(kRowBlock, x.rows() - b))));
  if (o.reduction == "none") return make_level(sums.ledoit_wolf(), nullptr, {}, o.rcond);
  const Eigen::VectorXd mu = sums.mean();
  const Projection pr = pca_projection(sums.covariance(), sums.count(), o.reduction, o.variance);
  MomentSums red(pr.components.rows());
  for (int64_t b = 0; b < x.rows(); b += kRowBlock) {
    const Eigen::MatrixXd xb = x.middleRows(b, std::min(kRowBlock, x.rows() - b));
    red.add(Eigen::MatrixXd((xb.rowwise() - mu.transpose()) * pr.components.transpose()));
  }
  return make_level(red.ledoit_wolf(), &pr, mu, o.rcond);
}

GaussianFitter::GaussianFitter(std::vector<int64_t> dims, GaussianAdOptions options)
    : dims_(std::move(dims)), opt_(std::move(options)) {
  require(!dims_.empty(), "at least one feature level is needed");
  require(opt_.reduction == "none" || opt_.reduction == "pca" || opt_.reduction == "npca",
          "reduction must be none, pca or npca, got '" + opt_.reduction + "'");
  if (opt_.reduction != "none")
    require(opt_.variance > 0 && opt_.variance < 1,
            "variance threshold must be in (0, 1), got " + std::to_string(opt_.variance));
  for (int64_t p : dims_) sums_.emplace_back(p);
  if (opt_.reduction != "none") held_.resize(dims_.size());
}

void GaussianFitter::add(const std::vector<Tensor>& feats) {
  require(feats.size() == dims_.size(), "expected " + std::to_string(dims_.size()) +
                                            " feature levels, got " + std::to_string(feats.size()));
  const int64_t b = feats[0].dim() == 2 ? feats[0].size(0) : -1;
  for (size_t l = 0; l < feats.size(); ++l) {
    const Tensor& f = feats[l];
    require(f.dim() == 2 && f.size(0) == b && f.size(1) == dims_[l],
            "level " + std::to_string(l) + " features have shape " + shape_str(f.shape()) +
                ", expected [" + std::to_string(b) + ", " + std::to_string(dims_[l]) + "]");
    sums_[l].add(f.data(), b);
    if (!held_.empty()) held_[l].insert(held_[l].end(), f.data(), f.data() + f.numel());
  }
  n_ += b;
}

GaussianAd GaussianFitter::finish() const {
  require(n_ >= 1, "no training rows");
  GaussianAd model;
  model.options = opt_;
  for (size_t l = 0; l < dims_.size(); ++l) {
    if (held_.empty()) {
      model.levels.push_back(make_level(sums_[l].ledoit_wolf(), nullptr, {}, opt_.rcond));
      continue;
    }
    const Eigen::VectorXd mu = sums_[l].mean();
    const Projection pr = pca_projection(sums_[l].covariance(), n_, opt_.reduction, opt_.variance);
    MomentSums red(pr.components.rows());
    const int64_t p = dims_[l];
    for (int64_t b = 0; b < n_; b += kRowBlock) {
      const int64_t m = std::min(kRowBlock, n_ - b);
      const Eigen::MatrixXd xb = to_double(held_[l].data() + b * p, m, p);
      red.add(Eigen::MatrixXd((xb.rowwise() - mu.transpose()) * pr.components.transpose()));
    }
    model.levels.push_back(make_level(red.ledoit_wolf(), &pr, mu, opt_.rcond));
  }
  return model;
}

// ---- scoring ----

Eigen::MatrixXd GaussianAd::level_distances(const std::vector<Tensor>& feats) const {
  require(feats.size() == levels.size(), "the model has " + std::to_string(levels.size()) +
                                             " feature levels, got " + std::to_string(feats.size()));
  require(!feats.empty() && feats[0].dim() == 2, "features must be [n, p] per level");
  const int64_t n = feats[0].size(0);
  Eigen::MatrixXd out(n, int64_t(levels.size()));
  for (size_t l = 0; l < levels.size(); ++l) {
    const GaussianLevel& lv = levels[l];
    const Tensor& f = feats[l];
    require(f.dim() == 2 && f.size(0) == n && f.size(1) == lv.dim,
            "level " + std::to_string(l) + " features have shape " + shape_str(f.shape()) +
                ", the model expects [" + std::to_string(n) + ", " + std::to_string(lv.dim) + "]");
    const int64_t nb = (n + kRowBlock - 1) / kRowBlock;
    parallel_for(nb, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t r = b * kRowBlock, m = std::min(kRowBlock, n - r);
        const Eigen::MatrixXd d = to_double(f.data() + r * lv.dim, m, lv.dim).rowwise() -
                                  lv.center.transpose();
        const Eigen::MatrixXd y = d * lv.whiten.transpose();
        out.col(int64_t(l)).segment(r, m) = y.rowwise().norm();
      }
    });
  }
  return out;
}

std::vector<double> GaussianAd::score(const std::vector<Tensor>& feats) const {
  const Eigen::MatrixXd d = level_distances(feats);
  std::vector<double> s(size_t(d.rows()));
  for (int64_t i = 0; i < d.rows(); ++i) s[size_t(i)] = d.row(i).mean();
  return s;
}

void GaussianAd::set_thresholds(double f, const std::vector<double>& normal_scores) {
  require(f > 0 && f < 1, "fpr must be in (0, 1), got " + std::to_string(f));
  fpr = f;
  chi2_thresholds.clear();
  for (const GaussianLevel& lv : levels)
    chi2_thresholds.push_back(chi2_distance_threshold(lv.whiten.rows(), 1 - f));
  empirical_threshold = normal_scores.empty() ? 0 : eval::fpr_threshold(normal_scores, f);
}

double GaussianAd::decision_threshold() const {
  if (levels.size() == 1 && !chi2_thresholds.empty()) return chi2_thresholds[0];
  return empirical_threshold;
}

// ---- model file ----

void GaussianAd::save(const std::string& path) const {
  std::vector<std::pair<std::string, Tensor>> ts;
  std::map<std::string, std::string> meta;
  for (const auto& [key, value] : info) meta["info." + key] = value;
  meta["model"] = "gaussian-ad";
  meta["levels"] = std::to_string(levels.size());
  meta["reduction"] = options.reduction;
  meta["variance_threshold"] = std::to_string(options.variance);
  meta["rcond"] = std::to_string(options.rcond);
  meta["fpr"] = std::to_string(fpr);
  meta["empirical_threshold"] = std::to_string(empirical_threshold);
  meta["score"] = "mean over levels of the Mahalanobis distance";
  for (size_t l = 0; l < levels.size(); ++l) {
    const GaussianLevel& lv = levels[l];
    const std::string k = "level" + std::to_string(l) + ".";
    ts.emplace_back(k + "center", to_tensor(lv.center));
    ts.emplace_back(k + "whiten", to_tensor(lv.whiten));
    ts.emplace_back(k + "mean", to_tensor(lv.mean));
    ts.emplace_back(k + "precision", to_tensor(lv.precision));
    if (lv.projection.size()) ts.emplace_back(k + "projection", to_tensor(lv.projection));
    meta[k + "shrinkage"] = std::to_string(lv.shrinkage);
    meta[k + "dropped"] = std::to_string(lv.dropped);
    if (l < chi2_thresholds.size()) meta[k + "chi2_threshold"] = std::to_string(chi2_thresholds[l]);
  }
  nn::save_safetensors(path, ts, meta);
}

GaussianAd GaussianAd::load(const std::string& path) {
  const nn::Safetensors f = nn::load_safetensors(path);
  auto meta = [&](const std::string& key) -> const std::string& {
    auto it = f.metadata.find(key);
    check(it != f.metadata.end(), path, "not a Gaussian-AD model: metadata field '" + key + "' is missing");
    return it->second;
  };
  auto number = [&](const std::string& key) {
    try {
      return std::stod(meta(key));
    } catch (const std::invalid_argument&) {
      throw Error(path + ": metadata field '" + key + "' is not a number: '" + meta(key) + "'");
    }
  };
  check(meta("model") == "gaussian-ad", path,
        "metadata field 'model' is '" + meta("model") + "', expected 'gaussian-ad'");
  GaussianAd m;
  m.options.reduction = meta("reduction");
  m.options.variance = number("variance_threshold");
  m.options.rcond = number("rcond");
  m.fpr = number("fpr");
  m.empirical_threshold = number("empirical_threshold");
  const int64_t nl = int64_t(number("levels"));
  check(nl >= 1 && nl <= 64, path, "metadata field 'levels' must be 1..64, got " + meta("levels"));
  auto tensor = [&](const std::string& name, int64_t rank) -> const Tensor& {
    auto it = f.tensors.find(name);
    check(it != f.tensors.end(), path, "tensor '" + name + "' is missing");
    check(it->second.dim() == rank, path,
          "tensor '" + name + "' has shape " + shape_str(it->second.shape()) + ", expected rank " +
              std::to_string(rank));
    return it->second;
  };
  auto matrix = [](const Tensor& t) {
    Eigen::MatrixXd m(t.size(0), t.size(1));
    for (int64_t i = 0; i < m.rows(); ++i)
      for (int64_t j = 0; j < m.cols(); ++j) m(i, j) = t.data()[i * m.cols() + j];
    return m;
  };
  auto vector = [](const Tensor& t) {
    Eigen::VectorXd v(t.size(0));
    for (int64_t i = 0; i < v.size(); ++i) v(i) = t.data()[i];
    return v;
  };
  for (int64_t l = 0; l < nl; ++l) {
    const std::string k = "level" + std::to_string(l) + ".";
    GaussianLevel lv;
    lv.center = vector(tensor(k + "center", 1));
    lv.whiten = matrix(tensor(k + "whiten", 2));
    lv.mean = vector(tensor(k + "mean", 1));
    lv.precision = matrix(tensor(k + "precision", 2));
    lv.dim = lv.center.size();
    lv.reduced = lv.mean.size();
    check(lv.whiten.cols() == lv.dim, path,
          "tensor '" + k + "whiten' has " + std::to_string(lv.whiten.cols()) + " columns, '" + k +
              "center' has " + std::to_string(lv.dim) + " entries");
    check(lv.precision.rows() == lv.reduced && lv.precision.cols() == lv.reduced, path,
          "tensor '" + k + "precision' must be [" + std::to_string(lv.reduced) + ", " +
              std::to_string(lv.reduced) + "]");
    if (f.tensors.count(k + "projection")) {
      lv.projection = matrix(tensor(k + "projection", 2));
      check(lv.projection.rows() == lv.reduced && lv.projection.cols() == lv.dim, path,
            "tensor '" + k + "projection' must be [" + std::to_string(lv.reduced) + ", " +
                std::to_string(lv.dim) + "]");
    }
    lv.shrinkage = number(k + "shrinkage");
    lv.dropped = int64_t(number(k + "dropped"));
    if (f.metadata.count(k + "chi2_threshold")) m.chi2_thresholds.push_back(number(k + "chi2_threshold"));
    m.levels.push_back(std::move(lv));
  }
  for (const auto& [key, value] : f.metadata)
    if (key.rfind("info.", 0) == 0) m.info[key.substr(5)] = value;
  return m;
}

}  // namespace normad::models
