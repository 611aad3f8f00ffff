// The CUDA backend's process-wide resources: the cuBLAS handle and grow-only device scratch
// buffers, created on first use and released by a Kokkos finalize hook (before the CUDA
// context goes away). Only in CUDA translation units.
#pragma once

#include <array>
#include <cstddef>
#include <string>

#include "rodimus/backend/cuda/launch_order.hpp"
#include "rodimus/backend/exec_space_traits.hpp"
#include "rodimus/core/error.hpp"
#include "rodimus/core/precision.hpp"
#include "rodimus/core/views.hpp"

#if RODIMUS_CUDA_KERNELS
#include <cublas_v2.h>
#include <cuda_runtime.h>

namespace rodimus::backend::cuda::detail {

inline void check_cublas(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw BackendError(std::string("rodimus::backend::cuda: ") + what + " failed (" +
                       cublasGetStatusString(status) + ")");
}

inline void check_cuda_call(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw BackendError(std::string("rodimus::backend::cuda: ") + what + ": " +
                       cudaGetErrorString(err));
}

/// Scratch buffers by purpose (one index per user, so that users never share one).
enum ScratchSlot : int {
  kScratchLinearInput =
      0,                 // activations split into halves of the weight type (cublas_linear_shared)
  kScratchLinearOutput,  // the two halves' products, few tokens (cublas_linear_shared)
  kScratchAttnKeys,      // keys and values gathered for the flash attention (window_attention)
  kScratchAttnPartials,  // split-key partial results
  kScratchAttnCounters,  // the decode attention's completion counters (zero between launches)
  kScratchSlots
};

/// The process's cuBLAS handle (pedantic fp32: no TF32 for fp32 data) and its scratch
/// buffers, which only grow, so steady decode steps allocate nothing. Used by one launching
/// host thread at a time (a model's kernels are launched from one thread).
struct CudaContext {
  cublasHandle_t handle = nullptr;
  std::array<void*, kScratchSlots> buf{};
  std::array<std::size_t, kScratchSlots> bytes{};
  /// Set while a decode step is warmed up for or recorded into a CUDA graph (step_graph.hpp):
  /// launch shapes must then not depend on sequence positions.
  bool graph_mode = false;
  /// The tensor-core operand precision of the forward call in flight (OperandPrecisionScope):
  /// read by cublas_linear_shared, gla_scan_cuda and window_attention.
  OperandPrecision operands = OperandPrecision::Split;
  /// The attention of short calls through the one-kernel decode path (decode_attention.cuh)
  /// where its shapes allow; false: the two-kernel split-key path (for A/B benchmarks).
  bool one_kernel_decode_attention = true;
  /// CTAs per SM the decode attention's grid aims at before each CTA walks several chunks of
  /// keys (decode_attention.cuh); tests lower it to force the multi-chunk walk.
  int decode_attention_ctas_per_sm = 8;
  /// Programmatic dependent launch beyond the GEMV's own wait (dependent_launch.cuh): the
  /// GEMV kernels let the next dependent kernel start once all their blocks are running
  /// (gemv_early_trigger), and the RMS norms are launched as dependents that load their
  /// weights before waiting (dependent_norms). On by default since session 21: the 1.6B decode
  /// was 2-3 % faster with both at B = 1 and 4 and equal at B = 16, on an H200 (session 18)
  /// and again on an H100 (session 21; docs/performance.md). Both kernels read their weights
  /// before the wait: safe while the kernel right before them on the stream writes no weights
  /// (in a forward pass it is a norm, a GEMV or the embedding). Off: the plain stream order.
  bool gemv_early_trigger = true;
  bool dependent_norms = true;
  /// The decode GEMV runs the ops that follow a projection element by element in its epilogue
  /// (linear_rope: RoPE of q and k; linear_short_conv: a decode step's ShortConv): one launch
  /// fewer each. Off: the ops run their own kernels after the GEMV (for A/B benchmarks).
  bool gemv_epilogues = true;
  /// The session-24 decode fusions below were verified and measured on an H100 in session 25
  /// (test_ops / test_model with them on; bench_model decode_variant, plus-1.6b bf16 ctx 1024,
  /// ms per step at B = 1 / 4 against 2.176 / 4.05 with all off): gemv_swiglu_epilogue 2.094 /
  /// 3.56, gemv_two_inputs 2.134 / 3.98, gemv_batch_rows 4 - / 3.76, dependent_scan 2.138 / -,
  /// scan_channel_gate 2.149 / 3.99: on; gemv_norm_after (the norm in the output projection's
  /// last block) 2.244 / 4.41 (slower): removed in session 28 for gemv_norm_in.
  ///
  /// SwiGLU's product in the gate / up GEMV's epilogue (swiglu_ffn; Projection::glu_w): gate and
  /// up rows paired in one block, silu once per feature, the down-projection a plain GEMV. Off:
  /// the product formed on the down-projection's input loads (for A/B benchmarks).
  bool gemv_swiglu_epilogue = true;
  /// linear_two_inputs runs the projections of both its inputs in one decode GEMV launch (the
  /// Rodimus mixer: the channel gate's down-projection beside the DDTS projections): one launch
  /// fewer per mixer. Off: one launch per input (for A/B benchmarks).
  bool gemv_two_inputs = true;
  /// The residual add + RMSNorm between sublayers left to the projections around it
  /// (linear_residual_norm returns NormedRows): the output projection's GEMV adds the residual
  /// stream (Projection::res), and the next sublayer's GEMV normalises its input as it reads it
  /// (InputNorm): no norm kernel, at 1 to 2 tokens. Off: the norm's own kernel. On by default
  /// with gemv_token_rows = 8 since session 28 (H100, ms per decode step, ctx 1024, against
  /// both off / 4 rows: 1.6B B = 1 2.02 vs 2.02, B = 2 2.48 vs 2.57; 1.4B B = 1 1.78 vs 1.81,
  /// B = 2 2.11 vs 2.30). With 4 rows per block it was slower (1.6B B = 1 2.13; 1.4B 2.05): each
  /// block also reads the 8 KiB norm weight, and the mixer's first projection has 2048 blocks.
  bool gemv_norm_in = true;
  /// Rows per block of the decode GEMV at 3-8 tokens (2 or 4). Every block reads the whole
  /// input from L2, N tokens x 4 bytes per input feature against its RB rows x 2 bytes of
  /// weights: at 4 tokens and 2 rows the L2 traffic of the activations is 4x the weights'.
  int gemv_batch_rows = 4;
  /// Rows per block of the decode GEMV at 1-2 tokens for projections of at least 2 x 8 rows
  /// per SM: 8 (the default since session 28, see gemv_norm_in): 8 rows and one slice (as many
  /// weight loads in flight per thread as 4 x 2 where the input spans two slices, twice as many
  /// where it spans one, e.g. 2048 features; half the blocks, so half the activation reads from
  /// L2); 0: the earlier rule of launch_gemv (8 rows only for the LM head, else 4 rows and two
  /// slices in flight), for A/B benchmarks.
  int gemv_token_rows = 8;
  /// With gemv_token_rows = 8, a GEMV that takes an input norm keeps 8 rows per block down to one
  /// block per SM (not two): its blocks also read the input and the norm weight from L2, which
  /// 4 rows would double (the mixer's output projection: 2048 rows of 4096 inputs). Off: the
  /// plain rule (for A/B benchmarks). H100, session 29, ms per decode step at ctx 1024 against
  /// off: 1.6B B = 1 1.915 vs 1.989, B = 2 2.355 vs 2.423; 1.4B B = 1 1.662 vs 1.770, B = 2
  /// 1.948 vs 2.020.
  bool gemv_norm_in_rows8 = true;
  /// With gemv_token_rows = 8, the fewest 8-row blocks per SM for which a GEMV without an input
  /// norm (1-2 tokens) takes 8 rows per block; below, 4 rows and two slices. 2: the rule of
  /// session 28; 1 also gives 8 rows to the 2048-row projections (the attention's o, the FFN's
  /// down projection of the 1.6B / 1.4B shapes: 256 blocks).
  int gemv_rows8_blocks_per_sm = 2;
  /// Slices of the input in flight per thread at 8 rows per block (1 or 2); 2 only matters where
  /// the input spans more than one slice (more than 2048 features: the FFN's down projection,
  /// the mixer's output projection): 16 loads in flight per thread.
  int gemv_rows8_slices = 1;
  /// The one-kernel decode attention loads its first chunk's cache rows before it waits for the
  /// q / k / v projection, where the launch record calls the caches settled (no kernel that may
  /// still run writes them: in a model, a scan or another attention ran since this layer's
  /// attention of the step before). Off: every load after the wait. Off by default until a GPU
  /// run has verified and measured it (written in session 30, when no device was lent; the
  /// tests run both; bench variant attn_early:on).
  bool decode_attention_early_loads = false;
  /// The decode scan (ddts_gla_scan's recurrent kernel) as a programmatic dependent launch that
  /// loads its states before waiting for the kernel before. Off: a normal launch (for A/B
  /// benchmarks).
  bool dependent_scan = true;
  /// The decode scan computes the channel gate's up-projection and product itself
  /// (ddts_gla_scan_gated: u from z_r, no launch of its own). Off: the GEMV with the product as
  /// epilogue, then the scan (for A/B benchmarks).
  bool scan_channel_gate = true;
  /// The decode scan applies the gate of the mixer's gated RMSNorm to its output, and the
  /// output projection's GEMV the norm (ddts_gla_scan_gated with a GatedNorm to defer): no
  /// gated-norm kernel (one CTA per token) at 1 to 2 tokens, with gemv_norm_in. Off: the
  /// gated-norm kernel (for A/B benchmarks). H100, session 29 (with gemv_norm_in_rows8), ms per
  /// decode step at ctx 1024 against off: 1.6B B = 1 1.915 vs 2.008, B = 2 2.355 vs 2.474;
  /// 1.4B B = 1 1.662 vs 1.754, B = 2 1.948 vs 2.135.
  bool scan_output_gate = true;
  /// What the kernels launched on each stream wrote that a kernel launched next may not read
  /// before its wait (launch_order.hpp): the decode scan's states, the decode attention's cache
  /// rows. launch_dependent() records every dependent launch.
  LaunchRecord launches;
  /// cuBLAS's workspace (32 MiB, NVIDIA's figure for Hopper).
  static constexpr std::size_t kCublasWorkspaceBytes = std::size_t(32) << 20;
  void* cublas_workspace = nullptr;

