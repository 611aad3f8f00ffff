// Scalar activation functions shared by host and device kernels.
#pragma once

#include "rodimus/backend/exec_space_traits.hpp"
#include "rodimus/backend/host/fast_math.hpp"
#include "rodimus/config.hpp"

namespace rodimus::detail {

/// e^x for x <= 0: on the host a branch-free polynomial (backend/host/fast_math.hpp, relative
/// error < 2.6e-7) so that element-wise loops vectorise; the device's own expf in device code.
RODIMUS_INLINE float exp_nonpositive(float x) {
#if RODIMUS_DEVICE_PASS
  return kmath::exp(x);
#else
  return backend::host::detail::exp_nonpositive(x);
#endif
}

/// sigmoid(z) = 1 / (1 + e^-z), finite for every z (e^-z saturates instead of overflowing; the
/// host form has no data-dependent branch, whose mispredictions dominated element-wise kernels).
RODIMUS_INLINE float sigmoid(float z) {
#if RODIMUS_DEVICE_PASS
  return 1.f / (1.f + kmath::exp(-z));
#else
  return 1.f / (1.f + backend::host::detail::exp_clamped(-z));
#endif
}

/// silu(z) = z * sigmoid(z).
RODIMUS_INLINE float silu(float z) { return z * sigmoid(z); }

/// softplus(z) = log(1 + e^z), overflow-safe: max(z, 0) + log1p(e^-|z|).
RODIMUS_INLINE float softplus(float z) {
  const float az = z < 0.f ? -z : z;
  return (z > 0.f ? z : 0.f) + kmath::log1p(exp_nonpositive(-az));
}

// fp64 forms of the same functions (the Real = double forward of the gradient checks): the
// library's exp everywhere, e^{-|z|} the only exponential.

/// e^x for x <= 0 in fp64.
RODIMUS_INLINE double exp_nonpositive(double x) { return kmath::exp(x); }

/// sigmoid(z) in fp64, finite for every z.
RODIMUS_INLINE double sigmoid(double z) {
  if (z >= 0.0) return 1.0 / (1.0 + kmath::exp(-z));
  const double e = kmath::exp(z);
  return e / (1.0 + e);
}

/// silu(z) = z * sigmoid(z) in fp64.
RODIMUS_INLINE double silu(double z) { return z * sigmoid(z); }

/// softplus(z) = max(z, 0) + log1p(e^-|z|) in fp64.
RODIMUS_INLINE double softplus(double z) {
  const double az = z < 0.0 ? -z : z;
  return (z > 0.0 ? z : 0.0) + kmath::log1p(kmath::exp(-az));
}

}  // namespace rodimus::detail
