// Decode-sized linear layers on a CUDA GPU: y[0:N] = x[0:N] W^T + b for N <= kGemvMaxTokens
// tokens with bf16 / fp16 weights and fp32 activations, one launch, every weight read once for
// all N tokens. Only in CUDA translation units.
//
// Roofline: a decode step reads every weight once, so this is bandwidth work (2 bytes per
// weight, 2N flops): a warp owns kGemvRowsPerWarp output rows and streams them in 16-byte loads
// (8 weights per lane and load, 512 bytes per warp and row), all rows' loads in flight before
// the arithmetic; x rows (N x in fp32, a few KiB) come through L1/L2. The activations stay fp32:
// the result is the host's (bf16 weights x fp32 activations, fp32 accumulation).
//
// Matrices with few rows (the mixer's [64, 4096] projections, the low-rank gate) would leave
// most of the GPU idle, each warp walking a long row with one load in flight: the input
// dimension is split as well (split-K) until there are about 4 blocks per SM. Each block
// writes its partial sums, and the last block of a row tile to arrive (an atomic counter,
// reset by that block for the next launch) adds the partials in split order: one launch,
// deterministic results, graph-capturable.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "rodimus/backend/cuda/context.hpp"
#include "rodimus/backend/exec_space_traits.hpp"
#include "rodimus/core/dtype.hpp"

#if RODIMUS_CUDA_KERNELS
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

namespace rodimus::backend::cuda {

/// Most tokens the GEMV kernel serves (larger batches go to the tensor-core GEMM).
inline constexpr int kGemvMaxTokens = 8;

#if RODIMUS_CUDA_KERNELS
namespace detail {

inline constexpr int kGemvWarps = 8;        // warps per block
inline constexpr int kGemvRowsPerWarp = 2;  // output rows per warp

template <class W>
__device__ inline void widen8(const uint4& raw, float (&w)[8]) {
  const auto* h = reinterpret_cast<const std::uint16_t*>(&raw);
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    if constexpr (std::is_same_v<W, bf16>) {
      w[i] = __uint_as_float(std::uint32_t(h[i]) << 16);
    } else {
      w[i] = __half2float(__ushort_as_half(h[i]));
    }
  }
}

inline constexpr int kGemvRowsPerBlock = kGemvWarps * kGemvRowsPerWarp;

// grid (ceil(out / kGemvRowsPerBlock), splits), block 32 * kGemvWarps. Block (tile, split) sums
// the 8-weight groups [split * gps, (split + 1) * gps) of its rows. splits == 1: writes y;
// else partial [splits, N, out] and counters [tiles] (zero on entry and on exit).
template <class W, int N>
__global__ void __launch_bounds__(32 * kGemvWarps)
    gemv_kernel(const float* __restrict__ x, std::int64_t ldx, const W* __restrict__ w,
                const float* __restrict__ b, float* __restrict__ y, std::int64_t ldy, int in,
                int out, int gps, float* __restrict__ partial, unsigned* __restrict__ counters) {
  const int lane = threadIdx.x % 32;
  const int tile0 = blockIdx.x * kGemvRowsPerBlock;
  const int row0 = tile0 + (threadIdx.x / 32) * kGemvRowsPerWarp;
  const int split = blockIdx.y, splits = gridDim.y;
  float acc[kGemvRowsPerWarp][N] = {};
  const int groups = in / 8;  // 8 weights per 16-byte load
  const int g1 = min(groups, (split + 1) * gps);
  for (int g = split * gps + lane; g < g1; g += 32) {
    uint4 raw[kGemvRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kGemvRowsPerWarp; ++r)
      raw[r] = row0 + r < out
                   ? __ldg(reinterpret_cast<const uint4*>(w + std::int64_t(row0 + r) * in) + g)
                   : make_uint4(0, 0, 0, 0);
    float xv[N][8];
#pragma unroll
    for (int n = 0; n < N; ++n) {
      const float4* xp = reinterpret_cast<const float4*>(x + n * ldx) + 2 * g;
      const float4 a = __ldg(xp), c = __ldg(xp + 1);
      xv[n][0] = a.x, xv[n][1] = a.y, xv[n][2] = a.z, xv[n][3] = a.w;
      xv[n][4] = c.x, xv[n][5] = c.y, xv[n][6] = c.z, xv[n][7] = c.w;
    }
#pragma unroll
    for (int r = 0; r < kGemvRowsPerWarp; ++r) {
      float wf[8];
      widen8<W>(raw[r], wf);
#pragma unroll
      for (int n = 0; n < N; ++n)
#pragma unroll
        for (int i = 0; i < 8; ++i) acc[r][n] = fmaf(wf[i], xv[n][i], acc[r][n]);
    }
  }
#pragma unroll
  for (int r = 0; r < kGemvRowsPerWarp; ++r)
#pragma unroll
    for (int n = 0; n < N; ++n) {
      float v = acc[r][n];
      for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
      if (lane == 0 && row0 + r < out) {
        if (splits == 1)
          y[n * ldy + row0 + r] = v + (b ? b[row0 + r] : 0.f);
        else
          partial[(std::int64_t(split) * N + n) * out + row0 + r] = v;
      }
    }
  if (splits == 1) return;
  // the last block of this row tile to finish adds the partials, in split order
  __shared__ bool last;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) last = atomicAdd(&counters[blockIdx.x], 1u) == unsigned(splits - 1);
  __syncthreads();
  if (!last) return;
  __threadfence();
  for (int i = threadIdx.x; i < N * kGemvRowsPerBlock; i += blockDim.x) {
    const int n = i / kGemvRowsPerBlock, row = tile0 + i % kGemvRowsPerBlock;
    if (row >= out) continue;
    float v = 0.f;
    for (int sp = 0; sp < splits; ++sp)
      v += __ldcg(partial + (std::int64_t(sp) * N + n) * out + row);
    y[n * ldy + row] = v + (b ? b[row] : 0.f);
  }
  if (threadIdx.x == 0) counters[blockIdx.x] = 0u;
}

