// Decode-sized linear layers on a CUDA GPU: y_j[0:N] = x[0:N] W_j^T + b_j for N <=
// kGemvMaxTokens tokens and up to kGemvMaxProjections projections of the same input, bf16 /
// fp16 weights and fp32 activations, one launch, every weight read once for all N tokens. Only
// in CUDA translation units.
//
// Roofline: a decode step reads every weight once, so this is bandwidth work (2 bytes per
// weight, 2N flops). A block of kGemvWarps warps owns RB consecutive rows of one projection;
// its warps interleave over the input dimension (warp w, lane l reads the 16-byte groups
// w * 32 + l, + 256, ...: each row's 4 KiB slices are read contiguously by the whole block),
// S slices' loads of all RB rows in flight before the arithmetic, then a warp-shuffle and
// shared-memory reduction in a fixed order (deterministic, no second pass, no atomics, nothing
// to reset between launches: graph-capturable). x rows (N x in fp32, a few KiB) come through
// L1/L2. The activations stay fp32: the result is the host's (bf16 weights x fp32
// activations, fp32 accumulation).
//
// RB (rows per block) shrinks until there are about two blocks per SM, so that a small
// projection ([64, 4096]) still spreads over the GPU (launch_gemv picks RB and S). Projections
// of one input share the launch (the grid is their blocks end to end): that saves a launch and
// a kernel's ramp-up and drain per projection, about 4-5 us each on the H200 (bench_linear).
//
// A projection may name its own input of the same width (Projection::x): projections of two
// inputs then share a launch too.
//
// Epilogues (projection.hpp) save the launch of the element-wise op after a projection: the
// channel gate's sigmoid product, RoPE of q and k (the block's rows permuted so that both
// halves of a rotated pair land in one block), a decode step's ShortConv with its state
// shift, and SwiGLU's product silu(g) * a (the gate's and the up-projection's rows paired in
// one block: the down-projection then reads the product, not both inputs, and silu is
// evaluated once per feature instead of once per feature in every block of the
// down-projection). Their operands that do not depend on the kernel before (angles, conv weights
// and state) are loaded before the wait, so the epilogue adds no memory round trip to a block's
// tail.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "rodimus/backend/cuda/aligned.hpp"
#include "rodimus/backend/cuda/context.hpp"
#include "rodimus/backend/cuda/projection.hpp"
#include "rodimus/backend/exec_space_traits.hpp"
#include "rodimus/core/dtype.hpp"
#include "rodimus/core/error.hpp"

#if RODIMUS_CUDA_KERNELS
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "rodimus/backend/cuda/dependent_launch.cuh"
#include "rodimus/core/math.hpp"
#endif

namespace rodimus::backend::cuda {

/// The decode GEMV's input as RMSNorm(x) * w (SPEC 5's pre-norm, folded into the projections
/// that read it): every block reads the whole of each input row anyway, so it sums the squares
/// as it loads them, multiplies each input by w, and scales its sums by 1 / sqrt(mean + eps)
/// before the bias: no norm kernel and no normalised copy of x. Inactive while w is null.
struct InputNorm {
  const float* w = nullptr;  ///< [in], 16-byte aligned
  float eps = 0.f;
};

/// Most tokens the GEMV kernel serves (larger batches go to the tensor-core GEMM).
inline constexpr int kGemvMaxTokens = 8;
/// Most projections one GEMV launch serves (gemv() splits longer lists).
inline constexpr int kGemvMaxProjections = 8;
/// Most tokens the GEMV's input norm (InputNorm) serves: each token adds a sum of squares to
/// every thread's registers and a value to the block's reduction.
inline constexpr int kGemvNormInMaxTokens = 2;
/// Widest ShortConv the GEMV's ConvEpilogue takes (its weights and state held in registers).
inline constexpr int kGemvConvMaxWidth = 4;

#if RODIMUS_CUDA_KERNELS
namespace detail {

inline constexpr int kGemvWarps = 8;                // warps per block
inline constexpr int kGemvSlice = 32 * kGemvWarps;  // 16-byte groups one block step reads per row

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

/// The projections of one launch (a kernel parameter): block_end[j] is one past projection j's
/// last block.
template <class W>
struct GemvLaunch {
  Projection<W> p[kGemvMaxProjections];
  int block_end[kGemvMaxProjections];
  int count;
  /// Set: the input is silu(xg) * x (SwiGLU's product, formed as the activations are loaded;
  /// the wide kernel only), xg: [N, in] with row stride ldxg.
  const float* xg = nullptr;
  std::int64_t ldxg = 0;
  /// Set: every block lets the next kernel of the stream start (allow_dependents) once its
  /// first weights are in flight, so a dependent GEMV's loads fill this one's last wave.
  bool trigger = false;
  /// Set (in_norm.w non-null): the input is RMSNorm(x) * in_norm.w (the wide kernel only, at
  /// most kGemvNormInMaxTokens tokens, no projection with its own input).
  InputNorm in_norm;

