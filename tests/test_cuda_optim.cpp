// Tests of the fused Adam step over all parameters (adam_step_multi, tensor/ops.h): on the CPU it
// must equal one adam_step per parameter bit for bit (nn::Adam now calls it once per step, and
// scripts/bitwise_compare.sh must stay byte-identical); its CUDA form (cuda/optim.cuh,
// AdamMultiBody: a descriptor table, prefix offsets and a binary search per thread) is run on the
// host over host arrays, and on a GPU against the per-tensor step.
// Math: torch.optim.Adam per weight, each parameter at its own step t.
// Tags: [optim] runs everywhere; [cuda_body] needs a build with nvcc, not a GPU; [cuda] needs a
// GPU and otherwise prints "SKIPPED: <reason>".
#include <string>
#include <vector>

#include "helpers.h"
#include "nn/optim.h"
#include "tensor/backend.h"

#ifdef NORMAD_HAS_CUDA
#include "cuda/optim.h"
#endif

using namespace normad;

namespace {

// Four parameters of odd sizes (w, g, m, v each), state as after a few steps.
struct Params {
  std::vector<Tensor> w, g, m, v;
  std::vector<int64_t> steps;
};

Params make_params(Device d = Device::CPU) {
  const std::vector<Shape> shapes{{3, 5}, {1}, {257}, {2, 1, 3}};
  Params p;
  Generator gen(21);
  for (const Shape& s : shapes) {
    p.w.push_back(gen.normal(s).to(d));
    p.g.push_back(gen.normal(s).to(d));
    p.m.push_back(gen.normal(s, 0.f, 0.1f).to(d));
    p.v.push_back(gen.uniform(s, 0.f, 0.1f).to(d));
  }
  p.steps = {4, 4, 1, 9};
  return p;
}

Params clone(const Params& p) {
  Params c = p;
  for (auto* list : {&c.w, &c.g, &c.m, &c.v})
    for (Tensor& t : *list) t = t.clone();
  return c;
}

std::vector<AdamSlot> slots_of(Params& p) {
  std::vector<AdamSlot> s;
  for (size_t k = 0; k < p.w.size(); ++k) s.push_back(AdamSlot{&p.w[k], &p.g[k], &p.m[k], &p.v[k], p.steps[k]});
  return s;
}

// The parameters stepped one adam_step at a time.
void step_each(Params& p, const AdamParams& base) {
  for (size_t k = 0; k < p.w.size(); ++k) {
    AdamParams q = base;
    q.step = p.steps[k];
    adam_step(p.w[k], p.g[k], p.m[k], p.v[k], q);
  }
}

using test::same_bits;

void check_same_state(const Params& got, const Params& want, const std::string& what) {
  for (size_t k = 0; k < got.w.size(); ++k) {
    INFO(what << ", parameter " << k << " " << shape_str(got.w[k].shape()));
    CHECK(same_bits(got.w[k], want.w[k]));
    CHECK(same_bits(got.m[k], want.m[k]));
    CHECK(same_bits(got.v[k], want.v[k]));
  }
}

const AdamParams kParams{3e-3f, 0.8f, 0.99f, 1e-6f, 1e-2f, 1};  // weight decay on

}  // namespace

TEST_CASE("adam_step_multi on the CPU equals one adam_step per parameter bit for bit", "[optim]") {
  Params multi = make_params(), each = clone(multi);
  for (int iter = 0; iter < 3; ++iter) {
    adam_step_multi(slots_of(multi), kParams);
    step_each(each, kParams);
    for (int64_t& t : multi.steps) ++t;
    each.steps = multi.steps;
  }
  check_same_state(multi, each, "cpu");
  // and the reference backend's loop agrees with its own adam_step
  Params rm = make_params(Device::Reference), re = clone(rm);
  adam_step_multi(slots_of(rm), kParams);
  step_each(re, kParams);
  check_same_state(rm, re, "reference");
}

TEST_CASE("adam_step_multi validates every slot and wants one device", "[optim]") {
  Params p = make_params();
  std::vector<AdamSlot> none;
  adam_step_multi(none, kParams);  // nothing to do
  std::vector<AdamSlot> s = slots_of(p);
  s[2].step = 0;
  CHECK_THROWS_WITH(adam_step_multi(s, kParams), Catch::Contains("step must be >= 1"));
  s = slots_of(p);
  s[3].v = s[3].m;  // one tensor as both moments: refused (the CPU step's vectors assume four)
  CHECK_THROWS_WITH(adam_step_multi(s, kParams), Catch::Contains("the first moment and the second moment share storage"));
  CHECK_THROWS_WITH(adam_step(p.w[0], p.w[0], p.m[0], p.v[0], AdamParams{}), Catch::Contains("parameter and the gradient"));
  s = slots_of(p);
  Tensor short_m = Tensor::zeros({256});
  s[2].m = &short_m;
  CHECK_THROWS_WITH(adam_step_multi(s, kParams), Catch::Contains("first moment"));
  s = slots_of(p);
  Tensor elsewhere = p.v[1].to(Device::Reference);
  s[1].v = &elsewhere;
  CHECK_THROWS_WITH(adam_step_multi(s, kParams), Catch::Contains("different devices"));
  s = slots_of(p);
  s[3].g = nullptr;
  CHECK_THROWS_AS(adam_step_multi(s, kParams), Error);
}

