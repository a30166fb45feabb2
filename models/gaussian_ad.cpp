// Gaussian-AD: streaming Ledoit-Wolf Gaussians, PCA / NPCA, Mahalanobis scoring, thresholds and
// the model file (gaussian_ad.md §5-§8). See gaussian_ad.h for the math and the tests.
#include "models/gaussian_ad.h"

#include <algorithm>
#include <boost/math/distributions/chi_squared.hpp>
#include <cmath>
#include <cstdio>

#include "eval/metrics.h"
#include "nn/safetensors.h"
#include "tensor/gemm.h"
#include "tensor/metadata.h"
#include "tensor/parallel.h"

namespace normad::models {

namespace {

constexpr int64_t kRowBlock = 1000;  // rows converted to double at a time
constexpr int64_t kColBlock = 64;    // columns of L⁻¹ per parallel task
constexpr int64_t kSyrkBlock = 128;  // rows of Σ y yᵀ per parallel task
constexpr int64_t kPBlock = 128;     // rows of the precision P = L⁻ᵀ L⁻¹ per parallel task

void require(bool ok, const std::string& msg) { check(ok, "gaussian-ad", msg); }

// An uninitialised [rows, cols] matrix in 2 MiB pages where the kernel allows (tensor/tensor.h):
// the fit's [p, p] matrices are 25 MB at p = 1792, and their 4 KiB page faults took a third of it.
Eigen::MatrixXd big_matrix(int64_t rows, int64_t cols) {
  Eigen::MatrixXd m(rows, cols);
  prefer_huge_pages(m.data(), sizeof(double) * size_t(m.size()));
  return m;
}

Eigen::MatrixXd to_double(const float* rows, int64_t n, int64_t p) {
  using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::MatrixXd m = big_matrix(n, p);
  m = Eigen::Map<const RowMajor>(rows, n, p).cast<double>();
  return m;
}

Tensor to_tensor(const Eigen::MatrixXd& m) {  // [rows, cols] float32, row-major
  Tensor t({m.rows(), m.cols()});
  for (int64_t i = 0; i < m.rows(); ++i)
    for (int64_t j = 0; j < m.cols(); ++j) t.data()[i * m.cols() + j] = float(m(i, j));
  return t;
}

// m's strict upper triangle from its lower one, in 64 x 64 tiles (the strided reads stay in cache);
// a [1792, 1792] matrix is 25 MB, so no copy of it is made.
void mirror_lower(Eigen::MatrixXd& m) {
  const int64_t p = m.rows();
  constexpr int64_t kTile = 64;
  parallel_for((p + kTile - 1) / kTile, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t jb = b0; jb < b1; ++jb)  // columns j of the upper triangle: rows i < j
      for (int64_t i0 = 0; i0 <= jb * kTile; i0 += kTile)
        for (int64_t j = jb * kTile; j < std::min(p, (jb + 1) * kTile); ++j)
          for (int64_t i = i0; i < std::min(j, i0 + kTile); ++i) m(i, j) = m(j, i);
  });
}

Tensor to_tensor(const Eigen::VectorXd& v) {
  Tensor t({v.size()});
  for (int64_t i = 0; i < v.size(); ++i) t.data()[i] = float(v(i));
  return t;
}

}  // namespace

// ---- streaming moments ----

MomentSums::MomentSums(int64_t p)
    : p_(p), s1_(Eigen::VectorXd::Zero(p)), s3_(Eigen::VectorXd::Zero(p)) {
  require(p > 0, "a feature level needs at least one column");
  s2_ = big_matrix(p, p);
  s2_.setZero();
}

void MomentSums::add(const float* rows, int64_t n) {
  for (int64_t b = 0; b < n; b += kRowBlock) {
    const int64_t m = std::min(kRowBlock, n - b);
    Eigen::MatrixXd y = to_double(rows + b * p_, m, p_);  // shifted in place: no second copy
    shift_and_add(y);
  }
}

void MomentSums::add(const Eigen::MatrixXd& rows) {
  require(rows.cols() == p_, "rows have " + std::to_string(rows.cols()) + " columns, the level has " +
                                 std::to_string(p_));
  Eigen::MatrixXd y = rows;
  shift_and_add(y);
}

void MomentSums::shift_and_add(Eigen::MatrixXd& y) {
  if (y.rows() == 0) return;
  if (n_ == 0) shift_ = y.colwise().mean().transpose();
  y.rowwise() -= shift_.transpose();
  add_block(y);
}

