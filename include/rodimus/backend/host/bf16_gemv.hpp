// Host GEMV with bf16 operands (OperandPrecision::Bf16, 2..kGemvMaxTokens tokens): y = bf16(x)
// W^T (+ b) for bf16 weights, fp32 accumulation, on AVX512_BF16's vdpbf16ps.
//
// Why: from two tokens on the fp32-activation GEMV (gemv.hpp) is bound by its FMAs, not by
// memory (the Zen 5 VM retires one 512-bit FMA a cycle: at 4 tokens a thread streams ~16 GB/s
// of weights, half its read rate). vdpbf16ps multiplies 32 bf16 pairs per instruction, twice
// the products of an FMA, and needs no widening of the weights: their 64-byte loads are the
// instruction's operand as stored, the rounded activations (bf16_gemm.hpp's round_rows_bf16, in
// column order, zero past `in`) the other.
//
// Layout of the work: the rows of a 4-row block are read one after the other (one forward
// stream, as gemv.hpp's one-token kernel; software prefetch kGemvSeqPrefetchBytes ahead), each
// row for up to 4 tokens at a time with two accumulators per token (even / odd steps of 32
// columns), one transposing reduction per token and 4 rows. Every product of two bf16 values is
// exact in fp32, so the result is an fp32 sum of the exact products of the rounded operands.
#pragma once

#include <cstdint>
#include <stdexcept>

#include "rodimus/backend/host/bf16_gemm.hpp"
#include "rodimus/backend/host/cpu_features.hpp"
#include "rodimus/backend/host/gemv.hpp"
#include "rodimus/core/dtype.hpp"

