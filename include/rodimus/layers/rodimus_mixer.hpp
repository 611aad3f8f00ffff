// The Rodimus mixer (RodimusFlow, SPEC 2): projections, ShortConv, DDTS gates, GLA scan,
// gated RMSNorm, output projection.
#pragma once

#include <array>
#include <cmath>
#include <type_traits>

#include "rodimus/model/config.hpp"
#include "rodimus/model/weights.hpp"
#include "rodimus/ops/ddts_gate.hpp"
#include "rodimus/ops/ddts_gla_scan.hpp"
#include "rodimus/ops/gated_rms_norm.hpp"
#include "rodimus/ops/gla_scan.hpp"
#include "rodimus/ops/linear.hpp"
#include "rodimus/ops/linear_residual_norm.hpp"
#include "rodimus/ops/linear_short_conv.hpp"
#include "rodimus/ops/short_conv.hpp"

namespace rodimus {

/// Activation scratch of the mixer; sized by reserve(), which only grows.
template <class Space>
struct MixerWorkspace {
  View2<float, Space> x, g, xs, u, o, ze;  // [N, E]
  View2<float, Space> zr;                  // [N, R]
  View2<float, Space> q, k, a, sr, tr;     // [N, n]
  GlaScanWorkspace<Space> scan;

  void reserve(const ModelConfig& cfg, int n_tokens) {
    const std::size_t e = cfg.d_inner(), n = cfg.mem_size(), r = cfg.low_rank();
    for (auto* v : {&x, &g, &xs, &u, &o, &ze})
      detail::ensure_capacity(*v, n_tokens, e, "rodimus::mixer.E");
    detail::ensure_capacity(zr, n_tokens, r, "rodimus::mixer.R");
    for (auto* v : {&q, &k, &a, &sr, &tr})
      detail::ensure_capacity(*v, n_tokens, n, "rodimus::mixer.n");
  }
};

/// out = RodimusFlow(h) for every token of `batch`, continuing and updating the conv and GLA
/// states of the batch's slots; with `next`, then the residual add + RMSNorm of out that
/// follows (linear_residual_norm). Returns the rows the next sublayer reads: {out}, or
/// linear_residual_norm's. h may owe its norm (NormedRows: the first projection's GEMV takes
/// it on a GPU). Scan is the GLA scan algorithm tag.
// h: [>=N, D] (normalised, or pending), out: [>=N, D]; conv: [S, K-1, E]; gla: [S, n, E]
template <ScanAlgorithm Scan, class Space, StorageType W>
NormedRows<Space> rodimus_mixer(const Space& space, const ModelConfig& cfg,
                                const MixerWeights<W, Space>& mw,
                                const std::type_identity_t<NormedRows<Space>>& h,
                                const View3<float, Space>& conv_state,
                                const View3<float, Space>& gla_state, const SeqBatch<Space>& batch,
                                MixerWorkspace<Space>& ws, const View2<float, Space>& out,
                                const ResidualNorm<Space>* next = nullptr) {
  using CV = View2<const float, Space>;
  const int nt = batch.num_tokens;
  ws.reserve(cfg, nt);
  // 1. [x, g] = split(h W_fc^T)                                  [N, D] -> 2 x [N, E]
  // 2. xs = silu(conv(x))                                        [N, E]
  //    (a CUDA decode step: the conv in the projections' GEMV)
  linear_short_conv(space, h, std::array{&mw.fc_x, &mw.fc_g}, std::array{ws.x, ws.g}, mw.conv_w,
                    mw.conv_b, conv_state, batch, ws.xs);
  // 3. [q, k] = split(xs W_in^T), and the DDTS gates' inputs     [N, E] -> 2 x [N, n], 2 x [N, r]
  //    beside step 4's z_r = x W1^T                              [N, E] -> [N, R]
  //    (a decode step: one GEMV launch for both inputs)
  linear_two_inputs(space, CV(ws.xs), std::array{&mw.in_q, &mw.in_k, &mw.mem_s, &mw.mem_t},
                    std::array{ws.q, ws.k, ws.sr, ws.tr}, CV(ws.x), std::array{&mw.ch_gate.down},
                    std::array{ws.zr}, nt);
  // 4. u = sigmoid(z_r W2^T + b2) * x                            [N, E]
  // 5-7. DDTS gates a = -tau * s, k' = s^tau * k / ||k||, and the scan o_t = q_t S_t / sqrt(n)
  //      (one kernel for a CUDA decode step, u computed in it)   [N, n], [N, E]
  // 8-9. y = rmsnorm((o + xs * w_res) * silu(g)) * w             [N, E]
  //      (a CUDA decode step: the gate in the scan kernel, the norm in step 10's GEMV; y feeds
  //      only step 10, which takes a pending norm, so the norm may always be deferred)
  GatedNorm<Space> gated{CV(ws.xs), mw.w_res, CV(ws.g), mw.act_norm, ws.ze,
                         static_cast<float>(cfg.norm_epsilon), true};
  const NormedRows<Space> y = ddts_gla_scan_gated_norm<Scan>(
      space, CV(ws.q), CV(ws.sr), CV(ws.tr), ws.k, ws.a, CV(ws.x), mw.ch_gate, CV(ws.zr), ws.ze,
      ws.u, gla_state, batch, ws.o, static_cast<float>(1.0 / std::sqrt(double(cfg.mem_size()))),
      static_cast<float>(cfg.mixer.normalize_epsilon), ws.scan, gated);
  // 10. out = y W_out^T                                          [N, E] -> [N, D]
  if (next) return linear_residual_norm(space, y, mw.out, out, *next, nt);
  // (the last layer: no norm follows, but the GEMV still takes y's pending norm)
  if (y.pending() &&
      detail::cuda_gemv_normed(space, y, std::array{&mw.out}, std::array{out}, nt, [](auto&) {}))
    return NormedRows<Space>(CV(out));
  linear(space, detail::materialize(space, y, nt), mw.out, out, nt);
  return NormedRows<Space>(CV(out));
}

}  // namespace rodimus
