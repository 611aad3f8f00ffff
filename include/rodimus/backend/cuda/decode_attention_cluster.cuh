// The decode attention of small grids (tokens x heads at most the SM count: a decode step of a
// few sequences) as thread-block clusters (sm_90). Only in CUDA translation units; launched by
// window_attention.hpp when CudaContext::decode_attention_cluster is set.
//
// grid (cs, H, N), one cluster of cs CTAs (x) per (token, head), 256 threads. CTA r of a cluster
// takes keys [lo + n r / cs, lo + n (r + 1) / cs) of its token's window of n keys and streams
// their key and value rows through shared memory in stages of 64 keys (32 at head_dim > 128)
// with cp.async, three stages in flight, so that one CTA per SM keeps ~200 KB of loads in
// flight. Each warp takes 8 (4) keys of a stage: scores by shuffle sums, a running max, exp
// sum and weighted value sum; the warps merge in shared memory, then rank 0 merges the
// cluster's partials through distributed shared memory: no partials in global memory, no
// fences or counters, one kernel.
//
// Before its grid_dependency_wait() a CTA may issue the loads of its first stages' cache rows
// (`prefetch`): they are no output of the kernels right before (the step's q / k / v GEMV) but
// of this layer's attention of the previous step, which the launch record (launch_order.hpp)
// says has finished. The call's own rows (q, and k / v of positions >= pos0) are read after it.
//
// With a cache to write (one token per sequence) the rank-0 CTA that completes a token's last
// head writes its key and value rows into the token's cache row (decode_finish_head), after
// every CTA of every head has read its rows.
#pragma once

#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <cfloat>
#include <cstdint>

#include "rodimus/backend/cuda/decode_attention.cuh"
#include "rodimus/backend/cuda/mma.cuh"

