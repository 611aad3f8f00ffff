// Generic Kokkos kernels of the RMS norms (plain, fused residual add, gated).
#pragma once

#include "rodimus/core/parallel.hpp"
#include "rodimus/core/math.hpp"
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
template <class Member, class Load, class Store>
KOKKOS_INLINE_FUNCTION void team_rms_row(const Member& m, int d, float eps, const Load& load,
                                         const Store& store) {
  float ss = 0.f;
  Kokkos::parallel_reduce(
      Kokkos::TeamThreadRange(m, d),
      [&](const int c, float& acc) {
        const float z = load(c);
        acc += z * z;
      },
      ss);
  const float inv = 1.f / kmath::sqrt(ss / float(d) + eps);
  m.team_barrier();
  Kokkos::parallel_for(Kokkos::TeamThreadRange(m, d), [&](const int c) { store(c, load(c), inv); });
}

/// Fused residual add + RMSNorm.  mode 0: r = h;  mode 1: r = h + r;  mode 2: r unchanged,
/// normalise h + r without storing it.  out = z / rms(z) * w, z the (new) residual.
// h: [N, D], r: [N, D] (in/out), w: [D], out: [N, D]
template <class Space>
void add_rms_norm_generic(const Space& space, const View2<const float, Space>& h,
                          const View2<float, Space>& r, const View1<const float, Space>& w,
                          const View2<float, Space>& out, int n_tokens, float eps, int mode) {
  const int d = static_cast<int>(w.extent(0));
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::add_rms_norm"), row_team_policy(space, n_tokens, d),
      KOKKOS_LAMBDA(const TeamMember<Space>& m) {
        const int t = m.league_rank();
        team_rms_row(
            m, d, eps, [&](int c) { return mode == 0 ? h(t, c) : h(t, c) + r(t, c); },
            [&](int c, float z, float inv) {
              // the second load(c) ran before this write, and no other column reads r(t, c)
              out(t, c) = z * inv * w(c);
              if (mode != 2) r(t, c) = z;
            });
      });
}

/// out = x / rms(x) * w.  x: [N, D], out: [N, D] (may alias x)
template <class Space>
void rms_norm_generic(const Space& space, const View2<const float, Space>& x,
                      const View1<const float, Space>& w, const View2<float, Space>& out,
                      int n_tokens, float eps) {
  const int d = static_cast<int>(w.extent(0));
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::rms_norm"), row_team_policy(space, n_tokens, d),
      KOKKOS_LAMBDA(const TeamMember<Space>& m) {
        const int t = m.league_rank();
        team_rms_row(
            m, d, eps, [&](int c) { return x(t, c); },
            [&](int c, float z, float inv) { out(t, c) = z * inv * w(c); });
      });
}

/// Gated RMSNorm with the mixer's residual term (SPEC 2, steps 8-9):
/// z = (o + xs * w_res) * silu(g);  y = z / rms(z) * w.
// o, xs, g, y: [N, E]; w_res, w: [E]
template <class Space>
void gated_rms_norm_generic(const Space& space, const View2<const float, Space>& o,
                            const View2<const float, Space>& xs,
                            const View1<const float, Space>& w_res,
                            const View2<const float, Space>& g, const View1<const float, Space>& w,
                            const View2<float, Space>& y, int n_tokens, float eps) {
  const int e = static_cast<int>(w.extent(0));
  const bool has_res = w_res.extent(0) > 0;
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::gated_rms_norm"), row_team_policy(space, n_tokens, e),
      KOKKOS_LAMBDA(const TeamMember<Space>& m) {
        const int t = m.league_rank();
        float ss = 0.f;
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(m, e),
            [&](const int c, float& acc) {
              const float oc = has_res ? o(t, c) + xs(t, c) * w_res(c) : o(t, c);
              const float z = oc * silu(g(t, c));
              y(t, c) = z;
              acc += z * z;
            },
            ss);
        const float inv = 1.f / kmath::sqrt(ss / float(e) + eps);
        m.team_barrier();
        Kokkos::parallel_for(Kokkos::TeamThreadRange(m, e),
                             [&](const int c) { y(t, c) = y(t, c) * inv * w(c); });
      });
}

}  // namespace rodimus::detail
