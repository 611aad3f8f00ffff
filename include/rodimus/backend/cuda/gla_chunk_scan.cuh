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
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "rodimus/core/error.hpp"

namespace rodimus::backend::cuda {

/// Precision of the tensor-core operands that are not exact bf16 inputs (decayed q and k, the
/// scores, the state): Split (default) takes each as two bf16 halves, hi + lo, about fp32
/// accuracy for 2-3x the tensor work; Bf16 rounds each to bf16 once (faster, ~3e-3 relative
/// error).
enum class ScanPrecision { Split, Bf16 };

namespace detail {

inline constexpr int kSubChunk = 8;  // L: tokens per sub-chunk (diagonal blocks are L x L)

// RODIMUS_CUDA_HOST_EMULATION: tests/cuda/emulate_gla_chunk_scan.cpp compiles the kernel as
// host code (one std::thread per CUDA thread) and supplies these two instructions itself.
#ifndef RODIMUS_CUDA_HOST_EMULATION
/// bf16 m16n8k16 tensor-core product, fp32 accumulate: d += a * b (PTX fragment layouts).
__device__ __forceinline__ void mma_bf16(float (&d)[4], const std::uint32_t (&a)[4],
                                         const std::uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

/// 2^x with the MUFU (relative error ~2^-22; 0 for large negative x).
__device__ __forceinline__ float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

/// 16-byte asynchronous copy global -> shared (sm_80+); zero-fills the 16 bytes when !in.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool in) {
  const auto d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src),
               "r"(in ? 16 : 0));
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

/// Waits for this thread's copies; a barrier then makes every thread's copies visible.
__device__ __forceinline__ void cp_async_wait_all() {
  asm volatile("cp.async.wait_group 0;\n" ::: "memory");
}
#endif  // RODIMUS_CUDA_HOST_EMULATION

__device__ __forceinline__ std::uint32_t bits(__nv_bfloat162 v) {
  std::uint32_t r;
  memcpy(&r, &v, sizeof r);
  return r;
}

/// Two floats to packed bf16 pairs hi = bf16(x), lo = bf16(x - hi); element 0 in the low half.
__device__ __forceinline__ void split2(float x0, float x1, std::uint32_t& hi, std::uint32_t& lo) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(x0, x1);
  hi = bits(h);
  lo = bits(__floats2bfloat162_rn(x0 - __low2float(h), x1 - __high2float(h)));
}

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

/// Compile-time shape of the kernel; all shared-memory offsets in bytes.
template <int N, int C, int TE, bool SplitU>
struct ScanShape {
  static_assert(N == 32 || N == 64 || N == 128, "gla_chunk_scan: n must be 32, 64 or 128");
  static_assert(C == 16 || C == 32 || C == 64, "gla_chunk_scan: chunk must be 16, 32 or 64");
  static_assert(TE == 64 || TE == 128, "gla_chunk_scan: column tile must be 64 or 128");
  static_assert(kSubChunk == 8,
                "gla_chunk_scan: the diagonal blocks' lane layout assumes 8 tokens");
  static constexpr int kWarps = TE / 16;  // warp w owns columns 16w .. 16w+15 of the tile
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kNS = C / kSubChunk;  // sub-chunks per chunk
  static constexpr int kF = N + 4;           // fp32 row stride [t][i] (16-byte rows, no conflicts)
  static constexpr int kBN = N + 8;          // bf16 row stride over i
  static constexpr int kBC = C + 8;          // bf16 row stride over tokens
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
  static constexpr int u_hi = a_lo + 2 * C * kBC;    // bf16 [TE][kBC] u^T
  static constexpr int u_lo = u_hi + 2 * TE * kBC;   // (fp32 inputs only)
  // float [kNS][N] tot_J; [kNS][N] scale exp2(G_J); [kNS][N] exp2(sum_{J'>J} tot)
  static constexpr int tot = u_lo + (SplitU ? 2 * TE * kBC : 0);
  static constexpr int fq = tot + 4 * kNS * N;
  static constexpr int fk = fq + 4 * kNS * N;
  static constexpr int decay = fk + 4 * kNS * N;  // float [N] exp2(b_C)
  static constexpr int pm = decay + 4 * N;        // float [kPairs][N] exp2(sum_{J<J'<I})
  // Staging of the next chunk, raw as in global memory, filled by cp.async.
  static constexpr int kIn = SplitU ? 4 : 2;                           // bytes of an input element
  static constexpr int st_q = pm + 4 * (kPairs > 0 ? kPairs : 1) * N;  // Tin [C][N]
  static constexpr int st_k = st_q + kIn * C * N;                      // Tin [C][N]
  static constexpr int st_a = st_k + kIn * C * N;                      // float [C][N]
  static constexpr int st_u = st_a + 4 * C * N;                        // Tin [C][TE]
  static constexpr int bytes = st_u + kIn * C * TE;

