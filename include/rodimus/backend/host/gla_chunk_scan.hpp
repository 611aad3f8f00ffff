// Host kernel of the chunkwise GLA scan (SPEC 2.1, ChunkedScan<C> on host spaces): the same
// result as the recurrence  S_t = diag(exp(a_t)) S_{t-1} + k_t^T u_t,  o_t = scale q_t S_t,
// computed per chunk of C tokens as matrix products.
//
// Per chunk (tokens t0 .. t0 + L - 1 of one sequence, L <= C), with the chunk's decays applied
// to q and k so that the products below need no exponentials:
//   O     = [Qd | A] [S ; U]        Qd[t] = scale q_t exp(b_t)        [L, n + L] x [n + L, E]
//   S    <- diag(tot) S + Kd^T U     Kd[s] = k_s exp(b_{L-1} - b_s)    [n, L] x [L, E]
//   A[t, s] = scale sum_i q_t[i] k_s[i] exp(b_t[i] - b_s[i])  (s <= t, else 0),  tot = exp(b_{L-1})
// where b_t = sum_{r <= t} a_r (from the chunk start). The first product is one product with an
// inner dimension of n + L (the inter-chunk term and the intra-chunk term together); rows of O
// stop their U part at their own token (A is lower triangular), so the intra term costs half.
//
// Exponents (SPEC 2.1 strong decay; the decomposition of backend/cuda/gla_chunk_scan.cuh): the
// chunk is cut into sub-chunks of kChunkSub = 8 tokens; c_t is the sum of a over t's sub-chunk
// from its start up to t, r_s the sum over s's sub-chunk after s, tot_J the sum over sub-chunk J.
// Every exponential is of such a sum over its own range (<= 0, never a difference of long
// cumulative sums), and the long-range factors are products of them:
//   Qd[t] = scale q_t exp(c_t) prod_{J < I} exp(tot_J)          (t in sub-chunk I)
//   Kd[s] = k_s exp(r_s) prod_{J' > J} exp(tot_J')              (s in sub-chunk J)
//   A[t, s], J < I: sum_i (q_t exp(c_t))[i] (prod_{J < J' < I} exp(tot_J'))[i] (k_s exp(r_s))[i]
//   A[t, s], J = I: sum_i q_t[i] k_s[i] exp(sum_{s < r <= t} a_r[i])   (pairwise, 8 x 8)
// Every factor is in [0, 1], so nothing overflows for any a in [-inf, 0] (a > 0 or NaN counts as
// 0, like the recurrent host kernel); an underflow to 0 is below the factor's true value's
// relevance (each factor bounds the product). Products over several sub-chunks do reach
// subnormal floats under strong decay, which x86 cores process many times slower: both passes
// flush them to zero (FlushSubnormals, cpu_features.hpp).
//
// Work split. Two passes. (1) prep: one work item per chunk (all chunks of all sequences are
// independent here) writes the chunk's [Qd | A], Kd^T and tot into the workspace; (2) columns:
// one work item per (sequence, group of kChunkGroupCols columns) walks the sequence's chunks in
// order. Per block of 64 columns it copies the block's state rows and the chunk's u rows into
// one packed panel [S ; U] (in memory those rows are E floats = 16 KiB apart and would share a
// handful of L1 sets), computes O in register blocks of 6 tokens x 64 columns (24 zmm
// accumulators, one broadcast and four FMAs per inner row) and then the block's new state the
// same way. Columns never interact, so items need no synchronisation; the column-independent
// part is computed once per chunk (pass 1), not once per item.
//
// Why not cblas_sgemm: the products are small (M = C or n, K <= n + C, N = a column block) and
// run inside a Kokkos (OpenMP) parallel region; Debian's OpenBLAS is the pthread build, which
// may thread a call of this size on its own (oversubscribing the OpenMP threads), and it packs
// both operands per call. Measured on this machine, one thread: OpenBLAS sgemm 2048^3 at
// 178 GFLOP/s, [64 x 128] x [128 x 512] in a loop at 124 GFLOP/s; the column pass here runs at
// ~4.5 G zmm FMA/s = ~143 GFLOP/s (80 % of the 2048^3 rate) and fuses the two output products.
//
// Roofline at the Rodimus shape (n = 64, E = 4096), per token and state column: the chunk form
// needs 2n (q S and k^T u) + about C/2 + 3 (A u, lower triangle in blocks of 6 rows) FMAs: 163
// at C = 64, 147 at C = 32, against the recurrence's 3n = 192 vector operations (a multiply and
// two FMAs). That is 2 x 163 x 4096 = 1.34 MFLOP per token at C = 64; at the 178 GFLOP/s sgemm
// rate the floor is 7.5 us per token, ~133k tokens/s per thread. The prep pass adds per chunk
// C n (2 + 4.5) exponentials and ~C^2 n / 2 FMAs for the scores (~6 % of the time at C = 64).
// Bytes per token are the recurrent kernel's (q, k, a, u in, o out: 33 KiB), ~40 FLOP/B: compute-
// bound. Measured (T = 2048, one thread, quiet machine, this kernel called directly): prep 1.3
// ms + columns 19.5 ms = ~98k tokens/s at C = 64 (74 % of the floor); docs/performance.md has
// the benchmark figures.
#pragma once