void MomentSums::add_block(const Eigen::MatrixXd& y) {
  const Eigen::VectorXd sq = y.rowwise().squaredNorm();  // ||y_i||²
  s1_ += y.colwise().sum().transpose();
  s3_ += y.transpose() * sq;
  s4_ += sq.squaredNorm();
  // Lower triangle of Σ y yᵀ, one row block per task: each entry has one owner, so the sums do
  // not depend on the thread count.
  const int64_t nb = (p_ + kSyrkBlock - 1) / kSyrkBlock;
  // Block j: s2[j:j+w, :j+w] += y[:, j:j+w]ᵀ y[:, :j+w] (the diagonal square whole, its upper half
  // unused), one call of the GEMM engine. By rows rather than columns: the native engine then
  // reads the j + w columns of y in place and transposes only the w of the block (by columns it
  // transposed all p − j: 64 -> 100 GFLOP/s on one Zen 5 core, Eigen 65).
  const int64_t m = y.rows();
  parallel_for(nb, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t j = b * kSyrkBlock, w = std::min(kSyrkBlock, p_ - j);
      const double* yj = y.data() + j * m;  // column j of y (column-major, leading dimension m)
      cpu::gemm_f64(s2_.data() + j, p_, yj, m, y.data(), m, w, j + w, m, /*trans_a=*/true,
                    /*trans_b=*/false, /*accumulate=*/true);
    }
  });
  n_ += y.rows();
}

void MomentSums::all_reduce(Communicator& comm) {
  if (comm.size() == 1) return;
  // The lowest rank with rows gives the common shift.
  std::vector<double> counts(size_t(comm.size()), 0.0);
  counts[size_t(comm.rank())] = double(n_);
  comm.all_reduce_sum(counts.data(), comm.size());
  int root = 0;
  while (root < comm.size() && counts[size_t(root)] == 0) ++root;
  require(root < comm.size(), "no rows were added on any rank");
  Eigen::VectorXd shift = n_ > 0 ? shift_ : Eigen::VectorXd::Zero(p_);
  comm.broadcast(shift.data(), int64_t(sizeof(double)) * p_, root);
  if (n_ > 0) {  // y' = y + d: every sum around the common shift
    const Eigen::VectorXd d = shift_ - shift;
    const double n = double(n_), dd = d.squaredNorm(), s1d = s1_.dot(d), tr = s2_.trace();
    const Eigen::MatrixXd s2 = s2_.selfadjointView<Eigen::Lower>();
    const Eigen::VectorXd s2d = s2 * d;
    s4_ += 4 * d.dot(s2d) + 4 * s3_.dot(d) + 2 * dd * tr + 4 * dd * s1d + n * dd * dd;
    s3_ += 2 * s2d + tr * d + 2 * s1d * d + dd * s1_ + n * dd * d;
    Eigen::MatrixXd s2_new = s2 + s1_ * d.transpose() + d * s1_.transpose() + n * d * d.transpose();
    s2_ = s2_new.triangularView<Eigen::Lower>();
    s1_ += n * d;
  } else {
    s1_.setZero(), s2_.setZero(), s3_.setZero(), s4_ = 0;
  }
  shift_ = shift;
  // One buffer: n, s1, s3, s4, then S2 (lower triangle stored in the full matrix; the rest is 0).
  std::vector<double> buffer;
  buffer.reserve(size_t(3 + 2 * p_ + p_ * p_));
  buffer.push_back(double(n_));
  buffer.insert(buffer.end(), s1_.data(), s1_.data() + p_);
  buffer.insert(buffer.end(), s3_.data(), s3_.data() + p_);
  buffer.push_back(s4_);
  buffer.insert(buffer.end(), s2_.data(), s2_.data() + p_ * p_);
  comm.all_reduce_sum(buffer.data(), int64_t(buffer.size()));
  n_ = int64_t(buffer[0]);
  std::copy_n(buffer.data() + 1, p_, s1_.data());
  std::copy_n(buffer.data() + 1 + p_, p_, s3_.data());
  s4_ = buffer[size_t(1 + 2 * p_)];
  std::copy_n(buffer.data() + 2 + 2 * p_, p_ * p_, s2_.data());
}

Eigen::VectorXd MomentSums::mean() const {
  require(n_ > 0, "no rows were added");
  return shift_ + s1_ / double(n_);
}

