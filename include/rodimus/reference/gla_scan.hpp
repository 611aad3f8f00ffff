// Reference gated linear attention scan of the Rodimus mixer: the sequential recurrence in fp64.
#pragma once

#include <cmath>
#include <vector>

#include "rodimus/reference/check.hpp"

namespace rodimus::reference {

/// The recurrence of SPEC 2.7, one step at a time (the referee of every chunk scanner):
///   S_t = diag(exp(a_t)) S_{t-1} + k'_t^T u_t,   o_t = (1/sqrt(n)) q_t S_t.
/// q: [T, n], k: [T, n] (already k' = beta * k / ||k||), u: [T, E], a: [T, n] (log decay),
/// S_inout: [n, E], S_{-1} on entry (zeros for a fresh sequence), S_{T-1} on return.
/// Returns o: [T, E].
inline std::vector<double> gla_scan_recurrent(const std::vector<double>& q,
                                              const std::vector<double>& k,
                                              const std::vector<double>& u,
                                              const std::vector<double>& a, int T, int n, int E,
                                              std::vector<double>& S_inout) {
  detail::check_size(q, detail::sz(T, n), "gla_scan_recurrent: q");
  detail::check_size(k, detail::sz(T, n), "gla_scan_recurrent: k");
  detail::check_size(u, detail::sz(T, E), "gla_scan_recurrent: u");
  detail::check_size(a, detail::sz(T, n), "gla_scan_recurrent: a");
  detail::check_size(S_inout, detail::sz(n, E), "gla_scan_recurrent: S_inout");
  const double scale = 1.0 / std::sqrt(static_cast<double>(n));
  std::vector<double> o(detail::sz(T, E), 0.0);
  std::vector<double>& S = S_inout;
  for (int t = 0; t < T; ++t) {
    const double* ut = u.data() + detail::sz(t, E);
    for (int i = 0; i < n; ++i) {
      const double decay = std::exp(a[detail::sz(t, n) + i]);
      const double ki = k[detail::sz(t, n) + i];
      double* Si = S.data() + detail::sz(i, E);
      for (int e = 0; e < E; ++e) Si[e] = decay * Si[e] + ki * ut[e];
    }
    double* ot = o.data() + detail::sz(t, E);
    for (int i = 0; i < n; ++i) {
      const double qi = q[detail::sz(t, n) + i] * scale;
      const double* Si = S.data() + detail::sz(i, E);
      for (int e = 0; e < E; ++e) ot[e] += qi * Si[e];
    }
  }
  return o;
}

}  // namespace rodimus::reference
