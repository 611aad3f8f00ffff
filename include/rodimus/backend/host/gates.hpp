// Host kernels of the element-wise gates: the DDTS selection gates with the key normalisation,
// the channel gate's sigmoid product, SwiGLU's silu product. Branch-free math from fast_math.hpp
// so the row loops vectorise; three builds (generic, AVX2, AVX-512) chosen at run time by
// host_isa() (cpu_features.hpp), as in gemv.hpp.
#pragma once

#include <cmath>
#include <cstdint>

#include "rodimus/backend/host/cpu_features.hpp"
#include "rodimus/backend/host/fast_math.hpp"

namespace rodimus::backend::host {

/// Operands of ddts_gate_rows: per row, s = softplus(s_raw), tau = sigmoid(tau_raw),
/// a = -tau * s, k_out = s^tau * k / max(||k||_2, eps).  k_out may alias k.
struct DdtsGateArgs {
  const float* s_raw = nullptr;
  const float* tau_raw = nullptr;
  const float* k = nullptr;
  float* a = nullptr;
  float* k_out = nullptr;
  std::int64_t lds = 0, ldt = 0, ldk = 0, lda = 0, ldko = 0;
  int n = 0;
  float eps = 0.f;
};

/// Which element-wise product gate_product_rows computes.
enum class GateProduct { Sigmoid, Silu };

/// Operands of gate_product_rows: out = f(z) * x, f = sigmoid or silu. out may alias x.
struct GateProductArgs {
  const float* z = nullptr;
  const float* x = nullptr;
  float* out = nullptr;
  std::int64_t ldz = 0, ldx = 0, ldo = 0;
  int width = 0;
};

namespace detail {

[[gnu::always_inline]] inline float gate_sigmoid(float z) {
  return 1.f / (1.f + exp_clamped(-z));
}

// max(z, 0) + log1p(e^-|z|). e^-|z| from exp_clamped (floorf, which exp_nonpositive uses, is not
// vectorised by GCC), so for |z| > 87 it is e^-87 ~ 1.6e-38 where the generic kernel has 0: an
// absolute difference below 2e-38 in s (and no select, which GCC 12 would turn into a branch).
[[gnu::always_inline]] inline float gate_softplus(float z) {
  const float az = z < 0.f ? -z : z;
  const float zp = (z + az) * 0.5f;  // max(z, 0), exactly
  return zp + log1p_unit(exp_clamped(-az));
}

template <bool Fma>
[[gnu::always_inline]] inline void ddts_gate_rows_portable(const DdtsGateArgs& g, std::int64_t t0,
                                                           std::int64_t t1) {
  const int n = g.n;
  for (std::int64_t t = t0; t < t1; ++t) {
    const float* sr = g.s_raw + t * g.lds;
    const float* tr = g.tau_raw + t * g.ldt;
    const float* k = g.k + t * g.ldk;
    float* a = g.a + t * g.lda;
    float* ko = g.k_out + t * g.ldko;
    const float ss = sum_squares<Fma>(k, n);
    const float norm = std::sqrt(ss);
    const float inv = 1.f / (norm > g.eps ? norm : g.eps);
    for (int i = 0; i < n; ++i) {
      const float s = gate_softplus(sr[i]);
      const float tau = gate_sigmoid(tr[i]);
      a[i] = -tau * s;
      const float v = tau * log_nonnegative(s);  // -inf for s = 0
      const float ev = exp_clamped(v);
      const float beta = v < -87.f ? 0.f : ev;  // s^tau
      ko[i] = beta * k[i] * inv;
    }
  }
}

template <GateProduct P>
[[gnu::always_inline]] inline void gate_product_rows_portable(const GateProductArgs& g,
                                                              std::int64_t t0, std::int64_t t1) {
  const int w = g.width;
  for (std::int64_t t = t0; t < t1; ++t) {
    const float* z = g.z + t * g.ldz;
    const float* x = g.x + t * g.ldx;
    float* out = g.out + t * g.ldo;
    for (int i = 0; i < w; ++i) {
      const float s = gate_sigmoid(z[i]);
      out[i] = (P == GateProduct::Silu ? z[i] * s : s) * x[i];
    }
  }
}

inline void ddts_gate_rows_generic(const DdtsGateArgs& g, std::int64_t t0, std::int64_t t1) {
  ddts_gate_rows_portable<false>(g, t0, t1);
}
template <GateProduct P>
void gate_product_rows_generic(const GateProductArgs& g, std::int64_t t0, std::int64_t t1) {
  gate_product_rows_portable<P>(g, t0, t1);
}

#if RODIMUS_HAVE_X86_DISPATCH
RODIMUS_TARGET_AVX2 inline void ddts_gate_rows_avx2(const DdtsGateArgs& g, std::int64_t t0,
                                                    std::int64_t t1) {
  ddts_gate_rows_portable<true>(g, t0, t1);
}
RODIMUS_TARGET_AVX512 inline void ddts_gate_rows_avx512(const DdtsGateArgs& g, std::int64_t t0,
                                                        std::int64_t t1) {
  ddts_gate_rows_portable<true>(g, t0, t1);
}
template <GateProduct P>
RODIMUS_TARGET_AVX2 void gate_product_rows_avx2(const GateProductArgs& g, std::int64_t t0,
                                                std::int64_t t1) {
  gate_product_rows_portable<P>(g, t0, t1);
}
template <GateProduct P>
RODIMUS_TARGET_AVX512 void gate_product_rows_avx512(const GateProductArgs& g, std::int64_t t0,
                                                    std::int64_t t1) {
  gate_product_rows_portable<P>(g, t0, t1);
}
#endif

}  // namespace detail

/// Rows [t0, t1) of the DDTS gates, with the widest kernel host_isa() allows.
inline void ddts_gate_rows(const DdtsGateArgs& g, std::int64_t t0, std::int64_t t1) {
#if RODIMUS_HAVE_X86_DISPATCH
  switch (host_isa()) {
    case HostIsa::Avx512:
      detail::ddts_gate_rows_avx512(g, t0, t1);
      return;
    case HostIsa::Avx2:
      detail::ddts_gate_rows_avx2(g, t0, t1);
      return;
    default:
      break;
  }
#endif
  detail::ddts_gate_rows_generic(g, t0, t1);
}

/// Rows [t0, t1) of out = sigmoid(z) * x (P = Sigmoid) or silu(z) * x (P = Silu).
template <GateProduct P>
inline void gate_product_rows(const GateProductArgs& g, std::int64_t t0, std::int64_t t1) {
#if RODIMUS_HAVE_X86_DISPATCH
  switch (host_isa()) {
    case HostIsa::Avx512:
      detail::gate_product_rows_avx512<P>(g, t0, t1);
      return;
    case HostIsa::Avx2:
      detail::gate_product_rows_avx2<P>(g, t0, t1);
      return;
    default:
      break;
  }
#endif
  detail::gate_product_rows_generic<P>(g, t0, t1);
}

}  // namespace rodimus::backend::host