namespace rodimus::backend::cuda::detail {

inline constexpr int kClusterWarps = 8;
inline constexpr int kClusterThreads = 32 * kClusterWarps;
inline constexpr int kClusterStages = 3;   // stages of keys in flight per CTA
inline constexpr int kClusterMaxCtas = 8;  // the portable cluster size
/// Keys per stage of attn_decode_cluster_kernel<NV> (64 KB of key and value rows per stage at
/// head_dim 128 NV).
template <int NV>
inline constexpr int kClusterStageKeys = 64 / NV;
/// Dynamic shared memory of attn_decode_cluster_kernel<NV> at head dimension hd.
inline std::size_t cluster_smem_bytes(int nv, int hd) {
  return std::size_t(kClusterStages) * std::size_t(64 / nv) * std::size_t(hd) * 2 * sizeof(float);
}

// NV: float4s per lane (head_dim <= 128 NV). Requires head_dim % 4 == 0 and 16-byte aligned
// rows of q, k, v, the caches and out; cluster dims (cs, 1, 1) with cs <= kClusterMaxCtas.
template <int NV>
__global__ void __launch_bounds__(kClusterThreads, 1)
    attn_decode_cluster_kernel(const AttnDev a, const DecodeScratch d, const bool prefetch) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  namespace cg = cooperative_groups;
  constexpr int KS = kClusterStageKeys<NV>, W = kClusterWarps, R = KS / W, NS = kClusterStages;
  extern __shared__ float4 attn_cluster_smem[];  // [NS][2][KS][hd / 4]: key rows, value rows
  __shared__ float4 s_acc[W][32 * NV];
  __shared__ float s_m[W], s_l[W];
  __shared__ float2 s_ml;
  __shared__ int s_flag;
  cg::cluster_group cluster = cg::this_cluster();
  const int rank = static_cast<int>(cluster.block_rank());
  const int cs = static_cast<int>(cluster.num_blocks());
  const int h = blockIdx.y, t = blockIdx.z;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  // The batch's layout is uploaded by copies, not written by a dependent kernel.
  const int s = a.token_seq[t];
  const int off = a.offsets[s], len = a.offsets[s + 1] - off, p0 = a.pos0[s], slot = a.slot[s];
  if (len >= a.flash_min_len) return;  // the flash kernel owns this sequence (whole cluster)
  const int p = p0 + (t - off);
  const int lo = (a.window_back < 0 || p < a.window_back) ? 0 : p - a.window_back;
  const int n = p + 1 - lo;
  const int ka = lo + static_cast<int>(std::int64_t(n) * rank / cs);
  const int kb = lo + static_cast<int>(std::int64_t(n) * (rank + 1) / cs);
  const int nst = (kb - ka + KS - 1) / KS;
  const int hd = a.hd, h4 = hd / 4;
  const int kcol = (h % a.heads_k) * hd, vcol = (h % a.heads_v) * hd;
  const std::int64_t kd = std::int64_t(a.heads_k) * hd, vd = std::int64_t(a.heads_v) * hd;
  const int stage4 = 2 * KS * h4;  // float4s per stage
  // Row j's key (v = 0) or value (v = 1): the call's rows from pos0 on, else the cache's.
  auto src = [&](int j, int v) -> const float* {
    if (j >= p0) {
      const std::int64_t row = off + (j - p0);
      return v ? a.v + row * a.ldv + vcol : a.k + row * a.ldk + kcol;
    }
    const std::int64_t row = std::int64_t(slot) * a.wc + j % a.wc;
    return v ? a.v_cache + row * vd + vcol : a.k_cache + row * kd + kcol;
  };
  // Stage i's rows from row r0 of the stage on into its buffer: cp.async for the cache's rows,
  // and for the call's rows too where `fresh`; `plain`: the call's rows only, by loads.
  auto stage_rows = [&](int i, bool fresh, bool plain) {
    if (i >= nst) return;
    float4* const buf = attn_cluster_smem + (i % NS) * stage4;
    const int j0 = ka + i * KS, rows = min(KS, kb - j0);
    const int r0 = plain ? max(0, p0 - j0) : 0;
    const int r1 = (fresh || plain) ? rows : max(0, min(rows, p0 - j0));
    const int per = (r1 - r0) * h4;
    for (int x = tid; x < 2 * per; x += kClusterThreads) {
      const int v = x >= per, y = x - v * per;
      const int r = r0 + y / h4, c4 = y % h4;
      float4* const dst = buf + v * KS * h4 + r * h4 + c4;
      const float* const from = src(j0 + r, v) + 4 * c4;
      if (plain)
        *dst = ldg4(from);
      else
        cp_async16(dst, from, true);
    }
  };
  if (prefetch) {
#pragma unroll
    for (int i = 0; i < NS; ++i) {
      stage_rows(i, false, false);
      cp_async_commit();
    }
  }
  grid_dependency_wait();  // q, k, v of the call come from the kernels before
  allow_dependents();      // the output projection may start loading its weights
#pragma unroll
  for (int i = 0; i < NS; ++i) {
    if (prefetch) {
      stage_rows(i, false, true);
    } else {
      stage_rows(i, true, false);
      cp_async_commit();
    }
  }
  const float4 zero = make_float4(0.f, 0.f, 0.f, 0.f);
  float4 q4[NV];
  const float* qrow = a.q + std::int64_t(t) * a.ldq + std::int64_t(h) * hd;
#pragma unroll
  for (int c = 0; c < NV; ++c) {
    const int c4 = c * 32 + lane;
    q4[c] = c4 < h4 ? ldg4(qrow + 4 * c4) : zero;
  }
  float mw = -FLT_MAX, lw = 0.f;
  float4 acc[NV];
#pragma unroll
  for (int c = 0; c < NV; ++c) acc[c] = zero;
#pragma unroll 1
  for (int i = 0; i < nst; ++i) {
    cp_async_wait<NS - 1>();  // stage i has landed (one group per stage, empty ones included)
    __syncthreads();
    const float4* const kbuf = attn_cluster_smem + (i % NS) * stage4;
    const float4* const vbuf = kbuf + KS * h4;
    const int rows = min(KS, kb - (ka + i * KS));
    float sc[R], cm = -FLT_MAX;
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int rr = warp * R + r;
      float x = 0.f;
      if (rr < rows) {
#pragma unroll
        for (int c = 0; c < NV; ++c) {
          const int c4 = c * 32 + lane;
          if (c4 < h4) x += dot4(q4[c], kbuf[rr * h4 + c4]);
        }
      }
      sc[r] = warp_sum(x) * a.scale;
      if (rr < rows) cm = fmaxf(cm, sc[r]);
    }
    const float mn = fmaxf(mw, cm), alpha = __expf(mw - mn);
    mw = mn;
    lw *= alpha;
#pragma unroll
    for (int c = 0; c < NV; ++c) {
      acc[c].x *= alpha;
      acc[c].y *= alpha;
      acc[c].z *= alpha;
      acc[c].w *= alpha;
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int rr = warp * R + r;
      if (rr >= rows) continue;
      const float e = __expf(sc[r] - mn);
      lw += e;
#pragma unroll
      for (int c = 0; c < NV; ++c) {
        const int c4 = c * 32 + lane;
        if (c4 < h4) fma4(acc[c], e, vbuf[rr * h4 + c4]);
      }
    }
    __syncthreads();  // every warp is done with this buffer
    stage_rows(i + NS, true, false);
    cp_async_commit();
  }
  // The CTA's (max, sum, unnormalised output): warps without keys hold sum 0 and weigh nothing.
