// Tests of the CUDA backend's own parts (cuda/): the caching pool, device detection, checked calls,
// the kernel bodies run on the host, and on a GPU the allocator, copies and cuBLAS products.
// Math: each body, compiled by g++ and run on the host, is compared with the CPU backend on the same
// arrays (bit for bit where the order of operations is the CPU's; sum v2, whose order differs, at
// 1e-6 relative). That checks index math and formulas; on a GPU the CUDA math library (expf, logf,
// powf within 2 ulp) and nvcc's FMA fusion can move the last bit, which the op harness allows.
// Tags: [cuda_detect] runs on any machine (the caching pool: tests/test_caching_pool.cpp); [cuda_body] and [cuda_check] need a build
// with nvcc but no GPU; [cuda] needs a GPU and otherwise prints "SKIPPED: <reason>" (ctest lists it
// as skipped). Every op's values on a GPU against the reference backend: tests/test_backend_ops.cpp.
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "helpers.h"
#include "tensor/backend.h"

#ifdef NORMAD_HAS_CUDA
#include "cuda/check.h"
#include "cuda/cublas.h"
#include "cuda/elementwise.cuh"
#include "cuda/layout.cuh"
#include "cuda/optim.cuh"
#include "cuda/plan.h"
#include "cuda/reduce.cuh"
#endif

using namespace normad;

// ---- detection: runs everywhere; without a GPU (or without CUDA in the build) it must explain ----

TEST_CASE("cuda: detection never throws and, without a GPU, says why in one line", "[cuda_detect]") {
  const Backend* be = nullptr;
  std::string why;
  REQUIRE_NOTHROW(be = cuda_backend());
  REQUIRE_NOTHROW(why = cuda_unavailable_reason());
  CHECK(device_available(Device::CUDA) == (be != nullptr));
  if (be) {
    CHECK(why.empty());
    CHECK(cuda_allocator() != nullptr);
    CHECK(be->device == Device::CUDA);
    return;
  }
  INFO("reason: " << why);
  CHECK(!why.empty());
  CHECK(why.find('\n') == std::string::npos);
  CHECK(cuda_allocator() == nullptr);
  // Making a CUDA tensor is then an error, not a crash.
  CHECK_THROWS_AS(Tensor::empty({2}, Device::CUDA), Error);
}

#ifdef NORMAD_HAS_CUDA

// ---- the table: every op has a CUDA entry (checked without a GPU: the table is plain data) ----

TEST_CASE("cuda: the CUDA table sets every entry of the backend", "[cuda_body]") {
  const Backend* table = cuda_backend_table();
  REQUIRE(table != nullptr);
  CHECK(table->device == Device::CUDA);
  std::string missing;
  for (int k = 0; k < int(Op::count); ++k)
    if (!supports(*table, Op(k))) missing += std::string(" ") + op_name(Op(k));
  INFO("entries left null:" << missing);
  CHECK(missing.empty());
}

// ---- checked calls: these calls fail on every machine (no driver, or an invalid argument) ----

// Whether a library whose file name contains `name` is mapped into this process.
bool mapped(const std::string& name) {
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);)
    if (line.find(name) != std::string::npos) return true;
  return false;
}

// Read during static initialisation, before any test: the linked libraries are mapped by then.
const bool cublas_mapped_at_start = mapped("libcublas");

TEST_CASE("cuda: cuBLAS opens on first use, not at start", "[cuda_check]") {
  // libcublas (216 MiB resident when linked) must not come with the program: a build linking it
  // fails this. It is opened by the first product on a GPU, or here.
  CHECK_FALSE(cublas_mapped_at_start);
  const cuda::CublasApi& api = cuda::cublas_api();
  CHECK(mapped("libcublas.so"));
  CHECK(api.create != nullptr);
  CHECK(api.set_stream != nullptr);
  CHECK(api.set_math_mode != nullptr);
  CHECK(api.sgemm != nullptr);
  CHECK(api.sgemm_strided_batched != nullptr);
  // the resolved entry points are the library's: a table look-up that needs no GPU
  CHECK(std::string(api.status_name(CUBLAS_STATUS_NOT_INITIALIZED)) == "CUBLAS_STATUS_NOT_INITIALIZED");
  CHECK(std::string(api.status_string(CUBLAS_STATUS_SUCCESS)).size() > 0);
}

