// normad backends: one table of function pointers per device (ggml's ggml_backend_i pattern).
// Every function in tensor/ops.h validates its arguments once (shapes, devices, ranges), then calls
// the entry of this table for the device of its inputs. A backend implements the entries it
// supports and leaves the rest null; supports() answers for one Op, and calling an op a backend
// lacks is a normad::Error naming the op, the device and the shapes.
// Backends: cpu (tensor/*.cpp: Eigen, oneTBB, vectorised loops), reference (tensor/reference.cpp:
// plain loops with double accumulation, the specification every other backend is checked
// against) and cuda (cuda/: present when built with nvcc).
// Tested by tests/test_backend_ops.cpp: every Op has at least one case, and every backend present
// is compared with the reference on each (values, finite-difference gradients in double).
// docs/backends.md: how to add an op, how to add a backend.
//
// Entries receive validated arguments: shapes agree, dims are wrapped and in range, every tensor
// is on this backend's device. Each entry allocates its output on its device.
#pragma once

#include <string>
#include <vector>

#include "tensor/ops.h"
#include "tensor/tensor.h"

namespace normad {

// Elementwise ops of one input: out[i] = f(a[i]; p0, p1).
enum class UnaryOp {
  neg, exp, log, sqrt, abs, sign,
  pow,         // a^p0
  clamp,       // min(max(a, p0), p1)
  relu,        // a < 0 ? 0 : a (NaN passes)
  leaky_relu,  // a > 0 ? a : p0 a
  sigmoid, silu,
  add_scalar,  // a + p0
  mul_scalar,  // a p0
  count
};
// Elementwise ops of two inputs with broadcasting: out[i] = f(a[ia], b[ib]; p0, p1).
enum class BinaryOp {
  add, sub, mul, div,
  maximum,              // a >= b ? a : b
  leaky_relu_backward,  // a = dout, b = x: x > 0 ? dout : p0 dout
  clamp_backward,       // a = dout, b = x: p0 <= x <= p1 ? dout : 0
  count
};
const char* unary_op_name(UnaryOp op);
const char* binary_op_name(BinaryOp op);

// Every entry of the table, one name each: the op harness must have a case for each.
// The unary and binary entries are counted per UnaryOp / BinaryOp.
enum class Op {
  unary, binary, expand, fill, copy,
  matmul, bmm, linear,
  sum, max, max_backward, logsumexp,
  permute, concat, slice, slice_add, index_select, index_add,
  conv2d, conv2d_affine_act, conv2d_backward_input, conv2d_backward_weight,
  max_pool2d, max_pool2d_backward, avg_pool2d, avg_pool2d_backward, global_avg_pool,
  upsample_nearest2d, upsample_nearest2d_backward, scale_planes,
  batch_norm_train, batch_norm_eval, batch_norm_backward, batch_norm_fold,
  batch_norm_relu_train, batch_norm_relu_backward, batch_norm_statistics, conv2d_bn_relu_input, conv2d_statistics,
  conv2d_bn_relu_input_backward_weight,
  pairwise_sqdist, pairwise_sqdist_backward, l2_normalize, l2_normalize_backward,
  sgd_step, adam_step, adam_step_multi,
  count
};
const char* op_name(Op op);

struct Backend {
  const char* name;  // "cpu", "reference", "cuda"
  Device device;

  // ---- memory: raw blocks of this device's allocator (the storage layer moves bytes with these) ----
  void (*copy_from_host)(void* dst, const void* host_src, size_t bytes);  // dst on this device
  void (*copy_to_host)(void* host_dst, const void* src, size_t bytes);    // src on this device
  void (*copy)(void* dst, const void* src, size_t bytes);                 // both on this device
  void (*fill)(Tensor& t, float v);

  // ---- elementwise ----
  Tensor (*unary)(UnaryOp op, const Tensor& a, float p0, float p1);
  Tensor (*binary)(BinaryOp op, const Tensor& a, const Tensor& b, float p0, float p1);
  Tensor (*expand)(const Tensor& a, const Shape& shape);   // broadcast a to shape

  // ---- matrix products ----
  Tensor (*matmul)(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b);
  Tensor (*bmm)(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b);
  Tensor (*linear)(const Tensor& x, const Tensor& w, const Tensor& b);  // x w^T + b

