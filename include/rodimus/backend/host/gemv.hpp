// Host kernel of the linear layer for a few tokens (decode, batch decode): each weight row is
// read from memory once and, while it sits in L1, multiplied with every token of the call.
// Memory-bound by design: its floor is (weight bytes) / (memory bandwidth).
//
// Three builds of the same loop, chosen at run time by host_isa() (cpu_features.hpp):
//   avx512   explicit intrinsics. One token: the 4 rows of a block read one after the other
//            (one forward stream), unmasked loads, natural-order bf16 widening. More tokens:
//            4 rows per pass, 32 columns per step, up to 4 tokens per register block; bf16
//            widened even/odd by a shift and a mask, fp16 by vcvtph2ps, masked steps. Both
//            sum 4 rows of a token in one transpose-add reduction (see gemv_rows_avx512)
//   avx2     the portable loop compiled for AVX2 + FMA
//   generic  the portable loop for the build's baseline ISA (any CPU, any compiler)
#pragma once

#include <atomic>
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
/// Distance of the AVX-512 kernel's software prefetch ahead of its weight loads, per row stream
/// (2026-12-02, AMD EPYC Zen 5 VM, 1 thread: 2048 as fast as any of 1024..6144; without
/// software prefetch the bf16 kernel streams at about half the rate).
inline constexpr int kGemvPrefetchBytes = 2048;
namespace detail {
inline std::atomic<bool>& gemv_one_token_sequential_slot() {
  static std::atomic<bool> on{true};
  return on;
}
}  // namespace detail

/// Whether the AVX-512 build gives one token the sequential-rows kernel (the default) or the
/// row-blocked one. Process-wide (the GEMV runs on the pool's threads): a switch for A/B
/// benchmarks (bench_model's decode_host_variant) and for machines where the other streams
/// faster; set it between calls, not during one.
inline bool gemv_one_token_sequential() {
  return detail::gemv_one_token_sequential_slot().load(std::memory_order_relaxed);
}
inline void set_gemv_one_token_sequential(bool on) {
  detail::gemv_one_token_sequential_slot().store(on, std::memory_order_relaxed);
}

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

// --- The row-blocked AVX-512 kernel -------------------------------------------------------
// kGemvRowBlock rows at a time, columns in steps of 32, tokens in blocks of up to 4 held in
// registers: each step loads 32 weights of every row of the block once and the 32 activations
// of each token once, and one transposing reduction sums the 4 rows' accumulators of a token
// into 4 outputs (a single-row kernel pays a full horizontal sum, the loop set-up and the
// tails per row: at bf16's 2 bytes per weight that overhead was a third of the time).
//
// bf16 weights are widened without a shuffle: one 64-byte load holds 32 weights, the even ones
// are the dwords shifted left by 16 and the odd ones the dwords with the low half cleared; the
// activations are split the same way (one permute per 16, shared by the rows of the block).
// Products and sums stay fp32, as exact as the single-row kernel's.
//
// Measured against (2026-12-02, Zen 5, 1 thread, 4 MiB bf16 matrices streamed from memory):
// AVX512_BF16 vdpbf16ps with x split into bf16 hi + lo (two dot products per weight, x
// converted once per call into a scratch buffer, error ~2^-17 relative per term) streamed at the
// same rate at one token (21.4 GB/s both: memory-bound) and slower at four (12.7 against
// 18.4 GB/s), so the kernel keeps the exact fp32 path and needs neither scratch nor a BF16 check.

/// Rows per block of the AVX-512 kernel.
inline constexpr int kGemvRowBlock = 4;

