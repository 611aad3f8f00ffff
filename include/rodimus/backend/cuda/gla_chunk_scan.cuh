// Tensor-core chunkwise GLA scan in raw CUDA (no Kokkos): one launch walks every chunk of every
// sequence, the state slice of each CTA stays in registers from the first chunk to the last.
//
// Semantics: SPEC 2.7 / 2.1 and reference::gla_scan_recurrent, per sequence b:
//   S_t = diag(exp(a_t)) S_{t-1} + k_t^T u_t,   o_t = (1/sqrt(n)) q_t S_t
//   q, k: [T, n] (Tin), a: [T, n] fp32 log decay in [-inf, 0], u: [T, E] (Tin),
//   o: [T, E] (Tout), state: [n, E] fp32 (S_{-1} on entry, S_{T-1} on return).
// Sequences are packed: rows offsets[b] .. offsets[b+1]-1 of every [N, ...] array (offsets
// null: B sequences of T tokens each, rows b*T .. b*T+T-1); state is [B, n, E].
//
// Algorithm. The columns of S are independent, so one CTA owns (sequence, TE columns of E),
// TE = 16 * warps, and walks its sequence's chunks of C tokens in order; cp.async copies the
// next chunk's q, k, a and u tile into a staging area while the current one is computed.
// Warp w owns columns 16w .. 16w+15: its slice of S^T lives in m16n8 accumulator registers,
// which are also (split) the B fragments of q S. Per chunk, in log2 units (alpha = a log2 e),
// the chunk is cut into sub-chunks of L = 8 tokens:
//   c_t   = sum of alpha over the sub-chunk J of t, from its start up to t      (<= 0)
//   tot_J = c at the end of sub-chunk J;  G_J = sum_{J'<J} tot_J' (chunk prefix); b_t = G_J + c_t
// and with t in sub-chunk I, s in sub-chunk J:
//   inter  o_t += scale * (q_t exp2(b_t)) S_prev                      qt = q exp2(c_t) exp2(G_I)
//   carry  S_next = diag(exp2(b_C)) S_prev + sum_s (k_s exp2(b_C - b_s))^T u_s
//                                                   kt = k exp2(tot_J - c_s) exp2(sum_{J'>J} tot)
//   intra  o_t += scale * sum_{s<=t} A[t,s] u_s, A[t,s] = sum_i q_t[i] k_s[i] exp2(b_t[i] - b_s[i])
//     J < I:  exp2(b_t - b_s) = exp2(c_t) * exp2(sum_{J<J'<I} tot_J') * exp2(tot_J - c_s)
//             three factors <= 1: tensor cores on (q exp2(c) * m_IJ) and (k exp2(tot - c))
//     J = I:  pairwise in log space, exp2(c_t - c_s) <= 1 (CUDA cores, 8x8 per sub-chunk)
// Every exponent is a sum of alpha <= 0 over its own range, so no exp2 of a positive number
// is ever taken and nothing overflows for any a in [-inf, 0] (SPEC 2.1, strong decay); the
// arguments are sums over at most C tokens, never differences of long cumulative sums.
//
// Precision. q, k, u arrive in bf16 (exact on the tensor cores); every other tensor-core
// operand (decayed q and k, the scores A, the state S) is an fp32 value split into
// hi = bf16(x) and lo = bf16(x - hi), and each product takes hi*hi + hi*lo + lo*hi (fp32
// accumulate): about 2^-16 relative per operand instead of bf16's 2^-8, so the result is
// close to an fp32 scan (a plain bf16 operand would cost ~1.6e-3 relative error per rounding,
// the whole tolerance of the test). With fp32 inputs u is split too.
//
// Roofline, per token (n = 64, E = 4096, C = 64, bf16 in, fp32 out):
//   bytes  q,k: 2*2n, a: 4n, u: 2E, o: 4E (2E for bf16 out)  = 24.8 KB (16.6 KB bf16 out); the
//          state adds 2 * 4nE per sequence. H200 4.8 TB/s (4.3 measured copy): ~175 M tok/s
//          (~260 M tok/s with a bf16 output).
//   flops  2*(2C + 2n)*E = 2.1 MFLOP (the chunk form: q S, A u, k^T u, q k^T) per token, i.e.
//          ~85 flop/byte: under the bf16 ridge (~200), so memory-bound in principle; the split
//          operands multiply the tensor work by ~2.5 (mma.sync, no wgmma) and every CTA of a
//          sequence recomputes the chunk's scores (E/TE times): the diagonal blocks cost
//          C * 8 * n exp2 per chunk per CTA on the MUFU, the second limit after memory.
// Resources (n = 64, C = 64): 218 KB of shared memory at TE = 128 (201 KB at 64), ~180
// registers; at C = 32, TE = 64: 98 KB, two CTAs per SM.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "rodimus/backend/cuda/aligned.hpp"
#include "rodimus/backend/cuda/grid_dependency.cuh"
#include "rodimus/backend/cuda/launch.cuh"
#include "rodimus/backend/cuda/mma.cuh"
#include "rodimus/core/error.hpp"

namespace rodimus::backend::cuda {

/// Precision of the tensor-core operands that are not exact bf16 inputs (decayed q and k, the
/// scores, the state): Split (default) takes each as two bf16 halves, hi + lo, about fp32
/// accuracy for 2-3x the tensor work; Bf16 rounds each to bf16 once (faster, ~3e-3 relative
/// error).
enum class ScanPrecision { Split, Bf16 };

namespace detail {

inline constexpr int kSubChunk = 8;  // L: tokens per sub-chunk (diagonal blocks are L x L)

/// Eight consecutive elements at p (16-byte aligned) as floats, with 16-byte loads; zeros
/// (and no load) when !in.
template <class T>
__device__ __forceinline__ void load8(const T* p, bool in, float (&v)[8]) {
  if constexpr (std::is_same_v<T, float>) {
    float4 x = make_float4(0.f, 0.f, 0.f, 0.f), y = x;
    if (in) {
      x = reinterpret_cast<const float4*>(p)[0];
      y = reinterpret_cast<const float4*>(p)[1];
    }
    v[0] = x.x, v[1] = x.y, v[2] = x.z, v[3] = x.w;
    v[4] = y.x, v[5] = y.y, v[6] = y.z, v[7] = y.w;
  } else {
    uint4 x = make_uint4(0u, 0u, 0u, 0u);
    if (in) x = *reinterpret_cast<const uint4*>(p);
    const std::uint32_t w[4] = {x.x, x.y, x.z, x.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      v[2 * j] = __uint_as_float(w[j] << 16);
      v[2 * j + 1] = __uint_as_float(w[j] & 0xffff0000u);
    }
  }
}

/// Row strides of the bf16 operand tiles in shared memory, shared by every layout below: 8 bf16
/// of padding per row (16-byte aligned rows, no ldmatrix bank conflicts).
template <int N, int C>
struct PaddedRows {
  static constexpr int kBN = N + 8;  // bf16 row stride over i
  static constexpr int kBC = C + 8;  // bf16 row stride over tokens
};

/// Shared-memory layout of the column-independent work of one chunk (steps 1-4: decays, the
/// decayed q and k, the scores); offsets in bytes. kIn: bytes of an input element.
template <int N, int C, int kIn>
struct OperandShape : PaddedRows<N, C> {
  using PaddedRows<N, C>::kBN;
  using PaddedRows<N, C>::kBC;
  static_assert(N == 32 || N == 64 || N == 128, "gla_chunk_scan: n must be 32, 64 or 128");
  static_assert(C == 16 || C == 32 || C == 64, "gla_chunk_scan: chunk must be 16, 32 or 64");
  static_assert(kSubChunk == 8,
                "gla_chunk_scan: the diagonal blocks' lane layout assumes 8 tokens");
  static constexpr int kNS = C / kSubChunk;  // sub-chunks per chunk
  static constexpr int kF = N + 4;           // fp32 row stride [t][i] (16-byte rows, no conflicts)
  static constexpr int kPairs = kNS * (kNS - 1) / 2;

  static constexpr int q_raw = 0;                    // float [C][kF] q
  static constexpr int k_raw = q_raw + 4 * C * kF;   // float [C][kF] k
  static constexpr int csum = k_raw + 4 * C * kF;    // float [C][kF] c_t (log2)
  static constexpr int q_off = csum + 4 * C * kF;    // float [C][kF] q exp2(c_t)
  static constexpr int k_off = q_off + 4 * C * kF;   // float [C][kF] k exp2(tot - c_s)
  static constexpr int qt_hi = k_off + 4 * C * kF;   // bf16 [C][kBN] scale q exp2(b_t)
  static constexpr int qt_lo = qt_hi + 2 * C * kBN;  //
  static constexpr int kt_hi = qt_lo + 2 * C * kBN;  // bf16 [N][kBC] k exp2(b_C - b_s)^T
  static constexpr int kt_lo = kt_hi + 2 * N * kBC;  //
  static constexpr int a_hi = kt_lo + 2 * N * kBC;   // bf16 [C][kBC] scale * A[t][s]
  static constexpr int a_lo = a_hi + 2 * C * kBC;    //
  // float [kNS][N] tot_J; [kNS][N] scale exp2(G_J); [kNS][N] exp2(sum_{J'>J} tot)
  static constexpr int tot = a_lo + 2 * C * kBC;
  static constexpr int fq = tot + 4 * kNS * N;
  static constexpr int fk = fq + 4 * kNS * N;
  static constexpr int decay = fk + 4 * kNS * N;  // float [N] exp2(b_C)
  static constexpr int pm = decay + 4 * N;        // float [kPairs][N] exp2(sum_{J<J'<I})
  // Staging of a chunk's q, k, a, raw as in global memory, filled by cp.async.
  static constexpr int st_q = pm + 4 * (kPairs > 0 ? kPairs : 1) * N;  // Tin [C][N]
  static constexpr int st_k = st_q + kIn * C * N;                      // Tin [C][N]
  static constexpr int st_a = st_k + kIn * C * N;                      // float [C][N]
  static constexpr int end = st_a + 4 * C * N;

