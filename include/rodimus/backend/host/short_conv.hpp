// Host kernel of the causal depthwise ShortConv + SiLU. Width 4 (Rodimus's, SPEC 2) reads the
// weights as stored, [E, 4] (four weights of a channel in 16 bytes: vectorised loads and
// de-interleaving shuffles), in one pass over the channels of a token; other widths take the
// weights transposed to [K, E] (by the caller, once per call) and make K multiply-add passes
// over unit-stride rows of E channels.
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
/// w [E, K] as stored (read when K == 4), wt [K, E] (the weights transposed: other widths) and
/// b [E] contiguous; state [S, K-1, E] contiguous; the packed batch's offsets / slot / token_seq.
/// shift_state (decode steps only: every sequence of the batch one token long): each token's
/// sequence state is shifted by one input after its conv (the oldest row drops out, the token's
/// input becomes the newest), by the work item that computed it.
struct ShortConvArgs {
  const float* x = nullptr;
  const float* w = nullptr;   ///< the weights as stored: [E, K] (K == 4)
  const float* wt = nullptr;  ///< the weights transposed: [K, E] (K != 4)
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

// Tokens [t0, t1), each row of E channels at once: y = b + the K products of the weights with
// the input rows (from x or the carried state), then SiLU in place. K4: width 4, the weights
// [E, 4] read as stored, one pass; otherwise K unit-stride passes over the transposed weights.
template <bool Fma, bool K4>
[[gnu::always_inline]] inline void short_conv_rows_portable(const ShortConvArgs& a, std::int64_t t0,
                                                            std::int64_t t1) {
  const int e = a.e;
  const int k = K4 ? 4 : a.k;
  const float* b = a.b;
  for (std::int64_t t = t0; t < t1; ++t) {
    const int s = a.token_seq[t];
    const int off = a.offsets[s];
    const int i = static_cast<int>(t) - off;
    float* y = a.xs + t * a.ldxs;
    auto input = [&](int j) {         // the input row of tap j
      const int m = i - (k - 1) + j;  // relative to the call start
      return m >= 0 ? a.x + std::int64_t(off + m) * a.ldx
                    : a.state + (std::int64_t(a.slot[s]) * (k - 1) + (k - 1 + m)) * e;
    };
    if constexpr (K4) {
      const float* __restrict v0 = input(0);
      const float* __restrict v1 = input(1);
      const float* __restrict v2 = input(2);
      const float* __restrict v3 = input(3);
      const float* __restrict w = a.w;
      for (int c = 0; c < e; ++c) {
        const float* wc = w + 4 * std::int64_t(c);
        float acc = madd<Fma>(wc[0], v0[c], b[c]);
        acc = madd<Fma>(wc[1], v1[c], acc);
        acc = madd<Fma>(wc[2], v2[c], acc);
        y[c] = madd<Fma>(wc[3], v3[c], acc);
      }
    } else {
      for (int c = 0; c < e; ++c) y[c] = b[c];
      for (int j = 0; j < k; ++j) {
        const float* v = input(j);
        const float* wj = a.wt + std::int64_t(j) * e;
        for (int c = 0; c < e; ++c) y[c] = madd<Fma>(wj[c], v[c], y[c]);
      }
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
  if (a.k == 4)
    short_conv_rows_portable<false, true>(a, t0, t1);
  else
    short_conv_rows_portable<false, false>(a, t0, t1);
}

#if RODIMUS_HAVE_X86_DISPATCH
RODIMUS_TARGET_AVX2 inline void short_conv_rows_avx2(const ShortConvArgs& a, std::int64_t t0,
                                                     std::int64_t t1) {
  if (a.k == 4)
    short_conv_rows_portable<true, true>(a, t0, t1);
  else
    short_conv_rows_portable<true, false>(a, t0, t1);
}
RODIMUS_TARGET_AVX512 inline void short_conv_rows_avx512(const ShortConvArgs& a, std::int64_t t0,
                                                         std::int64_t t1) {
  if (a.k == 4)
    short_conv_rows_portable<true, true>(a, t0, t1);
  else
    short_conv_rows_portable<true, false>(a, t0, t1);
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