// The two 16-lane halves (as fp32) of the 32 weights from column i of a row: columns
// [i, i+16) and [i+16, i+32), or for bf16 the even and the odd columns of [i, i+32).
// m: the columns (of 32) that exist.
template <StorageType W>
[[gnu::always_inline]] RODIMUS_TARGET_AVX512 inline void load32_avx512(const W* wr, int i,
                                                                       __mmask32 m, __m512& h0,
                                                                       __m512& h1) {
  const __mmask16 m0 = static_cast<__mmask16>(m), m1 = static_cast<__mmask16>(m >> 16);
  if constexpr (std::is_same_v<W, float>) {
    h0 = _mm512_maskz_loadu_ps(m0, wr + i);
    h1 = _mm512_maskz_loadu_ps(m1, wr + i + 16);
  } else if constexpr (std::is_same_v<W, bf16>) {
    const __m512i v = _mm512_maskz_loadu_epi16(m, reinterpret_cast<const std::uint16_t*>(wr + i));
    const __mmask16 all =
        0xffff;  // maskz forms: GCC 12 warns about the plain ones' undefined source
    h0 = _mm512_castsi512_ps(_mm512_maskz_slli_epi32(all, v, 16));
    h1 = _mm512_castsi512_ps(_mm512_maskz_and_epi32(all, v, _mm512_set1_epi32(int(0xffff0000u))));
  } else {
    const __mmask16 all = 0xffff;
    h0 = _mm512_maskz_cvtph_ps(
        all, _mm256_maskz_loadu_epi16(m0, reinterpret_cast<const std::uint16_t*>(wr + i)));
    h1 = _mm512_maskz_cvtph_ps(
        all, _mm256_maskz_loadu_epi16(m1, reinterpret_cast<const std::uint16_t*>(wr + i + 16)));
  }
}

// The activations matching load32_avx512's halves: columns [i, i+16), [i+16, i+32), or for
// bf16 weights the even and the odd columns.
template <StorageType W>
[[gnu::always_inline]] RODIMUS_TARGET_AVX512 inline void xload32_avx512(const float* xr, int i,
                                                                        __mmask32 m, __m512& h0,
                                                                        __m512& h1) {
  const __m512 a = _mm512_maskz_loadu_ps(static_cast<__mmask16>(m), xr + i);
  const __m512 b = _mm512_maskz_loadu_ps(static_cast<__mmask16>(m >> 16), xr + i + 16);
  if constexpr (std::is_same_v<W, bf16>) {
    const __m512i even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd =
        _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    h0 = _mm512_permutex2var_ps(a, even, b);
    h1 = _mm512_permutex2var_ps(a, odd, b);
  } else {
    h0 = a;
    h1 = b;
  }
}

// [sum(a), sum(b), sum(c), sum(d)]: a transpose-add of four accumulators.
[[gnu::always_inline]] RODIMUS_TARGET_AVX512 inline __m128 hsum4_avx512(__m512 a, __m512 b,
                                                                        __m512 c, __m512 d) {
  // per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3] and the same for c, d (maskz forms: GCC 12
  // warns about the undefined source of the plain unpacks)
  const __mmask16 all16 = 0xffff;
  const __m512 ab =
      _mm512_add_ps(_mm512_maskz_unpacklo_ps(all16, a, b), _mm512_maskz_unpackhi_ps(all16, a, b));
  const __m512 cd =
      _mm512_add_ps(_mm512_maskz_unpacklo_ps(all16, c, d), _mm512_maskz_unpackhi_ps(all16, c, d));
  // per lane: [a, b, c, d] partial sums
  const __m512 s = _mm512_add_ps(_mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(1, 0, 1, 0)),
                                 _mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(3, 2, 3, 2)));
  const __mmask8 all = 0xff;
  const __m256 s8 = _mm256_add_ps(_mm512_maskz_extractf32x8_ps(all, s, 0),
                                  _mm512_maskz_extractf32x8_ps(all, s, 1));
  return _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
}

