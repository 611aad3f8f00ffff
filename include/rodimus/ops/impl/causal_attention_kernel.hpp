// Generic Kokkos kernels of causal GQA softmax attention over a KV cache indexed by position:
// the cache append, and a tiled online-softmax attention (flash-attention style).
#pragma once

#include <cfloat>

#include "rodimus/backend/exec_space_traits.hpp"
#include "rodimus/core/parallel.hpp"
#include "rodimus/core/seq_batch.hpp"

namespace rodimus::detail {

/// Query rows (tokens x query heads of one KV head) one team aims to hold.
inline constexpr int kAttnQueryRows = 16;
/// Keys staged in scratch at a time.
inline constexpr int kAttnKeyTile = 32;

// k, v: [N, Hkv*hd]; k_cache, v_cache: [S, C, Hkv*hd].  Row pos0 + i of slot `slot` receives
// token i of the sequence.
template <class Space>
void kv_append_generic(const Space& space, const View2<const float, Space>& k,
                       const View2<const float, Space>& v, const View3<float, Space>& k_cache,
                       const View3<float, Space>& v_cache, const SeqBatch<Space>& batch) {
  const int kvd = static_cast<int>(k_cache.extent(2));
  const auto offsets = batch.offsets;
  const auto pos0 = batch.pos0;
  const auto slot = batch.slot;
  const auto token_seq = batch.token_seq;
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::kv_append"),
      detail::range_policy(space, 0, std::int64_t(batch.num_tokens) * kvd),
      KOKKOS_LAMBDA(const std::int64_t idx) {
        const auto t_c = split_index(idx, kvd);
        const int t = t_c.row, c = t_c.col;
        const int s = token_seq(t);
        const int p = pos0(s) + (t - offsets(s));
        k_cache(slot(s), p, c) = k(t, c);
        v_cache(slot(s), p, c) = v(t, c);
      });
}

