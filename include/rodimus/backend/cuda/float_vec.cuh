// V consecutive floats as one load / store (V = 1: a scalar, V = 4: a float4): the element-wise
// kernels that run on 16-byte vectors where the rows allow and on scalars otherwise are one
// template over V (rms_norm.hpp's norms, cublas_linear.hpp's operand and bias passes).
// Compiled only by a CUDA compiler.
#pragma once

#include <cuda_runtime.h>

namespace rodimus::backend::cuda::detail {

template <int V>
struct FloatVec;
template <>
struct FloatVec<1> {
  __device__ static void get(const float* p, float (&x)[1]) { x[0] = *p; }
  __device__ static void put(float* p, const float (&x)[1]) { *p = x[0]; }
};
template <>
struct FloatVec<4> {
  __device__ static void get(const float* p, float (&x)[4]) {
    const float4 v = *reinterpret_cast<const float4*>(p);
    x[0] = v.x, x[1] = v.y, x[2] = v.z, x[3] = v.w;
  }
  __device__ static void put(float* p, const float (&x)[4]) {
    *reinterpret_cast<float4*>(p) = make_float4(x[0], x[1], x[2], x[3]);
  }
};

}  // namespace rodimus::backend::cuda::detail
