// Scalar activations and their derivatives in any floating type, stable for every argument.
#pragma once

#include "rodimus/config.hpp"

namespace rodimus::grad::detail {

namespace kmath = ::rodimus::detail::kmath;

/// sigmoid(z) = 1 / (1 + e^-z); e^{-|z|} is the only exponential, so no overflow for any z.
template <class Real>
RODIMUS_INLINE Real sigmoid(Real z) {
  if (z >= Real(0)) return Real(1) / (Real(1) + kmath::exp(-z));
  const Real e = kmath::exp(z);
  return e / (Real(1) + e);
}

/// silu(z) = z * sigmoid(z).
template <class Real>
RODIMUS_INLINE Real silu(Real z) {
  return z * sigmoid(z);
}

/// d silu / dz = sigmoid(z) (1 + z sigmoid(-z)); sigmoid(-z) instead of 1 - sigmoid(z) keeps
/// the large-z tail accurate.
template <class Real>
RODIMUS_INLINE Real silu_grad(Real z) {
  return sigmoid(z) * (Real(1) + z * sigmoid(-z));
}

/// softplus(z) = log(1 + e^z) = max(z, 0) + log1p(e^-|z|) (SPEC notation, overflow-safe).
template <class Real>
RODIMUS_INLINE Real softplus(Real z) {
  const Real az = z < Real(0) ? -z : z;
  return (z > Real(0) ? z : Real(0)) + kmath::log1p(kmath::exp(-az));
}

/// Below this argument softplus(z) = e^z (1 - e^z / 2 + ...) is e^z to a relative 1e-13 (and
/// may underflow in fp32), so log softplus(z) = z and sigmoid(z) / softplus(z) = 1 there.
inline constexpr double kSoftplusTail = -30.0;

/// log(softplus(z)), finite for every z (softplus underflows to 0 in fp32 below z ~ -104).
template <class Real>
RODIMUS_INLINE Real log_softplus(Real z) {
  return z < Real(kSoftplusTail) ? z : kmath::log(softplus(z));
}

/// sigmoid(z) / softplus(z) (= d log softplus(z) / dz), in (0, 1], finite for every z.
template <class Real>
RODIMUS_INLINE Real sigmoid_over_softplus(Real z) {
  return z < Real(kSoftplusTail) ? Real(1) : sigmoid(z) / softplus(z);
}

}  // namespace rodimus::grad::detail