  // ---- reductions (dims wrapped, sorted, unique, non-empty) ----
  Tensor (*sum)(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim);
  Tensor (*max)(const Tensor& a, int64_t dim, bool keepdim, Tensor* argmax);
  // dout and argmax shaped like max's keepdim output -> dx shaped in_shape (zeros elsewhere)
  Tensor (*max_backward)(const Tensor& dout, const Tensor& argmax, const Shape& in_shape, int64_t dim);
  Tensor (*logsumexp)(const Tensor& a, int64_t dim, bool keepdim);

  // ---- layout (ranges resolved: 0 <= start <= end <= size) ----
  Tensor (*permute)(const Tensor& a, const std::vector<int64_t>& perm);
  Tensor (*concat)(const std::vector<Tensor>& ts, int64_t dim);
  Tensor (*slice)(const Tensor& a, int64_t dim, int64_t start, int64_t end);
  void (*slice_add)(Tensor& out, const Tensor& g, int64_t dim, int64_t start);
  Tensor (*index_select)(const Tensor& a, const std::vector<int64_t>& idx);
  void (*index_add)(Tensor& out, const std::vector<int64_t>& idx, const Tensor& g);

  // ---- convolution and pooling (NCHW) ----
  Tensor (*conv2d)(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dArgs& a);
  Tensor (*conv2d_affine_act)(const Tensor& x, const Tensor& w, const Tensor& scale,
                              const Tensor& shift, const Conv2dArgs& a, Activation act);
  Tensor (*conv2d_backward_input)(const Tensor& dout, const Tensor& w, const Shape& x_shape,
                                  const Conv2dArgs& a);
  // dbias (may be null): also the bias gradient, dout summed over N, OH, OW
  Tensor (*conv2d_backward_weight)(const Tensor& dout, const Tensor& x, const Shape& w_shape,
                                   const Conv2dArgs& a, Tensor* dbias);
  Tensor (*max_pool2d)(const Tensor& x, const Pool2dArgs& a, Tensor* argmax);
  Tensor (*max_pool2d_backward)(const Tensor& dout, const Tensor& argmax, const Shape& x_shape);
  Tensor (*avg_pool2d)(const Tensor& x, const Pool2dArgs& a);
  Tensor (*avg_pool2d_backward)(const Tensor& dout, const Shape& x_shape, const Pool2dArgs& a);
  Tensor (*global_avg_pool)(const Tensor& x);
  Tensor (*upsample_nearest2d)(const Tensor& x, int64_t scale);
  Tensor (*upsample_nearest2d_backward)(const Tensor& dout, int64_t scale);
  Tensor (*scale_planes)(const Tensor& x, const Tensor& s);

  // ---- batch normalisation ----
  Tensor (*batch_norm_train)(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                             int64_t groups, BatchNormSaved* saved, Tensor* running_mean,
                             Tensor* running_var, float momentum);
  Tensor (*batch_norm_eval)(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                            const Tensor& running_mean, const Tensor& running_var, float eps);
  Tensor (*batch_norm_backward)(const Tensor& dout, const Tensor& x, const Tensor& gamma,
                                const BatchNormSaved& saved, int64_t groups, Tensor* dgamma,
                                Tensor* dbeta);
  void (*batch_norm_fold)(const Tensor& gamma, const Tensor& beta, const Tensor& bias,
                          const Tensor& running_mean, const Tensor& running_var, float eps,
                          Tensor* scale, Tensor* shift);
  Tensor (*batch_norm_relu_train)(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                  float eps, int64_t groups, float slope, BatchNormSaved* saved,
                                  Tensor* running_mean, Tensor* running_var, float momentum);
  Tensor (*batch_norm_relu_backward)(const Tensor& dout, const Tensor& x, const Tensor& gamma,
                                     const Tensor& beta, const BatchNormSaved& saved,
                                     int64_t groups, float slope, Tensor* dgamma, Tensor* dbeta);
  BatchNormSaved (*batch_norm_statistics)(const Tensor& x, float eps, int64_t groups, Tensor* running_mean,
                                          Tensor* running_var, float momentum);
  Tensor (*conv2d_bn_relu_input)(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                 const BatchNormSaved& saved, int64_t groups, const Tensor& w, const Tensor& b,
                                 const Conv2dArgs& a);
  Tensor (*conv2d_statistics)(const Tensor& x, const BnReluInput* in, const Tensor& w, const Tensor& b,
                              const Conv2dArgs& a, float eps, int64_t groups, Tensor* running_mean,
                              Tensor* running_var, float momentum, BatchNormSaved* stats);
  Tensor (*conv2d_bn_relu_input_backward_weight)(const Tensor& dout, const Tensor& x, const Tensor& gamma,
                                                 const Tensor& beta, const BatchNormSaved& saved, int64_t groups,
                                                 const Shape& w_shape, const Conv2dArgs& a, Tensor* dbias);