  /// Whether a projection rotates its output (RopeEpilogue: needs pairs of rows per block) /
  /// has a ShortConv epilogue / forms SwiGLU's product (pairs of rows too): set once by
  /// classify() after the projections are filled in.
  bool rotates = false, convolves = false, glu_out = false;

  void classify() {
    rotates = convolves = glu_out = false;
    for (int j = 0; j < count; ++j) {
      rotates = rotates || p[j].rope.inv_freq != nullptr;
      convolves = convolves || p[j].conv.w != nullptr;
      glu_out = glu_out || p[j].glu_w != nullptr;
    }
  }
  /// Whether blocks must hold whole pairs of rows.
  bool pairs() const { return rotates || glu_out; }
  /// Lays the projections' blocks of `rows` rows end to end; returns the grid size.
  int layout(int rows) {
    int blocks = 0;
    for (int j = 0; j < count; ++j) block_end[j] = blocks += (p[j].rows() + rows - 1) / rows;
    return blocks;
  }
  /// The projection of block `b` and the block's index inside it.
  __device__ int projection_of(int b, int& local) const {
    int j = 0;
    while (j + 1 < count && b >= block_end[j]) ++j;
    local = b - (j ? block_end[j - 1] : 0);
    return j;
  }
};

// acc[r][n] += dot(8 weights of raw[r], the 8 activations of group g of token n); Glu: the
// activations are silu(xg) * x; NI: ss[n] += their squares, then they are multiplied by the
// norm's weights nw (InputNorm)
template <class W, int N, int RB, bool Glu = false, bool NI = false>
__device__ inline void gemv_accumulate(const uint4 (&raw)[RB], const float* __restrict__ x,
                                       std::int64_t ldx, int g, float (&acc)[RB][N],
                                       const float* __restrict__ xg = nullptr,
                                       std::int64_t ldxg = 0,
                                       const float* __restrict__ nw = nullptr,
                                       float* ss = nullptr) {
  float wf[RB][8];
#pragma unroll
  for (int r = 0; r < RB; ++r) widen8<W>(raw[r], wf[r]);
  [[maybe_unused]] float nv[8];
  if constexpr (NI) {
    const float4* np = reinterpret_cast<const float4*>(nw) + 2 * g;
    const float4 a = __ldg(np), c = __ldg(np + 1);
    const float v[8] = {a.x, a.y, a.z, a.w, c.x, c.y, c.z, c.w};
#pragma unroll
    for (int i = 0; i < 8; ++i) nv[i] = v[i];
  }
#pragma unroll
  for (int n = 0; n < N; ++n) {
    const float4* xp = reinterpret_cast<const float4*>(x + n * ldx) + 2 * g;
    const float4 a = __ldg(xp), c = __ldg(xp + 1);
    float xv[8] = {a.x, a.y, a.z, a.w, c.x, c.y, c.z, c.w};
    if constexpr (Glu) {  // the same silu(g) * a as the swiglu kernel
      const float4* gp = reinterpret_cast<const float4*>(xg + n * ldxg) + 2 * g;
      const float4 ga = __ldg(gp), gc = __ldg(gp + 1);
      const float gv[8] = {ga.x, ga.y, ga.z, ga.w, gc.x, gc.y, gc.z, gc.w};
#pragma unroll
      for (int i = 0; i < 8; ++i) xv[i] = rodimus::detail::silu(gv[i]) * xv[i];
    }
    if constexpr (NI) {
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        ss[n] = fmaf(xv[i], xv[i], ss[n]);
        xv[i] *= nv[i];
      }
    }
#pragma unroll
    for (int r = 0; r < RB; ++r)
#pragma unroll
      for (int i = 0; i < 8; ++i) acc[r][n] = fmaf(wf[r][i], xv[i], acc[r][n]);
  }
}

/// The output feature (and weight row) of a block's row `row`: the row itself, except under a
/// RopeEpilogue, where each head's first 2 half rows take the rotated pairs in turn (row 2i is
/// feature i, row 2i + 1 feature i + half), so both halves of a pair land in one block.
template <class W>
__device__ inline int gemv_feature(const Projection<W>& p, int row) {
  if (!p.rope.inv_freq) return row;
  const int j = row % p.rope.head_dim;
  return j < 2 * p.rope.half ? row - j + j / 2 + (j % 2) * p.rope.half : row;
}

/// The weight row of a block's row `row`: gemv_feature's, or of a SwiGLU pair row 2i the
/// up-projection's row i and row 2i + 1 the gate's.
template <class W>
__device__ inline const W* gemv_weight_row(const Projection<W>& p, int row, int in) {
  if (p.glu_w) return (row % 2 ? p.glu_w : p.w) + std::int64_t(row / 2) * in;
  return p.w + std::int64_t(gemv_feature(p, row)) * in;
}

/// Stores y[n, row] = v + b[row] (+ res[n, row]), and the gated product when the projection
/// has a gate.
template <class W>
__device__ inline float gemv_store(const Projection<W>& p, int n, int row, float v) {
  v += p.b ? p.b[row] : 0.f;
  if (p.res) v += p.res[n * p.ldres + row];  // the residual stream's add (h + r)
  p.y[n * p.ldy + row] = v;
  if (p.gate)
    p.gated[n * p.ldgated + row] = rodimus::detail::sigmoid(v) * p.gate[n * p.ldgate + row];
  return v;
}

/// What a wide GEMV kernel does besides y = x W^T + b (a template parameter, so the plain
/// kernel carries no epilogue registers): the SwiGLU input, or the RoPE / ShortConv epilogue of
/// the launch's projections that set one (the others of the launch stay plain).
enum class GemvMode { Plain, Glu, Rope, Conv, GluOut };

/// The operands a thread's epilogue item needs besides its sums, loaded before the wait for the
/// kernel before, which does not write them: a pair's rotation (the positions are uploaded
/// before the step's first kernel), or the conv's weights, bias and state rows (written only
/// by this projection's launch of the previous step). Item i of a block: row r, token n with
/// i = r N + n (Conv), i = (r / 2) N + n for the pair (r, r + 1) (Rope).
struct GemvEpilogueInputs {
  float c = 1.f, sn = 0.f;
  float w[kGemvConvMaxWidth] = {}, st[kGemvConvMaxWidth - 1] = {}, b = 0.f;
};

template <GemvMode M, class W, int N, int RB>
__device__ inline GemvEpilogueInputs gemv_epilogue_inputs(const Projection<W>& p, int row0) {
  GemvEpilogueInputs e;
  const int i = threadIdx.x;
  if constexpr (M == GemvMode::Rope) {
    const RopeEpilogue& q = p.rope;
    const int r = 2 * (i / N), n = i % N, row = row0 + r;
    if (!q.inv_freq || i >= RB / 2 * N || row >= p.out || row % q.head_dim >= 2 * q.half) return e;
    // the generic rope's operations
    const int s = q.token_seq[n];
    const float pos = static_cast<float>(q.pos0[s] + (n - q.offsets[s]));
    const float ang = pos * q.inv_freq[(row % q.head_dim) / 2];
    e.c = cosf(ang);
    e.sn = sinf(ang);
  } else if constexpr (M == GemvMode::Conv) {
    const ConvEpilogue& c = p.conv;
    const int r = i / N, n = i % N, row = row0 + r;
    if (!c.w || i >= RB * N || row >= p.out) return e;
    const float* st = c.state + std::int64_t(c.slot[n]) * (c.k - 1) * p.out + row;
#pragma unroll
    for (int j = 0; j < kGemvConvMaxWidth; ++j) {
      if (j < c.k) e.w[j] = c.w[std::int64_t(row) * c.k + j];
      if (j < c.k - 1) e.st[j] = st[std::int64_t(j) * p.out];
    }
    e.b = c.b[row];
  }
  return e;
}

/// The ShortConv epilogue of item (row, n) with its prefetched operands: the operations of
/// short_conv_step_generic in the same order; y = v is already stored.
template <class W>
__device__ inline void gemv_store_conv(const Projection<W>& p, int n, int row, float v,
                                       const GemvEpilogueInputs& e) {
  const ConvEpilogue& c = p.conv;
  const int km1 = c.k - 1;
  float* st = c.state + std::int64_t(c.slot[n]) * km1 * p.out + row;
  float acc = e.b;
#pragma unroll
  for (int j = 0; j < kGemvConvMaxWidth - 1; ++j) {
    if (j >= km1) break;
    const float next = j + 1 < km1 ? e.st[j + 1] : v;
    acc += e.w[j] * e.st[j];
    st[std::int64_t(j) * p.out] = next;  // shifted by one: the oldest input drops out
  }
#pragma unroll
  for (int j = 0; j < kGemvConvMaxWidth; ++j)
    if (j == km1) acc += e.w[j] * v;
  c.xs[n * c.ldxs + row] = rodimus::detail::silu(acc);
}

/// The epilogue of a block whose projection forms SwiGLU's product: rows r, r + 1 (r even) are
/// feature i = (row0 + r) / 2 of the up-projection a and of the gate g; y[n, i] = silu(g) * a,
/// the swiglu kernel's operations on the sums the plain kernel would store.
template <class W, int N, int RB>
__device__ inline void gemv_store_glu(const Projection<W>& p, int row0,
                                      const float (&part)[kGemvWarps][RB * N]) {
  const int i = threadIdx.x;
  const int r = 2 * (i / N), n = i % N, row = row0 + r;
  if (i >= RB / 2 * N || row >= p.rows()) return;
  const int f = row / 2;
  float sa = 0.f, sg = 0.f;
#pragma unroll
  for (int k = 0; k < kGemvWarps; ++k) {
    sa += part[k][r * N + n];
    sg += part[k][(r + 1) * N + n];
  }
  const float a = sa + (p.b ? p.b[f] : 0.f), g = sg + (p.glu_b ? p.glu_b[f] : 0.f);
  p.y[n * p.ldy + f] = rodimus::detail::silu(g) * a;
}

/// The epilogue of a block whose projection rotates its output: rows r, r + 1 (r even) are the
/// pair (i, i + half) of one head, or two unrotated dims past 2 half; part: the warps' sums.
template <class W, int N, int RB>
__device__ inline void gemv_store_rotated(const Projection<W>& p, int row0,
                                          const float (&part)[kGemvWarps][RB * N],
                                          const GemvEpilogueInputs& e) {
  const int i = threadIdx.x;
  const int r = 2 * (i / N), n = i % N, row = row0 + r;
  if (i >= RB / 2 * N || row >= p.out) return;  // out is even: row + 1 is in range with row
  const int f0 = gemv_feature(p, row), f1 = gemv_feature(p, row + 1);
  float s0 = 0.f, s1 = 0.f;
#pragma unroll
  for (int k = 0; k < kGemvWarps; ++k) {
    s0 += part[k][r * N + n];
    s1 += part[k][(r + 1) * N + n];
  }
  const float x1 = s0 + (p.b ? p.b[f0] : 0.f), x2 = s1 + (p.b ? p.b[f1] : 0.f);
  // unrotated dims have c = 1, sn = 0: the same values
  p.y[n * p.ldy + f0] = x1 * e.c - x2 * e.sn;
  p.y[n * p.ldy + f1] = x2 * e.c + x1 * e.sn;
}

/// InputNorm's scale of the block's sums: the threads' sums of squares ss[n] reduced over the
/// block in a fixed order (every thread gets the same totals), then acc[r][n] *= 1 / sqrt(total /
/// in + eps), the rms_norm kernel's formula.
template <int N, int RB>
__device__ inline void gemv_input_norm_scale(float (&acc)[RB][N], float (&ss)[N], int in,
                                             float eps) {
  __shared__ float red[kGemvWarps][N];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
  for (int n = 0; n < N; ++n) {
    float v = ss[n];
    for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0) red[warp][n] = v;
  }
  __syncthreads();
#pragma unroll
  for (int n = 0; n < N; ++n) {
    float t = 0.f;
#pragma unroll
    for (int k = 0; k < kGemvWarps; ++k) t += red[k][n];
    const float inv = 1.f / sqrtf(t / float(in) + eps);
#pragma unroll
    for (int r = 0; r < RB; ++r) acc[r][n] *= inv;
  }
}

