// What the CUDA attention kernels share (window_attention.hpp, decode_attention.cuh): their
// device arguments, the address of a key or value row of a sequence (from the call or from its
// rolling cache), and warp / block reductions. Only in CUDA translation units.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace rodimus::backend::cuda::detail {

inline constexpr int kAttnThreads = 128;

struct AttnDev {
  const float *q, *k, *v, *k_cache, *v_cache;
  float* out;
  std::int64_t ldq, ldk, ldv, ldo;
  int heads, heads_k, heads_v, hd, window_back, wc;
  float scale;
  const int *offsets, *pos0, *slot, *token_seq;
  int flash_min_len;  // tokens of sequences at least this long are done by the flash kernel
};

/// Row of key j (absolute position) of sequence s, and of its value.
__device__ inline const float* key_row(const AttnDev& a, int s, int j, int kcol) {
  const int p0 = a.pos0[s];
  if (j >= p0) return a.k + std::int64_t(a.offsets[s] + j - p0) * a.ldk + kcol;
  const std::int64_t kd = std::int64_t(a.heads_k) * a.hd;
  return a.k_cache + (std::int64_t(a.slot[s]) * a.wc + j % a.wc) * kd + kcol;
}
__device__ inline const float* value_row(const AttnDev& a, int s, int j, int vcol) {
  const int p0 = a.pos0[s];
  if (j >= p0) return a.v + std::int64_t(a.offsets[s] + j - p0) * a.ldv + vcol;
  const std::int64_t vd = std::int64_t(a.heads_v) * a.hd;
  return a.v_cache + (std::int64_t(a.slot[s]) * a.wc + j % a.wc) * vd + vcol;
}

__device__ inline float warp_sum(float x) {
  for (int o = 16; o > 0; o /= 2) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}
__device__ inline float warp_max(float x) {
  for (int o = 16; o > 0; o /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}

/// Block-wide reduction of 128 threads (4 warps) through `red` (4 floats of shared memory).
template <bool Max>
__device__ inline float block_reduce(float x, float* red) {
  x = Max ? warp_max(x) : warp_sum(x);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();
  if (lane == 0) red[warp] = x;
  __syncthreads();
  float r = red[0];
  for (int w = 1; w < kAttnThreads / 32; ++w) r = Max ? fmaxf(r, red[w]) : r + red[w];
  return r;
}

}  // namespace rodimus::backend::cuda::detail