Eigen::MatrixXd MomentSums::covariance() const {
  require(n_ > 0, "no rows were added");
  const Eigen::VectorXd mu = s1_ / double(n_);  // mean of y
  // S = S2 / n − μ μᵀ on the lower triangle (one pass over S2, no temporary), then mirrored
  Eigen::MatrixXd s = big_matrix(p_, p_);
  const double n = double(n_);
  parallel_for(p_, 16, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j)
      for (int64_t i = j; i < p_; ++i) s(i, j) = s2_(i, j) / n - mu(i) * mu(j);
  });
  mirror_lower(s);
  return s;
}

LedoitWolf MomentSums::ledoit_wolf() const {
  LedoitWolf lw;
  lw.mean = mean();
  Eigen::MatrixXd s = covariance();  // becomes Σ_LW in place
  const double n = double(n_), p = double(p_);
  lw.scale = s.trace() / p;
  if (p_ == 1) {  // scikit-learn: no shrinkage for a single feature
    lw.covariance = s;
    return lw;
  }
  // Σ_i ||x̃_i||⁴ with x̃ = y − μ_y: expand ||x̃||² = a − 2b + c (a = ||y||², b = yᵀμ_y, c = ||μ_y||²).
  const Eigen::VectorXd mu = s1_ / n;
  const double c = mu.squaredNorm();
  const Eigen::VectorXd s2_mu = s2_.selfadjointView<Eigen::Lower>() * mu;
  const double sum_b2 = mu.dot(s2_mu), sum_ab = s3_.dot(mu), sum_a = s2_.trace();
  const double fourth = s4_ + 4 * sum_b2 - 4 * sum_ab + 2 * c * sum_a - 3 * n * c * c;
  // ||S||_F² and ||S − mI||²_F in one pass (no copy of S), column sums added in column order
  const double m = lw.scale;
  std::vector<double> column_frob(static_cast<size_t>(p_)), column_gap(static_cast<size_t>(p_));
  parallel_for(p_, 16, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
      double f = 0, g = 0;
      for (int64_t i = 0; i < p_; ++i) {
        const double v = s(i, j), d = i == j ? v - m : v;
        f += v * v;
        g += d * d;
      }
      column_frob[size_t(j)] = f;
      column_gap[size_t(j)] = g;
    }
  });
  double frob = 0, gap = 0;
  for (int64_t j = 0; j < p_; ++j) {
    frob += column_frob[size_t(j)];
    gap += column_gap[size_t(j)];
  }
  const double delta = gap / p;  // ||S − mI||²_F / p, never negative
  // β is a sum of squares; the streaming expansion can leave ±1e-16 where it is exactly 0 (n = 2).
  double beta = std::max(0.0, (fourth / n - frob) / (n * p));
  beta = std::min(beta, delta);
  lw.shrinkage = beta == 0 ? 0.0 : beta / delta;  // scikit-learn's rule
  s *= 1 - lw.shrinkage;
  s.diagonal().array() += lw.shrinkage * m;
  lw.covariance = std::move(s);
  return lw;
}

// ---- precision ----

