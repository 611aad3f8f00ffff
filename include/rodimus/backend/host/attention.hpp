// Host kernel of sliding-window / causal softmax attention for token blocks (prefill): one work
// item is a block of kAttnQueryBlock queries of one head of one sequence; keys are visited in
// tiles of kAttnKeyTile with an online softmax (flash-attention order), so the scores of a tile
// are a small matrix product (queries x transposed keys) and the output another (P x V), both
// with unit-stride inner loops that compilers vectorise, and exp() is a vectorisable polynomial.
// Compiled three ways like the GEMV (generic / AVX2 / AVX-512) and dispatched by host_isa().
//
// Work: 4 x H x hd FLOPs per (query, key) pair inside the window, plus one exp per pair.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "rodimus/backend/host/cpu_features.hpp"
#include "rodimus/backend/host/fast_math.hpp"

namespace rodimus::backend::host {

inline constexpr int kAttnQueryBlock = 32;
inline constexpr int kAttnKeyTile = 64;
/// Largest head size of the blocked kernel (larger heads take the generic Kokkos kernel).
inline constexpr int kAttnMaxHeadDim = 256;

/// Plain pointers and sizes of one attention call (all host memory).
struct AttentionArgs {
  const float* q;        // [N, ldq], query head h at column h*hd
  const float* k;        // [N, ldk]
  const float* v;        // [N, ldv]
  const float* k_cache;  // [S, wc, ldkc]
  const float* v_cache;  // [S, wc, ldvc]
  float* out;            // [N, ldo]
  std::int64_t ldq, ldk, ldv, ldo, ldkc, ldvc;
  int heads, heads_k, heads_v, hd, window_back, wc;
  float scale;
  const int* offsets;  // [B + 1]
  const int* pos0;     // [B]
  const int* slot;     // [B]
  int num_seqs;
};

namespace detail {

// Scratch of one work item, on the stack (about 100 KiB at the largest head size): no heap
// traffic, so decode steps through this kernel allocate nothing.
struct AttnScratch {
  float kt[kAttnMaxHeadDim * kAttnKeyTile];    // keys of the tile, transposed: [hd][tile]
  float s[kAttnQueryBlock * kAttnKeyTile];     // scores, then weights: [queries][tile]
  float o[kAttnQueryBlock * kAttnMaxHeadDim];  // running outputs: [queries][hd]
  const float* vrow[kAttnKeyTile];             // value rows of the tile
  float m[kAttnQueryBlock], l[kAttnQueryBlock];
};

// One work item: queries [i0, i1) (indices within sequence s) of head h.
[[gnu::always_inline]] inline void attention_block_portable(const AttentionArgs& a, int s, int h,
                                                            int i0, int i1) {
  constexpr int QB = kAttnQueryBlock, KT = kAttnKeyTile;
  const int hd = a.hd;
  AttnScratch sc;
  float* __restrict kt = sc.kt;
  float* __restrict sb = sc.s;
  float* __restrict ob = sc.o;
  const int off = a.offsets[s], p0 = a.pos0[s], sl = a.slot[s];
  const int nq = i1 - i0;
  const int kb = (h % a.heads_k) * hd, vb = (h % a.heads_v) * hd, qb = h * hd;
  const int wb = a.window_back;
  const int pfirst = p0 + i0, plast = p0 + i1 - 1;  // positions of the first / last query
  const int lo = (wb < 0 || pfirst - wb < 0) ? 0 : pfirst - wb;
  for (int i = 0; i < nq; ++i) {
    sc.m[i] = -3.0e38f;
    sc.l[i] = 0.f;
  }
  std::fill(ob, ob + std::size_t(QB) * hd, 0.f);
  for (int j0 = lo; j0 <= plast; j0 += KT) {
    const int nk = std::min(KT, plast + 1 - j0);
    // Gather the tile: keys transposed into kt[c][j], value row pointers.
    for (int j = 0; j < nk; ++j) {
      const int kp = j0 + j;
      const float* kr;
      if (kp >= p0) {
        const std::int64_t r = off + (kp - p0);
        kr = a.k + r * a.ldk + kb;
        sc.vrow[j] = a.v + r * a.ldv + vb;
      } else {
        const std::int64_t r = std::int64_t(sl) * a.wc + kp % a.wc;
        kr = a.k_cache + r * a.ldkc + kb;
        sc.vrow[j] = a.v_cache + r * a.ldvc + vb;
      }
      for (int c = 0; c < hd; ++c) kt[std::size_t(c) * KT + j] = kr[c];
    }
    for (int j = nk; j < KT; ++j)
      for (int c = 0; c < hd; ++c) kt[std::size_t(c) * KT + j] = 0.f;
    // Scores S = Q K^T * scale, masked outside each query's window.
    for (int i = 0; i < nq; ++i) {
      const float* __restrict qr = a.q + std::int64_t(off + i0 + i) * a.ldq + qb;
      float* __restrict srow = sb + std::size_t(i) * KT;
      for (int j = 0; j < KT; ++j) srow[j] = 0.f;
      for (int c = 0; c < hd; ++c) {
        const float qc = qr[c];
        const float* __restrict kc = kt + std::size_t(c) * KT;
        for (int j = 0; j < KT; ++j) srow[j] += qc * kc[j];
      }
      const int p = p0 + i0 + i;
      const int jlo = (wb < 0 ? 0 : p - wb) - j0;  // first valid key in the tile
      const int jhi = p - j0;                      // last valid key in the tile
      float mx = sc.m[i];
      for (int j = 0; j < KT; ++j) {
        const bool ok = j >= jlo && j <= jhi && j < nk;
        srow[j] = ok ? srow[j] * a.scale : -3.0e38f;
        mx = srow[j] > mx ? srow[j] : mx;
      }
      // Online softmax: rescale the running sums to the new maximum.
      const float corr = exp_nonpositive(sc.m[i] - mx);
      float sum = 0.f;
      for (int j = 0; j < KT; ++j) {
        const float w = srow[j] <= -1.0e38f ? 0.f : exp_nonpositive(srow[j] - mx);
        srow[j] = w;
        sum += w;
      }
      sc.m[i] = mx;
      sc.l[i] = sc.l[i] * corr + sum;
      float* __restrict orow = ob + std::size_t(i) * hd;
      if (corr != 1.f)
        for (int c = 0; c < hd; ++c) orow[c] *= corr;
      for (int j = 0; j < nk; ++j) {
        const float w = srow[j];
        if (w == 0.f) continue;
        const float* __restrict vr = sc.vrow[j];
        for (int c = 0; c < hd; ++c) orow[c] += w * vr[c];
      }
    }
  }
  for (int i = 0; i < nq; ++i) {
    const float inv = 1.f / sc.l[i];
    float* __restrict dst = a.out + std::int64_t(off + i0 + i) * a.ldo + qb;
    const float* __restrict orow = ob + std::size_t(i) * hd;
    for (int c = 0; c < hd; ++c) dst[c] = orow[c] * inv;
  }
}

inline void attention_block_generic(const AttentionArgs& a, int s, int h, int i0, int i1) {
  attention_block_portable(a, s, h, i0, i1);
}

#if RODIMUS_HAVE_X86_DISPATCH
RODIMUS_TARGET_AVX2 inline void attention_block_avx2(const AttentionArgs& a, int s, int h, int i0,
                                                     int i1) {
  attention_block_portable(a, s, h, i0, i1);
}
RODIMUS_TARGET_AVX512 inline void attention_block_avx512(const AttentionArgs& a, int s, int h,
                                                         int i0, int i1) {
  attention_block_portable(a, s, h, i0, i1);
}
#endif

}  // namespace detail

/// Work items of a call: blocks of kAttnQueryBlock queries per sequence, times heads.
inline std::int64_t attention_items(const AttentionArgs& a) {
  std::int64_t blocks = 0;
  for (int s = 0; s < a.num_seqs; ++s)
    blocks += (a.offsets[s + 1] - a.offsets[s] + kAttnQueryBlock - 1) / kAttnQueryBlock;
  return blocks * a.heads;
}

/// Runs work item `item` (< attention_items(a)) with the widest kernel host_isa() allows.
inline void attention_item(const AttentionArgs& a, std::int64_t item) {
  const int h = static_cast<int>(item % a.heads);
  std::int64_t blk = item / a.heads;
  int s = 0;
  for (;; ++s) {
    const std::int64_t nb =
        (a.offsets[s + 1] - a.offsets[s] + kAttnQueryBlock - 1) / kAttnQueryBlock;
    if (blk < nb) break;
    blk -= nb;
  }
  const int len = a.offsets[s + 1] - a.offsets[s];
  const int i0 = static_cast<int>(blk) * kAttnQueryBlock;
  const int i1 = std::min(len, i0 + kAttnQueryBlock);
#if RODIMUS_HAVE_X86_DISPATCH
  switch (host_isa()) {
    case HostIsa::Avx512:
      detail::attention_block_avx512(a, s, h, i0, i1);
      return;
    case HostIsa::Avx2:
      detail::attention_block_avx2(a, s, h, i0, i1);
      return;
    default:
      break;
  }
#endif
  detail::attention_block_generic(a, s, h, i0, i1);
}

}  // namespace rodimus::backend::host
