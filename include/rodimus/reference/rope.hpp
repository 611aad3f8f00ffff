// Reference rotary position embedding, non-interleaved ("rotate half").
#pragma once

#include <cmath>
#include <vector>

#include "rodimus/reference/check.hpp"

namespace rodimus::reference {

/// RoPE over the first rot_dim dims of each head (SPEC 3.2): inv_freq_i = base^(-2i/rot_dim),
/// angle = (pos0 + t) * inv_freq_i, and each pair (x_i, x_{i+rot_dim/2}) becomes
/// (x_i cos - x_{i+rd/2} sin, x_{i+rd/2} cos + x_i sin). Dims past rot_dim pass through.
/// x: [T, heads, hd]; returns [T, heads, hd]. rot_dim = 0 is the identity.
inline std::vector<double> rope(const std::vector<double>& x, int T, int heads, int hd, int rot_dim,
                                double base, long long pos0) {
  detail::check_size(x, detail::sz(T, heads, hd), "rope: x");
  detail::require(rot_dim >= 0 && rot_dim <= hd && rot_dim % 2 == 0,
                  "rope: rot_dim must be even and in [0, hd]");
  std::vector<double> y = x;
  const int half = rot_dim / 2;
  for (int t = 0; t < T; ++t) {
    const double pos = static_cast<double>(pos0 + t);
    for (int i = 0; i < half; ++i) {
      const double inv_freq = std::pow(base, -2.0 * i / rot_dim);
      const double c = std::cos(pos * inv_freq);
      const double s = std::sin(pos * inv_freq);
      for (int h = 0; h < heads; ++h) {
        const std::size_t row = detail::sz(t, heads, hd) + detail::sz(h, hd);
        const double x1 = x[row + i];
        const double x2 = x[row + i + half];
        y[row + i] = x1 * c - x2 * s;
        y[row + i + half] = x2 * c + x1 * s;
      }
    }
  }
  return y;
}

}  // namespace rodimus::reference
