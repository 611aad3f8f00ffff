// The sliding-window shared-key attention layer (SW-SKA, SPEC 3): projections, RoPE,
// windowed attention over the rolling cache, output projection.
#pragma once

#include <array>
#include <type_traits>

#include "rodimus/model/config.hpp"
#include "rodimus/model/weights.hpp"
#include "rodimus/ops/linear.hpp"
#include "rodimus/ops/linear_residual_norm.hpp"
#include "rodimus/ops/linear_rope.hpp"
#include "rodimus/ops/sliding_window_attention.hpp"

namespace rodimus {

/// Activation scratch of the attention layer.
template <class Space>
struct AttentionWorkspace {
  View2<float, Space> q, o;  // [N, H*hd]
  View2<float, Space> k;     // [N, Hk*hd]
  View2<float, Space> v;     // [N, Hv*hd]

  void reserve(const ModelConfig& cfg, int n_tokens) {
    const std::size_t hd = cfg.head_dim();
    detail::ensure_capacity(q, n_tokens, hd * cfg.num_heads(), "rodimus::attn.q");
    detail::ensure_capacity(o, n_tokens, hd * cfg.num_heads(), "rodimus::attn.o");
    detail::ensure_capacity(k, n_tokens, hd * cfg.num_heads_k(), "rodimus::attn.k");
    detail::ensure_capacity(v, n_tokens, hd * cfg.num_heads_v(), "rodimus::attn.v");
  }
};

/// The attention geometry a config describes.
inline AttentionShape attention_shape(const ModelConfig& cfg) {
  AttentionShape s;
  s.heads = cfg.num_heads();
  s.heads_k = cfg.num_heads_k();
  s.heads_v = cfg.num_heads_v();
  s.head_dim = cfg.head_dim();
  s.window_back = cfg.window_back();
  s.scale = static_cast<float>(cfg.attn_scale());
  return s;
}

/// out = SW-SKA(h), continuing and updating the K/V caches of the batch's slots; with `next`,
/// then the residual add + RMSNorm of out that follows (linear_residual_norm). Returns the rows
/// the next sublayer reads: {out}, or linear_residual_norm's. h may owe its norm (NormedRows:
/// the q / k / v GEMV takes it on a GPU).
// h: [>=N, D] (normalised, or pending); out: [>=N, D]; caches: [S, Wc, Hk*hd], [S, Wc, Hv*hd]
template <class Space, StorageType W>
NormedRows<Space> ska_attention(const Space& space, const ModelConfig& cfg,
                                const AttentionWeights<W, Space>& aw,
                                const View1<const float, Space>& inv_freq,
                                const std::type_identity_t<NormedRows<Space>>& h,
                                const View3<float, Space>& k_cache,
                                const View3<float, Space>& v_cache, const SeqBatch<Space>& batch,
                                AttentionWorkspace<Space>& ws, const View2<float, Space>& out,
                                const ResidualNorm<Space>* next = nullptr) {
  using CV = View2<const float, Space>;
  const int nt = batch.num_tokens;
  ws.reserve(cfg, nt);
  // [N, D] -> [N, H*hd], [N, Hk*hd], [N, Hv*hd]; RoPE of q and k (a CUDA decode step: in the
  // projections' GEMV)
  linear_rope(space, h, std::array{&aw.q, &aw.k, &aw.v}, std::array{ws.q, ws.k, ws.v},
              std::array{true, true, false}, cfg.head_dim(), inv_freq, cfg.rotary_dim(), batch);
  sliding_window_attention(space, CV(ws.q), CV(ws.k), CV(ws.v), k_cache, v_cache, batch, ws.o,
                           attention_shape(cfg));
  if (next)  // [N, H*hd] -> [N, D], then the next sublayer's norm
    return linear_residual_norm(space, CV(ws.o), aw.o, out, *next, nt);
  linear(space, CV(ws.o), aw.o, out, nt);
  return NormedRows<Space>(CV(out));
}

}  // namespace rodimus
