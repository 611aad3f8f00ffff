// One recorded sequence of kernel launches (a decode step) replayed as a CUDA graph: a decode
// step of the 1.6B model is ~860 small launches, and launching them one by one costs more than
// the kernels. Only in CUDA translation units; elsewhere StepGraph just runs the launches.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>

#include "rodimus/backend/cuda/context.hpp"
#include "rodimus/backend/exec_space_traits.hpp"
#include "rodimus/core/precision.hpp"

namespace rodimus::backend::cuda {

/// What a recorded graph depends on besides the contents of device memory: the objects whose
/// buffers it reads and writes, the launch shape, and rodimus's buffer generation (bumped by
/// every reallocation of a workspace, state, cache or scratch buffer, core/views.hpp), since a
/// graph keeps the buffer addresses of the launches it recorded.
struct StepGraphKey {
  const void* owner = nullptr;  ///< the model
  const void* state = nullptr;  ///< the decode state
  int tokens = 0;               ///< tokens of the step (the batch size in decode)
  std::uint64_t generation = 0;
  OperandPrecision operands = OperandPrecision::Split;  ///< the step's tensor-core operands
  bool operator==(const StepGraphKey&) const = default;
};

#if RODIMUS_CUDA_KERNELS

/// A decode step recorded once and replayed: the first call with a new key runs the launches
/// directly (growing every buffer to its final size), the second records them into a graph
/// (stream capture) and launches it, later calls with the same key launch the graph only.
/// While recording or warming up, `CudaContext::graph_mode` is set so that the kernels whose
/// launch shape depends on the sequence positions (the split-key attention) size their grids
/// for the longest context instead (the graph must stay valid as positions advance).
class StepGraph {
 public:
  StepGraph() = default;
  StepGraph(const StepGraph&) = delete;
  StepGraph& operator=(const StepGraph&) = delete;
  StepGraph(StepGraph&& o) noexcept { swap(o); }
  StepGraph& operator=(StepGraph&& o) noexcept {
    StepGraph t(std::move(o));
    swap(t);
    return *this;
  }
  ~StepGraph() { reset(); }

  /// Runs `launch` (which only enqueues work on `stream`: no allocation once warm, no host
  /// synchronisation) through the graph for `key`.
  template <class F>
  void run(cudaStream_t stream, const StepGraphKey& key, F&& launch) {
    using detail::check_cuda_call;
    if (exec_ && key == key_) {
      check_cuda_call(cudaGraphLaunch(exec_, stream), "cudaGraphLaunch");
      return;
    }
    reset();
    GraphModeGuard guard;
    if (warm_key_ != key) {  // first sight of this key: run directly, grow buffers
      launch();
      warm_key_ = key;
      return;
    }
    check_cuda_call(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal),
                    "cudaStreamBeginCapture");
    cudaGraph_t graph = nullptr;
    try {
      launch();
    } catch (...) {
      cudaStreamEndCapture(stream, &graph);
      if (graph) cudaGraphDestroy(graph);
      warm_key_.reset();
      throw;
    }
    check_cuda_call(cudaStreamEndCapture(stream, &graph), "cudaStreamEndCapture");
    const cudaError_t err = cudaGraphInstantiate(&exec_, graph, 0);
    cudaGraphDestroy(graph);
    if (err != cudaSuccess) {
      exec_ = nullptr;
      check_cuda_call(err, "cudaGraphInstantiate");
    }
    key_ = key;
    check_cuda_call(cudaGraphLaunch(exec_, stream), "cudaGraphLaunch");
  }

  /// Drops the recorded graph (the next run records it again, or runs directly first when its
  /// key is not the one last run directly).
  void reset() {
    if (exec_) cudaGraphExecDestroy(exec_);
    exec_ = nullptr;
  }

  bool recorded() const { return exec_ != nullptr; }

 private:
  struct GraphModeGuard {
    GraphModeGuard() { detail::CudaContext::get().graph_mode = true; }
    ~GraphModeGuard() { detail::CudaContext::get().graph_mode = false; }
  };
  void swap(StepGraph& o) noexcept {
    std::swap(exec_, o.exec_);
    std::swap(key_, o.key_);
    std::swap(warm_key_, o.warm_key_);
  }

  cudaGraphExec_t exec_ = nullptr;
  StepGraphKey key_{};                    ///< what exec_ was recorded for
  std::optional<StepGraphKey> warm_key_;  ///< the key last run directly
};

#else

/// Without CUDA kernels there is nothing to record: the launches just run.
class StepGraph {
 public:
  StepGraph() = default;
  StepGraph(const StepGraph&) = delete;
  StepGraph& operator=(const StepGraph&) = delete;
  StepGraph(StepGraph&&) noexcept = default;
  StepGraph& operator=(StepGraph&&) noexcept = default;
  template <class F>
  void run(void*, const StepGraphKey&, F&& launch) {
    launch();
  }
  void reset() {}
  bool recorded() const { return false; }
};

#endif  // RODIMUS_CUDA_KERNELS

}  // namespace rodimus::backend::cuda
