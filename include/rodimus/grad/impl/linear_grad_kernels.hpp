// Generic Kokkos kernels of the linear layer's backward pass: dx = dy W, dW += dy^T x.
#pragma once

#include <cstdint>

#include "rodimus/backend/exec_space_traits.hpp"
#include "rodimus/core/views.hpp"

namespace rodimus::grad::detail {

/// Rows (tokens of dx, or output rows of dW) one host work item updates together, so that each
/// row of W (or of x) it streams is reused that many times from L1.
inline constexpr int kLinearGradBlock = 8;

/// dx[t, i] (=|+=) sum_o dy[t, o] W[o, i].  Each dx element has one writer.
// dy: [N, out], w: [out, in], dx: [N, in]
template <class Real, class Space>
void linear_grad_input(const Space& space, const View2<const Real, Space>& dy,
                       const View2<const Real, Space>& w, const View2<Real, Space>& dx,
                       int n_tokens, bool accumulate) {
  const int out = static_cast<int>(w.extent(0));
  const int in = static_cast<int>(w.extent(1));
  if constexpr (is_host_space_v<Space>) {
    const int blocks = (n_tokens + kLinearGradBlock - 1) / kLinearGradBlock;
    Kokkos::parallel_for(
        RODIMUS_KERNEL_LABEL("rodimus::grad::linear.dx"),
        Kokkos::RangePolicy<Space>(space, 0, blocks), KOKKOS_LAMBDA(const int blk) {
          const int t0 = blk * kLinearGradBlock;
          const int nt = n_tokens - t0 < kLinearGradBlock ? n_tokens - t0 : kLinearGradBlock;
          if (!accumulate)
            for (int b = 0; b < nt; ++b)
              for (int i = 0; i < in; ++i) dx(t0 + b, i) = Real(0);
          for (int o = 0; o < out; ++o)
            for (int b = 0; b < nt; ++b) {
              const Real d = dy(t0 + b, o);
              for (int i = 0; i < in; ++i) dx(t0 + b, i) += d * w(o, i);
            }
        });
  } else {
    Kokkos::parallel_for(
        RODIMUS_KERNEL_LABEL("rodimus::grad::linear.dx"),
        Kokkos::RangePolicy<Space>(space, 0, std::int64_t(n_tokens) * in),
        KOKKOS_LAMBDA(const std::int64_t idx) {
          const int t = static_cast<int>(idx / in);
          const int i = static_cast<int>(idx % in);
          Real acc = Real(0);
          for (int o = 0; o < out; ++o) acc += dy(t, o) * w(o, i);
          dx(t, i) = accumulate ? dx(t, i) + acc : acc;
        });
  }
}

/// dW[o, i] += sum_t dy[t, o] x[t, i], in token order.  Each dW element has one writer.
// x: [N, in], dy: [N, out], dw: [out, in]
template <class Real, class Space>
void linear_grad_weight(const Space& space, const View2<const Real, Space>& x,
                        const View2<const Real, Space>& dy, const View2<Real, Space>& dw,
                        int n_tokens) {
  const int out = static_cast<int>(dw.extent(0));
  const int in = static_cast<int>(dw.extent(1));
  if constexpr (is_host_space_v<Space>) {
    const int blocks = (out + kLinearGradBlock - 1) / kLinearGradBlock;
    Kokkos::parallel_for(
        RODIMUS_KERNEL_LABEL("rodimus::grad::linear.dw"),
        Kokkos::RangePolicy<Space>(space, 0, blocks), KOKKOS_LAMBDA(const int blk) {
          const int o0 = blk * kLinearGradBlock;
          const int no = out - o0 < kLinearGradBlock ? out - o0 : kLinearGradBlock;
          for (int t = 0; t < n_tokens; ++t)
            for (int b = 0; b < no; ++b) {
              const Real d = dy(t, o0 + b);
              for (int i = 0; i < in; ++i) dw(o0 + b, i) += d * x(t, i);
            }
        });
  } else {
    Kokkos::parallel_for(
        RODIMUS_KERNEL_LABEL("rodimus::grad::linear.dw"),
        Kokkos::RangePolicy<Space>(space, 0, std::int64_t(out) * in),
        KOKKOS_LAMBDA(const std::int64_t idx) {
          const int o = static_cast<int>(idx / in);
          const int i = static_cast<int>(idx % in);
          Real acc = Real(0);
          for (int t = 0; t < n_tokens; ++t) acc += dy(t, o) * x(t, i);
          dw(o, i) += acc;
        });
  }
}

}  // namespace rodimus::grad::detail
