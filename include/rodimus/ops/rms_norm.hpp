// RMSNorm, and RMSNorm fused with the residual add of the pre-norm blocks (SPEC 5).
#pragma once

#include "rodimus/ops/impl/norm_kernels.hpp"

namespace rodimus {

/// How `add_rms_norm` treats the residual stream.
enum class ResidualMode : int {
  Start = 0,      ///< first layer: r = h
  Add = 1,        ///< r = h + r
  AddNoStore = 2  ///< normalise h + r but leave r unchanged (the Rodimus+ FFN hop)
};

/// out = x / sqrt(mean(x^2) + eps) * w.   x, out: [>=N, D], w: [D]; out may alias x.
template <class Space>
void rms_norm(const Space& space, const View2<const float, Space>& x,
              const View1<const float, Space>& w, const View2<float, Space>& out, int n_tokens,
              float eps) {
  detail::check_extent(x, 1, w.extent(0), "rms_norm: x");
  detail::check_extent(out, 1, w.extent(0), "rms_norm: out");
  detail::check_extent_at_least(x, 0, n_tokens, "rms_norm: x");
  detail::check_extent_at_least(out, 0, n_tokens, "rms_norm: out");
  if (n_tokens > 0) detail::rms_norm_generic(space, x, w, out, n_tokens, eps);
}

/// Pre-norm residual add: r = h + r (per `mode`), out = RMSNorm(r) * w.
// h: [>=N, D], r: [>=N, D] fp32 residual stream, w: [D], out: [>=N, D]
template <class Space>
void add_rms_norm(const Space& space, const View2<const float, Space>& h,
                  const View2<float, Space>& r, const View1<const float, Space>& w,
                  const View2<float, Space>& out, int n_tokens, float eps, ResidualMode mode) {
  const auto d = w.extent(0);
  detail::check_extent(h, 1, d, "add_rms_norm: h");
  detail::check_extent(r, 1, d, "add_rms_norm: r");
  detail::check_extent(out, 1, d, "add_rms_norm: out");
  detail::check_extent_at_least(h, 0, n_tokens, "add_rms_norm: h");
  detail::check_extent_at_least(r, 0, n_tokens, "add_rms_norm: r");
  detail::check_extent_at_least(out, 0, n_tokens, "add_rms_norm: out");
  if (n_tokens > 0)
    detail::add_rms_norm_generic(space, h, r, w, out, n_tokens, eps, static_cast<int>(mode));
}

}  // namespace rodimus
