// Host kernel of sliding-window / causal softmax attention (prefill and decode): one work
// item is a block of kAttnQueryBlock queries of one head of one sequence; keys are visited in
// tiles of kAttnKeyTile with an online softmax (flash-attention order). The queries of the item
// are scaled and transposed once; per tile the scores are a register-blocked product (8 keys x
// 32 queries of accumulators, the keys read as rows), the mask and the softmax run across the
// queries as vectors, and P V is another register-blocked product (4 queries x 64 columns), all
// with GCC / Clang vector extensions and a vectorisable polynomial exp(). Compiled three ways
// like the GEMV (generic / AVX2 / AVX-512) and dispatched by host_isa().
//
// Work: 4 x H x hd FLOPs per (query, key) pair inside the window, plus one exp per pair.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "rodimus/backend/host/cpu_features.hpp"
#include "rodimus/backend/host/last_arrival.hpp"
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

// 16 floats: GCC / Clang vector extensions, one zmm register under AVX-512, two ymm under AVX2,
// four xmm otherwise. Loads and stores go through memcpy (any alignment). Used only inside
// always-inline functions, never passed by value across a call (no ABI questions).
using AttnVec = float __attribute__((vector_size(64)));
inline constexpr int kAttnLanes = 16;
/// Keys per register block of the scores: 8 keys x 32 queries = 16 accumulators.
inline constexpr int kAttnKeyGroup = 8;
/// Queries per register block of P V: 4 queries x 64 columns = 16 accumulators.
inline constexpr int kAttnQueryGroup = 4;
static_assert(kAttnQueryBlock % kAttnLanes == 0 && kAttnKeyTile % kAttnKeyGroup == 0);

// Scratch of one work item, on the stack (about 75 KiB at the largest head size): no heap
// traffic, so decode steps through this kernel allocate nothing.
struct AttnScratch {
  alignas(64) float qt[kAttnMaxHeadDim * kAttnQueryBlock];  // scaled queries, transposed [hd][QB]
  alignas(64) float s[kAttnKeyTile * kAttnQueryBlock];      // scores, then weights: [key][query]
  alignas(64) float o[kAttnQueryBlock * kAttnMaxHeadDim];   // running outputs: [query][hd]
  alignas(64) float m[kAttnQueryBlock], l[kAttnQueryBlock], mx[kAttnQueryBlock],
      sum[kAttnQueryBlock];
  const float* krow[kAttnKeyTile];  // key rows of the tile (the last repeated to a full group)
  const float* vrow[kAttnKeyTile];  // value rows of the tile
};

// Scores of kAttnKeyGroup keys against the whole query block: s[g][i] = sum_c k_g[c] qt[c][i].
// Per column c: two query vectors, one broadcast per key, 16 FMAs (the keys are read as rows:
// nothing is transposed per tile; the queries were, once per work item).
[[gnu::always_inline]] inline void attention_scores_keys(const float* const* krow,
                                                         const float* qt, int hd, float* s) {
  constexpr int QB = kAttnQueryBlock, NQ = QB / kAttnLanes, KG = kAttnKeyGroup;
  AttnVec acc[KG][NQ];
  for (int g = 0; g < KG; ++g)
    for (int v = 0; v < NQ; ++v) acc[g][v] = AttnVec{};
  for (int c = 0; c < hd; ++c) {
    AttnVec qv[NQ];
    for (int v = 0; v < NQ; ++v)
      std::memcpy(&qv[v], qt + std::size_t(c) * QB + v * kAttnLanes, sizeof(AttnVec));
    for (int g = 0; g < KG; ++g) {
      const float kc = krow[g][c];
      for (int v = 0; v < NQ; ++v) acc[g][v] += kc * qv[v];
    }
  }
  for (int g = 0; g < KG; ++g)
    for (int v = 0; v < NQ; ++v)
      std::memcpy(s + std::size_t(g) * QB + v * kAttnLanes, &acc[g][v], sizeof(AttnVec));
}

