// Scalar activations of the reference implementation (sigmoid, SiLU, softplus), in double.
#pragma once

#include <cmath>

namespace rodimus::reference {

/// sigmoid(z) = 1 / (1 + e^-z), evaluated without overflow for either sign of z.
inline double sigmoid(double z) {
  if (z >= 0.0) return 1.0 / (1.0 + std::exp(-z));
  const double e = std::exp(z);
  return e / (1.0 + e);
}

/// silu(z) = z * sigmoid(z) (SPEC notation).
inline double silu(double z) { return z * sigmoid(z); }

/// softplus(z) = log(1 + e^z) in the overflow-safe form max(z, 0) + log1p(e^-|z|) (SPEC 2.5).
inline double softplus(double z) { return std::fmax(z, 0.0) + std::log1p(std::exp(-std::fabs(z))); }

}  // namespace rodimus::reference
