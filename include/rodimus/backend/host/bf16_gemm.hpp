// Host GEMM with bf16 operands (OperandPrecision::Bf16): y = bf16(x) W^T (+ b) for bf16 weights
// W, fp32 accumulation, on AVX512_BF16's vdpbf16ps, which multiplies two bf16 pairs per fp32
// lane per instruction: twice the FLOPs of vfmadd231ps at the same instruction rate (measured
// 2026-12-05 on the Zen 5 VM, one core, 24 independent chains: 7.0 G instructions/s either way,
// 450 GFLOP/s bf16 against 223 GFLOP/s fp32; OpenBLAS's sgemm reaches 165-178 of those 223).
//
// Data flow of one call (ops/linear.hpp, host_bf16_linear):
//   1. round_rows_bf16: x [n, in] fp32 -> xb [n, ldxb] bf16 (round to nearest even, as
//      from_f32<bf16>; ldxb = in rounded up to 32, the pad zero), so the pair
//      (x[t][2p], x[t][2p+1]) is one 32-bit word a broadcast puts in every lane.
//   2. Work items = (panel of kBf16GemmCols = 64 outputs) x (chunk of tokens). Per block of
//      kBf16GemmDepth inputs an item packs its 64 weight rows as pairs, pack[p][j] = the word
//      (w[j][2p], w[j][2p+1]) (16 x 16 transposes of 32-bit words, 64 KiB: stays in L2), then
//      sweeps its tokens in tiles of 6 tokens x 64 outputs: 24 zmm accumulators; per input pair
//      4 loads of packed weights, 6 broadcasts of activation words, 24 vdpbf16ps.
//   3. The tile adds y's earlier blocks (depth > kBf16GemmDepth) and the bias at the last block.
// vdpbf16ps flushes bf16 subnormals (|x| < 1.2e-38) to zero; every product of two bf16 values
// is exact in fp32, so the result is an fp32 sum of the exact products in some order.
//
// Without AVX512_BF16 (or under RODIMUS_HOST_ISA=avx2/generic) ops/linear.hpp widens xb back to
// fp32 and takes the fp32 path: the same operands, other summation order.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "rodimus/backend/host/cpu_features.hpp"
#include "rodimus/core/dtype.hpp"

