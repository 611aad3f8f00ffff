// Host decode kernel of causal GQA softmax attention (ops/causal_attention.hpp's fast path for
// calls of one token per sequence): split-key flash decoding over a KV cache that holds every
// past position.
//
// Work items are (sequence, key range). An item walks its keys in blocks of kCausalDecodeBlock:
// it scores every query head against the block's key rows (each row read front to back, all its
// KV heads: a range of the cache [S, C, Hkv*hd] is one contiguous stream), updates each head's
// online softmax (running max m, sum l) and accumulates P V the same way over the value rows. A
// second pass merges the key ranges of each (sequence, query head):
// o = sum_k e^(m_k - M) acc_k / sum_k e^(m_k - M) l_k. Each float of the caches is read once per
// step, by one item. (Items of one KV head instead read rows a row stride apart, often a page or
// more, which the hardware prefetchers do not follow: 1.5-2x slower at 64k tokens on the Zen 5
// VM, software prefetches included.)
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "rodimus/backend/host/cpu_features.hpp"
#include "rodimus/backend/host/fast_math.hpp"

namespace rodimus::backend::host {

/// Operands of one decode call. Cache row p of slot s, KV head kh, column c is at
/// cache[s * slot_stride + p * row_stride + kh * hd + c].
struct CausalDecodeArgs {
  const float* q;  ///< [N, heads * hd], row stride ldq
  const float* k_cache;
  const float* v_cache;
  float* out;  ///< [N, heads * hd], row stride ldo
  std::int64_t ldq, ldo, slot_stride, row_stride;
  int heads, kv_heads, hd;
  float scale;
  const int* offsets;  ///< [B + 1]: sequence s's token is row offsets[s]
  const int* pos0;     ///< [B]: its position (it attends to cache rows 0 .. pos0[s])
  const int* slot;     ///< [B]
  int num_seqs;
};

namespace detail {
/// Keys scored at a time by one item (their rows stay cached while each query head uses them).
inline constexpr int kCausalDecodeBlock = 32;
/// Most query heads the decode kernel takes (its block of scores lives on the stack).
inline constexpr int kCausalDecodeMaxHeads = 128;
/// Fewest keys a split key range holds.
inline constexpr int kCausalDecodeMinSplitKeys = 256;
}  // namespace detail

/// How a call is cut into items: `splits` key ranges of `keys_per_split` keys per sequence,
/// enough items for every thread while each range keeps at least kCausalDecodeMinSplitKeys keys.
struct CausalDecodePlan {
  int splits = 1;
  int keys_per_split = 1;
  std::int64_t items(const CausalDecodeArgs& a) const { return std::int64_t(a.num_seqs) * splits; }
  /// Floats of one item's partial result: m and l of each query head, then a row of hd per head.
  static std::size_t partial_floats(const CausalDecodeArgs& a) {
    return std::size_t(a.heads) * (std::size_t(a.hd) + 2);
  }
};

inline CausalDecodePlan causal_decode_plan(const CausalDecodeArgs& a, int threads) {
  CausalDecodePlan p;
  int max_keys = 1;
  for (int s = 0; s < a.num_seqs; ++s) max_keys = std::max(max_keys, a.pos0[s] + 1);
  const std::int64_t base = a.num_seqs;
  const auto by_threads =
      static_cast<int>(std::max<std::int64_t>(1, (4 * threads + base - 1) / base));
  p.splits = std::max(1, std::min(by_threads, max_keys / detail::kCausalDecodeMinSplitKeys));
  p.keys_per_split = (max_keys + p.splits - 1) / p.splits;
  return p;
}

namespace detail {

[[gnu::always_inline]] inline void causal_decode_item_portable(const CausalDecodeArgs& a,
                                                               const CausalDecodePlan& plan,
                                                               std::int64_t item, float* part) {
  constexpr int KB = kCausalDecodeBlock;
  const int split = static_cast<int>(item % plan.splits);
  const int s = static_cast<int>(item / plan.splits);
  const int heads = a.heads, g = a.heads / a.kv_heads, hd = a.hd;
  float* __restrict m = part;
  float* __restrict l = part + heads;
  float* __restrict acc = part + 2 * heads;
  for (int h = 0; h < heads; ++h) m[h] = -3.0e38f, l[h] = 0.f;
  std::fill(acc, acc + std::size_t(heads) * hd, 0.f);
  const int jb = split * plan.keys_per_split;
  const int je = std::min(a.pos0[s] + 1, jb + plan.keys_per_split);
  if (jb >= je) return;  // this sequence has no keys in the range: weighs nothing in the merge
  const float* __restrict qs = a.q + std::int64_t(a.offsets[s]) * a.ldq;
  const std::int64_t base = std::int64_t(a.slot[s]) * a.slot_stride;
  const float* kc = a.k_cache + base;
  const float* vc = a.v_cache + base;
  float sc[kCausalDecodeMaxHeads * KB];  // scores, then probabilities: [head][key of the block]
  for (int j0 = jb; j0 < je; j0 += KB) {
    const int nk = std::min(KB, je - j0);
    // scores: each key row read front to back (all its KV heads), so the rows of a range stream
    for (int j = 0; j < nk; ++j) {
      const float* __restrict kr = kc + std::int64_t(j0 + j) * a.row_stride;
      for (int h = 0; h < heads; ++h) {
        const float* __restrict qh = qs + std::int64_t(h) * hd;
        const float* __restrict kh = kr + std::int64_t(h / g) * hd;
        float d = 0.f;
        RODIMUS_SIMD_SUM(d)
        for (int c = 0; c < hd; ++c) d += qh[c] * kh[c];
        sc[h * KB + j] = d * a.scale;
      }
    }
    // the online softmax of each query head over the block
    for (int h = 0; h < heads; ++h) {
      float* __restrict sh = sc + h * KB;
      float bmax = -3.0e38f;
      for (int j = 0; j < nk; ++j) bmax = sh[j] > bmax ? sh[j] : bmax;
      const float m_new = bmax > m[h] ? bmax : m[h];
      float lsum = 0.f;
      for (int j = 0; j < nk; ++j) {
        sh[j] = exp_nonpositive(sh[j] - m_new);
        lsum += sh[j];
      }
      const float corr = exp_nonpositive(m[h] - m_new);
      l[h] = l[h] * corr + lsum;
      m[h] = m_new;
      float* __restrict o = acc + std::size_t(h) * hd;
      for (int c = 0; c < hd; ++c) o[c] *= corr;
    }
    // P V, each value row read front to back
    for (int j = 0; j < nk; ++j) {
      const float* __restrict vr = vc + std::int64_t(j0 + j) * a.row_stride;
      for (int h = 0; h < heads; ++h) {
        const float p = sc[h * KB + j];
        const float* __restrict vh = vr + std::int64_t(h / g) * hd;
        float* __restrict o = acc + std::size_t(h) * hd;
        for (int c = 0; c < hd; ++c) o[c] += p * vh[c];
      }
    }
  }
}

inline void causal_decode_item_generic(const CausalDecodeArgs& a, const CausalDecodePlan& plan,
                                       std::int64_t item, float* part) {
  causal_decode_item_portable(a, plan, item, part);
}
#if RODIMUS_HAVE_X86_DISPATCH
RODIMUS_TARGET_AVX2 inline void causal_decode_item_avx2(const CausalDecodeArgs& a,
                                                        const CausalDecodePlan& plan,
                                                        std::int64_t item, float* part) {
  causal_decode_item_portable(a, plan, item, part);
}
RODIMUS_TARGET_AVX512 inline void causal_decode_item_avx512(const CausalDecodeArgs& a,
                                                            const CausalDecodePlan& plan,
                                                            std::int64_t item, float* part) {
  causal_decode_item_portable(a, plan, item, part);
}
#endif

}  // namespace detail

/// Runs item `item` (< plan.items(a)) into its partial result `partials + item *
/// CausalDecodePlan::partial_floats(a)`, with the widest kernel host_isa() allows.
inline void causal_decode_item(const CausalDecodeArgs& a, const CausalDecodePlan& plan,
                               std::int64_t item, float* partials) {
  float* part = partials + item * static_cast<std::int64_t>(CausalDecodePlan::partial_floats(a));
#if RODIMUS_HAVE_X86_DISPATCH
  switch (host_isa()) {
    case HostIsa::Avx512:
      return detail::causal_decode_item_avx512(a, plan, item, part);
    case HostIsa::Avx2:
      return detail::causal_decode_item_avx2(a, plan, item, part);
    default:
      break;
  }
#endif
  detail::causal_decode_item_generic(a, plan, item, part);
}

/// Output row of query head h of sequence s (index = s * heads + h) from the partial results of
/// the sequence's key ranges (a range that held no key has m = -3e38 and l = 0, and weighs
/// nothing).
inline void causal_decode_merge(const CausalDecodeArgs& a, const CausalDecodePlan& plan,
                                std::int64_t index, const float* partials) {
  const int s = static_cast<int>(index / a.heads), h = static_cast<int>(index % a.heads);
  const int heads = a.heads, hd = a.hd;
  const std::size_t stride = CausalDecodePlan::partial_floats(a);
  const float* first = partials + std::int64_t(s) * plan.splits * stride;
  float mmax = -3.0e38f;
  for (int k = 0; k < plan.splits; ++k) mmax = std::max(mmax, first[k * stride + h]);
  float* __restrict o = a.out + std::int64_t(a.offsets[s]) * a.ldo + std::int64_t(h) * hd;
  for (int c = 0; c < hd; ++c) o[c] = 0.f;
  float den = 0.f;
  for (int k = 0; k < plan.splits; ++k) {
    const float* pk = first + k * stride;
    const float w = detail::exp_nonpositive(pk[h] - mmax);
    den += w * pk[heads + h];
    const float* __restrict ak = pk + 2 * heads + std::size_t(h) * hd;
    for (int c = 0; c < hd; ++c) o[c] += w * ak[c];
  }
  const float inv = 1.f / den;
  for (int c = 0; c < hd; ++c) o[c] *= inv;
}

/// The partial results of decode calls: per calling thread, grown to the largest call seen and
/// reused (a decode step allocates only when its context outgrows every earlier step's split).
inline std::vector<float>& causal_decode_buffer() {
  thread_local std::vector<float> partials;
  return partials;
}

}  // namespace rodimus::backend::host