  // ---- distances ----
  Tensor (*pairwise_sqdist)(const Tensor& a, const Tensor& b);
  void (*pairwise_sqdist_backward)(const Tensor& dout, const Tensor& a, const Tensor& b,
                                   const Tensor& dist, Tensor* da, Tensor* db);
  Tensor (*l2_normalize)(const Tensor& a, float eps);
  Tensor (*l2_normalize_backward)(const Tensor& dout, const Tensor& x, const Tensor& y, float eps);

  // ---- optimisers (in place on w and the state) ----
  void (*sgd_step)(Tensor& w, const Tensor& g, Tensor& velocity, const SgdParams& p);
  void (*adam_step)(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, const AdamParams& p);
  // every slot with its own step (p.step unused); all slots validated and on this device
  void (*adam_step_multi)(const std::vector<AdamSlot>& slots, const AdamParams& p);
};

// adam_step_multi as a loop of a backend's adam_step over the slots, each with its own step: the
// CPU and reference entries (the CPU's values stay those of one adam_step per parameter).
void adam_step_each(void (*adam_step)(Tensor&, const Tensor&, Tensor&, Tensor&, const AdamParams&),
                    const std::vector<AdamSlot>& slots, const AdamParams& p);

// The backend that runs ops on `d`; throws when it is not available (CUDA without a GPU).
const Backend& backend_for(Device d);
// Whether `d` can be used here (CPU and Reference always; CUDA when compiled and a GPU is found).
bool device_available(Device d);
// Why `d` is unavailable ("" when it is): for skip messages.
std::string device_unavailable_reason(Device d);
// TF32 matrix products on CUDA (cuBLAS's CUBLAS_TF32_TENSOR_OP_MATH: operands rounded to a 10-bit
// mantissa inside the tensor cores, about 1e-3 relative error, several times the fp32 speed). Off by
// default: full fp32, as CPU results. Set by `normad --tf32`; read by cuda/matmul.cpp per product.
void set_allow_tf32(bool on);
bool allow_tf32();
// The CPU's GEMM engine and why (tensor/gemm.h), e.g. "openblas (Cooperlake)" or "eigen (OpenBLAS
// has generic Prescott kernels here)": products round differently under each, so results that
// depend on them (a model trained on a small table) name it. Printed by `normad --version`.
std::string cpu_gemm_engine();
// Whether backend `b` implements op (for unary/binary: every UnaryOp/BinaryOp).
bool supports(const Backend& b, Op op);

// The built-in backends (backend_for picks among them).
const Backend& cpu_backend();
const Backend& reference_backend();
// nullptr when normad was built without CUDA (tensor/backend.cpp's stubs); cuda/backend.cpp
// otherwise (still nullptr at run time when no GPU is found: see device_unavailable_reason).
const Backend* cuda_backend();
Allocator* cuda_allocator();
// The CUDA table itself whether or not a GPU is present (nullptr when built without CUDA): for the
// test that every entry is set (tests/test_cuda.cpp). Never call its entries without a GPU.
const Backend* cuda_backend_table();
// Why CUDA cannot be used here, "" when it can (cuda/backend.cpp; the stub says "built without CUDA").
std::string cuda_unavailable_reason();
// Waits for every CUDA op queued so far (a no-op without CUDA or a GPU): the profiler's per-op times.
void cuda_synchronize();

}  // namespace normad