// Rows [o, o+R) (R <= kGemvRowBlock), tokens [0, NT) (NT <= 4). With one or two tokens the
// even and odd halves get separate accumulators, so that no FMA chain binds on latency.
template <StorageType W, int R, int NT>
RODIMUS_TARGET_AVX512 inline void gemv_block_avx512(const float* x, int ldx, const W* w,
                                                    const float* bias, float* y, int ldy, int in,
                                                    int o) {
  constexpr int P = NT <= 2 ? 2 : 1;
  constexpr int kLineBytes = 64;
  constexpr int kStepBytes = 32 * int(sizeof(W));
  const W* wr[R];
  RODIMUS_HOST_UNROLL(4)
  for (int r = 0; r < R; ++r) wr[r] = w + std::int64_t(o + r) * in;
  // (fully unrolled loops over constant bounds: the accumulators must stay in registers)
  __m512 acc[R][NT][P];
  RODIMUS_HOST_UNROLL(4)
  for (int r = 0; r < R; ++r) RODIMUS_HOST_UNROLL(4)
  for (int t = 0; t < NT; ++t) RODIMUS_HOST_UNROLL(2)
  for (int p = 0; p < P; ++p) acc[r][t][p] = _mm512_setzero_ps();

  // Each row is a stream; prefetch kGemvPrefetchBytes ahead in it, and once that passes the
  // row's end, in the same row of the next block (the rows between are this block's). The
  // last step of a row whose width is no multiple of 32 is masked.
  const std::int64_t row_bytes = std::int64_t(in) * std::int64_t(sizeof(W));
  const std::int64_t next_block = std::int64_t(R - 1) * row_bytes;
  const __mmask32 tail = static_cast<__mmask32>((std::uint64_t(1) << (in % 32)) - 1u);
  for (int i = 0; i < in; i += 32) {
    const __mmask32 m = in - i >= 32 ? ~__mmask32(0) : tail;
    const std::int64_t ahead = std::int64_t(i) * std::int64_t(sizeof(W)) + kGemvPrefetchBytes;
    const std::int64_t off = ahead + (ahead >= row_bytes ? next_block : 0);
    __m512 wv[R][2];
    RODIMUS_HOST_UNROLL(4)
    for (int r = 0; r < R; ++r) {
      RODIMUS_HOST_UNROLL(2)
      for (int b = 0; b < kStepBytes; b += kLineBytes)
        _mm_prefetch(reinterpret_cast<const char*>(wr[r]) + off + b, _MM_HINT_T0);
      load32_avx512<W>(wr[r], i, m, wv[r][0], wv[r][1]);
    }
    RODIMUS_HOST_UNROLL(4)
    for (int t = 0; t < NT; ++t) {
      __m512 x0, x1;
      xload32_avx512<W>(x + std::int64_t(t) * ldx, i, m, x0, x1);
      RODIMUS_HOST_UNROLL(4)
      for (int r = 0; r < R; ++r) {
        acc[r][t][0] = _mm512_fmadd_ps(x0, wv[r][0], acc[r][t][0]);
        acc[r][t][P - 1] = _mm512_fmadd_ps(x1, wv[r][1], acc[r][t][P - 1]);
      }
    }
  }

  const __mmask8 rows = static_cast<__mmask8>((1u << R) - 1u);
  const __m128 b = bias ? _mm_maskz_loadu_ps(rows, bias + o) : _mm_setzero_ps();
  RODIMUS_HOST_UNROLL(4)
  for (int t = 0; t < NT; ++t) {
    __m512 s[kGemvRowBlock];
    RODIMUS_HOST_UNROLL(4)
    for (int r = 0; r < kGemvRowBlock; ++r) {
      if (r < R) {
        s[r] = P == 2 ? _mm512_add_ps(acc[r][t][0], acc[r][t][P - 1]) : acc[r][t][0];
      } else {
        s[r] = _mm512_setzero_ps();
      }
    }
    _mm_mask_storeu_ps(y + std::int64_t(t) * ldy + o, rows,
                       _mm_add_ps(hsum4_avx512(s[0], s[1], s[2], s[3]), b));
  }
}