template <class W, int N>
void launch_gemv(const float* x, std::int64_t ldx, const W* w, const float* b, float* y,
                 std::int64_t ldy, int in, int out, cudaStream_t stream) {
  auto& ctx = CudaContext::get();
  const int tiles = (out + kGemvRowsPerBlock - 1) / kGemvRowsPerBlock;
  const int groups = in / 8;
  // split K until ~4 blocks per SM, keeping at least 32 groups (one load per lane) per split
  const int target = 4 * ctx.sm_count();
  int splits = tiles >= target ? 1 : (target + tiles - 1) / tiles;
  splits = std::max(1, std::min(splits, groups / 32));
  const int gps = (groups + splits - 1) / splits;
  splits = (groups + gps - 1) / gps;
  float* partial = nullptr;
  unsigned* counters = nullptr;
  if (splits > 1) {
    partial = static_cast<float*>(
        ctx.scratch(kScratchGemvPartials, std::size_t(splits) * N * out * sizeof(float)));
    counters = static_cast<unsigned*>(
        ctx.zeroed_scratch(kScratchGemvCounters, std::size_t(tiles) * sizeof(unsigned)));
  }
  gemv_kernel<W, N><<<dim3(tiles, splits), 32 * kGemvWarps, 0, stream>>>(
      x, ldx, w, b, y, ldy, in, out, gps, partial, counters);
  check_cuda_call(cudaGetLastError(), "gemv kernel");
}

}  // namespace detail
#endif  // RODIMUS_CUDA_KERNELS

/// True when gemv() takes these shapes: 1..kGemvMaxTokens tokens, bf16 or fp16 weights, `in` a
/// multiple of 8, 16-byte aligned weight and activation rows.
template <class W>
bool gemv_supports(int n_tokens, int in, const void* x, std::int64_t ldx, const void* w) {
  return !std::is_same_v<W, float> && n_tokens >= 1 && n_tokens <= kGemvMaxTokens && in % 8 == 0 &&
         ldx % 4 == 0 && reinterpret_cast<std::uintptr_t>(x) % 16 == 0 &&
         reinterpret_cast<std::uintptr_t>(w) % 16 == 0;
}

/// y[0:N] = x[0:N] W^T + b on `stream` (see the file comment); call only where gemv_supports().
// x: [N, in] (row stride ldx), w: [out, in] dense, b: [out] or null, y: [N, out] (ldy)
template <class W>
void gemv([[maybe_unused]] const float* x, [[maybe_unused]] std::int64_t ldx,
          [[maybe_unused]] const W* w, [[maybe_unused]] const float* b, [[maybe_unused]] float* y,
          [[maybe_unused]] std::int64_t ldy, [[maybe_unused]] int n_tokens, [[maybe_unused]] int in,
          [[maybe_unused]] int out, [[maybe_unused]] void* stream) {
#if RODIMUS_CUDA_KERNELS
  if constexpr (!std::is_same_v<W, float>) {
    const auto s = static_cast<cudaStream_t>(stream);
    switch (n_tokens) {
      case 1:
        return detail::launch_gemv<W, 1>(x, ldx, w, b, y, ldy, in, out, s);
      case 2:
        return detail::launch_gemv<W, 2>(x, ldx, w, b, y, ldy, in, out, s);
      case 3:
        return detail::launch_gemv<W, 3>(x, ldx, w, b, y, ldy, in, out, s);
      case 4:
        return detail::launch_gemv<W, 4>(x, ldx, w, b, y, ldy, in, out, s);
      case 5:
        return detail::launch_gemv<W, 5>(x, ldx, w, b, y, ldy, in, out, s);
      case 6:
        return detail::launch_gemv<W, 6>(x, ldx, w, b, y, ldy, in, out, s);
      case 7:
        return detail::launch_gemv<W, 7>(x, ldx, w, b, y, ldy, in, out, s);
      default:
        return detail::launch_gemv<W, 8>(x, ldx, w, b, y, ldy, in, out, s);
    }
  }
#endif
}

}  // namespace rodimus::backend::cuda
