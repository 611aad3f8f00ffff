// Reference backward of the gated linear attention scan: the reversed recurrence in fp64.
#pragma once

#include <cmath>
#include <vector>

#include "rodimus/reference/check.hpp"

namespace rodimus::reference {

/// Gradients of one sequence's scan, see gla_scan_backward_recurrent.
struct GlaScanGrads {
  std::vector<double> dq, dk, da, du;  // [T, n], [T, n], [T, n], [T, E]
  std::vector<double> d_state0;        // [n, E]
};

/// Backward of gla_scan_recurrent (SPEC 2.7, scale 1/sqrt(n)) for dL/do = d_o and
/// dL/dS_{T-1} = d_state_final (empty: zero), token by token from the end:
///   G_t = dL/dS_t = scale q_t^T do_t + diag(exp(a_{t+1})) G_{t+1},  G_{T-1} includes dS_final
///   dq_t = scale S_t do_t^T,  dk_t = G_t u_t^T,  du_t = k_t G_t,
///   da_t = exp(a_t) rowsum(S_{t-1} * G_t),  d_state0 = diag(exp(a_0)) G_0.
/// Stores every state S_t (T n E doubles): a referee, not a training kernel.
/// q, k, a: [T, n]; u, d_o: [T, E]; state0, d_state_final: [n, E].
inline GlaScanGrads gla_scan_backward_recurrent(
    const std::vector<double>& q, const std::vector<double>& k, const std::vector<double>& u,
    const std::vector<double>& a, int T, int n, int E, const std::vector<double>& state0,
    const std::vector<double>& d_o, const std::vector<double>& d_state_final) {
  detail::check_size(q, detail::sz(T, n), "gla_scan_backward_recurrent: q");
  detail::check_size(k, detail::sz(T, n), "gla_scan_backward_recurrent: k");
  detail::check_size(u, detail::sz(T, E), "gla_scan_backward_recurrent: u");
  detail::check_size(a, detail::sz(T, n), "gla_scan_backward_recurrent: a");
  detail::check_size(state0, detail::sz(n, E), "gla_scan_backward_recurrent: state0");
  detail::check_size(d_o, detail::sz(T, E), "gla_scan_backward_recurrent: d_o");
  if (!d_state_final.empty())
    detail::check_size(d_state_final, detail::sz(n, E), "gla_scan_backward_recurrent: d_state_final");
  const double scale = 1.0 / std::sqrt(static_cast<double>(n));
  const std::size_t ss = detail::sz(n, E);
  // S[t + 1] = S_t, S[0] = state0
  std::vector<double> S(detail::sz(T + 1, n, E));
  std::copy(state0.begin(), state0.end(), S.begin());
  for (int t = 0; t < T; ++t)
    for (int i = 0; i < n; ++i) {
      const double decay = std::exp(a[detail::sz(t, n) + i]), ki = k[detail::sz(t, n) + i];
      for (int e = 0; e < E; ++e)
        S[(t + 1) * ss + detail::sz(i, E) + e] =
            decay * S[t * ss + detail::sz(i, E) + e] + ki * u[detail::sz(t, E) + e];
    }
  GlaScanGrads g;
  g.dq.assign(detail::sz(T, n), 0.0);
  g.dk = g.dq;
  g.da = g.dq;
  g.du.assign(detail::sz(T, E), 0.0);
  // H = dL/dS_t from tokens after t (diag(exp(a_{t+1})) G_{t+1}, or dS_final)
  std::vector<double> H = d_state_final.empty() ? std::vector<double>(ss, 0.0) : d_state_final;
  std::vector<double> G(ss);
  for (int t = T - 1; t >= 0; --t) {
    const double* St = S.data() + (t + 1) * ss;
    const double* Sp = S.data() + t * ss;
    const double* dot = d_o.data() + detail::sz(t, E);
    const double* ut = u.data() + detail::sz(t, E);
    for (int i = 0; i < n; ++i) {
      const double qi = scale * q[detail::sz(t, n) + i];
      double dq = 0, dk = 0, da = 0;
      for (int e = 0; e < E; ++e) {
        const std::size_t ie = detail::sz(i, E) + e;
        G[ie] = qi * dot[e] + H[ie];
        dq += St[ie] * dot[e];
        dk += G[ie] * ut[e];
        da += Sp[ie] * G[ie];
      }
      const double decay = std::exp(a[detail::sz(t, n) + i]);
      g.dq[detail::sz(t, n) + i] = scale * dq;
      g.dk[detail::sz(t, n) + i] = dk;
      g.da[detail::sz(t, n) + i] = decay * da;
      const double ki = k[detail::sz(t, n) + i];
      for (int e = 0; e < E; ++e) {
        const std::size_t ie = detail::sz(i, E) + e;
        g.du[detail::sz(t, E) + e] += ki * G[ie];
        H[ie] = decay * G[ie];
      }
    }
  }
  g.d_state0 = H;
  return g;
}

}  // namespace rodimus::reference
