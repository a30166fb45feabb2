// Shared test helpers: closeness with the first mismatches printed (llm.c's validate_result),
// finite-difference gradient checks (ggml's grad mode) and access to the PyTorch fixtures.
#pragma once

#include <catch2/catch.hpp>
#include <tbb/info.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "tensor/backend.h"
#include "tensor/gemm.h"
#include "tensor/parallel.h"
#include "tensor/random.h"

namespace normad::test {

// f() run with normad limited to one thread, then to max(2, the machine's) threads: {one, many},
// for checking that a kernel's bits do not depend on the thread count. set_num_threads, not a
// oneTBB arena: the kernels size their tasks by num_threads() (a sum's or batch norm's share of
// channels), which an arena does not change. The default thread count is restored after.
template <class F>
auto on_one_and_many_threads(F f) {
  struct Restore {
    ~Restore() { set_num_threads(0); }
  } restore;
  std::array<decltype(f()), 2> out;
  set_num_threads(1);
  out[0] = f();
  set_num_threads(std::max(2, int(tbb::info::default_concurrency())));
  out[1] = f();
  return out;
}

// The CPU GEMM engines this build has: Eigen and normad's native one always, OpenBLAS when found at
// configure time; their names for INFO lines.
inline std::vector<cpu::GemmEngine> gemm_engines() {
  std::vector<cpu::GemmEngine> e{cpu::GemmEngine::eigen, cpu::GemmEngine::native};
  if (cpu::openblas_built_in()) e.push_back(cpu::GemmEngine::openblas);
  return e;
}
inline const char* engine_name(cpu::GemmEngine e) {
  return e == cpu::GemmEngine::eigen ? "eigen" : e == cpu::GemmEngine::native ? "native" : "openblas";
}

// Selects a GEMM engine for one scope, then restores the automatic choice.
struct EngineScope {
  explicit EngineScope(cpu::GemmEngine e) { cpu::set_gemm_engine(e); }
  ~EngineScope() { cpu::set_gemm_engine(cpu::GemmEngine::automatic); }
};

// |got - ref| <= atol + rtol |ref| elementwise; shapes must match. Prints up to 5 mismatches.
inline bool close_report(const Tensor& got, const Tensor& ref, double atol, double rtol,
                         std::string* report) {
  std::ostringstream os;
  if (got.shape() != ref.shape()) {
    os << "shape " << shape_str(got.shape()) << " vs reference " << shape_str(ref.shape());
    *report = os.str();
    return false;
  }
  int64_t bad = 0;
  double worst = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    double g = got.data()[i], r = ref.data()[i];
    double err = std::fabs(g - r);
    bool ok = err <= atol + rtol * std::fabs(r) && !std::isnan(g) == !std::isnan(r);
    if (!ok) {
      if (bad < 5) os << "  [" << i << "] got " << g << " ref " << r << " err " << err << "\n";
      ++bad;
    }
    if (err > worst) worst = err;
  }
  if (bad) os << "  " << bad << " of " << got.numel() << " mismatched; max abs err " << worst;
  *report = os.str();
  return bad == 0;
}

// Same shape and same bytes (NaN payloads and -0 count too); tensors on any device.
inline bool same_bits(const Tensor& a_any, const Tensor& b_any) {
  const Tensor a = a_any.to(Device::CPU), b = b_any.to(Device::CPU);
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), sizeof(float) * a.numel()) == 0;
}

inline void expect_close(const Tensor& got, const Tensor& ref, double atol, double rtol,
                         const std::string& what = "") {
  std::string report;
  bool ok = close_report(got, ref, atol, rtol, &report);
  INFO(what << " (atol " << atol << ", rtol " << rtol << ")\n" << report);
  CHECK(ok);
}