  __host__ __device__ static constexpr int pair(int I, int J) { return I * (I - 1) / 2 + J; }
};

/// The fused kernel's layout: the chunk operands, then u^T (bf16 hi / lo) and u's staging.
template <int N, int C, int TE, bool SplitU>
struct ScanShape : OperandShape<N, C, SplitU ? 4 : 2> {
  using Base = OperandShape<N, C, SplitU ? 4 : 2>;
  static_assert(TE == 64 || TE == 128, "gla_chunk_scan: column tile must be 64 or 128");
  static constexpr int kWarps = TE / 16;  // warp w owns columns 16w .. 16w+15 of the tile
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kIn = SplitU ? 4 : 2;
  static constexpr int u_hi = Base::end;                              // bf16 [TE][kBC] u^T
  static constexpr int u_lo = u_hi + 2 * TE * Base::kBC;              // (fp32 inputs only)
  static constexpr int st_u = u_lo + (SplitU ? 2 * TE * Base::kBC : 0);  // Tin [C][TE]
  static constexpr int bytes = st_u + kIn * C * TE;
};

/// The prep kernel's layout (chunk operands only) and its block size.
template <int N, int C, int kIn>
struct PrepShape : OperandShape<N, C, kIn> {
  static constexpr int kWarps = 8;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int bytes = OperandShape<N, C, kIn>::end;
};

/// One chunk's operands in global memory (split schedule), in 32-bit words: dense rows of
/// bf16 pairs, then the chunk decay.
template <int N, int C>
struct ChunkOps {
  static constexpr int qt_hi = 0;                    // [C][N / 2]
  static constexpr int qt_lo = qt_hi + C * N / 2;    //
  static constexpr int kt_hi = qt_lo + C * N / 2;    // [N][C / 2]
  static constexpr int kt_lo = kt_hi + N * C / 2;    //
  static constexpr int a_hi = kt_lo + N * C / 2;     // [C][C / 2]
  static constexpr int a_lo = a_hi + C * C / 2;      //
  static constexpr int decay = a_lo + C * C / 2;     // float [N]
  static constexpr int words = decay + N;            // a multiple of 4 (16-byte chunks)
  static_assert(words % 4 == 0);
};

/// The column kernel's layout (split schedule): two stages of (chunk operands, u tile) filled
/// by cp.async while the other is computed, then u^T. The state pass (StateOnly) needs no qt
/// and no A, ScanPrecision::Bf16 no lo halves (their offsets then alias the hi ones, never
/// read): small enough for two CTAs per multiprocessor.
template <int N, int C, int TE, bool SplitU, bool StateOnly, ScanPrecision P>
struct ColumnShape : PaddedRows<N, C> {
  using PaddedRows<N, C>::kBN;
  using PaddedRows<N, C>::kBC;
  static_assert(TE == 64 || TE == 128, "gla_chunk_scan: column tile must be 64 or 128");
  static constexpr int kWarps = TE / 16;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kIn = SplitU ? 4 : 2;
  static constexpr bool kLo = P == ScanPrecision::Split;
  static constexpr int kQA = StateOnly ? 0 : 1;
  static constexpr int qt_hi = 0;                                  // bf16 [C][kBN]
  static constexpr int qt_lo = qt_hi + (kLo ? kQA * 2 * C * kBN : 0);
  static constexpr int kt_hi = qt_lo + kQA * 2 * C * kBN;          // bf16 [N][kBC]
  static constexpr int kt_lo = kt_hi + (kLo ? 2 * N * kBC : 0);
  static constexpr int a_hi = kt_lo + 2 * N * kBC;                 // bf16 [C][kBC]
  static constexpr int a_lo = a_hi + (kLo ? kQA * 2 * C * kBC : 0);
  static constexpr int decay = a_lo + kQA * 2 * C * kBC;           // float [N]
  static constexpr int st_u = decay + 4 * N;                       // Tin [C][TE]
  static constexpr int stage = st_u + kIn * C * TE;                // bytes of one stage
  static constexpr int u_hi = 2 * stage;                           // bf16 [TE][kBC] u^T
  static constexpr int u_lo = u_hi + (SplitU ? 2 * TE * kBC : 0);  // (fp32 inputs only)
  static constexpr int bytes = u_lo + 2 * TE * kBC;
  // CTAs per multiprocessor to ask of the register allocator (255 / 128 registers a thread):
  // two when two fit the 228 KiB of a Hopper multiprocessor (1 KiB reserved per CTA) and the
  // state slice leaves room (n = 128 alone takes 64 registers: it would spill)
  static constexpr int kMinBlocks =
      2 * (bytes + 1024) <= 228 * 1024 && (StateOnly || N <= 64) ? 2 : 1;
};

/// Word (e, w) of u^T (w = token pair): rows of (C + 8) / 2 words, w XOR-swizzled by e / 8 so
/// that the transposing stores spread over the banks; the fragment loads, whose 8 rows share
/// e / 8, stay conflict-free.
template <int C>
__device__ __forceinline__ int uidx(int e, int w) {
  return e * ((C + 8) / 2) + (w ^ (4 * ((e / 8) & (C / 8 - 1))));
}

/// cp.async copies of the q, k, a rows of the chunk at c (rows past the sequence zero-filled,
/// their source address clamped to the first row of the sequence). Not committed.
template <int N, int C, int NT, class Tin>
__device__ __forceinline__ void stage_qka(Tin* sq, Tin* sk, float* sa, const Tin* q, const Tin* k,
                                          const float* a, std::int64_t row0, int c, int len_seq,
                                          int tid) {
  constexpr int kV = 16 / static_cast<int>(sizeof(Tin));  // elements per 16 bytes
  const int lenc = len_seq - c < C ? len_seq - c : C;
  for (int idx = tid; idx < C * N / kV; idx += NT) {
    const int t = idx / (N / kV), i = kV * (idx % (N / kV));
    const bool in = t < lenc;
    const std::int64_t gi = (row0 + (in ? c + t : 0)) * N + i;
    cp_async16(sq + t * N + i, q + gi, in);
    cp_async16(sk + t * N + i, k + gi, in);
  }
  for (int idx = tid; idx < C * N / 4; idx += NT) {
    const int t = idx / (N / 4), i = 4 * (idx % (N / 4));
    const bool in = t < lenc;
    cp_async16(sa + t * N + i, a + (row0 + (in ? c + t : 0)) * N + i, in);
  }
}

/// cp.async copies of the chunk's u tile [C][TE] at columns e0 (rows past the end zero-filled).
template <int C, int TE, int NT, class Tin>
__device__ __forceinline__ void stage_u(Tin* su, const Tin* u, std::int64_t row0, int c,
                                        int len_seq, int E, int e0, int tid) {
  constexpr int kV = 16 / static_cast<int>(sizeof(Tin));
  const int lenc = len_seq - c < C ? len_seq - c : C;
  for (int idx = tid; idx < C * TE / kV; idx += NT) {
    const int t = idx / (TE / kV), e = kV * (idx % (TE / kV));
    const bool in = t < lenc;
    cp_async16(su + t * TE + e, u + (row0 + (in ? c + t : 0)) * E + e0 + e, in);
  }
}

/// The staged u tile as u^T in bf16 pairs along t (word (e, t / 2) at uidx), hi and, for fp32
/// inputs, lo.
template <int C, int TE, int NT, class Tin>
__device__ __forceinline__ void transpose_u(const Tin* su, std::uint32_t* u_hi,
                                            [[maybe_unused]] std::uint32_t* u_lo, int tid) {
  constexpr bool kSplitU = !std::is_same_v<Tin, __nv_bfloat16>;
  for (int idx = tid; idx < (C / 2) * (TE / 8); idx += NT) {
    const int tp = idx / (TE / 8), ec = 8 * (idx % (TE / 8));
    float u0[8], u1[8];
    load8(su + (2 * tp) * TE + ec, true, u0);
    load8(su + (2 * tp + 1) * TE + ec, true, u1);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      std::uint32_t hi, lo;
      split2(u0[j], u1[j], hi, lo);
      u_hi[uidx<C>(ec + j, tp)] = hi;
      if constexpr (kSplitU) u_lo[uidx<C>(ec + j, tp)] = lo;
    }
  }
}

/// Step 1 for q, k, a: the staged chunk (rows past the end are zero; alpha = 0 keeps the
/// chunk's last decay) into the working layouts q, k, alpha = a log2(e) as fp32 [t][i].
template <int N, int C, int NT, class Tin>
__device__ __forceinline__ void convert_qka(unsigned char* smem, int tid) {
  using Sh = OperandShape<N, C, static_cast<int>(sizeof(Tin))>;
  constexpr int F = Sh::kF;
  constexpr float kLog2e = 1.4426950408889634f;
  const Tin* sq = reinterpret_cast<const Tin*>(smem + Sh::st_q);
  const Tin* sk = reinterpret_cast<const Tin*>(smem + Sh::st_k);
  const float* sa = reinterpret_cast<const float*>(smem + Sh::st_a);
  float* qs = reinterpret_cast<float*>(smem + Sh::q_raw);
  float* ks = reinterpret_cast<float*>(smem + Sh::k_raw);
  float* cs = reinterpret_cast<float*>(smem + Sh::csum);
  for (int idx = tid; idx < C * N / 8; idx += NT) {
    const int t = idx / (N / 8), i = 8 * (idx % (N / 8));
    float qv[8], kv[8];
    load8(sq + t * N + i, true, qv);
    load8(sk + t * N + i, true, kv);
#pragma unroll
    for (int j = 0; j < 8; j += 4) {
      *reinterpret_cast<float4*>(qs + t * F + i + j) =
          make_float4(qv[j], qv[j + 1], qv[j + 2], qv[j + 3]);
      *reinterpret_cast<float4*>(ks + t * F + i + j) =
          make_float4(kv[j], kv[j + 1], kv[j + 2], kv[j + 3]);
    }
  }
  for (int idx = tid; idx < C * N / 4; idx += NT) {
    const int t = idx / (N / 4), i = 4 * (idx % (N / 4));
    const float4 x = *reinterpret_cast<const float4*>(sa + t * N + i);
    *reinterpret_cast<float4*>(cs + t * F + i) =
        make_float4(x.x * kLog2e, x.y * kLog2e, x.z * kLog2e, x.w * kLog2e);
  }
}

/// Steps 2-4 of one chunk (after convert_qka and a barrier): the decays, the decayed operands
/// qt and kt, the masked scores A and the chunk decay, all in shared memory; ends with a
/// barrier. Every thread of the block calls it.
template <int N, int C, int NT, class Tin, ScanPrecision P>
__device__ __forceinline__ void chunk_operands(unsigned char* smem, int len, float scale, int tid) {
  using Sh = OperandShape<N, C, static_cast<int>(sizeof(Tin))>;
  constexpr bool kSplit = P == ScanPrecision::Split;  // the lo terms
  constexpr int NS = Sh::kNS;
  constexpr int F = Sh::kF;
  constexpr int BN2 = Sh::kBN / 2;  // 32-bit words per bf16 row over i
  constexpr int BC2 = Sh::kBC / 2;  // 32-bit words per bf16 row over tokens
  constexpr int kWarps = NT / 32;
  const int warp = tid / 32;
  const int lane = tid % 32;
  const int g = lane / 4;   // fragment row group
  const int qd = lane % 4;  // fragment column pair
  float* qs = reinterpret_cast<float*>(smem + Sh::q_raw);
  float* ks = reinterpret_cast<float*>(smem + Sh::k_raw);
  float* cs = reinterpret_cast<float*>(smem + Sh::csum);
  float* qo = reinterpret_cast<float*>(smem + Sh::q_off);
  float* ko = reinterpret_cast<float*>(smem + Sh::k_off);
  std::uint32_t* qt_hi = reinterpret_cast<std::uint32_t*>(smem + Sh::qt_hi);
  std::uint32_t* qt_lo = reinterpret_cast<std::uint32_t*>(smem + Sh::qt_lo);
  std::uint32_t* kt_hi = reinterpret_cast<std::uint32_t*>(smem + Sh::kt_hi);
  std::uint32_t* kt_lo = reinterpret_cast<std::uint32_t*>(smem + Sh::kt_lo);
  std::uint32_t* a_hi = reinterpret_cast<std::uint32_t*>(smem + Sh::a_hi);
  std::uint32_t* a_lo = reinterpret_cast<std::uint32_t*>(smem + Sh::a_lo);
  float* tot = reinterpret_cast<float*>(smem + Sh::tot);
  float* fq = reinterpret_cast<float*>(smem + Sh::fq);
  float* fk = reinterpret_cast<float*>(smem + Sh::fk);
  float* decay = reinterpret_cast<float*>(smem + Sh::decay);
  float* pm = reinterpret_cast<float*>(smem + Sh::pm);

  // 2. Cumulative log decay inside each sub-chunk, per slot: c_t and tot_J.
  for (int idx = tid; idx < NS * N; idx += NT) {
    const int J = idx / N;
    const int i = idx % N;
    float run = 0.f;
#pragma unroll
    for (int r = 0; r < kSubChunk; ++r) {
      float* p = cs + (J * kSubChunk + r) * F + i;
      run += *p;
      *p = run;
    }
    tot[J * N + i] = run;
  }
  __syncthreads();

  // 3. Per (sub-chunk, slot) factors: fq = scale exp2(G_J), fk = exp2(sum_{J'>J} tot),
  //    pm(I, J) = exp2(sum_{J<J'<I} tot), decay = exp2(sum_J tot). Every exponent is a sum
  //    of non-positive terms over its own range.
  for (int idx = tid; idx < NS * N; idx += NT) {
    const int J = idx / N;
    const int i = idx % N;
    float pre = 0.f, suf = 0.f;
    for (int j = 0; j < J; ++j) pre += tot[j * N + i];
    for (int j = J + 1; j < NS; ++j) suf += tot[j * N + i];
    fq[J * N + i] = scale * exp2_approx(pre);
    fk[J * N + i] = exp2_approx(suf);
    float mid = 0.f;
    for (int I = J + 1; I < NS; ++I) {
      pm[Sh::pair(I, J) * N + i] = exp2_approx(mid);
      mid += tot[I * N + i];
    }
    if (J == 0) decay[i] = exp2_approx(pre + tot[i] + suf);
  }
  __syncthreads();
  // Decayed operands, per (t, i) with t in sub-chunk J:
  //   qo = q exp2(c_t), ko = k exp2(tot_J - c_t)        (fp32, for the off-diagonal scores)
  //   qt = qo fq_J (bf16 hi/lo, [t][i]), kt = ko fk_J   (bf16 hi/lo, transposed [i][t])
  // A task is 2 tokens x 2 slots (one 32-bit word of qt per token, of kt per slot); a warp
  // takes 8 token pairs x 4 slot pairs, which keeps the transposed kt stores conflict-free.
  for (int idx = tid; idx < C * N / 4; idx += NT) {
    const int grp = idx / 32, l = idx % 32;
    const int tp = 8 * (grp % (C / 16)) + l % 8;  // token pair
    const int ip = 4 * (grp / (C / 16)) + l / 8;  // slot pair
    const int J = (2 * tp) / kSubChunk;
    float qt[2][2], kt[2][2];
#pragma unroll
    for (int dt = 0; dt < 2; ++dt) {
      const int t = 2 * tp + dt;
      const float2 c = *reinterpret_cast<const float2*>(cs + t * F + 2 * ip);
      const float2 qr = *reinterpret_cast<const float2*>(qs + t * F + 2 * ip);
      const float2 kr = *reinterpret_cast<const float2*>(ks + t * F + 2 * ip);
      const float2 tj = *reinterpret_cast<const float2*>(tot + J * N + 2 * ip);
      const float2 fqj = *reinterpret_cast<const float2*>(fq + J * N + 2 * ip);
      const float2 fkj = *reinterpret_cast<const float2*>(fk + J * N + 2 * ip);
      const float2 qv = make_float2(qr.x * exp2_approx(c.x), qr.y * exp2_approx(c.y));
      const float2 kv =
          make_float2(kr.x * exp2_approx(tj.x - c.x), kr.y * exp2_approx(tj.y - c.y));
      *reinterpret_cast<float2*>(qo + t * F + 2 * ip) = qv;
      *reinterpret_cast<float2*>(ko + t * F + 2 * ip) = kv;
      qt[dt][0] = qv.x * fqj.x;
      qt[dt][1] = qv.y * fqj.y;
      kt[dt][0] = kv.x * fkj.x;
      kt[dt][1] = kv.y * fkj.y;
    }
#pragma unroll
    for (int d = 0; d < 2; ++d) {
      split2(qt[d][0], qt[d][1], qt_hi[(2 * tp + d) * BN2 + ip], qt_lo[(2 * tp + d) * BN2 + ip]);
      split2(kt[0][d], kt[1][d], kt_hi[(2 * ip + d) * BC2 + tp], kt_lo[(2 * ip + d) * BC2 + tp]);
    }
  }
  __syncthreads();

  // 4a. Off-diagonal score tiles (m-tile mt of 16 rows, sub-chunk J <= 2 mt of 8 columns) on
  //     tensor cores; rows of sub-chunks I <= J are left to 4b.
  for (int tile = warp; tile < (C / 16) * (C / 16); tile += kWarps) {
    int mt = 0;
    while ((mt + 1) * (mt + 1) <= tile) ++mt;  // tiles of m-tile mt: mt^2 .. mt^2 + 2 mt
    if (16 * mt >= len) continue;              // rows past the end are never read
    const int J = tile - mt * mt;
    float acc[4] = {0.f, 0.f, 0.f, 0.f}, acc2[4] = {0.f, 0.f, 0.f, 0.f};
    const int t_lo = 16 * mt + g, t_hi = t_lo + 8;
    const int I_lo = t_lo / kSubChunk, I_hi = t_hi / kSubChunk;
    const float* pm_lo = I_lo > J ? pm + Sh::pair(I_lo, J) * N : nullptr;
    const float* pm_hi = I_hi > J ? pm + Sh::pair(I_hi, J) * N : nullptr;
    const int s = kSubChunk * J + g;  // B column
#pragma unroll
    for (int kk = 0; kk < N / 16; ++kk) {
      const int i0 = 16 * kk + 2 * qd;
      std::uint32_t ah[4], al[4], bh[2], bl[2];
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int t = (r % 2) ? t_hi : t_lo;
        const float* pmr = (r % 2) ? pm_hi : pm_lo;
        const int i = i0 + 8 * (r / 2);
        const float x0 = pmr ? qo[t * F + i] * pmr[i] : 0.f;
        const float x1 = pmr ? qo[t * F + i + 1] * pmr[i + 1] : 0.f;
        split2(x0, x1, ah[r], al[r]);
      }
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int i = i0 + 8 * r;
        split2(ko[s * F + i], ko[s * F + i + 1], bh[r], bl[r]);
      }
      mma_bf16(acc, ah, bh);
      if constexpr (kSplit) {
        mma_bf16(acc2, ah, bl);
        mma_bf16(acc2, al, bh);
      }
    }
#pragma unroll
    for (int c = 0; c < 4; ++c) acc[c] += acc2[c];
    // acc: (t_lo, s0), (t_lo, s0 + 1), (t_hi, s0), (t_hi, s0 + 1), s0 = 8 J + 2 qd
    const int sw = (kSubChunk * J + 2 * qd) / 2;
    if (pm_lo)
      split2(scale * acc[0], scale * acc[1], a_hi[t_lo * BC2 + sw], a_lo[t_lo * BC2 + sw]);
    if (pm_hi)
      split2(scale * acc[2], scale * acc[3], a_hi[t_hi * BC2 + sw], a_lo[t_hi * BC2 + sw]);
  }

  // 4b. Diagonal blocks, pairwise in log space: lane (r, part) sums slots i = 16 j + 4 part
  //     .. +3 of row t = 8 J + r against the 8 tokens of sub-chunk J, then 4 lanes reduce.
  for (int J = warp; J < NS; J += kWarps) {
    if (kSubChunk * J >= len) break;
    const int r = lane / 4;
    const int part = lane % 4;
    const int t = kSubChunk * J + r;
    float acc[kSubChunk];
#pragma unroll
    for (int s = 0; s < kSubChunk; ++s) acc[s] = 0.f;
#pragma unroll
    for (int j = 0; j < N / 16; ++j) {
      const int i = 16 * j + 4 * part;
      const float4 qv = *reinterpret_cast<const float4*>(qs + t * F + i);
      const float4 ct = *reinterpret_cast<const float4*>(cs + t * F + i);
#pragma unroll
      for (int s = 0; s < kSubChunk; ++s) {
        const int ts = kSubChunk * J + s;
        const float4 kv = *reinterpret_cast<const float4*>(ks + ts * F + i);
        const float4 cv = *reinterpret_cast<const float4*>(cs + ts * F + i);
        // s > r gives a positive exponent: clamp (that entry is masked below)
        acc[s] += qv.x * kv.x * exp2_approx(fminf(ct.x - cv.x, 0.f));
        acc[s] += qv.y * kv.y * exp2_approx(fminf(ct.y - cv.y, 0.f));
        acc[s] += qv.z * kv.z * exp2_approx(fminf(ct.z - cv.z, 0.f));
        acc[s] += qv.w * kv.w * exp2_approx(fminf(ct.w - cv.w, 0.f));
      }
    }
    // Reduce-scatter over the 4 lanes of row r: lane `part` ends with the sums of columns
    // 2 part and 2 part + 1 (halves exchanged by lane bit 1, then quarters by bit 0).
    const bool b1 = (part & 2) != 0, b0 = (part & 1) != 0;
    float h[kSubChunk / 2];
#pragma unroll
    for (int j = 0; j < kSubChunk / 2; ++j) {
      const float send = b1 ? acc[j] : acc[j + kSubChunk / 2];
      const float keep = b1 ? acc[j + kSubChunk / 2] : acc[j];
      h[j] = keep + __shfl_xor_sync(0xffffffffu, send, 2);
    }
    float v[2];
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const float send = b0 ? h[j] : h[j + 2];
      const float keep = b0 ? h[j + 2] : h[j];
      v[j] = keep + __shfl_xor_sync(0xffffffffu, send, 1);
    }
    float v0 = v[0], v1 = v[1];
    v0 = 2 * part <= r ? scale * v0 : 0.f;
    v1 = 2 * part + 1 <= r ? scale * v1 : 0.f;
    const int sw = (kSubChunk * J + 2 * part) / 2;
    split2(v0, v1, a_hi[t * BC2 + sw], a_lo[t * BC2 + sw]);
    if (J % 2 == 0) {  // the block above the diagonal inside this 16-token m-tile is zero
      a_hi[t * BC2 + sw + kSubChunk / 2] = 0u;
      a_lo[t * BC2 + sw + kSubChunk / 2] = 0u;
    }
  }
  __syncthreads();
}