TEST_CASE("cuda: a failing checked call is a normad::Error with the call, the error, file and line",
          "[cuda_check]") {
  std::string msg;
  const int line = __LINE__ + 2;
  try {
    NORMAD_CUDA_CHECK(cudaSetDevice(1 << 20));
  } catch (const Error& e) {
    msg = e.what();
  }
  INFO(msg);
  CHECK(msg.find("CUDA call cudaSetDevice(1 << 20) failed: cudaError") != std::string::npos);
  CHECK(msg.find("test_cuda.cpp:" + std::to_string(line)) != std::string::npos);
  // The runtime's last error was reset, so a later launch check does not repeat it (without a
  // driver every runtime call keeps failing, so this holds only with a GPU).
  if (cuda_backend()) CHECK(cudaGetLastError() == cudaSuccess);

  const int line2 = __LINE__ + 2;
  try {
    NORMAD_CUBLAS_CHECK(cuda::cublas_api().set_stream(nullptr, nullptr));  // a null handle
  } catch (const Error& e) {
    msg = e.what();
  }
  INFO(msg);
  CHECK(msg.find("cuBLAS call cuda::cublas_api().set_stream(nullptr, nullptr) failed: CUBLAS_STATUS_NOT_INITIALIZED") !=
        std::string::npos);
  CHECK(msg.find("test_cuda.cpp:" + std::to_string(line2)) != std::string::npos);
}

// ---- kernel bodies on the host: index math and formulas against the CPU backend ----

namespace {

// Runs a body over n elements as the grid-stride kernel would (any order gives the same result:
// each element is written by one call).
template <class Body>
void run_on_host(int64_t n, const Body& body) {
  for (int64_t i = 0; i < n; ++i) body(i);
}

// Bitwise equality with NaN == NaN, printing the first differences.
void expect_same(const Tensor& got, const Tensor& ref, const std::string& what) {
  REQUIRE(got.shape() == ref.shape());
  int bad = 0;
  std::string report;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const float g = got.data()[i], r = ref.data()[i];
    const bool same = (std::isnan(g) && std::isnan(r)) || g == r;
    if (!same && bad++ < 5) report += "  [" + std::to_string(i) + "] got " + std::to_string(g) + " ref " + std::to_string(r) + "\n";
  }
  INFO(what << ": " << bad << " of " << got.numel() << " differ\n" << report);
  CHECK(bad == 0);
}

// Normal values with the awkward ones sprinkled in: 0, -0, +-inf, NaN, ties.
Tensor awkward(const Shape& s, uint64_t seed) {
  Generator g(seed);
  Tensor t = g.normal(s, 0.f, 2.f);
  const float specials[] = {0.f, -0.f, INFINITY, -INFINITY, NAN, 1.f, 1.f};
  for (int64_t i = 0; i < t.numel(); i += 5) t.data()[i] = specials[(i / 5) % 7];
  return t;
}

}  // namespace

TEST_CASE("cuda body: every unary op matches the CPU bit for bit", "[cuda_body]") {
  const Tensor a = awkward({3, 37}, 1);
  for (int k = 0; k < int(UnaryOp::count); ++k) {
    const UnaryOp op = UnaryOp(k);
    // (p0, p1): pow both squares (exact) and a general power; clamp a finite range.
    for (auto [p0, p1] : {std::pair{2.f, 0.f}, std::pair{1.5f, 0.f}, std::pair{-0.5f, 0.75f}}) {
      if (op == UnaryOp::clamp && p0 > p1) continue;
      const Tensor ref = cpu_backend().unary(op, a, p0, p1);
      Tensor got = Tensor::empty(a.shape());
      run_on_host(a.numel(), cuda::UnaryBody{got.data(), a.data(), op, p0, p1});
      expect_same(got, ref, std::string(unary_op_name(op)) + " p0 " + std::to_string(p0));
    }
  }
}