namespace rodimus::backend::host {

namespace detail {

#if RODIMUS_HAVE_X86_DISPATCH

// One row for NT tokens: out[t] holds the row's 16 partial sums of token t. xb rows hold at
// least in rounded up to 32 elements, zero past `in`.
template <int NT>
[[gnu::always_inline]] RODIMUS_TARGET_AVX512BF16 inline void bf16_gemv_row(const bf16* xb,
                                                                           int ldxb,
                                                                           const bf16* wr, int in,
                                                                           __m512 (&out)[NT]) {
  constexpr int kLineBytes = 64;
  __m512 a0[NT], a1[NT];
  RODIMUS_HOST_UNROLL(4)
  for (int t = 0; t < NT; ++t) a0[t] = a1[t] = _mm512_setzero_ps();
  const char* pf = reinterpret_cast<const char*>(wr) + kGemvSeqPrefetchBytes;
  const int in_main = in / 32 * 32;
  int i = 0;
  for (; i + 64 <= in_main; i += 64) {
    _mm_prefetch(pf + std::int64_t(i) * 2, _MM_HINT_T0);
    _mm_prefetch(pf + std::int64_t(i) * 2 + kLineBytes, _MM_HINT_T0);
    const __m512bh w0 = (__m512bh)_mm512_loadu_si512(wr + i);
    const __m512bh w1 = (__m512bh)_mm512_loadu_si512(wr + i + 32);
    RODIMUS_HOST_UNROLL(4)
    for (int t = 0; t < NT; ++t) {
      const bf16* xr = xb + std::int64_t(t) * ldxb + i;
      a0[t] = _mm512_dpbf16_ps(a0[t], w0, (__m512bh)_mm512_loadu_si512(xr));
      a1[t] = _mm512_dpbf16_ps(a1[t], w1, (__m512bh)_mm512_loadu_si512(xr + 32));
    }
  }
  if (i < in) {  // one or two steps of 32 left, the last one masked where in % 32 != 0
    for (; i < in; i += 32) {
      const int left = in - i;
      const __mmask32 m =
          left >= 32 ? ~__mmask32(0) : static_cast<__mmask32>((std::uint64_t(1) << left) - 1u);
      const __m512bh w =
          (__m512bh)_mm512_maskz_loadu_epi16(m, reinterpret_cast<const std::uint16_t*>(wr + i));
      RODIMUS_HOST_UNROLL(4)
      for (int t = 0; t < NT; ++t)
        a0[t] = _mm512_dpbf16_ps(
            a0[t], w, (__m512bh)_mm512_loadu_si512(xb + std::int64_t(t) * ldxb + i));
    }
  }
  RODIMUS_HOST_UNROLL(4)
  for (int t = 0; t < NT; ++t) out[t] = _mm512_add_ps(a0[t], a1[t]);
}

// Rows [o, o+R) (R <= kGemvRowBlock) one after the other, tokens [0, NT) (NT <= 4).
template <int R, int NT>
RODIMUS_TARGET_AVX512BF16 inline void bf16_gemv_block(const bf16* xb, int ldxb, const bf16* w,
                                                      const float* bias, float* y,
                                                      std::int64_t ldy, int in, int o) {
  __m512 s[kGemvRowBlock][NT];
  RODIMUS_HOST_UNROLL(4)
  for (int r = 0; r < kGemvRowBlock; ++r) {
    if (r < R) {
      bf16_gemv_row<NT>(xb, ldxb, w + std::int64_t(o + r) * in, in, s[r]);
    } else {
      RODIMUS_HOST_UNROLL(4)
      for (int t = 0; t < NT; ++t) s[r][t] = _mm512_setzero_ps();
    }
  }
  const __mmask8 rows = static_cast<__mmask8>((1u << R) - 1u);
  const __m128 b = bias ? _mm_maskz_loadu_ps(rows, bias + o) : _mm_setzero_ps();
  RODIMUS_HOST_UNROLL(4)
  for (int t = 0; t < NT; ++t)
    _mm_mask_storeu_ps(y + std::int64_t(t) * ldy + o, rows,
                       _mm_add_ps(hsum4_avx512(s[0][t], s[1][t], s[2][t], s[3][t]), b));
}

template <int R>
RODIMUS_TARGET_AVX512BF16 inline void bf16_gemv_rowblock(const bf16* xb, int ldxb, const bf16* w,
                                                         const float* bias, float* y,
                                                         std::int64_t ldy, int n, int in, int o) {
  for (int t0 = 0; t0 < n; t0 += 4) {
    const bf16* xt = xb + std::int64_t(t0) * ldxb;
    float* yt = y + std::int64_t(t0) * ldy;
    switch (n - t0 < 4 ? n - t0 : 4) {
      case 1:
        bf16_gemv_block<R, 1>(xt, ldxb, w, bias, yt, ldy, in, o);
        break;
      case 2:
        bf16_gemv_block<R, 2>(xt, ldxb, w, bias, yt, ldy, in, o);
        break;
      case 3:
        bf16_gemv_block<R, 3>(xt, ldxb, w, bias, yt, ldy, in, o);
        break;
      default:
        bf16_gemv_block<R, 4>(xt, ldxb, w, bias, yt, ldy, in, o);
        break;
    }
  }
}

RODIMUS_TARGET_AVX512BF16 inline void bf16_gemv_rows_avx512bf16(const bf16* xb, int ldxb,
                                                                const bf16* w, const float* bias,
                                                                float* y, std::int64_t ldy, int n,
                                                                int in, int o_begin, int o_end) {
  int o = o_begin;
  for (; o + kGemvRowBlock <= o_end; o += kGemvRowBlock)
    bf16_gemv_rowblock<kGemvRowBlock>(xb, ldxb, w, bias, y, ldy, n, in, o);
  switch (o_end - o) {
    case 1:
      bf16_gemv_rowblock<1>(xb, ldxb, w, bias, y, ldy, n, in, o);
      break;
    case 2:
      bf16_gemv_rowblock<2>(xb, ldxb, w, bias, y, ldy, n, in, o);
      break;
    case 3:
      bf16_gemv_rowblock<3>(xb, ldxb, w, bias, y, ldy, n, in, o);
      break;
    default:
      break;
  }
}

#endif  // RODIMUS_HAVE_X86_DISPATCH

}  // namespace detail

/// y[t, o] = sum_i xb[t, i] w[o, i] (+ bias[o]) for t < n, rows o in [o_begin, o_end): xb the
/// rounded activations [n, ldxb] (round_rows_bf16; ldxb = bf16_gemm_ld(in), zero past in), w
/// [out, in] dense bf16 rows. Only where host_has_avx512_bf16() (ops/linear.hpp checks).
inline void bf16_gemv_rows([[maybe_unused]] const bf16* xb, [[maybe_unused]] int ldxb,
                           [[maybe_unused]] const bf16* w, [[maybe_unused]] const float* bias,
                           [[maybe_unused]] float* y, [[maybe_unused]] std::int64_t ldy,
                           [[maybe_unused]] int n, [[maybe_unused]] int in,
                           [[maybe_unused]] int o_begin, [[maybe_unused]] int o_end) {
#if RODIMUS_HAVE_X86_DISPATCH
  if (host_has_avx512_bf16())
    return detail::bf16_gemv_rows_avx512bf16(xb, ldxb, w, bias, y, ldy, n, in, o_begin, o_end);
#endif
  throw std::logic_error("bf16_gemv_rows: this CPU has no AVX512_BF16");
}

}  // namespace rodimus::backend::host
