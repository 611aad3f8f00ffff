// The GLA scan as the token-by-token recurrence (decode, and the device-side referee).
#pragma once

#include "rodimus/core/seq_batch.hpp"

namespace rodimus::detail {

/// S_t = diag(exp(a_t)) S_{t-1} + k_t^T u_t;  o_t = scale * q_t S_t  (SPEC 2, step 7).
/// One work item owns one state column e of one sequence and walks its tokens in order.
// q, k, decay(=exp(a)): [N, n]; u, o: [N, E]; state: [S, n, E]
template <class Space>
void gla_recurrent_generic(const Space& space, const View2<const float, Space>& q,
                           const View2<const float, Space>& k,
                           const View2<const float, Space>& decay,
                           const View2<const float, Space>& u, const View3<float, Space>& state,
                           const SeqBatch<Space>& batch, const View2<float, Space>& o,
                           float scale) {
  const int n = static_cast<int>(q.extent(1));
  const int e_dim = static_cast<int>(u.extent(1));
  const auto offsets = batch.offsets;
  const auto slot = batch.slot;
  Kokkos::parallel_for(
      "rodimus::gla_recurrent",
      Kokkos::RangePolicy<Space>(space, 0, std::int64_t(batch.num_seqs) * e_dim),
      KOKKOS_LAMBDA(const std::int64_t idx) {
        const int s = static_cast<int>(idx / e_dim);
        const int e = static_cast<int>(idx % e_dim);
        const int sl = slot(s);
        for (int t = offsets(s); t < offsets(s + 1); ++t) {
          const float ut = u(t, e);
          float acc = 0.f;
          for (int i = 0; i < n; ++i) {
            const float si = decay(t, i) * state(sl, i, e) + k(t, i) * ut;
            state(sl, i, e) = si;
            acc += q(t, i) * si;
          }
          o(t, e) = scale * acc;
        }
      });
}

/// decay = exp(a), element-wise.   a, decay: [N, n]
template <class Space>
void exp_generic(const Space& space, const View2<const float, Space>& a,
                 const View2<float, Space>& out, int n_tokens) {
  const int n = static_cast<int>(a.extent(1));
  Kokkos::parallel_for(
      "rodimus::exp", Kokkos::RangePolicy<Space>(space, 0, std::int64_t(n_tokens) * n),
      KOKKOS_LAMBDA(const std::int64_t idx) {
        const int t = static_cast<int>(idx / n);
        const int i = static_cast<int>(idx % n);
        out(t, i) = kmath::exp(a(t, i));
      });
}

}  // namespace rodimus::detail
