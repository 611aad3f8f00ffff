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

}  // namespace rodimus::detail
