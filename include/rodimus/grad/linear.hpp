// Backward pass of the linear layer y = x W^T + b (PyTorch weight convention W: [out, in]).
#pragma once

#include <type_traits>

#include "rodimus/backend/exec_space_traits.hpp"
#include "rodimus/backend/host/blas_linear.hpp"
#include "rodimus/core/views.hpp"
#include "rodimus/grad/grad_mode.hpp"
#include "rodimus/grad/impl/column_sums.hpp"
#include "rodimus/grad/impl/linear_grad_kernels.hpp"

namespace rodimus::grad {

/// Backward of y = x W^T + b over tokens [0, N):
///   dx = dy W (overwrites dx, or adds to it with `dx_mode = Accumulate`),
///   dW += dy^T x,  db += sum_t dy[t].
/// Pass an empty view for any of dx, dw, db that is not wanted; x may be empty when dw is.
/// Real (float for training, double for gradient checks) is given explicitly:
/// `grad::linear_backward<float>(space, ...)`. The tied LM head is this op with the embedding
/// table as W (its dW accumulates into the embedding's gradient). On host spaces with a CBLAS
/// the fp32 products are two sgemm calls (backend/host/blas_linear.hpp); elsewhere, and in
/// fp64, the generic kernels of grad/impl/linear_grad_kernels.hpp.
// x: [>=N, in], w: [out, in], dy: [>=N, out], dx: [>=N, in], dw: [out, in], db: [out]
template <class Real, class Space>
void linear_backward(const Space& space, const View2<const Real, Space>& x,
                     const View2<const Real, Space>& w, const View2<const Real, Space>& dy,
                     const View2<Real, Space>& dx, const View2<Real, Space>& dw,
                     const View1<Real, Space>& db, int n_tokens,
                     GradMode dx_mode = GradMode::Overwrite) {
  const auto out = w.extent(0);
  const auto in = w.extent(1);
  if (n_tokens < 0) throw ArgumentError("linear_backward: n_tokens is negative");
  ::rodimus::detail::check_extent(dy, 1, out, "linear_backward: dy");
  ::rodimus::detail::check_extent_at_least(dy, 0, n_tokens, "linear_backward: dy");
  if (detail::wanted(dx)) {
    ::rodimus::detail::check_extent(dx, 1, in, "linear_backward: dx");
    ::rodimus::detail::check_extent_at_least(dx, 0, n_tokens, "linear_backward: dx");
  }
  if (detail::wanted(dw)) {
    ::rodimus::detail::check_extent(dw, 0, out, "linear_backward: dw");
    ::rodimus::detail::check_extent(dw, 1, in, "linear_backward: dw");
    ::rodimus::detail::check_extent(x, 1, in, "linear_backward: x");
    ::rodimus::detail::check_extent_at_least(x, 0, n_tokens, "linear_backward: x");
  }
  if (detail::wanted(db)) ::rodimus::detail::check_extent(db, 0, out, "linear_backward: db");
  if (n_tokens == 0) return;
  bool done = false;
  if constexpr (std::is_same_v<Real, float> && is_host_space_v<Space> && backend::host::has_cblas) {
    // Host fp32 with a CBLAS: the two products are sgemm calls (LayoutRight rows, any row stride).
    namespace hb = backend::host;
    const auto ld = [](const auto& v) { return static_cast<int>(v.stride(0)); };
    const int n = n_tokens, ni = static_cast<int>(in), no = static_cast<int>(out);
    if (ni > 0 && no > 0) {  // (empty products: the generic kernels, which need no ld >= 1)
      space.fence();
      if (detail::wanted(dx))
        hb::blas_linear_grad_input(dy.data(), ld(dy), w.data(), ld(w), dx.data(), ld(dx), n, ni, no,
                                   dx_mode == GradMode::Accumulate);
      if (detail::wanted(dw))
        hb::blas_linear_grad_weight(x.data(), ld(x), dy.data(), ld(dy), dw.data(), ld(dw), n, ni,
                                    no);
      done = true;
    }
  }
  if (!done && detail::wanted(dx))
    detail::linear_grad_input<Real, Space>(space, dy, w, dx, n_tokens,
                                           dx_mode == GradMode::Accumulate);
  if (!done && detail::wanted(dw))
    detail::linear_grad_weight<Real, Space>(space, x, dy, dw, n_tokens);
  if (detail::wanted(db)) {
    detail::column_sums<Real>(
        space, n_tokens, static_cast<int>(out), KOKKOS_LAMBDA(int t, int o) { return dy(t, o); },
        KOKKOS_LAMBDA(int o, Real s) { db(o) += s; });
  }
}

}  // namespace rodimus::grad
