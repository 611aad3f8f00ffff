// Reference causal softmax attention with a local window and shared (tiled) key/value heads.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "rodimus/reference/check.hpp"

namespace rodimus::reference {

/// Softmax attention of SPEC 3.3-3.4: query i sees keys j with i - window_back <= j <= i
/// (window_back < 0: all j <= i); query head h reads key head h % Hk and value head h % Hv;
/// scores are scaled by `scale` (1/sqrt(hd) by default in the model).
/// q: [T, H, hd], k: [T, Hk, hd], v: [T, Hv, hd]; returns o: [T, H, hd].
inline std::vector<double> sliding_window_attention(const std::vector<double>& q,
                                                    const std::vector<double>& k,
                                                    const std::vector<double>& v, int T, int H,
                                                    int Hk, int Hv, int hd, int window_back,
                                                    double scale) {
  detail::check_size(q, detail::sz(T, H, hd), "sliding_window_attention: q");
  detail::check_size(k, detail::sz(T, Hk, hd), "sliding_window_attention: k");
  detail::check_size(v, detail::sz(T, Hv, hd), "sliding_window_attention: v");
  detail::require(Hk >= 1 && Hv >= 1, "sliding_window_attention: Hk and Hv must be >= 1");
  std::vector<double> o(detail::sz(T, H, hd), 0.0);
  std::vector<double> p(static_cast<std::size_t>(T));
  for (int h = 0; h < H; ++h) {
    const int hk = h % Hk;
    const int hv = h % Hv;
    for (int i = 0; i < T; ++i) {
      const int j0 = window_back < 0 ? 0 : std::max(0, i - window_back);
      const double* qi = q.data() + detail::sz(i, H, hd) + detail::sz(h, hd);
      double m = -std::numeric_limits<double>::infinity();
      for (int j = j0; j <= i; ++j) {
        const double* kj = k.data() + detail::sz(j, Hk, hd) + detail::sz(hk, hd);
        double dot = 0.0;
        for (int d = 0; d < hd; ++d) dot += qi[d] * kj[d];
        p[j] = dot * scale;
        m = std::max(m, p[j]);
      }
      double den = 0.0;
      for (int j = j0; j <= i; ++j) {
        p[j] = std::exp(p[j] - m);
        den += p[j];
      }
      double* oi = o.data() + detail::sz(i, H, hd) + detail::sz(h, hd);
      for (int j = j0; j <= i; ++j) {
        const double* vj = v.data() + detail::sz(j, Hv, hd) + detail::sz(hv, hd);
        const double w = p[j] / den;
        for (int d = 0; d < hd; ++d) oi[d] += w * vj[d];
      }
    }
  }
  return o;
}

}  // namespace rodimus::reference
