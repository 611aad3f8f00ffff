// Execution-space traits: the ONLY place in rodimus with backend #ifdefs.
#pragma once

#include <mutex>
#include <string>
#include <type_traits>

#include "rodimus/config.hpp"
#include "rodimus/core/error.hpp"

/// 1 in the device pass of a GPU compiler (CUDA, HIP, SYCL), 0 in host code: lets scalar math
/// pick a vectorisable host form without a backend #if outside this file.
#if defined(__CUDA_ARCH__) || defined(__HIP_DEVICE_COMPILE__) || defined(__SYCL_DEVICE_ONLY__)
#define RODIMUS_DEVICE_PASS 1
#else
#define RODIMUS_DEVICE_PASS 0
#endif

/// Asks the host compiler to unroll the next loop 16 times. Nothing in CUDA translation units:
/// nvcc's front end warns on GCC's pragma and the host compiler on CUDA's.
#if defined(__CUDACC__)
#define RODIMUS_UNROLL_16
#else
#define RODIMUS_UNROLL_16 _Pragma("GCC unroll 16")
#endif

/// 1 when this translation unit is compiled by a CUDA compiler for a CUDA-enabled Kokkos: the
/// raw CUDA fast paths of backend/cuda/ (tensor-core scan, cuBLAS projections) are available.
#if defined(KOKKOS_ENABLE_CUDA) && defined(__CUDACC__)
#define RODIMUS_CUDA_KERNELS 1
#else
#define RODIMUS_CUDA_KERNELS 0
#endif

namespace rodimus {

/// True when `Space` runs kernels on a GPU (CUDA, HIP, SYCL).
template <class Space>
inline constexpr bool is_gpu_space_v =
#if defined(KOKKOS_ENABLE_CUDA)
    std::is_same_v<Space, Kokkos::Cuda> ||
#endif
#if defined(KOKKOS_ENABLE_HIP)
#if RODIMUS_KOKKOS_4
    std::is_same_v<Space, Kokkos::HIP> ||
#else
    std::is_same_v<Space, Kokkos::Experimental::HIP> ||
#endif
#endif
    false;

/// True for Kokkos::Cuda when the CUDA fast paths of backend/cuda/ are compiled in.
template <class Space>
inline constexpr bool is_cuda_space_v =
#if RODIMUS_CUDA_KERNELS
    std::is_same_v<Space, Kokkos::Cuda> ||
#endif
    false;

/// True when kernels of `Space` can read host memory directly.
template <class Space>
inline constexpr bool is_host_space_v =
    Kokkos::SpaceAccessibility<Space, Kokkos::HostSpace>::accessible;

/// True for the OpenMP host backend.
template <class Space>
inline constexpr bool is_openmp_space_v =
#if defined(KOKKOS_ENABLE_OPENMP)
    std::is_same_v<Space, Kokkos::OpenMP> ||
#endif
    false;

/// A Kokkos execution space rodimus can run on.
template <class Space>
concept ExecutionSpace = Kokkos::is_execution_space<Space>::value;

/// Throws BackendError when the calling thread cannot launch kernels on `Space`. Kokkos 3.x
/// OpenMP keeps its instance in a thread-local pointer, so only the thread that called
/// Kokkos::initialize may launch OpenMP kernels; Kokkos 4.x and the other backends have no such
/// limit. `what` names the caller in the message.
template <class Space>
void require_launch_thread([[maybe_unused]] const char* what) {
#if defined(KOKKOS_ENABLE_OPENMP) && !RODIMUS_KOKKOS_4
  if constexpr (std::is_same_v<Space, Kokkos::OpenMP>) {
    if (!Kokkos::OpenMP::impl_is_initialized())
      throw BackendError(std::string(what) +
                         ": Kokkos 3.x OpenMP can only launch kernels from the thread that called "
                         "Kokkos::initialize; use Kokkos 4.x, or Kokkos::Serial models on other "
                         "threads");
  }
#endif
}

namespace detail {
/// Kokkos 3.4 host backends are not safe for concurrent dispatch from several threads: every
/// model takes this one process-wide lock around its kernels on non-GPU spaces.
inline std::mutex& host_dispatch_mutex() {
  static std::mutex m;
  return m;
}
}  // namespace detail

/// The name of a backend, for logs and benchmark labels.
template <class Space>
const char* backend_name() {
  return Space::name();
}

}  // namespace rodimus
