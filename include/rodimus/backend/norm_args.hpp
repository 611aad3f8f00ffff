// Operands of the RMS-norm kernels, shared by the host (backend/host/rms_norm.hpp) and CUDA
// (backend/cuda/rms_norm.hpp) fast paths: rows of floats, unit stride inside a row.
#pragma once

#include <cstdint>

namespace rodimus::backend {

/// Operands of the (residual-add) RMSNorm: z per `mode`, out = z / rms(z) * w.
struct RmsNormArgs {
  const float* h = nullptr;  ///< input rows (rms_norm's x)
  float* r = nullptr;        ///< residual rows (add_rms_norm; null for the plain norm)
  const float* w = nullptr;  ///< [d]
  float* out = nullptr;      ///< may alias h for the plain norm
  std::int64_t ldh = 0, ldr = 0, ldo = 0;
  int d = 0;
  float eps = 0.f;
  int mode = 0;  ///< 0: z = h (r = z when r is set); 1: r = h + r; 2: z = h + r, r unchanged
};

/// Operands of the gated norm: z = (o + xs * w_res) * silu(g), y = z / rms(z) * w.
struct GatedRmsNormArgs {
  const float* o = nullptr;
  const float* xs = nullptr;     ///< null when there is no residual term
  const float* w_res = nullptr;  ///< null when there is no residual term
  const float* g = nullptr;
  const float* w = nullptr;
  float* y = nullptr;
  std::int64_t ldo = 0, ldxs = 0, ldg = 0, ldy = 0;
  int e = 0;
  float eps = 0.f;
};

}  // namespace rodimus::backend
