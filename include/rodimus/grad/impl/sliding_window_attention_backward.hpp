// Generic Kokkos kernels of the sliding-window shared-key attention backward (flash-attention
// structure: row statistics recomputed, then gradients gathered per query row and per key row).
#pragma once

#include <cstdint>

#include "rodimus/backend/exec_space_traits.hpp"
#include "rodimus/core/seq_batch.hpp"
#include "rodimus/ops/sliding_window_attention.hpp"

namespace rodimus::grad {

/// Scratch of the attention backward; grows only.
template <class Real, class Space>
struct SlidingWindowAttentionGradWorkspace {
  View2<Real, Space> lse;    // [N, H]  log sum_j exp(s_ij) of each query row
  View2<Real, Space> delta;  // [N, H]  D_i = sum_j P_ij dP_ij = do_i . o_i
};

namespace detail {

/// Backward of o_i = sum_j P_ij v_j, P_ij = softmax_j(s_ij), s_ij = scale q_i . k_j over the
/// window j in [max(0, i - W), i] of i's own sequence (SPEC 3 steps 3-4). Per query row (i, h):
///   lse_i = log sum_j exp(s_ij),  dP_ij = do_i . v_j,  D_i = sum_j P_ij dP_ij,
///   dS_ij = P_ij (dP_ij - D_i),   dq_i = scale sum_j dS_ij k_j;
/// per key row (j, key head kh) and (j, value head vh), gathering over the query rows that see j
/// (i in [j, j + W], every head h with h % Hk = kh, resp. h % Hv = vh):
///   dk_j = scale sum dS_ij q_i,   dv_j = sum P_ij do_i.
/// Each work item writes only its own row: race-free without atomics.
// q, d_out, dq: [N, H*hd]; k, dk: [N, Hk*hd]; v, dv: [N, Hv*hd]
template <class Real, class Space>
void swa_backward_generic(const Space& space, const View2<const Real, Space>& q,
                          const View2<const Real, Space>& k, const View2<const Real, Space>& v,
                          const SeqBatch<Space>& batch, const View2<const Real, Space>& d_out,
                          const View2<Real, Space>& dq, const View2<Real, Space>& dk,
                          const View2<Real, Space>& dv, const AttentionShape& shape,
                          SlidingWindowAttentionGradWorkspace<Real, Space>& ws) {
  namespace kmath = rodimus::detail::kmath;
  const int heads = shape.heads, hk = shape.heads_k, hv = shape.heads_v, hd = shape.head_dim;
  const int wb = shape.window_back;
  const Real scale = static_cast<Real>(shape.scale);
  const int nt = batch.num_tokens;
  rodimus::detail::ensure_capacity(ws.lse, nt, heads, "rodimus::swa_bwd.lse");
  rodimus::detail::ensure_capacity(ws.delta, nt, heads, "rodimus::swa_bwd.delta");
  const auto lse = ws.lse;
  const auto delta = ws.delta;
  const auto offsets = batch.offsets;
  const auto token_seq = batch.token_seq;

  // 1. One work item per query row (t, h): statistics, then dq.
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::swa_bwd_query"),
      Kokkos::RangePolicy<Space>(space, 0, std::int64_t(nt) * heads),
      KOKKOS_LAMBDA(const std::int64_t idx) {
        const int t = static_cast<int>(idx / heads);
        const int h = static_cast<int>(idx % heads);
        const int r0 = offsets(token_seq(t));  // row of the sequence's first token
        const int lo = (wb < 0 || t - r0 < wb) ? r0 : t - wb;
        const int qb = h * hd, kb = (h % hk) * hd, vb = (h % hv) * hd;
        auto score = [&](int j) {
          Real d = 0;
          for (int c = 0; c < hd; ++c) d += q(t, qb + c) * k(j, kb + c);
          return scale * d;
        };
        auto dprob = [&](int j) {
          Real d = 0;
          for (int c = 0; c < hd; ++c) d += d_out(t, qb + c) * v(j, vb + c);
          return d;
        };
        Real mx = score(t);
        for (int j = lo; j < t; ++j) {
          const Real s = score(j);
          mx = s > mx ? s : mx;
        }
        Real sum = 0;
        for (int j = lo; j <= t; ++j) sum += kmath::exp(score(j) - mx);
        const Real l = mx + kmath::log(sum);
        Real dsum = 0;
        for (int j = lo; j <= t; ++j) dsum += kmath::exp(score(j) - l) * dprob(j);
        lse(t, h) = l;
        delta(t, h) = dsum;
        for (int c = 0; c < hd; ++c) dq(t, qb + c) = 0;
        for (int j = lo; j <= t; ++j) {
          const Real ds = scale * kmath::exp(score(j) - l) * (dprob(j) - dsum);
          for (int c = 0; c < hd; ++c) dq(t, qb + c) += ds * k(j, kb + c);
        }
      });

  // 2. One work item per key row (j, key head) for dk and per (j, value head) for dv, over the
  //    query rows (i, h) that see token j.
  const int hkv = hk + hv;
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::swa_bwd_key"),
      Kokkos::RangePolicy<Space>(space, 0, std::int64_t(nt) * hkv),
      KOKKOS_LAMBDA(const std::int64_t idx) {
        const int j = static_cast<int>(idx / hkv);
        const int x = static_cast<int>(idx % hkv);
        const bool is_k = x < hk;
        const int head = is_k ? x : x - hk;         // key head, or value head
        const int nheads = is_k ? hk : hv;           // query heads h = head + m * nheads
        const int r1 = offsets(token_seq(j) + 1);  // one past the sequence's last row
        const int hi = (wb < 0 || r1 - 1 - j < wb) ? r1 - 1 : j + wb;
        const auto& out = is_k ? dk : dv;
        const int ob = head * hd;
        for (int c = 0; c < hd; ++c) out(j, ob + c) = 0;
        for (int h = head; h < heads; h += nheads) {
          const int qb = h * hd, kb = (h % hk) * hd, vb = (h % hv) * hd;
          for (int i = j; i <= hi; ++i) {
            Real s = 0;
            for (int c = 0; c < hd; ++c) s += q(i, qb + c) * k(j, kb + c);
            const Real p = kmath::exp(scale * s - lse(i, h));
            if (is_k) {
              Real dp = 0;
              for (int c = 0; c < hd; ++c) dp += d_out(i, qb + c) * v(j, vb + c);
              const Real ds = scale * p * (dp - delta(i, h));
              for (int c = 0; c < hd; ++c) out(j, ob + c) += ds * q(i, qb + c);
            } else {
              for (int c = 0; c < hd; ++c) out(j, ob + c) += p * d_out(i, qb + c);
            }
          }
        }
      });
}

}  // namespace detail
}  // namespace rodimus::grad
