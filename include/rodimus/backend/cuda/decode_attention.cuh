// Attention of the tokens of short calls (decode steps, short prompts) on a CUDA GPU: split-key
// flash decoding with the splits merged inside the same kernel. Only in CUDA translation units;
// launched by window_attention.hpp.
//
// grid (splits, H, N), 128 threads: CTA (sp, h, t) takes chunks sp C .. sp C + C - 1 of 32 keys
// of token t's window for query head h, C = ceil(chunks / splits) for the token's own chunks
// (1 for small grids; more when the batch would otherwise launch many waves of CTAs). For each chunk, each of its 4 warps holds
// 8 key rows and their 8 value rows in registers (lanes over the head dimension in float4s),
// all loaded at once: a decode step's attention reads little and is bound by how many
// dependent memory round trips it takes, so the kernel takes few. Per warp: scores (shuffle
// sums) and a running max, exp sum and weighted value sum; the 4 warps merge in shared memory. A token whose window fits one split
// writes its output at once; otherwise every split writes (max, sum, acc[hd]) and counts
// itself done on an atomic counter, and the split that finishes last merges them all (the
// counter goes back to zero for the next launch). No second kernel, so no second launch.
// The kernel source alone (no launcher, no Kokkos): the host emulation compiles it too
// (tests/cuda/emulate_decode_attention.cpp).
//
// With a cache to write (one token per sequence), the CTA that completes a token's last head
// writes its key and value rows into the token's cache row after every read of that token
// has been done (a second counter, per token), which saves the separate cache-update kernel.
//
// With DecodeScratch::early (the caches settled: no kernel that may still run writes them,
// launch_order.hpp), a CTA loads the cache rows of its first chunk before it waits for the
// kernel before (the q / k / v projection), and only q and the call's own key and value rows
// after: the cache reads, most of the kernel's traffic, overlap that kernel's tail.
#pragma once

#include <cuda_runtime.h>

#include <cfloat>
#include <cstdint>

#include "rodimus/backend/cuda/attention_rows.cuh"
#include "rodimus/backend/cuda/grid_dependency.cuh"

