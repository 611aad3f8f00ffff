// Flash-style sliding-window attention on the tensor cores, in raw CUDA (no Kokkos): the
// prefill path of window_attention.hpp, and a kernel of its own for the benchmark and tests.
//
// Semantics (SPEC 3, per sequence s, query head h):
//   o_p = sum_{j = lo(p) .. p} softmax_j(scale q_p . k_j) v_j,  lo(p) = max(0, p - window_back)
//   (window_back < 0: lo = 0), key head h % Hk, value head h % Hv (one shared key head in
//   Rodimus+: Hk = 1, which the kernel reads directly, never expanded to H heads).
// Queries are packed sequences: rows offsets[s] .. offsets[s+1]-1 of q and out, the first at
// position pos0[s]. Keys and values are rows of their own arrays: the key of position p of
// sequence s is row offsets[s] + (s + 1) key_pad + p - pos0[s], so that a sequence continuing
// from a cache has up to key_pad earlier keys right before its own (window_attention.hpp
// gathers them there); key_pad = 0 and pos0 = 0 for plain prefill. The caller guarantees those
// rows: every position max(0, pos0[s] - window_back) .. pos0[s] - 1 (all earlier ones when
// window_back < 0), so key_pad >= min(pos0[s], window_back) (>= pos0[s] without a window).
//
// Algorithm (FlashAttention-2 on mma.sync): a CTA owns Mq = 16 W queries of one head (W
// warps, 16 query rows each, q fragments in registers) and walks the key blocks of kBK keys
// that its queries' windows touch, lowest first; the key tile and the value tile each have
// one shared-memory buffer filled by cp.async, the value tile's copy in flight while the
// scores are computed, the next key tile's while the values are applied. Per warp and block:
//   S = q K^T (m16n8k16, fp32 accumulate), scaled by scale log2(e); masked outside the window;
//   running row max m, P = exp2(S - m), the running sum and O rescaled by exp2(m_old - m);
//   O += P V with P from the score registers (the accumulator layout is the A layout).
// A warp skips a block none of its rows sees (the causal diagonal and the window's far edge).
//
// Precision. Split (fp32 inputs: the model's path): q, k, v and P as two bf16 halves each
// (x = hi + lo), every product hi*hi + lo*hi + hi*lo: ~2^-16 relative per operand, close to
// fp32. Bf16: one bf16 product (bf16 inputs, or fp32 inputs rounded once): what
// FlashAttention computes.
//
// Work: 4 HD flops per (query, key, head) pair inside the window (x3 split); bytes from L2
// per CTA: the key and value tiles of its window, (Mq + window) HD 2 (x2 split) each.
// Measured (H200, bench_flash_attention, 16 heads of 128, window 2048, one sequence): T = 4096
// 0.286 ms bf16 / 0.497 ms split, T = 16384 1.370 / 2.406 ms; PyTorch SDPA flash 0.319 / 3.359.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cfloat>
#include <cstdint>
#include <string>
#include <type_traits>

#include "rodimus/backend/cuda/aligned.hpp"
#include "rodimus/backend/cuda/launch.cuh"
#include "rodimus/backend/cuda/mma.cuh"
#include "rodimus/core/error.hpp"