// grid (total blocks of all projections), block 32 * kGemvWarps; S slices' loads in flight.
// M: Glu: the input is silu(launch.xg) * x; Rope / Conv: the epilogues of the projections that
// set one. NI: the input is RMSNorm(x) * launch.in_norm.w.
template <class W, int N, int RB, int S, GemvMode M, bool NI = false>
__global__ void __launch_bounds__(32 * kGemvWarps)
    gemv_kernel(const float* __restrict__ x, std::int64_t ldx,
                const __grid_constant__ GemvLaunch<W> launch, int in) {
  int local = 0;
  const Projection<W>& p = launch.p[launch.projection_of(int(blockIdx.x), local)];
  if (p.x) {  // the projection's own input
    x = p.x;
    ldx = p.ldx;
  }
  const int row0 = local * RB;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int groups = in / 8;  // 8 weights per 16-byte load
  const uint4* wrow[RB];      // the block's weight rows (permuted under a RopeEpilogue)
#pragma unroll
  for (int r = 0; r < RB; ++r)
    wrow[r] = row0 + r < p.rows() ? reinterpret_cast<const uint4*>(gemv_weight_row(p, row0 + r, in))
                                  : nullptr;
  float acc[RB][N] = {};
  [[maybe_unused]] float ss[N] = {};
  uint4 raw[S][RB];
  auto load = [&](int g) {
#pragma unroll
    for (int s = 0; s < S; ++s)
#pragma unroll
      for (int r = 0; r < RB; ++r)
        raw[s][r] = wrow[r] && g + s * kGemvSlice < groups ? __ldg(wrow[r] + g + s * kGemvSlice)
                                                           : make_uint4(0, 0, 0, 0);
  };
  int g = warp * 32 + lane;
  // the first slices' weights are in flight before the wait for the kernel that writes x (a
  // dependent launch, dependent_launch.cuh), so they overlap its tail and this launch
  load(g);
  [[maybe_unused]] const GemvEpilogueInputs epi = gemv_epilogue_inputs<M, W, N, RB>(p, row0);
  if (launch.trigger) allow_dependents();
  grid_dependency_wait();
  while (g < groups) {
#pragma unroll
    for (int s = 0; s < S; ++s)
      if (g + s * kGemvSlice < groups)
        gemv_accumulate<W, N, RB, M == GemvMode::Glu, NI>(
            raw[s], x, ldx, g + s * kGemvSlice, acc, launch.xg, launch.ldxg, launch.in_norm.w, ss);
    g += S * kGemvSlice;
    if (g < groups) load(g);
  }
  if constexpr (NI) gemv_input_norm_scale<N, RB>(acc, ss, in, launch.in_norm.eps);
  __shared__ float part[kGemvWarps][RB * N];
#pragma unroll
  for (int r = 0; r < RB; ++r)
#pragma unroll
    for (int n = 0; n < N; ++n) {
      float v = acc[r][n];
      for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
      if (lane == 0) part[warp][r * N + n] = v;
    }
  __syncthreads();
  if constexpr (M == GemvMode::Rope && RB % 2 == 0) {
    if (p.rope.inv_freq) return gemv_store_rotated<W, N, RB>(p, row0, part, epi);
  }
  if constexpr (M == GemvMode::GluOut && RB % 2 == 0) {
    if (p.glu_w) return gemv_store_glu<W, N, RB>(p, row0, part);
  }
  static_assert(RB * N <= 32 * kGemvWarps, "one epilogue item per thread");
  const int i = threadIdx.x;
  const int r = i / N, n = i % N, row = row0 + r;
  if (i < RB * N && row < p.out) {
    float v = 0.f;
#pragma unroll
    for (int k = 0; k < kGemvWarps; ++k) v += part[k][i];
    v = gemv_store(p, n, row, v);
    if constexpr (M == GemvMode::Conv) {
      if (p.conv.w) gemv_store_conv(p, n, row, v, epi);
    }
  }
}

