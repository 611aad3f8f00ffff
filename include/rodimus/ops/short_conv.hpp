// ShortConv: causal depthwise convolution of width K followed by SiLU (SPEC 2, step 2).
#pragma once

#include <type_traits>

#include "rodimus/ops/impl/short_conv_kernel.hpp"

namespace rodimus {

/// xs_t[c] = silu(b[c] + sum_j w[c, j] * x_{t-K+1+j}[c]), inputs before the call taken from the
/// carried `state` (zeros for a fresh sequence). Works for whole sequences and single steps.
/// When `update_state`, the last K-1 inputs of each sequence replace its state afterwards.
/// Real: float, or double (`short_conv<double>`, the fp64 training forward).
// x: [>=N, E], w: [E, K], b: [E], state: [S, K-1, E], xs: [>=N, E]
template <class Real = float, class Space>
void short_conv(const Space& space, const View2<const std::type_identity_t<Real>, Space>& x,
                const View2<const std::type_identity_t<Real>, Space>& w,
                const View1<const std::type_identity_t<Real>, Space>& b,
                const View3<std::type_identity_t<Real>, Space>& state, const SeqBatch<Space>& batch,
                const View2<std::type_identity_t<Real>, Space>& xs, bool update_state = true) {
  const auto e = w.extent(0);
  const auto k = w.extent(1);
  if (k < 1 || k > static_cast<std::size_t>(detail::kMaxConv))
    throw ArgumentError("short_conv: kernel width out of range [1, 64]");
  detail::check_extent(b, 0, e, "short_conv: bias");
  detail::check_extent(x, 1, e, "short_conv: x");
  detail::check_extent(xs, 1, e, "short_conv: xs");
  detail::check_extent(state, 1, k - 1, "short_conv: state");
  detail::check_extent(state, 2, e, "short_conv: state");
  detail::check_extent_at_least(x, 0, batch.num_tokens, "short_conv: x");
  detail::check_extent_at_least(xs, 0, batch.num_tokens, "short_conv: xs");
  if (batch.num_tokens == 0) return;
  detail::short_conv_generic<Space, Real>(space, x, w, b, state, batch, xs);
  if (update_state && k > 1)
    detail::short_conv_update_state_generic<Space, Real>(space, x, state, batch);
}

}  // namespace rodimus