// --- The sequential-rows AVX-512 kernel (one token) -----------------------------------------
// The rows of a 4-row block are read one after the other, so memory sees one forward stream
// instead of four interleaved ones; the 4 rows' accumulators still share one transposing
// reduction. bf16 weights are widened in their natural order (zero-extend + shift) so the
// activations need no even / odd permute. The main loop's loads are unmasked: on the Zen 5 VM
// a masked load that misses the caches streamed at a quarter of the rate (a scratch kernel: 5.5
// against 23 GB/s at 1 thread), so only a row's last step of a width no multiple of 32 is
// masked, and a software prefetch kGemvSeqPrefetchBytes ahead (past the row's end into the next
// row, which is where the stream goes) keeps the lines in L1 before the loads.
// Measured against the row-blocked kernel (2026-12-07, Zen 5 VM, bf16, one token, 512 MiB of
// weights, GB/s): 1 thread in = 1024 / 2048 / 4096: 24.7-28.5 / 26.8-28.3 / 26.2-27.4 against
// 22.0-23.9 / 25.5-27.4 / 24.2-27.0; 2 threads: 50.4-57.3 / 48.5-51.8 / 44.1-51.2 against
// 45.5-46.9 / 43.9-51.3 / 48.8-52.1. From two tokens on the activations' loads per weight
// make it compute-bound and slower than the row-blocked kernel (4 tokens, 1 thread, in = 1024:
// 13 against 19.6 GB/s), so it serves one token only.

/// Distance of the sequential kernel's software prefetch ahead of its weight loads.
inline constexpr int kGemvSeqPrefetchBytes = 4096;

// 32 weights from column i of a row, in column order, as two fp32 halves; unmasked (kFull) or
// masked by m (the columns of 32 that exist).
template <StorageType W, bool kFull>
[[gnu::always_inline]] RODIMUS_TARGET_AVX512 inline void load32_natural_avx512(const W* wr, int i,
                                                                               __mmask32 m,
                                                                               __m512& h0,
                                                                               __m512& h1) {
  const __mmask16 m0 = static_cast<__mmask16>(m), m1 = static_cast<__mmask16>(m >> 16);
  if constexpr (std::is_same_v<W, float>) {
    h0 = kFull ? _mm512_loadu_ps(wr + i) : _mm512_maskz_loadu_ps(m0, wr + i);
    h1 = kFull ? _mm512_loadu_ps(wr + i + 16) : _mm512_maskz_loadu_ps(m1, wr + i + 16);
  } else {
    const auto* p = reinterpret_cast<const std::uint16_t*>(wr + i);
    const __m256i a = kFull ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))
                            : _mm256_maskz_loadu_epi16(m0, p);
    const __m256i b = kFull ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 16))
                            : _mm256_maskz_loadu_epi16(m1, p + 16);
    const __mmask16 all = 0xffff;  // maskz forms: GCC 12 warns about the plain ones' source
    if constexpr (std::is_same_v<W, bf16>) {
      h0 = _mm512_castsi512_ps(
          _mm512_maskz_slli_epi32(all, _mm512_maskz_cvtepu16_epi32(all, a), 16));
      h1 = _mm512_castsi512_ps(
          _mm512_maskz_slli_epi32(all, _mm512_maskz_cvtepu16_epi32(all, b), 16));
    } else {
      h0 = _mm512_maskz_cvtph_ps(all, a);
      h1 = _mm512_maskz_cvtph_ps(all, b);
    }
  }
}

// One step of 32 columns of one row for NT tokens (P accumulators per token).
template <StorageType W, int NT, int P, bool kFull>
[[gnu::always_inline]] RODIMUS_TARGET_AVX512 inline void gemv_seq_step_avx512(
    const float* x, int ldx, const W* wr, int i, __mmask32 m, __m512 (&acc)[NT][P]) {
  __m512 w0, w1;
  load32_natural_avx512<W, kFull>(wr, i, m, w0, w1);
  RODIMUS_HOST_UNROLL(4)
  for (int t = 0; t < NT; ++t) {
    const float* xr = x + std::int64_t(t) * ldx + i;
    const __m512 x0 =
        kFull ? _mm512_loadu_ps(xr) : _mm512_maskz_loadu_ps(static_cast<__mmask16>(m), xr);
    const __m512 x1 = kFull ? _mm512_loadu_ps(xr + 16)
                            : _mm512_maskz_loadu_ps(static_cast<__mmask16>(m >> 16), xr + 16);
    acc[t][0] = _mm512_fmadd_ps(x0, w0, acc[t][0]);
    acc[t][P - 1] = _mm512_fmadd_ps(x1, w1, acc[t][P - 1]);
  }
}