namespace rodimus::backend::host {

/// Outputs per work item (4 zmm of fp32 lanes).
inline constexpr int kBf16GemmCols = 64;
/// Tokens per register tile.
inline constexpr int kBf16GemmTile = 6;
/// Inputs per packed block (even): 64 outputs x 512 inputs of bf16 = 64 KiB of packed weights.
inline constexpr int kBf16GemmDepth = 512;
/// Fewest tokens per work item when the tokens are split to give every thread work.
inline constexpr int kBf16GemmMinChunk = 48;

/// Row stride (elements) of the rounded activations for `in` inputs: a multiple of 32 (even,
/// so pairs are aligned words; rows start 64 bytes apart).
inline int bf16_gemm_ld(int in) { return (in + 31) / 32 * 32; }

/// One projection of a bf16-operand GEMM: y[t, o] = sum_i xb[t, i] w[o, i] (+ bias[o]).
struct Bf16GemmArgs {
  const bf16* xb = nullptr;  // [m, ldxb], rounded activations, zero past `in`
  int ldxb = 0;
  int m = 0;   // tokens
  int in = 0;  // inputs (w's row length)
  const bf16* w = nullptr;  // [out, in], dense rows
  const float* bias = nullptr;  // [out] or null
  float* y = nullptr;           // [m, ldy]
  std::int64_t ldy = 0;
  int out = 0;
  int chunk = 0;  // tokens per work item (bf16_gemm_plan)
};

/// Splits the tokens so that the call has at least `min_items` work items where it can.
inline void bf16_gemm_plan(Bf16GemmArgs& a, int min_items) {
  const int panels = (a.out + kBf16GemmCols - 1) / kBf16GemmCols;
  int chunks = (min_items + panels - 1) / std::max(panels, 1);
  chunks = std::clamp(chunks, 1, std::max(1, a.m / kBf16GemmMinChunk));
  a.chunk = (a.m + chunks - 1) / chunks;
  a.chunk = (a.chunk + kBf16GemmTile - 1) / kBf16GemmTile * kBf16GemmTile;
  if (a.chunk <= 0) a.chunk = kBf16GemmTile;
}

/// Work items of a planned call.
inline int bf16_gemm_items(const Bf16GemmArgs& a) {
  if (a.m <= 0 || a.out <= 0) return 0;
  return ((a.out + kBf16GemmCols - 1) / kBf16GemmCols) * ((a.m + a.chunk - 1) / a.chunk);
}

namespace detail {

inline void round_rows_bf16_generic(const float* x, std::int64_t ldx, int in, bf16* xb, int ldxb,
                                    int r0, int r1) {
  for (int t = r0; t < r1; ++t) {
    const float* xr = x + std::int64_t(t) * ldx;
    bf16* br = xb + std::int64_t(t) * ldxb;
    for (int i = 0; i < in; ++i) br[i] = from_f32<bf16>(xr[i]);
    for (int i = in; i < ldxb; ++i) br[i] = bf16{0};
  }
}

#if RODIMUS_HAVE_X86_DISPATCH

// from_f32<bf16> on 16 lanes: u + 0x7fff + ((u >> 16) & 1), NaNs quieted, the high halves.
RODIMUS_TARGET_AVX512 inline __m256i round16_bf16(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_maskz_srli_epi32(__mmask16(0xffff), u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_maskz_srli_epi32(__mmask16(0xffff), _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                _mm512_set1_epi32(0x7f800000));
  r = _mm512_mask_or_epi32(r, nan, _mm512_maskz_srli_epi32(__mmask16(0xffff), u, 16), _mm512_set1_epi32(0x40));
  return _mm512_maskz_cvtepi32_epi16(__mmask16(0xffff), r);
}

RODIMUS_TARGET_AVX512 inline void round_rows_bf16_avx512(const float* x, std::int64_t ldx, int in,
                                                         bf16* xb, int ldxb, int r0, int r1) {
  for (int t = r0; t < r1; ++t) {
    const float* xr = x + std::int64_t(t) * ldx;
    auto* br = reinterpret_cast<std::uint16_t*>(xb + std::int64_t(t) * ldxb);
    for (int i = 0; i < ldxb; i += 16) {
      const int left = in - i;
      const __mmask16 m = left >= 16 ? __mmask16(0xffff)
                          : left > 0 ? __mmask16((1u << left) - 1u)
                                     : __mmask16(0);
      // masked-off lanes load 0.0f, which rounds to the zero pad
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(br + i),
                          round16_bf16(_mm512_maskz_loadu_ps(m, xr + i)));
    }
  }
}

// r[0..15] (rows of 16 32-bit words) -> r[c] = column c. The maskz forms throughout: GCC 12
// warns about the undefined source operand of the plain ones.
RODIMUS_TARGET_AVX512 inline void transpose16x16_epi32(__m512i r[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_maskz_unpacklo_epi32(__mmask16(0xffff), r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_maskz_unpackhi_epi32(__mmask16(0xffff), r[2 * i], r[2 * i + 1]);
  }
  // u[4g + c], 128-bit lane l: rows 4g..4g+3 of column 4l + c
  for (int g = 0; g < 4; ++g) {
    u[4 * g + 0] = _mm512_maskz_unpacklo_epi64(__mmask8(0xff), t[4 * g], t[4 * g + 2]);
    u[4 * g + 1] = _mm512_maskz_unpackhi_epi64(__mmask8(0xff), t[4 * g], t[4 * g + 2]);
    u[4 * g + 2] = _mm512_maskz_unpacklo_epi64(__mmask8(0xff), t[4 * g + 1], t[4 * g + 3]);
    u[4 * g + 3] = _mm512_maskz_unpackhi_epi64(__mmask8(0xff), t[4 * g + 1], t[4 * g + 3]);
  }
  for (int c = 0; c < 4; ++c) {
    const __m512i a = _mm512_maskz_shuffle_i32x4(__mmask16(0xffff), u[c], u[4 + c], 0x88);
    const __m512i b = _mm512_maskz_shuffle_i32x4(__mmask16(0xffff), u[c], u[4 + c], 0xdd);
    const __m512i d = _mm512_maskz_shuffle_i32x4(__mmask16(0xffff), u[8 + c], u[12 + c], 0x88);
    const __m512i e = _mm512_maskz_shuffle_i32x4(__mmask16(0xffff), u[8 + c], u[12 + c], 0xdd);
    r[c] = _mm512_maskz_shuffle_i32x4(__mmask16(0xffff), a, d, 0x88);
    r[8 + c] = _mm512_maskz_shuffle_i32x4(__mmask16(0xffff), a, d, 0xdd);
    r[4 + c] = _mm512_maskz_shuffle_i32x4(__mmask16(0xffff), b, e, 0x88);
    r[12 + c] = _mm512_maskz_shuffle_i32x4(__mmask16(0xffff), b, e, 0xdd);
  }
}

// pack[p * 64 + j] = word (w[n0 + j][k0 + 2p], w[n0 + j][k0 + 2p + 1]) for p < kp, j < 64; zero
// for rows >= out and inputs >= in.
RODIMUS_TARGET_AVX512 inline void bf16_gemm_pack(const bf16* w, int in, int out, int n0, int k0,
                                                 int kp, std::uint32_t* pack) {
  for (int jb = 0; jb < kBf16GemmCols; jb += 16) {
    for (int pb = 0; pb < kp; pb += 16) {
      __m512i r[16];
      const int kbeg = k0 + 2 * pb;
      const int left = in - kbeg;
      const __mmask32 m = left >= 32 ? ~__mmask32(0)
                          : left > 0 ? __mmask32((std::uint64_t(1) << left) - 1u)
                                     : __mmask32(0);
      for (int i = 0; i < 16; ++i) {
        const int row = n0 + jb + i;
        r[i] = row < out ? _mm512_maskz_loadu_epi16(m, w + std::int64_t(row) * in + kbeg)
                         : _mm512_setzero_si512();
      }
      transpose16x16_epi32(r);
      const int qn = std::min(16, kp - pb);
      for (int q = 0; q < qn; ++q)
        _mm512_storeu_si512(pack + std::int64_t(pb + q) * kBf16GemmCols + jb, r[q]);
    }
  }
}

// One tile: MR tokens x 64 outputs over kp input pairs of a packed block.
template <int MR>
RODIMUS_TARGET_AVX512BF16 inline void bf16_gemm_tile(const bf16* xb, int ldxb,
                                                     const std::uint32_t* pack, int kp, float* y,
                                                     std::int64_t ldy, int cols, bool accumulate,
                                                     const float* bias) {
  __mmask16 m[4];
  for (int i = 0; i < 4; ++i) {
    const int c = std::clamp(cols - 16 * i, 0, 16);
    m[i] = c == 16 ? __mmask16(0xffff) : __mmask16((1u << c) - 1u);
  }
  __m512 acc[MR][4];
RODIMUS_HOST_UNROLL(6)
  for (int t = 0; t < MR; ++t)
RODIMUS_HOST_UNROLL(4)
    for (int i = 0; i < 4; ++i)
      acc[t][i] = accumulate ? _mm512_maskz_loadu_ps(m[i], y + t * ldy + 16 * i)
                             : _mm512_setzero_ps();
  const char* xr[MR];
RODIMUS_HOST_UNROLL(6)
  for (int t = 0; t < MR; ++t) xr[t] = reinterpret_cast<const char*>(xb + std::int64_t(t) * ldxb);
  for (int p = 0; p < kp; ++p) {
    const std::uint32_t* pp = pack + std::int64_t(p) * kBf16GemmCols;
    const __m512bh w0 = (__m512bh)_mm512_loadu_si512(pp);
    const __m512bh w1 = (__m512bh)_mm512_loadu_si512(pp + 16);
    const __m512bh w2 = (__m512bh)_mm512_loadu_si512(pp + 32);
    const __m512bh w3 = (__m512bh)_mm512_loadu_si512(pp + 48);
RODIMUS_HOST_UNROLL(6)
    for (int t = 0; t < MR; ++t) {
      std::int32_t word;
      std::memcpy(&word, xr[t] + 4 * p, 4);
      const __m512bh xv = (__m512bh)_mm512_set1_epi32(word);
      acc[t][0] = _mm512_dpbf16_ps(acc[t][0], xv, w0);
      acc[t][1] = _mm512_dpbf16_ps(acc[t][1], xv, w1);
      acc[t][2] = _mm512_dpbf16_ps(acc[t][2], xv, w2);
      acc[t][3] = _mm512_dpbf16_ps(acc[t][3], xv, w3);
    }
  }
RODIMUS_HOST_UNROLL(6)
  for (int t = 0; t < MR; ++t)
RODIMUS_HOST_UNROLL(4)
    for (int i = 0; i < 4; ++i) {
      __m512 v = acc[t][i];
      if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m[i], bias + 16 * i));
      _mm512_mask_storeu_ps(y + t * ldy + 16 * i, m[i], v);
    }
}

RODIMUS_TARGET_AVX512BF16 inline void bf16_gemm_item_avx512bf16(const Bf16GemmArgs& a, int item) {
  thread_local std::vector<std::uint32_t> pack;
  pack.resize(std::size_t(kBf16GemmDepth / 2) * kBf16GemmCols);
  const int chunks = (a.m + a.chunk - 1) / a.chunk;
  const int n0 = (item / chunks) * kBf16GemmCols;
  const int m0 = (item % chunks) * a.chunk, m1 = std::min(a.m, m0 + a.chunk);
  const int cols = std::min(kBf16GemmCols, a.out - n0);
  for (int k0 = 0; k0 < a.in; k0 += kBf16GemmDepth) {
    const int kp = (std::min(kBf16GemmDepth, a.in - k0) + 1) / 2;
    bf16_gemm_pack(a.w, a.in, a.out, n0, k0, kp, pack.data());
    const bool accumulate = k0 > 0;
    const float* bias = k0 + kBf16GemmDepth >= a.in && a.bias ? a.bias + n0 : nullptr;
    for (int t = m0; t < m1; t += kBf16GemmTile) {
      const bf16* xt = a.xb + std::int64_t(t) * a.ldxb + k0;
      float* yt = a.y + std::int64_t(t) * a.ldy + n0;
      switch (std::min(kBf16GemmTile, m1 - t)) {
        case 1:
          bf16_gemm_tile<1>(xt, a.ldxb, pack.data(), kp, yt, a.ldy, cols, accumulate, bias);
          break;
        case 2:
          bf16_gemm_tile<2>(xt, a.ldxb, pack.data(), kp, yt, a.ldy, cols, accumulate, bias);
          break;
        case 3:
          bf16_gemm_tile<3>(xt, a.ldxb, pack.data(), kp, yt, a.ldy, cols, accumulate, bias);
          break;
        case 4:
          bf16_gemm_tile<4>(xt, a.ldxb, pack.data(), kp, yt, a.ldy, cols, accumulate, bias);
          break;
        case 5:
          bf16_gemm_tile<5>(xt, a.ldxb, pack.data(), kp, yt, a.ldy, cols, accumulate, bias);
          break;
        default:
          bf16_gemm_tile<6>(xt, a.ldxb, pack.data(), kp, yt, a.ldy, cols, accumulate, bias);
          break;
      }
    }
  }
}

#endif  // RODIMUS_HAVE_X86_DISPATCH

}  // namespace detail

