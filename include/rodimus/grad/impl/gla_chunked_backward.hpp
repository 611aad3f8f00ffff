// Generic Kokkos kernels of the chunked GLA scan backward (equations: docs/training.md).
#pragma once

#include <cstdint>
#include <string>

#include "rodimus/backend/exec_space_traits.hpp"
#include "rodimus/core/seq_batch.hpp"
#include "rodimus/ops/impl/gla_chunked.hpp"
#include "rodimus/ops/impl/gla_recurrent.hpp"

namespace rodimus::grad {

/// Scratch of the chunked scan backward; grows only, so one per training step size is reused.
/// Memory for N tokens in NC chunks of B sequences: 2 N n + 2 (NC + B) n E + 2 NC C^2 Reals.
template <class Real, class Space>
struct GlaScanGradWorkspace {
  rodimus::detail::GlaChunkWorkspace<Space> plan;  // only .chunks and .seq_chunk are used
  View2<Real, Space> g_fwd;     // [N, n]          exp(sum_{r=t0..t} a_r)
  View2<Real, Space> g_bwd;     // [N, n]          exp(sum_{r=t+1..t_last} a_r)
  View3<Real, Space> states;    // [NC + B, n, E]  state before each chunk; sequence end state
  View3<Real, Space> d_states;  // [NC + B, n, E]  dL/d(that state)
  View3<Real, Space> intra;     // [NC, C, C]      scale sum_i q_t k_s exp(b_t - b_s), t >= s
  View3<Real, Space> dou;       // [NC, C, C]      do_t . u_s, t >= s
};

namespace detail {

/// Backward of the chunked scan (SPEC 2.1). In a chunk with tokens 0..L, b_t = sum_{r<=t} a_r,
/// Sp the state before the chunk and H = dL/dS_L the gradient reaching its end from later tokens:
///   G_t   = dL/dS_t = exp(b_L - b_t) H + scale sum_{r>=t} exp(b_r - b_t) q_r^T do_r
///   dq_t  = scale [exp(b_t) (Sp do_t^T) + sum_{s<=t} exp(b_t - b_s) k_s (do_t . u_s)]
///   dk_s  = exp(b_L - b_s) (H u_s^T) + scale sum_{r>=s} exp(b_r - b_s) q_r (do_r . u_s)
///   du_s  = (k_s exp(b_L - b_s)) H + sum_{r>=s} intra[r, s] do_r
///   da_t  = exp(a_t) rowsum(S_{t-1} * G_t), expanded into four sums that each carry exp(a_t)
///   H_prev = diag(exp(b_L)) H + scale sum_r (q_r exp(b_r))^T do_r     (reverse chunk carry)
/// (products with vectors elementwise over the n slots). Every decay factor is the exp of a sum
/// of a_r <= 0 accumulated over its own range, never a difference of cumulative sums.
// q, k, a: [N, n]; u, d_o: [N, E]; state0, d_state_final, d_state0: [S, n, E]
template <int C, class Real, class Space>
void gla_chunked_backward_generic(
    const Space& space, const View2<const Real, Space>& q, const View2<const Real, Space>& k,
    const View2<const Real, Space>& a, const View2<const Real, Space>& u,
    const View3<const Real, Space>& state0, const SeqBatch<Space>& batch,
    const View2<const Real, Space>& d_o, const View3<const Real, Space>& d_state_final,
    const View2<Real, Space>& dq, const View2<Real, Space>& dk, const View2<Real, Space>& da,
    const View2<Real, Space>& du, const View3<Real, Space>& d_state0, Real scale,
    GlaScanGradWorkspace<Real, Space>& ws) {
  using rodimus::detail::ensure_capacity;
  namespace kmath = rodimus::detail::kmath;
  const int n = static_cast<int>(q.extent(1));
  const int e_dim = static_cast<int>(u.extent(1));
  const int nc = rodimus::detail::plan_chunks(batch, C, ws.plan);
  const int nb = batch.num_seqs;
  ensure_capacity(ws.g_fwd, batch.num_tokens, n, "rodimus::gla_bwd.g_fwd");
  ensure_capacity(ws.g_bwd, batch.num_tokens, n, "rodimus::gla_bwd.g_bwd");
  // grows a rank-3 view to at least n0 x n1 x n2 (contents not kept)
  auto grow3 = [](View3<Real, Space>& v, std::size_t n0, std::size_t n1, std::size_t n2,
                  const char* label) {
    if (v.extent(0) < n0 || v.extent(1) != n1 || v.extent(2) != n2 || v.extent(0) == 0)
      v = View3<Real, Space>(Kokkos::view_alloc(std::string(label), Kokkos::WithoutInitializing),
                             n0 > 0 ? n0 : 1, n1, n2);
  };
  grow3(ws.states, std::size_t(nc + nb), n, e_dim, "rodimus::gla_bwd.states");
  grow3(ws.d_states, std::size_t(nc + nb), n, e_dim, "rodimus::gla_bwd.d_states");
  grow3(ws.intra, std::size_t(nc), C, C, "rodimus::gla_bwd.intra");
  grow3(ws.dou, std::size_t(nc), C, C, "rodimus::gla_bwd.dou");
  const auto chunks = ws.plan.chunks;
  const auto seq_chunk = ws.plan.seq_chunk;
  const auto g_fwd = ws.g_fwd;
  const auto g_bwd = ws.g_bwd;
  const auto states = ws.states;
  const auto d_states = ws.d_states;
  const auto intra = ws.intra;
  const auto dou = ws.dou;
  const auto slot = batch.slot;
  const bool has_final = d_state_final.extent(0) > 0;

  // 1. Decay factors, one work item per (chunk, slot i), each a sum over its own range:
  //    g_fwd[t] = exp(a_0 + .. + a_t),  g_bwd[t] = exp(a_{t+1} + .. + a_L).
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::gla_bwd_decays"),
      Kokkos::RangePolicy<Space>(space, 0, std::int64_t(nc) * n),
      KOKKOS_LAMBDA(const std::int64_t idx) {
        const int c = static_cast<int>(idx / n);
        const int i = static_cast<int>(idx % n);
        const int t0 = chunks(c, 1);
        const int len = chunks(c, 2);
        Real logd = 0;
        for (int t = 0; t < len; ++t) {
          logd += a(t0 + t, i);
          g_fwd(t0 + t, i) = kmath::exp(logd);
        }
        logd = 0;
        for (int t = len - 1; t >= 0; --t) {
          g_bwd(t0 + t, i) = kmath::exp(logd);
          logd += a(t0 + t, i);
        }
      });