/// Step 5 for one warp's 16 columns (ew .. ew + 15 of the tile at e0): unless StateOnly,
/// o = qt S_prev + A u for the chunk's `len` rows (o points at the chunk's first row); then
/// S_next = decay S_prev + kt^T u. B fragments of S (rows i, columns e) come straight from the
/// S^T accumulators `sreg`. Operand rows: qt [C][BN2 words], A and kt [.][BC2 words], u^T at
/// uidx.
template <int N, int C, class Tin, class Tout, ScanPrecision P, bool StateOnly>
__device__ __forceinline__ void chunk_columns(
    const std::uint32_t* qt_hi, [[maybe_unused]] const std::uint32_t* qt_lo,
    const std::uint32_t* a_hi, [[maybe_unused]] const std::uint32_t* a_lo,
    const std::uint32_t* kt_hi, [[maybe_unused]] const std::uint32_t* kt_lo, const float* decay,
    const std::uint32_t* u_hi, [[maybe_unused]] const std::uint32_t* u_lo,
    float (&sreg)[N / 8][4], [[maybe_unused]] Tout* o, [[maybe_unused]] int E,
    [[maybe_unused]] int e0, int ew, int len, int lane) {
  constexpr bool kSplitU = !std::is_same_v<Tin, __nv_bfloat16>;
  constexpr bool kSplit = P == ScanPrecision::Split;
  constexpr int BN2 = (N + 8) / 2;
  constexpr int BC2 = (C + 8) / 2;
  const int g = lane / 4;
  const int qd = lane % 4;
  // Fragments come from shared memory by ldmatrix; the rows of u^T a lane addresses, for B
  // (two column halves: e = ew + 8 (l / 16) + l % 8, words + 4 ((l / 8) % 2)) and for A
  // (e = ew + 8 ((l / 8) % 2) + l % 8, words + 4 (l / 16)).
  const int eb = ew + 8 * (lane / 16) + lane % 8, wb = 4 * ((lane / 8) % 2);
  const int ea = ew + 8 * ((lane / 8) % 2) + lane % 8, wa = 4 * (lane / 16);
  if constexpr (!StateOnly) {
    std::uint32_t sb_hi[N / 16][2][2], sb_lo[N / 16][2][2];  // [k-step][e half][reg]
#pragma unroll
    for (int kk = 0; kk < N / 16; ++kk)
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int r = 0; r < 2; ++r)
          split2(sreg[2 * kk + r][2 * h], sreg[2 * kk + r][2 * h + 1], sb_hi[kk][h][r],
                 sb_lo[kk][h][r]);

    for (int mt = 0; mt < C / 16; ++mt) {
      if (16 * mt >= len) break;
      // two accumulators per column half (hi and lo terms): four independent mma chains
      float acc[2][4] = {}, acc2[2][4] = {};
      const int t_lo = 16 * mt + g, t_hi = t_lo + 8;
#pragma unroll
      for (int kk = 0; kk < N / 16; ++kk) {  // inter: K = state rows i
        std::uint32_t ah[4], al[4];
        frag_a(ah, qt_hi, BN2, 16 * mt, 8 * kk, lane);
        if constexpr (kSplit) frag_a(al, qt_lo, BN2, 16 * mt, 8 * kk, lane);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          mma_bf16(acc[h], ah, sb_hi[kk][h]);
          if constexpr (kSplit) {
            mma_bf16(acc2[h], ah, sb_lo[kk][h]);
            mma_bf16(acc2[h], al, sb_hi[kk][h]);
          }
        }
      }
      for (int kk = 0; kk <= mt; ++kk) {  // intra: K = tokens s <= t (A is lower triangular)
        std::uint32_t ah[4], al[4], bu[4];
        frag_a(ah, a_hi, BC2, 16 * mt, 8 * kk, lane);
        if constexpr (kSplit) frag_a(al, a_lo, BC2, 16 * mt, 8 * kk, lane);
        ldmatrix_x4(bu, u_hi + uidx<C>(eb, 8 * kk + wb));
        const std::uint32_t b0[2] = {bu[0], bu[1]}, b1[2] = {bu[2], bu[3]};
        mma_bf16(acc[0], ah, b0);
        mma_bf16(acc[1], ah, b1);
        if constexpr (kSplit) {
          mma_bf16(acc2[0], al, b0);
          mma_bf16(acc2[1], al, b1);
        }
        if constexpr (kSplitU && kSplit) {
          std::uint32_t bl[4];
          ldmatrix_x4(bl, u_lo + uidx<C>(eb, 8 * kk + wb));
          const std::uint32_t l0[2] = {bl[0], bl[1]}, l1[2] = {bl[2], bl[3]};
          mma_bf16(acc2[0], ah, l0);
          mma_bf16(acc2[1], ah, l1);
        }
      }
#pragma unroll
      for (int h = 0; h < 2; ++h) {
#pragma unroll
        for (int c = 0; c < 4; ++c) acc[h][c] += acc2[h][c];
      }
      // acc[h]: (t_lo, e), (t_lo, e + 1), (t_hi, e), (t_hi, e + 1), e = ew + 8 h + 2 qd
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int e = e0 + ew + 8 * h + 2 * qd;
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int t = half ? t_hi : t_lo;
          if (t >= len) continue;
          Tout* p = o + std::int64_t(t) * E + e;
          if constexpr (std::is_same_v<Tout, float>) {
            *reinterpret_cast<float2*>(p) = make_float2(acc[h][2 * half], acc[h][2 * half + 1]);
          } else {
            *reinterpret_cast<__nv_bfloat162*>(p) =
                __floats2bfloat162_rn(acc[h][2 * half], acc[h][2 * half + 1]);
          }
        }
      }
    }
  }

  // S^T_next = S^T_prev diag(decay) + u^T kt: M = columns e (this warp's 16), N = slots i,
  // K = tokens s.