Whitening whitening(const LedoitWolf& lw, double rcond) {
  const Eigen::MatrixXd& cov = lw.covariance;
  const int64_t p = cov.rows();
  Whitening w;
  if (lw.shrinkage > rcond * double(p) && lw.scale > 0) {
    // L: the Cholesky factor, zero above the diagonal (LAPACK's dpotrf under OpenBLAS, else Eigen)
    Eigen::MatrixXd L = big_matrix(p, p);
    L = cov;
    if (cpu::cholesky_f64(L.data(), p)) {
      L.triangularView<Eigen::StrictlyUpper>().setZero();
      // L⁻¹ one column block per task (L X = I[:, j..j+w): rows above j are zero), then P = L⁻ᵀ L⁻¹
      // by tiles (below). Each entry has one owner, so the result does not depend on the thread count.
      const int64_t nb = (p + kColBlock - 1) / kColBlock;
      w.whiten = big_matrix(p, p);  // each task writes its columns whole: zeros above row j, X below
      parallel_for(nb, 1, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t j = b * kColBlock, c = std::min(kColBlock, p - j);
          w.whiten.block(0, j, j, c).setZero();
          auto x = w.whiten.block(j, j, p - j, c);
          x.setIdentity();
          L.bottomRightCorner(p - j, p - j).triangularView<Eigen::Lower>().solveInPlace(x);
        }
      });
      // Lower triangle only: P[r, c] = Σ_{i >= max(r, c)} W[i, r] W[i, c], then mirrored. By row
      // blocks of kPBlock: block r0 is P[r0:r0+h, :r0+h] = W[r0:, r0:r0+h]ᵀ W[r0:, :r0+h], the sum
      // starting at row r0 because W's column r is zero above row r (half the work of summing from
      // row 0), one call of the GEMM engine per block (by rows for the reason of the SYRK above).
      w.precision = big_matrix(p, p);  // every entry of the lower triangle is stored, the rest mirrored
      const int64_t pb = (p + kPBlock - 1) / kPBlock;
      parallel_for(pb, 1, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t r0 = b * kPBlock, h = std::min(kPBlock, p - r0);
          const double* wr = w.whiten.data() + r0 + r0 * p;  // W[r0:, r0:r0+h], leading dimension p
          const double* w0 = w.whiten.data() + r0;           // W[r0:, :r0+h]
          cpu::gemm_f64(w.precision.data() + r0, p, wr, p, w0, p, h, r0 + h, p - r0, /*trans_a=*/true,
                        /*trans_b=*/false, /*accumulate=*/false);
        }
      });
      mirror_lower(w.precision);
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
  const int64_t first = kind == "pca" ? 0 : std::max<int64_t>(c - 1, 0);
  const int64_t last = kind == "pca" ? c : q - 1;
  pr.components.resize(last - first + 1, p);
  for (int64_t j = first; j <= last; ++j)
    pr.components.row(j - first) = eig.eigenvectors().col(p - 1 - j).transpose();
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
  Whitening w = whitening(lw, rcond);  // its matrices move into the level
  lv.reduced = lw.mean.size();
  lv.shrinkage = lw.shrinkage;
  lv.dropped = w.dropped;
  lv.mean = lw.mean;
  lv.precision = std::move(w.precision);
  if (pr) {
    // g = C (x − μ_pca); M = ||W (g − μ_g)|| = ||W C (x − μ_pca − Cᵀ μ_g)|| (C has orthonormal rows).
    lv.dim = pr->components.cols();
    lv.projection = pr->components;
    lv.center = pca_mean + pr->components.transpose() * lw.mean;
    lv.whiten = w.whiten * pr->components;
  } else {
    lv.dim = lv.reduced;
    lv.center = lw.mean;
    lv.whiten = std::move(w.whiten);
    lv.lower = w.cholesky;
  }
  return lv;
}

}  // namespace

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
  // every level checked before any is added: a bad level leaves the fitter as it was
  for (size_t l = 0; l < feats.size(); ++l) {
    const Tensor& f = feats[l];
    require(f.dim() == 2 && f.size(0) == b && f.size(1) == dims_[l],
            "level " + std::to_string(l) + " features have shape " + shape_str(f.shape()) +
                ", expected [" + std::to_string(b) + ", " + std::to_string(dims_[l]) + "]");
  }
  for (size_t l = 0; l < feats.size(); ++l) {
    const Tensor& f = feats[l];
    sums_[l].add(f.data(), b);
    if (!held_.empty()) held_[l].insert(held_[l].end(), f.data(), f.data() + f.numel());
  }
  n_ += b;
}

namespace {

// Rounds a fitted level to float32 values, as GaussianAd::save stores it.
void round_to_float(GaussianLevel& lv) {
  for (Eigen::MatrixXd* m : {&lv.whiten, &lv.precision, &lv.projection})
    *m = m->cast<float>().cast<double>();
  for (Eigen::VectorXd* v : {&lv.center, &lv.mean}) *v = v->cast<float>().cast<double>();
}

}  // namespace

