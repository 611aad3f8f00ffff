// Generic Kokkos kernels of the DDTS gates, the key normalisation and the channel gate.
#pragma once

#include <type_traits>

#include "rodimus/core/math.hpp"
#include "rodimus/core/parallel.hpp"
#include "rodimus/core/views.hpp"
#include "rodimus/ops/impl/norm_kernels.hpp"

namespace rodimus::detail {

/// Per token: s = softplus(s_raw), tau = sigmoid(tau_raw), a = -tau * s, beta = s^tau,
/// k' = beta * k / max(||k||_2, eps).
// s_raw, tau_raw, k: [N, n] -> a, k_out: [N, n] (k_out may alias k)
template <class Space, class Real = float>
void ddts_gate_generic(const Space& space,
                       const View2<const std::type_identity_t<Real>, Space>& s_raw,
                       const View2<const std::type_identity_t<Real>, Space>& tau_raw,
                       const View2<const std::type_identity_t<Real>, Space>& k,
                       const View2<std::type_identity_t<Real>, Space>& a,
                       const View2<std::type_identity_t<Real>, Space>& k_out, int n_tokens,
                       std::type_identity_t<Real> norm_eps) {
  const int n = static_cast<int>(k.extent(1));
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::ddts_gate"), row_team_policy(space, n_tokens),
      KOKKOS_LAMBDA(const TeamMember<Space>& m) {
        const int t = m.league_rank();
        Real ss = Real(0);
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(m, n),
            [&](const int i, Real& acc) { acc += k(t, i) * k(t, i); }, ss);
        const Real norm = kmath::sqrt(ss);
        const Real inv = Real(1) / (norm > norm_eps ? norm : norm_eps);
        m.team_barrier();
        Kokkos::parallel_for(Kokkos::TeamThreadRange(m, n), [&](const int i) {
          const Real s = softplus(s_raw(t, i));
          const Real tau = sigmoid(tau_raw(t, i));
          a(t, i) = -tau * s;
          const Real beta = kmath::exp(tau * kmath::log(s));  // s^tau, s > 0
          k_out(t, i) = beta * k(t, i) * inv;
        });
      });
}

/// u = sigmoid(z) * x (the channel gate's last step; z = (x W1^T) W2^T + b).
// z, x, u: [N, E]
template <class Space, class Real = float>
void sigmoid_gate_generic(const Space& space,
                          const View2<const std::type_identity_t<Real>, Space>& z,
                          const View2<const std::type_identity_t<Real>, Space>& x,
                          const View2<std::type_identity_t<Real>, Space>& u, int n_tokens) {
  const int e = static_cast<int>(x.extent(1));
  parallel_rows_cols(
      RODIMUS_KERNEL_LABEL("rodimus::channel_gate"), space, n_tokens, e,
      KOKKOS_LAMBDA(const int t, const int c) { u(t, c) = sigmoid(z(t, c)) * x(t, c); });
}

/// out = silu(g) * a (SwiGLU's element-wise product).
// a, g, out: [N, F]
template <class Space, class Real = float>
void swiglu_generic(const Space& space, const View2<const std::type_identity_t<Real>, Space>& a,
                    const View2<const std::type_identity_t<Real>, Space>& g,
                    const View2<std::type_identity_t<Real>, Space>& out, int n_tokens) {
  const int f = static_cast<int>(a.extent(1));
  parallel_rows_cols(
      RODIMUS_KERNEL_LABEL("rodimus::swiglu"), space, n_tokens, f,
      KOKKOS_LAMBDA(const int t, const int c) { out(t, c) = silu(g(t, c)) * a(t, c); });
}

}  // namespace rodimus::detail