// P V for G queries and the NV x 16 columns from c0: o[g][c] += sum_j w[j][g] v_j[c], w with a
// row stride of kAttnQueryBlock. Per key: NV value vectors shared by the G queries.
template <int G, int NV>
[[gnu::always_inline]] inline void attention_pv_block(const float* w, const float* const* vrow,
                                                      int nk, int c0, int hd, float* o) {
  constexpr int QB = kAttnQueryBlock;
  AttnVec acc[G][NV];
  for (int g = 0; g < G; ++g)
    for (int v = 0; v < NV; ++v)
      std::memcpy(&acc[g][v], o + std::size_t(g) * hd + c0 + v * kAttnLanes, sizeof(AttnVec));
  for (int j = 0; j < nk; ++j) {
    AttnVec x[NV];
    for (int v = 0; v < NV; ++v)
      std::memcpy(&x[v], vrow[j] + c0 + v * kAttnLanes, sizeof(AttnVec));
    for (int g = 0; g < G; ++g) {
      const float wj = w[std::size_t(j) * QB + g];
      for (int v = 0; v < NV; ++v) acc[g][v] += wj * x[v];
    }
  }
  for (int g = 0; g < G; ++g)
    for (int v = 0; v < NV; ++v)
      std::memcpy(o + std::size_t(g) * hd + c0 + v * kAttnLanes, &acc[g][v], sizeof(AttnVec));
}

// P V for G queries over every column: blocks of 64 columns, then of 16, then a scalar tail.
template <int G>
[[gnu::always_inline]] inline void attention_pv_group(const float* w, const float* const* vrow,
                                                      int nk, int hd, float* o) {
  constexpr int QB = kAttnQueryBlock;
  int c0 = 0;
  for (; c0 + 4 * kAttnLanes <= hd; c0 += 4 * kAttnLanes)
    attention_pv_block<G, 4>(w, vrow, nk, c0, hd, o);
  for (; c0 + kAttnLanes <= hd; c0 += kAttnLanes) attention_pv_block<G, 1>(w, vrow, nk, c0, hd, o);
  for (int g = 0; g < G; ++g)
    for (int j = 0; j < nk; ++j) {
      const float wj = w[std::size_t(j) * QB + g];
      for (int c = c0; c < hd; ++c) o[std::size_t(g) * hd + c] += wj * vrow[j][c];
    }
}

// Key and value rows of positions j0 .. j0 + nk - 1 of a sequence whose call starts at position
// p0 at row off and whose earlier keys are in cache slot sl: the call's own rows from p0 on,
// the cache's row position % wc before. kb / vb: the head's column in a row.
[[gnu::always_inline]] inline void attention_rows(const AttentionArgs& a, int off, int p0, int sl,
                                                  int j0, int nk, int kb, int vb,
                                                  const float** krow, const float** vrow) {
  for (int j = 0; j < nk; ++j) {
    const int kp = j0 + j;
    if (kp >= p0) {
      const std::int64_t r = off + (kp - p0);
      krow[j] = a.k + r * a.ldk + kb;
      vrow[j] = a.v + r * a.ldv + vb;
    } else {
      const std::int64_t r = std::int64_t(sl) * a.wc + kp % a.wc;
      krow[j] = a.k_cache + r * a.ldkc + kb;
      vrow[j] = a.v_cache + r * a.ldvc + vb;
    }
  }
}