#include <algorithm>
#include <cstdint>

#include "rodimus/backend/exec_space_traits.hpp"
#include "rodimus/backend/host/cpu_features.hpp"
#include "rodimus/backend/host/fast_math.hpp"

namespace rodimus::backend::host {

/// Tokens per sub-chunk (the diagonal score blocks are computed pairwise in log space).
inline constexpr int kChunkSub = 8;
/// Largest chunk size and state height of the host chunk kernel.
inline constexpr int kChunkMaxC = 256;
inline constexpr int kChunkMaxRows = 256;
/// Columns per work item of the column pass (a multiple of 64).
inline constexpr int kChunkGroupCols = 512;

/// Plain pointers and sizes of one chunked scan call (host memory, fp32, rows contiguous).
struct GlaChunkArgs {
  const float* q;  // [N, ldq]
  const float* k;  // [N, ldk]
  const float* a;  // [N, lda]  log decay (<= 0)
  const float* u;  // [N, ldu]
  float* o;        // [N, ldo]
  float* state;    // [S, n, E] contiguous
  std::int64_t ldq, ldk, lda, ldu, ldo;
  int n, e;
  float scale;
  const int* offsets;  // [B + 1]
  const int* slot;     // [B]
  int num_seqs;
  int chunk;               // C, 1..kChunkMaxC
  const int* first_chunk;  // [B + 1]: index of each sequence's first chunk (gla_chunk_index)
  float* prep;             // [num_chunks, ld_prep] (gla_chunk_prep_floats)
  std::int64_t ld_prep;
  int group_cols;  // columns per work item of the column pass (multiple of 64)
};

/// Floats of workspace per chunk: [Qd | A] (C x (n + C)), Kd^T (n x C), tot (n), and scratch
/// for the prep pass (k exp(r): C x n; exp(tot_J): C/8 x n; two rows of n), rounded to 16.
inline std::int64_t gla_chunk_prep_floats(int n, int c) {
  const std::int64_t sub = (c + kChunkSub - 1) / kChunkSub;
  const std::int64_t f = std::int64_t(c) * (n + c) + std::int64_t(n) * c + n + std::int64_t(c) * n +
                         sub * n + 2 * std::int64_t(n);
  return (f + 15) / 16 * 16;
}

/// Fills first_chunk[0..B] (chunks of C tokens per sequence, a zero-length sequence has none)
/// from host offsets; returns the number of chunks.
inline int gla_chunk_index(const int* offsets, int num_seqs, int c, int* first_chunk) {
  int total = 0;
  for (int s = 0; s < num_seqs; ++s) {
    first_chunk[s] = total;
    total += (offsets[s + 1] - offsets[s] + c - 1) / c;
  }
  first_chunk[num_seqs] = total;
  return total;
}

namespace detail {

// exp(x) for x <= 0 (0 below -87, -inf included): exp_nonpositive's polynomial with the
// rounding of exp_clamped (GCC 12 does not vectorise floorf inside target("avx512f") code).
[[gnu::always_inline]] inline float chunk_exp(float x) {
  const float xc = x < -87.f ? -87.f : x;
  const float v = exp_reduced(xc, (xc * 1.44269504088896341f + 12582912.f) - 12582912.f);
  return x < -87.f ? 0.f : v;
}

// sum_i x[i] y[i] (z[i]: a third factor when non-null), in 16 partial sums so that it
// vectorises (the build does not reassociate float sums on its own).
template <bool Fma>
[[gnu::always_inline]] inline float chunk_dot(const float* __restrict x, const float* __restrict y,
                                              int n) {
  float acc[16] = {};
  int i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) acc[j] = madd<Fma>(x[i + j], y[i + j], acc[j]);
  for (int j = 0; i + j < n; ++j) acc[j] = madd<Fma>(x[i + j], y[i + j], acc[j]);
  for (int h = 8; h >= 1; h /= 2)
    for (int j = 0; j < h; ++j) acc[j] += acc[j + h];
  return acc[0];
}

// Pass 1 for chunk `ci` (of sequence `s`, tokens [t0, t0 + len)). Vectorised over the n rows.
template <bool Fma>
[[gnu::always_inline]] inline void chunk_prep_body(const GlaChunkArgs& g, std::int64_t ci) {
  const int ns = g.num_seqs;
  // the sequence of chunk ci: the last s with first_chunk[s] <= ci (zero-length ones skipped)
  int lo = 0, hi = ns;  // first_chunk[lo] <= ci < first_chunk[hi]
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (g.first_chunk[mid] <= ci)
      lo = mid;
    else
      hi = mid;
  }
  const int s = lo;
  const int c = g.chunk, n = g.n, ldqa = n + c;
  const std::int64_t t0 = g.offsets[s] + (ci - g.first_chunk[s]) * std::int64_t(c);
  const int len = static_cast<int>(std::min<std::int64_t>(c, g.offsets[s + 1] - t0));
  const int nsub = (len + kChunkSub - 1) / kChunkSub;
  float* __restrict qa = g.prep + ci * g.ld_prep;       // [c, n + c]
  float* __restrict kdt = qa + std::int64_t(c) * ldqa;  // [n, c]
  float* __restrict tot = kdt + std::int64_t(n) * c;    // [n]
  float* __restrict khm = tot + n;                      // [n, c] scratch, k exp(r) M_IJ
  float* __restrict es = khm + std::int64_t(c) * n;     // [nsub, n] exp(tot_J)
  float* __restrict w = es + std::int64_t((c + kChunkSub - 1) / kChunkSub) * n;  // [n]
  float* __restrict m = w + n;                                                   // [n]
  auto la = [&](int t, int i) {
    const float x = g.a[(t0 + t) * g.lda + i];
    return x < 0.f ? x : 0.f;  // a > 0 and NaN count as no decay, like the recurrent kernel
  };
  // sub-chunk sums: qh (in the Qd slots of qa), kh^T (in kdt), exp(tot_J)
  for (int J = 0; J < nsub; ++J) {
    const int j0 = J * kChunkSub, j1 = std::min(len, j0 + kChunkSub);
    for (int i = 0; i < n; ++i) w[i] = 0.f;
    for (int t = j0; t < j1; ++t) {
      const float* __restrict qt = g.q + (t0 + t) * g.ldq;
      float* __restrict out = qa + std::int64_t(t) * ldqa;
      for (int i = 0; i < n; ++i) {
        w[i] += la(t, i);
        out[i] = qt[i] * chunk_exp(w[i]);
      }
    }
    for (int i = 0; i < n; ++i) w[i] = 0.f;
    for (int t = j1 - 1; t >= j0; --t) {
      const float* __restrict kt = g.k + (t0 + t) * g.ldk;
      for (int i = 0; i < n; ++i) {
        kdt[std::int64_t(i) * c + t] = kt[i] * chunk_exp(w[i]);
        w[i] += la(t, i);
      }
    }
    for (int i = 0; i < n; ++i) es[std::int64_t(J) * n + i] = chunk_exp(w[i]);
  }
  // scores: zero, then the diagonal sub-blocks pairwise, then the off-diagonal ones
  for (int t = 0; t < c; ++t) {
    float* __restrict row = qa + std::int64_t(t) * ldqa + n;
    for (int j = 0; j < c; ++j) row[j] = 0.f;
  }
  for (int I = 0; I < nsub; ++I) {
    const int i0 = I * kChunkSub, i1 = std::min(len, i0 + kChunkSub);
    for (int t = i0; t < i1; ++t) {
      const float* __restrict qt = g.q + (t0 + t) * g.ldq;
      float* __restrict row = qa + std::int64_t(t) * ldqa + n;
      for (int i = 0; i < n; ++i) w[i] = 0.f;  // sum of a over (s, t]
      for (int sj = t; sj >= i0; --sj) {
        const float* __restrict ks = g.k + (t0 + sj) * g.ldk;
        for (int i = 0; i < n; ++i) m[i] = qt[i] * chunk_exp(w[i]);
        row[sj] = g.scale * chunk_dot<Fma>(m, ks, n);
        if (sj > i0)
          for (int i = 0; i < n; ++i) w[i] += la(sj, i);
      }
    }
    if (I == 0) continue;
    // off-diagonal: khm[i][s] = kh^T[i][s] prod_{J < J' < I} exp(tot_J') for s < i0 (sub-chunk
    // J of s), then the rows of I as a product over i, vectorised along s
    for (int i = 0; i < n; ++i) m[i] = 1.f;
    for (int J = I - 1; J >= 0; --J) {
      const int j0 = J * kChunkSub;
      for (int i = 0; i < n; ++i)
        for (int sj = j0; sj < j0 + kChunkSub; ++sj)
          khm[std::int64_t(i) * c + sj] = kdt[std::int64_t(i) * c + sj] * m[i];
      for (int i = 0; i < n; ++i) m[i] *= es[std::int64_t(J) * n + i];
    }
    float acc[kChunkMaxC];
    for (int t = i0; t < i1; ++t) {
      const float* __restrict qh = qa + std::int64_t(t) * ldqa;
      float* __restrict row = qa + std::int64_t(t) * ldqa + n;
      for (int sj = 0; sj < i0; ++sj) acc[sj] = 0.f;
      for (int i = 0; i < n; ++i) {
        const float x = qh[i];
        const float* __restrict kr = khm + std::int64_t(i) * c;
        for (int sj = 0; sj < i0; ++sj) acc[sj] = madd<Fma>(x, kr[sj], acc[sj]);
      }
      for (int sj = 0; sj < i0; ++sj) row[sj] = g.scale * acc[sj];
    }
  }
  // Qd = scale qh prod_{J < I} exp(tot_J); tot = prod of all
  for (int i = 0; i < n; ++i) m[i] = 1.f;
  for (int I = 0; I < nsub; ++I) {
    const int i0 = I * kChunkSub, i1 = std::min(len, i0 + kChunkSub);
    for (int t = i0; t < i1; ++t) {
      float* __restrict qh = qa + std::int64_t(t) * ldqa;
      for (int i = 0; i < n; ++i) qh[i] = g.scale * qh[i] * m[i];
    }
    for (int i = 0; i < n; ++i) m[i] *= es[std::int64_t(I) * n + i];
  }
  for (int i = 0; i < n; ++i) tot[i] = m[i];
  // Kd^T[i][s] = kh_s[i] prod_{J' > J} exp(tot_J')
  for (int i = 0; i < n; ++i) m[i] = 1.f;
  for (int J = nsub - 1; J >= 0; --J) {
    const int j0 = J * kChunkSub, j1 = std::min(len, j0 + kChunkSub);
    for (int i = 0; i < n; ++i)
      for (int t = j0; t < j1; ++t) kdt[std::int64_t(i) * c + t] *= m[i];
    for (int i = 0; i < n; ++i) m[i] *= es[std::int64_t(J) * n + i];
  }
}