TEST_CASE("cuda body: every binary op with broadcasting matches the CPU bit for bit", "[cuda_body]") {
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{2, 3, 4}, {2, 3, 4}}, {{2, 3, 4}, {4}}, {{2, 3, 4}, {3, 1}}, {{2, 1, 4}, {1, 3, 1}},
      {{5}, {}}, {{}, {3, 2}}, {{1, 3, 1, 5}, {2, 1, 4, 1}}, {{2, 3, 1, 1, 2, 1, 2, 3, 2}, {3, 2, 1, 2, 3, 1}}};
  for (auto& [sa, sb] : shapes) {
    const Tensor a = awkward(sa, 2), b = awkward(sb, 3);
    const Shape os = broadcast_shape(sa, sb);
    const cuda::StridedIndex idx = cuda::broadcast_index(os, sa, sb, "test");
    for (int k = 0; k < int(BinaryOp::count); ++k) {
      const BinaryOp op = BinaryOp(k);
      const Tensor ref = cpu_backend().binary(op, a, b, 0.25f, 0.5f);
      Tensor got = Tensor::empty(os);
      run_on_host(got.numel(), cuda::BinaryBody{got.data(), a.data(), b.data(), idx, op, 0.25f, 0.5f});
      expect_same(got, ref, std::string(binary_op_name(op)) + " " + shape_str(sa) + " with " + shape_str(sb));
    }
  }
}

TEST_CASE("cuda plan: dims merge only where every operand walks them as one", "[cuda_body]") {
  // a [2, 3, 4] + b [4]: the first two dims merge (contiguous in a, broadcast in b), the last not.
  cuda::StridedIndex idx = cuda::broadcast_index({2, 3, 4}, {2, 3, 4}, {4}, "test");
  REQUIRE(idx.rank == 2);
  CHECK(idx.size[0] == 6);
  CHECK(idx.size[1] == 4);
  CHECK(idx.stride_a[0] == 4);
  CHECK(idx.stride_b[0] == 0);
  CHECK(idx.stride_b[1] == 1);
  // Same shapes: one flat dim.
  CHECK(cuda::broadcast_index({2, 3, 4}, {2, 3, 4}, {2, 3, 4}, "test").rank == 1);
  // More than kMaxDims dims that cannot merge is an error naming the op.
  Shape out(10, 2), a(10, 2), b(10, 1);
  for (size_t d = 0; d < b.size(); d += 2) b[d] = 2;
  CHECK_THROWS_WITH(cuda::broadcast_index(out, a, b, "add"), Catch::Contains("add"));
}

TEST_CASE("cuda body: expand and permute gathers match the CPU", "[cuda_body]") {
  const Tensor a = awkward({3, 1, 4}, 4);
  const Shape to{2, 3, 5, 4};
  Tensor got = Tensor::empty(to);
  run_on_host(got.numel(), cuda::GatherBody{got.data(), a.data(), cuda::broadcast_index(to, a.shape(), {}, "expand")});
  expect_same(got, expand_to(a, to), "expand");

  const Tensor x = awkward({2, 3, 4, 5}, 5);
  for (const std::vector<int64_t>& perm : std::vector<std::vector<int64_t>>{
           {0, 1, 2, 3}, {3, 2, 1, 0}, {0, 2, 1, 3}, {1, 0, 3, 2}, {2, 3, 0, 1}}) {
    const Tensor ref = permute(x, perm);
    Tensor out = Tensor::empty(ref.shape());
    run_on_host(out.numel(), cuda::GatherBody{out.data(), x.data(), cuda::permute_index(x.shape(), perm)});
    expect_same(out, ref, "permute " + shape_str(Shape(perm.begin(), perm.end())));
  }
}

