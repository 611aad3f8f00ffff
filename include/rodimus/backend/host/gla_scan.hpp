// Host kernel of the GLA scan (SPEC 2 step 7):  S_t = diag(d_t) S_{t-1} + k_t^T u_t,
// o_t = scale * q_t S_t,  d_t = exp(a_t). The exact recurrence, organised for a CPU:
//
// - Columns of the state never interact, so a prefill work item owns kScanGroupTiles tiles of
//   kScanCols columns (one AVX-512 register wide) of one sequence and walks all its tokens, in
//   blocks of kScanTokenBlock. Within a token block each tile's state rows are updated in place:
//   a register block of kScanRows rows is loaded once (from L2, where the item's 64 KiB state
//   slice stays), walks the token block in registers, and is stored back.
// - Rows interact only through the output sum, so each row block adds its part of o_t into a
//   small output buffer. Per (token, row, column): one multiply and two fused multiply-adds, the
//   least the recurrence needs (the chunkwise form of SPEC 2.1 needs as many FLOPs at best: on
//   a CPU its advantage is only matrix-product shape, which the register blocks already give).
// - Decode (a few tokens per sequence) streams each token through the state rows in memory
//   order instead. Its items are (sequence, group of rows) over all E columns: each item
//   computes exp(a) for its own rows and adds its rows' part of o_t into its own output buffer;
//   the last item of a sequence to finish adds the parts (scan_item_decode_rows). Splitting
//   rows, not columns, between threads matters: two threads streaming the column halves of the
//   same rows (16 KiB apart) run into each other's lines at every row (prefetchers), which made
//   a 2-thread decode step 2.5x slower than 1 thread on Zen 5 (docs/performance.md).
// - Without AVX-512, prefill streams too, in items of kScanDecodeCols columns of one sequence
//   (few long items: the column split costs little there).
// - exp(a) is computed once per (token, row) before prefill items run (a vectorised
//   polynomial).
//
// Roofline at the Rodimus shape (n = 64, E = 4096): 4 n E = 1.05 MFLOP per token; prefill moves
// q, k, a, u in and o out (4 (3n + 2E) B = 33 KiB per token), so it is compute-bound
// (~32 FLOP/B); one decode step also reads and writes the 1 MiB state and is memory-bound.
// No overflow is possible: every factor applied to the state is a decay in [0, 1].
#pragma once

#include <algorithm>
#include <cstdint>

#include "rodimus/backend/exec_space_traits.hpp"
#include "rodimus/backend/host/cpu_features.hpp"
#include "rodimus/backend/host/last_arrival.hpp"
#include "rodimus/backend/host/fast_math.hpp"