// The chunk (sequence s, tokens [t0, t0 + len)) of the column pass, columns [c0, c1):
// portable loops over blocks of 64 columns.
template <bool Fma>
[[gnu::always_inline]] inline void chunk_cols_portable(const GlaChunkArgs& g, const float* qa,
                                                       float* st, std::int64_t t0, int len, int c0,
                                                       int c1) {
  constexpr int W = 64;
  const int n = g.n, c = g.chunk, ldqa = n + c;
  const float* kdt = qa + std::int64_t(c) * ldqa;
  const float* tot = kdt + std::int64_t(n) * c;
  float acc[W];
  for (int b0 = c0; b0 < c1; b0 += W) {
    const int w = std::min(W, c1 - b0);
    for (int t = 0; t < len; ++t) {
      const float* __restrict ar = qa + std::int64_t(t) * ldqa;
      for (int j = 0; j < W; ++j) acc[j] = 0.f;
      for (int i = 0; i < n; ++i) {
        const float* __restrict sr = st + std::int64_t(i) * g.e + b0;
        const float x = ar[i];
        for (int j = 0; j < w; ++j) acc[j] = madd<Fma>(x, sr[j], acc[j]);
      }
      for (int sj = 0; sj <= t; ++sj) {
        const float* __restrict ur = g.u + (t0 + sj) * g.ldu + b0;
        const float x = ar[n + sj];
        for (int j = 0; j < w; ++j) acc[j] = madd<Fma>(x, ur[j], acc[j]);
      }
      float* __restrict orow = g.o + (t0 + t) * g.ldo + b0;
      for (int j = 0; j < w; ++j) orow[j] = acc[j];
    }
    for (int i = 0; i < n; ++i) {
      float* __restrict sr = st + std::int64_t(i) * g.e + b0;
      const float* __restrict kr = kdt + std::int64_t(i) * c;
      for (int j = 0; j < w; ++j) acc[j] = tot[i] * sr[j];
      for (int sj = 0; sj < len; ++sj) {
        const float* __restrict ur = g.u + (t0 + sj) * g.ldu + b0;
        const float x = kr[sj];
        for (int j = 0; j < w; ++j) acc[j] = madd<Fma>(x, ur[j], acc[j]);
      }
      for (int j = 0; j < w; ++j) sr[j] = acc[j];
    }
  }
}