#pragma unroll
  for (int c = 0; c < NV; ++c) s_acc[warp][c * 32 + lane] = acc[c];
  if (lane == 0) {
    s_m[warp] = mw;
    s_l[warp] = lw;
  }
  __syncthreads();
  float m = -FLT_MAX, l = 0.f, ew[W];
#pragma unroll
  for (int w = 0; w < W; ++w)
    if (s_l[w] > 0.f) m = fmaxf(m, s_m[w]);
#pragma unroll
  for (int w = 0; w < W; ++w) {
    ew[w] = s_l[w] > 0.f ? __expf(s_m[w] - m) : 0.f;
    l += ew[w] * s_l[w];
  }
  if (tid < h4) {
    float4 o = zero;
#pragma unroll
    for (int w = 0; w < W; ++w) fma4(o, ew[w], s_acc[w][tid]);
    s_acc[0][tid] = o;  // only this thread reads or writes column tid here
  }
  if (tid == 0) s_ml = make_float2(m, l);
  cluster.sync();  // every CTA's partial is in its shared memory
  if (rank == 0) {
    float2 ml[kClusterMaxCtas];
    float mx = -FLT_MAX;
#pragma unroll
    for (int r = 0; r < kClusterMaxCtas; ++r) {
      ml[r] = r < cs ? *cluster.map_shared_rank(&s_ml, r) : make_float2(-FLT_MAX, 0.f);
      if (ml[r].y > 0.f) mx = fmaxf(mx, ml[r].x);
    }
    if (tid < h4) {
      float4 o = zero;
      float lsum = 0.f;
#pragma unroll
      for (int r = 0; r < kClusterMaxCtas; ++r) {
        if (ml[r].y <= 0.f) continue;
        const float wgt = __expf(ml[r].x - mx);
        lsum += wgt * ml[r].y;
        fma4(o, wgt, cluster.map_shared_rank(&s_acc[0][0], r)[tid]);
      }
      const float inv = 1.f / lsum;
      float* const out = a.out + std::int64_t(t) * a.ldo + std::int64_t(h) * hd;
      reinterpret_cast<float4*>(out)[tid] = make_float4(o.x * inv, o.y * inv, o.z * inv, o.w * inv);
    }
  }
  cluster.sync();  // rank 0 has read every partial: the CTAs may exit
  if (rank == 0) decode_finish_head(a, d, t, p, slot, &s_flag);
#endif
}

}  // namespace rodimus::backend::cuda::detail
