// The pre-norm Transformer block of the baseline: x += Attn(RMSNorm(x)); x += FFN(RMSNorm(x)).
#pragma once

#include "rodimus/layers/block_workspace.hpp"
#include "rodimus/layers/gqa_attention.hpp"
#include "rodimus/model/transformer_config.hpp"
#include "rodimus/ops/rms_norm.hpp"
#include "rodimus/ops/swiglu.hpp"

namespace rodimus {

/// Parameters of one Transformer block.
template <StorageType W, class Space>
struct TransformerBlockWeights {
  View1<const float, Space> attn_norm;  ///< [D]
  AttentionWeights<W, Space> attn;      ///< q [H*hd, D], k, v [Hkv*hd, D], o [D, H*hd]
  View1<const float, Space> ffn_norm;   ///< [D]
  SwigluWeights<W, Space> ffn;          ///< fc_a, fc_g [F, D], out [D, F]
};

/// Activation scratch of the blocks; reserve() only grows.
template <class Space>
struct TransformerBlockWorkspace {
  View2<float, Space> hn;            // [N, D] normalised block input
  View2<float, Space> ffn_a, ffn_g;  // [N, F]
  GqaAttentionWorkspace<Space> attn;

  void reserve(const TransformerConfig& cfg, int n_tokens) {
    detail::ensure_capacity(hn, n_tokens, cfg.d_model, "rodimus::tblock.hn");
    detail::ensure_capacity(ffn_a, n_tokens, cfg.ffn_dim, "rodimus::tblock.ffn_a");
    detail::ensure_capacity(ffn_g, n_tokens, cfg.ffn_dim, "rodimus::tblock.ffn_g");
    attn.reserve(cfg.attention_shape(), n_tokens);
  }
};

/// One pre-norm block on the (h, r) pair the models pass between blocks, where the residual
/// stream x = h + r (x = h before the first block, layer 0):
///   r = h + r;  h = Attn(RMSNorm_attn(r));  r = h + r;  h = SwiGLU(RMSNorm_ffn(r)).
/// That is x += Attn(RMSNorm(x)), then x += FFN(RMSNorm(x)); the caller adds the last h.
/// Appends this call's keys/values to `cache` (which must hold pos0 + len rows per sequence).
/// `trace` (when set) sees "attn_out" and "ffn_out".
// h: [>=N, D] in/out; r: [>=N, D] fp32 residual stream in/out; inv_freq: [hd / 2]
template <class Space, StorageType W>
void transformer_block(const Space& space, const TransformerConfig& cfg,
                       const TransformerBlockWeights<W, Space>& lw,
                       const View1<const float, Space>& inv_freq, int layer,
                       const View2<float, Space>& h, const View2<float, Space>& r,
                       const KvCache<Space>& cache, const SeqBatch<Space>& batch,
                       TransformerBlockWorkspace<Space>& ws, const TraceFn<Space>& trace) {
  using CV = View2<const float, Space>;
  const int nt = batch.num_tokens;
  const float eps = static_cast<float>(cfg.norm_eps);
  ws.reserve(cfg, nt);
  add_rms_norm(space, CV(h), r, lw.attn_norm, ws.hn, nt, eps,
               layer == 0 ? ResidualMode::Start : ResidualMode::Add);
  gqa_attention(space, cfg.attention_shape(), lw.attn, inv_freq, CV(ws.hn), cache, batch, ws.attn,
                h);
  if (trace) trace(layer, "attn_out", CV(h), nt);
  add_rms_norm(space, CV(h), r, lw.ffn_norm, ws.hn, nt, eps, ResidualMode::Add);
  swiglu_ffn(space, CV(ws.hn), lw.ffn, ws.ffn_a, ws.ffn_g, h, nt);
  if (trace) trace(layer, "ffn_out", CV(h), nt);
}

}  // namespace rodimus