#pragma unroll
  for (int ni = 0; ni < N / 8; ++ni)
#pragma unroll
    for (int c = 0; c < 4; ++c) sreg[ni][c] *= decay[8 * ni + 2 * qd + (c % 2)];
  for (int kk = 0; kk < C / 16; ++kk) {
    if (16 * kk >= len) break;
    std::uint32_t au[4], aul[4] = {0u, 0u, 0u, 0u};
    ldmatrix_x4(au, u_hi + uidx<C>(ea, 8 * kk + wa));
    if constexpr (kSplitU) ldmatrix_x4(aul, u_lo + uidx<C>(ea, 8 * kk + wa));
#pragma unroll
    for (int ni = 0; ni < N / 8; ni += 2) {
      std::uint32_t bh[4], bl[4];
      frag_b2(bh, kt_hi, BC2, 8 * ni, 8 * kk, lane);
      if constexpr (kSplit) frag_b2(bl, kt_lo, BC2, 8 * ni, 8 * kk, lane);
#pragma unroll
      for (int d = 0; d < 2; ++d) {
        const std::uint32_t h2[2] = {bh[2 * d], bh[2 * d + 1]};
        mma_bf16(sreg[ni + d], au, h2);
        if constexpr (kSplit) {
          const std::uint32_t l2[2] = {bl[2 * d], bl[2 * d + 1]};
          mma_bf16(sreg[ni + d], au, l2);
        }
        if constexpr (kSplitU && kSplit) mma_bf16(sreg[ni + d], aul, h2);
      }
    }
  }
}

/// The state slice S^T of a warp's 16 columns lives in m16n8 accumulators (rows e, columns i):
/// sreg[ni][c] of `lane` holds S[i][e], i = 8 ni + 2 qd + (c % 2), e = g + 8 (c / 2) (+ the
/// warp's first column); this is its offset from &S[0][first column] (row stride E).
__device__ __forceinline__ std::int64_t state_at(int ni, int c, int E, int lane) {
  return std::int64_t(8 * ni + 2 * (lane % 4) + (c % 2)) * E + lane / 4 + 8 * (c / 2);
}

/// Loads a warp's state slice from p (zeros when p is null).
template <int N>
__device__ __forceinline__ void load_state(float (&sreg)[N / 8][4], const float* p, int E,
                                           int lane) {
#pragma unroll
  for (int ni = 0; ni < N / 8; ++ni)
#pragma unroll
    for (int c = 0; c < 4; ++c) sreg[ni][c] = p ? p[state_at(ni, c, E, lane)] : 0.f;
}

/// Stores a warp's state slice to p.
template <int N>
__device__ __forceinline__ void store_state(const float (&sreg)[N / 8][4], float* p, int E,
                                            int lane) {
#pragma unroll
  for (int ni = 0; ni < N / 8; ++ni)
#pragma unroll
    for (int c = 0; c < 4; ++c) p[state_at(ni, c, E, lane)] = sreg[ni][c];
}

/// The fused kernel (short sequences, decode): grid (E / TE, B), block ScanShape::kThreads,
/// dynamic shared ScanShape::bytes. Every CTA of a sequence computes the chunk operands
/// itself and walks the chunks in order.
// q, k: [Ntok, N]; a: [Ntok, N]; u, o: [Ntok, E]; state: [S, N, E]; offsets: [B + 1] or null;
// slots: [B] (sequence b continues state slot slots[b]) or null (slot b)
template <int N, int C, int TE, class Tin, class Tout, ScanPrecision P>
__global__ void __launch_bounds__(
    ScanShape<N, C, TE, !std::is_same_v<Tin, __nv_bfloat16>>::kThreads, 1)
    gla_chunk_scan_kernel(const Tin* __restrict__ q, const Tin* __restrict__ k,
                          const float* __restrict__ a, const Tin* __restrict__ u,
                          float* __restrict__ state, Tout* __restrict__ o,
                          const int* __restrict__ offsets, const int* __restrict__ slots, int T,
                          int E, float scale) {
  using Sh = ScanShape<N, C, TE, !std::is_same_v<Tin, __nv_bfloat16>>;
  constexpr int NT = Sh::kThreads;
  extern __shared__ __align__(16) unsigned char smem[];
  const int tid = static_cast<int>(threadIdx.x);
  const int warp = tid / 32;
  const int lane = tid % 32;
  const int b = static_cast<int>(blockIdx.y);
  const int e0 = static_cast<int>(blockIdx.x) * TE;
  const std::int64_t row0 = offsets ? offsets[b] : std::int64_t(b) * T;
  const int len_seq = offsets ? offsets[b + 1] - offsets[b] : T;

  float sreg[N / 8][4];
  float* st = state + std::int64_t(slots ? slots[b] : b) * N * E + e0 + 16 * warp;
  load_state<N>(sreg, st, E, lane);

  Tin* sq = reinterpret_cast<Tin*>(smem + Sh::st_q);
  Tin* sk = reinterpret_cast<Tin*>(smem + Sh::st_k);
  float* sa = reinterpret_cast<float*>(smem + Sh::st_a);
  Tin* su = reinterpret_cast<Tin*>(smem + Sh::st_u);
  std::uint32_t* u_hi = reinterpret_cast<std::uint32_t*>(smem + Sh::u_hi);
  std::uint32_t* u_lo = reinterpret_cast<std::uint32_t*>(smem + Sh::u_lo);
  const auto stage = [&](int c) {
    stage_qka<N, C, NT>(sq, sk, sa, q, k, a, row0, c, len_seq, tid);
    stage_u<C, TE, NT>(su, u, row0, c, len_seq, E, e0, tid);
    cp_async_commit();
  };
  if (len_seq > 0) stage(0);

  for (int c0 = 0; c0 < len_seq; c0 += C) {
    const int len = len_seq - c0 < C ? len_seq - c0 : C;
    // 1. The staged chunk into the working layouts, then the copies of the next chunk start,
    //    to land while this one is computed.
    cp_async_wait_all();
    __syncthreads();
    convert_qka<N, C, NT, Tin>(smem, tid);
    transpose_u<C, TE, NT, Tin>(su, u_hi, u_lo, tid);
    __syncthreads();
    if (c0 + C < len_seq) stage(c0 + C);
    chunk_operands<N, C, NT, Tin, P>(smem, len, scale, tid);
    chunk_columns<N, C, Tin, Tout, P, false>(
        reinterpret_cast<const std::uint32_t*>(smem + Sh::qt_hi),
        reinterpret_cast<const std::uint32_t*>(smem + Sh::qt_lo),
        reinterpret_cast<const std::uint32_t*>(smem + Sh::a_hi),
        reinterpret_cast<const std::uint32_t*>(smem + Sh::a_lo),
        reinterpret_cast<const std::uint32_t*>(smem + Sh::kt_hi),
        reinterpret_cast<const std::uint32_t*>(smem + Sh::kt_lo),
        reinterpret_cast<const float*>(smem + Sh::decay), u_hi, u_lo, sreg, o + (row0 + c0) * E,
        E, e0, 16 * warp, len, lane);
    __syncthreads();  // shared buffers are refilled by the next chunk
  }
  store_state<N>(sreg, st, E, lane);
}

