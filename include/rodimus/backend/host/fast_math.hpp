// Vectorisable scalar math for host kernels: branch-free forms that compilers turn into SIMD
// code inside the loops of backend/host/ (libm calls would block vectorisation).
#pragma once

#include <cstdint>
#include <cstring>

namespace rodimus::backend::host::detail {

// e^xc = 2^n e^r with r = xc - n ln2 (ln2 split in two for an exact product), for xc in
// [-87, 87] and n = xc / ln2 rounded to an integer (so |r| <= ln2 / 2): a degree-6 Taylor
// polynomial of e^r times 2^n built directly in the exponent bits.
[[gnu::always_inline]] inline float exp_reduced(float xc, float n) {
  const float r = (xc - n * 0.693145751953125f) - n * 1.42860682030941723212e-6f;
  float p = 1.f / 720.f;
  p = p * r + 1.f / 120.f;
  p = p * r + 1.f / 24.f;
  p = p * r + 1.f / 6.f;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  const std::int32_t e = (static_cast<std::int32_t>(n) + 127) << 23;
  float two_n;
  std::memcpy(&two_n, &e, sizeof two_n);
  return p * two_n;
}

// exp(x) for x <= 0 (a score minus its running maximum), |relative error| < 2.6e-7 (checked on
// every float of [-87, 0]); exact 0 for x < -87 where expf underflows anyway. Branch-free so loops of it vectorise.
[[gnu::always_inline]] inline float exp_nonpositive(float x) {
  const float xc = x < -87.f ? -87.f : x;
  const float v = exp_reduced(xc, __builtin_floorf(xc * 1.44269504088896341f + 0.5f));
  return x < -87.f ? 0.f : v;
}

// exp(x) with x clamped to [-87, 87] (so never 0 or inf), |relative error| < 2.6e-7 inside.
// Written without data-dependent branches: the clamps are the only comparisons and are never
// taken on real activations, so even loops the compiler keeps scalar run without mispredictions
// (the rounding adds and subtracts 1.5 * 2^23 instead of calling floor).
[[gnu::always_inline]] inline float exp_clamped(float x) {
  float xc = x < -87.f ? -87.f : x;
  xc = xc > 87.f ? 87.f : xc;
  return exp_reduced(xc, (xc * 1.44269504088896341f + 12582912.f) - 12582912.f);
}

/// a * b + c, fused where the caller's target has FMA (`Fma` = true) and vectorised either way.
/// ISO C++ builds do not contract a * b + c on their own (-ffp-contract=off).
template <bool Fma>
[[gnu::always_inline]] inline float madd(float a, float b, float c) {
  if constexpr (Fma)
    return __builtin_fmaf(a, b, c);
  else
    return a * b + c;
}

}  // namespace rodimus::backend::host::detail
