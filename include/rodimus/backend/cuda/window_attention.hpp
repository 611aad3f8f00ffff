// Sliding-window shared-key attention (SPEC 3) on a CUDA GPU, in raw CUDA and cuBLAS, for
// ops/sliding_window_attention.hpp on Kokkos::Cuda. Only in CUDA translation units.
//
// Three paths, chosen per sequence of a packed batch:
//   long sequences (>= kFlashMinTokens tokens, head_dim 32, 64 or 128): the flash kernel of
//     flash_attention.cuh on the tensor cores, fp32-accurate (split bf16 operands). A gather
//     kernel first writes each such sequence's keys and values as bf16 hi / lo rows: the
//     window's earlier keys from the cache (a continued sequence) right before the call's own,
//     so that the flash kernel reads every key at one row per position.
//   every other token (decode steps, short prompts), head_dim a multiple of 4 up to 256 and
//     16-byte aligned rows: the decode kernel of decode_attention.cuh (split-key flash
//     decoding, the splits merged in the same kernel; with one token per sequence it can also
//     write the caches).
//   the same tokens otherwise: split-key flash decoding in two kernels. One CTA per (token,
//     head, split of kSplitKeys keys) scores its keys (a warp per key row, lanes over head dims,
//     shuffle reduction), takes their softmax statistics and P V in registers, and writes
//     (max, sum, acc[hd]); a second kernel combines the splits of each (token, head).
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

#include "rodimus/backend/cuda/attention_rows.cuh"
#include "rodimus/backend/cuda/decode_attention.cuh"
#include "rodimus/backend/cuda/dependent_launch.cuh"
#include "rodimus/backend/cuda/flash_attention.cuh"
#include "rodimus/backend/cuda/launch.cuh"
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
  /// Set only when every sequence has at most one token in this call: the caches (the same
  /// arrays as k_cache / v_cache) into which the decode kernel may write the call's rows.
  float* k_cache_w = nullptr;
  float* v_cache_w = nullptr;
};

/// What window_attention did: the output, and whether it also wrote the caches.
struct WindowAttentionDone {
  bool out = false;
  bool cache = false;
};

