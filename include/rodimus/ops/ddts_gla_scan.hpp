// The DDTS gates and the GLA scan as one op (SPEC 2 steps 5-7): the mixer's path from the gate
// projections to the scan output. On Kokkos::Cuda a decode-sized call runs both in one kernel
// (the gates computed as the recurrence loads each token); everywhere else it is ddts_gate
// followed by gla_scan.
#pragma once

#include "rodimus/backend/cuda/gla_scan.hpp"
#include "rodimus/ops/ddts_gate.hpp"
#include "rodimus/ops/gla_scan.hpp"

namespace rodimus {

namespace detail {
/// The checks of ddts_gla_scan's operands other than u (E: the value width).
template <class Space>
void check_ddts_gla_scan_args(const View2<const float, Space>& q,
                              const View2<const float, Space>& s_raw,
                              const View2<const float, Space>& tau_raw,
                              const View2<float, Space>& k, const View2<float, Space>& a,
                              const View3<float, Space>& state, const SeqBatch<Space>& batch,
                              const View2<float, Space>& o, std::size_t e) {
  const auto n = q.extent(1);
  const int nt = batch.num_tokens;
  check_extent(s_raw, 1, n, "ddts_gla_scan: s_raw");
  check_extent(tau_raw, 1, n, "ddts_gla_scan: tau_raw");
  check_extent(k, 1, n, "ddts_gla_scan: k");
  check_extent(a, 1, n, "ddts_gla_scan: a");
  check_extent(o, 1, e, "ddts_gla_scan: o");
  check_extent(state, 1, n, "ddts_gla_scan: state");
  check_extent(state, 2, e, "ddts_gla_scan: state");
  for (auto* v : {&q, &s_raw, &tau_raw}) check_extent_at_least(*v, 0, nt, "ddts_gla_scan: input");
  for (auto* v : {&k, &a, &o}) check_extent_at_least(*v, 0, nt, "ddts_gla_scan: k, a, o");
}

/// ddts_gla_scan after its argument checks (ddts_gla_scan_gated's fallback calls it).
template <ScanAlgorithm Algo, class Space>
void ddts_gla_scan_checked(const Space& space, const View2<const float, Space>& q,
                           const View2<const float, Space>& s_raw,
                           const View2<const float, Space>& tau_raw, const View2<float, Space>& k,
                           const View2<float, Space>& a, const View2<const float, Space>& u,
                           const View3<float, Space>& state, const SeqBatch<Space>& batch,
                           const View2<float, Space>& o, float scale, float normalize_eps,
                           GlaScanWorkspace<Space, float>& ws) {
  using CV = View2<const float, Space>;
  const int nt = batch.num_tokens;
  if (nt == 0) return;
  if (backend::cuda::ddts_gla_scan_cuda(space, q, CV(k), s_raw, tau_raw, u, state, batch, o,
                                        scale, normalize_eps))
    return;
  ddts_gate(space, s_raw, tau_raw, CV(k), a, k, nt, normalize_eps);
  gla_scan<Algo>(space, q, CV(k), CV(a), u, state, batch, o, scale, ws);
}
}  // namespace detail

/// o = gla_scan<Algo>(q, k', a, u) with a = -tau s and k' = s^tau k / max(||k||, eps) the DDTS
/// gates of (s_raw, tau_raw, k): the same as ddts_gate(s_raw, tau_raw, k, a, k) then
/// gla_scan<Algo>(q, k, a, u, state, batch, o, scale, ws). With the fused CUDA kernel (up to 4
/// tokens per sequence) `a` and `k` are left as they were; otherwise they hold the log forget
/// gate and the gated key afterwards. fp32.
// q, s_raw, tau_raw: [>=N, n]; k, a: [>=N, n] (k in / out, a out); u, o: [>=N, E];
// state: [S, n, E]
template <ScanAlgorithm Algo, class Space>
void ddts_gla_scan(const Space& space, const View2<const float, Space>& q,
                   const View2<const float, Space>& s_raw,
                   const View2<const float, Space>& tau_raw, const View2<float, Space>& k,
                   const View2<float, Space>& a, const View2<const float, Space>& u,
                   const View3<float, Space>& state, const SeqBatch<Space>& batch,
                   const View2<float, Space>& o, float scale, float normalize_eps,
                   GlaScanWorkspace<Space, float>& ws) {
  const int nt = batch.num_tokens;
  detail::check_ddts_gla_scan_args(q, s_raw, tau_raw, k, a, state, batch, o, u.extent(1));
  detail::check_extent_at_least(u, 0, nt, "ddts_gla_scan: u");
  detail::ddts_gla_scan_checked<Algo>(space, q, s_raw, tau_raw, k, a, u, state, batch, o, scale,
                                      normalize_eps, ws);
}

/// ddts_gla_scan with u = sigmoid(z_r W2^T + b2) * x, the channel gate after its
/// down-projection z_r = x W1^T (SPEC 2 steps 4-7): the same results as
/// channel_gate_up(x, cw, z_r, z_e, u) then ddts_gla_scan(..., u, ...). On Kokkos::Cuda a
/// decode-sized call with bf16 / fp16 gate weights (R <= 64) is one kernel that computes u as
/// it loads each token (then z_e, u, a and k are left as they were); otherwise the two ops run.
// x, u, z_e, o: [>=N, E]; z_r: [>=N, R]; the rest as ddts_gla_scan
template <ScanAlgorithm Algo, class Space, StorageType W>
void ddts_gla_scan_gated(const Space& space, const View2<const float, Space>& q,
                         const View2<const float, Space>& s_raw,
                         const View2<const float, Space>& tau_raw, const View2<float, Space>& k,
                         const View2<float, Space>& a, const View2<const float, Space>& x,
                         const ChannelGateWeights<W, Space>& cw,
                         const View2<const float, Space>& z_r, const View2<float, Space>& z_e,
                         const View2<float, Space>& u, const View3<float, Space>& state,
                         const SeqBatch<Space>& batch, const View2<float, Space>& o, float scale,
                         float normalize_eps, GlaScanWorkspace<Space, float>& ws) {
  using CV = View2<const float, Space>;
  const int nt = batch.num_tokens;
  detail::check_ddts_gla_scan_args(q, s_raw, tau_raw, k, a, state, batch, o, x.extent(1));
  detail::check_extent(u, 1, x.extent(1), "ddts_gla_scan_gated: u");
  detail::check_extent_at_least(u, 0, nt, "ddts_gla_scan_gated: u");
  detail::check_extent_at_least(x, 0, nt, "ddts_gla_scan_gated: x");
  detail::check_linear_args<Space, W>(z_r, cw.up, z_e, nt);
  detail::check_extent(z_e, 1, x.extent(1), "ddts_gla_scan_gated: z_e");
  if (nt == 0) return;
  if (backend::cuda::ddts_gla_scan_gated_cuda(space, q, CV(k), s_raw, tau_raw, x, z_r, cw.up.w,
                                              cw.up.b, state, batch, o, scale, normalize_eps))
    return;
  detail::channel_gate_up_checked(space, x, cw, z_r, z_e, u, nt);
  detail::ddts_gla_scan_checked<Algo>(space, q, s_raw, tau_raw, k, a, CV(u), state, batch, o,
                                      scale, normalize_eps, ws);
}

}  // namespace rodimus
