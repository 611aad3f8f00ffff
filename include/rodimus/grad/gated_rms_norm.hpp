// Backward pass of the mixer's gated RMSNorm, gate applied before the norm (SPEC 2, steps 8-9).
#pragma once

#include <utility>

#include "rodimus/core/parallel.hpp"
#include "rodimus/core/views.hpp"
#include "rodimus/grad/impl/activations.hpp"
#include "rodimus/grad/impl/column_sums.hpp"
#include "rodimus/grad/impl/norm_grad_kernels.hpp"

namespace rodimus::grad {

/// Backward of ops/gated_rms_norm.hpp: m = o + xs * w_res, z = m * silu(g),
/// y = z / rms(z) * w (SPEC 2.8-2.9). With dz = dL/dz through the norm (as in
/// rms_norm_backward) and dm = dz * silu(g):
///   do = dm,  dxs = dm * w_res,  dg = dz * m * silu'(g)   (overwrite),
///   dw_c += sum_t dy_c z_c / rms(z),  dw_res_c += sum_t dm_c xs_c.
/// An empty w_res means the forward had no residual term: xs, dxs and dw_res are then not
/// read or written. Pass an empty dw or dw_res when it is not wanted.
// o, xs, g, dy: [>=N, E]; w_res, w: [E]; d_o, dxs, dg: [>=N, E]; dw, dw_res: [E]
template <class Real, class Space>
void gated_rms_norm_backward(const Space& space, const View2<const Real, Space>& o,
                             const View2<const Real, Space>& xs,
                             const View1<const Real, Space>& w_res,
                             const View2<const Real, Space>& g, const View1<const Real, Space>& w,
                             const View2<const Real, Space>& dy, const View2<Real, Space>& d_o,
                             const View2<Real, Space>& dxs, const View2<Real, Space>& dg,
                             const View1<Real, Space>& dw, const View1<Real, Space>& dw_res,
                             int n_tokens, double eps) {
  namespace rd = ::rodimus::detail;
  const auto e = w.extent(0);
  if (n_tokens < 0) throw ArgumentError("gated_rms_norm_backward: n_tokens is negative");
  const bool has_res = detail::wanted(w_res);
  for (auto [v, name] :
       {std::pair{&o, "gated_rms_norm_backward: o"}, std::pair{&g, "gated_rms_norm_backward: g"},
        std::pair{&dy, "gated_rms_norm_backward: dy"}}) {
    rd::check_extent(*v, 1, e, name);
    rd::check_extent_at_least(*v, 0, n_tokens, name);
  }
  for (auto [v, name] : {std::pair{&d_o, "gated_rms_norm_backward: d_o"},
                         std::pair{&dg, "gated_rms_norm_backward: dg"}}) {
    rd::check_extent(*v, 1, e, name);
    rd::check_extent_at_least(*v, 0, n_tokens, name);
  }
  if (has_res) {
    rd::check_extent(w_res, 0, e, "gated_rms_norm_backward: w_res");
    rd::check_extent(xs, 1, e, "gated_rms_norm_backward: xs");
    rd::check_extent_at_least(xs, 0, n_tokens, "gated_rms_norm_backward: xs");
    rd::check_extent(dxs, 1, e, "gated_rms_norm_backward: dxs");
    rd::check_extent_at_least(dxs, 0, n_tokens, "gated_rms_norm_backward: dxs");
    if (detail::wanted(dw_res)) rd::check_extent(dw_res, 0, e, "gated_rms_norm_backward: dw_res");
  }
  if (detail::wanted(dw)) rd::check_extent(dw, 0, e, "gated_rms_norm_backward: dw");
  if (n_tokens == 0 || e == 0) return;
  const auto m = KOKKOS_LAMBDA(int t, int c) {
    return has_res ? o(t, c) + xs(t, c) * w_res(c) : o(t, c);
  };
  const auto z = KOKKOS_LAMBDA(int t, int c) { return m(t, c) * detail::silu(g(t, c)); };
  const auto stats = detail::rms_backward_row_stats<Real>(space, n_tokens, eps, z, dy, w);
  const auto dz = KOKKOS_LAMBDA(int t, int c) {
    return stats(t, 0) * dy(t, c) * w(c) - z(t, c) * stats(t, 1);
  };
  // Columns [0, E): dw; [E, 2E): dw_res. Before the element-wise pass (outputs may alias dy).
  const int ei = static_cast<int>(e);
  const bool want_dw = detail::wanted(dw), want_dw_res = has_res && detail::wanted(dw_res);
  if (want_dw || want_dw_res)
    detail::column_sums<Real>(
        space, n_tokens, 2 * ei,
        KOKKOS_LAMBDA(int t, int col) {
          if (col < ei) return want_dw ? dy(t, col) * z(t, col) * stats(t, 0) : Real(0);
          const int c = col - ei;
          return want_dw_res ? dz(t, c) * detail::silu(g(t, c)) * xs(t, c) : Real(0);
        },
        KOKKOS_LAMBDA(int col, Real s) {
          if (col < ei) {
            if (want_dw) dw(col) += s;
          } else if (want_dw_res) {
            dw_res(col - ei) += s;
          }
        });
  rd::parallel_rows_cols(
      RODIMUS_KERNEL_LABEL("rodimus::grad::gated_rms_norm.dx"), space, n_tokens, ei,
      KOKKOS_LAMBDA(const int t, const int c) {
        const Real gz = dz(t, c);
        const Real gc = g(t, c);
        const Real dm = gz * detail::silu(gc);
        const Real mc = m(t, c);
        dg(t, c) = gz * mc * detail::silu_grad(gc);
        d_o(t, c) = dm;
        if (has_res) dxs(t, c) = dm * w_res(c);
      });
}

}  // namespace rodimus::grad