GaussianAd GaussianFitter::finish(Communicator* comm) const {
  // A sharded fit: every rank's sums summed (on copies: finish() leaves the fitter as it was). One
  // process reads its own sums (each level's S2 is 25 MB at p = 1792).
  std::vector<MomentSums> reduced;
  const bool sharded = comm && comm->size() > 1;
  if (sharded) {
    reduced = sums_;
    for (MomentSums& m : reduced) m.all_reduce(*comm);
  }
  const std::vector<MomentSums>& sums = sharded ? reduced : sums_;
  const int64_t n_all = sharded ? sums[0].count() : n_;
  require(n_all >= 1, "no training rows");
  require(n_all >= 2, "need at least 2 training rows for a covariance, got 1");
  GaussianAd model;
  model.options = opt_;
  for (size_t l = 0; l < dims_.size(); ++l) {
    if (held_.empty()) {
      model.levels.push_back(make_level(sums[l].ledoit_wolf(), nullptr, {}, opt_.rcond));
      continue;
    }
    const Eigen::VectorXd mu = sums[l].mean();
    Projection pr = pca_projection(sums[l].covariance(), n_all, opt_.reduction, opt_.variance);
    if (comm && comm->size() > 1) {  // rank 0's components everywhere (another CPU may round them differently)
      int64_t k = pr.components.rows();
      comm->broadcast(&k, sizeof k, 0);
      pr.components.conservativeResize(k, dims_[l]);
      comm->broadcast(pr.components.data(), int64_t(sizeof(double)) * k * dims_[l], 0);
    }
    MomentSums red(pr.components.rows());
    const int64_t p = dims_[l];
    for (int64_t b = 0; b < n_; b += kRowBlock) {  // this rank's rows
      const int64_t m = std::min(kRowBlock, n_ - b);
      const Eigen::MatrixXd xb = to_double(held_[l].data() + b * p, m, p);
      red.add(Eigen::MatrixXd((xb.rowwise() - mu.transpose()) * pr.components.transpose()));
    }
    if (comm) red.all_reduce(*comm);
    model.levels.push_back(make_level(red.ledoit_wolf(), &pr, mu, opt_.rcond));
  }
  for (size_t l = 0; l < model.levels.size(); ++l) {
    require(model.levels[l].whiten.rows() > 0,
            "level " + std::to_string(l) + ": the training features have no variance (all rows equal)");
    round_to_float(model.levels[l]);
  }
  if (comm && comm->size() > 1) {
    // Every rank scores its share with its own copy: the copies must be the same bytes (ranks on
    // CPUs that round differently would not be), else an Error on every rank.
    uint64_t hash = 1469598103934665603ull;  // FNV-1a over every level's matrices
    auto add = [&hash](const double* v, int64_t n) {
      const auto* b = reinterpret_cast<const unsigned char*>(v);
      for (size_t i = 0; i < sizeof(double) * size_t(n); ++i) hash = (hash ^ b[i]) * 1099511628211ull;
    };
    for (const GaussianLevel& lv : model.levels) {
      for (const Eigen::MatrixXd* m : {&lv.whiten, &lv.precision, &lv.projection}) add(m->data(), m->size());
      for (const Eigen::VectorXd* v : {&lv.center, &lv.mean}) add(v->data(), v->size());
    }
    uint64_t first = hash;
    comm->broadcast(&first, sizeof first, 0);
    double differ = first == hash ? 0.0 : 1.0;
    comm->all_reduce_sum(&differ, 1);
    require(differ == 0, "after the sharded fit " + std::to_string(int64_t(differ)) + " of " +
                             std::to_string(comm->size()) +
                             " ranks hold a model that differs from rank 0's (ranks on different CPU types or "
                             "libraries round differently)");
  }
  return model;
}

// ---- scoring ----