/// Element of a q / k / u input as fp32.
template <class T>
__device__ __forceinline__ float to_f32(T x) {
  if constexpr (std::is_same_v<T, float>)
    return x;
  else
    return __bfloat162float(x);
}

/// The recurrent kernel's per-token inputs: token r's q, k and decays exp(a) into shared memory
/// (sq, sk, sd: N floats each). Called by every thread of the block; `scratch` (32 floats) is
/// free for a block reduction.
template <int N, class Tin>
struct RecurrentInputs {
  const Tin* q;
  const Tin* k;
  const float* a;
  __device__ void operator()(std::int64_t r, float* sq, float* sk, float* sd, float*) const {
    constexpr float kLog2e = 1.4426950408889634f;
    for (int i = static_cast<int>(threadIdx.x); i < N; i += 128) {
      sq[i] = to_f32(q[r * N + i]);
      sk[i] = to_f32(k[r * N + i]);
      sd[i] = exp2_approx(a[r * N + i] * kLog2e);
    }
  }
};

/// The same inputs with the DDTS gates (SPEC 2 steps 5-6) computed on the way, from the gate
/// projections: s = softplus(s_raw), tau = sigmoid(tau_raw), a = -tau s, and the key
/// k' = s^tau k / max(||k||, eps) (ops/ddts_gate.hpp's formulas, in fp32). Rows of N floats.
template <int N>
struct DdtsRecurrentInputs {
  static_assert(N <= 128, "one thread per gate");
  const float* q;
  const float* k;  // before the gates
  const float* s_raw;
  const float* tau_raw;
  float eps;
  __device__ void operator()(std::int64_t r, float* sq, float* sk, float* sd,
                             float* scratch) const {
    constexpr float kLog2e = 1.4426950408889634f;
    const int i = static_cast<int>(threadIdx.x);
    float kb = 0.f, kk = 0.f;  // beta k, k^2
    if (i < N) {
      const float kr = k[r * N + i], z = s_raw[r * N + i], zt = tau_raw[r * N + i];
      const float az = z < 0.f ? -z : z;
      const float sp = (z > 0.f ? z : 0.f) + log1pf(expf(-az));  // softplus, overflow-safe
      const float tau = 1.f / (1.f + expf(-zt));                  // sigmoid
      sd[i] = exp2_approx(-tau * sp * kLog2e);
      sq[i] = q[r * N + i];
      kb = expf(tau * logf(sp)) * kr;
      kk = kr * kr;
    }
#pragma unroll
    for (int o = 16; o > 0; o /= 2) kk += __shfl_xor_sync(0xffffffffu, kk, o);
    if (i % 32 == 0) scratch[i / 32] = kk;
    __syncthreads();
    float ss = 0.f;
#pragma unroll
    for (int w = 0; w < (N + 31) / 32; ++w) ss += scratch[w];
    const float norm = sqrtf(ss);
    if (i < N) sk[i] = kb * (1.f / (norm > eps ? norm : eps));
  }
};

/// The recurrent kernel's u: element (r, e) of a [tokens, E] input. A u policy is copied into
/// the kernel, prefetch(e, col) runs before the kernel waits for the one before it (operands
/// that are no earlier kernel's output), stage(r, su) puts token r's shared operands into su
/// (kShared floats; called by every thread) and operator() gives u of token r, column e.
template <class Tin>
struct RecurrentU {
  static constexpr int kShared = 0;
  const Tin* u;
  __device__ void prefetch(int, bool) {}
  __device__ void stage(std::int64_t, float*) const {}
  __device__ float operator()(std::int64_t r, int e, int E, const float*) const {
    return to_f32(u[r * E + e]);
  }
};

/// The recurrent kernel's output: o[r, e] = v, the scaled product scale q_t S_t, as Tout. An
/// output policy is copied into the kernel; prefetch(e, col) runs before the kernel waits for
/// the one before it (operands that are no earlier kernel's output), fetch(r, e) at the start
/// of token r (its other operands, loading while the token's inputs are staged) and operator()
/// stores token r's value of column e (both called by one thread per column).
template <class Tout>
struct RecurrentOut {
  Tout* o;
  __device__ void prefetch(int, bool) {}
  __device__ void fetch(std::int64_t, int) {}
  __device__ void operator()(std::int64_t r, int e, int E, float v) const {
    if constexpr (std::is_same_v<Tout, float>)
      o[r * E + e] = v;
    else
      o[r * E + e] = __float2bfloat16_rn(v);
  }
};

/// Shared floats the recurrent kernel keeps for its u policy (RecurrentU::kShared and the
/// others' must fit).
inline constexpr int kRecurrentUShared = 64;

/// The recurrent schedule (decode-sized calls: a few tokens per sequence): the recurrence token
/// by token in fp32, S_t = diag(exp(a_t)) S_{t-1} + k_t^T u_t, o_t = scale q_t S_t. Grid
/// (ceil(E / (128 / RG)), B), block 128: a group of RG threads owns one column e of the state,
/// each thread N / RG of its entries in registers (state rows are read and written once,
/// coalesced across the block); q, k and the decays of each token go through shared memory
/// (dynamic: 3 N + 224 floats, see recurrent_shared_bytes), put there by `in`
/// (RecurrentInputs, or DdtsRecurrentInputs with the gates fused); u comes from the policy UIn
/// (RecurrentU, or the channel gate computed on the way); the output goes through the policy Out
/// (RecurrentOut, or the gated norm's gate applied on the way). RG = 4 when one sequence's
/// 128-column CTAs would leave most SMs idle (a decode step at batch 1: 128 CTAs instead of
/// 32); the RG partial dot products of a column are summed in shared memory.
template <int N, int RG, class Inputs, class UIn, class Out>
__global__ void __launch_bounds__(128)
    gla_recurrent_kernel(const Inputs in, UIn uin, float* __restrict__ state, Out out,
                         const int* __restrict__ offsets, const int* __restrict__ slots, int T,
                         int E, float scale) {
  static_assert(RG >= 1 && 128 % RG == 0 && N % RG == 0);
  static_assert(UIn::kShared <= kRecurrentUShared);
  constexpr int CW = 128 / RG, NR = N / RG;  // columns per CTA, state rows per thread
  extern __shared__ __align__(16) unsigned char smem[];
  float* sq = reinterpret_cast<float*>(smem);
  float* sk = sq + N;
  float* sd = sk + N;
  float* red = sd + N;         // RG > 1: 128 partial dot products
  float* scratch = red + 128;  // 32 floats for `in`
  float* su = scratch + 32;    // kRecurrentUShared floats for `uin`
  const int tid = static_cast<int>(threadIdx.x);
  const int cl = tid % CW, g = tid / CW, i0 = g * NR;
  const int b = static_cast<int>(blockIdx.y);
  const int e = static_cast<int>(blockIdx.x) * CW + cl;
  const bool col = e < E;
  const std::int64_t row0 = offsets ? offsets[b] : std::int64_t(b) * T;
  const int len = offsets ? offsets[b + 1] - offsets[b] : T;
  float* st = state + std::int64_t(slots ? slots[b] : b) * N * E + (col ? e : 0);
  float s[NR];
#pragma unroll
  for (int i = 0; i < NR; ++i) s[i] = col ? st[std::int64_t(i0 + i) * E] : 0.f;
  // Launched as a programmatic dependent (the decode step's ddts_gla_scan_cuda), the state
  // rows above load while the kernel before still runs: they are no earlier kernel's output
  // but this kernel's (its previous launch, which lets no successor start before it ends).
  // The inputs come after the wait.
  uin.prefetch(e, col);
  out.prefetch(e, col);
  grid_dependency_wait();
  for (int t = 0; t < len; ++t) {
    const std::int64_t r = row0 + t;
    if (col && g == 0) out.fetch(r, e);
    __syncthreads();  // the previous token's q, k, d and partial sums are read
    in(r, sq, sk, sd, scratch);
    uin.stage(r, su);
    __syncthreads();
    float acc = 0.f;
    if (col) {
      const float uu = uin(r, e, E, su);
#pragma unroll
      for (int i = 0; i < NR; ++i) {
        s[i] = sd[i0 + i] * s[i] + sk[i0 + i] * uu;
        acc += sq[i0 + i] * s[i];
      }
    }
    if constexpr (RG > 1) {
      red[tid] = acc;
      __syncthreads();
      acc = 0.f;
#pragma unroll
      for (int gg = 0; gg < RG; ++gg) acc += red[gg * CW + cl];
    }
    if (col && g == 0) out(r, e, E, scale * acc);
  }
  if (col) {
#pragma unroll
    for (int i = 0; i < NR; ++i) st[std::int64_t(i0 + i) * E] = s[i];
  }
}

/// Dynamic shared memory of gla_recurrent_kernel<N, ...>.
constexpr int recurrent_shared_bytes(int n) {
  return (3 * n + 128 + 32 + kRecurrentUShared) * static_cast<int>(sizeof(float));
}

