// Sliding-window shared-key attention (SPEC 3) on a CUDA GPU, in raw CUDA and cuBLAS, for
// ops/sliding_window_attention.hpp on Kokkos::Cuda. Only in CUDA translation units.
//
// Two paths, chosen per sequence of a packed batch:
//   long sequences (>= kGemmMinTokens tokens, one shared key head, Hv = H or 1): chunks of
//     kQueryChunk queries as matrix products on cuBLAS. With one key head the queries of all
//     heads stack into one matrix: q rows [Tq, H*hd] are [Tq*H, hd] row-major, so
//       S = scale Q K^T      [Tq*H, L]  one GEMM over the chunk's L keys (window + chunk)
//       P = masked softmax   [Tq*H, L]  one kernel: row (t, h) keeps keys p_t - wb .. p_t
//       O_h = P_h V_h        [Tq, hd]   a strided-batched GEMM over the H heads
//     Both products run on the bf16 tensor cores with every fp32 operand split into two bf16
//     halves, x = hi + lo (hi = bf16(x), lo = bf16(x - hi): ~16 significant bits), and the
//     three significant partial products summed by the GEMM itself along a tripled inner
//     dimension:  A B ~ [A_hi | A_lo | A_hi] [B_hi ; B_hi ; B_lo]  (A_lo B_lo, ~2^-16
//     relative, is dropped), fp32 accumulation. So Q' = [Q_hi | Q_lo | Q_hi] [Tq*H, 3hd],
//     K' = [K_hi | K_hi | K_lo] [L, 3hd], P' = [P_hi | P_lo | P_hi] [Tq*H, 3L'] (written by the
//     softmax kernel) and V' = [V_hi ; V_hi ; V_lo] [3L', Hv*hd], L' = L rounded up to 8.
//   every other token (decode steps, short prompts): split-key flash decoding. One CTA per
//     (token, head, split of kSplitKeys keys) scores its keys (a warp per key row, lanes over
//     head dims, shuffle reduction), takes their softmax statistics and P V in registers, and
//     writes (max, sum, acc[hd]); a second kernel combines the splits of each (token, head).
// Key j of a sequence continuing at pos0 is row offsets + j - pos0 of the call (j >= pos0) or
// row j % Wc of its cache slot.
#pragma once

#include <algorithm>
#include <cfloat>
#include <cstdint>
#include <span>

#include "rodimus/backend/cuda/context.hpp"
#include "rodimus/backend/cuda/split_operands.hpp"
#include "rodimus/backend/exec_space_traits.hpp"

#if RODIMUS_CUDA_KERNELS
#include <cuda_bf16.h>
#endif

