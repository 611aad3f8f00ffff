// The sampler's random numbers: a seeded 64-bit Mersenne Twister with a fixed conversion to
// [0, 1), so that one seed gives the same tokens with every standard library.
#pragma once

#include <cstdint>
#include <random>

namespace rodimus {

/// Reproducible uniform random numbers. std::mt19937_64's output sequence is fixed by the C++
/// standard; the conversion to a double is ours (the standard distributions are not portable).
class Rng {
 public:
  explicit Rng(std::uint64_t seed = 0) : engine_(seed) {}

  /// Restarts the stream of `seed`.
  void seed(std::uint64_t seed) { engine_.seed(seed); }

  /// The next raw 64-bit value.
  std::uint64_t next() { return engine_(); }

  /// A double uniform in [0, 1): the top 53 bits of the next value times 2^-53.
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }

 private:
  std::mt19937_64 engine_;
};

}  // namespace rodimus
