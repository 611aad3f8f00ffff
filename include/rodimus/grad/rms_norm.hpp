// Backward passes of RMSNorm and of RMSNorm fused with the pre-norm residual add (SPEC 5).
#pragma once

#include "rodimus/core/parallel.hpp"
#include "rodimus/core/views.hpp"
#include "rodimus/grad/impl/column_sums.hpp"
#include "rodimus/grad/impl/norm_grad_kernels.hpp"
#include "rodimus/ops/rms_norm.hpp"

namespace rodimus::grad {

/// Backward of y = x / rms(x) * w, rms(x) = sqrt(mean(x^2) + eps), per row (SPEC 5):
///   dx_c = inv (dy_c w_c - x_c inv^2 / D * sum_j dy_j w_j x_j)  (overwrites dx),
///   dw_c += sum_t dy_c x_c inv,   inv = 1 / rms(x).
/// dx may alias dy. Pass an empty dw when it is not wanted.
// x: [>=N, D], w: [D], dy: [>=N, D], dx: [>=N, D], dw: [D]
template <class Real, class Space>
void rms_norm_backward(const Space& space, const View2<const Real, Space>& x,
                       const View1<const Real, Space>& w, const View2<const Real, Space>& dy,
                       const View2<Real, Space>& dx, const View1<Real, Space>& dw, int n_tokens,
                       double eps) {
  namespace rd = ::rodimus::detail;
  const auto d = w.extent(0);
  if (n_tokens < 0) throw ArgumentError("rms_norm_backward: n_tokens is negative");
  rd::check_extent(x, 1, d, "rms_norm_backward: x");
  rd::check_extent(dy, 1, d, "rms_norm_backward: dy");
  rd::check_extent(dx, 1, d, "rms_norm_backward: dx");
  rd::check_extent_at_least(x, 0, n_tokens, "rms_norm_backward: x");
  rd::check_extent_at_least(dy, 0, n_tokens, "rms_norm_backward: dy");
  rd::check_extent_at_least(dx, 0, n_tokens, "rms_norm_backward: dx");
  if (detail::wanted(dw)) rd::check_extent(dw, 0, d, "rms_norm_backward: dw");
  if (n_tokens == 0 || d == 0) return;
  const auto stats = detail::rms_backward_row_stats<Real>(
      space, n_tokens, eps, KOKKOS_LAMBDA(int t, int c) { return x(t, c); }, dy, w);
  if (detail::wanted(dw))  // before dx: dx may alias dy
    detail::column_sums<Real>(
        space, n_tokens, static_cast<int>(d),
        KOKKOS_LAMBDA(int t, int c) { return dy(t, c) * x(t, c) * stats(t, 0); },
        KOKKOS_LAMBDA(int c, Real s) { dw(c) += s; });
  rd::parallel_rows_cols(
      RODIMUS_KERNEL_LABEL("rodimus::grad::rms_norm.dx"), space, n_tokens, static_cast<int>(d),
      KOKKOS_LAMBDA(const int t, const int c) {
        dx(t, c) = stats(t, 0) * dy(t, c) * w(c) - x(t, c) * stats(t, 1);
      });
}

/// Backward of the pre-norm residual add (ops/rms_norm.hpp `add_rms_norm`): with z the row
/// that was normalised and g = dL/dz through out = z / rms(z) * w (as in rms_norm_backward),
///   Start      (r = h, z = r):          dh = dr + g,  dr = 0 (the old r was overwritten);
///   Add        (r = h + r, z = r):      dh = dr + g,  dr = dr + g;
///   AddNoStore (z = h + r, r kept):     dh = g,       dr = dr + g.
/// On entry dr holds dL/dr for the residual stream after the op (zeros when nothing later
/// reads it); on exit, dL/dr for the stream before it. dw_c += sum_t dout_c z_c / rms(z).
/// `h` and `r` are the values after the forward call (r as add_rms_norm left it), so z = r,
/// or h + r in AddNoStore mode (h is read in that mode only and may be empty otherwise).
/// dh may alias dout.
// h: [>=N, D], r: [>=N, D], w: [D], dout: [>=N, D], dr: [>=N, D] in/out, dh: [>=N, D], dw: [D]
template <class Real, class Space>
void add_rms_norm_backward(const Space& space, const View2<const Real, Space>& h,
                           const View2<const Real, Space>& r, const View1<const Real, Space>& w,
                           const View2<const Real, Space>& dout, const View2<Real, Space>& dr,
                           const View2<Real, Space>& dh, const View1<Real, Space>& dw, int n_tokens,
                           double eps, ResidualMode mode) {
  namespace rd = ::rodimus::detail;
  const auto d = w.extent(0);
  if (n_tokens < 0) throw ArgumentError("add_rms_norm_backward: n_tokens is negative");
  const bool no_store = mode == ResidualMode::AddNoStore;
  if (no_store) {
    rd::check_extent(h, 1, d, "add_rms_norm_backward: h");
    rd::check_extent_at_least(h, 0, n_tokens, "add_rms_norm_backward: h");
  }
  rd::check_extent(r, 1, d, "add_rms_norm_backward: r");
  rd::check_extent(dout, 1, d, "add_rms_norm_backward: dout");
  rd::check_extent(dr, 1, d, "add_rms_norm_backward: dr");
  rd::check_extent(dh, 1, d, "add_rms_norm_backward: dh");
  rd::check_extent_at_least(r, 0, n_tokens, "add_rms_norm_backward: r");
  rd::check_extent_at_least(dout, 0, n_tokens, "add_rms_norm_backward: dout");
  rd::check_extent_at_least(dr, 0, n_tokens, "add_rms_norm_backward: dr");
  rd::check_extent_at_least(dh, 0, n_tokens, "add_rms_norm_backward: dh");
  if (detail::wanted(dw)) rd::check_extent(dw, 0, d, "add_rms_norm_backward: dw");
  if (n_tokens == 0 || d == 0) return;
  const auto z = KOKKOS_LAMBDA(int t, int c) { return no_store ? h(t, c) + r(t, c) : r(t, c); };
  const auto stats = detail::rms_backward_row_stats<Real>(space, n_tokens, eps, z, dout, w);
  if (detail::wanted(dw))  // before dh: dh may alias dout
    detail::column_sums<Real>(
        space, n_tokens, static_cast<int>(d),
        KOKKOS_LAMBDA(int t, int c) { return dout(t, c) * z(t, c) * stats(t, 0); },
        KOKKOS_LAMBDA(int c, Real s) { dw(c) += s; });
  const int m = static_cast<int>(mode);
  rd::parallel_rows_cols(
      RODIMUS_KERNEL_LABEL("rodimus::grad::add_rms_norm.dx"), space, n_tokens, static_cast<int>(d),
      KOKKOS_LAMBDA(const int t, const int c) {
        const Real g = stats(t, 0) * dout(t, c) * w(c) - z(t, c) * stats(t, 1);
        const Real carried = dr(t, c);
        dh(t, c) = m == static_cast<int>(ResidualMode::AddNoStore) ? g : carried + g;
        dr(t, c) = m == static_cast<int>(ResidualMode::Start) ? Real(0) : carried + g;
      });
}

}  // namespace rodimus::grad
