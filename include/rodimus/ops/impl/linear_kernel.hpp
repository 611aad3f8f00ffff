// Generic Kokkos kernel of the linear layer: y = x W^T (+ b), W stored [out, in] in any dtype.
#pragma once

#include "rodimus/core/parallel.hpp"
#include "rodimus/core/dtype.hpp"
#include "rodimus/core/views.hpp"

namespace rodimus::detail {

/// Tokens one work item computes against one weight row; the row is streamed once per block.
inline constexpr int kLinearTokenBlock = 8;

// x: [N, in], w: [out, in], bias: [out] or empty, y: [N, out]
template <class Space, class W>
void linear_generic(const Space& space, const View2<const float, Space>& x,
                    const View2<const W, Space>& w, const View1<const float, Space>& bias,
                    const View2<float, Space>& y, int n_tokens) {
  const int in = static_cast<int>(w.extent(1));
  const int out = static_cast<int>(w.extent(0));
  const int blocks = (n_tokens + kLinearTokenBlock - 1) / kLinearTokenBlock;
  const bool has_bias = bias.extent(0) > 0;
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::linear"),
      detail::range_policy(space, 0, std::int64_t(blocks) * out),
      KOKKOS_LAMBDA(const std::int64_t idx) {
        const int o = static_cast<int>(idx % out);
        const int t0 = static_cast<int>(idx / out) * kLinearTokenBlock;
        const int nt = (n_tokens - t0) < kLinearTokenBlock ? (n_tokens - t0) : kLinearTokenBlock;
        float acc[kLinearTokenBlock] = {};
        if (nt == kLinearTokenBlock) {
          for (int i = 0; i < in; ++i) {
            const float wi = to_f32(w(o, i));
            for (int t = 0; t < kLinearTokenBlock; ++t) acc[t] += x(t0 + t, i) * wi;
          }
        } else {
          for (int i = 0; i < in; ++i) {
            const float wi = to_f32(w(o, i));
            for (int t = 0; t < nt; ++t) acc[t] += x(t0 + t, i) * wi;
          }
        }
        const float b = has_bias ? bias(o) : 0.f;
        for (int t = 0; t < nt; ++t) y(t0 + t, o) = acc[t] + b;
      });
}

}  // namespace rodimus::detail
