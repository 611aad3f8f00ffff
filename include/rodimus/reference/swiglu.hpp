// Reference SwiGLU activation of the Rodimus+ FFN.
#pragma once

#include <vector>

#include "rodimus/reference/activations.hpp"
#include "rodimus/reference/check.hpp"

namespace rodimus::reference {

/// SwiGLU of SPEC 4: [a, g] = split(z) (a first), returns silu(g) * a.
/// z: [T, 2F] (= h W_ffn_fc^T); returns [T, F].
inline std::vector<double> swiglu(const std::vector<double>& z, int T, int F) {
  detail::check_size(z, detail::sz(T, 2 * F), "swiglu: z");
  std::vector<double> y(detail::sz(T, F));
  for (int t = 0; t < T; ++t) {
    for (int f = 0; f < F; ++f) {
      const double a = z[detail::sz(t, 2 * F) + f];
      const double g = z[detail::sz(t, 2 * F) + F + f];
      y[detail::sz(t, F) + f] = silu(g) * a;
    }
  }
  return y;
}

}  // namespace rodimus::reference
