// Backward of the gated linear attention scan (SPEC 2 step 7, SPEC 2.1), chunkwise, for training.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>

#include "rodimus/grad/impl/gla_chunked_backward.hpp"
#include "rodimus/ops/gla_scan.hpp"

namespace rodimus::grad {

/// Gradients of the scan of every sequence of `batch`,
///   S_t = diag(exp(a_t)) S_{t-1} + k_t^T u_t,   o_t = scale * q_t S_t,   S_{-1} = state0[slot],
/// for a loss L whose gradients dL/do = `d_o` and dL/dS_last = `d_state_final[slot]` are given
/// (`d_state_final` empty, extent 0: the final state does not enter L). Chunks of C tokens
/// (`Algo = ChunkedScan<C>`); every decay factor is the exp of a sum of a <= 0 over its own range,
/// so any a in [-inf, 0] is safe. Chunk-boundary states are recomputed, not read from the forward.
///
/// Writes (overwrites, they are input gradients) dq, dk, da, du on the batch's N rows and
/// d_state0 on the batch's slots; other rows and slots are left alone. Slots must be distinct.
/// d_state0 may be the same view as d_state_final (chaining segments backwards in time).
/// Equations: docs/training.md ("Backward passes of the GLA scan and of SW-SKA").
// q, k, a: [>=N, n]; u, d_o: [>=N, E]; state0, d_state0: [S, n, E]; d_state_final: [S, n, E] or
// empty; dq, dk, da: [>=N, n]; du: [>=N, E]
template <class Algo, class Real, class Space>
void gla_scan_backward(const Space& space, const View2<const Real, Space>& q,
                       const View2<const Real, Space>& k, const View2<const Real, Space>& a,
                       const View2<const Real, Space>& u, const View3<const Real, Space>& state0,
                       const SeqBatch<Space>& batch, const View2<const Real, Space>& d_o,
                       const View3<const Real, Space>& d_state_final,
                       const View2<Real, Space>& dq, const View2<Real, Space>& dk,
                       const View2<Real, Space>& da, const View2<Real, Space>& du,
                       const View3<Real, Space>& d_state0, Real scale,
                       GlaScanGradWorkspace<Real, Space>& ws) {
  static_assert(rodimus::detail::is_chunked_scan<Algo>::value,
                "rodimus::grad::gla_scan_backward: Algo must be ChunkedScan<C>");
  static_assert(std::is_floating_point_v<Real>, "rodimus::grad::gla_scan_backward: Real");
  using rodimus::detail::check_extent;
  using rodimus::detail::check_extent_at_least;
  const auto n = static_cast<std::int64_t>(q.extent(1));
  const auto e = static_cast<std::int64_t>(u.extent(1));
  const auto slots = static_cast<std::int64_t>(state0.extent(0));
  const std::int64_t nt = batch.num_tokens;
  check_extent(k, 1, n, "gla_scan_backward: k");
  check_extent(a, 1, n, "gla_scan_backward: a");
  check_extent(d_o, 1, e, "gla_scan_backward: d_o");
  check_extent(state0, 1, n, "gla_scan_backward: state0");
  check_extent(state0, 2, e, "gla_scan_backward: state0");
  if (d_state_final.extent(0) != 0) {
    check_extent(d_state_final, 0, slots, "gla_scan_backward: d_state_final");
    check_extent(d_state_final, 1, n, "gla_scan_backward: d_state_final");
    check_extent(d_state_final, 2, e, "gla_scan_backward: d_state_final");
  }
  check_extent(dq, 1, n, "gla_scan_backward: dq");
  check_extent(dk, 1, n, "gla_scan_backward: dk");
  check_extent(da, 1, n, "gla_scan_backward: da");
  check_extent(du, 1, e, "gla_scan_backward: du");
  check_extent(d_state0, 0, slots, "gla_scan_backward: d_state0");
  check_extent(d_state0, 1, n, "gla_scan_backward: d_state0");
  check_extent(d_state0, 2, e, "gla_scan_backward: d_state0");
  check_extent_at_least(q, 0, nt, "gla_scan_backward: q");
  check_extent_at_least(k, 0, nt, "gla_scan_backward: k");
  check_extent_at_least(a, 0, nt, "gla_scan_backward: a");
  check_extent_at_least(u, 0, nt, "gla_scan_backward: u");
  check_extent_at_least(d_o, 0, nt, "gla_scan_backward: d_o");
  check_extent_at_least(dq, 0, nt, "gla_scan_backward: dq");
  check_extent_at_least(dk, 0, nt, "gla_scan_backward: dk");
  check_extent_at_least(da, 0, nt, "gla_scan_backward: da");
  check_extent_at_least(du, 0, nt, "gla_scan_backward: du");
  for (int s = 0; s < batch.num_seqs; ++s)
    if (batch.h_slot[s] < 0 || batch.h_slot[s] >= slots)
      throw ArgumentError("gla_scan_backward: batch.slot[" + std::to_string(s) + "] = " +
                          std::to_string(batch.h_slot[s]) + " is outside state0's " +
                          std::to_string(slots) + " slots");
  if (batch.num_seqs == 0 || n == 0 || e == 0) return;
  detail::gla_chunked_backward_generic<Algo::chunk_size, Real, Space>(
      space, q, k, a, u, state0, batch, d_o, d_state_final, dq, dk, da, du, d_state0, scale, ws);
}

}  // namespace rodimus::grad
