// Vectorisable scalar math for host kernels: branch-free forms that compilers turn into SIMD
// code inside the loops of backend/host/ (libm calls would block vectorisation).
#pragma once

#include <cstdint>
#include <cstring>

/// Lets the compiler reassociate the sum into `v` in the loop that follows (an OpenMP SIMD
/// reduction: vector partial sums), in builds with OpenMP; a plain loop otherwise, and in
/// translation units nvcc compiles (its front end warns on the pragma, as RODIMUS_HOST_UNROLL's).
#if defined(_OPENMP) && !defined(__CUDACC__)
#define RODIMUS_PRAGMA_(x) _Pragma(#x)
#define RODIMUS_SIMD_SUM(v) RODIMUS_PRAGMA_(omp simd reduction(+ : v))
#else
#define RODIMUS_SIMD_SUM(v)
#endif

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
  return p * __builtin_bit_cast(float, e);  // a bit cast, not memcpy: GCC 12 vectorises this
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

// ln(x) for finite x >= 0 (denormals included; ln(0) = -inf), |error| within ~2 fp32 ulps of
// the result: x = 2^e m with m in [sqrt(1/2), sqrt(2)), ln m = f - f^2/2 + f^3 P(f) with f = m - 1
// (the Cephes logf polynomial). Branch-free so loops of it vectorise (bit casts, not memcpy:
// GCC 12 does not vectorise this loop through the memcpy form).
[[gnu::always_inline]] inline float log_nonnegative(float x) {
  const bool tiny = x < 1.17549435e-38f;  // denormal or zero: scale into the normal range
  const float xs = tiny ? x * 8388608.f : x;
  const std::int32_t bits = __builtin_bit_cast(std::int32_t, xs);
  // selects as statements of their own: GCC 12 turns some selects inside expressions into
  // branches, and then leaves the loop scalar
  const float e_adj = tiny ? 23.f : 0.f;
  float e = static_cast<float>(((bits >> 23) & 0xff) - 127) - e_adj;
  const float m0 = __builtin_bit_cast(float, (bits & 0x007fffff) | 0x3f800000);
  const bool big = m0 > 1.41421356f;
  const float m = big ? m0 * 0.5f : m0;
  e = big ? e + 1.f : e;
  const float f = m - 1.f;
  const float z = f * f;
  float p = 7.0376836292e-2f;
  p = p * f - 1.1514610310e-1f;
  p = p * f + 1.1676998740e-1f;
  p = p * f - 1.2420140846e-1f;
  p = p * f + 1.4249322787e-1f;
  p = p * f - 1.6668057665e-1f;
  p = p * f + 2.0000714765e-1f;
  p = p * f - 2.4999993993e-1f;
  p = p * f + 3.3333331174e-1f;
  float y = p * f * z;
  y += -2.12194440e-4f * e;
  y += -0.5f * z;
  float r = f + y;
  r += 0.693359375f * e;
  return x > 0.f ? r : -__builtin_inff();
}

// ln(1 + y) for y in [0, 1], accurate for tiny y too: with u = 1 + y rounded, ln(u) * y / (u - 1)
// (Goldberg's correction; y itself where u rounds to 1).
[[gnu::always_inline]] inline float log1p_unit(float y) {
  const float u = 1.f + y;
  const float d = u - 1.f;
  const float l = log_nonnegative(u);
  const float dd = d == 0.f ? 1.f : d;  // selects as statements of their own (see above)
  const float q = l * (y / dd);
  return d == 0.f ? y : q;
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

/// sum_i z[i]^2, vectorised (see RODIMUS_SIMD_SUM).
template <bool Fma>
[[gnu::always_inline]] inline float sum_squares(const float* z, int d) {
  float ss = 0.f;
  RODIMUS_SIMD_SUM(ss)
  for (int i = 0; i < d; ++i) ss = madd<Fma>(z[i], z[i], ss);
  return ss;
}

}  // namespace rodimus::backend::host::detail
