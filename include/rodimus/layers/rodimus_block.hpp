// The Rodimus block (SPEC 5): pre-norm residual add, then the mixer. No FFN.
#pragma once

#include "rodimus/layers/block_workspace.hpp"
#include "rodimus/model/state.hpp"
#include "rodimus/ops/rms_norm.hpp"

namespace rodimus {

/// r = h + r (r = h in the first layer); h = mixer(RMSNorm(r)).  Updates layer l's state.
/// With `next`: the residual add + RMSNorm that follows the mixer, in its output projection
/// (the Rodimus+ block's attention norm).
// h: [>=N, D] in/out; r: [>=N, D] fp32 residual stream in/out
template <ScanAlgorithm Scan, class Space, StorageType W>
void rodimus_block(const Space& space, const ModelConfig& cfg, const LayerWeights<W, Space>& lw,
                   int layer, const View2<float, Space>& h, const View2<float, Space>& r,
                   const typename State<Space>::Layer& st, const SeqBatch<Space>& batch,
                   BlockWorkspace<Space>& ws, const TraceFn<Space>& trace,
                   const ResidualNorm<Space>* next = nullptr) {
  using CV = View2<const float, Space>;
  const int nt = batch.num_tokens;
  const float eps = static_cast<float>(cfg.norm_epsilon);
  add_rms_norm(space, CV(h), r, lw.mixer_norm, ws.hn, nt, eps,
               layer == 0 ? ResidualMode::Start : ResidualMode::Add);
  rodimus_mixer<Scan>(space, cfg, lw.mixer, CV(ws.hn), st.conv, st.gla, batch, ws.mixer, h, next);
  if (trace) trace(layer, "mixer_out", CV(h), nt);
}

}  // namespace rodimus