// One row for NT tokens: out[t] holds the row's 16 partial sums of token t.
template <StorageType W, int NT>
[[gnu::always_inline]] RODIMUS_TARGET_AVX512 inline void gemv_seq_row_avx512(const float* x,
                                                                             int ldx, const W* wr,
                                                                             int in,
                                                                             __m512 (&out)[NT]) {
  constexpr int P = NT <= 2 ? 2 : 1;
  constexpr int kLineBytes = 64;
  constexpr int kStepBytes = 32 * int(sizeof(W));
  __m512 acc[NT][P];
  RODIMUS_HOST_UNROLL(4)
  for (int t = 0; t < NT; ++t) RODIMUS_HOST_UNROLL(2)
  for (int p = 0; p < P; ++p) acc[t][p] = _mm512_setzero_ps();
  const char* pf = reinterpret_cast<const char*>(wr) + kGemvSeqPrefetchBytes;
  const int in_main = in / 32 * 32;
  for (int i = 0; i < in_main; i += 32) {
    RODIMUS_HOST_UNROLL(2)
    for (int b = 0; b < kStepBytes; b += kLineBytes)
      _mm_prefetch(pf + std::int64_t(i) * std::int64_t(sizeof(W)) + b, _MM_HINT_T0);
    gemv_seq_step_avx512<W, NT, P, true>(x, ldx, wr, i, ~__mmask32(0), acc);
  }
  if (in_main < in)
    gemv_seq_step_avx512<W, NT, P, false>(
        x, ldx, wr, in_main, static_cast<__mmask32>((std::uint64_t(1) << (in - in_main)) - 1u),
        acc);
  RODIMUS_HOST_UNROLL(4)
  for (int t = 0; t < NT; ++t)
    out[t] = P == 2 ? _mm512_add_ps(acc[t][0], acc[t][P - 1]) : acc[t][0];
}

