// Host kernel of the linear layer for a few tokens (decode, batch decode): each weight row is
// read from memory once and, while it sits in L1, multiplied with every token of the call.
// Memory-bound by design: its floor is (weight bytes) / (memory bandwidth).
//
// Three builds of the same loop, chosen at run time by host_isa() (cpu_features.hpp):
//   avx512   explicit intrinsics: 16 fp32 lanes, bf16 widened by a shift, fp16 by vcvtph2ps,
//            masked tails, up to 8 tokens per register block
//   avx2     the portable loop compiled for AVX2 + FMA
//   generic  the portable loop for the build's baseline ISA (any CPU, any compiler)
#pragma once

#include <cstdint>

#include "rodimus/backend/host/cpu_features.hpp"
#include "rodimus/core/dtype.hpp"
#include "rodimus/core/views.hpp"

namespace rodimus::backend::host {

/// Most tokens the GEMV serves in one call (larger blocks go to the GEMM path).
inline constexpr int kGemvMaxTokens = 16;
/// Tokens per register block of the portable loop.
inline constexpr int kGemvTokens = 4;
/// Independent partial sums per token (one AVX-512 register of floats).
inline constexpr int kGemvLanes = 16;
/// Distance of the AVX-512 kernel's software prefetch ahead of its weight loads.
inline constexpr int kGemvPrefetchBytes = 2048;

namespace detail {

// The portable loop: rows [o_begin, o_end), tokens [0, n) in blocks of kGemvTokens, lanes of
// independent partial sums that compilers vectorise without reassociation.
template <StorageType W>
[[gnu::always_inline]] inline void gemv_rows_portable(const float* x, int ldx, const W* w,
                                                      const float* bias, float* y, int ldy, int n,
                                                      int in, int o_begin, int o_end) {
  const int in_main = in / kGemvLanes * kGemvLanes;
  for (int o = o_begin; o < o_end; ++o) {
    const W* wr = w + std::int64_t(o) * in;
    for (int t0 = 0; t0 < n; t0 += kGemvTokens) {
      const int nb = n - t0 < kGemvTokens ? n - t0 : kGemvTokens;
      float acc[kGemvTokens][kGemvLanes] = {};
      for (int i = 0; i < in_main; i += kGemvLanes) {
        float wf[kGemvLanes];
        for (int j = 0; j < kGemvLanes; ++j) wf[j] = to_f32(wr[i + j]);
        for (int t = 0; t < kGemvTokens; ++t) {
          if (t < nb) {
            const float* xr = x + std::int64_t(t0 + t) * ldx + i;
            for (int j = 0; j < kGemvLanes; ++j) acc[t][j] += xr[j] * wf[j];
          }
        }
      }
      for (int t = 0; t < nb; ++t) {
        float s = 0.f;
        for (int j = 0; j < kGemvLanes; ++j) s += acc[t][j];
        const float* xr = x + std::int64_t(t0 + t) * ldx;
        for (int i = in_main; i < in; ++i) s += xr[i] * to_f32(wr[i]);
        y[std::int64_t(t0 + t) * ldy + o] = s + (bias ? bias[o] : 0.f);
      }
    }
  }
}

template <StorageType W>
void gemv_rows_generic(const float* x, int ldx, const W* w, const float* bias, float* y, int ldy,
                       int n, int in, int o_begin, int o_end) {
  gemv_rows_portable<W>(x, ldx, w, bias, y, ldy, n, in, o_begin, o_end);
}

#if RODIMUS_HAVE_X86_DISPATCH

template <StorageType W>
RODIMUS_TARGET_AVX2 void gemv_rows_avx2(const float* x, int ldx, const W* w, const float* bias,
                                        float* y, int ldy, int n, int in, int o_begin, int o_end) {
  gemv_rows_portable<W>(x, ldx, w, bias, y, ldy, n, in, o_begin, o_end);
}

// 16 weights of row `wr` from column i as fp32 (the first `m` lanes when masked).
template <StorageType W>
RODIMUS_TARGET_AVX512 inline __m512 load16_avx512(const W* wr, int i, __mmask16 m) {
  if constexpr (std::is_same_v<W, float>) {
    return _mm512_maskz_loadu_ps(m, wr + i);
  } else {
    const __m256i h = _mm256_maskz_loadu_epi16(m, reinterpret_cast<const std::uint16_t*>(wr + i));
    if constexpr (std::is_same_v<W, bf16>) {
      // maskz forms throughout: GCC 12 warns about the undefined source of the plain ones.
      const __mmask16 all = 0xffff;
      return _mm512_castsi512_ps(
          _mm512_maskz_slli_epi32(all, _mm512_maskz_cvtepu16_epi32(all, h), 16));
    } else {
      return _mm512_maskz_cvtph_ps(__mmask16(0xffff), h);
    }
  }
}

// Sum of the 16 lanes.
RODIMUS_TARGET_AVX512 inline float hsum_avx512(__m512 v) {
  const __m256 lo = _mm512_maskz_extractf32x8_ps(__mmask8(0xff), v, 0);
  const __m256 hi = _mm512_maskz_extractf32x8_ps(__mmask8(0xff), v, 1);
  const __m256 s8 = _mm256_add_ps(lo, hi);
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

// One row, NT tokens (compile-time so the accumulators live in registers). With one or two
// tokens a single FMA chain per token would bind on FMA latency (16 weights per 4 cycles, below
// the memory rate of bf16 weights), so P independent partial sums per token break the chain.
template <StorageType W, int NT>
RODIMUS_TARGET_AVX512 inline void gemv_row_avx512(const float* x, int ldx, const W* wr, float bias,
                                                  float* y, int ldy, int in) {
  constexpr int P = NT == 1 ? 4 : NT == 2 ? 2 : 1;
  __m512 acc[NT][P];
  for (int t = 0; t < NT; ++t)
    for (int p = 0; p < P; ++p) acc[t][p] = _mm512_setzero_ps();
  int i = 0;
  for (; i + 16 * P <= in; i += 16 * P) {
    // rows are consecutive in memory: fetch kGemvPrefetchBytes ahead (into the next rows), more
    // loads in flight than the hardware prefetcher keeps for one stream
    _mm_prefetch(reinterpret_cast<const char*>(wr + i) + kGemvPrefetchBytes, _MM_HINT_T0);
    if constexpr (P * 16 * sizeof(W) > 64)
      _mm_prefetch(reinterpret_cast<const char*>(wr + i) + kGemvPrefetchBytes + 64, _MM_HINT_T0);
    for (int p = 0; p < P; ++p) {
      const __m512 wv = load16_avx512<W>(wr, i + 16 * p, __mmask16(0xffff));
      for (int t = 0; t < NT; ++t)
        acc[t][p] = _mm512_fmadd_ps(_mm512_loadu_ps(x + std::int64_t(t) * ldx + i + 16 * p), wv,
                                    acc[t][p]);
    }
  }
  for (; i + 16 <= in; i += 16) {
    const __m512 wv = load16_avx512<W>(wr, i, __mmask16(0xffff));
    for (int t = 0; t < NT; ++t)
      acc[t][0] = _mm512_fmadd_ps(_mm512_loadu_ps(x + std::int64_t(t) * ldx + i), wv, acc[t][0]);
  }
  if (i < in) {
    const __mmask16 m = static_cast<__mmask16>((1u << (in - i)) - 1u);
    const __m512 wv = load16_avx512<W>(wr, i, m);
    for (int t = 0; t < NT; ++t)
      acc[t][0] =
          _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + std::int64_t(t) * ldx + i), wv, acc[t][0]);
  }
  for (int t = 0; t < NT; ++t) {
    for (int p = 1; p < P; ++p) acc[t][0] = _mm512_add_ps(acc[t][0], acc[t][p]);
    y[std::int64_t(t) * ldy] = hsum_avx512(acc[t][0]) + bias;
  }
}

template <StorageType W>
RODIMUS_TARGET_AVX512 void gemv_rows_avx512(const float* x, int ldx, const W* w, const float* bias,
                                            float* y, int ldy, int n, int in, int o_begin,
                                            int o_end) {
  for (int o = o_begin; o < o_end; ++o) {
    const W* wr = w + std::int64_t(o) * in;
    const float b = bias ? bias[o] : 0.f;
    // Token blocks of 8; the row stays in L1 between blocks, so memory sees it once.
    for (int t0 = 0; t0 < n; t0 += 8) {
      const float* xt = x + std::int64_t(t0) * ldx;
      float* yt = y + std::int64_t(t0) * ldy + o;
      switch (n - t0 < 8 ? n - t0 : 8) {
        case 1:
          gemv_row_avx512<W, 1>(xt, ldx, wr, b, yt, ldy, in);
          break;
        case 2:
          gemv_row_avx512<W, 2>(xt, ldx, wr, b, yt, ldy, in);
          break;
        case 3:
          gemv_row_avx512<W, 3>(xt, ldx, wr, b, yt, ldy, in);
          break;
        case 4:
          gemv_row_avx512<W, 4>(xt, ldx, wr, b, yt, ldy, in);
          break;
        case 5:
          gemv_row_avx512<W, 5>(xt, ldx, wr, b, yt, ldy, in);
          break;
        case 6:
          gemv_row_avx512<W, 6>(xt, ldx, wr, b, yt, ldy, in);
          break;
        case 7:
          gemv_row_avx512<W, 7>(xt, ldx, wr, b, yt, ldy, in);
          break;
        default:
          gemv_row_avx512<W, 8>(xt, ldx, wr, b, yt, ldy, in);
          break;
      }
    }
  }
}

#endif  // RODIMUS_HAVE_X86_DISPATCH

}  // namespace detail

/// y[t, o] = sum_i x[t, i] w[o, i] (+ b[o]) for t < n, rows o in [o_begin, o_end), with the
/// widest kernel host_isa() allows. Any n works; it is meant for n <= kGemvMaxTokens.
// x: [n, in] (row stride ldx), w: [out, in], bias: [out] or null, y: [n, out] (row stride ldy)
template <StorageType W>
inline void gemv_rows(const float* x, int ldx, const W* w, const float* bias, float* y, int ldy,
                      int n, int in, int o_begin, int o_end) {
#if RODIMUS_HAVE_X86_DISPATCH
  switch (host_isa()) {
    case HostIsa::Avx512:
      detail::gemv_rows_avx512<W>(x, ldx, w, bias, y, ldy, n, in, o_begin, o_end);
      return;
    case HostIsa::Avx2:
      detail::gemv_rows_avx2<W>(x, ldx, w, bias, y, ldy, n, in, o_begin, o_end);
      return;
    default:
      break;
  }
#endif
  detail::gemv_rows_generic<W>(x, ldx, w, bias, y, ldy, n, in, o_begin, o_end);
}

}  // namespace rodimus::backend::host
