// normad's seeded generator (see tensor/random.h).
// Math: normal = mean + std * sqrt(-2 ln u1) cos(2 pi u2) with u1 in (0, 1]; draws are sequential,
// so the same seed gives the same numbers whatever the thread count.
// Tested by tests/test_random.cpp.
#include "tensor/random.h"

#include <sstream>

#include <cmath>
#include <numbers>

namespace normad {

std::string Generator::state() const {
  std::ostringstream out;
  out << eng_;
  return out.str();
}

void Generator::set_state(const std::string& state) {
  std::istringstream in(state);
  std::mt19937_64 e;
  in >> e;
  if (in.fail()) throw Error("random generator state: not a std::mt19937_64 state (" + std::to_string(state.size()) +
                             " characters)");
  eng_ = e;
}

double Generator::uniform01() {
  // 53 random bits -> [0, 1), identical on every platform (std::uniform_real_distribution is not).
  return static_cast<double>(eng_() >> 11) * 0x1.0p-53;
}

float Generator::uniform1(float lo, float hi) {
  return static_cast<float>(lo + (double(hi) - lo) * uniform01());
}

float Generator::normal1(float mean, float std) {
  double u1 = 1.0 - uniform01();  // (0, 1]: log is finite
  double u2 = uniform01();
  double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  return static_cast<float>(mean + std * z);
}

int64_t Generator::randint(int64_t lo, int64_t hi) {
  if (hi <= lo) throw Error("randint: empty range [" + std::to_string(lo) + ", " +
                            std::to_string(hi) + ")");
  uint64_t span = static_cast<uint64_t>(hi - lo);
  // Rejection sampling removes the modulo bias.
  uint64_t limit = UINT64_MAX - UINT64_MAX % span;
  uint64_t r;
  do r = eng_(); while (r >= limit);
  return lo + static_cast<int64_t>(r % span);
}

std::vector<int64_t> Generator::permutation(int64_t n) {
  std::vector<int64_t> p(n);
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[i], p[randint(0, i + 1)]);
  return p;
}

Tensor Generator::normal(Shape shape, float mean, float std) {
  Tensor t(std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = normal1(mean, std);
  return t;
}

Tensor Generator::uniform(Shape shape, float lo, float hi) {
  Tensor t(std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = uniform1(lo, hi);
  return t;
}

Tensor Generator::bernoulli(Shape shape, float p) {
  Tensor t(std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = uniform01() < p ? 1.f : 0.f;
  return t;
}

Generator& default_generator() {
  static Generator g(0);
  return g;
}

void manual_seed(uint64_t seed) { default_generator().seed(seed); }

}  // namespace normad