// Rows [o, o+R) (R <= kGemvRowBlock) one after the other, tokens [0, NT) (NT <= 4).
template <StorageType W, int R, int NT>
RODIMUS_TARGET_AVX512 inline void gemv_seq_block_avx512(const float* x, int ldx, const W* w,
                                                        const float* bias, float* y, int ldy,
                                                        int in, int o) {
  __m512 s[kGemvRowBlock][NT];
  RODIMUS_HOST_UNROLL(4)
  for (int r = 0; r < kGemvRowBlock; ++r) {
    if (r < R) {
      gemv_seq_row_avx512<W, NT>(x, ldx, w + std::int64_t(o + r) * in, in, s[r]);
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

// --- Both kernels' row and token blocking -------------------------------------------------
// Block kernels as types: Block::run<W, R, NT> computes rows [o, o+R), tokens [0, NT).
struct GemvInterleavedBlock {
  template <StorageType W, int R, int NT>
  [[gnu::always_inline]] RODIMUS_TARGET_AVX512 static void run(const float* x, int ldx, const W* w,
                                                               const float* bias, float* y, int ldy,
                                                               int in, int o) {
    gemv_block_avx512<W, R, NT>(x, ldx, w, bias, y, ldy, in, o);
  }
};
struct GemvSequentialBlock {
  template <StorageType W, int R, int NT>
  [[gnu::always_inline]] RODIMUS_TARGET_AVX512 static void run(const float* x, int ldx, const W* w,
                                                               const float* bias, float* y, int ldy,
                                                               int in, int o) {
    gemv_seq_block_avx512<W, R, NT>(x, ldx, w, bias, y, ldy, in, o);
  }
};

// Rows [o, o+R), all n tokens in blocks of 4 (the block's rows stay in L1/L2 between token
// blocks, so memory sees them once).
template <class Block, StorageType W, int R>
RODIMUS_TARGET_AVX512 inline void gemv_rowblock_avx512(const float* x, int ldx, const W* w,
                                                       const float* bias, float* y, int ldy, int n,
                                                       int in, int o) {
  for (int t0 = 0; t0 < n; t0 += 4) {
    const float* xt = x + std::int64_t(t0) * ldx;
    float* yt = y + std::int64_t(t0) * ldy;
    switch (n - t0 < 4 ? n - t0 : 4) {
      case 1:
        Block::template run<W, R, 1>(xt, ldx, w, bias, yt, ldy, in, o);
        break;
      case 2:
        Block::template run<W, R, 2>(xt, ldx, w, bias, yt, ldy, in, o);
        break;
      case 3:
        Block::template run<W, R, 3>(xt, ldx, w, bias, yt, ldy, in, o);
        break;
      default:
        Block::template run<W, R, 4>(xt, ldx, w, bias, yt, ldy, in, o);
        break;
    }
  }
}

// Rows [o_begin, o_end) in blocks of kGemvRowBlock, the remainder of 1-3 rows as one block.
template <class Block, StorageType W>
RODIMUS_TARGET_AVX512 void gemv_rows_avx512_with(const float* x, int ldx, const W* w,
                                                 const float* bias, float* y, int ldy, int n,
                                                 int in, int o_begin, int o_end) {
  int o = o_begin;
  for (; o + kGemvRowBlock <= o_end; o += kGemvRowBlock)
    gemv_rowblock_avx512<Block, W, kGemvRowBlock>(x, ldx, w, bias, y, ldy, n, in, o);
  switch (o_end - o) {
    case 1:
      gemv_rowblock_avx512<Block, W, 1>(x, ldx, w, bias, y, ldy, n, in, o);
      break;
    case 2:
      gemv_rowblock_avx512<Block, W, 2>(x, ldx, w, bias, y, ldy, n, in, o);
      break;
    case 3:
      gemv_rowblock_avx512<Block, W, 3>(x, ldx, w, bias, y, ldy, n, in, o);
      break;
    default:
      break;
  }
}

/// The row-blocked kernel (4 rows walked together) for any token count.
template <StorageType W>
RODIMUS_TARGET_AVX512 void gemv_rows_avx512_blocked(const float* x, int ldx, const W* w,
                                                    const float* bias, float* y, int ldy, int n,
                                                    int in, int o_begin, int o_end) {
  gemv_rows_avx512_with<GemvInterleavedBlock, W>(x, ldx, w, bias, y, ldy, n, in, o_begin, o_end);
}

/// The sequential-rows kernel for any token count (the dispatcher gives it one token).
template <StorageType W>
RODIMUS_TARGET_AVX512 void gemv_rows_avx512_sequential(const float* x, int ldx, const W* w,
                                                       const float* bias, float* y, int ldy, int n,
                                                       int in, int o_begin, int o_end) {
  gemv_rows_avx512_with<GemvSequentialBlock, W>(x, ldx, w, bias, y, ldy, n, in, o_begin, o_end);
}

// The AVX-512 build: one token takes the sequential-rows kernel (gemv_one_token_sequential(),
// session 25), more tokens the row-blocked kernel. Until session 20 one token
// took a row-by-row kernel (one horizontal sum per row, software prefetch 2 KiB ahead), chosen
// on 2026-12-02 at 1 thread (23.3 / 22.0 GB/s row-wise / blocked at in = 1024). Session 20
// (Zen 5 VM, bench_linear bf16 N:1, 3 alternated runs, GB/s of weights, row-wise / blocked):
// 2 threads: out 2048x4096 24-30 / 34-40, lm_head 28-34 / 36-42 (triad 38-42), in_q 19-22 /
// 23-25, fc_x 32-35 / 32-38; 1 thread: out 15.5-19.5 / 20-21.6, lm_head 18.6-20 / 22.4-24,
// in_q 13.5-17.7 / 17.4-18.6, fc_x 19.4-20.7 / 19.1-21.6. Four rows streamed at once keep
// more loads in flight than one row and its prefetch, which matters most with both cores
// streaming.
template <StorageType W>
RODIMUS_TARGET_AVX512 void gemv_rows_avx512(const float* x, int ldx, const W* w, const float* bias,
                                            float* y, int ldy, int n, int in, int o_begin,
                                            int o_end) {
  if (n == 1 && gemv_one_token_sequential())
    gemv_rows_avx512_sequential<W>(x, ldx, w, bias, y, ldy, n, in, o_begin, o_end);
  else
    gemv_rows_avx512_blocked<W>(x, ldx, w, bias, y, ldy, n, in, o_begin, o_end);
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