namespace rodimus::backend::cuda {

/// Operand precision of the attention's tensor-core products (see the file comment).
enum class AttnPrecision { Split, Bf16 };

/// The attention's operands; device pointers. Tq (q) is float or __nv_bfloat16; keys and
/// values come as bf16 (with lo halves for AttnPrecision::Split, else null); Tout is float or
/// __nv_bfloat16. Row strides in elements, multiples of 8; pointers 16-byte aligned.
template <class Tq, class Tout>
struct FlashAttentionArgs {
  const Tq* q = nullptr;                                       // [N, H HD]
  const __nv_bfloat16 *k_hi = nullptr, *k_lo = nullptr;        // key rows [*, Hk HD]
  const __nv_bfloat16 *v_hi = nullptr, *v_lo = nullptr;        // value rows [*, Hv HD]
  Tout* out = nullptr;                                         // [N, H HD]
  std::int64_t ldq = 0, ldk = 0, ldv = 0, ldo = 0;
  int heads = 0, heads_k = 0, heads_v = 0, head_dim = 0;
  int window_back = -1;
  float scale = 1.f;
  const int* offsets = nullptr;  // [B + 1] query rows of each sequence
  const int* pos0 = nullptr;     // [B] position of each sequence's first query; null: all 0
  int key_pad = 0;               // earlier keys each sequence may have (see the file comment)
  int num_seqs = 0;
  int max_len = 0;  // the longest sequence (host value: sizes the grid)
  int min_len = 0;  // sequences shorter than this are skipped (another kernel does them)
};

namespace detail {

inline constexpr int kFlashKeys = 64;  // kBK: keys per block

/// Shared-memory layout: one key tile and one value tile, hi (and lo) halves, rows of HD + 8
/// bf16 (16-byte aligned, no bank conflicts for ldmatrix).
template <int HD, bool Split>
struct FlashShape {
  static_assert(HD == 32 || HD == 64 || HD == 128, "flash_attention: head_dim must be 32, 64 or 128");
  static constexpr int kLd = HD + 8;            // bf16 per row
  static constexpr int kLdw = kLd / 2;          // 32-bit words per row
  static constexpr int kTile = kFlashKeys * kLd;  // bf16 per tile
  static constexpr int k_hi = 0;
  static constexpr int k_lo = k_hi + kTile;
  static constexpr int v_hi = k_lo + (Split ? kTile : 0);
  static constexpr int v_lo = v_hi + kTile;
  static constexpr int elems = v_lo + (Split ? kTile : 0);
  static constexpr int bytes = 2 * elems;
};

/// kBK rows of HD bf16 from `src` (row stride ld elements, row r at position k0 + r; rows
/// past `last` zero-filled) into a tile of rows of kLd, by cp.async.
template <int HD, int kThreads>
__device__ __forceinline__ void load_tile(__nv_bfloat16* tile, const __nv_bfloat16* src,
                                          std::int64_t ld, int k0, int last) {
  constexpr int kChunks = HD / 8;  // 16-byte pieces per row
  for (int i = threadIdx.x; i < kFlashKeys * kChunks; i += kThreads) {
    const int r = i / kChunks, c = i % kChunks;
    const bool in = k0 + r <= last;
    const __nv_bfloat16* from = src + (in ? std::int64_t(k0 + r) * ld + 8 * c : 0);
    cp_async16(tile + r * (HD + 8) + 8 * c, from, in);
  }
}

/// The q fragments of one warp (rows r0 .. r0+15 of q, head columns): hi, and lo when Split
/// and q is fp32. Rows past `rows` read as zero.
template <int HD, bool Split, class Tq>
__device__ __forceinline__ void load_q(std::uint32_t (&hi)[HD / 16][4],
                                       std::uint32_t (&lo)[HD / 16][4], const Tq* q,
                                       std::int64_t ldq, int r0, int rows, int lane) {
  const int g = lane / 4, qd = lane % 4;
#pragma unroll
  for (int ks = 0; ks < HD / 16; ++ks)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int row = r0 + g + 8 * (j % 2), col = 16 * ks + 2 * qd + 8 * (j / 2);
      const bool in = row < rows;
      if constexpr (std::is_same_v<Tq, float>) {
        float2 x = make_float2(0.f, 0.f);
        if (in) x = *reinterpret_cast<const float2*>(q + std::int64_t(row) * ldq + col);
        if constexpr (Split) {
          split2(x.x, x.y, hi[ks][j], lo[ks][j]);
        } else {
          hi[ks][j] = bits(__floats2bfloat162_rn(x.x, x.y));
          lo[ks][j] = 0u;
        }
      } else {
        hi[ks][j] = in ? *reinterpret_cast<const std::uint32_t*>(q + std::int64_t(row) * ldq + col)
                       : 0u;
        lo[ks][j] = 0u;
      }
    }
}

// grid (H, query tiles, B), block 32 W. Dynamic shared memory: FlashShape<HD, Split>::bytes.
// Heads vary fastest and the latest tiles (the most keys) come first, so the light tiles of a
// sequence's start fill the last wave.
template <int HD, int W, bool Split, class Tq, class Tout>
__global__ void __launch_bounds__(32 * W)
    flash_attention_kernel(FlashAttentionArgs<Tq, Tout> a) {
  using Shape = FlashShape<HD, Split>;
  constexpr int kThreads = 32 * W, kMq = 16 * W, kNt = kFlashKeys / 8, kOt = HD / 8;
  constexpr bool kSplitQ = Split && std::is_same_v<Tq, float>;
  extern __shared__ __align__(16) unsigned char smem[];
  auto* sm = reinterpret_cast<__nv_bfloat16*>(smem);
  const int s = blockIdx.z, h = blockIdx.x;
  const int tiles = (a.max_len + kMq - 1) / kMq;  // gridDim.y
  const int tile = tiles - 1 - static_cast<int>(blockIdx.y);  // latest (heaviest) first
  const int row0 = a.offsets[s], len = a.offsets[s + 1] - row0;
  const int q0 = tile * kMq;
  if (q0 >= len || len < a.min_len) return;
  const int rows = len - q0 < kMq ? len - q0 : kMq;
  const int p_base = (a.pos0 ? a.pos0[s] : 0);
  const int wb = a.window_back;
  const int p_first = p_base + q0, p_last = p_first + rows - 1;
  const int kmin = (wb < 0 || p_first - wb < 0) ? 0 : p_first - wb;
  // key / value rows of this sequence, indexed by position
  const std::int64_t kbase = std::int64_t(row0) + std::int64_t(s + 1) * a.key_pad - p_base;
  const __nv_bfloat16* kh = a.k_hi + kbase * a.ldk + (h % a.heads_k) * HD;
  const __nv_bfloat16* vh = a.v_hi + kbase * a.ldv + (h % a.heads_v) * HD;
  const __nv_bfloat16* kl = Split ? a.k_lo + kbase * a.ldk + (h % a.heads_k) * HD : nullptr;
  const __nv_bfloat16* vl = Split ? a.v_lo + kbase * a.ldv + (h % a.heads_v) * HD : nullptr;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, qd = lane % 4;
  // this warp's query rows and their positions
  const int wr0 = warp * 16;
  const int wp0 = p_first + wr0, wp1 = wp0 + 15 < p_last ? wp0 + 15 : p_last;
  const bool warp_live = wr0 < rows;
  std::uint32_t qh[HD / 16][4], ql[HD / 16][4];
  load_q<HD, Split>(qh, ql, a.q + std::int64_t(row0 + q0) * a.ldq + std::int64_t(h) * HD, a.ldq,
                    wr0, rows, lane);
  const float sl2 = a.scale * 1.4426950408889634f;  // scores in log2 units
  float o[kOt][4];
#pragma unroll
  for (int i = 0; i < kOt; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float m[2] = {-FLT_MAX, -FLT_MAX}, l[2] = {0.f, 0.f};
  const auto* kw_hi = reinterpret_cast<const std::uint32_t*>(sm + Shape::k_hi);
  const auto* kw_lo = reinterpret_cast<const std::uint32_t*>(sm + Shape::k_lo);
  const auto* vw_hi = reinterpret_cast<const std::uint32_t*>(sm + Shape::v_hi);
  const auto* vw_lo = reinterpret_cast<const std::uint32_t*>(sm + Shape::v_lo);

  load_tile<HD, kThreads>(sm + Shape::k_hi, kh, a.ldk, kmin, p_last);
  if constexpr (Split) load_tile<HD, kThreads>(sm + Shape::k_lo, kl, a.ldk, kmin, p_last);
  cp_async_commit();
  for (int k0 = kmin; k0 <= p_last; k0 += kFlashKeys) {
    cp_async_wait<0>();
    __syncthreads();  // the key tile is in; every warp is done with the last value tile
    load_tile<HD, kThreads>(sm + Shape::v_hi, vh, a.ldv, k0, p_last);
    if constexpr (Split) load_tile<HD, kThreads>(sm + Shape::v_lo, vl, a.ldv, k0, p_last);
    cp_async_commit();
    const int k1 = k0 + kFlashKeys - 1;
    // does any row of this warp see a key of this block?
    const bool active = warp_live && k0 <= wp1 && (wb < 0 || k1 >= wp0 - wb);
    const bool full = k1 <= wp0 && (wb < 0 || k0 >= wp1 - wb);  // every row sees every key
    float sc[kNt][4];
    if (active) {
#pragma unroll
      for (int i = 0; i < kNt; ++i) sc[i][0] = sc[i][1] = sc[i][2] = sc[i][3] = 0.f;
#pragma unroll
      for (int ks = 0; ks < HD / 16; ++ks) {
        const std::uint32_t(&fa)[4] = qh[ks];
        const std::uint32_t(&fl)[4] = ql[ks];
#pragma unroll
        for (int np = 0; np < kNt / 2; ++np) {
          std::uint32_t b[4];
          frag_b2(b, kw_hi, Shape::kLdw, 16 * np, 8 * ks, lane);
          const std::uint32_t b0[2] = {b[0], b[1]}, b1[2] = {b[2], b[3]};
          mma_bf16(sc[2 * np], fa, b0);
          mma_bf16(sc[2 * np + 1], fa, b1);
          if constexpr (Split) {
            if constexpr (kSplitQ) {
              mma_bf16(sc[2 * np], fl, b0);
              mma_bf16(sc[2 * np + 1], fl, b1);
            }
            frag_b2(b, kw_lo, Shape::kLdw, 16 * np, 8 * ks, lane);
            const std::uint32_t c0[2] = {b[0], b[1]}, c1[2] = {b[2], b[3]};
            mma_bf16(sc[2 * np], fa, c0);
            mma_bf16(sc[2 * np + 1], fa, c1);
          }
        }
      }
      // scale, mask, running max
      float mx[2] = {-FLT_MAX, -FLT_MAX};
#pragma unroll
      for (int i = 0; i < kNt; ++i)
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          float x = sc[i][c] * sl2;
          if (!full) {
            const int p = wp0 + g + 8 * (c / 2), j = k0 + 8 * i + 2 * qd + c % 2;
            if (j > p || (wb >= 0 && j < p - wb)) x = -FLT_MAX;
          }
          sc[i][c] = x;
          mx[c / 2] = fmaxf(mx[c / 2], x);
        }
      float alpha[2];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
        const float mn = fmaxf(m[r], mx[r]);
        alpha[r] = exp2_approx(m[r] - mn);  // 1 while no key was seen (both -FLT_MAX)
        m[r] = mn;
        l[r] *= alpha[r];
      }
#pragma unroll
      for (int i = 0; i < kNt; ++i)
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          // masked entries weigh 0 (also while m is still -FLT_MAX: the row saw no key yet)
          const float p = sc[i][c] == -FLT_MAX ? 0.f : exp2_approx(sc[i][c] - m[c / 2]);
          sc[i][c] = p;
          l[c / 2] += p;
        }
#pragma unroll
      for (int i = 0; i < kOt; ++i) {
        o[i][0] *= alpha[0];
        o[i][1] *= alpha[0];
        o[i][2] *= alpha[1];
        o[i][3] *= alpha[1];
      }
    }
    cp_async_wait<0>();
    __syncthreads();  // the value tile is in; every warp is done with the key tile
    if (k0 + kFlashKeys <= p_last) {
      load_tile<HD, kThreads>(sm + Shape::k_hi, kh, a.ldk, k0 + kFlashKeys, p_last);
      if constexpr (Split)
        load_tile<HD, kThreads>(sm + Shape::k_lo, kl, a.ldk, k0 + kFlashKeys, p_last);
    }
    cp_async_commit();
    if (active) {
#pragma unroll
      for (int kk = 0; kk < kFlashKeys / 16; ++kk) {
        std::uint32_t ph[4], pl[4];
        split2(sc[2 * kk][0], sc[2 * kk][1], ph[0], pl[0]);
        split2(sc[2 * kk][2], sc[2 * kk][3], ph[1], pl[1]);
        split2(sc[2 * kk + 1][0], sc[2 * kk + 1][1], ph[2], pl[2]);
        split2(sc[2 * kk + 1][2], sc[2 * kk + 1][3], ph[3], pl[3]);
#pragma unroll
        for (int np = 0; np < kOt / 2; ++np) {
          std::uint32_t b[4];
          frag_b2_trans(b, vw_hi, Shape::kLdw, 16 * kk, 8 * np, lane);
          const std::uint32_t b0[2] = {b[0], b[1]}, b1[2] = {b[2], b[3]};
          mma_bf16(o[2 * np], ph, b0);
          mma_bf16(o[2 * np + 1], ph, b1);
          if constexpr (Split) {
            mma_bf16(o[2 * np], pl, b0);
            mma_bf16(o[2 * np + 1], pl, b1);
            frag_b2_trans(b, vw_lo, Shape::kLdw, 16 * kk, 8 * np, lane);
            const std::uint32_t c0[2] = {b[0], b[1]}, c1[2] = {b[2], b[3]};
            mma_bf16(o[2 * np], ph, c0);
            mma_bf16(o[2 * np + 1], ph, c1);
          }
        }
      }
    }
  }
  cp_async_wait<0>();
  if (!warp_live) return;
  float inv[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    inv[r] = 1.f / l[r];
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = wr0 + g + 8 * r;
    if (row >= rows) continue;
    Tout* orow = a.out + std::int64_t(row0 + q0 + row) * a.ldo + std::int64_t(h) * HD + 2 * qd;
#pragma unroll
    for (int i = 0; i < kOt; ++i) {
      const float x0 = o[i][2 * r] * inv[r], x1 = o[i][2 * r + 1] * inv[r];
      if constexpr (std::is_same_v<Tout, float>) {
        *reinterpret_cast<float2*>(orow + 8 * i) = make_float2(x0, x1);
      } else {
        *reinterpret_cast<__nv_bfloat162*>(orow + 8 * i) = __floats2bfloat162_rn(x0, x1);
      }
    }
  }
}

