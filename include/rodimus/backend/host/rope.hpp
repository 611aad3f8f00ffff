// Host kernel of the rotary embedding: per token, the rotary_dim / 2 angles' cos and sin once
// (libm, as the generic kernel), then the rotation of every head from that table (the generic
// kernel evaluates cos and sin once per head). Same arithmetic per element as the generic
// kernel (no fused multiply-adds), so the results are bit-identical to it. Three builds of the
// loop (generic, AVX2, AVX-512) chosen at run time by host_isa() (cpu_features.hpp).
#pragma once

#include <cmath>
#include <cstdint>

#include "rodimus/backend/host/cpu_features.hpp"

namespace rodimus::backend::host {

/// Largest rotary_dim / 2 the host kernel takes (its per-token table lives on the stack).
inline constexpr int kRopeMaxHalf = 256;
/// Tokens per work item of the host rotary embedding.
inline constexpr int kRopeTokenBlock = 16;

/// Operands of rope_rows: x [N, heads * head_dim] (row stride ldx), rotated in place in the
/// first 2 * half columns of each head; the packed batch's offsets / pos0 / token_seq.
struct RopeArgs {
  float* x = nullptr;
  std::int64_t ldx = 0;
  const float* inv_freq = nullptr;  ///< [half]
  const int* offsets = nullptr;
  const int* pos0 = nullptr;
  const int* token_seq = nullptr;
  int heads = 0, head_dim = 0, half = 0;
};

namespace detail {

[[gnu::always_inline]] inline void rope_rows_portable(const RopeArgs& a, std::int64_t t0,
                                                      std::int64_t t1) {
  const int half = a.half;
  float cs[kRopeMaxHalf], sn[kRopeMaxHalf];
  for (std::int64_t t = t0; t < t1; ++t) {
    const int s = a.token_seq[t];
    const float pos = static_cast<float>(a.pos0[s] + (static_cast<int>(t) - a.offsets[s]));
    for (int i = 0; i < half; ++i) {
      const float ang = pos * a.inv_freq[i];
      cs[i] = std::cos(ang);
      sn[i] = std::sin(ang);
    }
    float* row = a.x + t * a.ldx;
    for (int h = 0; h < a.heads; ++h) {
      float* x1 = row + std::int64_t(h) * a.head_dim;
      float* x2 = x1 + half;
      for (int i = 0; i < half; ++i) {
        const float v1 = x1[i];
        const float v2 = x2[i];
        x1[i] = v1 * cs[i] - v2 * sn[i];
        x2[i] = v2 * cs[i] + v1 * sn[i];
      }
    }
  }
}

inline void rope_rows_generic(const RopeArgs& a, std::int64_t t0, std::int64_t t1) {
  rope_rows_portable(a, t0, t1);
}

#if RODIMUS_HAVE_X86_DISPATCH
RODIMUS_TARGET_AVX2 inline void rope_rows_avx2(const RopeArgs& a, std::int64_t t0,
                                               std::int64_t t1) {
  rope_rows_portable(a, t0, t1);
}
RODIMUS_TARGET_AVX512 inline void rope_rows_avx512(const RopeArgs& a, std::int64_t t0,
                                                   std::int64_t t1) {
  rope_rows_portable(a, t0, t1);
}
#endif

}  // namespace detail

/// Tokens [t0, t1) of the rotary embedding, with the widest kernel host_isa() allows.
inline void rope_rows(const RopeArgs& a, std::int64_t t0, std::int64_t t1) {
#if RODIMUS_HAVE_X86_DISPATCH
  switch (host_isa()) {
    case HostIsa::Avx512:
      detail::rope_rows_avx512(a, t0, t1);
      return;
    case HostIsa::Avx2:
      detail::rope_rows_avx2(a, t0, t1);
      return;
    default:
      break;
  }
#endif
  detail::rope_rows_generic(a, t0, t1);
}

}  // namespace rodimus::backend::host
