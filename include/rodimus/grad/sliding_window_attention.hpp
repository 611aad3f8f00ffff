// Backward of the sliding-window shared-key softmax attention (SPEC 3, steps 3-4), for training.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>

#include "rodimus/grad/impl/sliding_window_attention_backward.hpp"
#include "rodimus/ops/sliding_window_attention.hpp"

namespace rodimus::grad {

/// Gradients of sliding_window_attention (ops/sliding_window_attention.hpp) with the same inputs
/// (q, k after RoPE; RoPE's own backward is outside) over the tokens of the call: each sequence of
/// `batch` attends within itself, so every batch.pos0 must be 0 (no cached keys). Query head h
/// reads key head h % Hk and value head h % Hv; a query at position p sees keys
/// p - window_back .. p (window_back < 0: all earlier keys); scores are scaled by shape.scale.
/// Given dL/dout = `d_out`, writes (overwrites, they are input gradients) dq, dk, dv on the
/// batch's N rows; a shared key or value head gathers over every query head that reads it.
/// Softmax statistics are recomputed (nothing is saved from the forward). Equations:
/// docs/training.md ("Backward passes of the GLA scan and of SW-SKA").
// q, d_out, dq: [>=N, H*hd]; k, dk: [>=N, Hk*hd]; v, dv: [>=N, Hv*hd]
template <class Real, class Space>
void sliding_window_attention_backward(
    const Space& space, const View2<const Real, Space>& q, const View2<const Real, Space>& k,
    const View2<const Real, Space>& v, const SeqBatch<Space>& batch,
    const View2<const Real, Space>& d_out, const View2<Real, Space>& dq,
    const View2<Real, Space>& dk, const View2<Real, Space>& dv, const AttentionShape& shape,
    SlidingWindowAttentionGradWorkspace<Real, Space>& ws) {
  static_assert(std::is_floating_point_v<Real>,
                "rodimus::grad::sliding_window_attention_backward: Real");
  using rodimus::detail::check_extent;
  using rodimus::detail::check_extent_at_least;
  const int hd = shape.head_dim;
  if (shape.heads <= 0 || shape.heads_k <= 0 || shape.heads_v <= 0 || hd <= 0)
    throw ArgumentError(
        "sliding_window_attention_backward: shape: head counts and head_dim must be positive");
  const std::int64_t qd = std::int64_t(shape.heads) * hd;
  const std::int64_t kd = std::int64_t(shape.heads_k) * hd;
  const std::int64_t vd = std::int64_t(shape.heads_v) * hd;
  const std::int64_t nt = batch.num_tokens;
  check_extent(q, 1, qd, "sliding_window_attention_backward: q");
  check_extent(k, 1, kd, "sliding_window_attention_backward: k");
  check_extent(v, 1, vd, "sliding_window_attention_backward: v");
  check_extent(d_out, 1, qd, "sliding_window_attention_backward: d_out");
  check_extent(dq, 1, qd, "sliding_window_attention_backward: dq");
  check_extent(dk, 1, kd, "sliding_window_attention_backward: dk");
  check_extent(dv, 1, vd, "sliding_window_attention_backward: dv");
  check_extent_at_least(q, 0, nt, "sliding_window_attention_backward: q");
  check_extent_at_least(k, 0, nt, "sliding_window_attention_backward: k");
  check_extent_at_least(v, 0, nt, "sliding_window_attention_backward: v");
  check_extent_at_least(d_out, 0, nt, "sliding_window_attention_backward: d_out");
  check_extent_at_least(dq, 0, nt, "sliding_window_attention_backward: dq");
  check_extent_at_least(dk, 0, nt, "sliding_window_attention_backward: dk");
  check_extent_at_least(dv, 0, nt, "sliding_window_attention_backward: dv");
  for (int s = 0; s < batch.num_seqs; ++s)
    if (batch.h_pos0[s] != 0)
      throw ArgumentError("sliding_window_attention_backward: batch.pos0[" + std::to_string(s) +
                          "] is " + std::to_string(batch.h_pos0[s]) +
                          ", must be 0 (the backward attends within the call, without a cache)");
  if (nt == 0) return;
  detail::swa_backward_generic<Real, Space>(space, q, k, v, batch, d_out, dq, dk, dv, shape, ws);
}

}  // namespace rodimus::grad
