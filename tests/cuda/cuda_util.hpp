// Helpers shared by the raw CUDA kernels' test, benchmark and host emulation: CUDA error checks,
// an owning device buffer, and bf16 / fp32 conversions of test data.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <type_traits>

/// Exits with status 2 and the failing call's text when a CUDA call fails.
#define CHECK_CUDA(call)                                                 \
  do {                                                                   \
    const cudaError_t err_ = (call);                                     \
    if (err_ != cudaSuccess) {                                           \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, \
                   cudaGetErrorString(err_));                            \
      std::exit(2);                                                      \
    }                                                                    \
  } while (0)

namespace rodimus::cuda_test {

/// `count` elements of device memory (plus 16 bytes of slack for vector loads past the end).
template <class T>
struct DeviceBuffer {
  T* ptr = nullptr;
  explicit DeviceBuffer(std::size_t count) { CHECK_CUDA(cudaMalloc(&ptr, count * sizeof(T) + 16)); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { cudaFree(ptr); }
};

/// x as a T (float or __nv_bfloat16, round to nearest even).
template <class T>
T from_float(float x) {
  if constexpr (std::is_same_v<T, float>) {
    return x;
  } else {
    return __float2bfloat16_rn(x);
  }
}

/// x (float or __nv_bfloat16) as a double.
template <class T>
double to_double(T x) {
  if constexpr (std::is_same_v<T, float>) {
    return x;
  } else {
    return static_cast<double>(__bfloat162float(x));
  }
}

}  // namespace rodimus::cuda_test
