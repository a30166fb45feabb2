// normad batch normalisation: training (batch statistics, optionally per row group), evaluation
// (running statistics) and the training-mode backward (see tensor/ops.h).
// Math: per group g and channel c over its M = Q*H*W values: mu = mean(x), var = mean((x - mu)^2)
// (biased), xhat = (x - mu) / sqrt(var + eps), y = gamma xhat + beta;
// dx = invstd / M * (M dy - sum(dy) - xhat sum(dy xhat)) with dy = gamma dout.
// Tested by tests/test_batchnorm.cpp (grouped = per-group loop, finite differences) and
// tests/test_parity.cpp (PyTorch F.batch_norm).
//
// Shapes: x [N, C] or [N, C, H, W]; S = H*W (1 for [N, C]); G groups of Q = N / G rows.
#include <cmath>

#include "tensor/ops.h"
#include "tensor/parallel.h"

namespace normad {

namespace {

struct BnShape {
  int64_t N, C, S;
};

BnShape bn_shape(const Tensor& x, const char* what) {
  check(x.dim() == 2 || x.dim() == 4, what,
        "expects [N, C] or [N, C, H, W], got " + shape_str(x.shape()));
  BnShape s{x.size(0), x.size(1), x.dim() == 4 ? x.size(2) * x.size(3) : 1};
  return s;
}

void check_channel_vec(const Tensor& t, int64_t C, const char* what, const char* name) {
  if (t.defined())
    check(t.numel() == C, what,
          std::string(name) + " has shape " + shape_str(t.shape()) + ", expected [" +
              std::to_string(C) + "]");
}

}  // namespace

Tensor batch_norm_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                        int64_t groups, BatchNormSaved* saved, Tensor* running_mean,
                        Tensor* running_var, float momentum) {
  const char* what = "batch_norm";
  auto [N, C, S] = bn_shape(x, what);
  check(groups >= 1 && N % groups == 0, what,
        std::to_string(N) + " rows of " + shape_str(x.shape()) + " do not split into " +
            std::to_string(groups) + " equal groups");
  check_channel_vec(gamma, C, what, "weight");
  check_channel_vec(beta, C, what, "bias");
  const int64_t G = groups, Q = N / G, M = Q * S;
  check(M > 1 || running_var == nullptr, what,
        "needs more than one value per channel in training mode, got " + shape_str(x.shape()));
  Tensor mean({G, C}), invstd({G, C}), var({G, C});
  const float* px = x.data();
  // Statistics, one (g, c) per task; two passes in double for accuracy.
  parallel_for(G * C, 1, [&](int64_t b, int64_t e) {
    for (int64_t gc = b; gc < e; ++gc) {
      const int64_t g = gc / C, c = gc % C;
      double s = 0;
      for (int64_t n = g * Q; n < (g + 1) * Q; ++n) {
        const float* row = px + (n * C + c) * S;
        for (int64_t k = 0; k < S; ++k) s += row[k];
      }
      const double mu = s / M;
      double ss = 0;
      for (int64_t n = g * Q; n < (g + 1) * Q; ++n) {
        const float* row = px + (n * C + c) * S;
        for (int64_t k = 0; k < S; ++k) ss += (row[k] - mu) * (row[k] - mu);
      }
      const double v = ss / M;  // biased variance normalises
      mean.data()[gc] = static_cast<float>(mu);
      var.data()[gc] = static_cast<float>(v);
      invstd.data()[gc] = static_cast<float>(1.0 / std::sqrt(v + eps));
    }
  });
  // Normalise: y = (x - mu) * invstd * gamma + beta, one (n, c) plane per task.
  Tensor y(x.shape());
  parallel_for(N * C, std::max<int64_t>(1, 4096 / S), [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc) {
      const int64_t n = nc / C, c = nc % C, gc = (n / Q) * C + c;
      const float scale = invstd.data()[gc] * (gamma.defined() ? gamma.data()[c] : 1.f);
      const float shift = (beta.defined() ? beta.data()[c] : 0.f) - mean.data()[gc] * scale;
      const float* xi = px + nc * S;
      float* yi = y.data() + nc * S;
      for (int64_t k = 0; k < S; ++k) yi[k] = xi[k] * scale + shift;
    }
  });
  // Running statistics (PyTorch: unbiased variance); groups' statistics are averaged, which is
  // what one update with the mean group statistics gives (a per-group loop would instead apply
  // G successive momentum updates; ACR scores with batch statistics, so it never reads these).
  if (running_mean || running_var) {
    const double unbias = M > 1 ? double(M) / (M - 1) : 1.0;
    for (int64_t c = 0; c < C; ++c) {
      double mu = 0, v = 0;
      for (int64_t g = 0; g < G; ++g) mu += mean.data()[g * C + c], v += var.data()[g * C + c];
      mu /= G;
      v = v / G * unbias;
      if (running_mean) {
        float& r = running_mean->data()[c];
        r = static_cast<float>((1 - momentum) * r + momentum * mu);
      }
      if (running_var) {
        float& r = running_var->data()[c];
        r = static_cast<float>((1 - momentum) * r + momentum * v);
      }
    }
  }
  if (saved) *saved = BatchNormSaved{mean, invstd};
  return y;
}