/// Threads per state column of the recurrent kernel: 4 while the batch's 128-column CTAs would
/// fill under half the SMs, else 1.
inline int recurrent_row_groups(int B, int E, int sms) {
  return std::int64_t(B) * ((E + 127) / 128) * 2 <= sms ? 4 : 1;
}

/// Launches the recurrent kernel for B sequences (grid and shared memory as it needs).
template <int N, class Inputs, class UIn, class Out, class Launch>
void launch_recurrent(const Launch& launch, int row_groups, const Inputs& in, const UIn& uin,
                      float* state, const Out& out, const int* offsets, const int* slots, int B,
                      int T, int E, float scale) {
  if (row_groups == 4)
    launch(gla_recurrent_kernel<N, 4, Inputs, UIn, Out>,
           dim3(static_cast<unsigned>((E + 31) / 32), static_cast<unsigned>(B)), dim3(128),
           recurrent_shared_bytes(N), in, uin, state, out, offsets, slots, T, E, scale);
  else
    launch(gla_recurrent_kernel<N, 1, Inputs, UIn, Out>,
           dim3(static_cast<unsigned>((E + 127) / 128), static_cast<unsigned>(B)), dim3(128),
           recurrent_shared_bytes(N), in, uin, state, out, offsets, slots, T, E, scale);
}

// ---- The split schedule (long sequences) -------------------------------------------------
// 1. gla_chunk_index_kernel: chunk_base[b] = first chunk of sequence b (prefix of its chunk
//    counts, clamped to the workspace's capacity).
// 2. gla_chunk_prep_kernel, one CTA per chunk of every sequence: steps 1-4 once per chunk
//    (not once per column tile), the operands written to the workspace (ChunkOps).
// 3. With G > 1 groups of consecutive chunks per sequence, gla_chunk_column_kernel<StateOnly>
//    runs groups 0 .. G-2 from a zero state: each group's own contribution dS_g to the state
//    and (column tile 0) its decay D_g = prod of its chunk decays.
// 4. gla_chunk_combine_kernel: S_in(g) = D_{g-1} S_in(g-1) + dS_{g-1}, S_in(0) = the slot,
//    sequential over the groups, element-parallel.
// 5. gla_chunk_column_kernel: every (sequence, group, column tile) from S_in(g): outputs, and
//    the last group's state into the slot. Operands and u tiles double-buffered by cp.async.

/// Workspace header: chunk_base [B + 1] ints, 16-byte padded; then the chunk operands; then,
/// with G > 1, the group states [B][G - 1][N][E] and decays [B][G - 1][N].
__host__ __device__ constexpr std::int64_t pad16(std::int64_t bytes) {
  return (bytes + 15) / 16 * 16;
}

// (A __global__ function in a header must be a template: otherwise every translation unit
// that includes it defines it and the link fails.)
template <int C>
__global__ void gla_chunk_index_kernel(const int* __restrict__ offsets, int B, int T,
                                       int max_chunks, int* __restrict__ chunk_base) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  int total = 0;
  chunk_base[0] = 0;
  for (int b = 0; b < B; ++b) {
    const int len = offsets ? offsets[b + 1] - offsets[b] : T;
    total += len > 0 ? (len + C - 1) / C : 0;
    chunk_base[b + 1] = total < max_chunks ? total : max_chunks;
  }
}

/// Sequence of chunk j: the last b with chunk_base[b] <= j (j < chunk_base[B]).
__device__ __forceinline__ int chunk_sequence(const int* chunk_base, int B, int j) {
  int lo = 0, hi = B;  // chunk_base[lo] <= j < chunk_base[hi]
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (chunk_base[mid] <= j)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

/// Grid (max_chunks), block PrepShape::kThreads, dynamic shared PrepShape::bytes.
template <int N, int C, class Tin, ScanPrecision P>
__global__ void __launch_bounds__(PrepShape<N, C, static_cast<int>(sizeof(Tin))>::kThreads, 1)
    gla_chunk_prep_kernel(const Tin* __restrict__ q, const Tin* __restrict__ k,
                          const float* __restrict__ a, const int* __restrict__ offsets, int B,
                          int T, float scale, const int* __restrict__ chunk_base,
                          std::uint32_t* __restrict__ ops) {
  using Sh = PrepShape<N, C, static_cast<int>(sizeof(Tin))>;
  using Ops = ChunkOps<N, C>;
  constexpr int NT = Sh::kThreads;
  extern __shared__ __align__(16) unsigned char smem[];
  const int tid = static_cast<int>(threadIdx.x);
  const int j = static_cast<int>(blockIdx.x);
  if (j >= chunk_base[B]) return;  // the grid is sized for the most chunks possible
  const int b = chunk_sequence(chunk_base, B, j);
  const int c0 = (j - chunk_base[b]) * C;
  const std::int64_t row0 = offsets ? offsets[b] : std::int64_t(b) * T;
  const int len_seq = offsets ? offsets[b + 1] - offsets[b] : T;
  const int len = len_seq - c0 < C ? len_seq - c0 : C;

  stage_qka<N, C, NT>(reinterpret_cast<Tin*>(smem + Sh::st_q),
                      reinterpret_cast<Tin*>(smem + Sh::st_k),
                      reinterpret_cast<float*>(smem + Sh::st_a), q, k, a, row0, c0, len_seq, tid);
  cp_async_commit();
  cp_async_wait_all();
  __syncthreads();
  convert_qka<N, C, NT, Tin>(smem, tid);
  __syncthreads();
  chunk_operands<N, C, NT, Tin, P>(smem, len, scale, tid);

  // Out to the workspace: padded shared rows -> dense global rows, 16 bytes per copy.
  std::uint32_t* out = ops + std::int64_t(j) * Ops::words;
  const auto rows = [&](int src, int dst, int nrows, int row_words, int src_stride_words) {
    const auto* s = reinterpret_cast<const uint4*>(smem + src);
    for (int idx = tid; idx < nrows * (row_words / 4); idx += NT) {
      const int r = idx / (row_words / 4), w = idx % (row_words / 4);
      reinterpret_cast<uint4*>(out + dst)[idx] = s[r * (src_stride_words / 4) + w];
    }
  };
  rows(Sh::qt_hi, Ops::qt_hi, C, N / 2, Sh::kBN / 2);
  rows(Sh::qt_lo, Ops::qt_lo, C, N / 2, Sh::kBN / 2);
  rows(Sh::kt_hi, Ops::kt_hi, N, C / 2, Sh::kBC / 2);
  rows(Sh::kt_lo, Ops::kt_lo, N, C / 2, Sh::kBC / 2);
  rows(Sh::a_hi, Ops::a_hi, C, C / 2, Sh::kBC / 2);
  rows(Sh::a_lo, Ops::a_lo, C, C / 2, Sh::kBC / 2);
  rows(Sh::decay, Ops::decay, 1, N, N);
}

/// Grid (E / TE, groups, B), block ColumnShape::kThreads, dynamic shared ColumnShape::bytes.
/// Group g of sequence b: its chunks [g gs, min(nch, (g + 1) gs)), gs = ceil(nch / G).
/// StateOnly (groups 0 .. G-2): from a zero state; writes dS_g and (tile 0) D_g.
/// Otherwise: from the slot (g = 0) or S_in(g) (the combine kernel's result in the group
/// state buffer at g - 1); writes o, and the last group's state into the slot.
template <int N, int C, int TE, class Tin, class Tout, ScanPrecision P, bool StateOnly>
__global__ void __launch_bounds__(
    ColumnShape<N, C, TE, !std::is_same_v<Tin, __nv_bfloat16>, StateOnly, P>::kThreads,
    ColumnShape<N, C, TE, !std::is_same_v<Tin, __nv_bfloat16>, StateOnly, P>::kMinBlocks)
    gla_chunk_column_kernel(const Tin* __restrict__ u, float* __restrict__ state,
                            Tout* __restrict__ o, const int* __restrict__ offsets,
                            const int* __restrict__ slots, int T, int E, int G,
                            const int* __restrict__ chunk_base,
                            const std::uint32_t* __restrict__ ops, float* __restrict__ gstate,
                            float* __restrict__ gdecay) {
  using Sh = ColumnShape<N, C, TE, !std::is_same_v<Tin, __nv_bfloat16>, StateOnly, P>;
  using Ops = ChunkOps<N, C>;
  constexpr int NT = Sh::kThreads;
  extern __shared__ __align__(16) unsigned char smem[];
  const int tid = static_cast<int>(threadIdx.x);
  const int warp = tid / 32;
  const int lane = tid % 32;
  const int e0 = static_cast<int>(blockIdx.x) * TE;
  const int grp = static_cast<int>(blockIdx.y);
  const int b = static_cast<int>(blockIdx.z);
  const std::int64_t row0 = offsets ? offsets[b] : std::int64_t(b) * T;
  const int len_seq = offsets ? offsets[b + 1] - offsets[b] : T;
  const int nch = chunk_base[b + 1] - chunk_base[b];
  const int gs = (nch + G - 1) / G;
  const int cb = grp * gs < nch ? grp * gs : nch;
  const int ce = cb + gs < nch ? cb + gs : nch;
  const std::int64_t NE = std::int64_t(N) * E;
  float* gst = gstate + (std::int64_t(b) * (G - 1) + grp) * NE;  // StateOnly: dS_g

  float sreg[N / 8][4];
  float* slot = state + std::int64_t(slots ? slots[b] : b) * NE + e0 + 16 * warp;
  if constexpr (StateOnly)
    load_state<N>(sreg, nullptr, E, lane);
  else
    load_state<N>(sreg, grp == 0 ? slot : gst - NE + e0 + 16 * warp, E, lane);
  float dprod = 1.f;  // StateOnly, tile 0, thread i < N: D_g[i]

  const auto stage = [&](int c, int s) {  // chunk c (of the sequence) into stage s
    unsigned char* base = smem + s * Sh::stage;
    const std::uint32_t* src = ops + std::int64_t(chunk_base[b] + c) * Ops::words;
    const auto rows = [&](int dst, int from, int nrows, int row_words, int dst_stride_words) {
      for (int idx = tid; idx < nrows * (row_words / 4); idx += NT) {
        const int r = idx / (row_words / 4), w = idx % (row_words / 4);
        cp_async16(base + dst + 4 * (r * dst_stride_words + 4 * w), src + from + 4 * idx, true);
      }
    };
    if constexpr (!StateOnly) {
      rows(Sh::qt_hi, Ops::qt_hi, C, N / 2, Sh::kBN / 2);
      if constexpr (P == ScanPrecision::Split) rows(Sh::qt_lo, Ops::qt_lo, C, N / 2, Sh::kBN / 2);
      rows(Sh::a_hi, Ops::a_hi, C, C / 2, Sh::kBC / 2);
      if constexpr (P == ScanPrecision::Split) rows(Sh::a_lo, Ops::a_lo, C, C / 2, Sh::kBC / 2);
    }
    rows(Sh::kt_hi, Ops::kt_hi, N, C / 2, Sh::kBC / 2);
    if constexpr (P == ScanPrecision::Split) rows(Sh::kt_lo, Ops::kt_lo, N, C / 2, Sh::kBC / 2);
    rows(Sh::decay, Ops::decay, 1, N, N);
    stage_u<C, TE, NT>(reinterpret_cast<Tin*>(base + Sh::st_u), u, row0, c * C, len_seq, E, e0,
                       tid);
    cp_async_commit();
  };
  std::uint32_t* u_hi = reinterpret_cast<std::uint32_t*>(smem + Sh::u_hi);
  std::uint32_t* u_lo = reinterpret_cast<std::uint32_t*>(smem + Sh::u_lo);
  if (cb < ce) stage(cb, 0);
  for (int c = cb; c < ce; ++c) {
    const int s = (c - cb) % 2;
    const unsigned char* base = smem + s * Sh::stage;
    const int c0 = c * C;
    const int len = len_seq - c0 < C ? len_seq - c0 : C;
    cp_async_wait_all();
    __syncthreads();
    transpose_u<C, TE, NT, Tin>(reinterpret_cast<const Tin*>(base + Sh::st_u), u_hi, u_lo, tid);
    __syncthreads();
    if (c + 1 < ce) stage(c + 1, 1 - s);
    const float* decay = reinterpret_cast<const float*>(base + Sh::decay);
    if constexpr (StateOnly) {
      if (blockIdx.x == 0 && tid < N) dprod *= decay[tid];
    }
    chunk_columns<N, C, Tin, Tout, P, StateOnly>(
        reinterpret_cast<const std::uint32_t*>(base + Sh::qt_hi),
        reinterpret_cast<const std::uint32_t*>(base + Sh::qt_lo),
        reinterpret_cast<const std::uint32_t*>(base + Sh::a_hi),
        reinterpret_cast<const std::uint32_t*>(base + Sh::a_lo),
        reinterpret_cast<const std::uint32_t*>(base + Sh::kt_hi),
        reinterpret_cast<const std::uint32_t*>(base + Sh::kt_lo), decay, u_hi, u_lo, sreg,
        o + (row0 + c0) * E, E, e0, 16 * warp, len, lane);
  }
  if constexpr (StateOnly) {
    store_state<N>(sreg, gst + e0 + 16 * warp, E, lane);
    if (blockIdx.x == 0 && tid < N)
      gdecay[(std::int64_t(b) * (G - 1) + grp) * N + tid] = dprod;
  } else {
    if (grp == G - 1) store_state<N>(sreg, slot, E, lane);
  }
}

/// Grid (ceil(N E / 256), B), block 256: S_in(g) = D_{g-1} S_in(g-1) + dS_{g-1} for g = 1 ..
/// G - 1, each written over dS_{g-1}; S_in(0) is the slot's state.
template <int N>
__global__ void __launch_bounds__(256)
    gla_chunk_combine_kernel(const float* __restrict__ state, const int* __restrict__ slots,
                             int E, int G, float* __restrict__ gstate,
                             const float* __restrict__ gdecay) {
  const std::int64_t NE = std::int64_t(N) * E;
  const std::int64_t idx = std::int64_t(blockIdx.x) * 256 + threadIdx.x;
  const int b = static_cast<int>(blockIdx.y);
  if (idx >= NE) return;
  const int i = static_cast<int>(idx / E);
  float s = state[std::int64_t(slots ? slots[b] : b) * NE + idx];
  for (int g = 1; g < G; ++g) {
    const std::int64_t at = std::int64_t(b) * (G - 1) + (g - 1);
    s = gdecay[at * N + i] * s + gstate[at * NE + idx];
    gstate[at * NE + idx] = s;
  }
}

}  // namespace detail