  __host__ __device__ static constexpr int pair(int I, int J) { return I * (I - 1) / 2 + J; }
};

/// The scan kernel: grid (E / TE, B), block ScanShape::kThreads, dynamic shared ScanShape::bytes.
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
  constexpr bool kSplitU = !std::is_same_v<Tin, __nv_bfloat16>;
  constexpr bool kSplit = P == ScanPrecision::Split;  // the lo terms
  using Sh = ScanShape<N, C, TE, kSplitU>;
  constexpr int NS = Sh::kNS;
  constexpr int F = Sh::kF;
  constexpr int BN2 = Sh::kBN / 2;  // 32-bit words per bf16 row over i
  constexpr int BC2 = Sh::kBC / 2;  // 32-bit words per bf16 row over tokens
  constexpr int NT = Sh::kThreads;
  constexpr float kLog2e = 1.4426950408889634f;

  extern __shared__ __align__(16) unsigned char smem[];
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
  std::uint32_t* u_hi = reinterpret_cast<std::uint32_t*>(smem + Sh::u_hi);
  [[maybe_unused]] std::uint32_t* u_lo = reinterpret_cast<std::uint32_t*>(smem + Sh::u_lo);
  float* tot = reinterpret_cast<float*>(smem + Sh::tot);
  float* fq = reinterpret_cast<float*>(smem + Sh::fq);
  float* fk = reinterpret_cast<float*>(smem + Sh::fk);
  float* decay = reinterpret_cast<float*>(smem + Sh::decay);
  float* pm = reinterpret_cast<float*>(smem + Sh::pm);

  // Word (e, w) of u^T (w = token pair): rows of BC2 words, w XOR-swizzled by e / 8 so that
  // the transposing stores of step 1 spread over the banks; the fragment loads, whose 8 rows
  // share e / 8, stay conflict-free.
  const auto uidx = [](int e, int w) { return e * BC2 + (w ^ (4 * ((e / 8) & (C / 8 - 1)))); };

  const int tid = static_cast<int>(threadIdx.x);
  const int warp = tid / 32;
  const int lane = tid % 32;
  const int g = lane / 4;   // fragment row group
  const int qd = lane % 4;  // fragment column pair
  const int b = static_cast<int>(blockIdx.y);
  const int e0 = static_cast<int>(blockIdx.x) * TE;
  const std::int64_t row0 = offsets ? offsets[b] : std::int64_t(b) * T;
  const int len_seq = offsets ? offsets[b + 1] - offsets[b] : T;

  // S^T of this warp's 16 columns as m16n8 accumulators: rows e, columns i.
  // sreg[ni][c]: e = 16 warp + g + 8 (c / 2), i = 8 ni + 2 qd + (c % 2).
  float sreg[N / 8][4];
  float* st = state + std::int64_t(slots ? slots[b] : b) * N * E + e0 + 16 * warp;
#pragma unroll
  for (int ni = 0; ni < N / 8; ++ni)