#if RODIMUS_HAVE_X86_DISPATCH
// MR rows x NV vectors of 16 columns: out rows = sum_{k < kn} A[r][k] B[k] (+ init[r] * out
// rows when `init` is non-null), B packed (rows of 16 * NV floats), A rows of ld lda; stores
// the columns of mask mk to out (ld ldo).
template <int MR, int NV>
RODIMUS_TARGET_AVX512 inline void chunk_mk_avx512(const float* A, std::int64_t lda,
                                                  const float* __restrict B, int kn,
                                                  const float* init, float* out, std::int64_t ldo,
                                                  const __mmask16* mk) {
  __m512 acc[MR][NV];
  if (init != nullptr) {
RODIMUS_HOST_UNROLL(16)
    for (int r = 0; r < MR; ++r) {
      const __m512 f = _mm512_set1_ps(init[r]);
RODIMUS_HOST_UNROLL(8)
      for (int v = 0; v < NV; ++v)
        acc[r][v] = _mm512_mul_ps(f, _mm512_maskz_loadu_ps(mk[v], out + r * ldo + 16 * v));
    }
  } else {
RODIMUS_HOST_UNROLL(16)
    for (int r = 0; r < MR; ++r)
RODIMUS_HOST_UNROLL(8)
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  }
  for (int kk = 0; kk < kn; ++kk) {
    __m512 b[NV];
RODIMUS_HOST_UNROLL(8)
    for (int v = 0; v < NV; ++v) b[v] = _mm512_load_ps(B + kk * (16 * NV) + 16 * v);
RODIMUS_HOST_UNROLL(16)
    for (int r = 0; r < MR; ++r) {
      const __m512 x = _mm512_set1_ps(A[r * lda + kk]);
RODIMUS_HOST_UNROLL(8)
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(x, b[v], acc[r][v]);
    }
  }
RODIMUS_HOST_UNROLL(16)
  for (int r = 0; r < MR; ++r)
RODIMUS_HOST_UNROLL(8)
    for (int v = 0; v < NV; ++v) _mm512_mask_storeu_ps(out + r * ldo + 16 * v, mk[v], acc[r][v]);
}