  // 2. Chunk-boundary states, one work item per (sequence, tile of state columns): forward
  //    S_next = diag(g_fwd[L]) S + (k * g_bwd)^T u, then backward from H = d_state_final (or 0)
  //    H_prev = diag(g_fwd[L]) H + scale (q * g_fwd)^T do. Sequence sq's chunk c keeps its
  //    boundaries at rows c + sq (before) and c + sq + 1 (after) of states / d_states.
  constexpr int TE = rodimus::detail::scan_column_tile<Space>;
  const int tiles = (e_dim + TE - 1) / TE;
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::gla_bwd_boundaries"),
      Kokkos::RangePolicy<Space>(space, 0, std::int64_t(nb) * tiles),
      KOKKOS_LAMBDA(const std::int64_t idx) {
        const int sq = static_cast<int>(idx / tiles);
        const int e0 = static_cast<int>(idx % tiles) * TE;
        const int ne = e_dim - e0 < TE ? e_dim - e0 : TE;
        const int sl = slot(sq);
        const int c0 = seq_chunk(sq), c1 = seq_chunk(sq + 1);
        for (int i = 0; i < n; ++i)
          for (int j = 0; j < ne; ++j) {
            states(c0 + sq, i, e0 + j) = state0(sl, i, e0 + j);
            d_states(c1 + sq, i, e0 + j) = has_final ? d_state_final(sl, i, e0 + j) : Real(0);
          }
        for (int c = c0; c < c1; ++c) {
          const int r = c + sq, t0 = chunks(c, 1), len = chunks(c, 2);
          for (int i = 0; i < n; ++i) {
            Real acc[TE];
            const Real g = g_fwd(t0 + len - 1, i);
            for (int j = 0; j < ne; ++j) acc[j] = g * states(r, i, e0 + j);
            for (int s = 0; s < len; ++s) {
              const Real kd = k(t0 + s, i) * g_bwd(t0 + s, i);
              for (int j = 0; j < ne; ++j) acc[j] += kd * u(t0 + s, e0 + j);
            }
            for (int j = 0; j < ne; ++j) states(r + 1, i, e0 + j) = acc[j];
          }
        }
        for (int c = c1 - 1; c >= c0; --c) {
          const int r = c + sq, t0 = chunks(c, 1), len = chunks(c, 2);
          for (int i = 0; i < n; ++i) {
            Real acc[TE];
            const Real g = g_fwd(t0 + len - 1, i);
            for (int j = 0; j < ne; ++j) acc[j] = g * d_states(r + 1, i, e0 + j);
            for (int t = 0; t < len; ++t) {
              const Real qd = scale * q(t0 + t, i) * g_fwd(t0 + t, i);
              for (int j = 0; j < ne; ++j) acc[j] += qd * d_o(t0 + t, e0 + j);
            }
            for (int j = 0; j < ne; ++j) d_states(r, i, e0 + j) = acc[j];
          }
        }
        for (int i = 0; i < n; ++i)
          for (int j = 0; j < ne; ++j) d_state0(sl, i, e0 + j) = d_states(c0 + sq, i, e0 + j);
      });

