// Gated RMSNorm of the Rodimus mixer output, the gate applied before the norm (SPEC 2, 8-9).
#pragma once

#include <type_traits>

#include "rodimus/ops/impl/norm_kernels.hpp"

namespace rodimus {

/// y = z / rms(z) * w with z = (o + xs * w_res) * silu(g).  Pass an empty `w_res` to skip the
/// residual term. Real: float, or double (`gated_rms_norm<double>`).
// o, xs, g, y: [>=N, E]; w_res, w: [E]
template <class Real = float, class Space>
void gated_rms_norm(const Space& space, const View2<const std::type_identity_t<Real>, Space>& o,
                    const View2<const std::type_identity_t<Real>, Space>& xs,
                    const View1<const std::type_identity_t<Real>, Space>& w_res,
                    const View2<const std::type_identity_t<Real>, Space>& g,
                    const View1<const std::type_identity_t<Real>, Space>& w,
                    const View2<std::type_identity_t<Real>, Space>& y, int n_tokens,
                    std::type_identity_t<Real> eps) {
  const auto e = w.extent(0);
  detail::check_extent(o, 1, e, "gated_rms_norm: o");
  detail::check_extent(g, 1, e, "gated_rms_norm: g");
  detail::check_extent(y, 1, e, "gated_rms_norm: y");
  if (w_res.extent(0) > 0) {
    detail::check_extent(w_res, 0, e, "gated_rms_norm: w_res");
    detail::check_extent(xs, 1, e, "gated_rms_norm: xs");
    detail::check_extent_at_least(xs, 0, n_tokens, "gated_rms_norm: xs");
  }
  detail::check_extent_at_least(o, 0, n_tokens, "gated_rms_norm: o");
  detail::check_extent_at_least(g, 0, n_tokens, "gated_rms_norm: g");
  detail::check_extent_at_least(y, 0, n_tokens, "gated_rms_norm: y");
  if (n_tokens > 0)
    detail::gated_rms_norm_generic<Space, Real>(space, o, xs, w_res, g, w, y, n_tokens, eps);
}

}  // namespace rodimus
