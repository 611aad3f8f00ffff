// One projection of a shared input, y = x W^T + b, as the CUDA linear kernels take it (device
// pointers): the decode GEMV (gemv.hpp) and cuBLAS (cublas_linear.hpp) serve several of them
// per call.
#pragma once

#include <cstdint>

#include "rodimus/core/dtype.hpp"

namespace rodimus::backend::cuda {

/// w: [out, in] dense, b: [out] or null, y: [N, out] with leading dimension ldy.
/// gate (or null): gated[n, j] = sigmoid(y[n, j]) * gate[n, j] as well, the channel gate of
/// SPEC 2 step 4 in the projection's epilogue (the GEMV's, or cuBLAS's bias pass).
template <StorageType W>
struct Projection {
  const W* w = nullptr;
  const float* b = nullptr;
  float* y = nullptr;
  std::int64_t ldy = 0;
  int out = 0;
  const float* gate = nullptr;
  float* gated = nullptr;
  std::int64_t ldgate = 0, ldgated = 0;
};

}  // namespace rodimus::backend::cuda
