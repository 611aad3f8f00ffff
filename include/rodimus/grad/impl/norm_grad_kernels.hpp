// Generic Kokkos kernels shared by the RMSNorm backward passes (plain, residual-add, gated).
#pragma once

#include <string>

#include "rodimus/config.hpp"
#include "rodimus/core/views.hpp"

namespace rodimus::grad::detail {

/// Per-row statistics of y = z / rms(z) * w that the backward needs, one team per row:
///   stats(t, 0) = inv = 1 / sqrt(mean(z^2) + eps),
///   stats(t, 1) = coef = inv^3 / D * sum_c dy_c w_c z_c,
/// so that dL/dz_c = inv * dy_c * w_c - z_c * coef (SPEC 5). `load_z(t, c)` recomputes z.
// dy: [N, D], w: [D]; returns stats: [N, 2]
template <class Real, class Space, class LoadZ>
View2<Real, Space> rms_backward_row_stats(const Space& space, int n_tokens, double eps,
                                          const LoadZ& load_z, const View2<const Real, Space>& dy,
                                          const View1<const Real, Space>& w) {
  const int d = static_cast<int>(w.extent(0));
  View2<Real, Space> stats(Kokkos::view_alloc(space, std::string("rodimus::grad.rms_stats"),
                                              Kokkos::WithoutInitializing),
                           n_tokens > 0 ? n_tokens : 1, 2);
  const Real e = static_cast<Real>(eps);
  using Member = typename Kokkos::TeamPolicy<Space>::member_type;
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::grad::rms_stats"),
      Kokkos::TeamPolicy<Space>(space, n_tokens, Kokkos::AUTO), KOKKOS_LAMBDA(const Member& m) {
        const int t = m.league_rank();
        Real ss = Real(0), s = Real(0);
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(m, d),
            [&](const int c, Real& acc) {
              const Real z = load_z(t, c);
              acc += z * z;
            },
            ss);
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(m, d),
            [&](const int c, Real& acc) { acc += dy(t, c) * w(c) * load_z(t, c); }, s);
        Kokkos::single(Kokkos::PerTeam(m), [&]() {
          const Real inv = Real(1) / ::rodimus::detail::kmath::sqrt(ss / Real(d) + e);
          stats(t, 0) = inv;
          stats(t, 1) = inv * inv * inv * s / Real(d);
        });
      });
  return stats;
}

}  // namespace rodimus::grad::detail
