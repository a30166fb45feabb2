// normad reductions: sum, mean, max, logsumexp over dims (see tensor/ops.h).
// Math: a dim is reduced by viewing the tensor as [outer, R, inner] and folding R; sums accumulate
// in double, so results do not depend on the order of parallel chunks.
// Tested by tests/test_ops.cpp (closed forms) and tests/test_grad.cpp.
#include <algorithm>
#include <cmath>
#include <limits>

#include "tensor/cpu.h"
#include "tensor/parallel.h"

namespace normad::cpu {

namespace {

// Reduces one dim (kept as size 1). Each output element is computed by exactly one task.
Tensor sum_one(const Tensor& a, int64_t d) {
  DimSplit p = split_at(a.shape(), d);
  Shape os = a.shape();
  os[d] = 1;
  Tensor out(os);
  const float* x = a.data();
  float* y = out.data();
  if (p.inner == 1) {
    // Contiguous rows: one dot-like loop per output.
    parallel_for(p.outer, std::max<int64_t>(1, 16384 / std::max<int64_t>(p.r, 1)),
                 [&](int64_t o0, int64_t o1) {
                   for (int64_t o = o0; o < o1; ++o) {
                     double s = 0;
                     const float* row = x + o * p.r;
                     for (int64_t k = 0; k < p.r; ++k) s += row[k];
                     y[o] = static_cast<float>(s);
                   }
                 });
    return out;
  }
  // Strided: per (outer index, block of up to 32 inner columns), the block's columns accumulate
  // over the R rows in order into doubles. A task per outer index alone left a bias gradient's
  // [2048, 570] -> [570] (outer 1) on one thread; each output is still one task's sum in row order.
  constexpr int64_t kColumns = 32;
  const int64_t col_blocks = (p.inner + kColumns - 1) / kColumns;
  parallel_for(p.outer * col_blocks, std::max<int64_t>(1, 16384 / (kColumns * std::max<int64_t>(p.r, 1))),
               [&](int64_t t0, int64_t t1) {
                 double acc[kColumns];
                 for (int64_t t = t0; t < t1; ++t) {
                   const int64_t o = t / col_blocks, i0 = t % col_blocks * kColumns;
                   const int64_t m = std::min(kColumns, p.inner - i0);
                   std::fill(acc, acc + kColumns, 0.0);
                   const float* col = x + o * p.r * p.inner + i0;
                   if (m == kColumns)  // a fixed width: the adds unrolled into vectors of doubles
                     for (int64_t k = 0; k < p.r; ++k)
                       for (int64_t i = 0; i < kColumns; ++i) acc[i] += col[k * p.inner + i];
                   else
                     for (int64_t k = 0; k < p.r; ++k)
                       for (int64_t i = 0; i < m; ++i) acc[i] += col[k * p.inner + i];
                   for (int64_t i = 0; i < m; ++i) y[o * p.inner + i0 + i] = static_cast<float>(acc[i]);
                 }
               });
  return out;
}

// Sums over every dim but `keep` ([A, C, B] -> [C]: a convolution's bias gradient, the sum of dy
// over N, H and W) in one pass, where one dim at a time folded W first: a chain of dependent
// double adds per 14-float row (4.7 ms for the Omniglot net's [960, 64, 14, 14]; this pass 1.55 ms,
// one core). out[c] = sum over a of the B values of x[a, c, :], each added into lane b mod 16 of 16
// double sums (vector adds), the lanes then added in lane order: each c summed by one task, so the bits do
// not depend on the thread count.
Tensor sum_all_but(const Tensor& x, int64_t keep) {
  const Shape& s = x.shape();
  int64_t A = 1, B = 1;
  for (int64_t i = 0; i < keep; ++i) A *= s[i];
  for (int64_t i = keep + 1; i < x.dim(); ++i) B *= s[i];
  const int64_t C = s[keep];
  Tensor out({C});
  const float* px = x.data();
  // lanes 0-7 and 8-15 as two vectors of 8 doubles (GCC kept a double[16] in memory, one scalar
  // add at a time: no faster than the dim-by-dim passes)
  typedef float f8 __attribute__((vector_size(8 * sizeof(float)), aligned(sizeof(float))));
  typedef double d8 __attribute__((vector_size(8 * sizeof(double))));
  // A task's channels walked in memory order (a, then c; each channel's lanes in `acc`): channel by
  // channel, the rows 784 B long and 50 KB apart, the read ran at a third of the sequential rate.
  // Each channel still adds its rows in order of a, so the bits do not depend on the split.
  // Channels per task: about 16K values each (grain 1 made a loss's [128, 32] row sums 128 tasks),
  // and at least a thread's share: a task of one channel read 784 B rows 50 KB apart, so on two
  // threads the Omniglot [960, 64, 14, 14] took 2.4 ms against 2.1 on one (Zen 4); a thread's
  // block of channels reads each sample's block in one run.
  const int64_t per_task = std::max<int64_t>(16384 / std::max<int64_t>(A * B, 1), thread_share(C));
  parallel_for(C, std::max<int64_t>(1, per_task), [&](int64_t c0, int64_t c1) {
    std::vector<d8> acc(2 * (c1 - c0), d8{});
    for (int64_t a = 0; a < A; ++a)
      for (int64_t c = c0; c < c1; ++c) {
        const float* row = px + (a * C + c) * B;
        d8 lo = acc[2 * (c - c0)], hi = acc[2 * (c - c0) + 1];
        int64_t b = 0;
        for (; b + 16 <= B; b += 16) {
          lo += __builtin_convertvector(*reinterpret_cast<const f8*>(row + b), d8);
          hi += __builtin_convertvector(*reinterpret_cast<const f8*>(row + b + 8), d8);
        }
        if (b < B) {  // the row's last B - b values into lanes 0 .. B - b - 1, zeros in the rest
          float tail[16] = {};
          std::copy(row + b, row + B, tail);
          lo += __builtin_convertvector(*reinterpret_cast<const f8*>(tail), d8);
          hi += __builtin_convertvector(*reinterpret_cast<const f8*>(tail + 8), d8);
        }
        acc[2 * (c - c0)] = lo;
        acc[2 * (c - c0) + 1] = hi;
      }
    for (int64_t c = c0; c < c1; ++c) {
      double total = 0;
      for (int l = 0; l < 8; ++l) total += acc[2 * (c - c0)][l];
      for (int l = 0; l < 8; ++l) total += acc[2 * (c - c0) + 1][l];
      out.data()[c] = static_cast<float>(total);
    }
  });
  return out;
}

}  // namespace

// dims arrive wrapped, sorted and unique (the dispatch in tensor/ops.cpp, or a caller here).
Tensor sum(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  if (a.dim() == 0) return a.clone();
  Tensor t = a;
  // All dims: one flat pass. All but one, over rows of at least 16 values: one pass
  // (sum_all_but). Otherwise one pass per dim, from the last back (indices stay valid).
  int64_t keep = 0, row = 1;  // dims sorted: the first dim not reduced, and the values after it
  while (keep < a.dim() && keep < int64_t(dims.size()) && dims[keep] == keep) ++keep;
  for (int64_t i = keep + 1; i < a.dim(); ++i) row *= a.size(i);
  if (dims.size() == static_cast<size_t>(a.dim())) {
    t = sum_one(a.reshape({a.numel()}), 0);
  } else if (dims.size() + 1 == static_cast<size_t>(a.dim()) && row >= 16) {
    t = sum_all_but(a, keep);
  } else {
    for (auto it = dims.rbegin(); it != dims.rend(); ++it) t = sum_one(t, *it);
  }
  return t.reshape(reduced_shape(a.shape(), dims, keepdim));
}


Tensor max(const Tensor& a, int64_t dim, bool keepdim, Tensor* argmax) {
  DimSplit p = split_at(a.shape(), dim);
  Shape os = a.shape();
  os[dim] = 1;
  Tensor out(os), idx(os);
  const float* x = a.data();
  parallel_for(p.outer * p.inner, 4096, [&](int64_t b, int64_t e) {
    for (int64_t j = b; j < e; ++j) {
      int64_t o = j / p.inner, i = j % p.inner;
      const float* base = x + o * p.r * p.inner + i;
      float best = base[0];
      int64_t bi = 0;
      for (int64_t k = 1; k < p.r; ++k)
        if (base[k * p.inner] > best) best = base[k * p.inner], bi = k;
      out.data()[j] = best;
      idx.data()[j] = static_cast<float>(bi);
    }
  });
  Shape final_shape = reduced_shape(a.shape(), {dim}, keepdim);
  if (argmax) *argmax = idx.reshape(final_shape);
  return out.reshape(final_shape);
}

// Scatters each output gradient to the position of its maximum; dx is 0 elsewhere.
Tensor max_backward(const Tensor& dout, const Tensor& argmax, const Shape& in, int64_t dim) {
  DimSplit p = split_at(in, dim);
  Tensor dx = Tensor::zeros(in);
  const float* g = dout.data();
  const float* idx = argmax.data();
  float* out = dx.data();
  for (int64_t o = 0; o < p.outer; ++o)
    for (int64_t i = 0; i < p.inner; ++i) {
      const int64_t j = o * p.inner + i, k = static_cast<int64_t>(idx[j]);
      out[(o * p.r + k) * p.inner + i] = g[j];
    }
  return dx;
}

// Per output, one pass each for the max and the sum: m = the max over the dim (0 where it is
// infinite: a row of -inf then gives log(0) + 0 = -inf, not (-inf) - (-inf) = NaN), s = the sum in
// double, in order, of exp(x - m) (float exp of the float difference), out = log(float(s)) + m:
// the very float operations of max, sub, exp, sum, log and add composed (its earlier form, 3.3 ms
// per call on ACR-NTL's [2048, 20, 20], a third of it the five intermediate tensors).
Tensor logsumexp(const Tensor& a, int64_t dim, bool keepdim) {
  DimSplit p = split_at(a.shape(), dim);
  Shape os = a.shape();
  os[dim] = 1;
  Tensor out = Tensor::empty(os);
  const float* x = a.data();
  float* y = out.data();
  // The shifted values x - m of up to kBlock values of consecutive outputs (or kBlock values of one
  // long output at a time) go through one exp_floats call (as the exp op computes them; one call
  // per 20-value row cost as much as the scalar exps it replaced), then each output's are added
  // in order of k.
  constexpr int64_t kBlock = 1024;
  const int64_t per_block = std::max<int64_t>(1, kBlock / std::max<int64_t>(p.r, 1));
  parallel_for(p.outer * p.inner, std::max<int64_t>(1, 4096 / std::max<int64_t>(p.r, 1)), [&](int64_t b, int64_t e) {
    float shifted[kBlock];
    float m[kBlock];
    for (int64_t j0 = b; j0 < e; j0 += per_block) {
      const int64_t j1 = std::min(e, j0 + per_block);
      for (int64_t j = j0; j < j1; ++j) {
        const float* base = x + j / p.inner * p.r * p.inner + j % p.inner;
        float mj = base[0];  // as max(): a NaN first stays, a later NaN never wins
        for (int64_t k = 1; k < p.r; ++k)
          if (base[k * p.inner] > mj) mj = base[k * p.inner];
        m[j - j0] = std::isinf(mj) ? 0.f : mj;
      }
      if (p.r <= kBlock) {  // whole rows of the block's outputs, one call
        for (int64_t j = j0; j < j1; ++j) {
          const float* base = x + j / p.inner * p.r * p.inner + j % p.inner;
          for (int64_t k = 0; k < p.r; ++k) shifted[(j - j0) * p.r + k] = base[k * p.inner] - m[j - j0];
        }
        exp_floats(shifted, shifted, (j1 - j0) * p.r);
        for (int64_t j = j0; j < j1; ++j) {
          double s = 0;
          for (int64_t k = 0; k < p.r; ++k) s += shifted[(j - j0) * p.r + k];
          y[j] = std::log(static_cast<float>(s)) + m[j - j0];
        }
      } else {  // one output (per_block is 1), kBlock values at a time
        const float* base = x + j0 / p.inner * p.r * p.inner + j0 % p.inner;
        double s = 0;
        for (int64_t k0 = 0; k0 < p.r; k0 += kBlock) {
          const int64_t kn = std::min(kBlock, p.r - k0);
          for (int64_t k = 0; k < kn; ++k) shifted[k] = base[(k0 + k) * p.inner] - m[0];
          exp_floats(shifted, shifted, kn);
          for (int64_t k = 0; k < kn; ++k) s += shifted[k];
        }
        y[j0] = std::log(static_cast<float>(s)) + m[0];
      }
    }
  });
  return keepdim ? out : out.reshape(reduced_shape(a.shape(), {dim}, false));
}

}  // namespace normad::cpu
