// Backward pass of the SwiGLU activation out = silu(g) * a (SPEC 4).
#pragma once

#include "rodimus/core/parallel.hpp"
#include "rodimus/core/views.hpp"
#include "rodimus/grad/impl/activations.hpp"

namespace rodimus::grad {

/// Backward of ops/swiglu.hpp `swiglu`: da = dout silu(g), dg = dout a silu'(g), with
/// silu'(g) = sigmoid(g) (1 + g sigmoid(-g)) (overwrite). da or dg may alias dout (each element
/// is read before it is written). The projections around it are grad/linear.hpp.
// a, g, dout: [>=N, F]; da, dg: [>=N, F]
template <class Real, class Space>
void swiglu_backward(const Space& space, const View2<const Real, Space>& a,
                     const View2<const Real, Space>& g, const View2<const Real, Space>& dout,
                     const View2<Real, Space>& da, const View2<Real, Space>& dg, int n_tokens) {
  namespace rd = ::rodimus::detail;
  const int f = static_cast<int>(a.extent(1));
  if (n_tokens < 0) throw ArgumentError("swiglu_backward: n_tokens is negative");
  rd::check_extent_at_least(a, 0, n_tokens, "swiglu_backward: a");
  rd::check_extent(g, 1, f, "swiglu_backward: g");
  rd::check_extent_at_least(g, 0, n_tokens, "swiglu_backward: g");
  rd::check_extent(dout, 1, f, "swiglu_backward: dout");
  rd::check_extent_at_least(dout, 0, n_tokens, "swiglu_backward: dout");
  rd::check_extent(da, 1, f, "swiglu_backward: da");
  rd::check_extent_at_least(da, 0, n_tokens, "swiglu_backward: da");
  rd::check_extent(dg, 1, f, "swiglu_backward: dg");
  rd::check_extent_at_least(dg, 0, n_tokens, "swiglu_backward: dg");
  if (n_tokens == 0 || f == 0) return;
  rd::parallel_rows_cols(
      RODIMUS_KERNEL_LABEL("rodimus::grad::swiglu"), space, n_tokens, f,
      KOKKOS_LAMBDA(const int t, const int c) {
        const Real d = dout(t, c), av = a(t, c), gv = g(t, c);
        da(t, c) = d * detail::silu(gv);
        dg(t, c) = d * av * detail::silu_grad(gv);
      });
}

}  // namespace rodimus::grad
