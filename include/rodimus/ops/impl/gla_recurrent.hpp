// The GLA scan as the token-by-token recurrence (decode, and the device-side referee).
#pragma once

#include <type_traits>

#include "rodimus/backend/exec_space_traits.hpp"
#include "rodimus/core/parallel.hpp"
#include "rodimus/core/seq_batch.hpp"

namespace rodimus::detail {

/// Columns of the state one work item owns: 1 on GPUs (coalesced across threads), a
/// vector-friendly tile on CPUs (the inner loop runs over contiguous columns).
template <class Space>
inline constexpr int scan_column_tile = is_gpu_space_v<Space> ? 1 : 32;

/// S_t = diag(exp(a_t)) S_{t-1} + k_t^T u_t;  o_t = scale * q_t S_t  (SPEC 2, step 7).
/// One work item owns a tile of state columns of one sequence and walks its tokens in order.
// q, k, decay(=exp(a)): [N, n]; u, o: [N, E]; state: [S, n, E]
template <class Space, class Real = float>
void gla_recurrent_generic(const Space& space,
                           const View2<const std::type_identity_t<Real>, Space>& q,
                           const View2<const std::type_identity_t<Real>, Space>& k,
                           const View2<const std::type_identity_t<Real>, Space>& decay,
                           const View2<const std::type_identity_t<Real>, Space>& u,
                           const View3<std::type_identity_t<Real>, Space>& state,
                           const SeqBatch<Space>& batch,
                           const View2<std::type_identity_t<Real>, Space>& o,
                           std::type_identity_t<Real> scale) {
  constexpr int TE = scan_column_tile<Space>;
  const int n = static_cast<int>(q.extent(1));
  const int e_dim = static_cast<int>(u.extent(1));
  const int tiles = (e_dim + TE - 1) / TE;
  const auto offsets = batch.offsets;
  const auto slot = batch.slot;
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::gla_recurrent"),
      detail::range_policy(space, 0, std::int64_t(batch.num_seqs) * tiles),
      KOKKOS_LAMBDA(const std::int64_t idx) {
        const auto s_tile = split_index(idx, tiles);
        const int s = s_tile.row, tile = s_tile.col;
        const int e0 = tile * TE;
        const int ne = e_dim - e0 < TE ? e_dim - e0 : TE;
        const int sl = slot(s);
        for (int t = offsets(s); t < offsets(s + 1); ++t) {
          Real acc[TE];
          Real ut[TE];
          for (int j = 0; j < TE; ++j) {
            acc[j] = Real(0);
            ut[j] = j < ne ? u(t, e0 + j) : Real(0);
          }
          for (int i = 0; i < n; ++i) {
            const Real d = decay(t, i), kk = k(t, i), qq = q(t, i);
            Real* srow = &state(sl, i, e0);
            for (int j = 0; j < ne; ++j) {
              const Real si = d * srow[j] + kk * ut[j];
              srow[j] = si;
              acc[j] += qq * si;
            }
          }
          for (int j = 0; j < ne; ++j) o(t, e0 + j) = scale * acc[j];
        }
      });
}

/// decay = exp(a), element-wise.   a, decay: [N, n]
template <class Space, class Real = float>
void exp_generic(const Space& space, const View2<const std::type_identity_t<Real>, Space>& a,
                 const View2<std::type_identity_t<Real>, Space>& out, int n_tokens) {
  const int n = static_cast<int>(a.extent(1));
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::exp"),
      detail::range_policy(space, 0, std::int64_t(n_tokens) * n),
      KOKKOS_LAMBDA(const std::int64_t idx) {
        const auto t_i = split_index(idx, n);
        const int t = t_i.row, i = t_i.col;
        out(t, i) = kmath::exp(a(t, i));
      });
}

}  // namespace rodimus::detail