  static CudaContext& get() {
    static CudaContext* ctx = [] {
      auto* c = new CudaContext;
      check_cublas(cublasCreate(&c->handle), "cublasCreate");
      check_cublas(cublasSetMathMode(c->handle, CUBLAS_PEDANTIC_MATH), "cublasSetMathMode");
      // An explicit workspace: cuBLAS then allocates nothing while a CUDA graph is recorded.
      check_cuda_call(cudaMalloc(&c->cublas_workspace, kCublasWorkspaceBytes),
                      "cudaMalloc of the cuBLAS workspace");
      Kokkos::push_finalize_hook([c] {
        for (auto*& p : c->buf) {
          if (p) cudaFree(p);
          p = nullptr;
        }
        c->bytes.fill(0);
        cublasDestroy(c->handle);
        cudaFree(c->cublas_workspace);
        c->cublas_workspace = nullptr;
        c->handle = nullptr;
      });
      return c;
    }();
    if (!ctx->handle) throw BackendError("rodimus::backend::cuda: used after Kokkos::finalize");
    return *ctx;
  }

  /// The cuBLAS handle, set to run on `stream` with rodimus's workspace (cublasSetStream
  /// resets the workspace to cuBLAS's own pool, which may allocate while a graph is recorded).
  cublasHandle_t blas_on(cudaStream_t stream) {
    check_cublas(cublasSetStream(handle, stream), "cublasSetStream");
    check_cublas(cublasSetWorkspace(handle, cublas_workspace, kCublasWorkspaceBytes),
                 "cublasSetWorkspace");
    return handle;
  }