/// How gla_chunk_scan schedules the work.
///   Fused: one kernel; each CTA owns (sequence, column tile), computes every chunk's
///          operands itself and walks the sequence's chunks in order. No workspace; the
///          choice for short sequences (decode).
///   Split: the chunk operands once per chunk in a kernel of their own, then the column work
///          of G groups of chunks per sequence in parallel (the groups' state contributions
///          first, combined across groups by a short sequential pass). Needs a workspace.
///   Recurrent: the recurrence token by token, a thread per state column (decode: a few
///          tokens per sequence; exact fp32, no tensor cores, no workspace).
///   Auto:  Recurrent when the sequences average at most 4 tokens; Split when a large enough
///          workspace is given and the sequences average at least 4 chunks; otherwise Fused.
enum class ScanSchedule { Auto, Fused, Split, Recurrent };

/// Column tile of one CTA: 0 picks 128 when that still gives one CTA per multiprocessor,
/// else 64 (fused), 128 when E allows it (split).
struct GlaChunkScanOptions {
  int column_tile = 0;          // 0 (auto), 64 or 128
  const int* slots = nullptr;   // [B] device array: state slot of each sequence; null: slot b
  float scale = 0.f;            // o = scale q S; 0 means 1 / sqrt(n)
  ScanSchedule schedule = ScanSchedule::Auto;
  void* workspace = nullptr;    // device memory for the split schedule (16-byte aligned)
  std::size_t workspace_bytes = 0;
  std::int64_t total_tokens = 0;  // with offsets: offsets[B] (sizes the split schedule)
  int groups = 0;                 // split: chunk groups per sequence (0: auto)
};

/// What gla_chunk_scan will do for a shape: the schedule, the column tile, the chunk groups
/// per sequence and the workspace the split schedule needs (0 when fused).
struct GlaChunkScanPlan {
  bool recurrent = false;
  int row_groups = 1;  // recurrent: threads per state column (1 or 4)
  bool split = false;
  int column_tile = 64;
  int groups = 1;
  std::int64_t max_chunks = 0;
  std::size_t workspace_bytes = 0;
};

