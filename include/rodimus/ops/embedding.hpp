// Token embedding lookup with the optional sqrt(n) scale (SPEC 5).
#pragma once

#include "rodimus/core/dtype.hpp"
#include "rodimus/core/parallel.hpp"
#include "rodimus/core/views.hpp"

namespace rodimus {

/// h[t] = table[ids[t]] * scale.  ids must already be validated against the vocabulary.
/// fp32 activations, or fp64 for a double table (the fp64 training forward).
// ids: [>=N], table: [V, D], h: [>=N, D]
template <class Space, WeightType W>
void embedding(const Space& space, const View1<const int, Space>& ids,
               const View2<const W, Space>& table, compute_t<W> scale,
               const View2<compute_t<W>, Space>& h, int n_tokens) {
  const int d = static_cast<int>(table.extent(1));
  detail::check_extent(h, 1, d, "embedding: h");
  detail::check_extent_at_least(h, 0, n_tokens, "embedding: h");
  detail::check_extent_at_least(ids, 0, n_tokens, "embedding: ids");
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::embedding"),
      detail::range_policy(space, 0, std::int64_t(n_tokens) * d),
      KOKKOS_LAMBDA(const std::int64_t idx) {
        const auto t_c = detail::split_index(idx, d);
        const int t = t_c.row, c = t_c.col;
        h(t, c) = to_compute(table(ids(t), c)) * scale;
      });
}

}  // namespace rodimus