#pragma unroll
    for (int c = 0; c < 4; ++c)
      sreg[ni][c] = st[std::int64_t(8 * ni + 2 * qd + (c % 2)) * E + g + 8 * (c / 2)];

  // Issues the cp.async copies of the chunk at c, rows past the sequence zero-filled (their
  // source address clamped to the first row of the sequence).
  Tin* sq = reinterpret_cast<Tin*>(smem + Sh::st_q);
  Tin* sk = reinterpret_cast<Tin*>(smem + Sh::st_k);
  float* sa = reinterpret_cast<float*>(smem + Sh::st_a);
  Tin* su = reinterpret_cast<Tin*>(smem + Sh::st_u);
  const auto stage = [&](int c) {
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
    for (int idx = tid; idx < C * TE / kV; idx += NT) {
      const int t = idx / (TE / kV), e = kV * (idx % (TE / kV));
      const bool in = t < lenc;
      cp_async16(su + t * TE + e, u + (row0 + (in ? c + t : 0)) * E + e0 + e, in);
    }
    cp_async_commit();
  };
  if (len_seq > 0) stage(0);

  for (int c0 = 0; c0 < len_seq; c0 += C) {
    const int len = len_seq - c0 < C ? len_seq - c0 : C;
    const std::int64_t r0 = row0 + c0;

    // 1. The staged chunk (rows past the end are zero; alpha = 0 keeps the chunk's last decay)
    //    into the working layouts: q, k, alpha = a log2(e) as fp32 [t][i]; u^T as bf16 pairs
    //    along t (word (e, t / 2) at uidx). Then the copies of the next chunk start, to land
    //    while this one is computed.
    cp_async_wait_all();
    __syncthreads();
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
    for (int idx = tid; idx < (C / 2) * (TE / 8); idx += NT) {
      const int tp = idx / (TE / 8), ec = 8 * (idx % (TE / 8));
      float u0[8], u1[8];
      load8(su + (2 * tp) * TE + ec, true, u0);
      load8(su + (2 * tp + 1) * TE + ec, true, u1);
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        std::uint32_t hi, lo;
        split2(u0[j], u1[j], hi, lo);
        u_hi[uidx(ec + j, tp)] = hi;
        if constexpr (kSplitU) u_lo[uidx(ec + j, tp)] = lo;
      }
    }
    __syncthreads();
    if (c0 + C < len_seq) stage(c0 + C);

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
    for (int tile = warp; tile < (C / 16) * (C / 16); tile += Sh::kWarps) {
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
    for (int J = warp; J < NS; J += Sh::kWarps) {
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

    // 5. Per warp, its 16 columns: o = qt S_prev + A u, then S_next = decay S_prev + kt^T u.
    //    B fragments of S (rows i, columns e) come straight from the S^T accumulators.
    const int ew = 16 * warp;  // first column of this warp inside the tile
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
        const int w0 = 8 * kk + qd;
        const std::uint32_t ah[4] = {qt_hi[t_lo * BN2 + w0], qt_hi[t_hi * BN2 + w0],
                                     qt_hi[t_lo * BN2 + w0 + 4], qt_hi[t_hi * BN2 + w0 + 4]};
        const std::uint32_t al[4] = {qt_lo[t_lo * BN2 + w0], qt_lo[t_hi * BN2 + w0],
                                     qt_lo[t_lo * BN2 + w0 + 4], qt_lo[t_hi * BN2 + w0 + 4]};
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
        const int w0 = 8 * kk + qd;
        const std::uint32_t ah[4] = {a_hi[t_lo * BC2 + w0], a_hi[t_hi * BC2 + w0],
                                     a_hi[t_lo * BC2 + w0 + 4], a_hi[t_hi * BC2 + w0 + 4]};
        const std::uint32_t al[4] = {a_lo[t_lo * BC2 + w0], a_lo[t_hi * BC2 + w0],
                                     a_lo[t_lo * BC2 + w0 + 4], a_lo[t_hi * BC2 + w0 + 4]};
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int e = ew + 8 * h + g;
          const std::uint32_t bu[2] = {u_hi[uidx(e, w0)], u_hi[uidx(e, w0 + 4)]};
          mma_bf16(acc[h], ah, bu);
          if constexpr (kSplit) mma_bf16(acc2[h], al, bu);
          if constexpr (kSplitU && kSplit) {
            const std::uint32_t bl[2] = {u_lo[uidx(e, w0)], u_lo[uidx(e, w0 + 4)]};
            mma_bf16(acc2[h], ah, bl);
          }
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
          Tout* p = o + (r0 + t) * E + e;
          if constexpr (std::is_same_v<Tout, float>) {
            *reinterpret_cast<float2*>(p) = make_float2(acc[h][2 * half], acc[h][2 * half + 1]);
          } else {
            *reinterpret_cast<__nv_bfloat162*>(p) =
                __floats2bfloat162_rn(acc[h][2 * half], acc[h][2 * half + 1]);
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
      const int w0 = 8 * kk + qd;
      const std::uint32_t au[4] = {u_hi[uidx(ew + g, w0)], u_hi[uidx(ew + g + 8, w0)],
                                   u_hi[uidx(ew + g, w0 + 4)], u_hi[uidx(ew + g + 8, w0 + 4)]};
      std::uint32_t aul[4] = {0u, 0u, 0u, 0u};
      if constexpr (kSplitU) {
        aul[0] = u_lo[uidx(ew + g, w0)];
        aul[1] = u_lo[uidx(ew + g + 8, w0)];
        aul[2] = u_lo[uidx(ew + g, w0 + 4)];
        aul[3] = u_lo[uidx(ew + g + 8, w0 + 4)];
      }
#pragma unroll
      for (int ni = 0; ni < N / 8; ++ni) {
        const int i = 8 * ni + g;
        const std::uint32_t bh[2] = {kt_hi[i * BC2 + w0], kt_hi[i * BC2 + w0 + 4]};
        const std::uint32_t bl[2] = {kt_lo[i * BC2 + w0], kt_lo[i * BC2 + w0 + 4]};
        mma_bf16(sreg[ni], au, bh);
        if constexpr (kSplit) mma_bf16(sreg[ni], au, bl);
        if constexpr (kSplitU && kSplit) mma_bf16(sreg[ni], aul, bh);
      }
    }
    __syncthreads();  // shared buffers are refilled by the next chunk
  }

#pragma unroll
  for (int ni = 0; ni < N / 8; ++ni)
#pragma unroll
    for (int c = 0; c < 4; ++c)
      st[std::int64_t(8 * ni + 2 * qd + (c % 2)) * E + g + 8 * (c / 2)] = sreg[ni][c];
}