// Short rows (in <= 256: at most 32 16-byte groups, the channel gate's [E, 32] up-projection):
// TPR threads per row (the power of two covering its groups), one group each, reduced by
// shuffles among those TPR lanes; 256 / TPR rows per block. The wide kernel would leave all but
// `groups` of its 256 threads idle on such rows.
template <class W, int N, int TPR>
__global__ void __launch_bounds__(32 * kGemvWarps)
    gemv_thin_kernel(const float* __restrict__ x, std::int64_t ldx,
                     const __grid_constant__ GemvLaunch<W> launch, int in) {
  constexpr int kRows = 32 * kGemvWarps / TPR;
  int local = 0;
  const Projection<W>& p = launch.p[launch.projection_of(int(blockIdx.x), local)];
  if (p.x) {  // the projection's own input
    x = p.x;
    ldx = p.ldx;
  }
  const int row = local * kRows + int(threadIdx.x) / TPR;
  const int g = int(threadIdx.x) % TPR;
  const bool live = row < p.out && g < in / 8;
  const uint4 raw[1] = {
      live ? __ldg(reinterpret_cast<const uint4*>(p.w + std::int64_t(row) * in) + g)
           : make_uint4(0, 0, 0, 0)};
  if (launch.trigger) allow_dependents();
  grid_dependency_wait();  // x is written by the kernel before (a dependent launch)
  float acc[1][N] = {};
  if (live) gemv_accumulate<W, N, 1>(raw, x, ldx, g, acc);
#pragma unroll
  for (int n = 0; n < N; ++n) {
    float v = acc[0][n];
#pragma unroll
    for (int o = TPR / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (g == 0 && row < p.out) gemv_store(p, n, row, v);
  }
}

template <class W, int N, int TPR>
void launch_gemv_thin(const float* x, std::int64_t ldx, GemvLaunch<W> launch, int in,
                      cudaStream_t stream) {
  const int blocks = launch.layout(32 * kGemvWarps / TPR);
  if (blocks == 0) return;  // no output rows (an empty grid is a launch error)
  launch_dependent(gemv_thin_kernel<W, N, TPR>, dim3(blocks), dim3(32 * kGemvWarps), 0, stream,
                   "gemv kernel (short rows)", x, ldx, launch, in);
}

template <class W, int N, int RB, int S>
void launch_gemv(const float* x, std::int64_t ldx, GemvLaunch<W> launch, int in,
                 cudaStream_t stream) {
  const int blocks = launch.layout(RB);
  if (blocks == 0) return;  // no output rows (an empty grid is a launch error)
  const dim3 grid(blocks), block(32 * kGemvWarps);
  // the kernel of mode M, with the input norm where the launch has one
  auto go = [&]<GemvMode M>(const char* what) {
    if constexpr (N <= kGemvNormInMaxTokens && M != GemvMode::Glu) {
      if (launch.in_norm.w)
        return launch_dependent(gemv_kernel<W, N, RB, S, M, true>, grid, block, 0, stream, what, x,
                                ldx, launch, in);
    }
    launch_dependent(gemv_kernel<W, N, RB, S, M>, grid, block, 0, stream, what, x, ldx, launch, in);
  };
  if (launch.xg)
    go.template operator()<GemvMode::Glu>("gemv kernel (SwiGLU input)");
  else if (launch.rotates)
    go.template operator()<GemvMode::Rope>("gemv kernel (RoPE epilogue)");
  else if (launch.convolves)
    go.template operator()<GemvMode::Conv>("gemv kernel (ShortConv epilogue)");
  else if (launch.glu_out)
    go.template operator()<GemvMode::GluOut>("gemv kernel (SwiGLU epilogue)");
  else
    go.template operator()<GemvMode::Plain>("gemv kernel");
}

// Rows per block and slices in flight: one or two tokens take up to 8 rows (the LM head: fewer,
// larger blocks) and two slices (up to 4 rows); more tokens hold more accumulators in registers
// and take up to 4 rows (CudaContext::gemv_batch_rows: each block reads all N activation rows
// from L2, so fewer rows per block multiply that traffic) and one slice. Rows per block shrink
// until there are about two blocks per SM, but not below 2 where a projection rotates its output (a
// pair per block). With an input norm (every block reads the input and the norm's weight from L2
// as well as its rows of weights) 8 rows down to one block per SM
// (CudaContext::gemv_norm_in_rows8: the mixer's output projection, 2048 rows); without one, down
// to CudaContext::gemv_rows8_blocks_per_sm blocks per SM. At 8 rows an input of more than one
// slice keeps CudaContext::gemv_rows8_slices slices in flight.
template <class W, int N>
void launch_gemv(const float* x, std::int64_t ldx, const GemvLaunch<W>& launch, int in,
                 cudaStream_t stream) {
  const int groups = in / 8;
  const bool pairs = launch.pairs();
  if (groups <= 32 && !launch.xg && !pairs && !launch.convolves &&
      !launch.in_norm.w) {  // short rows
    if (groups <= 1) return launch_gemv_thin<W, N, 1>(x, ldx, launch, in, stream);
    if (groups <= 2) return launch_gemv_thin<W, N, 2>(x, ldx, launch, in, stream);
    if (groups <= 4) return launch_gemv_thin<W, N, 4>(x, ldx, launch, in, stream);
    if (groups <= 8) return launch_gemv_thin<W, N, 8>(x, ldx, launch, in, stream);
    if (groups <= 16) return launch_gemv_thin<W, N, 16>(x, ldx, launch, in, stream);
    return launch_gemv_thin<W, N, 32>(x, ldx, launch, in, stream);
  }
  long rows = 0;
  for (int j = 0; j < launch.count; ++j) rows += launch.p[j].rows();
  auto& ctx = CudaContext::get();  // (sm_count caches the device's count)
  const long sms = ctx.sm_count();
  if constexpr (N <= 2) {
    const long min_blocks =
        launch.in_norm.w && ctx.gemv_norm_in_rows8 ? 1 : std::max(1, ctx.gemv_rows8_blocks_per_sm);
    const bool rows8 = ctx.gemv_token_rows >= 8 && rows / 8 >= min_blocks * sms;
    if (rows / 8 >= 16 * sms || rows8) {
      if (ctx.gemv_rows8_slices >= 2 && groups > kGemvSlice)
        return launch_gemv<W, N, 8, 2>(x, ldx, launch, in, stream);
      return launch_gemv<W, N, 8, 1>(x, ldx, launch, in, stream);
    }
    if (rows / 4 >= 2 * sms) return launch_gemv<W, N, 4, 2>(x, ldx, launch, in, stream);
    if (rows / 2 >= 2 * sms || pairs) return launch_gemv<W, N, 2, 2>(x, ldx, launch, in, stream);
    launch_gemv<W, N, 1, 2>(x, ldx, launch, in, stream);
  } else {
    if (ctx.gemv_batch_rows >= 4 && rows / 4 >= 2 * sms)
      return launch_gemv<W, N, 4, 1>(x, ldx, launch, in, stream);
    if (rows / 2 >= 2 * sms || pairs) return launch_gemv<W, N, 2, 1>(x, ldx, launch, in, stream);
    launch_gemv<W, N, 1, 1>(x, ldx, launch, in, stream);
  }
}

}  // namespace detail
#endif  // RODIMUS_CUDA_KERNELS