#if RODIMUS_CUDA_KERNELS
namespace detail {

inline constexpr int kSplitKeys = 64;       // keys per CTA of the split-key kernel
inline constexpr int kFlashMinTokens = 64;  // sequences this long take the flash kernel

/// Largest head dimension whose value rows the split-key kernel stages in shared memory
/// (kSplitKeys rows of it: 32 KB, inside the default 48 KB of a launch).
inline constexpr int kAttnStageMaxHeadDim = 128;

// grid (splits, H, N), block 128. part: [N, H, splits, hd + 2] = acc[hd], max, sum.
// StageV (hd <= 128, hd % 4 == 0, 16-byte aligned rows): the CTA's value rows are copied into
// shared memory (cp.async, dynamic shared memory of kSplitKeys * hd floats) while the scores
// are computed, so that the value reads, most of a decode step's attention traffic (a value
// head per query head), overlap the key reads instead of following them.
template <bool StageV>
__global__ void __launch_bounds__(kAttnThreads)
    attn_split_kernel(AttnDev a, int splits, float* __restrict__ part) {
  extern __shared__ float4 vstage4[];  // StageV: [nk, hd] value rows
  __shared__ float qs[kAttnMaxHeadDim];
  __shared__ float ps[kSplitKeys];
  __shared__ float red[kAttnThreads / 32];
  __shared__ const float* krow[kSplitKeys];  // this CTA's key and value rows
  __shared__ const float* vrow[kSplitKeys];
  const int sp = blockIdx.x, h = blockIdx.y, t = blockIdx.z;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int s = a.token_seq[t];
  const int len = a.offsets[s + 1] - a.offsets[s];
  if (len >= a.flash_min_len) return;  // the flash kernel owns this sequence
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
  const int nk = j1 - j0;
  for (int c = tid; c < hd; c += kAttnThreads)
    qs[c] = a.q[std::int64_t(t) * a.ldq + std::int64_t(h) * hd + c] * a.scale;
  for (int i = tid; i < nk; i += kAttnThreads) {
    krow[i] = key_row(a, s, j0 + i, kcol);
    vrow[i] = value_row(a, s, j0 + i, vcol);
  }
  __syncthreads();
  if constexpr (StageV) {
    float* const vstage = reinterpret_cast<float*>(vstage4);
    const int h4 = hd / 4;
    for (int f = tid; f < nk * h4; f += kAttnThreads) {
      const int i = f / h4, c4 = f - i * h4;
      cp_async16(vstage + i * hd + 4 * c4, vrow[i] + 4 * c4, true);
    }
    cp_async_commit();
  }
  // Latency, not bandwidth, bounds a decode step's attention: each warp's key rows are read
  // with all their loads in flight (fully unrolled over rows and head-dim strides, predicated).
  constexpr int kRowsPerWarp = kSplitKeys / (kAttnThreads / 32);
  float d[kRowsPerWarp] = {};
#pragma unroll
  for (int cc = 0; cc < kAttnMaxHeadDim / 32; ++cc) {
    const int c = cc * 32 + lane;
    if (c < hd) {
      const float qc = qs[c];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) {
        const int i = warp + r * (kAttnThreads / 32);
        if (i < nk) d[r] += qc * krow[i][c];
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int i = warp + r * (kAttnThreads / 32);
    const float v = warp_sum(d[r]);
    if (lane == 0 && i < nk) ps[i] = v;
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
  if constexpr (StageV) cp_async_wait_all();  // this thread's copies; the barrier below: all
  sum = block_reduce<false>(sum, red);  // its barriers also publish ps (and the staged values)
  float acc0 = 0.f, acc1 = 0.f;
  const int c0 = tid, c1 = tid + kAttnThreads;
  if constexpr (StageV) {
    const float* const vstage = reinterpret_cast<const float*>(vstage4);
    if (c0 < hd) {
#pragma unroll 16
      for (int i = 0; i < nk; ++i) acc0 += ps[i] * vstage[i * hd + c0];
    }
  } else {
#pragma unroll 16
    for (int i = 0; i < nk; ++i) {
      const float* vr = vrow[i];
      const float w = ps[i];
      if (c0 < hd) acc0 += w * vr[c0];
      if (c1 < hd) acc1 += w * vr[c1];
    }
  }
  if (c0 < hd) pr[c0] = acc0;
  if (c1 < hd) pr[c1] = acc1;
  if (tid == 0) {
    pr[hd] = mx;
    pr[hd + 1] = sum;
  }
}

// grid (H, N), block 128: out = sum_sp acc_sp e^(m_sp - M) / sum_sp l_sp e^(m_sp - M).
// The splits' statistics are read in parallel (a thread per split) and their weights staged in
// shared memory, so that the loads of the weighted sum are independent: a decode step's
// combine is a few dependent L2 round trips, not three serial walks over the splits.
template <int Unused = 0>  // a template: one definition across translation units
__global__ void __launch_bounds__(kAttnThreads)
    attn_combine_kernel(AttnDev a, int splits, const float* __restrict__ part) {
  __shared__ float wsp[kAttnThreads];
  __shared__ float red[kAttnThreads / 32];
  const int h = blockIdx.x, t = blockIdx.y, tid = threadIdx.x;
  const int s = a.token_seq[t];
  if (a.offsets[s + 1] - a.offsets[s] >= a.flash_min_len) return;
  const int hd = a.hd, ld = hd + 2;
  const float* pr = part + (std::int64_t(t) * a.heads + h) * splits * ld;
  float m = -FLT_MAX;
  for (int sp = tid; sp < splits; sp += kAttnThreads) m = fmaxf(m, pr[sp * ld + hd]);
  m = block_reduce<true>(m, red);
  float l = 0.f;
  for (int sp = tid; sp < splits; sp += kAttnThreads) {
    const float* q = pr + sp * ld;
    if (q[hd + 1] > 0.f) l += q[hd + 1] * __expf(q[hd] - m);
  }
  l = block_reduce<false>(l, red);
  const float inv = 1.f / l;
  const int c0 = tid, c1 = tid + kAttnThreads;
  float o0 = 0.f, o1 = 0.f;
  for (int base = 0; base < splits; base += kAttnThreads) {
    const int sp = base + tid;
    __syncthreads();  // the previous round's weights are read
    wsp[tid] = sp < splits && pr[sp * ld + hd + 1] > 0.f ? __expf(pr[sp * ld + hd] - m) : 0.f;
    __syncthreads();
    const int nsp = min(kAttnThreads, splits - base);
    const float* q = pr + std::int64_t(base) * ld;
#pragma unroll 8
    for (int i = 0; i < nsp; ++i) {
      const float w = wsp[i];  // empty splits hold zeros and weight 0
      if (c0 < hd) o0 += w * q[i * ld + c0];
      if (c1 < hd) o1 += w * q[i * ld + c1];
    }
  }
  float* out = a.out + std::int64_t(t) * a.ldo + std::int64_t(h) * hd;
  if (c0 < hd) out[c0] = o0 * inv;
  if (c1 < hd) out[c1] = o1 * inv;
}

// The keys and values of every sequence the flash kernel takes, as bf16 hi / lo rows: the key of
// position p of sequence s goes to row offsets[s] + (s + 1) key_pad + p - pos0[s], for p from
// pos0[s] - min(pos0[s], key_pad) (earlier keys, from the cache) to the sequence's last
// position (kl and vl null: the hi rows only). grid (blocks, B), block 256; grid-stride over a
// sequence's rows x (Hk + Hv) hd.
template <int Unused = 0>  // a template: one definition across translation units
__global__ void attn_gather_kernel(AttnDev a, int key_pad, __nv_bfloat16* __restrict__ kh,
                                   __nv_bfloat16* __restrict__ kl, __nv_bfloat16* __restrict__ vh,
                                   __nv_bfloat16* __restrict__ vl) {
  const int s = blockIdx.y;
  const int len = a.offsets[s + 1] - a.offsets[s];
  if (len < a.flash_min_len) return;
  const int p0 = a.pos0[s];
  const int pre = p0 < key_pad ? p0 : key_pad;  // earlier keys this sequence has
  const int kd = a.heads_k * a.hd, vd = a.heads_v * a.hd, w = kd + vd;
  const std::int64_t n = std::int64_t(pre + len) * w;
  const std::int64_t row0 = a.offsets[s] + std::int64_t(s + 1) * key_pad - pre;
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    const int r = static_cast<int>(i / w), c = static_cast<int>(i % w);
    const int j = p0 - pre + r;  // position
    __nv_bfloat16 hi, lo;
    if (c < kd) {
      split_halves(*key_row(a, s, j, c), hi, lo);
      kh[(row0 + r) * kd + c] = hi;
      if (kl) kl[(row0 + r) * kd + c] = lo;
    } else {
      split_halves(*value_row(a, s, j, c - kd), hi, lo);
      vh[(row0 + r) * vd + c - kd] = hi;
      if (vl) vl[(row0 + r) * vd + c - kd] = lo;
    }
  }
}

inline AttnDev device_args(const WindowAttentionArgs& w, int flash_min_len) {
  return AttnDev{w.q,       w.k,    w.v,           w.k_cache,    w.v_cache, w.out,
                 w.ldq,     w.ldk,  w.ldv,         w.ldo,        w.heads,   w.heads_k,
                 w.heads_v, w.hd,   w.window_back, w.wc,         w.scale,   w.offsets,
                 w.pos0,    w.slot, w.token_seq,   flash_min_len};
}

/// The flash path for every sequence of at least kFlashMinTokens tokens: gathers their keys and
/// values (split into bf16 halves, or rounded to bf16 under OperandPrecision::Bf16) into
/// scratch, then runs the flash kernel.
inline void attn_flash(const WindowAttentionArgs& w, const AttnDev& dev, cudaStream_t stream) {
  auto& ctx = CudaContext::get();
  int key_pad = 0, max_len = 0, flash_seqs = 0;
  for (int s = 0; s < w.num_seqs; ++s) {
    const int len = w.h_offsets[s + 1] - w.h_offsets[s], p0 = w.h_pos0[s];
    if (len < kFlashMinTokens) continue;
    ++flash_seqs;
    max_len = std::max(max_len, len);
    key_pad = std::max(key_pad, w.window_back < 0 ? p0 : std::min(p0, w.window_back));
  }
  if (flash_seqs == 0) return;
  const std::int64_t rows = std::int64_t(w.num_tokens) + std::int64_t(w.num_seqs) * key_pad;
  const std::int64_t kd = std::int64_t(w.heads_k) * w.hd, vd = std::int64_t(w.heads_v) * w.hd;
  const std::int64_t k_elems = (rows * kd + 7) / 8 * 8, v_elems = (rows * vd + 7) / 8 * 8;
  // bf16 operands: the hi rows only (the flash kernel then takes no lo halves)
  const AttnPrecision precision =
      ctx.operands == OperandPrecision::Bf16 ? AttnPrecision::Bf16 : AttnPrecision::Split;
  const int halves = precision == AttnPrecision::Split ? 2 : 1;
  auto* kh = static_cast<__nv_bfloat16*>(ctx.scratch(
      kScratchAttnKeys, std::size_t(halves * (k_elems + v_elems)) * sizeof(__nv_bfloat16)));
  __nv_bfloat16* vh = kh + halves * k_elems;
  __nv_bfloat16* kl = halves == 2 ? kh + k_elems : nullptr;
  __nv_bfloat16* vl = halves == 2 ? vh + v_elems : nullptr;
  const std::int64_t per_seq = (std::int64_t(max_len) + key_pad) * (kd + vd);
  const unsigned bx = static_cast<unsigned>(std::min<std::int64_t>((per_seq + 255) / 256, 1024));
  attn_gather_kernel<><<<dim3(bx, static_cast<unsigned>(w.num_seqs)), 256, 0, stream>>>(
      dev, key_pad, kh, kl, vh, vl);
  check_cuda_call(cudaGetLastError(), "attention: gather keys and values");
  FlashAttentionArgs<float, float> f;
  f.q = w.q;
  f.k_hi = kh;
  f.k_lo = kl;
  f.v_hi = vh;
  f.v_lo = vl;
  f.out = w.out;
  f.ldq = w.ldq;
  f.ldk = kd;
  f.ldv = vd;
  f.ldo = w.ldo;
  f.heads = w.heads;
  f.heads_k = w.heads_k;
  f.heads_v = w.heads_v;
  f.head_dim = w.hd;
  f.window_back = w.window_back;
  f.scale = w.scale;
  f.offsets = w.offsets;
  f.pos0 = w.pos0;
  f.key_pad = key_pad;
  f.num_seqs = w.num_seqs;
  f.max_len = max_len;
  f.min_len = kFlashMinTokens;
  flash_attention(f, precision, stream);
}

/// The two-kernel split-key path (any head_dim up to kAttnMaxHeadDim, any alignment).
inline void attn_split(const WindowAttentionArgs& w, const AttnDev& dev, int max_keys,
                       cudaStream_t stream) {
  auto& ctx = CudaContext::get();
  const int splits = (max_keys + kSplitKeys - 1) / kSplitKeys;
  auto* part = static_cast<float*>(ctx.scratch(
      kScratchAttnPartials, std::size_t(w.num_tokens) * w.heads * splits * (w.hd + 2) * sizeof(float)));
  const dim3 grid(splits, w.heads, w.num_tokens);
  // Stage the value rows (16-byte aligned rows of at most 128 floats) only while the grid is
  // about one wave at the staged kernel's occupancy (its 34 KB of shared memory allow ~6
  // CTAs per SM against 16): one decode token. Measured on the H200 (1.6B shape, ctx 1024):
  // 16.8 -> 13.9 us per layer at B = 1, but whole steps 5.9 -> 6.3 ms at B = 16 and 17.4 ->
  // 21.0 ms at B = 128, where the lower occupancy hides less latency.
  const long ctas = long(splits) * w.heads * w.num_tokens;
  const bool stage_v = w.hd <= kAttnStageMaxHeadDim && w.hd % 4 == 0 && w.ldv % 4 == 0 &&
                       aligned16(w.v) && aligned16(w.v_cache) && ctas <= 6L * ctx.sm_count();
  if (stage_v)
    attn_split_kernel<true><<<grid, kAttnThreads, kSplitKeys * w.hd * sizeof(float), stream>>>(
        dev, splits, part);
  else
    attn_split_kernel<false><<<grid, kAttnThreads, 0, stream>>>(dev, splits, part);
  check_cuda_call(cudaGetLastError(), "attention split-key kernel");
  attn_combine_kernel<><<<dim3(w.heads, w.num_tokens), kAttnThreads, 0, stream>>>(dev, splits,
                                                                                  part);
  check_cuda_call(cudaGetLastError(), "attention combine kernel");
}

/// The one-kernel decode path (attn_decode_kernel): head_dim a multiple of 4 up to 256, rows
/// 16-byte aligned. Writes the caches too when w.k_cache_w is set.
inline void attn_decode(const WindowAttentionArgs& w, const AttnDev& dev, int max_keys,
                        cudaStream_t stream) {
  auto& ctx = CudaContext::get();
  DecodeScratch d;
  // Splits per (token, head): one per chunk of 32 keys while the grid stays within about
  // decode_attention_ctas_per_sm CTAs per SM; beyond, fewer splits, each walking several
  // chunks (fewer CTAs, partials and merges per token). The kernel spreads each token's own
  // chunks over the splits, so a grid sized for the longest window (a recorded graph) serves
  // shorter contexts with the same number of CTAs.
  const long chunks = (max_keys + kDecodeKeys - 1) / kDecodeKeys;
  const long pairs = long(w.num_tokens) * w.heads;
  const long target = long(std::max(1, ctx.decode_attention_ctas_per_sm)) * ctx.sm_count();
  d.splits = static_cast<int>(std::clamp((target + pairs - 1) / pairs, 1L, chunks));
  const std::size_t parts = std::size_t(w.num_tokens) * w.heads * d.splits;
  d.acc = static_cast<float*>(ctx.scratch(
      kScratchAttnPartials, parts * (std::size_t(w.hd) * sizeof(float) + sizeof(float2))));
  d.stat = reinterpret_cast<float2*>(d.acc + parts * w.hd);  // hd % 4 == 0: 16-byte aligned
  d.done = static_cast<unsigned*>(ctx.scratch_zeroed(
      kScratchAttnCounters, std::size_t(w.num_tokens) * (w.heads + 1) * sizeof(unsigned), stream));
  d.k_cache = w.k_cache_w;
  d.v_cache = w.v_cache_w;
  // the cache rows loaded before the wait where no kernel that may still run writes them
  d.early = ctx.decode_attention_early_loads && ctx.launches.settled(stream, w.k_cache) &&
            ctx.launches.settled(stream, w.v_cache);
  const dim3 grid(static_cast<unsigned>(d.splits), static_cast<unsigned>(w.heads),
                  static_cast<unsigned>(w.num_tokens));
  // waits, then lets the output projection start; writes the caches after that
  const DependentLaunch how("attention decode kernel", LaunchOrder::WaitsFirst,
                            {d.k_cache, d.v_cache});
  if (w.hd <= 128)
    launch_dependent(attn_decode_kernel<1>, grid, dim3(kDecodeThreads), 0, stream, how, dev, d);
  else
    launch_dependent(attn_decode_kernel<2>, grid, dim3(kDecodeThreads), 0, stream, how, dev, d);
}

}  // namespace detail
#endif  // RODIMUS_CUDA_KERNELS

/// Runs the attention of every token of the batch on `stream`; nothing is done (`out` false)
/// when the shapes are outside these kernels (head_dim > 256).
inline WindowAttentionDone window_attention([[maybe_unused]] const WindowAttentionArgs& w,
                                            [[maybe_unused]] void* stream_ptr) {
  WindowAttentionDone done;
#if RODIMUS_CUDA_KERNELS
  if (w.hd <= 0 || w.hd > kAttnMaxHeadDim) return done;
  const auto stream = static_cast<cudaStream_t>(stream_ptr);
  auto& ctx = detail::CudaContext::get();
  // Keys a token of sequence s sees at most, and whether the flash kernel takes s.
  auto keys_of = [&](int s) {
    const int p_last = w.h_pos0[s] + (w.h_offsets[s + 1] - w.h_offsets[s]) - 1;
    return w.window_back < 0 ? p_last + 1 : std::min(p_last + 1, w.window_back + 1);
  };
  const bool flash_dims = (w.hd == 32 || w.hd == 64 || w.hd == 128) && w.ldq % 2 == 0 &&
                          w.ldo % 2 == 0 && reinterpret_cast<std::uintptr_t>(w.q) % 8 == 0 &&
                          reinterpret_cast<std::uintptr_t>(w.out) % 8 == 0;
  const int flash_min_len = flash_dims ? detail::kFlashMinTokens : INT32_MAX;
  auto long_seq = [&](int s) { return w.h_offsets[s + 1] - w.h_offsets[s] >= flash_min_len; };
  // The split-key kernels take the rest.
  int max_keys = 0;
  bool any_long = false;
  for (int s = 0; s < w.num_seqs; ++s) {
    if (long_seq(s)) {
      any_long = true;
    } else if (w.h_offsets[s + 1] > w.h_offsets[s]) {
      max_keys = std::max(max_keys, keys_of(s));
    }
  }
  const bool any_split = max_keys > 0;
  const detail::AttnDev dev = detail::device_args(w, flash_min_len);
  Kokkos::Profiling::pushRegion("rodimus::window_attention.cuda");  // for profilers
  if (any_split) {
    // While a decode step is recorded into a CUDA graph the grid must serve every later
    // position too: size it for the most keys a token can see (splits past a token's keys
    // return at once, or write empty partials, which the merge skips).
    if (ctx.graph_mode)
      max_keys =
          w.window_back >= 0 ? std::max(w.window_back + 1, max_keys) : std::max(w.wc, max_keys);
    using detail::aligned16;
    const bool rows16 = w.hd % 4 == 0 && w.ldq % 4 == 0 && w.ldk % 4 == 0 && w.ldv % 4 == 0 &&
                        w.ldo % 4 == 0 && aligned16(w.q) && aligned16(w.k) && aligned16(w.v) &&
                        aligned16(w.k_cache) && aligned16(w.v_cache) && aligned16(w.out);
    if (rows16 && w.hd <= detail::kDecodeMaxHeadDim && ctx.one_kernel_decode_attention) {
      detail::attn_decode(w, dev, max_keys, stream);
      done.cache = w.k_cache_w != nullptr;
    } else {
      detail::attn_split(w, dev, max_keys, stream);
    }
  }
  if (any_long) detail::attn_flash(w, dev, stream);
  Kokkos::Profiling::popRegion();
  done.out = true;
#endif
  return done;
}

}  // namespace rodimus::backend::cuda