// Finite-difference gradient check. f maps input Vars to any-shaped output; the scalar checked is
// L = sum(out * w) with fixed random weights w, so every output element matters, accumulated in
// double. Each partial derivative is a Richardson-extrapolated central difference,
//   D = (4 D(h/2) - D(h)) / 3,  D(h) = (L(x + h) - L(x - h)) / 2h,
// whose truncation error is O(h^4): with h = 1e-2 it is far below float32's rounding noise, which
// for the perturbed outputs is about 6e-8 |dout| / h. The defaults (atol 1e-4, rtol 3e-4) catch a
// 0.1% error in a backward pass (the SiLU 1.5% mutation of issue 11 fails by two orders of
// magnitude; atol scales with the gradient's largest entry); ops whose forward is noisier state
// their measured floor beside their check.
// Inputs must stay h away from kinks (relu, abs, max ties).
inline void check_grad(const std::function<Var(const std::vector<Var>&)>& f,
                       const std::vector<Tensor>& inputs, double eps = 1e-2, double atol = 1e-4,
                       double rtol = 3e-4, const std::string& what = "") {
  std::vector<Var> vars;
  for (auto& t : inputs) vars.emplace_back(t.clone(), true);
  Var out = f(vars);
  Generator g(1234);
  Tensor w = g.normal(out.shape());
  auto loss_of = [&](const Var& o) {
    double s = 0;
    for (int64_t i = 0; i < o.numel(); ++i) s += double(o.data().data()[i]) * w.data()[i];
    return s;
  };
  sum(mul(out, Var(w))).backward();
  for (size_t k = 0; k < vars.size(); ++k) {
    Tensor analytic = vars[k].grad().defined() ? vars[k].grad() : Tensor::zeros(vars[k].shape());
    Tensor numeric(vars[k].shape());
    Tensor& x = vars[k].data();
    for (int64_t i = 0; i < x.numel(); ++i) {
      const float keep = x.data()[i];
      // The step actually taken in float32 (keep + h is rounded), so the quotient uses it.
      auto central = [&](double h) {
        NoGradGuard ng;
        const float up = keep + float(h), down = keep - float(h);
        x.data()[i] = up;
        const double lp = loss_of(f(vars));
        x.data()[i] = down;
        const double lm = loss_of(f(vars));
        x.data()[i] = keep;
        return (lp - lm) / (double(up) - double(down));
      };
      numeric.data()[i] = float((4 * central(eps / 2) - central(eps)) / 3);
    }
    // atol is relative to the gradient's largest entry (rounding noise scales with the values
    // summed into L), so a gradient of magnitude 100 is held to the same relative standard as one of 1.
    double scale = 1;
    for (int64_t i = 0; i < numeric.numel(); ++i) scale = std::max(scale, double(std::fabs(numeric.data()[i])));
    if (std::getenv("NORMAD_GRAD_REPORT")) {  // the measured floor: max |analytic - numeric| / scale
      double worst = 0;
      for (int64_t i = 0; i < numeric.numel(); ++i)
        worst = std::max(worst, std::fabs(double(analytic.data()[i]) - numeric.data()[i]) / scale);
      std::printf("grad-report %-40s input %zu: max |error| / max |grad| = %.2e\n", what.c_str(), k, worst);
    }
    expect_close(analytic, numeric, atol * scale, rtol, what + " d/dinput" + std::to_string(k));
  }
}

// Directory of the PyTorch fixtures (set by ctest); empty when unset.
inline std::string fixtures_dir() {
  const char* d = std::getenv("NORMAD_FIXTURES");
  return d ? d : "";
}
// A test that cannot run because a generated fixture is absent (python3-torch / scikit-learn
// missing) is reported as SKIPPED, never as passed: the message below matches ctest's
// SKIP_REGULAR_EXPRESSION (CMakeLists.txt), so ctest lists the test as skipped even after a
// partial run. Under CI=true it is a failure instead, since scripts/deps.sh installs those packages.
inline void skip_or_fail(const std::string& why) {
  const char* ci = std::getenv("CI");
  if (ci && std::string(ci) == "true") {
    FAIL("fixture missing under CI=true: " << why);
  } else {
    WARN("SKIPPED: " << why);
  }
}
// Whether the device is there; without it, prints the "SKIPPED: <reason>" line ctest's
// SKIP_REGULAR_EXPRESSION matches (Catch2 v2 has no SKIP: callers return on false).
// Not skip_or_fail, which fails under CI=true: CI has no GPU, and that is not a failure. But with
// NORMAD_REQUIRE_GPU=1 (scripts/device_run.sh on the lent GPU machine) a missing CUDA device FAILS:
// there a skipped CUDA test would read as a pass.
inline bool device_or_skip(Device d) {
  if (device_available(d)) return true;
  const char* req = std::getenv("NORMAD_REQUIRE_GPU");
  if (d == Device::CUDA && req && std::string(req) == "1")
    FAIL("NORMAD_REQUIRE_GPU=1 but " << device_unavailable_reason(d));
  WARN("SKIPPED: " << device_name(d) << " backend not available: " << device_unavailable_reason(d));
  return false;
}
inline bool gpu_or_skip() { return device_or_skip(Device::CUDA); }

// Path of fixture `name` (e.g. "conv2d.safetensors"), or "" after skip_or_fail when it is absent.
// Catch2 v2 has no SKIP, so callers return early (or continue) on "".
inline std::string fixture(const std::string& name) {
  std::string dir = fixtures_dir();
  std::string p = dir + "/" + name;
  if (dir.empty() || !std::filesystem::exists(p)) {
    skip_or_fail("fixture " + p + " not found (run the tests/make_*fixtures.py scripts; they need python3-torch, "
                 "python3-torchvision and python3-sklearn)");
    return "";
  }
  return p;
}

}  // namespace normad::test
