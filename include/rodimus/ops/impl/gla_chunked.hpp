// The GLA scan in chunkwise-parallel form with exact (log-space) decay products.
#pragma once

#include <type_traits>
#include <vector>

#include "rodimus/core/parallel.hpp"
#include "rodimus/core/seq_batch.hpp"
#include "rodimus/ops/impl/gla_recurrent.hpp"

namespace rodimus::detail {

/// Scratch of the chunk scanner; grows only.
template <class Space, class Real = float>
struct GlaChunkWorkspace {
  View3<Real, Space> intra;        // [NC, C, C]  scale * sum_i q_t k_s exp(b_t - b_s), t >= s
  View2<Real, Space> q_decay;      // [N, n]      scale * q_t exp(b_t)
  View2<Real, Space> k_decay;      // [N, n]      k_s exp(b_last - b_s)
  View2<Real, Space> chunk_decay;  // [NC, n]   exp(b_last)
  View2<int, Space> chunks;        // [NC, 3]     (sequence, first token, length)
  View1<int, Space> seq_chunk;     // [B + 1]     first chunk of each sequence
};

/// Plans the chunks of every sequence and fills ws.chunks / ws.seq_chunk. Returns the count.
template <class Space, class Real>
int plan_chunks(const SeqBatch<Space>& batch, int chunk, GlaChunkWorkspace<Space, Real>& ws) {
  std::vector<int> plan, first(batch.num_seqs + 1, 0);
  for (int s = 0; s < batch.num_seqs; ++s) {
    first[s] = static_cast<int>(plan.size() / 3);
    for (int t = batch.h_offsets[s]; t < batch.h_offsets[s + 1]; t += chunk) {
      const int len = batch.h_offsets[s + 1] - t < chunk ? batch.h_offsets[s + 1] - t : chunk;
      plan.insert(plan.end(), {s, t, len});
    }
  }
  const int nc = static_cast<int>(plan.size() / 3);
  first[batch.num_seqs] = nc;
  if (static_cast<int>(ws.chunks.extent(0)) < nc || ws.chunks.extent(0) == 0)
    ws.chunks = View2<int, Space>(
        Kokkos::view_alloc(std::string("rodimus::gla.chunks"), Kokkos::WithoutInitializing),
        nc > 1 ? nc : 1, 3);
  if (static_cast<int>(ws.seq_chunk.extent(0)) < batch.num_seqs + 1)
    ws.seq_chunk = View1<int, Space>(
        Kokkos::view_alloc(std::string("rodimus::gla.seq_chunk"), Kokkos::WithoutInitializing),
        batch.num_seqs + 1);
  auto hc = Kokkos::create_mirror_view(ws.chunks);
  auto hf = Kokkos::create_mirror_view(ws.seq_chunk);
  for (int c = 0; c < nc; ++c)
    for (int j = 0; j < 3; ++j) hc(c, j) = plan[3 * c + j];
  for (int s = 0; s <= batch.num_seqs; ++s) hf(s) = first[s];
  Kokkos::deep_copy(Space(), ws.chunks, hc);
  Kokkos::deep_copy(Space(), ws.seq_chunk, hf);
  Space().fence();
  return nc;
}

/// Chunkwise scan, chunk size C (SPEC 2.1). With b_t = sum_{r<=t} a_r inside a chunk:
///   o_t = scale * [(q_t exp(b_t)) S_prev + sum_{s<=t} (sum_i q_t k_s exp(b_t - b_s)) u_s]
///   S_next = diag(exp(b_last)) S_prev + sum_s (k_s exp(b_last - b_s))^T u_s.
/// Every decay factor is exp of a sum of a_r <= 0 accumulated directly over its own range
/// (never a difference of two cumulative sums), so nothing overflows and nothing cancels:
/// exact for any a in [-inf, 0].
// q, k, a: [N, n]; u, o: [N, E]; state: [S, n, E]
template <int C, class Space, class Real = float>
void gla_chunked_generic(const Space& space,
                         const View2<const std::type_identity_t<Real>, Space>& q,
                         const View2<const std::type_identity_t<Real>, Space>& k,
                         const View2<const std::type_identity_t<Real>, Space>& a,
                         const View2<const std::type_identity_t<Real>, Space>& u,
                         const View3<std::type_identity_t<Real>, Space>& state,
                         const SeqBatch<Space>& batch,
                         const View2<std::type_identity_t<Real>, Space>& o,
                         std::type_identity_t<Real> scale, GlaChunkWorkspace<Space, Real>& ws) {
  const int n = static_cast<int>(q.extent(1));
  const int e_dim = static_cast<int>(u.extent(1));
  const int nc = plan_chunks(batch, C, ws);
  ensure_capacity(ws.q_decay, batch.num_tokens, n, "rodimus::gla.q_decay");
  ensure_capacity(ws.k_decay, batch.num_tokens, n, "rodimus::gla.k_decay");
  ensure_capacity(ws.chunk_decay, nc, n, "rodimus::gla.chunk_decay");
  if (static_cast<int>(ws.intra.extent(0)) < nc || ws.intra.extent(1) != std::size_t(C))
    ws.intra = View3<Real, Space>(
        Kokkos::view_alloc(std::string("rodimus::gla.intra"), Kokkos::WithoutInitializing), nc, C,
        C);
  const auto chunks = ws.chunks;
  const auto intra = ws.intra;
  const auto q_decay = ws.q_decay;
  const auto k_decay = ws.k_decay;
  const auto chunk_decay = ws.chunk_decay;

  // Phase 1, all chunks in parallel: intra-chunk scores and the decay factors.
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::gla_chunk_prep"),
      Kokkos::TeamPolicy<Space>(space, nc, Kokkos::AUTO),
      KOKKOS_LAMBDA(const typename Kokkos::TeamPolicy<Space>::member_type& m) {
        const int c = m.league_rank();
        const int t0 = chunks(c, 1);
        const int len = chunks(c, 2);
        // column s of the intra matrix, and k_decay of token s
        Kokkos::parallel_for(Kokkos::TeamThreadRange(m, C), [&](const int s) {
          if (s >= len) {
            for (int t = 0; t < C; ++t) intra(c, t, s) = Real(0);
            return;
          }
          Real col[C];
          for (int t = 0; t < C; ++t) col[t] = Real(0);
          for (int i = 0; i < n; ++i) {
            const Real ks = k(t0 + s, i);
            Real logd = Real(0);  // sum_{r=s+1..t} a_r
            col[s] += q(t0 + s, i) * ks;
            for (int t = s + 1; t < len; ++t) {
              logd += a(t0 + t, i);
              col[t] += q(t0 + t, i) * ks * kmath::exp(logd);
            }
            k_decay(t0 + s, i) = ks * kmath::exp(logd);  // logd = sum_{r=s+1..len-1} a_r
          }
          for (int t = 0; t < C; ++t) intra(c, t, s) = t >= s ? scale * col[t] : Real(0);
        });
        // q_decay of every token and the chunk's total decay, per slot i
        Kokkos::parallel_for(Kokkos::TeamThreadRange(m, n), [&](const int i) {
          Real logd = Real(0);  // sum_{r=0..t} a_r
          for (int t = 0; t < len; ++t) {
            logd += a(t0 + t, i);
            q_decay(t0 + t, i) = scale * q(t0 + t, i) * kmath::exp(logd);
          }
          chunk_decay(c, i) = kmath::exp(logd);
        });
      });

