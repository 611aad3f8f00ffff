// The causal grouped-query attention layer of the baseline Transformer: projections, RoPE,
// causal attention over the growing KV cache, output projection.
#pragma once

#include <array>

#include "rodimus/layers/kv_cache.hpp"
#include "rodimus/model/weights.hpp"
#include "rodimus/ops/causal_attention.hpp"
#include "rodimus/ops/linear.hpp"
#include "rodimus/ops/linear_rope.hpp"

namespace rodimus {

/// Activation scratch of the attention layer; reserve() only grows.
template <class Space>
struct GqaAttentionWorkspace {
  View2<float, Space> q, o;  // [N, H*hd]
  View2<float, Space> k, v;  // [N, Hkv*hd]

  void reserve(const CausalAttentionShape& shape, int n_tokens) {
    detail::ensure_capacity(q, n_tokens, shape.q_dim(), "rodimus::gqa.q");
    detail::ensure_capacity(o, n_tokens, shape.q_dim(), "rodimus::gqa.o");
    detail::ensure_capacity(k, n_tokens, shape.kv_dim(), "rodimus::gqa.k");
    detail::ensure_capacity(v, n_tokens, shape.kv_dim(), "rodimus::gqa.v");
  }
};

/// out = Attn(h): q = h Wq^T, k = h Wk^T, v = h Wv^T; RoPE (rotate half, all of hd) on q and k at
/// absolute positions; causal GQA softmax attention over the keys of each sequence, from
/// `cache` and this call (whose keys/values are appended to `cache`); out = o Wo^T.
/// The cache must already hold pos0 + len rows per sequence (KvCache::reserve).
// h: [>=N, D] (normalised); out: [>=N, D]; weights q: [H*hd, D], k, v: [Hkv*hd, D], o: [D, H*hd];
// inv_freq: [hd / 2]
template <class Space, StorageType W>
void gqa_attention(const Space& space, const CausalAttentionShape& shape,
                   const AttentionWeights<W, Space>& aw, const View1<const float, Space>& inv_freq,
                   const View2<const float, Space>& h, const KvCache<Space>& cache,
                   const SeqBatch<Space>& batch, GqaAttentionWorkspace<Space>& ws,
                   const View2<float, Space>& out) {
  using CV = View2<const float, Space>;
  const int nt = batch.num_tokens;
  ws.reserve(shape, nt);
  // [N, D] -> [N, H*hd], 2 x [N, Hkv*hd]; RoPE of q and k (a CUDA decode step: in the GEMV)
  linear_rope(space, h, std::array{&aw.q, &aw.k, &aw.v}, std::array{ws.q, ws.k, ws.v},
              std::array{true, true, false}, shape.head_dim, inv_freq, shape.head_dim, batch);
  causal_attention(space, CV(ws.q), CV(ws.k), CV(ws.v), cache.k(), cache.v(), batch, ws.o,
                   shape);                 // [N, H*hd]
  linear(space, CV(ws.o), aw.o, out, nt);  // [N, H*hd] -> [N, D]
}

}  // namespace rodimus
