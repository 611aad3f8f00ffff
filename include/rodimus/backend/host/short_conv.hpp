// Host kernel of the causal depthwise ShortConv + SiLU: with the weights transposed to [K, E]
// (by the caller, once per call), every token is K multiply-adds over unit-stride rows of E
// channels (the generic kernel reads the weights [E, K] with stride K per lane).
// Three builds of the same loop (generic, AVX2, AVX-512), chosen at run time by host_isa()
// (cpu_features.hpp), as in gemv.hpp.
#pragma once

#include <cstdint>

#include "rodimus/backend/host/cpu_features.hpp"
#include "rodimus/backend/host/fast_math.hpp"

namespace rodimus::backend::host {

/// Longest conv the host kernel takes (the library's limit, detail::kMaxConv).
inline constexpr int kShortConvMaxWidth = 64;
/// Tokens per work item of the host conv.
inline constexpr int kShortConvTokenBlock = 32;

/// Operands of short_conv_rows: x, xs [N, E] rows of stride ldx / ldxs (xs must not overlap x);
/// wt [K, E] (the conv weights transposed) and b [E] contiguous; state [S, K-1, E] contiguous; the packed batch's offsets / slot / token_seq.
/// shift_state (decode steps only: every sequence of the batch one token long): each token's
/// sequence state is shifted by one input after its conv (the oldest row drops out, the token's
/// input becomes the newest), by the work item that computed it.
struct ShortConvArgs {
  const float* x = nullptr;
  const float* wt = nullptr;  ///< the weights transposed: [K, E]
  const float* b = nullptr;
  float* state = nullptr;
  bool shift_state = false;
  float* xs = nullptr;
  const int* offsets = nullptr;
  const int* slot = nullptr;
  const int* token_seq = nullptr;
  std::int64_t ldx = 0, ldxs = 0;
  int e = 0, k = 0;
};

namespace detail {

// Tokens [t0, t1), each row of E channels at once: y = b, then K unit-stride multiply-adds of
// the transposed weights with the input rows (from x or the carried state), then SiLU in place.
template <bool Fma>
[[gnu::always_inline]] inline void short_conv_rows_portable(const ShortConvArgs& a,
                                                            std::int64_t t0, std::int64_t t1) {
  const int e = a.e;
  const int k = a.k;
  const float* b = a.b;
  for (std::int64_t t = t0; t < t1; ++t) {
    const int s = a.token_seq[t];
    const int off = a.offsets[s];
    const int i = static_cast<int>(t) - off;
    float* y = a.xs + t * a.ldxs;
    for (int c = 0; c < e; ++c) y[c] = b[c];
    for (int j = 0; j < k; ++j) {
      const int m = i - (k - 1) + j;  // relative to the call start
      const float* v = m >= 0 ? a.x + std::int64_t(off + m) * a.ldx
                              : a.state + (std::int64_t(a.slot[s]) * (k - 1) + (k - 1 + m)) * e;
      const float* wj = a.wt + std::int64_t(j) * e;
      for (int c = 0; c < e; ++c) y[c] = madd<Fma>(wj[c], v[c], y[c]);
    }
    for (int c = 0; c < e; ++c) y[c] = y[c] * (1.f / (1.f + exp_clamped(-y[c])));
    if (a.shift_state && k > 1) {  // this token was its sequence's only one: it alone reads it
      float* st = a.state + std::int64_t(a.slot[s]) * (k - 1) * e;
      for (int j = 0; j + 1 < k - 1; ++j)
        for (int c = 0; c < e; ++c) st[std::int64_t(j) * e + c] = st[std::int64_t(j + 1) * e + c];
      const float* xt = a.x + t * a.ldx;
      for (int c = 0; c < e; ++c) st[std::int64_t(k - 2) * e + c] = xt[c];
    }
  }
}

inline void short_conv_rows_generic(const ShortConvArgs& a, std::int64_t t0, std::int64_t t1) {
  short_conv_rows_portable<false>(a, t0, t1);
}

#if RODIMUS_HAVE_X86_DISPATCH
RODIMUS_TARGET_AVX2 inline void short_conv_rows_avx2(const ShortConvArgs& a, std::int64_t t0,
                                                     std::int64_t t1) {
  short_conv_rows_portable<true>(a, t0, t1);
}
RODIMUS_TARGET_AVX512 inline void short_conv_rows_avx512(const ShortConvArgs& a, std::int64_t t0,
                                                         std::int64_t t1) {
  short_conv_rows_portable<true>(a, t0, t1);
}
#endif

}  // namespace detail

/// xs for tokens [t0, t1) (any tokens of the batch, in any order of calls), with the widest
/// kernel host_isa() allows. The state is only read, unless shift_state.
inline void short_conv_rows(const ShortConvArgs& a, std::int64_t t0, std::int64_t t1) {
#if RODIMUS_HAVE_X86_DISPATCH
  switch (host_isa()) {
    case HostIsa::Avx512:
      detail::short_conv_rows_avx512(a, t0, t1);
      return;
    case HostIsa::Avx2:
      detail::short_conv_rows_avx2(a, t0, t1);
      return;
    default:
      break;
  }
#endif
  detail::short_conv_rows_generic(a, t0, t1);
}

}  // namespace rodimus::backend::host
