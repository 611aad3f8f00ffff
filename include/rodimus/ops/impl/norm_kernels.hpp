// Generic Kokkos kernels of the RMS norms (plain, fused residual add, gated).
#pragma once

#include <type_traits>

#include "rodimus/core/math.hpp"
#include "rodimus/core/parallel.hpp"
#include "rodimus/core/views.hpp"

namespace rodimus::detail {

template <class Space>
using TeamMember = typename Kokkos::TeamPolicy<Space>::member_type;

template <class Space>
auto row_team_policy(const Space& space, int rows, int width) {
  return team_policy(space, rows, row_team_size(width));
}

/// One team normalises one row: z_c = load(c) for c < d, then store(c, z_c, 1 / rms(z)).
/// `load` may be called twice per column, so it must not depend on what `store` writes.
/// Real is the arithmetic type (float; double for the gradient checks).
template <class Real = float, class Member, class Load, class Store>
KOKKOS_INLINE_FUNCTION void team_rms_row(const Member& m, int d, std::type_identity_t<Real> eps,
                                         const Load& load, const Store& store) {
  Real ss = Real(0);
  Kokkos::parallel_reduce(
      Kokkos::TeamThreadRange(m, d),
      [&](const int c, Real& acc) {
        const Real z = load(c);
        acc += z * z;
      },
      ss);
  const Real inv = Real(1) / kmath::sqrt(ss / Real(d) + eps);
  m.team_barrier();
  Kokkos::parallel_for(Kokkos::TeamThreadRange(m, d), [&](const int c) { store(c, load(c), inv); });
}

/// Fused residual add + RMSNorm.  mode 0: r = h;  mode 1: r = h + r;  mode 2: r unchanged,
/// normalise h + r without storing it.  out = z / rms(z) * w, z the (new) residual.
// h: [N, D], r: [N, D] (in/out), w: [D], out: [N, D]
template <class Space, class Real = float>
void add_rms_norm_generic(const Space& space,
                          const View2<const std::type_identity_t<Real>, Space>& h,
                          const View2<std::type_identity_t<Real>, Space>& r,
                          const View1<const std::type_identity_t<Real>, Space>& w,
                          const View2<std::type_identity_t<Real>, Space>& out, int n_tokens,
                          std::type_identity_t<Real> eps, int mode) {
  const int d = static_cast<int>(w.extent(0));
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::add_rms_norm"), row_team_policy(space, n_tokens, d),
      KOKKOS_LAMBDA(const TeamMember<Space>& m) {
        const int t = m.league_rank();
        team_rms_row<Real>(
            m, d, eps, [&](int c) { return mode == 0 ? h(t, c) : h(t, c) + r(t, c); },
            [&](int c, Real z, Real inv) {
              // the second load(c) ran before this write, and no other column reads r(t, c)
              out(t, c) = z * inv * w(c);
              if (mode != 2) r(t, c) = z;
            });
      });
}

/// out = x / rms(x) * w.  x: [N, D], out: [N, D] (may alias x)
template <class Space, class Real = float>
void rms_norm_generic(const Space& space, const View2<const std::type_identity_t<Real>, Space>& x,
                      const View1<const std::type_identity_t<Real>, Space>& w,
                      const View2<std::type_identity_t<Real>, Space>& out, int n_tokens,
                      std::type_identity_t<Real> eps) {
  const int d = static_cast<int>(w.extent(0));
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::rms_norm"), row_team_policy(space, n_tokens, d),
      KOKKOS_LAMBDA(const TeamMember<Space>& m) {
        const int t = m.league_rank();
        team_rms_row<Real>(
            m, d, eps, [&](int c) { return x(t, c); },
            [&](int c, Real z, Real inv) { out(t, c) = z * inv * w(c); });
      });
}

/// Gated RMSNorm with the mixer's residual term (SPEC 2, steps 8-9):
/// z = (o + xs * w_res) * silu(g);  y = z / rms(z) * w.
// o, xs, g, y: [N, E]; w_res, w: [E]
template <class Space, class Real = float>
void gated_rms_norm_generic(const Space& space,
                            const View2<const std::type_identity_t<Real>, Space>& o,
                            const View2<const std::type_identity_t<Real>, Space>& xs,
                            const View1<const std::type_identity_t<Real>, Space>& w_res,
                            const View2<const std::type_identity_t<Real>, Space>& g,
                            const View1<const std::type_identity_t<Real>, Space>& w,
                            const View2<std::type_identity_t<Real>, Space>& y, int n_tokens,
                            std::type_identity_t<Real> eps) {
  const int e = static_cast<int>(w.extent(0));
  const bool has_res = w_res.extent(0) > 0;
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::gated_rms_norm"), row_team_policy(space, n_tokens, e),
      KOKKOS_LAMBDA(const TeamMember<Space>& m) {
        const int t = m.league_rank();
        Real ss = Real(0);
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(m, e),
            [&](const int c, Real& acc) {
              const Real oc = has_res ? o(t, c) + xs(t, c) * w_res(c) : o(t, c);
              const Real z = oc * silu(g(t, c));
              y(t, c) = z;
              acc += z * z;
            },
            ss);
        const Real inv = Real(1) / kmath::sqrt(ss / Real(e) + eps);
        m.team_barrier();
        Kokkos::parallel_for(Kokkos::TeamThreadRange(m, e),
                             [&](const int c) { y(t, c) = y(t, c) * inv * w(c); });
      });
}

}  // namespace rodimus::detail
