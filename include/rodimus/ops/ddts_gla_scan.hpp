// The DDTS gates and the GLA scan as one op (SPEC 2 steps 5-7): the mixer's path from the gate
// projections to the scan output. On Kokkos::Cuda a decode-sized call runs both in one kernel
// (the gates computed as the recurrence loads each token); everywhere else it is ddts_gate
// followed by gla_scan.
#pragma once

#include "rodimus/backend/cuda/gla_scan.hpp"
#include "rodimus/ops/ddts_gate.hpp"
#include "rodimus/ops/gla_scan.hpp"

namespace rodimus {

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
  using CV = View2<const float, Space>;
  const auto n = q.extent(1);
  const int nt = batch.num_tokens;
  detail::check_extent(s_raw, 1, n, "ddts_gla_scan: s_raw");
  detail::check_extent(tau_raw, 1, n, "ddts_gla_scan: tau_raw");
  detail::check_extent(k, 1, n, "ddts_gla_scan: k");
  detail::check_extent(a, 1, n, "ddts_gla_scan: a");
  detail::check_extent(o, 1, u.extent(1), "ddts_gla_scan: o");
  detail::check_extent(state, 1, n, "ddts_gla_scan: state");
  detail::check_extent(state, 2, u.extent(1), "ddts_gla_scan: state");
  for (auto* v : {&q, &s_raw, &tau_raw, &u})
    detail::check_extent_at_least(*v, 0, nt, "ddts_gla_scan: input");
  for (auto* v : {&k, &a, &o}) detail::check_extent_at_least(*v, 0, nt, "ddts_gla_scan: k, a, o");
  if (nt == 0) return;
  if (backend::cuda::ddts_gla_scan_cuda(space, q, CV(k), s_raw, tau_raw, u, state, batch, o,
                                        scale, normalize_eps))
    return;
  ddts_gate(space, s_raw, tau_raw, CV(k), a, k, nt, normalize_eps);
  gla_scan<Algo>(space, q, CV(k), CV(a), u, state, batch, o, scale, ws);
}

}  // namespace rodimus