  // Phase 2: one work item per (sequence, tile of state columns) walks that sequence's chunks
  // in order; state columns never interact.
  constexpr int TE = scan_column_tile<Space>;
  const int tiles = (e_dim + TE - 1) / TE;
  const auto seq_chunk = ws.seq_chunk;
  const auto slot = batch.slot;
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::gla_chunk_scan"),
      detail::range_policy(space, 0, std::int64_t(batch.num_seqs) * tiles),
      KOKKOS_LAMBDA(const std::int64_t idx) {
        const auto sq_tile = split_index(idx, tiles);
        const int sq = sq_tile.row, tile = sq_tile.col;
        const int e0 = tile * TE;
        const int ne = e_dim - e0 < TE ? e_dim - e0 : TE;
        const int sl = slot(sq);
        for (int c = seq_chunk(sq); c < seq_chunk(sq + 1); ++c) {
          const int t0 = chunks(c, 1);
          const int len = chunks(c, 2);
          // o_t = q_decay_t S_prev + sum_{s<=t} intra[t,s] u_s        [len, TE]
          for (int t = 0; t < len; ++t) {
            Real acc[TE];
            for (int j = 0; j < TE; ++j) acc[j] = Real(0);
            for (int i = 0; i < n; ++i) {
              const Real qd = q_decay(t0 + t, i);
              const Real* srow = &state(sl, i, e0);
              for (int j = 0; j < ne; ++j) acc[j] += qd * srow[j];
            }
            for (int s = 0; s <= t; ++s) {
              const Real w = intra(c, t, s);
              const Real* urow = &u(t0 + s, e0);
              for (int j = 0; j < ne; ++j) acc[j] += w * urow[j];
            }
            for (int j = 0; j < ne; ++j) o(t0 + t, e0 + j) = acc[j];
          }
          // S_next = diag(chunk_decay) S_prev + k_decay^T u              [n, TE]
          for (int i = 0; i < n; ++i) {
            Real acc[TE];
            Real* srow = &state(sl, i, e0);
            const Real g = chunk_decay(c, i);
            for (int j = 0; j < TE; ++j) acc[j] = j < ne ? g * srow[j] : Real(0);
            for (int s = 0; s < len; ++s) {
              const Real kd = k_decay(t0 + s, i);
              const Real* urow = &u(t0 + s, e0);
              for (int j = 0; j < ne; ++j) acc[j] += kd * urow[j];
            }
            for (int j = 0; j < ne; ++j) srow[j] = acc[j];
          }
        }
      });
}

}  // namespace rodimus::detail