namespace detail {

inline constexpr int kMaxGroups = 64;
/// Auto takes the recurrent schedule up to this many tokens per sequence (on average).
inline constexpr int kRecurrentTokens = 4;

/// The plan from the shape, the options and the multiprocessor count (no CUDA calls). The
/// workspace size is filled in whenever the split schedule is wanted; `split` is set only
/// when opts.workspace holds that many bytes.
inline GlaChunkScanPlan make_plan(int B, int T, int n, int E, int C, bool packed,
                                  const GlaChunkScanOptions& opts, int sms,
                                  int column_ctas_per_sm = 1) {
  const std::string who = "rodimus::backend::cuda::gla_chunk_scan: ";
  GlaChunkScanPlan plan;
  const std::int64_t ntok = packed ? opts.total_tokens : std::int64_t(B) * T;
  const std::int64_t avg_chunks = B > 0 ? (ntok / B + C - 1) / C : 0;
  if (opts.schedule == ScanSchedule::Recurrent ||
      (opts.schedule == ScanSchedule::Auto && ntok <= std::int64_t(kRecurrentTokens) * B &&
       (packed || T <= kRecurrentTokens))) {
    plan.recurrent = true;
    // four threads per state column while the batch's 128-column CTAs fill under half the SMs
    plan.row_groups = recurrent_row_groups(B, E, sms);
    return plan;
  }
  bool want = opts.schedule == ScanSchedule::Split ||
              (opts.schedule == ScanSchedule::Auto && avg_chunks >= 4);
  if (packed && ntok <= 0) {
    if (opts.schedule == ScanSchedule::Split)
      throw ArgumentError(who + "the split schedule with offsets needs options.total_tokens");
    want = false;
  }
  if (!want) {
    int tile = opts.column_tile;
    if (tile == 0) tile = (E % 128 == 0 && std::int64_t(B) * (E / 128) >= sms) ? 128 : 64;
    plan.column_tile = tile;
    return plan;
  }
  plan.column_tile = opts.column_tile != 0 ? opts.column_tile : (E % 128 == 0 ? 128 : 64);
  // groups: enough CTAs for one wave of the column kernel (slots = CTAs that fit at once)
  const std::int64_t ctas = std::int64_t(B) * (E / plan.column_tile);
  const std::int64_t slots = std::int64_t(sms) * column_ctas_per_sm;
  int G = opts.groups;
  if (G <= 0) {
    G = ctas >= slots ? 1 : static_cast<int>(slots / ctas);
    const std::int64_t cap = avg_chunks / 4 > 1 ? avg_chunks / 4 : 1;
    if (G > cap) G = static_cast<int>(cap);
  }
  if (G > kMaxGroups) G = kMaxGroups;
  plan.groups = G;
  plan.max_chunks = packed ? (ntok + C - 1) / C + B : std::int64_t(B) * ((T + C - 1) / C);
  const std::int64_t words = 2 * std::int64_t(C) * n + std::int64_t(C) * C + n;
  std::int64_t bytes = pad16(4 * (std::int64_t(B) + 1)) + plan.max_chunks * words * 4;
  if (G > 1) bytes += std::int64_t(B) * (G - 1) * (std::int64_t(n) * E + n) * 4;
  plan.workspace_bytes = static_cast<std::size_t>(bytes);
  plan.split = opts.workspace != nullptr && opts.workspace_bytes >= plan.workspace_bytes;
  return plan;
}

/// CTAs of the split schedule's column kernel that fit one multiprocessor (its kMinBlocks)
/// for state height n and the column tile the plan will pick.
template <int C, ScanPrecision P, class Tin>
int column_ctas_per_sm(int n, int E, const GlaChunkScanOptions& opts) {
  constexpr bool kSplitU = !std::is_same_v<Tin, __nv_bfloat16>;
  const int tile = opts.column_tile != 0 ? opts.column_tile : (E % 128 == 0 ? 128 : 64);
  const auto pick = [&]<int N>() {
    return tile == 128 ? ColumnShape<N, C, 128, kSplitU, false, P>::kMinBlocks
                       : ColumnShape<N, C, 64, kSplitU, false, P>::kMinBlocks;
  };
  return n == 32 ? pick.template operator()<32>()
                 : n == 64 ? pick.template operator()<64>() : pick.template operator()<128>();
}

/// The fused schedule, through `launch(kernel, grid, block, shared bytes, args...)`.
template <int N, int C, int TE, ScanPrecision P, class Tin, class Tout, class Launch>
void launch_fused(const Launch& launch, const Tin* q, const Tin* k, const float* a, const Tin* u,
                  float* state, Tout* o, const int* offsets, const int* slots, int B, int T,
                  int E, float scale) {
  using Sh = ScanShape<N, C, TE, !std::is_same_v<Tin, __nv_bfloat16>>;
  launch(gla_chunk_scan_kernel<N, C, TE, Tin, Tout, P>,
         dim3(static_cast<unsigned>(E / TE), static_cast<unsigned>(B)), dim3(Sh::kThreads),
         Sh::bytes, q, k, a, u, state, o, offsets, slots, T, E, scale);
}

/// The split schedule (see the kernels above), through `launch`.
template <int N, int C, int TE, ScanPrecision P, class Tin, class Tout, class Launch>
void launch_split(const Launch& launch, const Tin* q, const Tin* k, const float* a,
                  const Tin* u, float* state, Tout* o, const int* offsets, const int* slots,
                  int B, int T, int E, float scale, const GlaChunkScanPlan& plan,
                  void* workspace) {
  constexpr bool kSplitU = !std::is_same_v<Tin, __nv_bfloat16>;
  using Prep = PrepShape<N, C, static_cast<int>(sizeof(Tin))>;
  using Col = ColumnShape<N, C, TE, kSplitU, false, P>;
  using ColState = ColumnShape<N, C, TE, kSplitU, true, P>;
  auto* base = static_cast<unsigned char*>(workspace);
  int* chunk_base = reinterpret_cast<int*>(base);
  auto* ops = reinterpret_cast<std::uint32_t*>(base + pad16(4 * (std::int64_t(B) + 1)));
  const int G = plan.groups;
  float* gstate = nullptr;
  float* gdecay = nullptr;
  if (G > 1) {
    gstate = reinterpret_cast<float*>(ops + plan.max_chunks * ChunkOps<N, C>::words);
    gdecay = gstate + std::int64_t(B) * (G - 1) * N * E;
  }
  const auto max_chunks = static_cast<int>(plan.max_chunks);
  launch(gla_chunk_index_kernel<C>, dim3(1), dim3(32), 0, offsets, B, T, max_chunks, chunk_base);
  if (max_chunks > 0)
    launch(gla_chunk_prep_kernel<N, C, Tin, P>, dim3(static_cast<unsigned>(max_chunks)),
           dim3(Prep::kThreads), Prep::bytes, q, k, a, offsets, B, T, scale,
           static_cast<const int*>(chunk_base), ops);
  const auto tiles = static_cast<unsigned>(E / TE);
  if (G > 1) {
    launch(gla_chunk_column_kernel<N, C, TE, Tin, Tout, P, true>,
           dim3(tiles, static_cast<unsigned>(G - 1), static_cast<unsigned>(B)),
           dim3(ColState::kThreads), ColState::bytes, u, state, o, offsets, slots, T, E, G, static_cast<const int*>(chunk_base),
           static_cast<const std::uint32_t*>(ops), gstate, gdecay);
    launch(gla_chunk_combine_kernel<N>,
           dim3(static_cast<unsigned>((std::int64_t(N) * E + 255) / 256), static_cast<unsigned>(B)),
           dim3(256), 0, static_cast<const float*>(state), slots, E, G, gstate,
           static_cast<const float*>(gdecay));
  }
  launch(gla_chunk_column_kernel<N, C, TE, Tin, Tout, P, false>,
         dim3(tiles, static_cast<unsigned>(G), static_cast<unsigned>(B)), dim3(Col::kThreads),
         Col::bytes, u, state, o, offsets, slots, T, E, G, static_cast<const int*>(chunk_base),
         static_cast<const std::uint32_t*>(ops), gstate, gdecay);
}

/// Runs the plan for state height N.
template <int N, int C, ScanPrecision P, class Tin, class Tout, class Launch>
void launch_plan(const Launch& launch, const GlaChunkScanPlan& plan, const Tin* q, const Tin* k,
                 const float* a, const Tin* u, float* state, Tout* o, const int* offsets,
                 const int* slots, int B, int T, int E, float scale, void* workspace) {
  if (plan.recurrent) {
    launch_recurrent<N>(launch, plan.row_groups, RecurrentInputs<N, Tin>{q, k, a},
                        RecurrentU<Tin>{u}, state, RecurrentOut<Tout>{o}, offsets, slots, B, T,
                        E, scale);
  } else if (plan.split) {
    if (plan.column_tile == 128)
      launch_split<N, C, 128, P>(launch, q, k, a, u, state, o, offsets, slots, B, T, E, scale,
                                 plan, workspace);
    else
      launch_split<N, C, 64, P>(launch, q, k, a, u, state, o, offsets, slots, B, T, E, scale,
                                plan, workspace);
  } else {
    if (plan.column_tile == 128)
      launch_fused<N, C, 128, P>(launch, q, k, a, u, state, o, offsets, slots, B, T, E, scale);
    else
      launch_fused<N, C, 64, P>(launch, q, k, a, u, state, o, offsets, slots, B, T, E, scale);
  }
}

/// Checks the arguments shared by every entry point; throws ArgumentError.
inline void check_arguments(const void* q, const void* k, const void* a, const void* u, int B,
                            int T, int n, int E, bool packed, const GlaChunkScanOptions& opts) {
  const std::string who = "rodimus::backend::cuda::gla_chunk_scan: ";
  if (n != 32 && n != 64 && n != 128)
    throw ArgumentError(who + "n = " + std::to_string(n) + " is not supported (32, 64 or 128)");
  if (E <= 0 || E % 64 != 0)
    throw ArgumentError(who + "E = " + std::to_string(E) + " must be a positive multiple of 64");
  if (B < 0 || (!packed && T < 0)) throw ArgumentError(who + "negative batch or length");
  if (opts.column_tile != 0 && opts.column_tile != 64 && opts.column_tile != 128)
    throw ArgumentError(who + "column_tile must be 0, 64 or 128");
  if (opts.column_tile == 128 && E % 128 != 0)
    throw ArgumentError(who + "column_tile 128 needs E % 128 == 0");
  if (opts.groups < 0 || opts.groups > kMaxGroups)
    throw ArgumentError(who + "groups must be 0 (auto) to " + std::to_string(kMaxGroups));
  const auto misaligned = [](const void* p) { return !aligned16(p); };
  if (misaligned(q) || misaligned(k) || misaligned(a) || misaligned(u))
    throw ArgumentError(who + "q, k, a and u must be 16-byte aligned");
  if (opts.workspace && misaligned(opts.workspace))
    throw ArgumentError(who + "the workspace must be 16-byte aligned");
}

/// Dispatches over n (32, 64, 128).
template <int C, ScanPrecision P, class Tin, class Tout, class Launch>
void launch_any_n(const Launch& launch, const GlaChunkScanPlan& plan, const Tin* q, const Tin* k,
                  const float* a, const Tin* u, float* state, Tout* o, const int* offsets,
                  const int* slots, int B, int T, int n, int E, float scale, void* workspace) {
  if (n == 32)
    launch_plan<32, C, P>(launch, plan, q, k, a, u, state, o, offsets, slots, B, T, E, scale,
                          workspace);
  if (n == 64)
    launch_plan<64, C, P>(launch, plan, q, k, a, u, state, o, offsets, slots, B, T, E, scale,
                          workspace);
  if (n == 128)
    launch_plan<128, C, P>(launch, plan, q, k, a, u, state, o, offsets, slots, B, T, E, scale,
                           workspace);
}

inline float scan_scale(const GlaChunkScanOptions& opts, int n) {
  return opts.scale != 0.f ? opts.scale
                           : static_cast<float>(1.0 / std::sqrt(static_cast<double>(n)));
}

}  // namespace detail

#ifndef RODIMUS_CUDA_HOST_EMULATION
/// The plan gla_chunk_scan<Tin, Tout, C, P> would follow for these arguments on the current
/// device; `workspace_bytes` is what the split schedule needs (allocate it and pass it in
/// `opts.workspace` / `opts.workspace_bytes` to get that schedule). opts.workspace may be
/// null here. packed: offsets will be passed (then opts.total_tokens must be set).
template <int C = 64, ScanPrecision P = ScanPrecision::Split, class Tin = __nv_bfloat16>
GlaChunkScanPlan gla_chunk_scan_plan(int B, int T, int n, int E, bool packed,
                                     const GlaChunkScanOptions& opts = {}) {
  detail::check_arguments(nullptr, nullptr, nullptr, nullptr, B, T, n, E, packed, opts);
  return detail::make_plan(B, T, n, E, C, packed, opts, detail::multiprocessors(),
                           detail::column_ctas_per_sm<C, P, Tin>(n, E, opts));
}

/// Chunkwise GLA scan of B packed sequences on `stream` (SPEC 2.7 / 2.1), all pointers device
/// memory, row-major:
///   q, k: [Ntok, n], a: [Ntok, n] (log decay <= 0), u: [Ntok, E], o: [Ntok, E],
///   state: [S, n, E] fp32 (S_{-1} on entry, the last state on return); sequence b uses slot
///   opts.slots[b] (or b when opts.slots is null; slots must be distinct).
/// q, k, a, u 16-byte aligned (cudaMalloc'd arrays are).
/// offsets: [B + 1] device array of row offsets (variable lengths; T is then unused), or null
/// for B sequences of T tokens each (Ntok = B T). n is 32, 64 or 128, E a multiple of 64;
/// Tin is __nv_bfloat16 or float, Tout float or __nv_bfloat16; C (chunk) 16, 32 or 64
/// (shared memory: n = 128, and fp32 inputs at n = 64, need C <= 32 in the fused schedule;
/// too large a configuration throws ArgumentError). P: see ScanPrecision. The schedule:
/// see ScanSchedule and gla_chunk_scan_plan (the split schedule, for long sequences, needs
/// opts.workspace; with offsets also opts.total_tokens = offsets[B]).
/// Throws ArgumentError on a bad shape, BackendError on a CUDA error. Asynchronous.
template <class Tin, class Tout, int C = 64, ScanPrecision P = ScanPrecision::Split>
void gla_chunk_scan(const Tin* q, const Tin* k, const float* a, const Tin* u, float* state, Tout* o,
                    int B, int T, int n, int E, cudaStream_t stream, const int* offsets = nullptr,
                    GlaChunkScanOptions opts = {}) {
  static_assert(std::is_same_v<Tin, __nv_bfloat16> || std::is_same_v<Tin, float>,
                "gla_chunk_scan: inputs are __nv_bfloat16 or float");
  static_assert(std::is_same_v<Tout, __nv_bfloat16> || std::is_same_v<Tout, float>,
                "gla_chunk_scan: the output is __nv_bfloat16 or float");
  detail::check_arguments(q, k, a, u, B, T, n, E, offsets != nullptr, opts);
  if (B == 0 || (!offsets && T == 0)) return;
  const GlaChunkScanPlan plan = gla_chunk_scan_plan<C, P, Tin>(B, T, n, E, offsets != nullptr, opts);
  if (opts.schedule == ScanSchedule::Split && !plan.split)
    throw ArgumentError("rodimus::backend::cuda::gla_chunk_scan: the split schedule needs a "
                        "workspace of " + std::to_string(plan.workspace_bytes) +
                        " bytes (given " +
                        std::to_string(opts.workspace ? opts.workspace_bytes : 0) + ")");
  detail::launch_any_n<C, P>(detail::CudaLaunch{stream, "rodimus::backend::cuda::gla_chunk_scan"}, plan, q, k, a, u, state, o, offsets,
                             opts.slots, B, T, n, E, detail::scan_scale(opts, n), opts.workspace);
}

#endif  // RODIMUS_CUDA_HOST_EMULATION

}  // namespace rodimus::backend::cuda
