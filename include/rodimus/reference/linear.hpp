// Reference dense layer y = x W^T + b, with W stored [out, in] (PyTorch convention).
#pragma once

#include <vector>

#include "rodimus/reference/check.hpp"

namespace rodimus::reference {

/// y = x W^T (+ bias): the `x W^T` of SPEC notation.
/// x: [T, in], W: [out, in], bias: [out] or nullptr; returns [T, out].
inline std::vector<double> linear(const std::vector<double>& x, const std::vector<double>& W, int T,
                                  int in, int out, const std::vector<double>* bias = nullptr) {
  detail::check_size(x, detail::sz(T, in), "linear: x");
  detail::check_size(W, detail::sz(out, in), "linear: W");
  if (bias != nullptr) detail::check_size(*bias, static_cast<std::size_t>(out), "linear: bias");
  std::vector<double> y(detail::sz(T, out));
  for (int t = 0; t < T; ++t) {
    const double* xt = x.data() + detail::sz(t, in);
    for (int o = 0; o < out; ++o) {
      const double* wo = W.data() + detail::sz(o, in);
      double acc = (bias != nullptr) ? (*bias)[o] : 0.0;
      for (int i = 0; i < in; ++i) acc += xt[i] * wo[i];
      y[detail::sz(t, out) + o] = acc;
    }
  }
  return y;
}

/// Columns [c0, c0 + width) of a row-major [T, cols] matrix, e.g. the halves of a split.
/// x: [T, cols]; returns [T, width].
inline std::vector<double> columns(const std::vector<double>& x, int T, int cols, int c0,
                                   int width) {
  detail::check_size(x, detail::sz(T, cols), "columns: x");
  detail::require(c0 >= 0 && width >= 0 && c0 + width <= cols, "columns: range out of bounds");
  std::vector<double> y(detail::sz(T, width));
  for (int t = 0; t < T; ++t)
    for (int c = 0; c < width; ++c) y[detail::sz(t, width) + c] = x[detail::sz(t, cols) + c0 + c];
  return y;
}

}  // namespace rodimus::reference