// Register block: kChunkMR rows x kChunkNV vectors of 16 columns (24 accumulators). Measured at
// n = 64, C = 64 (columns pass, one thread): 6 x 4 at 4.5 G FMA/s; 12 x 2, 8 x 3 and 24 x 1 at
// 3.2, 3.5 and 2.2.
inline constexpr int kChunkNV = 4;
inline constexpr int kChunkMR = 6;

// The chunk's columns [c0, c1) with the AVX-512 register blocks. Per block of 16 NV columns the
// state rows and the chunk's u rows are first copied into one packed panel [S ; U] (rows 16 KiB
// apart in memory would share a handful of L1 sets; packed, the panel stays in L1).
RODIMUS_TARGET_AVX512 inline void chunk_cols_avx512(const GlaChunkArgs& g, const float* qa,
                                                    float* st, std::int64_t t0, int len, int c0,
                                                    int c1) {
  constexpr int NV = kChunkNV, MR = kChunkMR, W = 16 * NV;
  alignas(64) float panel[(kChunkMaxRows + kChunkMaxC) * W];
  const int n = g.n, c = g.chunk;
  const std::int64_t ldqa = n + c;
  const float* kdt = qa + std::int64_t(c) * ldqa;
  const float* tot = kdt + std::int64_t(n) * c;
  const float* u0 = g.u + t0 * g.ldu;
  float* o0 = g.o + t0 * g.ldo;
  for (int b0 = c0; b0 < c1; b0 += W) {
    __mmask16 mk[NV];
    for (int v = 0; v < NV; ++v) {
      const int rem = std::clamp(c1 - b0 - 16 * v, 0, 16);
      mk[v] = static_cast<__mmask16>((1u << rem) - 1u);
    }
    for (int i = 0; i < n; ++i)
      for (int v = 0; v < NV; ++v)
        _mm512_store_ps(panel + i * W + 16 * v,
                        _mm512_maskz_loadu_ps(mk[v], st + std::int64_t(i) * g.e + b0 + 16 * v));
    for (int t = 0; t < len; ++t)
      for (int v = 0; v < NV; ++v)
        _mm512_store_ps(panel + (n + t) * W + 16 * v,
                        _mm512_maskz_loadu_ps(mk[v], u0 + t * g.ldu + b0 + 16 * v));
    // outputs: row blocks of the chunk; the U part of rows [r0, r0 + mr) stops at r0 + mr
    auto out_rows = [&](auto mr_c, int r0) {
      constexpr int R = decltype(mr_c)::value;
      chunk_mk_avx512<R, NV>(qa + r0 * ldqa, ldqa, panel, n + std::min(len, r0 + R), nullptr,
                             o0 + r0 * g.ldo + b0, g.ldo, mk);
    };
    int r0 = 0;
    for (; r0 + MR <= len; r0 += MR) out_rows(std::integral_constant<int, MR>{}, r0);
    for (; r0 + 4 <= len; r0 += 4) out_rows(std::integral_constant<int, 4>{}, r0);
    for (; r0 < len; ++r0) out_rows(std::integral_constant<int, 1>{}, r0);
    // state: S rows = tot S rows + Kd^T U
    auto state_rows = [&](auto mr_c, int i0) {
      constexpr int R = decltype(mr_c)::value;
      chunk_mk_avx512<R, NV>(kdt + std::int64_t(i0) * c, c, panel + n * W, len, tot + i0,
                             st + std::int64_t(i0) * g.e + b0, g.e, mk);
    };
    int i0 = 0;
    for (; i0 + MR <= n; i0 += MR) state_rows(std::integral_constant<int, MR>{}, i0);
    for (; i0 + 4 <= n; i0 += 4) state_rows(std::integral_constant<int, 4>{}, i0);
    for (; i0 < n; ++i0) state_rows(std::integral_constant<int, 1>{}, i0);
  }
}
#endif

