// Seeded random numbers for normad: one generator type, reproducible across runs and thread counts.
// Math: mt19937_64 stream; normal via Box-Muller on two uniforms in (0, 1]; uniform a + (b - a)u.
// Tested by tests/test_random.cpp (same seed -> same numbers; moments within tolerance).
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace normad {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : eng_(seed) {}
  void seed(uint64_t s) { eng_.seed(s); }
  // The engine's whole state as text (std::mt19937_64's stream form), and back: a generator
  // restored from state() draws exactly what the original would have (checkpoints).
  std::string state() const;
  void set_state(const std::string& state);  // throws on text that is no engine state

  double uniform01();                       // in [0, 1)
  // One draw. (Named apart from the tensor versions: normal({3}) must never mean normal(3.f).)
  float uniform1(float lo, float hi);        // in [lo, hi)
  float normal1(float mean = 0.f, float std = 1.f);
  int64_t randint(int64_t lo, int64_t hi);  // in [lo, hi)
  std::vector<int64_t> permutation(int64_t n);  // Fisher-Yates

  Tensor normal(Shape shape, float mean = 0.f, float std = 1.f);
  Tensor uniform(Shape shape, float lo = 0.f, float hi = 1.f);
  Tensor bernoulli(Shape shape, float p);  // 1 with probability p, else 0

 private:
  std::mt19937_64 eng_;
};

// The process-wide default generator (initialisers use it unless given one).
Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace normad