  /// Streaming multiprocessors of the current device (asked once).
  int sm_count() {
    if (sms == 0) {
      int dev = 0;
      check_cuda_call(cudaGetDevice(&dev), "cudaGetDevice");
      check_cuda_call(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev),
                      "cudaDeviceGetAttribute");
    }
    return sms;
  }
  int sms = 0;

  /// True when the current device launches kernels early on request (programmatic dependent
  /// launch, compute capability 9.0 and later; asked once): see dependent_launch.cuh.
  bool dependent_launch() {
    if (cc_major == 0) {
      int dev = 0;
      check_cuda_call(cudaGetDevice(&dev), "cudaGetDevice");
      check_cuda_call(cudaDeviceGetAttribute(&cc_major, cudaDevAttrComputeCapabilityMajor, dev),
                      "cudaDeviceGetAttribute");
    }
    return cc_major >= 9;
  }
  int cc_major = 0;

  /// At least `n` bytes of device memory for `slot` (contents not kept when it grows).
  void* scratch(ScratchSlot slot, std::size_t n) {
    if (n > bytes[slot]) {
      if (buf[slot]) check_cuda_call(cudaFree(buf[slot]), "cudaFree");
      buf[slot] = nullptr;
      bytes[slot] = 0;
      check_cuda_call(cudaMalloc(&buf[slot], n), "cudaMalloc of a scratch buffer");
      bytes[slot] = n;
      ::rodimus::detail::note_reallocation();
    }
    return buf[slot];
  }

  /// As scratch(), and zero-filled on `stream` whenever it is (re)allocated: for counters that
  /// the kernels using them return to zero before they exit.
  void* scratch_zeroed(ScratchSlot slot, std::size_t n, cudaStream_t stream) {
    const bool grows = n > bytes[slot];
    void* p = scratch(slot, n);
    if (grows) check_cuda_call(cudaMemsetAsync(p, 0, bytes[slot], stream), "cudaMemsetAsync");
    return p;
  }
};