Tensor batch_norm_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                       const Tensor& running_mean, const Tensor& running_var, float eps) {
  const char* what = "batch_norm (eval)";
  auto [N, C, S] = bn_shape(x, what);
  check_channel_vec(gamma, C, what, "weight");
  check_channel_vec(beta, C, what, "bias");
  check(running_mean.defined() && running_var.defined(), what, "running statistics missing");
  check_channel_vec(running_mean, C, what, "running_mean");
  check_channel_vec(running_var, C, what, "running_var");
  Tensor y(x.shape());
  parallel_for(N * C, std::max<int64_t>(1, 4096 / S), [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc) {
      const int64_t c = nc % C;
      const float inv = 1.f / std::sqrt(running_var.data()[c] + eps);
      const float scale = inv * (gamma.defined() ? gamma.data()[c] : 1.f);
      const float shift = (beta.defined() ? beta.data()[c] : 0.f) - running_mean.data()[c] * scale;
      const float* xi = x.data() + nc * S;
      float* yi = y.data() + nc * S;
      for (int64_t k = 0; k < S; ++k) yi[k] = xi[k] * scale + shift;
    }
  });
  return y;
}

Tensor batch_norm_backward(const Tensor& dout, const Tensor& x, const Tensor& gamma,
                           const BatchNormSaved& saved, int64_t groups, Tensor* dgamma,
                           Tensor* dbeta) {
  const char* what = "batch_norm_backward";
  auto [N, C, S] = bn_shape(x, what);
  check(dout.shape() == x.shape(), what,
        "gradient " + shape_str(dout.shape()) + " does not match input " + shape_str(x.shape()));
  const int64_t G = groups, Q = N / G, M = Q * S;
  // Per (g, c): sum(dout) and sum(dout * xhat), in double.
  Tensor sdy({G, C}), sdyx({G, C});
  parallel_for(G * C, 1, [&](int64_t b, int64_t e) {
    for (int64_t gc = b; gc < e; ++gc) {
      const int64_t g = gc / C, c = gc % C;
      const float mu = saved.mean.data()[gc], inv = saved.invstd.data()[gc];
      double a = 0, bx = 0;
      for (int64_t n = g * Q; n < (g + 1) * Q; ++n) {
        const float* xi = x.data() + (n * C + c) * S;
        const float* di = dout.data() + (n * C + c) * S;
        for (int64_t k = 0; k < S; ++k) a += di[k], bx += double(di[k]) * (xi[k] - mu) * inv;
      }
      sdy.data()[gc] = static_cast<float>(a);
      sdyx.data()[gc] = static_cast<float>(bx);
    }
  });
  // dx = gamma invstd / M * (M dout - sum(dout) - xhat sum(dout xhat)).
  Tensor dx(x.shape());
  parallel_for(N * C, std::max<int64_t>(1, 4096 / S), [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc) {
      const int64_t n = nc / C, c = nc % C, gc = (n / Q) * C + c;
      const float mu = saved.mean.data()[gc], inv = saved.invstd.data()[gc];
      const float k1 = (gamma.defined() ? gamma.data()[c] : 1.f) * inv / M;
      const float a = sdy.data()[gc], bx = sdyx.data()[gc];
      const float* xi = x.data() + nc * S;
      const float* di = dout.data() + nc * S;
      float* o = dx.data() + nc * S;
      for (int64_t k = 0; k < S; ++k) o[k] = k1 * (M * di[k] - a - (xi[k] - mu) * inv * bx);
    }
  });
  // Parameter gradients sum over the groups.
  if (dgamma || dbeta) {
    Tensor dg({C}), db({C});
    for (int64_t c = 0; c < C; ++c) {
      double sg = 0, sb = 0;
      for (int64_t g = 0; g < G; ++g) sg += sdyx.data()[g * C + c], sb += sdy.data()[g * C + c];
      dg.data()[c] = static_cast<float>(sg);
      db.data()[c] = static_cast<float>(sb);
    }
    if (dgamma) *dgamma = dg;
    if (dbeta) *dbeta = db;
  }
  return dx;
}

}  // namespace normad
