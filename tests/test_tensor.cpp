// Tests of the tensor core (tensor/tensor.h, tensor/random.h): shapes, views, copies, errors and
// reproducible random numbers.
#include "tensor/backend.h"
#include "tests/helpers.h"

using namespace normad;

TEST_CASE("tensor: shape, numel, views share storage", "[tensor]") {
  Tensor t = Tensor::from({2, 3}, {1, 2, 3, 4, 5, 6});
  CHECK(t.dim() == 2);
  CHECK(t.numel() == 6);
  CHECK(t.size(-1) == 3);
  Tensor r = t.reshape({3, -1});
  CHECK(r.shape() == Shape{3, 2});
  CHECK(r.same_storage(t));
  r.data()[0] = 10;
  CHECK(t.data()[0] == 10);  // a view
  Tensor c = t.clone();
  c.data()[1] = 20;
  CHECK(t.data()[1] == 2);  // a copy
  CHECK(Tensor::scalar(3).item() == 3);
  CHECK(Tensor::scalar(3).shape().empty());
}

TEST_CASE("tensor: bad shapes throw normad::Error naming the shapes", "[tensor]") {
  Tensor t({2, 3});
  CHECK_THROWS_WITH(t.reshape({4, 2}), Catch::Contains("[2, 3]") && Catch::Contains("[4, 2]"));
  CHECK_THROWS_AS(t.reshape({-1, -1}), Error);
  CHECK_THROWS_AS(t.item(), Error);
  CHECK_THROWS_AS(t.size(2), Error);
  CHECK_THROWS_AS(Tensor::from({2, 2}, {1, 2, 3}), Error);
}

TEST_CASE("random: same seed gives the same numbers and moments are right", "[random]") {
  Generator a(42), b(42), c(43);
  Tensor x = a.normal({10000}), y = b.normal({10000}), z = c.normal({10000});
  CHECK(x.to_vector() == y.to_vector());
  CHECK(x.to_vector() != z.to_vector());
  double m = 0, v = 0;
  for (float f : x.to_vector()) m += f;
  m /= x.numel();
  for (float f : x.to_vector()) v += (f - m) * (f - m);
  v /= x.numel();
  CHECK(std::fabs(m) < 0.05);      // standard error 0.01
  CHECK(std::fabs(v - 1) < 0.05);  // standard error ~0.014
  Tensor u = a.uniform({10000}, 2.f, 3.f);
  for (float f : u.to_vector()) REQUIRE((f >= 2.f && f < 3.f));
  Tensor bern = a.bernoulli({10000}, 0.3f);
  double s = 0;
  for (float f : bern.to_vector()) s += f;
  CHECK(std::fabs(s / 10000 - 0.3) < 0.03);
  auto p = a.permutation(100);
  std::vector<int64_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 100; ++i) REQUIRE(sorted[i] == i);
  CHECK(p != sorted);
}

// ---- storage, devices and allocators (tensor/tensor.h, tensor/backend.h) ----

TEST_CASE("storage: to() copies across devices, move_to() moves every view, errors name devices", "[tensor][device]") {
  Tensor t = Tensor::from({2, 3}, {1, 2, 3, 4, 5, 6});
  CHECK(t.device() == Device::CPU);
  Tensor r = t.to(Device::Reference);
  CHECK(r.device() == Device::Reference);
  CHECK(!r.same_storage(t));
  CHECK(r.to_vector() == t.to_vector());
  CHECK(t.to(Device::CPU).same_storage(t));  // already there: no copy
  // A view and a copy of the handle share the storage, so moving one moves all of them.
  Tensor view = t.reshape({3, 2});
  Tensor handle = t;
  handle.move_to(Device::Reference);
  CHECK(t.device() == Device::Reference);
  CHECK(view.device() == Device::Reference);
  CHECK(view.to_vector() == std::vector<float>{1, 2, 3, 4, 5, 6});
  // Ops refuse tensors on different devices, naming the op, the devices and the shapes.
  Tensor c = Tensor::ones({3, 2});
  CHECK_THROWS_WITH(add(view, c), Catch::Contains("add") && Catch::Contains("reference [3, 2]") &&
                                      Catch::Contains("cpu [3, 2]"));
  CHECK_THROWS_WITH(matmul(view, c, true, false), Catch::Contains("matmul") && Catch::Contains("different devices"));
  // Factories on a device; copy_ across devices.
  Tensor z = Tensor::full({4}, 2.5f, Device::Reference);
  CHECK(z.device() == Device::Reference);
  CHECK(z.to_vector() == std::vector<float>(4, 2.5f));
  Tensor host = Tensor::zeros({4});
  host.copy_(z);
  CHECK(host.to_vector() == std::vector<float>(4, 2.5f));
  CHECK(Tensor::from({2}, {7, 8}, Device::Reference).to_vector() == std::vector<float>{7, 8});
  CHECK(parse_device("reference") == Device::Reference);
  CHECK_THROWS_WITH(parse_device("gpu"), Catch::Contains("cpu, reference or cuda"));
}

