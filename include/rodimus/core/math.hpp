// Scalar activation functions shared by host and device kernels.
#pragma once

#include "rodimus/config.hpp"

namespace rodimus::detail {

/// sigmoid(z) = 1 / (1 + e^-z), stable for large |z|.
RODIMUS_INLINE float sigmoid(float z) {
  if (z >= 0.f) return 1.f / (1.f + kmath::exp(-z));
  const float e = kmath::exp(z);
  return e / (1.f + e);
}

/// silu(z) = z * sigmoid(z).
RODIMUS_INLINE float silu(float z) { return z * sigmoid(z); }

/// softplus(z) = log(1 + e^z), overflow-safe: max(z, 0) + log1p(e^-|z|).
RODIMUS_INLINE float softplus(float z) {
  const float az = z < 0.f ? -z : z;
  return (z > 0.f ? z : 0.f) + kmath::log1p(kmath::exp(-az));
}

}  // namespace rodimus::detail