namespace rodimus::backend::cuda {

/// Largest head dimension the CUDA attention kernels take (2 dims per thread of 128).
inline constexpr int kAttnMaxHeadDim = 256;

/// Everything the CUDA attention needs; device pointers unless said.
struct WindowAttentionArgs {
  const float* q = nullptr;        // [N, H*hd], row stride ldq
  const float* k = nullptr;        // [N, Hk*hd], row stride ldk
  const float* v = nullptr;        // [N, Hv*hd], row stride ldv
  const float* k_cache = nullptr;  // [S, Wc, Hk*hd] dense
  const float* v_cache = nullptr;  // [S, Wc, Hv*hd] dense
  float* out = nullptr;            // [N, H*hd], row stride ldo
  std::int64_t ldq = 0, ldk = 0, ldv = 0, ldo = 0;
  int heads = 0, heads_k = 0, heads_v = 0, hd = 0, window_back = -1, wc = 0;
  float scale = 1.f;
  const int* offsets = nullptr;            // [B + 1]
  const int* pos0 = nullptr;               // [B]
  const int* slot = nullptr;               // [B]
  const int* token_seq = nullptr;          // [N]
  std::span<const int> h_offsets, h_pos0;  // host copies
  int num_seqs = 0, num_tokens = 0;
};

#if RODIMUS_CUDA_KERNELS
namespace detail {

inline constexpr int kAttnThreads = 128;
inline constexpr int kSplitKeys = 64;       // keys per CTA of the split-key kernel
inline constexpr int kQueryChunk = 256;     // queries per chunk of the matrix-product path
inline constexpr int kGemmMinTokens = 64;   // sequences this long take the matrix-product path
inline constexpr int kGemmMaxKeys = 16384;  // ... when a chunk's key range fits the scratch

struct AttnDev {
  const float *q, *k, *v, *k_cache, *v_cache;
  float* out;
  std::int64_t ldq, ldk, ldv, ldo;
  int heads, heads_k, heads_v, hd, window_back, wc;
  float scale;
  const int *offsets, *pos0, *slot, *token_seq;
  int gemm_min_len;  // tokens of sequences at least this long are done by the GEMM path
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

// grid (splits, H, N), block 128. part: [N, H, splits, hd + 2] = acc[hd], max, sum.
template <int Unused = 0>  // a template: one definition across translation units
__global__ void __launch_bounds__(kAttnThreads)
    attn_split_kernel(AttnDev a, int splits, float* __restrict__ part) {
  __shared__ float qs[kAttnMaxHeadDim];
  __shared__ float ps[kSplitKeys];
  __shared__ float red[kAttnThreads / 32];
  const int sp = blockIdx.x, h = blockIdx.y, t = blockIdx.z;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int s = a.token_seq[t];
  const int len = a.offsets[s + 1] - a.offsets[s];
  if (len >= a.gemm_min_len) return;  // the matrix-product path owns this sequence
  const int hd = a.hd;
  const int p = a.pos0[s] + (t - a.offsets[s]);
  const int lo = (a.window_back < 0 || p - a.window_back < 0) ? 0 : p - a.window_back;
  const int j0 = lo + sp * kSplitKeys;
  const int j1 = min(p + 1, j0 + kSplitKeys);  // keys j0 .. j1-1
  float* pr = part + ((std::int64_t(t) * a.heads + h) * splits + sp) * (hd + 2);
  if (j0 >= j1) {
    for (int c = tid; c < hd; c += kAttnThreads) pr[c] = 0.f;
    if (tid == 0) {
      pr[hd] = -FLT_MAX;
      pr[hd + 1] = 0.f;
    }
    return;
  }
  const int kcol = (h % a.heads_k) * hd, vcol = (h % a.heads_v) * hd;
  for (int c = tid; c < hd; c += kAttnThreads)
    qs[c] = a.q[std::int64_t(t) * a.ldq + std::int64_t(h) * hd + c] * a.scale;
  __syncthreads();
  const int nk = j1 - j0;
  // unrolled so that several key rows' loads are in flight at once (latency, not bandwidth,
  // bounds a decode step's attention)
#pragma unroll 4
  for (int i = warp; i < nk; i += kAttnThreads / 32) {
    const float* kr = key_row(a, s, j0 + i, kcol);
    float d = 0.f;
    for (int c = lane; c < hd; c += 32) d += qs[c] * kr[c];
    d = warp_sum(d);
    if (lane == 0) ps[i] = d;
  }
  __syncthreads();
  float mx = -FLT_MAX;
  for (int i = tid; i < nk; i += kAttnThreads) mx = fmaxf(mx, ps[i]);
  mx = block_reduce<true>(mx, red);
  float sum = 0.f;
  for (int i = tid; i < nk; i += kAttnThreads) {
    const float e = __expf(ps[i] - mx);
    ps[i] = e;
    sum += e;
  }
  sum = block_reduce<false>(sum, red);  // its barriers also publish ps
  float acc0 = 0.f, acc1 = 0.f;
  const int c0 = tid, c1 = tid + kAttnThreads;
#pragma unroll 8
  for (int i = 0; i < nk; ++i) {
    const float* vr = value_row(a, s, j0 + i, vcol);
    const float w = ps[i];
    if (c0 < hd) acc0 += w * vr[c0];
    if (c1 < hd) acc1 += w * vr[c1];
  }
  if (c0 < hd) pr[c0] = acc0;
  if (c1 < hd) pr[c1] = acc1;
  if (tid == 0) {
    pr[hd] = mx;
    pr[hd + 1] = sum;
  }
}

// grid (H, N), block 128: out = sum_sp acc_sp e^(m_sp - M) / sum_sp l_sp e^(m_sp - M).
template <int Unused = 0>  // a template: one definition across translation units
__global__ void __launch_bounds__(kAttnThreads)
    attn_combine_kernel(AttnDev a, int splits, const float* __restrict__ part) {
  const int h = blockIdx.x, t = blockIdx.y;
  const int s = a.token_seq[t];
  if (a.offsets[s + 1] - a.offsets[s] >= a.gemm_min_len) return;
  const int hd = a.hd;
  const float* pr = part + (std::int64_t(t) * a.heads + h) * splits * (hd + 2);
  float m = -FLT_MAX;
  for (int sp = 0; sp < splits; ++sp) m = fmaxf(m, pr[sp * (hd + 2) + hd]);
  float l = 0.f;
  for (int sp = 0; sp < splits; ++sp) {
    const float* q = pr + sp * (hd + 2);
    if (q[hd + 1] > 0.f) l += q[hd + 1] * __expf(q[hd] - m);
  }
  const float inv = 1.f / l;
  for (int c = threadIdx.x; c < hd; c += kAttnThreads) {
    float o = 0.f;
    for (int sp = 0; sp < splits; ++sp) {
      const float* q = pr + sp * (hd + 2);
      if (q[hd + 1] > 0.f) o += q[c] * __expf(q[hd] - m);
    }
    a.out[std::int64_t(t) * a.ldo + std::int64_t(h) * hd + c] = o * inv;
  }
}

// Q' [tq*H, 3hd] = [Q_hi | Q_lo | Q_hi] of scale * q rows c0 .. c0+tq-1 (row t*H + h = head h
// of token t). Grid-stride over tq*H*hd.
template <int Unused = 0>  // a template: one definition across translation units
__global__ void attn_split_q_kernel(AttnDev a, int c0, int tq, __nv_bfloat16* __restrict__ qp) {
  const int hd = a.hd, H = a.heads;
  const std::int64_t n = std::int64_t(tq) * H * hd;
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t row = i / hd;  // t*H + h
    const int c = static_cast<int>(i % hd);
    const int t = static_cast<int>(row / H), h = static_cast<int>(row % H);
    __nv_bfloat16 hi, lo;
    split_halves(a.q[std::int64_t(c0 + t) * a.ldq + std::int64_t(h) * hd + c] * a.scale, hi, lo);
    __nv_bfloat16* r = qp + row * 3 * hd;
    r[c] = hi;
    r[hd + c] = lo;
    r[2 * hd + c] = hi;
  }
}

// Keys k0 .. k0+nk-1 of sequence s (one key head) as K' [nk, 3hd] = [K_hi | K_hi | K_lo], and
// their values as V' [3nkp, vd] = [V_hi ; V_hi ; V_lo] (blocks of nkp rows, rows nk .. nkp-1 of
// each block zero). Grid-stride over nkp * (hd + vd).
template <int Unused = 0>  // a template: one definition across translation units
__global__ void attn_split_kv_kernel(AttnDev a, int s, int k0, int nk, int nkp,
                                     __nv_bfloat16* __restrict__ kp,
                                     __nv_bfloat16* __restrict__ vp) {
  const int hd = a.hd, vd = a.heads_v * a.hd, w = hd + vd;
  const std::int64_t n = std::int64_t(nkp) * w;
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    const int r = static_cast<int>(i / w), c = static_cast<int>(i % w);
    __nv_bfloat16 hi = __float2bfloat16_rn(0.f), lo = hi;
    if (c < hd) {
      if (r >= nk) continue;
      split_halves(key_row(a, s, k0 + r, 0)[c], hi, lo);
      __nv_bfloat16* kr = kp + std::int64_t(r) * 3 * hd;
      kr[c] = hi;
      kr[hd + c] = hi;
      kr[2 * hd + c] = lo;
    } else {
      const int cv = c - hd;
      if (r < nk) split_halves(value_row(a, s, k0 + r, 0)[cv], hi, lo);
      vp[std::int64_t(r) * vd + cv] = hi;
      vp[std::int64_t(nkp + r) * vd + cv] = hi;
      vp[std::int64_t(2 * nkp + r) * vd + cv] = lo;
    }
  }
}

// Masked softmax of the scores of one chunk: row (t, h) of sc [tq*H, nkp] holds the scaled
// scores of query position p_first + t against keys lo .. lo+nk-1; it keeps keys
// max(lo, p - wb) .. p. Writes P' row [P_hi | P_lo | P_hi] (3 blocks of nkp, zeros outside the
// kept keys). grid (tq*H), block 128.
template <int Unused = 0>  // a template: one definition across translation units
__global__ void __launch_bounds__(kAttnThreads)
    attn_softmax_kernel(const float* __restrict__ sc, __nv_bfloat16* __restrict__ pp, int heads,
                        int nkp, int lo, int p_first, int wb) {
  __shared__ float red[kAttnThreads / 32];
  const int row = blockIdx.x;
  const int p = p_first + row / heads;
  const int k_lo = (wb < 0 || p - wb < lo) ? 0 : p - wb - lo;  // first kept column
  const int k_hi = p - lo;                                     // last kept column
  const float* r = sc + std::int64_t(row) * nkp;
  float mx = -FLT_MAX;
  for (int j = k_lo + threadIdx.x; j <= k_hi; j += kAttnThreads) mx = fmaxf(mx, r[j]);
  mx = block_reduce<true>(mx, red);
  float sum = 0.f;
  for (int j = k_lo + threadIdx.x; j <= k_hi; j += kAttnThreads) sum += __expf(r[j] - mx);
  sum = block_reduce<false>(sum, red);
  const float inv = 1.f / sum;
  __nv_bfloat16* o = pp + std::int64_t(row) * 3 * nkp;
  for (int j = threadIdx.x; j < nkp; j += kAttnThreads) {
    __nv_bfloat16 hi = __float2bfloat16_rn(0.f), lo = hi;
    if (j >= k_lo && j <= k_hi) split_halves(__expf(r[j] - mx) * inv, hi, lo);
    o[j] = hi;
    o[nkp + j] = lo;
    o[2 * nkp + j] = hi;
  }
}

inline AttnDev device_args(const WindowAttentionArgs& w, int gemm_min_len) {
  return AttnDev{w.q,       w.k,    w.v,           w.k_cache,   w.v_cache, w.out,
                 w.ldq,     w.ldk,  w.ldv,         w.ldo,       w.heads,   w.heads_k,
                 w.heads_v, w.hd,   w.window_back, w.wc,        w.scale,   w.offsets,
                 w.pos0,    w.slot, w.token_seq,   gemm_min_len};
}

/// The matrix-product path for sequence s (tokens [o0, o1) of the call, first position p0).
inline void attn_gemm_sequence(const WindowAttentionArgs& w, const AttnDev& dev, int s,
                               cudaStream_t stream) {
  auto& ctx = CudaContext::get();
  const int H = w.heads, hd = w.hd, wb = w.window_back;
  const int o0 = w.h_offsets[s], o1 = w.h_offsets[s + 1], p0 = w.h_pos0[s];
  const std::size_t vd = std::size_t(w.heads_v) * hd;
  const float one = 1.f, zero = 0.f;
  const cublasHandle_t handle = ctx.blas_on(stream);
  using bf = __nv_bfloat16;
  for (int c0 = o0; c0 < o1; c0 += kQueryChunk) {
    const int tq = std::min(kQueryChunk, o1 - c0);
    const int pf = p0 + (c0 - o0);                         // first query position
    const int lo = (wb < 0 || pf - wb < 0) ? 0 : pf - wb;  // first key
    const int nk = pf + tq - lo;                           // keys lo .. pf+tq-1
    const int nkp = (nk + 7) / 8 * 8;                      // padded: 16-byte aligned rows
    // operands, split into bf16 halves (one scratch buffer: Q', K', V', then P')
    const std::size_t q_elems = std::size_t(tq) * H * 3 * hd, k_elems = std::size_t(nk) * 3 * hd,
                      v_elems = std::size_t(3) * nkp * vd, p_elems = std::size_t(tq) * H * 3 * nkp;
    auto* qp = static_cast<bf*>(
        ctx.scratch(kScratchAttnKeys, (q_elems + k_elems + v_elems + p_elems) * sizeof(bf) + 64));
    bf* kp = qp + (q_elems + 7) / 8 * 8;
    bf* vp = kp + (k_elems + 7) / 8 * 8;
    bf* pp = vp + v_elems;
    attn_split_q_kernel<><<<grid_for(std::int64_t(q_elems / 3)), 256, 0, stream>>>(dev, c0, tq, qp);
    check_cuda_call(cudaGetLastError(), "attention: split queries");
    attn_split_kv_kernel<>
        <<<grid_for(std::int64_t(nkp) * (hd + std::int64_t(vd))), 256, 0, stream>>>(dev, s, lo, nk,
                                                                                    nkp, kp, vp);
    check_cuda_call(cudaGetLastError(), "attention: split keys and values");
    auto* sc = static_cast<float*>(
        ctx.scratch(kScratchAttnScores, std::size_t(tq) * H * nkp * sizeof(float)));
    // S [tq*H, nk] = Q' K'^T   (column-major: S^T [nk, tq*H] = K' Q'^T, ld nkp)
    check_cublas(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, nk, tq * H, 3 * hd, &one, kp,
                              CUDA_R_16BF, 3 * hd, qp, CUDA_R_16BF, 3 * hd, &zero, sc, CUDA_R_32F,
                              nkp, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "cublasGemmEx (attention scores)");
    attn_softmax_kernel<><<<tq * H, kAttnThreads, 0, stream>>>(sc, pp, H, nkp, lo, pf, wb);
    check_cuda_call(cudaGetLastError(), "attention softmax");
    // O_h [tq, hd] = P'_h [tq, 3nkp] V'_h [3nkp, hd] for every head h (column-major:
    // O_h^T = V'_h^T P'_h^T; rows of head h in P' are h, h + H, ...)
    const long long v_stride = w.heads_v == 1 ? 0 : hd;
    check_cublas(cublasGemmStridedBatchedEx(
                     handle, CUBLAS_OP_N, CUBLAS_OP_N, hd, tq, 3 * nkp, &one, vp, CUDA_R_16BF,
                     static_cast<int>(vd), v_stride, pp, CUDA_R_16BF, 3 * nkp * H, 3LL * nkp, &zero,
                     w.out + std::int64_t(c0) * w.ldo, CUDA_R_32F, static_cast<int>(w.ldo), hd, H,
                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "cublasGemmStridedBatchedEx (attention values)");
  }
}

}  // namespace detail
#endif  // RODIMUS_CUDA_KERNELS

/// Runs the attention of every token of the batch on `stream` and returns true, or returns
/// false (nothing done) when the shapes are outside these kernels (head_dim > 256).
inline bool window_attention([[maybe_unused]] const WindowAttentionArgs& w,
                             [[maybe_unused]] void* stream_ptr) {
#if RODIMUS_CUDA_KERNELS
  if (w.hd <= 0 || w.hd > kAttnMaxHeadDim) return false;
  const auto stream = static_cast<cudaStream_t>(stream_ptr);
  // Keys a token of sequence s sees at most, and whether the matrix-product path takes s.
  auto keys_of = [&](int s) {
    const int p_last = w.h_pos0[s] + (w.h_offsets[s + 1] - w.h_offsets[s]) - 1;
    return w.window_back < 0 ? p_last + 1 : std::min(p_last + 1, w.window_back + 1);
  };
  auto long_seq = [&](int s) {
    return w.h_offsets[s + 1] - w.h_offsets[s] >= detail::kGemmMinTokens;
  };
  // The matrix-product path takes every long sequence, if each one's chunk of keys fits.
  bool use_gemm = w.heads_k == 1 && (w.heads_v == w.heads || w.heads_v == 1) &&
                  w.ldq == std::int64_t(w.heads) * w.hd;
  for (int s = 0; s < w.num_seqs && use_gemm; ++s)
    if (long_seq(s) && keys_of(s) + detail::kQueryChunk > detail::kGemmMaxKeys) use_gemm = false;
  const int gemm_min_len = use_gemm ? detail::kGemmMinTokens : INT32_MAX;
  // The split-key kernel takes the rest.
  int max_keys = 0;
  for (int s = 0; s < w.num_seqs; ++s)
    if (w.h_offsets[s + 1] > w.h_offsets[s] && !(use_gemm && long_seq(s)))
      max_keys = std::max(max_keys, keys_of(s));
  const bool any_split = max_keys > 0;
  const detail::AttnDev dev = detail::device_args(w, gemm_min_len);
  Kokkos::Profiling::pushRegion("rodimus::window_attention.cuda");  // for profilers
  if (any_split) {
    // While a decode step is recorded into a CUDA graph the grid must serve every later
    // position too: size it for the most keys a token can see (splits past a token's keys
    // write empty partials, which the merge skips).
    if (detail::CudaContext::get().graph_mode)
      max_keys =
          w.window_back >= 0 ? std::max(w.window_back + 1, max_keys) : std::max(w.wc, max_keys);
    const int splits = (max_keys + detail::kSplitKeys - 1) / detail::kSplitKeys;
    auto* part = static_cast<float*>(detail::CudaContext::get().scratch(
        detail::kScratchAttnPartials,
        std::size_t(w.num_tokens) * w.heads * splits * (w.hd + 2) * sizeof(float)));
    detail::attn_split_kernel<>
        <<<dim3(splits, w.heads, w.num_tokens), detail::kAttnThreads, 0, stream>>>(dev, splits,
                                                                                   part);
    detail::check_cuda_call(cudaGetLastError(), "attention split-key kernel");
    detail::attn_combine_kernel<>
        <<<dim3(w.heads, w.num_tokens), detail::kAttnThreads, 0, stream>>>(dev, splits, part);
    detail::check_cuda_call(cudaGetLastError(), "attention combine kernel");
  }
  if (use_gemm)
    for (int s = 0; s < w.num_seqs; ++s)
      if (long_seq(s)) detail::attn_gemm_sequence(w, dev, s, stream);
  Kokkos::Profiling::popRegion();
  return true;
#else
  return false;
#endif
}

}  // namespace rodimus::backend::cuda