// One column-pass item: columns group of sequence s, all of its chunks in order.
template <int Isa, bool Fma>
[[gnu::always_inline]] inline void chunk_item_body(const GlaChunkArgs& g, std::int64_t item) {
  const int groups = (g.e + g.group_cols - 1) / g.group_cols;
  const int s = static_cast<int>(item / groups);
  const int c0 = static_cast<int>(item % groups) * g.group_cols;
  const int c1 = std::min(g.e, c0 + g.group_cols);
  const std::int64_t t_begin = g.offsets[s], t_end = g.offsets[s + 1];
  float* st = g.state + std::int64_t(g.slot[s]) * g.n * g.e;
  std::int64_t ci = g.first_chunk[s];
  for (std::int64_t t0 = t_begin; t0 < t_end; t0 += g.chunk, ++ci) {
    const int len = static_cast<int>(std::min<std::int64_t>(g.chunk, t_end - t0));
    const float* qa = g.prep + ci * g.ld_prep;
#if RODIMUS_HAVE_X86_DISPATCH
    if constexpr (Isa == 2) {
      chunk_cols_avx512(g, qa, st, t0, len, c0, c1);
      continue;
    }
#endif
    chunk_cols_portable<Fma>(g, qa, st, t0, len, c0, c1);
  }
}