/// Sets CudaContext::operands for a scope (a forward call) and restores it.
class OperandPrecisionScope {
 public:
  explicit OperandPrecisionScope(OperandPrecision p)
      : ctx_(CudaContext::get()), saved_(ctx_.operands) {
    ctx_.operands = p;
  }
  ~OperandPrecisionScope() { ctx_.operands = saved_; }
  OperandPrecisionScope(const OperandPrecisionScope&) = delete;
  OperandPrecisionScope& operator=(const OperandPrecisionScope&) = delete;

 private:
  CudaContext& ctx_;
  OperandPrecision saved_;
};

/// Saves CudaContext's A/B decode settings (one_kernel_decode_attention,
/// decode_attention_ctas_per_sm, decode_attention_early_loads, gemv_early_trigger, dependent_norms,
/// gemv_epilogues, gemv_two_inputs, gemv_norm_in, gemv_batch_rows, gemv_token_rows,
/// gemv_norm_in_rows8, gemv_rows8_blocks_per_sm, gemv_rows8_slices, dependent_scan,
/// scan_channel_gate, scan_output_gate) and restores them at the end of the scope: tests and
/// benchmarks change them inside one.
class DecodeSettingsScope {
 public:
  DecodeSettingsScope()
      : ctx_(CudaContext::get()),
        one_kernel_(ctx_.one_kernel_decode_attention),
        ctas_(ctx_.decode_attention_ctas_per_sm),
        attn_early_(ctx_.decode_attention_early_loads),
        trigger_(ctx_.gemv_early_trigger),
        norms_(ctx_.dependent_norms),
        epilogues_(ctx_.gemv_epilogues),
        swiglu_(ctx_.gemv_swiglu_epilogue),
        two_inputs_(ctx_.gemv_two_inputs),
        norm_in_(ctx_.gemv_norm_in),
        batch_rows_(ctx_.gemv_batch_rows),
        token_rows_(ctx_.gemv_token_rows),
        norm_rows8_(ctx_.gemv_norm_in_rows8),
        rows8_blocks_(ctx_.gemv_rows8_blocks_per_sm),
        rows8_slices_(ctx_.gemv_rows8_slices),
        scan_(ctx_.dependent_scan),
        scan_gate_(ctx_.scan_channel_gate),
        out_gate_(ctx_.scan_output_gate) {}
  ~DecodeSettingsScope() {
    ctx_.one_kernel_decode_attention = one_kernel_;
    ctx_.decode_attention_ctas_per_sm = ctas_;
    ctx_.decode_attention_early_loads = attn_early_;
    ctx_.gemv_early_trigger = trigger_;
    ctx_.dependent_norms = norms_;
    ctx_.gemv_epilogues = epilogues_;
    ctx_.gemv_swiglu_epilogue = swiglu_;
    ctx_.gemv_two_inputs = two_inputs_;
    ctx_.gemv_norm_in = norm_in_;
    ctx_.gemv_batch_rows = batch_rows_;
    ctx_.gemv_token_rows = token_rows_;
    ctx_.gemv_norm_in_rows8 = norm_rows8_;
    ctx_.gemv_rows8_blocks_per_sm = rows8_blocks_;
    ctx_.gemv_rows8_slices = rows8_slices_;
    ctx_.dependent_scan = scan_;
    ctx_.scan_channel_gate = scan_gate_;
    ctx_.scan_output_gate = out_gate_;
  }
  DecodeSettingsScope(const DecodeSettingsScope&) = delete;
  DecodeSettingsScope& operator=(const DecodeSettingsScope&) = delete;
  CudaContext& context() const { return ctx_; }

 private:
  CudaContext& ctx_;
  bool one_kernel_;
  int ctas_;
  bool attn_early_;
  bool trigger_, norms_, epilogues_, swiglu_, two_inputs_, norm_in_;
  int batch_rows_, token_rows_;
  int rows8_blocks_, rows8_slices_;
  bool norm_rows8_, scan_, scan_gate_, out_gate_;
};

}  // namespace rodimus::backend::cuda::detail

#endif  // RODIMUS_CUDA_KERNELS

#if !RODIMUS_CUDA_KERNELS
namespace rodimus::backend::cuda::detail {
/// Without CUDA kernels there is no tensor-core path to configure.
struct OperandPrecisionScope {
  explicit OperandPrecisionScope(OperandPrecision) {}
};
}  // namespace rodimus::backend::cuda::detail
#endif