TEST_CASE("cuda body: sum v1 equals the CPU, v2 within 1e-6", "[cuda_body]") {
  // [outer, R, inner] views, including R long enough for several v2 chunks and R = 0.
  const std::vector<std::pair<Shape, int64_t>> cases = {
      {{4, 7, 3}, 1}, {{4, 7, 3}, 0}, {{4, 7, 3}, 2}, {{3, 2500, 2}, 1}, {{5000}, 0}, {{2, 0, 3}, 1}};
  for (auto& [s, dim] : cases) {
    Generator g(6);
    const Tensor a = g.normal(s);
    const Tensor ref = sum(a, {dim}, true);
    int64_t inner = 1;
    for (size_t d = dim + 1; d < s.size(); ++d) inner *= s[d];
    const int64_t r = s[dim], chunks = (r + cuda::kSumChunk - 1) / cuda::kSumChunk;
    Tensor v1 = Tensor::empty(ref.shape()), v2 = Tensor::empty(ref.shape());
    run_on_host(ref.numel(), cuda::SumBody{v1.data(), a.data(), r, inner});
    expect_same(v1, ref, "sum v1 " + shape_str(s) + " dim " + std::to_string(dim));
    std::vector<double> partial(std::max<int64_t>(ref.numel() * chunks, 1));
    run_on_host(ref.numel() * chunks, cuda::SumPartialBody{partial.data(), a.data(), r, inner, chunks});
    run_on_host(ref.numel(), cuda::SumFinishBody{v2.data(), partial.data(), chunks});
    test::expect_close(v2, ref, 1e-6, 1e-6, "sum v2 " + shape_str(s) + " dim " + std::to_string(dim));
  }
}

TEST_CASE("cuda body: max, argmax, max_backward and logsumexp match the CPU bit for bit", "[cuda_body]") {
  Tensor a = awkward({3, 6, 4}, 7);
  // A row whose first element is NaN, one with a later NaN, a tie, and an all -inf row.
  for (int64_t k = 0; k < 6; ++k) a.data()[k * 4 + 0] = k == 0 ? NAN : float(k);
  for (int64_t k = 0; k < 6; ++k) a.data()[k * 4 + 1] = k == 2 ? NAN : 3.f - float(k % 3);
  for (int64_t k = 0; k < 6; ++k) a.data()[24 + k * 4 + 2] = k == 1 || k == 4 ? 9.f : 0.f;
  for (int64_t k = 0; k < 6; ++k) a.data()[48 + k * 4 + 3] = -INFINITY;
  for (int64_t dim = 0; dim < 3; ++dim) {
    Tensor ref_idx;
    const Tensor ref = max(a, dim, true, &ref_idx);
    int64_t inner = 1;
    for (int64_t d = dim + 1; d < 3; ++d) inner *= a.shape()[d];
    const int64_t r = a.shape()[dim];
    Tensor got = Tensor::empty(ref.shape()), idx = Tensor::empty(ref.shape());
    run_on_host(ref.numel(), cuda::MaxBody{got.data(), idx.data(), a.data(), r, inner});
    expect_same(got, ref, "max dim " + std::to_string(dim));
    expect_same(idx, ref_idx, "argmax dim " + std::to_string(dim));

    Generator g(8);
    const Tensor dout = g.normal(ref.shape());
    const Tensor dx_ref = max_backward(dout, ref_idx, a.shape(), dim);
    Tensor dx = Tensor::empty(a.shape());
    run_on_host(dx.numel(), cuda::MaxBackwardBody{dx.data(), dout.data(), ref_idx.data(), r, inner});
    expect_same(dx, dx_ref, "max_backward dim " + std::to_string(dim));

    const Tensor lse_ref = logsumexp(a, dim, true);
    Tensor lse = Tensor::empty(lse_ref.shape());
    run_on_host(lse.numel(), cuda::LogsumexpBody{lse.data(), a.data(), r, inner});
    expect_same(lse, lse_ref, "logsumexp dim " + std::to_string(dim));
  }
}

TEST_CASE("cuda body: pitched rows give concat, slice and slice_add as the CPU", "[cuda_body]") {
  const Tensor a = awkward({2, 3, 4}, 9), b = awkward({2, 5, 4}, 10);
  // concat on dim 1: outer 2, inner 4, row length (3 + 5) * 4; b starts at column 12.
  const Tensor ref = concat({a, b}, 1);
  Tensor out = Tensor::empty(ref.shape());
  run_on_host(2 * 12, cuda::RowsBody{out.data(), a.data(), 32, 12, 12, false});
  run_on_host(2 * 20, cuda::RowsBody{out.data() + 12, b.data(), 32, 20, 20, false});
  expect_same(out, ref, "concat");
  // slice [1, 4) of dim 1 of b: source rows of 20, starting at column 4.
  const Tensor sref = slice(b, 1, 1, 4);
  Tensor s = Tensor::empty(sref.shape());
  run_on_host(2 * 12, cuda::RowsBody{s.data(), b.data() + 4, 12, 20, 12, false});
  expect_same(s, sref, "slice");
  // slice_add of a [2, 3, 4] into b at 2 along dim 1.
  Tensor want = b.clone(), got = b.clone();
  slice_add_(want, a, 1, 2);
  run_on_host(2 * 12, cuda::RowsBody{got.data() + 8, a.data(), 20, 12, 12, true});
  expect_same(got, want, "slice_add");
}

