// The Rodimus+ block (SPEC 5): mixer, shared-key attention, and the FFN on the two-hop residual.
#pragma once

#include "rodimus/layers/rodimus_block.hpp"
#include "rodimus/ops/swiglu.hpp"

namespace rodimus {

/// r = h + r; h = mixer(norm(r)); r = h + r; h = attn(norm(r)); h = ffn(norm(h + r)) without
/// updating r: the attention output reaches the residual stream only through the FFN.
/// `in` and `next` as rodimus_block's (next: the norm after the FFN). Returns the rows the next
/// sublayer reads ({h} without next).
// h: [>=N, D] in/out; r: [>=N, D] fp32 residual stream in/out
template <ScanAlgorithm Scan, class Space, StorageType W>
NormedRows<Space> rodimus_plus_block(
    const Space& space, const ModelConfig& cfg, const LayerWeights<W, Space>& lw,
    const View1<const float, Space>& inv_freq, int layer, const View2<float, Space>& h,
    const View2<float, Space>& r, const typename State<Space>::Layer& st,
    const SeqBatch<Space>& batch, BlockWorkspace<Space>& ws, const TraceFn<Space>& trace,
    const ResidualNorm<Space>* next = nullptr, const NormedRows<Space>* in = nullptr) {
  using CV = View2<const float, Space>;
  const int nt = batch.num_tokens;
  const float eps = static_cast<float>(cfg.norm_epsilon);
  // each norm in the output projection before it (linear_residual_norm); without a trace
  // nothing reads h between the sublayers, so the norms may be left to their consumers
  const bool defer = !trace;
  const ResidualNorm<Space> attn_norm{r, lw.attn_norm, ws.hn, eps, ResidualMode::Add, defer};
  const ResidualNorm<Space> ffn_norm{r, lw.ffn_norm, ws.hn, eps, ResidualMode::AddNoStore, defer};
  const NormedRows<Space> a =
      rodimus_block<Scan>(space, cfg, lw, layer, h, r, st, batch, ws, trace, &attn_norm, in);
  const NormedRows<Space> f = ska_attention(space, cfg, lw.attn, inv_freq, a, st.k_cache,
                                            st.v_cache, batch, ws.attn, h, &ffn_norm);
  if (trace) trace(layer, "attn_out", CV(h), nt);
  const NormedRows<Space> out = swiglu_ffn(space, f, lw.ffn, ws.ffn_a, ws.ffn_g, h, nt, next);
  if (trace) trace(layer, "ffn_out", CV(h), nt);
  return out;
}

}  // namespace rodimus
