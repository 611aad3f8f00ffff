// Gated RMSNorm of the Rodimus mixer output, the gate applied before the norm (SPEC 2, 8-9).
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "rodimus/backend/cuda/rms_norm.hpp"
#include "rodimus/backend/host/rms_norm.hpp"
#include "rodimus/ops/impl/norm_kernels.hpp"

namespace rodimus {

namespace detail {
/// Tokens per work item of the host norm kernels.
inline constexpr std::int64_t kHostNormRows = 16;

/// Runs the gated norm with a fast kernel when every operand has unit-stride rows: the host
/// kernel (backend/host/rms_norm.hpp) on host spaces, the CUDA one (backend/cuda/rms_norm.hpp)
/// on Kokkos::Cuda; false (nothing done) otherwise.
template <class Space>
bool gated_rms_norm_fast(const Space& space, const View2<const float, Space>& o,
                         const View2<const float, Space>& xs,
                         const View1<const float, Space>& w_res, const View2<const float, Space>& g,
                         const View1<const float, Space>& w, const View2<float, Space>& y,
                         int n_tokens, float eps) {
  if constexpr (is_host_space_v<Space> || is_cuda_space_v<Space>) {
    const bool has_res = w_res.extent(0) > 0;
    auto st = [](const auto& v, int d) { return static_cast<std::int64_t>(v.stride(d)); };
    if (st(o, 1) != 1 || st(g, 1) != 1 || st(y, 1) != 1 || st(w, 0) != 1 ||
        (has_res && (st(xs, 1) != 1 || st(w_res, 0) != 1)))
      return false;
    backend::GatedRmsNormArgs a;
    a.o = o.data();
    a.xs = has_res ? xs.data() : nullptr;
    a.w_res = has_res ? w_res.data() : nullptr;
    a.g = g.data();
    a.w = w.data();
    a.y = y.data();
    a.ldo = st(o, 0);
    a.ldxs = has_res ? st(xs, 0) : 0;
    a.ldg = st(g, 0);
    a.ldy = st(y, 0);
    a.e = static_cast<int>(w.extent(0));
    a.eps = eps;
    if constexpr (is_cuda_space_v<Space>) {
      return backend::cuda::gated_rms_norm_rows(a, n_tokens, space.cuda_stream());
    } else {
      const std::int64_t nt = n_tokens;
      detail::host_items_for(space, RODIMUS_KERNEL_LABEL("rodimus::gated_rms_norm.host"),
                             (nt + kHostNormRows - 1) / kHostNormRows, [=](const std::int64_t blk) {
                               backend::host::gated_rms_norm_rows(
                                   a, blk * kHostNormRows, std::min(nt, (blk + 1) * kHostNormRows));
                             });
      return true;
    }
  }
  return false;
}
}  // namespace detail

namespace detail {
/// gated_rms_norm's checks of its operands against E = w's extent and N tokens.
template <class Real, class Space>
void check_gated_rms_norm_args(const View2<const Real, Space>& o,
                               const View2<const Real, Space>& xs,
                               const View1<const Real, Space>& w_res,
                               const View2<const Real, Space>& g, const View1<const Real, Space>& w,
                               const View2<Real, Space>& y, int n_tokens) {
  const auto e = w.extent(0);
  check_extent(o, 1, e, "gated_rms_norm: o");
  check_extent(g, 1, e, "gated_rms_norm: g");
  check_extent(y, 1, e, "gated_rms_norm: y");
  if (w_res.extent(0) > 0) {
    check_extent(w_res, 0, e, "gated_rms_norm: w_res");
    check_extent(xs, 1, e, "gated_rms_norm: xs");
    check_extent_at_least(xs, 0, n_tokens, "gated_rms_norm: xs");
  }
  check_extent_at_least(o, 0, n_tokens, "gated_rms_norm: o");
  check_extent_at_least(g, 0, n_tokens, "gated_rms_norm: g");
  check_extent_at_least(y, 0, n_tokens, "gated_rms_norm: y");
}
}  // namespace detail

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
  detail::check_gated_rms_norm_args<Real, Space>(o, xs, w_res, g, w, y, n_tokens);
  if (n_tokens <= 0) return;
  if constexpr (std::is_same_v<Real, float>)
    if (detail::gated_rms_norm_fast(space, o, xs, w_res, g, w, y, n_tokens, eps)) return;
  detail::gated_rms_norm_generic<Space, Real>(space, o, xs, w_res, g, w, y, n_tokens, eps);
}

}  // namespace rodimus