// q: [N, H*hd]; caches: [S, C, Hkv*hd] already holding every key/value up to each query's
// position; out: [N, H*hd].  Query head h reads KV head h / (H / Hkv).
//
// One team owns `bq` consecutive packed tokens and one KV head kh: its rows are the
// (token, query head) pairs of the G = H / Hkv query heads that share kh, so each staged key
// and value tile serves G * bq query rows. The tokens of a team may belong to several sequences
// (decode steps, short prompts); each run of one sequence walks that sequence's keys 0 .. p_last
// in tiles of kAttnKeyTile: stage K^T and V in scratch, scores S = Q K^T (inner loop over keys,
// contiguous), online softmax (running max m, sum l, rescale by exp(m_old - m_new)), O += P V
// (inner loop over head dims, contiguous). Keys past a row's own position are masked.
template <class Space>
void causal_attention_generic(const Space& space, const View2<const float, Space>& q,
                              const View3<const float, Space>& k_cache,
                              const View3<const float, Space>& v_cache,
                              const SeqBatch<Space>& batch, const View2<float, Space>& out,
                              int heads, int kv_heads, int head_dim, float scale) {
  const int nt = batch.num_tokens;
  const int hd = head_dim, hkv = kv_heads, g = heads / kv_heads;
  int bq = g >= kAttnQueryRows ? 1 : kAttnQueryRows / g;
  if (bq > batch.max_len) bq = batch.max_len > 0 ? batch.max_len : 1;
  const int rows = bq * g;
  constexpr int bk = kAttnKeyTile;
  const int blocks = (nt + bq - 1) / bq;
  using Policy = Kokkos::TeamPolicy<Space, Kokkos::Schedule<Kokkos::Dynamic>>;
  using Member = typename Policy::member_type;
  using Scratch2 = Kokkos::View<float**, Kokkos::LayoutRight, typename Space::scratch_memory_space,
                                Kokkos::MemoryUnmanaged>;
  using Scratch1 =
      Kokkos::View<float*, typename Space::scratch_memory_space, Kokkos::MemoryUnmanaged>;
  const std::size_t bytes = 2 * Scratch2::shmem_size(rows, hd) + Scratch2::shmem_size(hd, bk) +
                            Scratch2::shmem_size(bk, hd) + Scratch2::shmem_size(rows, bk) +
                            3 * Scratch1::shmem_size(rows);
  const int level = bytes <= std::size_t(Policy::scratch_size_max(0)) ? 0 : 1;
  const Policy policy = Policy(space, blocks * hkv, Kokkos::AUTO, is_gpu_space_v<Space> ? 32 : 1)
                            .set_scratch_size(level, Kokkos::PerTeam(bytes));
  const auto offsets = batch.offsets;
  const auto pos0 = batch.pos0;
  const auto slot = batch.slot;
  const auto token_seq = batch.token_seq;
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::causal_attention"), policy, KOKKOS_LAMBDA(const Member& m) {
        const int kh = m.league_rank() % hkv;
        const int t0 = (m.league_rank() / hkv) * bq;
        const int t1 = t0 + bq < nt ? t0 + bq : nt;
        const int nrow = (t1 - t0) * g;
        Scratch2 qs(m.team_scratch(level), rows, hd);  // scaled queries
        Scratch2 os(m.team_scratch(level), rows, hd);  // unnormalised outputs
        Scratch2 kt(m.team_scratch(level), hd, bk);    // K tile, transposed
        Scratch2 vs(m.team_scratch(level), bk, hd);    // V tile
        Scratch2 ss(m.team_scratch(level), rows, bk);  // scores, then probabilities
        Scratch1 mx(m.team_scratch(level), rows);      // running max
        Scratch1 den(m.team_scratch(level), rows);     // running sum of exp
        Scratch1 corr(m.team_scratch(level), rows);    // exp(m_old - m_new) of the current tile
        // row r: token t0 + r / g, query head kh * g + r % g
        Kokkos::parallel_for(Kokkos::TeamThreadRange(m, nrow), [&](const int r) {
          const int qc0 = (kh * g + r % g) * hd;
          const int t = t0 + r / g;
          Kokkos::parallel_for(Kokkos::ThreadVectorRange(m, hd), [&](const int c) {
            qs(r, c) = q(t, qc0 + c) * scale;
            os(r, c) = 0.f;
          });
          Kokkos::single(Kokkos::PerThread(m), [&]() {
            mx(r) = -FLT_MAX;
            den(r) = 0.f;
          });
        });
        m.team_barrier();
        const int kc0 = kh * hd;
        for (int i = t0; i < t1;) {
          const int s = token_seq(i);
          const int run_end = offsets(s + 1) < t1 ? offsets(s + 1) : t1;
          const int p_of_t0 = pos0(s) - offsets(s) + t0;  // position of row 0's token
          const int p_last = p_of_t0 + (run_end - 1 - t0);
          const int sl = slot(s);
          const int r0 = (i - t0) * g, r1 = (run_end - t0) * g;
          for (int j0 = 0; j0 <= p_last; j0 += bk) {
            const int jn = p_last + 1 - j0 < bk ? p_last + 1 - j0 : bk;
            // stage the tile: kt[c][j] = K[j0 + j][c], vs[j][c] = V[j0 + j][c]
            Kokkos::parallel_for(Kokkos::TeamThreadRange(m, jn), [&](const int j) {
              Kokkos::parallel_for(Kokkos::ThreadVectorRange(m, hd), [&](const int c) {
                kt(c, j) = k_cache(sl, j0 + j, kc0 + c);
                vs(j, c) = v_cache(sl, j0 + j, kc0 + c);
              });
            });
            m.team_barrier();
            // scores and the online-softmax statistics of each row
            Kokkos::parallel_for(Kokkos::TeamThreadRange(m, r0, r1), [&](const int r) {
              const int lim = p_of_t0 + r / g - j0 + 1 < jn ? p_of_t0 + r / g - j0 + 1 : jn;
              if (lim <= 0) {
                Kokkos::single(Kokkos::PerThread(m), [&]() { corr(r) = 1.f; });
                return;
              }
              Kokkos::parallel_for(Kokkos::ThreadVectorRange(m, lim),
                                   [&](const int j) { ss(r, j) = 0.f; });
              for (int c = 0; c < hd; ++c) {
                const float qv = qs(r, c);
                Kokkos::parallel_for(Kokkos::ThreadVectorRange(m, lim),
                                     [&](const int j) { ss(r, j) += qv * kt(c, j); });
              }
              float tile_max = -FLT_MAX;
              Kokkos::parallel_reduce(
                  Kokkos::ThreadVectorRange(m, lim),
                  [&](const int j, float& a) { a = ss(r, j) > a ? ss(r, j) : a; },
                  Kokkos::Max<float>(tile_max));
              const float m_old = mx(r);
              const float m_new = tile_max > m_old ? tile_max : m_old;
              float psum = 0.f;
              Kokkos::parallel_reduce(
                  Kokkos::ThreadVectorRange(m, lim),
                  [&](const int j, float& a) {
                    const float e = kmath::exp(ss(r, j) - m_new);
                    ss(r, j) = e;
                    a += e;
                  },
                  psum);
              const float cr = kmath::exp(m_old - m_new);
              Kokkos::single(Kokkos::PerThread(m), [&]() {
                corr(r) = cr;
                mx(r) = m_new;
                den(r) = den(r) * cr + psum;
              });
            });
            m.team_barrier();
            // O = O * corr + P V
            Kokkos::parallel_for(Kokkos::TeamThreadRange(m, r0, r1), [&](const int r) {
              const int lim = p_of_t0 + r / g - j0 + 1 < jn ? p_of_t0 + r / g - j0 + 1 : jn;
              if (lim <= 0) return;
              const float cr = corr(r);
              Kokkos::parallel_for(Kokkos::ThreadVectorRange(m, hd),
                                   [&](const int c) { os(r, c) *= cr; });
              for (int j = 0; j < lim; ++j) {
                const float p = ss(r, j);
                Kokkos::parallel_for(Kokkos::ThreadVectorRange(m, hd),
                                     [&](const int c) { os(r, c) += p * vs(j, c); });
              }
            });
            m.team_barrier();
          }
          i = run_end;
        }
        Kokkos::parallel_for(Kokkos::TeamThreadRange(m, nrow), [&](const int r) {
          const int qc0 = (kh * g + r % g) * hd;
          const int t = t0 + r / g;
          const float inv = 1.f / den(r);
          Kokkos::parallel_for(Kokkos::ThreadVectorRange(m, hd),
                               [&](const int c) { out(t, qc0 + c) = os(r, c) * inv; });
        });
      });
}

}  // namespace rodimus::detail
