// Reference causal grouped-query softmax attention (the plain Transformer's), in double.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "rodimus/reference/check.hpp"

namespace rodimus::reference {

/// Causal softmax attention without a window: query i sees keys j <= i; query head h reads
/// key/value head h / (H / Hkv) (grouped-query attention: consecutive query heads share one
/// KV head); scores are scaled by `scale`.
/// q: [T, H, hd], k: [T, Hkv, hd], v: [T, Hkv, hd]; returns o: [T, H, hd].
inline std::vector<double> causal_attention(const std::vector<double>& q,
                                            const std::vector<double>& k,
                                            const std::vector<double>& v, int T, int H, int Hkv,
                                            int hd, double scale) {
  detail::require(H >= 1 && Hkv >= 1 && hd >= 1 && H % Hkv == 0,
                  "causal_attention: need H, Hkv, hd >= 1 and H % Hkv == 0");
  detail::check_size(q, detail::sz(T, H, hd), "causal_attention: q");
  detail::check_size(k, detail::sz(T, Hkv, hd), "causal_attention: k");
  detail::check_size(v, detail::sz(T, Hkv, hd), "causal_attention: v");
  const int group = H / Hkv;
  std::vector<double> o(detail::sz(T, H, hd), 0.0);
  std::vector<double> p(static_cast<std::size_t>(T));
  for (int h = 0; h < H; ++h) {
    const int kvh = h / group;
    for (int i = 0; i < T; ++i) {
      const double* qi = q.data() + detail::sz(i, H, hd) + detail::sz(h, hd);
      double m = -std::numeric_limits<double>::infinity();
      for (int j = 0; j <= i; ++j) {
        const double* kj = k.data() + detail::sz(j, Hkv, hd) + detail::sz(kvh, hd);
        double dot = 0.0;
        for (int d = 0; d < hd; ++d) dot += qi[d] * kj[d];
        p[j] = dot * scale;
        m = std::max(m, p[j]);
      }
      double den = 0.0;
      for (int j = 0; j <= i; ++j) {
        p[j] = std::exp(p[j] - m);
        den += p[j];
      }
      double* oi = o.data() + detail::sz(i, H, hd) + detail::sz(h, hd);
      for (int j = 0; j <= i; ++j) {
        const double* vj = v.data() + detail::sz(j, Hkv, hd) + detail::sz(kvh, hd);
        const double w = p[j] / den;
        for (int d = 0; d < hd; ++d) oi[d] += w * vj[d];
      }
    }
  }
  return o;
}

}  // namespace rodimus::reference
