// fp32 values as two halves of a 16-bit float type (x = hi + lo, ~16 significant bits), the
// operand form of rodimus's tensor-core products that keep fp32-like accuracy (the projections'
// activations, window_attention's Q, K, V and P), and the grid of their grid-stride kernels.
// Only in CUDA translation units.
#pragma once

#include <cstdint>
#include <type_traits>

#include "rodimus/backend/exec_space_traits.hpp"

#if RODIMUS_CUDA_KERNELS
#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace rodimus::backend::cuda::detail {

/// x rounded to nearest in T (__nv_bfloat16 or __half).
template <class T>
__device__ inline T from_f32(float x) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return __float2bfloat16_rn(x);
  } else {
    return __float2half_rn(x);
  }
}

/// x = hi + lo with hi = T(x), lo = T(x - hi).
template <class T>
__device__ inline void split_halves(float x, T& hi, T& lo) {
  hi = from_f32<T>(x);
  lo = from_f32<T>(x - static_cast<float>(hi));
}

/// Blocks of 256 threads for a grid-stride loop over n elements (at least 1, at most 4096).
inline unsigned grid_for(std::int64_t n) {
  const std::int64_t blocks = (n + 255) / 256;
  return static_cast<unsigned>(blocks < 4096 ? (blocks > 0 ? blocks : 1) : 4096);
}

}  // namespace rodimus::backend::cuda::detail

#endif  // RODIMUS_CUDA_KERNELS