/// xb rows [r0, r1) = x rows [r0, r1) rounded to bf16 as from_f32<bf16> does (nearest even,
/// NaNs quieted); columns in..ldxb-1 zero.
// x: [>= r1, in] (row stride ldx), xb: [>= r1, ldxb]
inline void round_rows_bf16(const float* x, std::int64_t ldx, int in, bf16* xb, int ldxb, int r0,
                            int r1) {
#if RODIMUS_HAVE_X86_DISPATCH
  if (host_isa() == HostIsa::Avx512) return detail::round_rows_bf16_avx512(x, ldx, in, xb, ldxb, r0, r1);
#endif
  detail::round_rows_bf16_generic(x, ldx, in, xb, ldxb, r0, r1);
}

/// Work item `item` (< bf16_gemm_items(a)) of a planned call. Only where host_has_avx512_bf16().
inline void bf16_gemm_item([[maybe_unused]] const Bf16GemmArgs& a, [[maybe_unused]] int item) {
#if RODIMUS_HAVE_X86_DISPATCH
  if (host_has_avx512_bf16()) return detail::bf16_gemm_item_avx512bf16(a, item);
#endif
  throw BackendError("bf16_gemm_item: this CPU (or RODIMUS_HOST_ISA) has no AVX512_BF16");
}

}  // namespace rodimus::backend::host