/// Warps per CTA (16 query rows each) for a head dimension and precision. Measured on the H200
/// at HD = 128 (bench_flash_attention): bf16 8 warps 9-10 % faster than 4; split 4 warps (255
/// registers with the q fragments of both halves: one CTA of 8 warps would not fit twice).
template <int HD, bool Split>
inline constexpr int flash_warps() {
  return Split ? 4 : 8;
}

template <class Tq, class Tout>
void check_flash_arguments(const FlashAttentionArgs<Tq, Tout>& a, AttnPrecision precision) {
  const std::string who = "rodimus::backend::cuda::flash_attention: ";
  if (a.head_dim != 32 && a.head_dim != 64 && a.head_dim != 128)
    throw ArgumentError(who + "head_dim must be 32, 64 or 128 (got " +
                        std::to_string(a.head_dim) + ")");
  if (a.heads <= 0 || a.heads_k <= 0 || a.heads_v <= 0)
    throw ArgumentError(who + "head counts must be positive");
  if (a.num_seqs < 0 || a.max_len < 0 || a.key_pad < 0)
    throw ArgumentError(who + "num_seqs, max_len and key_pad must be >= 0");
  if (!a.q || !a.k_hi || !a.v_hi || !a.out || !a.offsets)
    throw ArgumentError(who + "q, k_hi, v_hi, out and offsets must be given");
  if (precision == AttnPrecision::Split && (!a.k_lo || !a.v_lo))
    throw ArgumentError(who + "the split precision needs k_lo and v_lo");
  if (a.ldq < std::int64_t(a.heads) * a.head_dim || a.ldo < std::int64_t(a.heads) * a.head_dim ||
      a.ldk < std::int64_t(a.heads_k) * a.head_dim || a.ldv < std::int64_t(a.heads_v) * a.head_dim)
    throw ArgumentError(who + "a row stride is shorter than its row");
  if (a.ldk % 8 != 0 || a.ldv % 8 != 0 || a.ldq % 2 != 0 || a.ldo % 2 != 0)
    throw ArgumentError(who + "key / value row strides must be multiples of 8, q / out even");
  const auto misaligned = [](const void* p) { return p && !aligned16(p); };
  if (misaligned(a.k_hi) || misaligned(a.k_lo) || misaligned(a.v_hi) || misaligned(a.v_lo))
    throw ArgumentError(who + "keys and values must be 16-byte aligned");
}