  // 3. Every chunk in parallel, one team each: the C x C matrices, then du per token and dq, dk,
  //    da per slot. A team writes only its own chunk's rows.
  using Policy = Kokkos::TeamPolicy<Space>;
  using Member = typename Policy::member_type;
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::gla_bwd_chunks"), Policy(space, nc, Kokkos::AUTO),
      KOKKOS_LAMBDA(const Member& m) {
        const int c = m.league_rank();
        const int r = c + chunks(c, 0);
        const int t0 = chunks(c, 1);
        const int len = chunks(c, 2);
        // intra[t, s] = scale sum_i q_t k_s exp(a_{s+1} + .. + a_t), column s per thread
        Kokkos::parallel_for(Kokkos::TeamThreadRange(m, len), [&](const int s) {
          Real col[C];
          for (int t = s; t < len; ++t) col[t] = 0;
          for (int i = 0; i < n; ++i) {
            const Real ks = k(t0 + s, i);
            Real logd = 0;
            col[s] += q(t0 + s, i) * ks;
            for (int t = s + 1; t < len; ++t) {
              logd += a(t0 + t, i);
              col[t] += q(t0 + t, i) * ks * kmath::exp(logd);
            }
          }
          for (int t = s; t < len; ++t) intra(c, t, s) = scale * col[t];
        });
        // dou[t, s] = do_t . u_s  (t >= s)                                     [C, E] x [E, C]
        Kokkos::parallel_for(Kokkos::TeamThreadRange(m, len * len), [&](const int ts) {
          const int t = ts / len, s = ts % len;
          if (s > t) return;
          Real acc = 0;
          for (int e = 0; e < e_dim; ++e) acc += d_o(t0 + t, e) * u(t0 + s, e);
          dou(c, t, s) = acc;
        });
        m.team_barrier();
        // du_x = (k_x * g_bwd_x) H + sum_{t>=x} intra[t, x] do_t, one token per thread
        Kokkos::parallel_for(Kokkos::TeamThreadRange(m, len), [&](const int x) {
          const int tx = t0 + x;
          for (int e = 0; e < e_dim; ++e) du(tx, e) = 0;
          for (int i = 0; i < n; ++i) {
            const Real kd = k(tx, i) * g_bwd(tx, i);
            for (int e = 0; e < e_dim; ++e) du(tx, e) += kd * d_states(r + 1, i, e);
          }
          for (int t = x; t < len; ++t) {
            const Real w = intra(c, t, x);
            for (int e = 0; e < e_dim; ++e) du(tx, e) += w * d_o(t0 + t, e);
          }
        });
        // dq, dk, da of every token, one slot i per thread (no barrier needed: du above reads
        // none of these). With w_t[s] = scale exp(a_{s+1} + .. + a_t) dou[t, s] (s <= t):
        //   dq_t = scale g_fwd_t (Sp do_t^T) + sum_{s<=t} w_t[s] k_s
        //   dk_s = g_bwd_s (H u_s^T) + sum_{t>=s} w_t[s] q_t
        //   da_t = exp(a_t) <S_{t-1}, G_t> = T1 + T2_t + T3_t + T4_t with
        //     T1 = g_fwd_L <Sp, H>,  T2_t = sum_{r>=t} q_r dq_r^inter,  T3_t = sum_{s<t} k_s dk_s^inter,
        //     T4_t = sum_{r>=t} q_r sum_{s<t} w_r[s] k_s
        //   every term carries exp(a_t) and none cancels another (no q dq - k dk differences).
        Kokkos::parallel_for(Kokkos::TeamThreadRange(m, n), [&](const int i) {
          Real w[C], dk_intra[C], t4[C], qd[C];
          for (int t = 0; t < len; ++t) {
            dk_intra[t] = 0;
            t4[t] = 0;
          }
          for (int t = 0; t < len; ++t) {
            const Real qt = q(t0 + t, i);
            // w_t[s], s = t .. 0: the exp of a sum over (s, t], accumulated downwards
            w[t] = scale * dou(c, t, t);
            Real logd = 0;
            for (int s = t - 1; s >= 0; --s) {
              logd += a(t0 + s + 1, i);
              w[s] = scale * kmath::exp(logd) * dou(c, t, s);
            }
            Real pre = 0;  // sum_{s<x} w_t[s] k_s
            for (int x = 0; x <= t; ++x) {
              t4[x] += qt * pre;
              const Real wx = w[x];
              pre += wx * k(t0 + x, i);
              dk_intra[x] += wx * qt;
            }
            qd[t] = pre;  // dq_t^intra
          }
          Real t1 = 0;
          for (int e = 0; e < e_dim; ++e) t1 += states(r, i, e) * d_states(r + 1, i, e);
          t1 *= g_fwd(t0 + len - 1, i);
          Real t3 = 0;
          for (int t = 0; t < len; ++t) {
            const int tt = t0 + t;
            Real iq = 0, ik = 0;
            for (int e = 0; e < e_dim; ++e) {
              iq += states(r, i, e) * d_o(tt, e);
              ik += d_states(r + 1, i, e) * u(tt, e);
            }
            iq *= scale * g_fwd(tt, i);
            ik *= g_bwd(tt, i);
            dq(tt, i) = iq + qd[t];
            dk(tt, i) = ik + dk_intra[t];
            t4[t] += t3;
            t3 += k(tt, i) * ik;
            qd[t] = q(tt, i) * iq;  // now q_t dq_t^inter
          }
          Real t2 = 0;
          for (int t = len - 1; t >= 0; --t) {
            t2 += qd[t];
            da(t0 + t, i) = t1 + t2 + t4[t];
          }
        });
      });
}

}  // namespace detail
}  // namespace rodimus::grad
