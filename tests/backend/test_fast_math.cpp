// The vectorisable scalar math of host kernels (backend/host/fast_math.hpp) and the activations
// built on it (core/math.hpp) against libm in double precision, over their whole ranges.
#include <catch2/catch.hpp>
#include <cmath>
#include <random>

#include "rodimus/backend/host/fast_math.hpp"
#include "rodimus/core/math.hpp"

namespace hd = rodimus::backend::host::detail;

TEST_CASE("fast math: exp forms and activations equal libm", "[backend][host][math]") {
  const auto seed = std::random_device{}();
  CAPTURE(seed);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> wide(-120.f, 120.f), near(-8.f, 8.f);
  double worst_exp = 0, worst_clamped = 0, worst_sig = 0, worst_silu = 0, worst_softplus = 0;
  for (int i = 0; i < 200000; ++i) {
    const float x = i % 2 ? wide(rng) : near(rng);
    const double ex = std::exp(double(x));
    if (x <= 0.f) {
      const double got = hd::exp_nonpositive(x);
      if (x < -87.f)
        CHECK(got == 0.0);
      else
        worst_exp = std::max(worst_exp, std::fabs(got - ex) / ex);
    }
    const double xc = std::min(87.0, std::max(-87.0, double(x)));
    worst_clamped =
        std::max(worst_clamped, std::fabs(hd::exp_clamped(x) - std::exp(xc)) / std::exp(xc));
    const double sig = 1.0 / (1.0 + std::exp(-double(x)));
    const float s = rodimus::detail::sigmoid(x);
    REQUIRE(std::isfinite(s));
    // relative where the value is a normal float, absolute below
    worst_sig = std::max(worst_sig, std::fabs(s - sig) / std::max(sig, 1e-20));
    worst_silu = std::max(worst_silu, std::fabs(rodimus::detail::silu(x) - x * sig) /
                                          std::max(std::fabs(x * sig), 1e-20));
    const double sp = std::log1p(std::exp(-std::fabs(double(x)))) + std::max(0.0, double(x));
    worst_softplus =
        std::max(worst_softplus, std::fabs(rodimus::detail::softplus(x) - sp) / std::max(sp, 1e-30));
  }
  CHECK(worst_exp < 3e-7);
  CHECK(worst_clamped < 3e-7);
  CHECK(worst_sig < 1e-6);
  CHECK(worst_silu < 1e-6);
  CHECK(worst_softplus < 1e-6);
  // saturation, not overflow, at the ends
  CHECK(rodimus::detail::sigmoid(-1e30f) >= 0.f);
  CHECK(rodimus::detail::sigmoid(-1e30f) < 1e-37f);
  CHECK(rodimus::detail::sigmoid(1e30f) == 1.f);
  CHECK(rodimus::detail::silu(-1e30f) <= 0.f);
  CHECK(std::isfinite(rodimus::detail::silu(-1e30f)));
}