template <int HD, bool Split, int W = flash_warps<HD, Split>(), class Tq, class Tout, class Launch>
void launch_flash(const Launch& launch, const FlashAttentionArgs<Tq, Tout>& a) {
  const int tiles = (a.max_len + 16 * W - 1) / (16 * W);
  if (tiles == 0 || a.num_seqs == 0) return;
  launch(flash_attention_kernel<HD, W, Split, Tq, Tout>,
         dim3(static_cast<unsigned>(a.heads), static_cast<unsigned>(tiles),
              static_cast<unsigned>(a.num_seqs)),
         dim3(32 * W), FlashShape<HD, Split>::bytes, a);
}

/// Dispatches over the head dimension and the precision.
template <class Tq, class Tout, class Launch>
void launch_flash_any(const Launch& launch, const FlashAttentionArgs<Tq, Tout>& a,
                      AttnPrecision precision) {
  const bool split = precision == AttnPrecision::Split;
  auto go = [&]<int HD>() {
    if (split) {
      launch_flash<HD, true>(launch, a);
    } else {
      launch_flash<HD, false>(launch, a);
    }
  };
  if (a.head_dim == 32) go.template operator()<32>();
  if (a.head_dim == 64) go.template operator()<64>();
  if (a.head_dim == 128) go.template operator()<128>();
}

}  // namespace detail

#ifndef RODIMUS_CUDA_HOST_EMULATION
/// Sliding-window attention of every query row on `stream` (see the file comment for the
/// operands' layout). Throws ArgumentError on a bad shape, BackendError on a CUDA error.
/// Asynchronous.
template <class Tq, class Tout>
void flash_attention(const FlashAttentionArgs<Tq, Tout>& a, AttnPrecision precision,
                     cudaStream_t stream) {
  static_assert(std::is_same_v<Tq, float> || std::is_same_v<Tq, __nv_bfloat16>,
                "flash_attention: q is float or __nv_bfloat16");
  static_assert(std::is_same_v<Tout, float> || std::is_same_v<Tout, __nv_bfloat16>,
                "flash_attention: the output is float or __nv_bfloat16");
  detail::check_flash_arguments(a, precision);
  detail::launch_flash_any(detail::CudaLaunch{stream, "rodimus::backend::cuda::flash_attention"},
                           a, precision);
}
#endif  // RODIMUS_CUDA_HOST_EMULATION

}  // namespace rodimus::backend::cuda