namespace rodimus::backend::host {

/// State columns per work item (16 floats: one AVX-512 register, two AVX2 registers).
inline constexpr int kScanCols = 16;
/// State rows per register block.
inline constexpr int kScanRows = 16;
/// Column tiles per work item in prefill (256 columns).
inline constexpr int kScanGroupTiles = 16;
/// Longest sequence of a call that takes the decode kernel, and its columns per work item.
inline constexpr int kScanDecodeTokens = 4;
inline constexpr int kScanDecodeCols = 512;
/// Tokens per pass of the row blocks in prefill (measured best of 8..128 on AVX-512).
inline constexpr int kScanTokenBlock = 16;
/// Largest state height (mem_size) of the host kernel; larger ones take the generic kernel.
inline constexpr int kScanMaxRows = 256;
/// Largest token block (tokens walked per pass of the row blocks).
inline constexpr int kScanMaxTokenBlock = 128;

/// Plain pointers and sizes of one scan call (all host memory, fp32, rows contiguous).
struct GlaScanArgs {
  const float* q;      // [N, ldq]
  const float* k;      // [N, ldk]
  const float* decay;  // [N, ldd]  exp(a)
  const float* u;      // [N, ldu]
  float* o;            // [N, ldo]
  float* state;        // [S, n, E] contiguous
  std::int64_t ldq, ldk, ldd, ldu, ldo;
  int n, e;
  float scale;
  const int* offsets;  // [B + 1]
  const int* slot;     // [B]
  int num_seqs;
  int token_block;     // tokens per pass, 1..kScanMaxTokenBlock
  int tiles_per_item;  // column tiles per work item, 0 = streaming (gla_scan_tiles_per_item)
  // decode by row groups (row_groups > 0; then decay, token_block, tiles_per_item are unused):
  const float* log_decay;  // [N, ldl]  a (<= 0 expected; clamped), exp taken per item
  std::int64_t ldl;
  int row_groups;  // groups of state rows per sequence, 1..n
  float* partial;  // [(row_groups - 1) * N, ldp]: groups 1.. write their part of o here
  std::int64_t ldp;
  int* done;  // [num_seqs] counters, zero between calls
};

namespace detail {

// One register block of R state rows (rows [row0, row0 + R) of the tile `s`, row stride lds)
// walks tokens [0, nt) of the block: s = d * s + k u,  acc += q s; `first` starts the output
// rows, later blocks add to them. Four partial sums per column break the dependency chain.
template <int R, bool Full, bool Fma>
[[gnu::always_inline]] inline void scan_row_block(float* __restrict s, std::int64_t lds,
                                                  const GlaScanArgs& a, std::int64_t t0, int nt,
                                                  int e0, int ne, int row0, bool first,
                                                  float (*__restrict ob)[kScanCols]) {
  constexpr int W = kScanCols;
  constexpr int P = R >= 4 ? 4 : 1;
  for (int t = 0; t < nt; ++t) {
    const std::int64_t tt = t0 + t;
    const float* __restrict ut = a.u + tt * a.ldu + e0;
    const float* __restrict qt = a.q + tt * a.ldq + row0;
    const float* __restrict kt = a.k + tt * a.ldk + row0;
    const float* __restrict dt = a.decay + tt * a.ldd + row0;
    float uu[W], acc[P][W];
    for (int j = 0; j < W; ++j) {
      if constexpr (Full)
        uu[j] = ut[j];
      else
        uu[j] = j < ne ? ut[j] : 0.f;
      for (int p = 0; p < P; ++p) acc[p][j] = 0.f;
    }
    RODIMUS_UNROLL_16
    for (int r = 0; r < R; ++r) {
      const float d = dt[r], kk = kt[r], qq = qt[r];
      float* __restrict sr = s + r * lds;
      for (int j = 0; j < W; ++j) {
        if (!Full && j >= ne) continue;
        const float v = madd<Fma>(sr[j], d, kk * uu[j]);
        sr[j] = v;
        acc[r % P][j] = madd<Fma>(qq, v, acc[r % P][j]);
      }
    }
    for (int j = 0; j < W; ++j) {
      float sum = acc[0][j];
      for (int p = 1; p < P; ++p) sum += acc[p][j];
      ob[t][j] = first ? sum : ob[t][j] + sum;
    }
  }
}

// The rows of a state tile (row stride lds) in register blocks of kScanRows, then one by one.
template <bool Full, bool Fma>
[[gnu::always_inline]] inline void scan_rows_portable(float* s, std::int64_t lds,
                                                      const GlaScanArgs& a, std::int64_t t0, int nt,
                                                      int e0, int ne, float (*ob)[kScanCols]) {
  int row0 = 0;
  for (; row0 + kScanRows <= a.n; row0 += kScanRows)
    scan_row_block<kScanRows, Full, Fma>(s + row0 * lds, lds, a, t0, nt, e0, ne, row0, row0 == 0,
                                         ob);
  for (; row0 < a.n; ++row0)
    scan_row_block<1, Full, Fma>(s + row0 * lds, lds, a, t0, nt, e0, ne, row0, row0 == 0, ob);
}

#if RODIMUS_HAVE_X86_DISPATCH
// AVX-512: a register block of R rows of a full 16-column tile stays in zmm registers while it
// walks the token block; per (token, row): one multiply, two FMAs, three broadcasts.
template <int R>
RODIMUS_TARGET_AVX512 inline void scan_row_block_avx512(float* s, std::int64_t lds,
                                                        const GlaScanArgs& a, std::int64_t t0,
                                                        int nt, int e0, int row0, bool first,
                                                        float (*ob)[kScanCols]) {
  __m512 sr[R];  // fully unrolled loops over r keep these in registers
  RODIMUS_UNROLL_16
  for (int r = 0; r < R; ++r) sr[r] = _mm512_loadu_ps(s + r * lds);
  for (int t = 0; t < nt; ++t) {
    const std::int64_t tt = t0 + t;
    const __m512 uu = _mm512_loadu_ps(a.u + tt * a.ldu + e0);
    const float* qt = a.q + tt * a.ldq + row0;
    const float* kt = a.k + tt * a.ldk + row0;
    const float* dt = a.decay + tt * a.ldd + row0;
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                     _mm512_setzero_ps()};
    RODIMUS_UNROLL_16
    for (int r = 0; r < R; ++r) {
      const __m512 ku = _mm512_mul_ps(_mm512_set1_ps(kt[r]), uu);
      sr[r] = _mm512_fmadd_ps(sr[r], _mm512_set1_ps(dt[r]), ku);
      acc[r % 4] = _mm512_fmadd_ps(_mm512_set1_ps(qt[r]), sr[r], acc[r % 4]);
    }
    __m512 sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    if (!first) sum = _mm512_add_ps(sum, _mm512_load_ps(ob[t]));
    _mm512_store_ps(ob[t], sum);
  }
  RODIMUS_UNROLL_16
  for (int r = 0; r < R; ++r) _mm512_storeu_ps(s + r * lds, sr[r]);
}

RODIMUS_TARGET_AVX512 inline void scan_rows_avx512(float* s, std::int64_t lds, const GlaScanArgs& a,
                                                   std::int64_t t0, int nt, int e0,
                                                   float (*ob)[kScanCols]) {
  int row0 = 0;
  for (; row0 + kScanRows <= a.n; row0 += kScanRows)
    scan_row_block_avx512<kScanRows>(s + row0 * lds, lds, a, t0, nt, e0, row0, row0 == 0, ob);
  for (; row0 + 4 <= a.n; row0 += 4)
    scan_row_block_avx512<4>(s + row0 * lds, lds, a, t0, nt, e0, row0, row0 == 0, ob);
  for (; row0 < a.n; ++row0)
    scan_row_block_avx512<1>(s + row0 * lds, lds, a, t0, nt, e0, row0, row0 == 0, ob);
}
#endif

// One work item: column tiles [g0, g1) of sequence `s`, all of its tokens, token block by token
// block; each tile's state rows are updated in place (its register blocks are loaded once per
// token block, from L2 where the item's 64 KiB state slice stays). `Isa` picks the row kernel:
// 2 = AVX-512 intrinsics (full tiles), otherwise the portable loop (`Fma`: fused).
template <int Isa, bool Fma>
[[gnu::always_inline]] inline void scan_item_tiles(const GlaScanArgs& a, int s, int g0, int g1) {
  constexpr int W = kScanCols;
  const std::int64_t t_begin = a.offsets[s], t_end = a.offsets[s + 1];
  if (t_begin >= t_end) return;
  alignas(64) float ob[kScanMaxTokenBlock][W];
  float* st = a.state + std::int64_t(a.slot[s]) * a.n * a.e;
  for (std::int64_t t0 = t_begin; t0 < t_end; t0 += a.token_block) {
    const int nt = static_cast<int>(std::min<std::int64_t>(a.token_block, t_end - t0));
    for (int g = g0; g < g1; ++g) {
      const int e0 = g * W, ne = std::min(W, a.e - e0);
      if (ne == W) {
#if RODIMUS_HAVE_X86_DISPATCH
        if constexpr (Isa == 2)
          scan_rows_avx512(st + e0, a.e, a, t0, nt, e0, ob);
        else
#endif
          scan_rows_portable<true, Fma>(st + e0, a.e, a, t0, nt, e0, ne, ob);
        for (int t = 0; t < nt; ++t) {
          float* __restrict ot = a.o + (t0 + t) * a.ldo + e0;
          for (int j = 0; j < W; ++j) ot[j] = a.scale * ob[t][j];
        }
      } else {
        scan_rows_portable<false, Fma>(st + e0, a.e, a, t0, nt, e0, ne, ob);
        for (int t = 0; t < nt; ++t) {
          float* __restrict ot = a.o + (t0 + t) * a.ldo + e0;
          for (int j = 0; j < ne; ++j) ot[j] = a.scale * ob[t][j];
        }
      }
    }
  }
}

// Streaming prefill (no AVX-512): an item is kScanDecodeCols columns of one sequence; for
// each token the state rows are streamed in order (contiguous, prefetcher-friendly), each row
// updated in place and added into the output columns, which stay in L1.
template <bool Fma>
[[gnu::always_inline]] inline void scan_item_stream(const GlaScanArgs& a, int s, int c0, int c1) {
  alignas(64) float acc[kScanDecodeCols];
  float* st = a.state + std::int64_t(a.slot[s]) * a.n * a.e;
  const int w = c1 - c0;
  for (std::int64_t t = a.offsets[s]; t < a.offsets[s + 1]; ++t) {
    const float* __restrict ut = a.u + t * a.ldu + c0;
    const float* qt = a.q + t * a.ldq;
    const float* kt = a.k + t * a.ldk;
    const float* dt = a.decay + t * a.ldd;
    for (int j = 0; j < w; ++j) acc[j] = 0.f;
    for (int i = 0; i < a.n; ++i) {
      const float d = dt[i], kk = kt[i], qq = qt[i];
      float* __restrict sr = st + std::int64_t(i) * a.e + c0;
      for (int j = 0; j < w; ++j) {
        const float v = madd<Fma>(sr[j], d, kk * ut[j]);
        sr[j] = v;
        acc[j] = madd<Fma>(qq, v, acc[j]);
      }
    }
    float* __restrict ot = a.o + t * a.ldo + c0;
    for (int j = 0; j < w; ++j) ot[j] = a.scale * acc[j];
  }
}

// Decode by row groups: R state rows (row stride e) of one token take one pass over the
// columns: each row updated in place, its q-weighted values (q pre-scaled) added into `out`
// (First: out is written, not read). Four rows per pass read u and out once for four rows.
template <int R, bool First, bool Fma>
[[gnu::always_inline]] inline void decode_rows_pass(float* __restrict s, std::int64_t lds,
                                                    const float* __restrict u,
                                                    float* __restrict out, int e, const float* d,
                                                    const float* k, const float* q) {
  float* __restrict sr[R];
  for (int r = 0; r < R; ++r) sr[r] = s + r * lds;
  for (int j = 0; j < e; ++j) {
    const float uu = u[j];
    float acc = First ? 0.f : out[j];
    for (int r = 0; r < R; ++r) {
      const float v = madd<Fma>(sr[r][j], d[r], k[r] * uu);
      sr[r][j] = v;
      acc = madd<Fma>(q[r], v, acc);
    }
    out[j] = acc;
  }
}

// Rows [r0, r1) of sequence s for each of its tokens; their part of o_t into row t of `out`.
template <bool Fma>
[[gnu::always_inline]] inline void scan_rows_decode(const GlaScanArgs& a, int s, int r0, int r1,
                                                    float* out, std::int64_t ld_out) {
  float* st = a.state + std::int64_t(a.slot[s]) * a.n * a.e;
  for (std::int64_t t = a.offsets[s]; t < a.offsets[s + 1]; ++t) {
    const float* ut = a.u + t * a.ldu;
    const float* qt = a.q + t * a.ldq;
    const float* kt = a.k + t * a.ldk;
    const float* lt = a.log_decay + t * a.ldl;
    float* ot = out + t * ld_out;
    float d[4], k[4], q[4];
    for (int i = r0; i < r1;) {
      const int nr = r1 - i >= 4 ? 4 : 1;
      for (int r = 0; r < nr; ++r) {
        d[r] = exp_nonpositive(lt[i + r] < 0.f ? lt[i + r] : 0.f);
        k[r] = kt[i + r];
        q[r] = a.scale * qt[i + r];
      }
      float* si = st + std::int64_t(i) * a.e;
      if (nr == 4) {
        if (i == r0)
          decode_rows_pass<4, true, Fma>(si, a.e, ut, ot, a.e, d, k, q);
        else
          decode_rows_pass<4, false, Fma>(si, a.e, ut, ot, a.e, d, k, q);
      } else {
        if (i == r0)
          decode_rows_pass<1, true, Fma>(si, a.e, ut, ot, a.e, d, k, q);
        else
          decode_rows_pass<1, false, Fma>(si, a.e, ut, ot, a.e, d, k, q);
      }
      i += nr;
    }
  }
}

// One decode item: row group g of sequence s. Group 0 writes o, the others their partial rows;
// the last of the sequence's items to finish adds the partial rows into o (last_arrival.hpp).
template <bool Fma>
[[gnu::always_inline]] inline void scan_item_decode_rows(const GlaScanArgs& a, std::int64_t item) {
  const int s = static_cast<int>(item / a.row_groups);
  const int g = static_cast<int>(item % a.row_groups);
  const int r0 = static_cast<int>(std::int64_t(a.n) * g / a.row_groups);
  const int r1 = static_cast<int>(std::int64_t(a.n) * (g + 1) / a.row_groups);
  const std::int64_t ntok = a.offsets[a.num_seqs];
  if (g == 0)
    scan_rows_decode<Fma>(a, s, r0, r1, a.o, a.ldo);
  else
    scan_rows_decode<Fma>(a, s, r0, r1, a.partial + (g - 1) * ntok * a.ldp, a.ldp);
  if (a.row_groups == 1) return;
  if (!last_arrival(a.done[s], a.row_groups)) return;
  for (std::int64_t t = a.offsets[s]; t < a.offsets[s + 1]; ++t) {
    float* __restrict ot = a.o + t * a.ldo;
    for (int p = 1; p < a.row_groups; ++p) {
      const float* __restrict pt = a.partial + ((p - 1) * ntok + t) * a.ldp;
      for (int j = 0; j < a.e; ++j) ot[j] += pt[j];
    }
  }
}

template <int Isa, bool Fma>
[[gnu::always_inline]] inline void scan_item_portable(const GlaScanArgs& a, std::int64_t item) {
  if (a.row_groups > 0) {  // decode
    scan_item_decode_rows<Fma>(a, item);
    return;
  }
  if (a.tiles_per_item == 0) {  // streaming prefill (no AVX-512)
    const int chunks = (a.e + kScanDecodeCols - 1) / kScanDecodeCols;
    const int s = static_cast<int>(item / chunks);
    const int c0 = static_cast<int>(item % chunks) * kScanDecodeCols;
    scan_item_stream<Fma>(a, s, c0, std::min(a.e, c0 + kScanDecodeCols));
    return;
  }
  const int tiles = (a.e + kScanCols - 1) / kScanCols;
  const int groups = (tiles + a.tiles_per_item - 1) / a.tiles_per_item;
  const int s = static_cast<int>(item / groups);
  const int g0 = static_cast<int>(item % groups) * a.tiles_per_item;
  scan_item_tiles<Isa, Fma>(a, s, g0, std::min(tiles, g0 + a.tiles_per_item));
}

// decay[t, i] = exp(a[t, i]) for tokens [t0, t1).
[[gnu::always_inline]] inline void exp_rows_portable(const float* a, std::int64_t lda, float* out,
                                                     std::int64_t ldo, int n, std::int64_t t0,
                                                     std::int64_t t1) {
  for (std::int64_t t = t0; t < t1; ++t) {
    const float* __restrict ar = a + t * lda;
    float* __restrict orow = out + t * ldo;
    for (int i = 0; i < n; ++i) orow[i] = exp_nonpositive(ar[i] < 0.f ? ar[i] : 0.f);
  }
}

inline void scan_item_generic(const GlaScanArgs& a, std::int64_t item) {
  scan_item_portable<0, false>(a, item);
}
inline void exp_rows_generic(const float* a, std::int64_t lda, float* out, std::int64_t ldo, int n,
                             std::int64_t t0, std::int64_t t1) {
  exp_rows_portable(a, lda, out, ldo, n, t0, t1);
}

#if RODIMUS_HAVE_X86_DISPATCH
RODIMUS_TARGET_AVX2 inline void scan_item_avx2(const GlaScanArgs& a, std::int64_t item) {
  scan_item_portable<1, true>(a, item);
}
RODIMUS_TARGET_AVX512 inline void scan_item_avx512(const GlaScanArgs& a, std::int64_t item) {
  scan_item_portable<2, true>(a, item);
}
RODIMUS_TARGET_AVX2 inline void exp_rows_avx2(const float* a, std::int64_t lda, float* out,
                                              std::int64_t ldo, int n, std::int64_t t0,
                                              std::int64_t t1) {
  exp_rows_portable(a, lda, out, ldo, n, t0, t1);
}
RODIMUS_TARGET_AVX512 inline void exp_rows_avx512(const float* a, std::int64_t lda, float* out,
                                                  std::int64_t ldo, int n, std::int64_t t0,
                                                  std::int64_t t1) {
  exp_rows_portable(a, lda, out, ldo, n, t0, t1);
}
#endif

}  // namespace detail