/// The decode GEMV's optional fusions, each switched by a CudaContext member:
///   Epilogues       RopeEpilogue / ConvEpilogue in the GEMV (gemv_epilogues)
///   SwigluEpilogue  swiglu_ffn's product in the gate / up GEMV's epilogue (gemv_swiglu_epilogue,
///                   with gemv_epilogues)
///   TwoInputs       linear_two_inputs shares one GEMV launch between its inputs (gemv_two_inputs)
///   NormIn          the pre-norm of a projection's input in its GEMV (InputNorm), the residual
///                   add in the GEMV before it (Projection::res) (gemv_norm_in)
///   GatedNormIn     NormIn for the Rodimus mixer's gated norm too: its gate applied by the
///                   decode scan (ScanOutputGate) (gemv_norm_in and scan_output_gate)
enum class GemvFusion { Epilogues, SwigluEpilogue, TwoInputs, NormIn, GatedNormIn };

/// Whether fusion f is on for the calling thread's CUDA context; false without CUDA kernels.
inline bool gemv_fusion_enabled([[maybe_unused]] GemvFusion f) {
#if RODIMUS_CUDA_KERNELS
  const auto& ctx = detail::CudaContext::get();
  switch (f) {
    case GemvFusion::Epilogues:
      return ctx.gemv_epilogues;
    case GemvFusion::SwigluEpilogue:
      return ctx.gemv_swiglu_epilogue;
    case GemvFusion::TwoInputs:
      return ctx.gemv_two_inputs;
    case GemvFusion::NormIn:
      return ctx.gemv_norm_in;
    case GemvFusion::GatedNormIn:
      return ctx.gemv_norm_in && ctx.scan_output_gate;
  }
#endif
  return false;
}