namespace rodimus::backend::cuda::detail {

inline constexpr int kDecodeWarps = 4;
inline constexpr int kDecodeRows = 8;                           // key rows per warp
inline constexpr int kDecodeKeys = kDecodeWarps * kDecodeRows;  // keys per CTA
inline constexpr int kDecodeThreads = 32 * kDecodeWarps;
/// Largest head dimension of attn_decode_kernel (two float4s per lane).
inline constexpr int kDecodeMaxHeadDim = 256;

/// Scratch of attn_decode_kernel (device pointers).
struct DecodeScratch {
  float* acc = nullptr;       // [N, H, splits, hd]: unnormalised partial outputs
  float2* stat = nullptr;     // [N, H, splits]: their (max, sum of exp)
  unsigned* done = nullptr;   // [N * H] splits finished, then [N] heads finished; zero at rest
  float* k_cache = nullptr;   // non-null: write each token's key and value rows into its
  float* v_cache = nullptr;   // cache row (only with one token per sequence)
  int splits = 0;  // CTAs per (token, head) in the grid
  bool early = false;  // the first chunk's cache rows loaded before the wait
};

__device__ __forceinline__ float4 ldg4(const float* p) {
  return __ldg(reinterpret_cast<const float4*>(p));
}
__device__ __forceinline__ float dot4(const float4 a, const float4 b) {
  return a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
}
__device__ __forceinline__ void fma4(float4& acc, const float w, const float4 v) {
  acc.x += w * v.x;
  acc.y += w * v.y;
  acc.z += w * v.z;
  acc.w += w * v.w;
}

/// Writes token t's key and value rows (row t of the call) into its sequence's cache row p % wc.
__device__ inline void decode_write_cache(const AttnDev& a, const DecodeScratch& d, int t, int p,
                                          int slot) {
  const std::int64_t kd = std::int64_t(a.heads_k) * a.hd, vd = std::int64_t(a.heads_v) * a.hd;
  const std::int64_t row = std::int64_t(slot) * a.wc + p % a.wc;
  const float* kr = a.k + std::int64_t(t) * a.ldk;
  const float* vr = a.v + std::int64_t(t) * a.ldv;
  for (std::int64_t c = threadIdx.x; c < kd / 4; c += blockDim.x)
    reinterpret_cast<float4*>(d.k_cache + row * kd)[c] = ldg4(kr + 4 * c);
  for (std::int64_t c = threadIdx.x; c < vd / 4; c += blockDim.x)
    reinterpret_cast<float4*>(d.v_cache + row * vd)[c] = ldg4(vr + 4 * c);
}

/// Counts head h of token t done; the CTA that completes the token writes its cache rows.
__device__ inline void decode_finish_head(const AttnDev& a, const DecodeScratch& d, int t, int p,
                                          int slot, int* s_flag) {
  if (!d.k_cache) return;
  unsigned* const tok = d.done + std::int64_t(gridDim.z) * a.heads + t;
  __syncthreads();  // every thread's reads of this CTA are done
  if (threadIdx.x == 0) {
    const bool last = atomicAdd(tok, 1u) == unsigned(a.heads - 1);
    if (last) *tok = 0u;
    *s_flag = last;
  }
  __syncthreads();
  if (*s_flag) decode_write_cache(a, d, t, p, slot);
}

// NV: float4s per lane (head_dim <= 128 NV). Requires head_dim % 4 == 0 and 16-byte aligned
// rows of q, k, v, the caches and out.
template <int NV>
__global__ void __launch_bounds__(kDecodeThreads)
    attn_decode_kernel(const AttnDev a, const DecodeScratch d) {
  constexpr int R = kDecodeRows, W = kDecodeWarps;
  __shared__ float4 s_acc[W][32 * NV];
  __shared__ float s_m[W], s_l[W];
  __shared__ int s_flag;
  if (!d.early) {
    grid_dependency_wait();  // q, k, v and the caches come from the kernels before
    allow_dependents();      // the output projection may start loading its weights
  }
  // (before the wait with d.early: the batch's indices, as the decode scan reads them)
  const int sp = blockIdx.x, h = blockIdx.y, t = blockIdx.z;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int s = a.token_seq[t];
  const int off = a.offsets[s], len = a.offsets[s + 1] - off, p0 = a.pos0[s], slot = a.slot[s];
  if (len >= a.flash_min_len) return;  // the flash kernel owns this sequence
  const int p = p0 + (t - off);
  const int lo = (a.window_back < 0 || p < a.window_back) ? 0 : p - a.window_back;
  // this token's chunks, spread evenly over the grid's splits (a token with fewer keys than
  // the grid was sized for, as in a recorded graph, still uses all of them)
  const int nch = (p + 1 - lo + kDecodeKeys - 1) / kDecodeKeys;
  const int cpc = (nch + d.splits - 1) / d.splits;  // chunks per CTA
  const int nsp = (nch + cpc - 1) / cpc;            // splits this token uses
  if (sp >= nsp) return;
  const int c_end = min(nch, (sp + 1) * cpc);
  const int hd = a.hd, h4 = hd / 4;
  const int kcol = (h % a.heads_k) * hd, vcol = (h % a.heads_v) * hd;
  const std::int64_t kd = std::int64_t(a.heads_k) * hd, vd = std::int64_t(a.heads_v) * hd;
  const float4 zero = make_float4(0.f, 0.f, 0.f, 0.f);
  // The key and value rows of keys j0 .. j0 + nk - 1 of this warp (zeros past nk): those of
  // the caches (j < p0: Rows::Cache), of this call (j >= p0: Rows::Call), or both.
  enum class Rows { Cache, Call, All };
  float4 k4[R][NV], v4[R][NV];
  auto load = [&](int j0, int nk, Rows which) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int i = warp * R + r, j = j0 + i;
      const bool call = j >= p0;
      if ((which == Rows::Cache && call) || (which == Rows::Call && !call)) continue;
      const float *kr, *vr;
      if (call) {
        const std::int64_t row = off + (j - p0);
        kr = a.k + row * a.ldk + kcol;
        vr = a.v + row * a.ldv + vcol;
      } else {
        const std::int64_t row = std::int64_t(slot) * a.wc + j % a.wc;
        kr = a.k_cache + row * kd + kcol;
        vr = a.v_cache + row * vd + vcol;
      }
#pragma unroll
      for (int n = 0; n < NV; ++n) {
        const int c4 = n * 32 + lane;
        const bool in = i < nk && c4 < h4;
        k4[r][n] = in ? ldg4(kr + 4 * c4) : zero;
        v4[r][n] = in ? ldg4(vr + 4 * c4) : zero;
      }
    }
  };
  const int c0 = sp * cpc;
  if (d.early) {
    const int j0 = lo + c0 * kDecodeKeys, nk = min(kDecodeKeys, p + 1 - j0);
    if (warp * R < nk) load(j0, nk, Rows::Cache);
    grid_dependency_wait();  // q, k, v of this call come from the projection before
    allow_dependents();
    if (warp * R < nk) load(j0, nk, Rows::Call);
  }
  float4 q4[NV];
  const float* qrow = a.q + std::int64_t(t) * a.ldq + std::int64_t(h) * hd;
#pragma unroll
  for (int n = 0; n < NV; ++n) {
    const int c4 = n * 32 + lane;
    q4[n] = c4 < h4 ? ldg4(qrow + 4 * c4) : zero;
  }
  // This warp's running max, exp sum and weighted value sum over the CTA's chunks.
  float mw = -FLT_MAX, lw = 0.f;
  float4 acc[NV];
#pragma unroll
  for (int n = 0; n < NV; ++n) acc[n] = zero;
