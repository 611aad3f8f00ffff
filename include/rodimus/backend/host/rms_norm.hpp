// Host kernels of the RMS norms (plain, fused residual add, gated): per row, z into its
// destination, the sum of squares as an OpenMP SIMD reduction (fast_math.hpp's sum_squares), then
// the scaling in place; unit-stride loops that compilers vectorise. Three builds of the same loop
// (generic, AVX2, AVX-512), chosen at run time by host_isa() (cpu_features.hpp), as in gemv.hpp.
#pragma once

#include <cmath>
#include <cstdint>

#include "rodimus/backend/host/cpu_features.hpp"
#include "rodimus/backend/host/fast_math.hpp"
#include "rodimus/backend/norm_args.hpp"

namespace rodimus::backend::host {

using backend::GatedRmsNormArgs;  // backend/norm_args.hpp
using backend::RmsNormArgs;

namespace detail {

[[gnu::always_inline]] inline float host_silu(float z) {
  return z * (1.f / (1.f + exp_clamped(-z)));
}

// Rows [t0, t1): the row's z (mode 0: h itself; otherwise h + r, stored in r (mode 1) or out
// (mode 2)), its sum of squares, then out = z * inv * w.
template <bool Fma>
[[gnu::always_inline]] inline void rms_norm_rows_portable(const RmsNormArgs& a, std::int64_t t0,
                                                          std::int64_t t1) {
  const int d = a.d;
  const float* w = a.w;
  for (std::int64_t t = t0; t < t1; ++t) {
    const float* h = a.h + t * a.ldh;
    float* r = a.r ? a.r + t * a.ldr : nullptr;
    float* out = a.out + t * a.ldo;
    const float* z = h;
    if (a.mode == 0) {
      if (r)
        for (int i = 0; i < d; ++i) r[i] = h[i];
    } else if (a.mode == 1) {
      for (int i = 0; i < d; ++i) r[i] = h[i] + r[i];
      z = r;
    } else {
      for (int i = 0; i < d; ++i) out[i] = h[i] + r[i];
      z = out;
    }
    const float ss = sum_squares<Fma>(z, d);
    const float inv = 1.f / std::sqrt(ss / static_cast<float>(d) + a.eps);
    for (int i = 0; i < d; ++i) out[i] = z[i] * inv * w[i];
  }
}

// Rows [t0, t1): y = z first, its sum of squares, then y = y * inv * w in place.
template <bool Fma>
[[gnu::always_inline]] inline void gated_rms_norm_rows_portable(const GatedRmsNormArgs& a,
                                                                std::int64_t t0, std::int64_t t1) {
  const int e = a.e;
  const float* w = a.w;
  const float* w_res = a.w_res;
  for (std::int64_t t = t0; t < t1; ++t) {
    const float* o = a.o + t * a.ldo;
    const float* g = a.g + t * a.ldg;
    float* y = a.y + t * a.ldy;
    if (w_res) {
      const float* xs = a.xs + t * a.ldxs;
      for (int i = 0; i < e; ++i) y[i] = madd<Fma>(xs[i], w_res[i], o[i]) * host_silu(g[i]);
    } else {
      for (int i = 0; i < e; ++i) y[i] = o[i] * host_silu(g[i]);
    }
    const float ss = sum_squares<Fma>(y, e);
    const float inv = 1.f / std::sqrt(ss / static_cast<float>(e) + a.eps);
    for (int i = 0; i < e; ++i) y[i] = y[i] * inv * w[i];
  }
}

inline void rms_norm_rows_generic(const RmsNormArgs& a, std::int64_t t0, std::int64_t t1) {
  rms_norm_rows_portable<false>(a, t0, t1);
}
inline void gated_rms_norm_rows_generic(const GatedRmsNormArgs& a, std::int64_t t0,
                                        std::int64_t t1) {
  gated_rms_norm_rows_portable<false>(a, t0, t1);
}

#if RODIMUS_HAVE_X86_DISPATCH
RODIMUS_TARGET_AVX2 inline void rms_norm_rows_avx2(const RmsNormArgs& a, std::int64_t t0,
                                                   std::int64_t t1) {
  rms_norm_rows_portable<true>(a, t0, t1);
}
RODIMUS_TARGET_AVX512 inline void rms_norm_rows_avx512(const RmsNormArgs& a, std::int64_t t0,
                                                       std::int64_t t1) {
  rms_norm_rows_portable<true>(a, t0, t1);
}
RODIMUS_TARGET_AVX2 inline void gated_rms_norm_rows_avx2(const GatedRmsNormArgs& a,
                                                         std::int64_t t0, std::int64_t t1) {
  gated_rms_norm_rows_portable<true>(a, t0, t1);
}
RODIMUS_TARGET_AVX512 inline void gated_rms_norm_rows_avx512(const GatedRmsNormArgs& a,
                                                             std::int64_t t0, std::int64_t t1) {
  gated_rms_norm_rows_portable<true>(a, t0, t1);
}
#endif

}  // namespace detail

/// Rows [t0, t1) of the (residual-add) RMSNorm, with the widest kernel host_isa() allows.
inline void rms_norm_rows(const RmsNormArgs& a, std::int64_t t0, std::int64_t t1) {
#if RODIMUS_HAVE_X86_DISPATCH
  switch (host_isa()) {
    case HostIsa::Avx512:
      detail::rms_norm_rows_avx512(a, t0, t1);
      return;
    case HostIsa::Avx2:
      detail::rms_norm_rows_avx2(a, t0, t1);
      return;
    default:
      break;
  }
#endif
  detail::rms_norm_rows_generic(a, t0, t1);
}

/// Rows [t0, t1) of the gated RMSNorm, with the widest kernel host_isa() allows.
inline void gated_rms_norm_rows(const GatedRmsNormArgs& a, std::int64_t t0, std::int64_t t1) {
#if RODIMUS_HAVE_X86_DISPATCH
  switch (host_isa()) {
    case HostIsa::Avx512:
      detail::gated_rms_norm_rows_avx512(a, t0, t1);
      return;
    case HostIsa::Avx2:
      detail::gated_rms_norm_rows_avx2(a, t0, t1);
      return;
    default:
      break;
  }
#endif
  detail::gated_rms_norm_rows_generic(a, t0, t1);
}

}  // namespace rodimus::backend::host
