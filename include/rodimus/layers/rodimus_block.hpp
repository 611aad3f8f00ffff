// The Rodimus block (SPEC 5): pre-norm residual add, then the mixer. No FFN.
#pragma once

#include "rodimus/layers/block_workspace.hpp"
#include "rodimus/model/state.hpp"
#include "rodimus/ops/rms_norm.hpp"

namespace rodimus {

/// r = h + r (r = h in the first layer); h = mixer(RMSNorm(r)).  Updates layer l's state.
/// With `in`: the block's input rows, the residual add and norm already done or pending (the
/// previous layer's `next`), in place of its own add_rms_norm. With `next`: the residual add +
/// RMSNorm that follows the mixer, in its output projection (the Rodimus+ block's attention
/// norm, or the next layer's norm). Returns the rows the next sublayer reads ({h} without next).
// h: [>=N, D] in/out; r: [>=N, D] fp32 residual stream in/out
template <ScanAlgorithm Scan, class Space, StorageType W>
NormedRows<Space> rodimus_block(const Space& space, const ModelConfig& cfg,
                                const LayerWeights<W, Space>& lw, int layer,
                                const View2<float, Space>& h, const View2<float, Space>& r,
                                const typename State<Space>::Layer& st,
                                const SeqBatch<Space>& batch, BlockWorkspace<Space>& ws,
                                const TraceFn<Space>& trace,
                                const ResidualNorm<Space>* next = nullptr,
                                const NormedRows<Space>* in = nullptr) {
  using CV = View2<const float, Space>;
  const int nt = batch.num_tokens;
  const float eps = static_cast<float>(cfg.norm_epsilon);
  if (!in)
    add_rms_norm(space, CV(h), r, lw.mixer_norm, ws.hn, nt, eps,
                 layer == 0 ? ResidualMode::Start : ResidualMode::Add);
  const NormedRows<Space> out =
      rodimus_mixer<Scan>(space, cfg, lw.mixer, in ? *in : NormedRows<Space>(CV(ws.hn)), st.conv,
                          st.gla, batch, ws.mixer, h, next);
  if (trace) trace(layer, "mixer_out", CV(h), nt);
  return out;
}

}  // namespace rodimus