namespace {

// One level's distances with the features on their device, in float32: the whitening GEMM
// y [n, k'] = (x - center) W^T and the row norms sqrt(sum_j y_ij^2) as tensor ops, so they run on
// whatever backend holds x (the GPU: one cuBLAS GEMM and a few elementwise and row kernels).
Eigen::VectorXd device_distances(const Tensor& x, const GaussianLevel& lv) {
  const Device d = x.device();
  const Tensor center = to_tensor(lv.center).reshape({1, lv.dim}).to(d);  // [1, p]
  const Tensor whiten = to_tensor(lv.whiten).to(d);                       // [k', p]
  const Tensor y = matmul(sub(x, center), whiten, false, true);             // [n, k']
  const std::vector<float> sq = sum(mul(y, y), {1}).to_vector();            // |y_i|^2, back on the host
  Eigen::VectorXd dist(int64_t(sq.size()));
  for (size_t i = 0; i < sq.size(); ++i) dist(int64_t(i)) = std::sqrt(double(sq[i]));
  return dist;
}

}  // namespace

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
    if (f.device() != Device::CPU) {
      out.col(int64_t(l)) = device_distances(f, lv);
      continue;
    }
    const int64_t nb = (n + kRowBlock - 1) / kRowBlock;
    parallel_for(nb, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t r = b * kRowBlock, m = std::min(kRowBlock, n - r);
        const Eigen::MatrixXd d = to_double(f.data() + r * lv.dim, m, lv.dim).rowwise() -
                                  lv.center.transpose();
        const Eigen::MatrixXd y = lv.lower ? Eigen::MatrixXd(d * lv.whiten.transpose().triangularView<Eigen::Upper>())
                                           : Eigen::MatrixXd(d * lv.whiten.transpose());
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

void GaussianAd::set_thresholds(double f, const std::vector<double>& normal_scores, const std::string& rule) {
  require(f > 0 && f < 1, "fpr must be in (0, 1), got " + std::to_string(f));
  fpr = f;
  chi2_thresholds.clear();
  for (const GaussianLevel& lv : levels)
    chi2_thresholds.push_back(chi2_distance_threshold(lv.whiten.rows(), 1 - f));
  has_threshold = !normal_scores.empty();
  if (has_threshold) threshold = eval::fpr_rule(normal_scores, f, rule);  // throws on a non-finite score
}

double GaussianAd::decision_threshold() const {
  require(has_threshold, "the model has no decision threshold: it needs scores of normal data it was not fitted on");
  return threshold.threshold;
}

// ---- model file ----

namespace {

std::string exact(double v) {  // round-trips a double
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

}  // namespace

void GaussianAd::save(const std::string& path) const {
  require(chi2_thresholds.size() == levels.size() && has_threshold,
          "set the thresholds (with normal scores for the decision threshold) before saving the model");
  std::vector<std::pair<std::string, Tensor>> ts;
  std::map<std::string, std::string> meta;
  for (const auto& [key, value] : info) meta["info." + key] = value;
  meta["model"] = "gaussian-ad";
  meta["levels"] = std::to_string(levels.size());
  meta["reduction"] = options.reduction;
  meta["variance_threshold"] = exact(options.variance);
  meta["rcond"] = exact(options.rcond);
  meta["fpr"] = exact(fpr);
  // decision.threshold labels rows; decision.threshold_rule / _target / _achieved / _rows say where it
  // came from. The per-level chi2_threshold fields are information only.
  for (const auto& [key, value] : threshold.to_metadata("decision.")) meta[key] = value;
  meta["thresholds"] = "decision.threshold sets the labels; levelN.chi2_threshold are information (chi-square assumption)";
  meta["score"] = "mean over levels of the Mahalanobis distance";
  for (size_t l = 0; l < levels.size(); ++l) {
    const GaussianLevel& lv = levels[l];
    const std::string k = "level" + std::to_string(l) + ".";
    ts.emplace_back(k + "center", to_tensor(lv.center));
    ts.emplace_back(k + "whiten", to_tensor(lv.whiten));
    ts.emplace_back(k + "mean", to_tensor(lv.mean));
    ts.emplace_back(k + "precision", to_tensor(lv.precision));
    if (lv.projection.size()) ts.emplace_back(k + "projection", to_tensor(lv.projection));
    meta[k + "shrinkage"] = exact(lv.shrinkage);
    meta[k + "dropped"] = std::to_string(lv.dropped);
    meta[k + "chi2_threshold"] = exact(chi2_thresholds[l]);
  }
  nn::save_safetensors(path, ts, meta);
}

GaussianAd GaussianAd::load(const std::string& path) { return from_file(nn::load_safetensors(path), path); }

GaussianAd GaussianAd::from_file(const nn::Safetensors& f, const std::string& path) {
  // Every field read strictly (tensor/metadata.h): whole, finite, integers within bounds.
  const MetadataReader r(f.metadata, path);
  auto meta = [&](const std::string& key) -> const std::string& { return r.text(key, "not a Gaussian-AD model"); };
  auto number = [&](const std::string& key) { return r.number(key); };
  auto integer = [&](const std::string& key, int64_t lo, int64_t hi) { return r.integer(key, lo, hi); };
  check(meta("model") == "gaussian-ad", path,
        "metadata field 'model' is '" + meta("model") + "', expected 'gaussian-ad'");
  GaussianAd m;
  m.options.reduction = meta("reduction");
  check(m.options.reduction == "none" || m.options.reduction == "pca" || m.options.reduction == "npca", path,
        "metadata field 'reduction' must be none, pca or npca, got '" + m.options.reduction + "'");
  m.options.variance = number("variance_threshold");
  m.options.rcond = number("rcond");
  m.fpr = number("fpr");
  check(m.fpr > 0 && m.fpr < 1, path, "metadata field 'fpr' must be in (0, 1), got " + meta("fpr"));
  // The decision threshold and its rule: a file from before held-out thresholds has none.
  check(f.metadata.count("decision.threshold") > 0, path,
        "metadata field 'decision.threshold' is missing: a model written before normad set its threshold on "
        "held-out normal data; fit it again with mvg fit");
  m.has_threshold = true;
  m.threshold.threshold = number("decision.threshold");
  m.threshold.rule = meta("decision.threshold_rule");
  check(m.threshold.rule == "calibration" || m.threshold.rule == "reference", path,
        "metadata field 'decision.threshold_rule' must be calibration or reference, got '" + m.threshold.rule + "'");
  m.threshold.target = number("decision.threshold_target");
  m.threshold.achieved = number("decision.threshold_achieved");
  check(m.threshold.achieved >= 0 && m.threshold.achieved <= 1, path,
        "metadata field 'decision.threshold_achieved' must be in [0, 1], got " + meta("decision.threshold_achieved"));
  m.threshold.rows = integer("decision.threshold_rows", 1, INT64_MAX);
  if (f.metadata.count("decision.threshold_expected")) m.threshold.expected = number("decision.threshold_expected");
  const int64_t nl = integer("levels", 1, 64);
  auto tensor = [&](const std::string& name, int64_t rank) -> const Tensor& {
    auto it = f.tensors.find(name);
    check(it != f.tensors.end(), path, "tensor '" + name + "' is missing");
    const Tensor& t = it->second;
    check(t.dim() == rank && t.numel() > 0, path,
          "tensor '" + name + "' has shape " + shape_str(t.shape()) + ", expected a non-empty rank-" +
              std::to_string(rank) + " tensor");
    for (int64_t i = 0; i < t.numel(); ++i)
      check(std::isfinite(t.data()[i]), path, "tensor '" + name + "' holds a non-finite value at " + std::to_string(i));
    return t;
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
  auto dims = [](int64_t r, int64_t c) { return "[" + std::to_string(r) + ", " + std::to_string(c) + "]"; };
  for (int64_t l = 0; l < nl; ++l) {
    const std::string k = "level" + std::to_string(l) + ".";
    GaussianLevel lv;
    lv.center = vector(tensor(k + "center", 1));
    lv.whiten = matrix(tensor(k + "whiten", 2));
    lv.mean = vector(tensor(k + "mean", 1));
    lv.precision = matrix(tensor(k + "precision", 2));
    lv.dim = lv.center.size();
    lv.reduced = lv.mean.size();
    lv.lower = lv.whiten.rows() == lv.whiten.cols() && lv.whiten.triangularView<Eigen::StrictlyUpper>().toDenseMatrix().isZero(0);
    check(lv.whiten.cols() == lv.dim && lv.whiten.rows() <= lv.reduced, path,
          "tensor '" + k + "whiten' is " + dims(lv.whiten.rows(), lv.whiten.cols()) + ", expected at most " +
              std::to_string(lv.reduced) + " rows of " + std::to_string(lv.dim) + " ('" + k + "center' and '" + k +
              "mean')");
    check(lv.precision.rows() == lv.reduced && lv.precision.cols() == lv.reduced, path,
          "tensor '" + k + "precision' must be " + dims(lv.reduced, lv.reduced));
    if (f.tensors.count(k + "projection")) {
      lv.projection = matrix(tensor(k + "projection", 2));
      check(lv.projection.rows() == lv.reduced && lv.projection.cols() == lv.dim, path,
            "tensor '" + k + "projection' must be " + dims(lv.reduced, lv.dim));
    }
    check((m.options.reduction != "none") == (lv.projection.size() > 0), path,
          "tensor '" + k + "projection' must be present exactly when the reduction is pca or npca");
    lv.shrinkage = number(k + "shrinkage");
    lv.dropped = integer(k + "dropped", 0, lv.reduced);
    m.chi2_thresholds.push_back(number(k + "chi2_threshold"));
    m.levels.push_back(std::move(lv));
  }
  for (const auto& [key, value] : f.metadata)
    if (key.rfind("info.", 0) == 0) m.info[key.substr(5)] = value;
  return m;
}

}  // namespace normad::models
