// Backward pass of the token embedding lookup: a deterministic scatter-add into the table's
// gradient (SPEC 5).
#pragma once

#include "rodimus/backend/exec_space_traits.hpp"
#include "rodimus/core/views.hpp"
#include "rodimus/grad/impl/check_ids.hpp"

namespace rodimus::grad {

namespace detail {

/// Columns one host work item owns in the scatter (contiguous, so the inner loop vectorises).
inline constexpr int kEmbeddingColumnBlock = 64;

}  // namespace detail

/// Backward of ops/embedding.hpp (h[t] = table[ids[t]] * scale): dtable[ids[t]] += scale dh[t]
/// for every t < N (accumulates; a token id seen k times adds k rows). Deterministic and free of
/// atomics: each work item owns a block of columns of dtable and walks the tokens in order, so
/// repeated ids add up in token order on every backend. Ids outside [0, V) throw ArgumentError
/// (checked on the device before anything is written). For tied embeddings the LM head's weight
/// gradient (grad/linear.hpp with W = table) accumulates into the same dtable.
// ids: [>=N], dh: [>=N, D], dtable: [V, D]
template <class Real, class Space>
void embedding_backward(const Space& space, const View1<const int, Space>& ids,
                        const View2<const Real, Space>& dh, Real scale,
                        const View2<Real, Space>& dtable, int n_tokens) {
  const int d = static_cast<int>(dtable.extent(1));
  const int vocab = static_cast<int>(dtable.extent(0));
  if (n_tokens < 0) throw ArgumentError("embedding_backward: n_tokens is negative");
  ::rodimus::detail::check_extent(dh, 1, d, "embedding_backward: dh");
  ::rodimus::detail::check_extent_at_least(dh, 0, n_tokens, "embedding_backward: dh");
  ::rodimus::detail::check_extent_at_least(ids, 0, n_tokens, "embedding_backward: ids");
  if (n_tokens == 0 || d == 0) return;
  if (vocab == 0) throw ArgumentError("embedding_backward: dtable: the vocabulary is empty");
  detail::check_ids(space, ids, n_tokens, vocab, 0, "embedding_backward: ids");  // 0: in range
  const int block = is_host_space_v<Space> ? detail::kEmbeddingColumnBlock : 1;
  const int blocks = (d + block - 1) / block;
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::grad::embedding"),
      Kokkos::RangePolicy<Space>(space, 0, blocks), KOKKOS_LAMBDA(const int b) {
        const int c0 = b * block;
        const int c1 = c0 + block < d ? c0 + block : d;
        for (int t = 0; t < n_tokens; ++t) {
          const int row = ids(t);
          for (int c = c0; c < c1; ++c) dtable(row, c) += scale * dh(t, c);
        }
      });
}

}  // namespace rodimus::grad