TEST_CASE("cuda body: index_select and index_add with repeated indices match the CPU", "[cuda_body]") {
  const Tensor a = awkward({6, 2, 3}, 11);
  const std::vector<int64_t> idx = {4, 0, 4, 5, 1, 4, 0};
  const Tensor ref = index_select(a, idx);
  Tensor got = Tensor::empty(ref.shape());
  run_on_host(got.numel(), cuda::IndexSelectBody{got.data(), a.data(), idx.data(), 6});
  expect_same(got, ref, "index_select");

  Generator g(12);
  const Tensor grad = g.normal({7, 2, 3});
  Tensor want = g.normal({6, 2, 3});
  Tensor out = want.clone();
  index_add_(want, idx, grad);
  const cuda::IndexAddPlan plan = cuda::index_add_plan(idx, 6);
  CHECK(plan.rows == 4);  // rows 0, 1, 4, 5
  const int64_t* d = plan.packed.data();
  run_on_host(plan.rows * 6, cuda::IndexAddBody{out.data(), grad.data(), d, d + plan.rows, d + 2 * plan.rows + 1, 6});
  expect_same(out, want, "index_add");
  CHECK_THROWS_AS(cuda::index_add_plan({0, 6}, 6), Error);
}

TEST_CASE("cuda body: SGD and Adam steps match the CPU bit for bit", "[cuda_body]") {
  Generator g(13);
  const Tensor w0 = g.normal({257}), grad = g.normal({257}), m0 = g.normal({257}, 0.f, 0.1f);
  const Tensor v0 = g.uniform({257}, 0.f, 0.01f);
  for (float momentum : {0.f, 0.9f}) {
    for (bool first : {true, false}) {
      const SgdParams p{0.05f, momentum, 1e-3f, first};
      Tensor w = w0.clone(), v = m0.clone(), w_ref = w0.clone(), v_ref = m0.clone();
      sgd_step(w_ref, grad, v_ref, p);
      run_on_host(w.numel(), cuda::SgdBody{w.data(), momentum != 0.f ? v.data() : nullptr, grad.data(), p.lr,
                                          p.momentum, p.weight_decay, p.first});
      expect_same(w, w_ref, "sgd w, momentum " + std::to_string(momentum));
      if (momentum != 0.f) expect_same(v, v_ref, "sgd velocity");
    }
  }
  AdamParams p;
  p.lr = 1e-2f;
  p.weight_decay = 1e-4f;
  p.step = 3;
  Tensor w = w0.clone(), m = m0.clone(), v = v0.clone();
  Tensor w_ref = w0.clone(), m_ref = m0.clone(), v_ref = v0.clone();
  adam_step(w_ref, grad, m_ref, v_ref, p);
  // The constants as cuda/backend.cpp's adam_step computes them.
  const double bc1 = 1.0 - std::pow(double(p.beta1), double(p.step));
  const double bc2 = 1.0 - std::pow(double(p.beta2), double(p.step));
  run_on_host(w.numel(), cuda::AdamBody{w.data(), m.data(), v.data(), grad.data(), p.beta1, p.beta2, p.eps,
                                        p.weight_decay, float(1.0 - double(p.beta1)), float(1.0 - double(p.beta2)),
                                        p.lr / bc1, std::sqrt(bc2)});
  expect_same(w, w_ref, "adam w");
  expect_same(m, m_ref, "adam m");
  expect_same(v, v_ref, "adam v");
}

// ---- on a GPU ----

