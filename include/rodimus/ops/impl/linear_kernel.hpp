// Generic Kokkos kernel of the linear layer: y = x W^T (+ b), W stored [out, in] in any dtype.
#pragma once

#include "rodimus/core/dtype.hpp"
#include "rodimus/core/parallel.hpp"
#include "rodimus/core/views.hpp"

namespace rodimus::detail {

/// Tokens one work item computes against one weight row; the row is streamed once per block.
inline constexpr int kLinearTokenBlock = 8;

// x: [N, in], w: [out, in], bias: [out] or empty, y: [N, out]; computed in compute_t<W>
template <class Space, class W>
void linear_generic(const Space& space, const View2<const compute_t<W>, Space>& x,
                    const View2<const W, Space>& w, const View1<const compute_t<W>, Space>& bias,
                    const View2<compute_t<W>, Space>& y, int n_tokens) {
  using C = compute_t<W>;
  const int in = static_cast<int>(w.extent(1));
  const int out = static_cast<int>(w.extent(0));
  const int blocks = (n_tokens + kLinearTokenBlock - 1) / kLinearTokenBlock;
  const bool has_bias = bias.extent(0) > 0;
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::linear"),
      detail::range_policy(space, 0, std::int64_t(blocks) * out),
      KOKKOS_LAMBDA(const std::int64_t idx) {
        const auto blk_o = split_index(idx, out);
        const int blk = blk_o.row, o = blk_o.col;
        const int t0 = blk * kLinearTokenBlock;
        const int nt = (n_tokens - t0) < kLinearTokenBlock ? (n_tokens - t0) : kLinearTokenBlock;
        C acc[kLinearTokenBlock] = {};
        if (nt == kLinearTokenBlock) {
          for (int i = 0; i < in; ++i) {
            const C wi = to_compute(w(o, i));
            for (int t = 0; t < kLinearTokenBlock; ++t) acc[t] += x(t0 + t, i) * wi;
          }
        } else {
          for (int i = 0; i < in; ++i) {
            const C wi = to_compute(w(o, i));
            for (int t = 0; t < nt; ++t) acc[t] += x(t0 + t, i) * wi;
          }
        }
        const C b = has_bias ? bias(o) : C(0);
        for (int t = 0; t < nt; ++t) y(t0 + t, o) = acc[t] + b;
      });
}

}  // namespace rodimus::detail
