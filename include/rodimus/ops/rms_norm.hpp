// RMSNorm, and RMSNorm fused with the residual add of the pre-norm blocks (SPEC 5).
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "rodimus/backend/cuda/rms_norm.hpp"
#include "rodimus/backend/host/rms_norm.hpp"
#include "rodimus/ops/impl/norm_kernels.hpp"

namespace rodimus {

/// How `add_rms_norm` treats the residual stream.
enum class ResidualMode : int {
  Start = 0,      ///< first layer: r = h
  Add = 1,        ///< r = h + r
  AddNoStore = 2  ///< normalise h + r but leave r unchanged (the Rodimus+ FFN hop)
};

namespace detail {
/// Tokens per work item of the host RMSNorm kernels.
inline constexpr std::int64_t kHostRmsRows = 16;

/// Runs the (residual-add) RMSNorm with a fast kernel when every operand has unit-stride rows:
/// the host kernel (backend/host/rms_norm.hpp) on host spaces, the CUDA one
/// (backend/cuda/rms_norm.hpp) on Kokkos::Cuda; false (nothing done) otherwise. `r` empty: the
/// plain norm of h.
template <class Space>
bool rms_norm_fast(const Space& space, const View2<const float, Space>& h,
                   const View2<float, Space>& r, const View1<const float, Space>& w,
                   const View2<float, Space>& out, int n_tokens, float eps, int mode) {
  if constexpr (is_host_space_v<Space> || is_cuda_space_v<Space>) {
    const bool has_r = r.data() != nullptr;
    auto st = [](const auto& v, int d) { return static_cast<std::int64_t>(v.stride(d)); };
    if (st(h, 1) != 1 || st(out, 1) != 1 || st(w, 0) != 1 || (has_r && st(r, 1) != 1)) return false;
    backend::RmsNormArgs a;
    a.h = h.data();
    a.r = has_r ? r.data() : nullptr;
    a.w = w.data();
    a.out = out.data();
    a.ldh = st(h, 0);
    a.ldr = has_r ? st(r, 0) : 0;
    a.ldo = st(out, 0);
    a.d = static_cast<int>(w.extent(0));
    a.eps = eps;
    a.mode = mode;
    if constexpr (is_cuda_space_v<Space>) {
      return backend::cuda::rms_norm_rows(a, n_tokens, space.cuda_stream());
    } else {
      const std::int64_t nt = n_tokens;
      detail::host_items_for(space,
                             has_r ? RODIMUS_KERNEL_LABEL("rodimus::add_rms_norm.host")
                                   : RODIMUS_KERNEL_LABEL("rodimus::rms_norm.host"),
                             (nt + kHostRmsRows - 1) / kHostRmsRows, [=](const std::int64_t blk) {
                               backend::host::rms_norm_rows(a, blk * kHostRmsRows,
                                                            std::min(nt, (blk + 1) * kHostRmsRows));
                             });
      return true;
    }
  }
  return false;
}
}  // namespace detail

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
  if (n_tokens <= 0) return;
  if constexpr (std::is_same_v<Real, float>)
    if (detail::rms_norm_fast(space, x, View2<float, Space>(), w, out, n_tokens, eps, 0)) return;
  detail::rms_norm_generic<Space, Real>(space, x, w, out, n_tokens, eps);
}

namespace detail {
/// add_rms_norm after its argument checks (linear_residual_norm's fallback calls it).
template <class Real, class Space>
void add_rms_norm_checked(const Space& space, const View2<const Real, Space>& h,
                          const View2<Real, Space>& r, const View1<const Real, Space>& w,
                          const View2<Real, Space>& out, int n_tokens, Real eps,
                          ResidualMode mode) {
  if (n_tokens <= 0) return;
  if constexpr (std::is_same_v<Real, float>)
    if (rms_norm_fast(space, h, r, w, out, n_tokens, eps, static_cast<int>(mode))) return;
  add_rms_norm_generic<Space, Real>(space, h, r, w, out, n_tokens, eps, static_cast<int>(mode));
}
}  // namespace detail

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
  detail::add_rms_norm_checked<Real>(space, h, r, w, out, n_tokens, eps, mode);
}

}  // namespace rodimus
