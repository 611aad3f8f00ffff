// Programmatic dependent launch (sm_90+): a kernel launched with launch_dependent() may start
// while the kernel before it on the stream is still running, runs the part of its work that
// reads nothing the earlier kernel writes (a GEMV's weight loads), then waits in
// grid_dependency_wait() until that kernel has finished and its writes are visible. A kernel
// that calls allow_dependents() early lets such a successor start at once, instead of when its
// last block exits. Inside a CUDA graph (stream capture) the edge is recorded as programmatic.
// Both device calls are no-ops below sm_90 and when the kernel was launched normally.
#pragma once

#include <cuda_runtime.h>

#include <array>
#include <initializer_list>

#include "rodimus/backend/cuda/context.hpp"
#include "rodimus/backend/cuda/grid_dependency.cuh"
#include "rodimus/backend/cuda/launch_order.hpp"

namespace rodimus::backend::cuda::detail {

/// How a kernel is launched by launch_dependent(): its name for errors, how it lets its successor
/// start and what it writes that later kernels read before their wait (launch_order.hpp).
struct DependentLaunch {
  DependentLaunch(const char* w) : what(w) {}  // NOLINT(google-explicit-constructor): a name
  DependentLaunch(const char* w, LaunchOrder o, std::initializer_list<const void*> wr = {})
      : what(w), order(o) {
    std::size_t i = 0;
    for (const void* p : wr)
      if (i < writes.size()) writes[i++] = p;
  }
  const char* what;
  LaunchOrder order = LaunchOrder::TriggersFirst;
  std::array<const void*, 2> writes{};
};

/// Launches kernel<<<grid, block, shared, stream>>>(args...) as a programmatic dependent of the
/// stream's previous kernel where the device supports it (a plain launch elsewhere), and
/// records it in CudaContext::launches; the kernel must call grid_dependency_wait() before it
/// reads anything an earlier kernel writes or writes anything an earlier kernel reads (reads
/// before the wait only of data the record calls settled).
template <class... KArgs, class... Args>
void launch_dependent(void (*kernel)(KArgs...), dim3 grid, dim3 block, std::size_t shared,
                      cudaStream_t stream, const DependentLaunch& how, Args&&... args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = shared;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1]{};
  unsigned n = 0;
  auto& ctx = CudaContext::get();
  const bool dependent = ctx.dependent_launch();
  if (dependent) {
    attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[n].val.programmaticStreamSerializationAllowed = 1;
    ++n;
  }
  cfg.attrs = n ? attr : nullptr;
  cfg.numAttrs = n;
  check_cuda_call(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...), how.what);
  const std::array<const void*, 2>& w = how.writes;
  ctx.launches.launched(stream, dependent ? how.order : LaunchOrder::NeverTriggers, {w[0], w[1]});
}

}  // namespace rodimus::backend::cuda::detail
