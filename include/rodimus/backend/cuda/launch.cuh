// Launching the raw CUDA kernels (gla_chunk_scan.cuh, flash_attention.cuh): device attributes
// asked once per device, and a launcher that raises a kernel's dynamic shared-memory limit when
// it needs more than the default 48 KiB. Both stay out of the host emulation
// (RODIMUS_CUDA_HOST_EMULATION), which brings its own launcher.
#pragma once

#ifndef RODIMUS_CUDA_HOST_EMULATION
#include <cuda_runtime.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "rodimus/backend/cuda/aligned.hpp"
#include "rodimus/core/error.hpp"

namespace rodimus::backend::cuda::detail {

using cuda::aligned16;  // backend/cuda/aligned.hpp

inline void check_cuda(cudaError_t err, const char* who, const char* what) {
  if (err != cudaSuccess)
    throw BackendError(std::string(who) + ": " + what + ": " + cudaGetErrorString(err));
}

/// An attribute of the current device, asked once per (device, attribute) of this list.
enum class DeviceAttr : int { Multiprocessors = 0, SharedOptin = 1 };
inline int device_attribute(DeviceAttr attr) {
  constexpr int kDevices = 64;
  static std::array<std::atomic<int>, 2 * kDevices> cache{};  // 0: not asked yet
  int device = 0;
  check_cuda(cudaGetDevice(&device), "rodimus::backend::cuda", "cudaGetDevice");
  const auto which = attr == DeviceAttr::Multiprocessors ? cudaDevAttrMultiProcessorCount
                                                         : cudaDevAttrMaxSharedMemoryPerBlockOptin;
  auto* slot = device < kDevices ? &cache[2 * device + static_cast<int>(attr)] : nullptr;
  if (slot) {
    if (const int v = slot->load(std::memory_order_relaxed); v > 0) return v;
  }
  int v = 0;
  check_cuda(cudaDeviceGetAttribute(&v, which, device), "rodimus::backend::cuda",
             "cudaDeviceGetAttribute");
  if (slot) slot->store(v, std::memory_order_relaxed);
  return v;
}

inline int multiprocessors() { return device_attribute(DeviceAttr::Multiprocessors); }

/// Launches on a stream, raising the kernel's dynamic shared-memory limit when needed; `who`
/// names the caller in errors.
struct CudaLaunch {
  cudaStream_t stream;
  const char* who;
  template <class... KArgs, class... Args>
  void operator()(void (*kernel)(KArgs...), dim3 grid, dim3 block, int shared,
                  Args... args) const {
    if (shared > 48 * 1024) {
      const int optin = device_attribute(DeviceAttr::SharedOptin);
      if (shared > optin)
        throw ArgumentError(std::string(who) + ": this shape needs " + std::to_string(shared) +
                            " bytes of shared memory per block; this device allows " +
                            std::to_string(optin));
      check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, shared),
                 who, "cudaFuncSetAttribute");
    }
    kernel<<<grid, block, static_cast<std::size_t>(shared), stream>>>(static_cast<KArgs>(args)...);
    check_cuda(cudaGetLastError(), who, "kernel launch");
  }
};

}  // namespace rodimus::backend::cuda::detail
#endif  // RODIMUS_CUDA_HOST_EMULATION