inline void chunk_prep_generic(const GlaChunkArgs& g, std::int64_t ci) {
  chunk_prep_body<false>(g, ci);
}
inline void chunk_item_generic(const GlaChunkArgs& g, std::int64_t item) {
  chunk_item_body<0, false>(g, item);
}
#if RODIMUS_HAVE_X86_DISPATCH
RODIMUS_TARGET_AVX2 inline void chunk_prep_avx2(const GlaChunkArgs& g, std::int64_t ci) {
  chunk_prep_body<true>(g, ci);
}
RODIMUS_TARGET_AVX2 inline void chunk_item_avx2(const GlaChunkArgs& g, std::int64_t item) {
  chunk_item_body<1, true>(g, item);
}
RODIMUS_TARGET_AVX512 inline void chunk_prep_avx512(const GlaChunkArgs& g, std::int64_t ci) {
  chunk_prep_body<true>(g, ci);
}
RODIMUS_TARGET_AVX512 inline void chunk_item_avx512(const GlaChunkArgs& g, std::int64_t item) {
  chunk_item_body<2, true>(g, item);
}
#endif

}  // namespace detail

/// True when the host chunk kernel handles a state of `n` rows and chunks of `c` tokens.
inline constexpr bool gla_chunk_scan_host_supports(int n, int c) {
  return n >= 1 && n <= kChunkMaxRows && c >= 1 && c <= kChunkMaxC;
}

/// Work items of the column pass: groups of g.group_cols columns of every sequence.
inline std::int64_t gla_chunk_items(const GlaChunkArgs& g) {
  return std::int64_t(g.num_seqs) * ((g.e + g.group_cols - 1) / g.group_cols);
}

/// Pass 1 for chunk `ci` (< the count gla_chunk_index returned), widest ISA host_isa() allows.
inline void gla_chunk_prep(const GlaChunkArgs& g, std::int64_t ci) {
  const FlushSubnormals ftz;  // decay products of long chunks reach subnormals (file comment)
#if RODIMUS_HAVE_X86_DISPATCH
  switch (host_isa()) {
    case HostIsa::Avx512:
      detail::chunk_prep_avx512(g, ci);
      return;
    case HostIsa::Avx2:
      detail::chunk_prep_avx2(g, ci);
      return;
    default:
      break;
  }
#endif
  detail::chunk_prep_generic(g, ci);
}

/// Pass 2, work item `item` (< gla_chunk_items(g)); every chunk's prep must have run.
inline void gla_chunk_item(const GlaChunkArgs& g, std::int64_t item) {
  const FlushSubnormals ftz;
#if RODIMUS_HAVE_X86_DISPATCH
  switch (host_isa()) {
    case HostIsa::Avx512:
      detail::chunk_item_avx512(g, item);
      return;
    case HostIsa::Avx2:
      detail::chunk_item_avx2(g, item);
      return;
    default:
      break;
  }
#endif
  detail::chunk_item_generic(g, item);
}

}  // namespace rodimus::backend::host
