// Reference RMSNorm and the mixer's gated RMSNorm, in double.
#pragma once

#include <cmath>
#include <vector>

#include "rodimus/reference/activations.hpp"
#include "rodimus/reference/check.hpp"

namespace rodimus::reference {

/// RMSNorm(z) = z / rms(z) * w, rms(z) = sqrt(mean(z^2) + eps), per row (SPEC 5).
/// x: [T, D], w: [D]; returns [T, D].
inline std::vector<double> rms_norm(const std::vector<double>& x, const std::vector<double>& w,
                                    double eps, int T, int D) {
  detail::check_size(x, detail::sz(T, D), "rms_norm: x");
  detail::check_size(w, static_cast<std::size_t>(D), "rms_norm: w");
  std::vector<double> y(x.size());
  for (int t = 0; t < T; ++t) {
    const double* xt = x.data() + detail::sz(t, D);
    double ss = 0.0;
    for (int c = 0; c < D; ++c) ss += xt[c] * xt[c];
    const double inv = 1.0 / std::sqrt(ss / D + eps);
    for (int c = 0; c < D; ++c) y[detail::sz(t, D) + c] = xt[c] * inv * w[c];
  }
  return y;
}

/// Gated RMSNorm, gate BEFORE the norm: z = o * silu(g), y = z / rms(z) * w (SPEC 2.9).
/// o: [T, E], g: [T, E], w: [E]; returns [T, E].
inline std::vector<double> gated_rms_norm(const std::vector<double>& o,
                                          const std::vector<double>& g,
                                          const std::vector<double>& w, double eps, int T, int E) {
  detail::check_size(o, detail::sz(T, E), "gated_rms_norm: o");
  detail::check_size(g, detail::sz(T, E), "gated_rms_norm: g");
  std::vector<double> z(o.size());
  for (std::size_t i = 0; i < o.size(); ++i) z[i] = o[i] * silu(g[i]);
  return rms_norm(z, w, eps, T, E);
}

}  // namespace rodimus::reference
