// RMSNorm, and RMSNorm fused with the residual add of the pre-norm blocks (SPEC 5).
#pragma once

#include <type_traits>

#include "rodimus/ops/impl/norm_kernels.hpp"

namespace rodimus {

/// How `add_rms_norm` treats the residual stream.
enum class ResidualMode : int {
  Start = 0,      ///< first layer: r = h
  Add = 1,        ///< r = h + r
  AddNoStore = 2  ///< normalise h + r but leave r unchanged (the Rodimus+ FFN hop)
};

/// out = x / sqrt(mean(x^2) + eps) * w.   x, out: [>=N, D], w: [D]; out may alias x.
/// Real is float (the model) or double (`rms_norm<double>`, the fp64 training forward).
template <class Real = float, class Space>
void rms_norm(const Space& space, const View2<const std::type_identity_t<Real>, Space>& x,
              const View1<const std::type_identity_t<Real>, Space>& w,
              const View2<std::type_identity_t<Real>, Space>& out, int n_tokens,
              std::type_identity_t<Real> eps) {
  detail::check_extent(x, 1, w.extent(0), "rms_norm: x");
  detail::check_extent(out, 1, w.extent(0), "rms_norm: out");
  detail::check_extent_at_least(x, 0, n_tokens, "rms_norm: x");
  detail::check_extent_at_least(out, 0, n_tokens, "rms_norm: out");
  if (n_tokens > 0) detail::rms_norm_generic<Space, Real>(space, x, w, out, n_tokens, eps);
}

/// Pre-norm residual add: r = h + r (per `mode`), out = RMSNorm(r) * w (Real as rms_norm).
// h: [>=N, D], r: [>=N, D] fp32 residual stream, w: [D], out: [>=N, D]
template <class Real = float, class Space>
void add_rms_norm(const Space& space, const View2<const std::type_identity_t<Real>, Space>& h,
                  const View2<std::type_identity_t<Real>, Space>& r,
                  const View1<const std::type_identity_t<Real>, Space>& w,
                  const View2<std::type_identity_t<Real>, Space>& out, int n_tokens,
                  std::type_identity_t<Real> eps, ResidualMode mode) {
  const auto d = w.extent(0);
  detail::check_extent(h, 1, d, "add_rms_norm: h");
  detail::check_extent(r, 1, d, "add_rms_norm: r");
  detail::check_extent(out, 1, d, "add_rms_norm: out");
  detail::check_extent_at_least(h, 0, n_tokens, "add_rms_norm: h");
  detail::check_extent_at_least(r, 0, n_tokens, "add_rms_norm: r");
  detail::check_extent_at_least(out, 0, n_tokens, "add_rms_norm: out");
  if (n_tokens > 0)
    detail::add_rms_norm_generic<Space, Real>(space, h, r, w, out, n_tokens, eps,
                                              static_cast<int>(mode));
}

}  // namespace rodimus