#ifndef RODIMUS_CUDA_HOST_EMULATION
inline void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw BackendError(std::string("rodimus::backend::cuda::gla_chunk_scan: ") + what + ": " +
                       cudaGetErrorString(err));
}

template <int N, int C, int TE, ScanPrecision P, class Tin, class Tout>
void launch_gla_chunk_scan(const Tin* q, const Tin* k, const float* a, const Tin* u, float* state,
                           Tout* o, const int* offsets, const int* slots, int B, int T, int E,
                           float scale, cudaStream_t stream) {
  using Sh = ScanShape<N, C, TE, !std::is_same_v<Tin, __nv_bfloat16>>;
  auto kernel = gla_chunk_scan_kernel<N, C, TE, Tin, Tout, P>;
  int device = 0, optin = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  check_cuda(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
             "cudaDeviceGetAttribute");
  if (Sh::bytes > optin)
    throw ArgumentError("rodimus::backend::cuda::gla_chunk_scan: n = " + std::to_string(N) +
                        " with chunk " + std::to_string(C) + " needs " + std::to_string(Sh::bytes) +
                        " bytes of shared memory per block; this device allows " +
                        std::to_string(optin) + " (use a smaller chunk)");
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Sh::bytes),
             "cudaFuncSetAttribute");
  const dim3 grid(static_cast<unsigned>(E / TE), static_cast<unsigned>(B));
  kernel<<<grid, Sh::kThreads, Sh::bytes, stream>>>(q, k, a, u, state, o, offsets, slots, T, E,
                                                    scale);
  check_cuda(cudaGetLastError(), "kernel launch");
}

template <int N, int C, ScanPrecision P, class Tin, class Tout>
void launch_any_tile(int tile, const Tin* q, const Tin* k, const float* a, const Tin* u,
                     float* state, Tout* o, const int* offsets, const int* slots, int B, int T,
                     int E, float scale, cudaStream_t stream) {
  if (tile == 128)
    launch_gla_chunk_scan<N, C, 128, P>(q, k, a, u, state, o, offsets, slots, B, T, E, scale,
                                        stream);
  else
    launch_gla_chunk_scan<N, C, 64, P>(q, k, a, u, state, o, offsets, slots, B, T, E, scale,
                                       stream);
}
#endif  // RODIMUS_CUDA_HOST_EMULATION

}  // namespace detail

/// Column tile of one CTA: 0 picks 128 when that still gives one CTA per multiprocessor,
/// else 64.
struct GlaChunkScanOptions {
  int column_tile = 0;          // 0 (auto), 64 or 128
  const int* slots = nullptr;   // [B] device array: state slot of each sequence; null: slot b
  float scale = 0.f;            // o = scale q S; 0 means 1 / sqrt(n)
};