/// True when the host kernel handles a state of `n` rows (else use the generic kernel).
inline constexpr bool gla_scan_host_supports(int n) { return n >= 1 && n <= kScanMaxRows; }

/// Column tiles per work item for a prefill call whose longest sequence has `max_len` tokens
/// (decode calls take row groups instead): 0 selects the streaming kernel (state rows streamed
/// once per token); prefill items are kScanGroupTiles
/// tiles, so that an item walks each token's u and o row in order (hardware prefetchers follow
/// that, not 16 KiB strides).
/// Without AVX-512 the streaming kernel is faster for every call (the portable row blocks do not
/// stay in the 16 registers of AVX2).
inline int gla_scan_tiles_per_item(int max_len) {
  return max_len <= kScanDecodeTokens || host_isa() != HostIsa::Avx512 ? 0 : kScanGroupTiles;
}

/// Row groups per sequence for a decode call (every sequence <= kScanDecodeTokens tokens) of
/// `num_seqs` sequences on `threads` threads: enough items to give every thread the same
/// number of rows (threads / gcd(num_seqs, threads) groups), at least 4 rows a group; one group
/// (no merge) once every thread has 4 or more whole sequences.
inline int gla_scan_decode_row_groups(int n, int num_seqs, int threads) {
  if (num_seqs <= 0 || threads <= 1 || num_seqs >= 4 * threads) return 1;
  int a = num_seqs, b = threads;
  while (b != 0) {
    const int r = a % b;
    a = b;
    b = r;
  }
  return std::clamp(threads / a, 1, std::max(1, n / 4));
}