// One work item: queries [i0, i1) (indices within sequence s) of head h, at most
// kAttnQueryBlock of them. Flash-attention order: per key tile, scores S = (scale Q) K^T as a
// register-blocked product, the window mask and the online softmax vectorised across the
// queries (S is kept [key][query]), then O += P V, register-blocked over four queries.
[[gnu::always_inline]] inline void attention_block_portable(const AttentionArgs& a, int s, int h,
                                                            int i0, int i1) {
  constexpr int QB = kAttnQueryBlock, KT = kAttnKeyTile, KG = kAttnKeyGroup,
                QG = kAttnQueryGroup;
  const int hd = a.hd;
  AttnScratch sc;
  float* __restrict qt = sc.qt;
  float* __restrict sb = sc.s;
  float* __restrict ob = sc.o;
  const int off = a.offsets[s], p0 = a.pos0[s], sl = a.slot[s];
  const int nq = i1 - i0;
  const int kb = (h % a.heads_k) * hd, vb = (h % a.heads_v) * hd, qb = h * hd;
  const int wb = a.window_back;
  const int pq = p0 + i0, plast = p0 + i1 - 1;  // positions of the first / last query
  const int lo = (wb < 0 || pq - wb < 0) ? 0 : pq - wb;
  // The queries, scaled and transposed once; the padding columns (i >= nq) are zero. Every
  // score is the same sequence of operations whatever the block holds (a product per column,
  // added in column order), so a sequence split across calls or decoded token by token gets
  // bit-identical results.
  for (int i = 0; i < nq; ++i) {
    const float* __restrict qr = a.q + std::int64_t(off + i0 + i) * a.ldq + qb;
    for (int c = 0; c < hd; ++c) qt[std::size_t(c) * QB + i] = qr[c] * a.scale;
  }
  for (int c = 0; c < hd; ++c)
    for (int i = nq; i < QB; ++i) qt[std::size_t(c) * QB + i] = 0.f;
  for (int i = 0; i < nq; ++i) {
    sc.m[i] = -3.0e38f;
    sc.l[i] = 0.f;
  }
  std::fill(ob, ob + std::size_t(nq) * hd, 0.f);
  for (int j0 = lo; j0 <= plast; j0 += KT) {
    const int nk = std::min(KT, plast + 1 - j0);
    const int nkr = (nk + KG - 1) / KG * KG;  // rounded up to whole key groups
    attention_rows(a, off, p0, sl, j0, nk, kb, vb, sc.krow, sc.vrow);
    for (int j = nk; j < nkr; ++j) sc.krow[j] = sc.krow[nk - 1];  // masked below
    for (int j = 0; j < nkr; j += KG) attention_scores_keys(sc.krow + j, qt, hd, sb + j * QB);
    // Mask outside each query's window (and the key padding), running maximum per query. Loops
    // across the queries (unit stride, restrict pointers, one select per statement) vectorise;
    // the query padding (i >= nq) is never read.
    float* __restrict mx = sc.mx;
    float* __restrict sum = sc.sum;
    for (int i = 0; i < nq; ++i) mx[i] = sc.m[i];
    for (int j = 0; j < nkr; ++j) {
      const int kp = j0 + j;
      float* __restrict srow = sb + std::size_t(j) * QB;
      // key kp is in the window of query i iff p_first(kp) <= pq + i <= p_last(kp)
      const int ilo = kp - pq;                                         // kp <= p
      const int ihi = j < nk ? (wb < 0 ? QB : kp + wb - pq) : -1;      // p - wb <= kp
      for (int i = 0; i < nq; ++i) {
        const bool ok = i >= ilo && i <= ihi;
        const float v = ok ? srow[i] : -3.0e38f;
        srow[i] = v;
        const float m = mx[i];
        mx[i] = v > m ? v : m;
      }
    }
    // Online softmax: weights exp(s - max) (0 where masked), the running sums and outputs
    // rescaled to the new maximum.
    for (int i = 0; i < nq; ++i) sum[i] = 0.f;
    for (int j = 0; j < nkr; ++j) {
      float* __restrict srow = sb + std::size_t(j) * QB;
      for (int i = 0; i < nq; ++i) {
        const float x = srow[i];
        const float e = exp_clamped(x - mx[i]);  // vectorises (exp_nonpositive here does not)
        const float w = x <= -1.0e38f ? 0.f : e;
        srow[i] = w;
        sum[i] += w;
      }
    }
    for (int i = 0; i < nq; ++i) {
      const float corr = exp_nonpositive(sc.m[i] - mx[i]);
      sc.m[i] = mx[i];
      sc.l[i] = sc.l[i] * corr + sum[i];
      if (corr != 1.f) {
        float* __restrict orow = ob + std::size_t(i) * hd;
        for (int c = 0; c < hd; ++c) orow[c] *= corr;
      }
    }
    // O += P V.
    int i = 0;
    for (; i + QG <= nq; i += QG) attention_pv_group<QG>(sb + i, sc.vrow, nk, hd, ob + i * hd);
    for (; i < nq; ++i) attention_pv_group<1>(sb + i, sc.vrow, nk, hd, ob + i * hd);
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

/// Keys per chunk of the decode kernel.
inline constexpr int kAttnDecodeChunk = 128;
/// Fewest keys a decode work item takes when a sequence's keys are split across threads.
inline constexpr int kAttnDecodeMinSplitKeys = 128;
/// Distance of the decode kernel's software prefetch, in bytes of the item's key / value stream
/// (2026-12-05, AMD EPYC Zen 5 VM: without it a thread streams the caches at about 13 GB/s).
inline constexpr int kAttnDecodePrefetchBytes = 4096;

// Scratch of one decode work item, on the stack (about 42 KiB at the largest head size).
struct AttnDecodeScratch {
  alignas(64) float qt[kAttnMaxHeadDim * kAttnLanes];   // scaled queries [hd][16 heads]
  alignas(64) float p[kAttnDecodeChunk * kAttnLanes];   // scores, then weights: [key][16 heads]
  alignas(64) float acc[kAttnLanes * kAttnMaxHeadDim];  // running outputs [head][hd]
  const float* krow[kAttnDecodeChunk];                  // the shared key head's rows
  const float* vrow[kAttnDecodeChunk];                  // value rows (all heads)
};

/// Floats of one decode item's partial result when a sequence's keys are split: the running
/// maximum and sum of each of 16 heads, then 16 heads' unnormalised outputs.
inline std::size_t attention_decode_partial_floats(int hd) {
  return std::size_t(2 * kAttnLanes) + std::size_t(kAttnLanes) * std::size_t(hd);
}

// Keys [j_begin, j_end) of heads [h0, h1) (at most 16) of sequence s, whose call has one token
// at position pos0[s], with one shared key head. Per chunk of keys: the scores of all the group's
// heads as one vector per key (each key row read once for the group: 8 keys x 16 heads of
// accumulators), the online softmax across the heads as vectors, then P V with each value row
// of the chunk read once, in order, one row per pass over the outputs (the group's heads are
// adjacent in a row; session 25, Zen 5 VM: 10-16 % faster than 4 rows per pass, whose four
// interleaved streams read slower, as in the GEMV). Both streams are prefetched
// kAttnDecodePrefetchBytes ahead, one line per line read. With `partial` null the item holds all
// the sequence's keys and writes the output; otherwise it writes its maximum, sum and unnormalised
// outputs there (attention_decode_partial_floats) for attention_decode_merge.
[[gnu::always_inline]] inline void attention_decode_portable(const AttentionArgs& a, int s,
                                                             int h0, int h1, int j_begin,
                                                             int j_end, float* partial) {
  constexpr int L = kAttnLanes, KC = kAttnDecodeChunk, KG = kAttnKeyGroup;
  const int hd = a.hd, G = h1 - h0;
  AttnDecodeScratch sc;
  float* __restrict qt = sc.qt;
  float* __restrict pb = sc.p;
  float* __restrict acc = sc.acc;
  const std::int64_t t = a.offsets[s];
  const int pos = a.pos0[s], sl = a.slot[s];
  for (int g = 0; g < L; ++g) {
    const float* qr = a.q + t * a.ldq + std::int64_t(h0 + g) * hd;
    for (int c = 0; c < hd; ++c) qt[std::size_t(c) * L + g] = g < G ? qr[c] * a.scale : 0.f;
  }
  std::int64_t voff[L];  // each head's value columns
  for (int g = 0; g < G; ++g) voff[g] = std::int64_t((h0 + g) % a.heads_v) * hd;
  // prefetch distances in rows: the key stream moves hd floats per key, the value stream the
  // group's G * hd floats (rows of the current token and the cache may differ in stride, and
  // the rolling cache wraps: prefetches follow the row pointers, never addresses past them)
  const int row_bytes_k = hd * int(sizeof(float)), row_bytes_v = G * hd * int(sizeof(float));
  const int kd = std::max(KG, (kAttnDecodePrefetchBytes / row_bytes_k + KG - 1) / KG * KG);
  const int vd = std::max(1, kAttnDecodePrefetchBytes / row_bytes_v);
  float m[L], l[L], mx[L], corr[L], lsum[L];
  for (int g = 0; g < L; ++g) m[g] = -3.0e38f, l[g] = 0.f;
  std::fill(acc, acc + std::size_t(G) * hd, 0.f);
  for (int j0 = j_begin; j0 < j_end; j0 += KC) {
    const int nk = std::min(KC, j_end - j0);
    const int nkr = (nk + KG - 1) / KG * KG;
    attention_rows(a, static_cast<int>(t), pos, sl, j0, nk, 0, 0, sc.krow, sc.vrow);
    for (int j = nk; j < nkr; ++j) sc.krow[j] = sc.krow[nk - 1];  // never read past nk
    for (int j = 0; j < nkr; j += KG) {
      const int jp = j + kd;  // prefetched group (within the chunk)
      AttnVec sv[KG];
      for (int i = 0; i < KG; ++i) sv[i] = AttnVec{};
      for (int c0 = 0; c0 < hd; c0 += 16) {
        if (jp < nk)
          for (int i = 0; i < KG; ++i) __builtin_prefetch(sc.krow[std::min(jp + i, nk - 1)] + c0);
        const int c1 = std::min(hd, c0 + 16);
        for (int c = c0; c < c1; ++c) {
          AttnVec qv;
          std::memcpy(&qv, qt + std::size_t(c) * L, sizeof(AttnVec));
          for (int i = 0; i < KG; ++i) sv[i] += sc.krow[j + i][c] * qv;
        }
      }
      for (int i = 0; i < KG; ++i) std::memcpy(pb + std::size_t(j + i) * L, &sv[i], sizeof(AttnVec));
    }
    for (int g = 0; g < L; ++g) mx[g] = m[g], lsum[g] = 0.f;
    for (int j = 0; j < nk; ++j)
      for (int g = 0; g < L; ++g) mx[g] = pb[j * L + g] > mx[g] ? pb[j * L + g] : mx[g];
    for (int j = 0; j < nk; ++j)
      for (int g = 0; g < L; ++g) {
        const float e = exp_clamped(pb[j * L + g] - mx[g]);  // <= 0 in, vectorises
        pb[j * L + g] = e;
        lsum[g] += e;
      }
    for (int g = 0; g < L; ++g) {
      corr[g] = exp_nonpositive(m[g] - mx[g]);
      l[g] = l[g] * corr[g] + lsum[g];
      m[g] = mx[g];
    }
    for (int g = 0; g < G; ++g) {
      float* __restrict ag = acc + std::size_t(g) * hd;
      const float cg = corr[g];
      for (int c = 0; c < hd; ++c) ag[c] *= cg;
    }
    // P V, one value row per pass, rows in order: the cache's rows are adjacent, so the reads
    // form one forward stream (four rows walked together read slower, as in the GEMV); each
    // output adds its rows' products in key order, the block kernel's sums
    for (int j = 0; j < nk; ++j) {
      const float* vr = sc.vrow[j];
      const float* vn = sc.vrow[std::min(j + vd, nk - 1)];
      const bool pf = j + vd < nk;
      for (int g = 0; g < G; ++g) {
        const std::int64_t vo = voff[g];
        const float w0 = pb[j * L + g];
        const float* __restrict v0 = vr + vo;
        float* __restrict ag = acc + std::size_t(g) * hd;
        for (int c0 = 0; c0 < hd; c0 += 16) {
          if (pf) __builtin_prefetch(vn + vo + c0);
          const int c1 = std::min(hd, c0 + 16);
          for (int c = c0; c < c1; ++c) ag[c] += w0 * v0[c];
        }
      }
    }
  }
  if (partial) {
    for (int g = 0; g < L; ++g) partial[g] = m[g], partial[L + g] = l[g];
    std::copy(acc, acc + std::size_t(G) * hd, partial + 2 * L);
    return;
  }
  for (int g = 0; g < G; ++g) {
    const float inv = 1.f / l[g];
    float* __restrict o = a.out + t * a.ldo + std::int64_t(h0 + g) * hd;
    const float* __restrict ag = acc + std::size_t(g) * hd;
    for (int c = 0; c < hd; ++c) o[c] = ag[c] * inv;
  }
}

inline void attention_decode_generic(const AttentionArgs& a, int s, int h0, int h1, int jb,
                                     int je, float* partial) {
  attention_decode_portable(a, s, h0, h1, jb, je, partial);
}

#if RODIMUS_HAVE_X86_DISPATCH
RODIMUS_TARGET_AVX2 inline void attention_decode_avx2(const AttentionArgs& a, int s, int h0,
                                                      int h1, int jb, int je, float* partial) {
  attention_decode_portable(a, s, h0, h1, jb, je, partial);
}
RODIMUS_TARGET_AVX512 inline void attention_decode_avx512(const AttentionArgs& a, int s, int h0,
                                                          int h1, int jb, int je, float* partial) {
  attention_decode_portable(a, s, h0, h1, jb, je, partial);
}
#endif

// Output of heads [h0, h1) of sequence s from `splits` partial results (the split-key form of
// the online softmax): o = sum_k e^(m_k - M) acc_k / sum_k e^(m_k - M) l_k, M = max_k m_k. A
// split that held no key has m = -3e38 and l = 0, and weighs nothing.
inline void attention_decode_merge(const AttentionArgs& a, int s, int h0, int h1,
                                   const float* parts, int splits) {
  constexpr int L = kAttnLanes;
  const int hd = a.hd;
  const std::size_t stride = attention_decode_partial_floats(hd);
  const std::int64_t t = a.offsets[s];
  for (int g = 0; g < h1 - h0; ++g) {
    float mmax = -3.0e38f;
    for (int k = 0; k < splits; ++k) mmax = std::max(mmax, parts[k * stride + g]);
    float den = 0.f;
    float* __restrict o = a.out + t * a.ldo + std::int64_t(h0 + g) * hd;
    for (int c = 0; c < hd; ++c) o[c] = 0.f;
    for (int k = 0; k < splits; ++k) {
      const float* pk = parts + k * stride;
      const float w = exp_nonpositive(pk[g] - mmax);
      den += w * pk[L + g];
      const float* __restrict ak = pk + 2 * L + std::size_t(g) * hd;
      for (int c = 0; c < hd; ++c) o[c] += w * ak[c];
    }
    const float inv = 1.f / den;
    for (int c = 0; c < hd; ++c) o[c] *= inv;
  }
}

}  // namespace detail

/// True when the decode kernel takes the call: one token per sequence (the batch's longest
/// sequence one token, as many tokens as sequences), one shared key head.
inline bool attention_decode_takes(const AttentionArgs& a, int num_tokens, int max_len) {
  return a.heads_k == 1 && max_len == 1 && num_tokens == a.num_seqs && a.hd <= kAttnMaxHeadDim;
}

/// How a decode call is cut into work items: each sequence's heads into groups of at most 16
/// (one vector of scores per key), and, when that leaves threads idle, each (sequence, group)'s
/// keys into `splits` ranges of at least kAttnDecodeMinSplitKeys keys whose partial results the
/// last item of the (sequence, group) to finish merges. Splitting keys rather than heads keeps
/// each item's reads contiguous (whole value rows, its own part of the key rows): one sequence
/// on two threads reads each row once instead of every key row twice and half of each value row.
struct AttnDecodePlan {
  int group = 1;   ///< heads per group
  int groups = 1;  ///< groups per sequence
  int splits = 1;  ///< key ranges per (sequence, group)
  std::int64_t items(int num_seqs) const { return std::int64_t(num_seqs) * groups * splits; }
};

/// The plan for a call on `threads` threads (each sequence's keys: its position and the window).
inline AttnDecodePlan attention_decode_plan(const AttentionArgs& a, int threads) {
  AttnDecodePlan p;
  p.groups = (a.heads + detail::kAttnLanes - 1) / detail::kAttnLanes;
  p.group = (a.heads + p.groups - 1) / p.groups;
  const std::int64_t base = std::int64_t(a.num_seqs) * p.groups;
  if (base >= threads) return p;
  int max_keys = 0;
  for (int s = 0; s < a.num_seqs; ++s) {
    const int pos = a.pos0[s];
    const int lo = (a.window_back < 0 || pos - a.window_back < 0) ? 0 : pos - a.window_back;
    max_keys = std::max(max_keys, pos + 1 - lo);
  }
  const int by_threads = static_cast<int>((threads + base - 1) / base);
  p.splits = std::max(1, std::min(by_threads, max_keys / detail::kAttnDecodeMinSplitKeys));
  return p;
}

/// Where split decode calls keep their partial results and counters: per calling thread, grown
/// to the largest call seen and then reused (decode steps of a batch size seen before allocate
/// nothing). The host backends run a call's items before the call returns, so one call's
/// buffers are free again when the thread makes the next.
struct AttnDecodeBuffers {
  std::vector<float> partials;
  std::vector<int> done;  ///< zero between calls
  void reserve(const AttnDecodePlan& plan, int num_seqs, int hd) {
    const auto items = static_cast<std::size_t>(plan.items(num_seqs));
    const std::size_t floats = items * detail::attention_decode_partial_floats(hd);
    if (partials.size() < floats) partials.resize(floats);
    const std::size_t counters = std::size_t(num_seqs) * std::size_t(plan.groups);
    if (done.size() < counters) done.resize(counters, 0);
  }
};
inline AttnDecodeBuffers& attention_decode_buffers() {
  thread_local AttnDecodeBuffers buffers;
  return buffers;
}

/// Runs decode work item `item` (< plan.items(num_seqs)) with the widest kernel host_isa()
/// allows. With plan.splits > 1, `partials` holds plan.items() x
/// attention_decode_partial_floats(hd) floats and `done` one zeroed counter per (sequence,
/// group); the counters are zero again when the call's items have all run.
inline void attention_decode_item(const AttentionArgs& a, const AttnDecodePlan& plan,
                                  std::int64_t item, float* partials, int* done) {
  const int split = static_cast<int>(item % plan.splits);
  const std::int64_t sg = item / plan.splits;
  const int s = static_cast<int>(sg / plan.groups);
  const int h0 = static_cast<int>(sg % plan.groups) * plan.group;
  const int h1 = std::min(a.heads, h0 + plan.group);
  const int pos = a.pos0[s];
  const int lo = (a.window_back < 0 || pos - a.window_back < 0) ? 0 : pos - a.window_back;
  const std::int64_t n = pos + 1 - lo;
  const int jb = lo + static_cast<int>(n * split / plan.splits);
  const int je = lo + static_cast<int>(n * (split + 1) / plan.splits);
  float* part = plan.splits > 1
                    ? partials + std::size_t(item) * detail::attention_decode_partial_floats(a.hd)
                    : nullptr;
#if RODIMUS_HAVE_X86_DISPATCH
  switch (host_isa()) {
    case HostIsa::Avx512:
      detail::attention_decode_avx512(a, s, h0, h1, jb, je, part);
      break;
    case HostIsa::Avx2:
      detail::attention_decode_avx2(a, s, h0, h1, jb, je, part);
      break;
    default:
      detail::attention_decode_generic(a, s, h0, h1, jb, je, part);
      break;
  }
#else
  detail::attention_decode_generic(a, s, h0, h1, jb, je, part);
#endif
  if (!part) return;
  // the last of the (sequence, group)'s items to finish merges
  if (!last_arrival(done[sg], plan.splits)) return;
  detail::attention_decode_merge(
      a, s, h0, h1, partials + std::size_t(sg * plan.splits) * detail::attention_decode_partial_floats(a.hd),
      plan.splits);
}

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
