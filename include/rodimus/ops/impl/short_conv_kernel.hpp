// Generic Kokkos kernels of the causal depthwise ShortConv + SiLU and its state update.
#pragma once

#include <type_traits>

#include "rodimus/core/math.hpp"
#include "rodimus/core/parallel.hpp"
#include "rodimus/core/seq_batch.hpp"

namespace rodimus::detail {

/// Longest conv supported (ModelConfig limits d_conv to this).
inline constexpr int kMaxConv = 64;

// x: [N, E], w: [E, K], b: [E], state: [S, K-1, E] (oldest first), xs: [N, E]
template <class Space, class Real = float>
void short_conv_generic(const Space& space, const View2<const std::type_identity_t<Real>, Space>& x,
                        const View2<const std::type_identity_t<Real>, Space>& w,
                        const View1<const std::type_identity_t<Real>, Space>& b,
                        const View3<const std::type_identity_t<Real>, Space>& state,
                        const SeqBatch<Space>& batch,
                        const View2<std::type_identity_t<Real>, Space>& xs) {
  const int e_dim = static_cast<int>(w.extent(0));
  const int k_dim = static_cast<int>(w.extent(1));
  const auto offsets = batch.offsets;
  const auto slot = batch.slot;
  const auto token_seq = batch.token_seq;
  parallel_rows_cols(
      RODIMUS_KERNEL_LABEL("rodimus::short_conv"), space, batch.num_tokens, e_dim,
      KOKKOS_LAMBDA(const int t, const int c) {
        const int s = token_seq(t);
        const int i = t - offsets(s);  // index inside this call's part of the sequence
        Real acc = b(c);
        for (int j = 0; j < k_dim; ++j) {
          const int m = i - (k_dim - 1) + j;  // relative to the call start
          const Real v = m >= 0 ? x(offsets(s) + m, c) : state(slot(s), k_dim - 1 + m, c);
          acc += w(c, j) * v;
        }
        xs(t, c) = silu(acc);
      });
}

/// Shifts the last K-1 conv inputs of each sequence into its state slot.
template <class Space, class Real = float>
void short_conv_update_state_generic(const Space& space,
                                     const View2<const std::type_identity_t<Real>, Space>& x,
                                     const View3<std::type_identity_t<Real>, Space>& state,
                                     const SeqBatch<Space>& batch) {
  const int e_dim = static_cast<int>(state.extent(2));
  const int km1 = static_cast<int>(state.extent(1));
  const auto offsets = batch.offsets;
  const auto slot = batch.slot;
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::short_conv_state"),
      Kokkos::RangePolicy<Space>(space, 0, std::int64_t(batch.num_seqs) * e_dim),
      KOKKOS_LAMBDA(const std::int64_t idx) {
        const int s = static_cast<int>(idx / e_dim);
        const int c = static_cast<int>(idx % e_dim);
        const int len = offsets(s + 1) - offsets(s);
        Real buf[kMaxConv];
        for (int m = 0; m < km1; ++m) {
          const int src = len - km1 + m;  // relative to the call start
          buf[m] = src >= 0 ? x(offsets(s) + src, c) : state(slot(s), km1 + src, c);
        }
        for (int m = 0; m < km1; ++m) state(slot(s), m, c) = buf[m];
      });
}

}  // namespace rodimus::detail
