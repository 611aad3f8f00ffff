// Programmatic dependent launch (sm_90+): a kernel launched with launch_dependent() may start
// while the kernel before it on the stream is still running, runs the part of its work that
// reads nothing the earlier kernel writes (a GEMV's weight loads), then waits in
// grid_dependency_wait() until that kernel has finished and its writes are visible. A kernel
// that calls allow_dependents() early lets such a successor start at once, instead of when its
// last block exits. Inside a CUDA graph (stream capture) the edge is recorded as programmatic.
// Both device calls are no-ops below sm_90 and when the kernel was launched normally.
#pragma once

#include <cuda_runtime.h>

#include "rodimus/backend/cuda/context.hpp"
#include "rodimus/backend/cuda/grid_dependency.cuh"

namespace rodimus::backend::cuda::detail {

/// Launches kernel<<<grid, block, shared, stream>>>(args...) as a programmatic dependent of the
/// stream's previous kernel where the device supports it (a plain launch elsewhere); the
/// kernel must call grid_dependency_wait() before it reads anything an earlier kernel writes
/// or writes anything an earlier kernel reads.
template <class... KArgs, class... Args>
void launch_dependent(void (*kernel)(KArgs...), dim3 grid, dim3 block, std::size_t shared,
                      cudaStream_t stream, const char* what, Args&&... args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = shared;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1]{};
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  auto& ctx = CudaContext::get();
  if (ctx.state_stream_set && ctx.state_stream == stream) ctx.state_stream_set = false;
  if (ctx.dependent_launch()) {
    cfg.attrs = attr;
    cfg.numAttrs = 1;
  }
  check_cuda_call(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...), what);
}

}  // namespace rodimus::backend::cuda::detail
