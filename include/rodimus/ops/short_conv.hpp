// ShortConv: causal depthwise convolution of width K followed by SiLU (SPEC 2, step 2).
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "rodimus/backend/host/short_conv.hpp"
#include "rodimus/ops/impl/short_conv_kernel.hpp"

namespace rodimus {

namespace detail {
/// Runs the conv with the host kernel (backend/host/short_conv.hpp) when `Space` is a host space
/// and the operands are unit-stride rows with contiguous weights and state; false otherwise.
template <class Space>
bool short_conv_host(const Space& space, const View2<const float, Space>& x,
                     const View2<const float, Space>& w, const View1<const float, Space>& b,
                     const View3<float, Space>& state, const SeqBatch<Space>& batch,
                     const View2<float, Space>& xs, bool shift_state) {
  if constexpr (is_host_space_v<Space>) {
    namespace hb = backend::host;
    const auto e = static_cast<std::int64_t>(w.extent(0));
    const auto k = static_cast<std::int64_t>(w.extent(1));
    auto st = [](const auto& v, int d) { return static_cast<std::int64_t>(v.stride(d)); };
    if (k > hb::kShortConvMaxWidth || st(x, 1) != 1 || st(xs, 1) != 1 || st(w, 1) != 1 ||
        st(w, 0) != k || st(b, 0) != 1 ||
        (k > 1 && (st(state, 2) != 1 || st(state, 1) != e || st(state, 0) != (k - 1) * e)))
      return false;
    hb::ShortConvArgs a;
    a.w = w.data();
    if (k != 4) {
      // other widths than 4 take the weights transposed to [K, E] for unit-stride rows; the
      // buffer of the calling thread (host kernels have run when their launch returns)
      thread_local std::vector<float> wt;
      wt.resize(static_cast<std::size_t>(k * e));
      for (std::int64_t c = 0; c < e; ++c)
        for (std::int64_t j = 0; j < k; ++j) wt[j * e + c] = w.data()[c * k + j];
      a.wt = wt.data();
    }
    a.x = x.data();
    a.b = b.data();
    a.state = state.data();
    a.shift_state = shift_state;
    a.xs = xs.data();
    a.offsets = batch.offsets.data();
    a.slot = batch.slot.data();
    a.token_seq = batch.token_seq.data();
    a.ldx = st(x, 0);
    a.ldxs = st(xs, 0);
    a.e = static_cast<int>(e);
    a.k = static_cast<int>(k);
    const std::int64_t nt = batch.num_tokens;
    constexpr std::int64_t kb = hb::kShortConvTokenBlock;
    detail::host_items_for(space, RODIMUS_KERNEL_LABEL("rodimus::short_conv.host"),
                           (nt + kb - 1) / kb, [=](const std::int64_t blk) {
                             hb::short_conv_rows(a, blk * kb, std::min(nt, (blk + 1) * kb));
                           });
    return true;
  }
  return false;
}

/// short_conv's argument checks.
template <class Real, class Space>
void check_short_conv_args(const View2<const Real, Space>& x, const View2<const Real, Space>& w,
                           const View1<const Real, Space>& b, const View3<Real, Space>& state,
                           const SeqBatch<Space>& batch, const View2<Real, Space>& xs) {
  const auto e = w.extent(0);
  const auto k = w.extent(1);
  if (k < 1 || k > static_cast<std::size_t>(kMaxConv))
    throw ArgumentError("short_conv: kernel width out of range [1, 64]");
  check_extent(b, 0, e, "short_conv: bias");
  check_extent(x, 1, e, "short_conv: x");
  check_extent(xs, 1, e, "short_conv: xs");
  check_extent(state, 1, k - 1, "short_conv: state");
  check_extent(state, 2, e, "short_conv: state");
  check_extent_at_least(x, 0, batch.num_tokens, "short_conv: x");
  check_extent_at_least(xs, 0, batch.num_tokens, "short_conv: xs");
}

/// Whether a call is a decode step for the conv: one token per sequence, the state updated, a
/// width with a state (the conv and the state shift then take one kernel).
template <class Space>
bool short_conv_is_step(const SeqBatch<Space>& batch, std::size_t k, bool update_state) {
  return update_state && k > 1 && batch.max_len == 1 && batch.num_tokens == batch.num_seqs;
}

/// short_conv after its argument checks.
template <class Real, class Space>
void short_conv_checked(const Space& space, const View2<const Real, Space>& x,
                        const View2<const Real, Space>& w, const View1<const Real, Space>& b,
                        const View3<Real, Space>& state, const SeqBatch<Space>& batch,
                        const View2<Real, Space>& xs, bool update_state) {
  if (batch.num_tokens == 0) return;
  const auto k = w.extent(1);
  // a decode step (one token per sequence): the conv and the state shift in one kernel
  const bool step = detail::short_conv_is_step(batch, k, update_state);
  if constexpr (std::is_same_v<Real, float>)
    if (short_conv_host(space, x, w, b, View3<float, Space>(state), batch, xs, step)) {
      if (update_state && k > 1 && !step)
        short_conv_update_state_generic<Space, Real>(space, x, state, batch);
      return;
    }
  if (step) {
    short_conv_step_generic<Space, Real>(space, x, w, b, state, batch, xs);
    return;
  }
  short_conv_kernel<Space, Real>(space, x, w, b, state, batch, xs);
  if (update_state && k > 1) short_conv_update_state_generic<Space, Real>(space, x, state, batch);
}
}  // namespace detail

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
  detail::check_short_conv_args<Real, Space>(x, w, b, state, batch, xs);
  detail::short_conv_checked<Real>(space, x, w, b, state, batch, xs, update_state);
}

}  // namespace rodimus