TEST_CASE("storage: CUDA without a device is a clear error, never a crash", "[tensor][device]") {
  if (device_available(Device::CUDA)) {
    test::skip_or_fail("a CUDA device is present; this case checks the error path without one");
    return;
  }
  CHECK(!device_unavailable_reason(Device::CUDA).empty());
  CHECK_THROWS_WITH(Tensor::zeros({2}, Device::CUDA), Catch::Contains("cuda"));
  CHECK_THROWS_WITH(Tensor::ones({2}).to(Device::CUDA), Catch::Contains("cuda"));
}

TEST_CASE("allocator: bytes in use and peak follow tensor lifetimes, 64-byte alignment", "[tensor][device]") {
  // The Reference device has its own allocator: nothing else in this test uses it concurrently.
  Allocator& a = allocator_for(Device::Reference);
  const MemoryStats before = a.stats();
  a.reset_peak();
  {
    Tensor big = Tensor::empty({1000}, Device::Reference);  // 4000 bytes
    CHECK(a.stats().in_use == before.in_use + 4000);
    CHECK(reinterpret_cast<uintptr_t>(big.device_data()) % 64 == 0);
    {
      Tensor more = Tensor::empty({250}, Device::Reference);  // 1000 bytes
      CHECK(a.stats().in_use == before.in_use + 5000);
    }
    CHECK(a.stats().in_use == before.in_use + 4000);
  }
  const MemoryStats after = a.stats();
  CHECK(after.in_use == before.in_use);
  CHECK(after.peak == before.in_use + 5000);
  CHECK(after.allocations == before.allocations + 2);
  // A scalar still owns a block (one float), so data() is never null.
  CHECK(Tensor::scalar(1.f).data() != nullptr);
}

TEST_CASE("allocator: large host blocks are cached for the next tensor of their size",
          "[tensor][device]") {
  Allocator& a = allocator_for(Device::Reference);
  a.flush();
  const MemoryStats before = a.stats();
  CHECK(before.cached == 0);
  const void* first = nullptr;
  {
    Tensor big = Tensor::empty({1 << 18}, Device::Reference);  // 1 MiB: from the pool
    first = big.device_data();
    CHECK(reinterpret_cast<uintptr_t>(first) % 64 == 0);
  }
  CHECK(a.stats().cached == 1 << 20);  // kept, not handed back
  {
    Tensor again = Tensor::empty({1 << 18}, Device::Reference);  // the next step's tensor of that size
    CHECK(again.device_data() == first);
    CHECK(a.stats().cached == 0);
    Tensor small = Tensor::empty({100}, Device::Reference);  // 400 bytes: malloc, not cached
  }
  CHECK(a.stats().cached == 1 << 20);
  // (the bound on what stays cached: tests/test_caching_pool.cpp)
  a.flush();
  CHECK(a.stats().cached == 0);
}

TEST_CASE("backend table: supports() is false for a missing entry, true for the built-in CPU ops", "[tensor][device]") {
  Backend empty{};
  for (int op = 0; op < int(Op::count); ++op) CHECK_FALSE(supports(empty, Op(op)));
  for (int op = 0; op < int(Op::count); ++op) {
    INFO(op_name(Op(op)));
    CHECK(supports(cpu_backend(), Op(op)));
  }
  CHECK(std::string(op_name(Op::adam_step)) == "adam_step");
  CHECK(std::string(unary_op_name(UnaryOp::silu)) == "silu");
  CHECK(std::string(binary_op_name(BinaryOp::clamp_backward)) == "clamp_backward");
}

TEST_CASE("tensor: strict device mode makes reference tensors refuse host reads as CUDA ones do", "[tensor][device]") {
  struct Restore {  // the mode is process-wide: put it back even when a check throws
    ~Restore() { set_strict_device(false); }
  } restore;
  Tensor r = Tensor::ones({2, 3}, Device::Reference);
  CHECK_NOTHROW(r.data());
  set_strict_device(true);
  CHECK(strict_device());
  CHECK_THROWS_WITH(r.data("probe"), Catch::Contains("probe") && Catch::Contains("reference") && Catch::Contains("strict"));
  CHECK(r.to_vector() == std::vector<float>(6, 1.f));  // copies to the host still work
  CHECK(add(r, r).to(Device::CPU).to_vector() == std::vector<float>(6, 2.f));  // and so do ops
  CHECK_NOTHROW(Tensor::ones({2}).data());  // CPU tensors are untouched
  set_strict_device(false);
  CHECK_NOTHROW(r.data());
}
