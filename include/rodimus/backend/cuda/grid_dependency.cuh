// The device side of programmatic dependent launch (sm_90+), without the launcher
// (dependent_launch.cuh): the raw kernels that the host emulation also compiles
// (gla_chunk_scan.cuh) include this alone. Both calls are no-ops below sm_90, when the kernel
// was launched normally, and in the host emulation.
#pragma once

#include <cuda_runtime.h>

namespace rodimus::backend::cuda::detail {

/// Waits until the grid this kernel depends on has completed and its memory is visible.
__device__ __forceinline__ void grid_dependency_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

/// Lets the next kernel of the stream, if launched with launch_dependent(), start now.
__device__ __forceinline__ void allow_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

}  // namespace rodimus::backend::cuda::detail