TEST_CASE("nn::Adam's fused step equals per-parameter steps, skipped parameters keeping their count", "[optim]") {
  // three parameters; the second gets no grad in iteration 1, so its t lags behind
  Generator gen(22);
  std::vector<Var> ps{Var(gen.normal({4, 3}), true), Var(gen.normal({3}), true), Var(gen.normal({1}), true)};
  std::vector<Tensor> w, m, v;
  std::vector<int64_t> t(3, 0);
  for (const Var& p : ps) w.push_back(p.data().clone()), m.push_back(Tensor::zeros(p.shape())), v.push_back(Tensor::zeros(p.shape()));
  nn::Adam opt(ps, 0.01f, 0.9f, 0.999f, 1e-8f, 1e-3f);
  for (int iter = 0; iter < 4; ++iter) {
    opt.zero_grad();
    Var loss = sum(ps[0] * ps[0]) + sum(ps[2] * ps[2] * ps[2]);
    if (iter != 1) loss = loss + sum(ps[1] * ps[1]);
    loss.backward();
    // the expected state: adam_step per parameter with a grad, with the grads just computed
    for (size_t k = 0; k < ps.size(); ++k) {
      if (!ps[k].grad().defined()) continue;
      adam_step(w[k], ps[k].grad(), m[k], v[k], AdamParams{0.01f, 0.9f, 0.999f, 1e-8f, 1e-3f, ++t[k]});
    }
    opt.step();
    for (size_t k = 0; k < ps.size(); ++k) {
      INFO("iteration " << iter << ", parameter " << k);
      CHECK(same_bits(ps[k].data(), w[k]));
    }
  }
  CHECK(t == std::vector<int64_t>{4, 3, 4});
}

#ifdef NORMAD_HAS_CUDA

TEST_CASE("cuda body: find_segment picks the tensor of every element, empty tensors skipped", "[cuda_body]") {
  // tensors of sizes {0, 3, 0, 0, 1, 5, 0}: offsets 0 0 3 3 3 4 9 9
  const std::vector<int64_t> offsets{0, 0, 3, 3, 3, 4, 9, 9};
  const int count = 7;
  for (int64_t e = 0; e < 9; ++e) {
    // the linear answer: the tensor whose range holds e
    int want = -1;
    for (int t = 0; t < count; ++t)
      if (offsets[t] <= e && e < offsets[t + 1]) want = t;
    INFO("element " << e);
    CHECK(cuda::find_segment(offsets.data(), count, e) == want);
  }
  // one tensor; and many equal tensors (every probe count from 1 to 10)
  const int64_t one[] = {0, 5};
  for (int64_t e = 0; e < 5; ++e) CHECK(cuda::find_segment(one, 1, e) == 0);
  std::vector<int64_t> many(1001);
  for (int t = 0; t <= 1000; ++t) many[t] = 3 * int64_t(t);
  bool all = true;
  for (int64_t e = 0; e < 3000; ++e) all = all && cuda::find_segment(many.data(), 1000, e) == int(e / 3);
  CHECK(all);
}

TEST_CASE("cuda body: the fused Adam body over all parameters matches the CPU's adam_step bit for bit", "[cuda_body]") {
  Params fused = make_params(), each = clone(fused);
  // the host side of cuda::adam_step_multi: descriptors with each tensor's step constants, offsets
  std::vector<cuda::AdamTensor> tensors;
  std::vector<int64_t> offsets{0};
  for (size_t k = 0; k < fused.w.size(); ++k) {
    AdamParams q = kParams;
    q.step = fused.steps[k];
    const cuda::AdamBody b = cuda::adam_body(fused.w[k].data(), fused.m[k].data(), fused.v[k].data(), fused.g[k].data(), q);
    tensors.push_back({b.w, b.m, b.v, b.g, fused.w[k].numel(), b.step, b.sqrt_bc2});
    offsets.push_back(offsets.back() + fused.w[k].numel());
  }
  const cuda::AdamMultiBody body{cuda::adam_body(nullptr, nullptr, nullptr, nullptr, kParams), tensors.data(),
                                 offsets.data(), int(tensors.size())};
  // every element once, in reverse order: the threads' order must not matter
  for (int64_t e = offsets.back() - 1; e >= 0; --e) body(e);
  step_each(each, kParams);
  check_same_state(fused, each, "fused body on the host");
}

TEST_CASE("cuda: adam_step_multi in one launch equals per-tensor adam_step on the GPU", "[cuda]") {
  if (!test::gpu_or_skip()) return;
  Params fused = make_params(Device::CUDA), each = clone(fused), cpu = make_params();
  adam_step_multi(slots_of(fused), kParams);
  step_each(each, kParams);
  step_each(cpu, kParams);
  // the same AdamBody code in both kernels: the same bits
  check_same_state(fused, each, "cuda fused vs cuda per tensor");
  // against the CPU, nvcc's FMA pairing may move the last bit (cuda/optim.cuh)
  for (size_t k = 0; k < cpu.w.size(); ++k) {
    test::expect_close(fused.w[k].to(Device::CPU), cpu.w[k], 1e-7, 1e-6, "w vs cpu");
    test::expect_close(fused.v[k].to(Device::CPU), cpu.v[k], 1e-7, 1e-6, "v vs cpu");
  }
}

#endif  // NORMAD_HAS_CUDA
