// Reference ShortConv: causal depthwise conv over time followed by SiLU, with a carried state.
#pragma once

#include <vector>

#include "rodimus/reference/activations.hpp"
#include "rodimus/reference/check.hpp"

namespace rodimus::reference {

/// Output of short_conv: the activations and the conv state to carry into the next call.
struct ShortConvResult {
  std::vector<double> y;      ///< silu(conv(x)): [T, E]
  std::vector<double> state;  ///< the last K-1 inputs, oldest first: [K-1, E]
};

/// xs_t[c] = silu(b[c] + sum_{j=0..K-1} w[c, j] * x_{t-K+1+j}[c]) (SPEC 2.2), where inputs
/// before t = 0 come from `state_in` (the K-1 previous inputs, oldest first) or are zero.
/// x: [T, E], w_conv: [E, K] (the checkpoint's [E, 1, K]), b_conv: [E],
/// state_in: [K-1, E] or nullptr (zeros).
inline ShortConvResult short_conv(const std::vector<double>& x, const std::vector<double>& w_conv,
                                  const std::vector<double>& b_conv, int T, int E, int K,
                                  const std::vector<double>* state_in = nullptr) {
  detail::check_size(x, detail::sz(T, E), "short_conv: x");
  detail::check_size(w_conv, detail::sz(E, K), "short_conv: w_conv");
  detail::check_size(b_conv, static_cast<std::size_t>(E), "short_conv: b_conv");
  detail::require(K >= 1, "short_conv: K must be >= 1");
  const int P = K - 1;
  // The padded input: P state rows, then x.  // [P + T, E]
  std::vector<double> xp(detail::sz(P + T, E), 0.0);
  if (state_in != nullptr) {
    detail::check_size(*state_in, detail::sz(P, E), "short_conv: state_in");
    for (std::size_t i = 0; i < state_in->size(); ++i) xp[i] = (*state_in)[i];
  }
  for (std::size_t i = 0; i < x.size(); ++i) xp[detail::sz(P, E) + i] = x[i];

  ShortConvResult r;
  r.y.assign(detail::sz(T, E), 0.0);
  for (int t = 0; t < T; ++t) {
    for (int c = 0; c < E; ++c) {
      double acc = b_conv[c];
      // x_{t-K+1+j} sits at padded row t + j.
      for (int j = 0; j < K; ++j)
        acc += w_conv[detail::sz(c, K) + j] * xp[detail::sz(t + j, E) + c];
      r.y[detail::sz(t, E) + c] = silu(acc);
    }
  }
  r.state.assign(xp.end() - static_cast<std::ptrdiff_t>(detail::sz(P, E)), xp.end());
  return r;
}

}  // namespace rodimus::reference
