// Causal multi-head / grouped-query softmax attention over a KV cache that holds every past
// position of each sequence (the plain Transformer's attention; no window).
#pragma once

#include <string>

#include "rodimus/backend/host/causal_decode.hpp"
#include "rodimus/ops/impl/causal_attention_kernel.hpp"

namespace rodimus {

/// Geometry of grouped-query attention: `heads` query heads and `kv_heads` key/value heads of
/// `head_dim`, heads % kv_heads == 0; query head h reads KV head h / (heads / kv_heads)
/// (kv_heads == heads: multi-head attention; kv_heads == 1: multi-query attention).
struct CausalAttentionShape {
  int heads = 0;
  int kv_heads = 0;
  int head_dim = 0;
  float scale = 1.f;  ///< score scale, usually 1 / sqrt(head_dim)

  int group() const { return kv_heads > 0 ? heads / kv_heads : 0; }
  int q_dim() const { return heads * head_dim; }
  int kv_dim() const { return kv_heads * head_dim; }
};

namespace detail {

/// Throws ArgumentError unless `shape` is a valid GQA geometry; `what` names the caller.
inline void check_causal_attention_shape(const CausalAttentionShape& shape, const char* what) {
  if (shape.heads <= 0 || shape.kv_heads <= 0 || shape.head_dim <= 0)
    throw ArgumentError(std::string(what) + ": heads, kv_heads and head_dim must be positive");
  if (shape.heads % shape.kv_heads != 0)
    throw ArgumentError(std::string(what) + ": heads (" + std::to_string(shape.heads) +
                        ") must be a multiple of kv_heads (" + std::to_string(shape.kv_heads) +
                        ")");
}

}  // namespace detail

/// Appends the keys and values of the call to the cache (row pos0[b] + i of slot[b] receives
/// token i of sequence b), then computes for every query at absolute position p
///   o = softmax_j(scale * q . k_j) v_j  over the keys j = 0 .. p of its own sequence,
/// with query head h reading KV head h / (heads / kv_heads). The cache rows below pos0[b] must
/// hold the sequence's earlier keys/values (what earlier calls appended); C, the cache's row
/// count, must be >= pos0[b] + len[b] for every sequence (ArgumentError otherwise: grow the
/// cache first, e.g. with KvCache::reserve).
// q: [>=N, H*hd], k, v: [>=N, Hkv*hd] (RoPE applied); k_cache, v_cache: [S, C, Hkv*hd];
// out: [>=N, H*hd]
template <class Space>
void causal_attention(const Space& space, const View2<const float, Space>& q,
                      const View2<const float, Space>& k, const View2<const float, Space>& v,
                      const View3<float, Space>& k_cache, const View3<float, Space>& v_cache,
                      const SeqBatch<Space>& batch, const View2<float, Space>& out,
                      const CausalAttentionShape& shape) {
  detail::check_causal_attention_shape(shape, "causal_attention");
  detail::check_extent(q, 1, shape.q_dim(), "causal_attention: q");
  detail::check_extent(k, 1, shape.kv_dim(), "causal_attention: k");
  detail::check_extent(v, 1, shape.kv_dim(), "causal_attention: v");
  detail::check_extent(out, 1, shape.q_dim(), "causal_attention: out");
  detail::check_extent(k_cache, 2, shape.kv_dim(), "causal_attention: k_cache");
  detail::check_extent(v_cache, 2, shape.kv_dim(), "causal_attention: v_cache");
  detail::check_extent(v_cache, 0, k_cache.extent(0), "causal_attention: v_cache");
  detail::check_extent(v_cache, 1, k_cache.extent(1), "causal_attention: v_cache");
  for (const auto* x : {&q, &k, &v})
    detail::check_extent_at_least(*x, 0, batch.num_tokens, "causal_attention: input");
  detail::check_extent_at_least(out, 0, batch.num_tokens, "causal_attention: out");
  const auto slots = static_cast<std::int64_t>(k_cache.extent(0));
  const auto capacity = static_cast<std::int64_t>(k_cache.extent(1));
  for (int s = 0; s < batch.num_seqs; ++s) {
    const std::int64_t len = batch.h_offsets[s + 1] - batch.h_offsets[s];
    if (batch.h_slot[s] < 0 || batch.h_slot[s] >= slots)
      throw ArgumentError("causal_attention: slot " + std::to_string(batch.h_slot[s]) +
                          " outside the cache's " + std::to_string(slots) + " slots");
    if (len > 0 && batch.h_pos0[s] + len > capacity)
      throw ArgumentError("causal_attention: sequence " + std::to_string(s) + " reaches " +
                          std::to_string(batch.h_pos0[s] + len) +
                          " positions, beyond the KV cache capacity of " +
                          std::to_string(capacity) + " rows (grow the cache first)");
  }
  if (batch.num_tokens == 0) return;
  detail::kv_append_generic<Space>(space, k, v, k_cache, v_cache, batch);
  if constexpr (is_host_space_v<Space>) {
    // decode (one token per sequence) on a row-major cache: backend/host/causal_decode.hpp
    if (batch.max_len == 1 && batch.num_tokens == batch.num_seqs && k_cache.stride(2) == 1 &&
        v_cache.stride(0) == k_cache.stride(0) && v_cache.stride(1) == k_cache.stride(1) &&
        v_cache.stride(2) == 1 && q.stride(1) == 1 && out.stride(1) == 1 &&
        shape.heads <= backend::host::detail::kCausalDecodeMaxHeads) {
      namespace hb = backend::host;
      const hb::CausalDecodeArgs a{q.data(),
                                   k_cache.data(),
                                   v_cache.data(),
                                   out.data(),
                                   static_cast<std::int64_t>(q.stride(0)),
                                   static_cast<std::int64_t>(out.stride(0)),
                                   static_cast<std::int64_t>(k_cache.stride(0)),
                                   static_cast<std::int64_t>(k_cache.stride(1)),
                                   shape.heads,
                                   shape.kv_heads,
                                   shape.head_dim,
                                   shape.scale,
                                   batch.h_offsets.data(),
                                   batch.h_pos0.data(),
                                   batch.h_slot.data(),
                                   batch.num_seqs};
      const auto plan = hb::causal_decode_plan(a, space.concurrency());
      auto& partials = hb::causal_decode_buffer();
      const std::size_t floats =
          std::size_t(plan.items(a)) * hb::CausalDecodePlan::partial_floats(a);
      if (partials.size() < floats) partials.resize(floats);
      float* parts = partials.data();
      space.fence();  // the appended rows
      detail::host_items_for(
          space, RODIMUS_KERNEL_LABEL("rodimus::causal_attention.host_decode"), plan.items(a),
          [=](const std::int64_t item) { hb::causal_decode_item(a, plan, item, parts); });
      detail::host_items_for(space, RODIMUS_KERNEL_LABEL("rodimus::causal_attention.host_merge"),
                             std::int64_t(batch.num_seqs) * shape.heads, [=](const std::int64_t i) {
                               hb::causal_decode_merge(a, plan, i, parts);
                             });
      space.fence();
      return;
    }
  }
  detail::causal_attention_generic<Space>(space, q, k_cache, v_cache, batch, out, shape.heads,
                                          shape.kv_heads, shape.head_dim, shape.scale);
}

}  // namespace rodimus
