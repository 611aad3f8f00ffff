// Reference gates of the Rodimus mixer: DDTS (selection/temperature), channel gate, key scaling.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "rodimus/reference/activations.hpp"
#include "rodimus/reference/check.hpp"
#include "rodimus/reference/linear.hpp"

namespace rodimus::reference {

/// The DDTS gates of SPEC 2.5, each [T, n].
struct DdtsGates {
  std::vector<double> s;     ///< selection gate softplus(s_raw) > 0
  std::vector<double> tau;   ///< temperature gate sigmoid(tau_raw) in (0, 1)
  std::vector<double> a;     ///< log forget gate -tau * s <= 0
  std::vector<double> beta;  ///< input gate s ^ tau
};

/// DDTS gates from the pre-activations z = xs W_mem^T + b_mem, [s_raw, tau_raw] = split(z)
/// (SPEC 2.5): s = softplus(s_raw), tau = sigmoid(tau_raw), a = -tau * s, beta = s ^ tau.
/// z: [T, 2n] (s_raw first); returns gates of [T, n].
inline DdtsGates ddts_gates(const std::vector<double>& z, int T, int n) {
  detail::check_size(z, detail::sz(T, 2 * n), "ddts_gates: z");
  DdtsGates g;
  g.s.resize(detail::sz(T, n));
  g.tau.resize(g.s.size());
  g.a.resize(g.s.size());
  g.beta.resize(g.s.size());
  for (int t = 0; t < T; ++t) {
    for (int i = 0; i < n; ++i) {
      const std::size_t o = detail::sz(t, n) + i;
      const double s = softplus(z[detail::sz(t, 2 * n) + i]);
      const double tau = sigmoid(z[detail::sz(t, 2 * n) + n + i]);
      g.s[o] = s;
      g.tau[o] = tau;
      g.a[o] = -tau * s;
      g.beta[o] = std::pow(s, tau);
    }
  }
  return g;
}

/// Channel (input) gate, low rank (SPEC 2.4): u = sigmoid((x W_c1^T) W_c2^T + b_c2) * x.
/// x: [T, E] (the conv input), W_c1: [R, E], W_c2: [E, R], b_c2: [E]; returns u: [T, E].
inline std::vector<double> channel_gate(const std::vector<double>& x,
                                        const std::vector<double>& W_c1,
                                        const std::vector<double>& W_c2,
                                        const std::vector<double>& b_c2, int T, int E, int R) {
  const std::vector<double> low = linear(x, W_c1, T, E, R);            // [T, R]
  const std::vector<double> gate = linear(low, W_c2, T, R, E, &b_c2);  // [T, E]
  std::vector<double> u(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) u[i] = sigmoid(gate[i]) * x[i];
  return u;
}

/// Scaled unit keys (SPEC 2.6): k'_t = beta_t * k_t / max(||k_t||_2, eps), L2 over n slots.
/// k: [T, n], beta: [T, n]; returns k': [T, n].
inline std::vector<double> l2_normalize_scale(const std::vector<double>& k,
                                              const std::vector<double>& beta, double eps, int T,
                                              int n) {
  detail::check_size(k, detail::sz(T, n), "l2_normalize_scale: k");
  detail::check_size(beta, detail::sz(T, n), "l2_normalize_scale: beta");
  std::vector<double> kp(k.size());
  for (int t = 0; t < T; ++t) {
    double ss = 0.0;
    for (int i = 0; i < n; ++i) ss += k[detail::sz(t, n) + i] * k[detail::sz(t, n) + i];
    const double inv = 1.0 / std::max(std::sqrt(ss), eps);
    for (int i = 0; i < n; ++i) {
      const std::size_t o = detail::sz(t, n) + i;
      kp[o] = beta[o] * k[o] * inv;
    }
  }
  return kp;
}

}  // namespace rodimus::reference