/// Work items of a call: (sequence, row group) pairs (decode), column chunks (streaming
/// prefill) or groups of column tiles of every sequence.
inline std::int64_t gla_scan_items(const GlaScanArgs& a) {
  if (a.row_groups > 0) return std::int64_t(a.num_seqs) * a.row_groups;
  if (a.tiles_per_item == 0)
    return std::int64_t(a.num_seqs) * ((a.e + kScanDecodeCols - 1) / kScanDecodeCols);
  const int tiles = (a.e + kScanCols - 1) / kScanCols;
  return std::int64_t(a.num_seqs) * ((tiles + a.tiles_per_item - 1) / a.tiles_per_item);
}

/// decay[t, i] = exp(min(a[t, i], 0)) for tokens [t0, t1), n values per token.
inline void gla_decay_rows(const float* a, std::int64_t lda, float* decay, std::int64_t ldd, int n,
                           std::int64_t t0, std::int64_t t1) {
#if RODIMUS_HAVE_X86_DISPATCH
  switch (host_isa()) {
    case HostIsa::Avx512:
      detail::exp_rows_avx512(a, lda, decay, ldd, n, t0, t1);
      return;
    case HostIsa::Avx2:
      detail::exp_rows_avx2(a, lda, decay, ldd, n, t0, t1);
      return;
    default:
      break;
  }
#endif
  detail::exp_rows_generic(a, lda, decay, ldd, n, t0, t1);
}

/// Runs work item `item` (< gla_scan_items(a)) with the widest kernel host_isa() allows.
inline void gla_scan_item(const GlaScanArgs& a, std::int64_t item) {
#if RODIMUS_HAVE_X86_DISPATCH
  switch (host_isa()) {
    case HostIsa::Avx512:
      detail::scan_item_avx512(a, item);
      return;
    case HostIsa::Avx2:
      detail::scan_item_avx2(a, item);
      return;
    default:
      break;
  }
#endif
  detail::scan_item_generic(a, item);
}

}  // namespace rodimus::backend::host
