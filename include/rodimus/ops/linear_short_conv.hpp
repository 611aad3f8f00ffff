// Projections of one input followed by the ShortConv of the first one's output (SPEC 2 steps
// 1-2: [x, g] = h W_fc^T, xs = silu(conv(x))). On a CUDA GPU a decode step is one GEMV launch,
// the conv and its state shift in the GEMV's epilogue: one kernel fewer per mixer and step.
#pragma once

#include <array>
#include <cstddef>

#include "rodimus/ops/linear.hpp"
#include "rodimus/ops/normed_rows.hpp"
#include "rodimus/ops/short_conv.hpp"

namespace rodimus {

/// y[i][0:N] = x[0:N] W_i^T + b_i for every i (linear_shared_input), then
/// xs = short_conv(y[0], conv_w, conv_b, conv_state, batch) with the state updated: the same
/// results as those two calls. On Kokkos::Cuda, a decode step (one token per sequence) of at
/// most backend::cuda::kGemvMaxTokens sequences with bf16 / fp16 weights, dense operands and a
/// conv of width 2 to 4 is one GEMV launch with the conv in its epilogue; otherwise the two
/// calls run in turn. A pending norm of the input (NormedRows) runs in that GEMV where it takes
/// it, else first (rms_norm).
// x: [>=N, in]; y[i]: [>=N, out_i]; conv_w: [E, K], conv_b: [E] with E = out_0;
// conv_state: [S, K-1, E]; xs: [>=N, E]
template <class Space, StorageType W, std::size_t K>
void linear_short_conv(const Space& space, const std::type_identity_t<NormedRows<Space>>& in,
                       const std::array<const LinearWeights<W, Space>*, K>& lw,
                       const std::array<View2<float, Space>, K>& y,
                       const View2<const float, Space>& conv_w,
                       const View1<const float, Space>& conv_b,
                       const View3<float, Space>& conv_state, const SeqBatch<Space>& batch,
                       const View2<float, Space>& xs) {
  static_assert(K > 0, "linear_short_conv: no projection");
  const int nt = batch.num_tokens;
  for (std::size_t i = 0; i < K; ++i) detail::check_linear_args<Space, W>(in.x, *lw[i], y[i], nt);
  detail::check_normed_rows(in, in.x.extent(1), nt, "linear_short_conv: x");
  detail::check_short_conv_args<float, Space>(View2<const float, Space>(y[0]), conv_w, conv_b,
                                              conv_state, batch, xs);
  if (nt == 0) return;
  if constexpr (is_cuda_space_v<Space>) {
    const auto e = static_cast<std::size_t>(conv_w.extent(0));
    const auto k = static_cast<std::size_t>(conv_w.extent(1));
    const bool dense = conv_w.stride(1) == 1 && conv_w.stride(0) == k && conv_b.stride(0) == 1 &&
                       xs.stride(1) == 1 && conv_state.stride(2) == 1 &&
                       conv_state.stride(1) == e && conv_state.stride(0) == (k - 1) * e;
    if (dense && k <= static_cast<std::size_t>(backend::cuda::kGemvConvMaxWidth) &&
        detail::short_conv_is_step(batch, k, true) &&
        detail::cuda_gemv_normed(space, in, lw, y, nt, [&](auto& proj) {
          auto& c = proj[0].conv;
          c.w = conv_w.data();
          c.b = conv_b.data();
          c.state = conv_state.data();
          c.slot = batch.slot.data();
          c.xs = xs.data();
          c.ldxs = static_cast<std::int64_t>(xs.stride(0));
          c.k = static_cast<int>(k);
        }))
      return;
  }
  const auto x = detail::materialize(space, in, nt);
  detail::linear_shared_input_checked(space, x, lw, y, nt);
  detail::short_conv_checked<float>(space, View2<const float, Space>(y[0]), conv_w, conv_b,
                                    conv_state, batch, xs, true);
}

}  // namespace rodimus