#ifndef RODIMUS_CUDA_HOST_EMULATION
/// Chunkwise GLA scan of B packed sequences on `stream` (SPEC 2.7 / 2.1), all pointers device
/// memory, row-major:
///   q, k: [Ntok, n], a: [Ntok, n] (log decay <= 0), u: [Ntok, E], o: [Ntok, E],
///   state: [S, n, E] fp32 (S_{-1} on entry, the last state on return); sequence b uses slot
///   opts.slots[b] (or b when opts.slots is null; slots must be distinct).
/// q, k, a, u 16-byte aligned (cudaMalloc'd arrays are).
/// offsets: [B + 1] device array of row offsets (variable lengths; T is then unused), or null
/// for B sequences of T tokens each (Ntok = B T). n is 32, 64 or 128, E a multiple of 64;
/// Tin is __nv_bfloat16 or float, Tout float or __nv_bfloat16; C (chunk) 16, 32 or 64
/// (shared memory: n = 128, and fp32 inputs at n = 64, need C <= 32; too large a
/// configuration throws ArgumentError). P: see ScanPrecision.
/// Throws ArgumentError on a bad shape, BackendError on a CUDA error. Asynchronous.
template <class Tin, class Tout, int C = 64, ScanPrecision P = ScanPrecision::Split>
void gla_chunk_scan(const Tin* q, const Tin* k, const float* a, const Tin* u, float* state, Tout* o,
                    int B, int T, int n, int E, cudaStream_t stream, const int* offsets = nullptr,
                    GlaChunkScanOptions opts = {}) {
  static_assert(std::is_same_v<Tin, __nv_bfloat16> || std::is_same_v<Tin, float>,
                "gla_chunk_scan: inputs are __nv_bfloat16 or float");
  static_assert(std::is_same_v<Tout, __nv_bfloat16> || std::is_same_v<Tout, float>,
                "gla_chunk_scan: the output is __nv_bfloat16 or float");
  const std::string who = "rodimus::backend::cuda::gla_chunk_scan: ";
  if (n != 32 && n != 64 && n != 128)
    throw ArgumentError(who + "n = " + std::to_string(n) + " is not supported (32, 64 or 128)");
  if (E <= 0 || E % 64 != 0)
    throw ArgumentError(who + "E = " + std::to_string(E) + " must be a positive multiple of 64");
  if (B < 0 || (!offsets && T < 0)) throw ArgumentError(who + "negative batch or length");
  if (opts.column_tile != 0 && opts.column_tile != 64 && opts.column_tile != 128)
    throw ArgumentError(who + "column_tile must be 0, 64 or 128");
  if (opts.column_tile == 128 && E % 128 != 0)
    throw ArgumentError(who + "column_tile 128 needs E % 128 == 0");
  const auto misaligned = [](const void* p) {
    return reinterpret_cast<std::uintptr_t>(p) % 16 != 0;
  };
  if (misaligned(q) || misaligned(k) || misaligned(a) || misaligned(u))
    throw ArgumentError(who + "q, k, a and u must be 16-byte aligned");
  if (B == 0 || (!offsets && T == 0)) return;
  int tile = opts.column_tile;
  if (tile == 0) {
    int device = 0, sms = 0;
    detail::check_cuda(cudaGetDevice(&device), "cudaGetDevice");
    detail::check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device),
                       "cudaDeviceGetAttribute");
    tile = (E % 128 == 0 && std::int64_t(B) * (E / 128) >= sms) ? 128 : 64;
  }
  const int* offs = offsets;
  const int* sl = opts.slots;
  const float sc =
      opts.scale != 0.f ? opts.scale : static_cast<float>(1.0 / std::sqrt(static_cast<double>(n)));
  if (n == 32)
    detail::launch_any_tile<32, C, P>(tile, q, k, a, u, state, o, offs, sl, B, T, E, sc, stream);
  if (n == 64)
    detail::launch_any_tile<64, C, P>(tile, q, k, a, u, state, o, offs, sl, B, T, E, sc, stream);
  if (n == 128)
    detail::launch_any_tile<128, C, P>(tile, q, k, a, u, state, o, offs, sl, B, T, E, sc, stream);
}

#endif  // RODIMUS_CUDA_HOST_EMULATION

}  // namespace rodimus::backend::cuda