/// Whether gemv() takes InputNorm n on inputs of `in` features at n_tokens tokens: 1 to
/// kGemvNormInMaxTokens tokens, rows of more than 256 features (the wide kernel), a 16-byte
/// aligned weight vector.
inline bool gemv_input_norm_takes(const InputNorm& n, int n_tokens, int in) {
  return n.w && n_tokens >= 1 && n_tokens <= kGemvNormInMaxTokens && in > 256 && in % 8 == 0 &&
         aligned16(n.w);
}

/// True when gemv() takes these shapes: 1..kGemvMaxTokens tokens, bf16 or fp16 weights, `in` a
/// multiple of 8, 16-byte aligned weight and activation rows.
template <class W>
bool gemv_supports(int n_tokens, int in, const void* x, std::int64_t ldx, const void* w) {
  return !std::is_same_v<W, float> && n_tokens >= 1 && n_tokens <= kGemvMaxTokens && in % 8 == 0 &&
         ldx % 4 == 0 && aligned16(x) && aligned16(w);
}

/// y_j[0:N] = x[0:N] W_j^T + b_j for `count` projections of one input on `stream` (see the file
/// comment): x: [N, in] (row stride ldx), device pointers; call only where gemv_supports() holds
/// for every projection.
/// With xg (the SwiGLU down-projection): the input is silu(xg) * x, xg: [N, in] (row stride
/// ldxg, 16-byte aligned rows), formed as the activations are loaded.
/// With in_norm (where gemv_input_norm_takes; no SwiGLU input, no projection with its own
/// input): the input is RMSNorm(x) * in_norm->w.
template <StorageType W>
void gemv([[maybe_unused]] const float* x, [[maybe_unused]] std::int64_t ldx,
          [[maybe_unused]] const Projection<W>* proj, [[maybe_unused]] int count,
          [[maybe_unused]] int n_tokens, [[maybe_unused]] int in, [[maybe_unused]] void* stream,
          [[maybe_unused]] const float* xg = nullptr, [[maybe_unused]] std::int64_t ldxg = 0,
          [[maybe_unused]] const InputNorm* in_norm = nullptr) {
#if RODIMUS_CUDA_KERNELS
  if constexpr (!std::is_same_v<W, float>) {
    const auto s = static_cast<cudaStream_t>(stream);
    auto& ctx = detail::CudaContext::get();
    for (int j0 = 0; j0 < count; j0 += kGemvMaxProjections) {
      detail::GemvLaunch<W> launch{};
      launch.xg = xg;
      launch.ldxg = ldxg;
      launch.count = std::min(kGemvMaxProjections, count - j0);
      launch.trigger = ctx.gemv_early_trigger;
      for (int j = 0; j < launch.count; ++j) launch.p[j] = proj[j0 + j];
      launch.classify();
      if (int(xg != nullptr) + launch.rotates + launch.convolves + launch.glu_out > 1)
        throw BackendError(
            "gemv: one launch takes one kind of epilogue (SwiGLU input, RoPE, ShortConv or "
            "SwiGLU product)");
      if (in_norm) {
        bool own_input = false;
        for (int j = 0; j < launch.count; ++j) own_input = own_input || launch.p[j].x;
        if (!gemv_input_norm_takes(*in_norm, n_tokens, in) || xg || own_input)
          throw BackendError(
              "gemv: the input norm takes 1 to 2 tokens of more than 256 features (a multiple "
              "of 8), a 16-byte aligned weight vector, no SwiGLU input and one input for all "
              "projections");
        launch.in_norm = *in_norm;
      }
      for (int j = 0; j < launch.count; ++j)
        if (launch.p[j].res && (launch.p[j].rope.inv_freq || launch.p[j].glu_w))
          throw BackendError("gemv: the residual add takes projections without RoPE or SwiGLU");
      for (int j = 0; j < launch.count; ++j)
        if (launch.p[j].x && (xg || launch.p[j].ldx % 4 != 0 || !aligned16(launch.p[j].x)))
          throw BackendError(
              "gemv: a projection's own input needs 16-byte aligned rows and no SwiGLU input");
      for (int j = 0; j < launch.count; ++j)
        if (launch.p[j].conv.w &&
            (launch.p[j].conv.k < 1 || launch.p[j].conv.k > kGemvConvMaxWidth))
          throw BackendError("gemv: the ShortConv epilogue takes widths 1 to 4");
      auto run = [&]<int N>() { detail::launch_gemv<W, N>(x, ldx, launch, in, s); };
      switch (n_tokens) {
        case 1:
          run.template operator()<1>();
          break;
        case 2:
          run.template operator()<2>();
          break;
        case 3:
          run.template operator()<3>();
          break;
        case 4:
          run.template operator()<4>();
          break;
        case 5:
          run.template operator()<5>();
          break;
        case 6:
          run.template operator()<6>();
          break;
        case 7:
          run.template operator()<7>();
          break;
        default:
          run.template operator()<8>();
          break;
      }
    }
  }
#endif
}

}  // namespace rodimus::backend::cuda