#pragma unroll 1
  for (int c = c0; c < c_end; ++c) {
    const int j0 = lo + c * kDecodeKeys;
    const int nk = min(kDecodeKeys, p + 1 - j0);
    if (warp * R >= nk) break;  // this warp's rows of the (last) chunk are past the token
    // Every load of a chunk at once: 8 key and 8 value rows per warp (the first chunk's
    // already, with d.early).
    if (!d.early || c != c0) load(j0, nk, Rows::All);
    float sc[R], cm = -FLT_MAX;
#pragma unroll
    for (int r = 0; r < R; ++r) {
      float x = 0.f;
#pragma unroll
      for (int n = 0; n < NV; ++n) x += dot4(q4[n], k4[r][n]);
      sc[r] = warp_sum(x) * a.scale;
      if (warp * R + r < nk) cm = fmaxf(cm, sc[r]);
    }
    const float mn = fmaxf(mw, cm), alpha = __expf(mw - mn);
    mw = mn;
    lw *= alpha;
#pragma unroll
    for (int n = 0; n < NV; ++n) {
      acc[n].x *= alpha;
      acc[n].y *= alpha;
      acc[n].z *= alpha;
      acc[n].w *= alpha;
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const float e = warp * R + r < nk ? __expf(sc[r] - mn) : 0.f;
      lw += e;
#pragma unroll
      for (int n = 0; n < NV; ++n) fma4(acc[n], e, v4[r][n]);
    }
  }
#pragma unroll
  for (int n = 0; n < NV; ++n) s_acc[warp][n * 32 + lane] = acc[n];
  if (lane == 0) {
    s_m[warp] = mw;
    s_l[warp] = lw;
  }
  __syncthreads();
  // The CTA's (max, sum, acc): warps without keys hold sum 0 and weigh nothing.
  float m = s_m[0];
#pragma unroll
  for (int w = 1; w < W; ++w) m = fmaxf(m, s_m[w]);
  float l = 0.f, ew[W];
#pragma unroll
  for (int w = 0; w < W; ++w) {
    ew[w] = s_l[w] > 0.f ? __expf(s_m[w] - m) : 0.f;
    l += ew[w] * s_l[w];
  }
  float4 o = zero;
  if (tid < h4) {
#pragma unroll
    for (int w = 0; w < W; ++w) fma4(o, ew[w], s_acc[w][tid]);
  }
  float* const out = a.out + std::int64_t(t) * a.ldo + std::int64_t(h) * hd;
  if (nsp == 1) {
    const float inv = 1.f / l;
    if (tid < h4)
      reinterpret_cast<float4*>(out)[tid] = make_float4(o.x * inv, o.y * inv, o.z * inv, o.w * inv);
    decode_finish_head(a, d, t, p, slot, &s_flag);
    return;
  }
  const std::int64_t th = std::int64_t(t) * a.heads + h;
  if (tid < h4) reinterpret_cast<float4*>(d.acc + (th * d.splits + sp) * hd)[tid] = o;
  if (tid == 0) d.stat[th * d.splits + sp] = make_float2(m, l);
  __threadfence();  // the partial is visible device-wide before it is counted
  __syncthreads();
  if (tid == 0) {
    const bool last = atomicAdd(d.done + th, 1u) == unsigned(nsp - 1);
    if (last) d.done[th] = 0u;  // at rest again for the next launch
    s_flag = last;
  }
  __syncthreads();
  if (!s_flag) return;
  __threadfence();
  // The last split merges all nsp partials (read through L2: other SMs wrote them). Threads:
  // G groups of splits x 32 NV float4 columns.
  constexpr int G = kDecodeThreads / (32 * NV);
  const int c4 = tid % (32 * NV), g = tid / (32 * NV);
  const float2* st = d.stat + th * d.splits;
  const float4* pa = reinterpret_cast<const float4*>(d.acc + th * d.splits * hd);
  float mx = -FLT_MAX;
  for (int i = tid; i < nsp; i += kDecodeThreads) mx = fmaxf(mx, __ldcg(st + i).x);
  mx = warp_max(mx);
  __syncthreads();  // s_m, s_l and s_acc are reused below
  if (lane == 0) s_m[warp] = mx;
  __syncthreads();
#pragma unroll
  for (int w = 0; w < W; ++w) mx = fmaxf(mx, s_m[w]);
  float4 om = zero;
  float lm = 0.f;
  for (int i = g; i < nsp; i += G) {
    const float2 ml = __ldcg(st + i);
    const float wgt = __expf(ml.x - mx);
    lm += wgt * ml.y;
    if (c4 < h4) fma4(om, wgt, __ldcg(pa + std::int64_t(i) * h4 + c4));
  }
  s_acc[g][c4] = om;
  if (c4 == 0) s_l[g] = lm;
  __syncthreads();
  if (tid < h4) {
    float4 r = zero;
    float lsum = 0.f;
#pragma unroll
    for (int gg = 0; gg < G; ++gg) {
      const float4 x = s_acc[gg][tid];
      r.x += x.x;
      r.y += x.y;
      r.z += x.z;
      r.w += x.w;
      lsum += s_l[gg];
    }
    const float inv = 1.f / lsum;
    reinterpret_cast<float4*>(out)[tid] = make_float4(r.x * inv, r.y * inv, r.z * inv, r.w * inv);
  }
  decode_finish_head(a, d, t, p, slot, &s_flag);
}

}  // namespace rodimus::backend::cuda::detail