using test::gpu_or_skip;  // tests/helpers.h: "SKIPPED: <reason>" without a GPU

TEST_CASE("cuda: tensors round-trip through the GPU and the allocator counts and caches", "[cuda]") {
  if (!gpu_or_skip()) return;
  Allocator& alloc = *cuda_allocator();
  alloc.flush();
  alloc.reset_peak();
  const MemoryStats s0 = alloc.stats();
  CHECK(s0.cached == 0);
  std::vector<float> values(1000);
  for (size_t i = 0; i < values.size(); ++i) values[i] = float(i) * 0.5f - 7.f;
  {
    const Tensor t = Tensor::from({1000}, values, Device::CUDA);
    CHECK(t.device() == Device::CUDA);
    CHECK(t.to_vector() == values);
    const MemoryStats s1 = alloc.stats();
    CHECK(s1.in_use == s0.in_use + 4000);
    CHECK(s1.peak >= s1.in_use);
    CHECK(s1.allocations == s0.allocations + 1);
    CHECK_THROWS_AS(t.data("test"), Error);  // no host access to GPU memory
  }
  const MemoryStats s2 = alloc.stats();
  CHECK(s2.in_use == s0.in_use);
  // 4000 bytes in a 4096-byte block, kept -- unless NORMAD_CUDA_NO_CACHE=1 (the device script's
  // compute-sanitizer stage) hands every block straight back
  const char* no_cache = std::getenv("NORMAD_CUDA_NO_CACHE");
  CHECK(s2.cached == (no_cache != nullptr && std::string(no_cache) == "1" ? 0 : 4096));
  {
    const Tensor u = Tensor::zeros({900}, Device::CUDA);  // 3600 -> 4096: the cached block again
    CHECK(alloc.stats().cached == 0);
    CHECK(u.to(Device::CPU).to_vector() == std::vector<float>(900, 0.f));
  }
  alloc.flush();
  CHECK(alloc.stats().cached == 0);
}

// [oom]: the sanitize stage of scripts/device_run.sh leaves it out (memcheck reports the failed
// cudaMalloc it provokes as an error)
TEST_CASE("cuda: an allocation larger than the GPU is a normad::Error with the numbers", "[cuda][oom]") {
  if (!gpu_or_skip()) return;
  try {
    Tensor t = Tensor::empty({int64_t(1) << 48}, Device::CUDA);  // 1 PiB
    FAIL("1 PiB allocated");
  } catch (const Error& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find("out of memory") != std::string::npos);
    CHECK(msg.find(std::to_string(int64_t(4) << 48)) != std::string::npos);
  }
  // The device is still usable afterwards.
  CHECK(Tensor::ones({3}, Device::CUDA).to_vector() == std::vector<float>(3, 1.f));
}

TEST_CASE("cuda: cuBLAS products match the CPU for every transpose and batch broadcast", "[cuda]") {
  if (!gpu_or_skip()) return;
  // The operand swap of cuda/matmul.cpp is the part host tests cannot see; odd sizes on purpose.
  Generator g(14);
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      const Tensor a = g.normal(ta ? Shape{5, 3} : Shape{3, 5}), b = g.normal(tb ? Shape{7, 5} : Shape{5, 7});
      const Tensor ref = matmul(a, b, ta, tb);
      const Tensor got = matmul(a.to(Device::CUDA), b.to(Device::CUDA), ta, tb).to(Device::CPU);
      test::expect_close(got, ref, 1e-5, 1e-5, "matmul ta " + std::to_string(ta) + " tb " + std::to_string(tb));
      const Tensor a3 = g.normal(ta ? Shape{1, 5, 3} : Shape{1, 3, 5}), b3 = g.normal(tb ? Shape{4, 7, 5} : Shape{4, 5, 7});
      const Tensor ref3 = bmm(a3, b3, ta, tb);
      const Tensor got3 = bmm(a3.to(Device::CUDA), b3.to(Device::CUDA), ta, tb).to(Device::CPU);
      test::expect_close(got3, ref3, 1e-5, 1e-5, "bmm (batch 1 x 4)");
    }
  }
}

#endif  // NORMAD_HAS_CUDA
