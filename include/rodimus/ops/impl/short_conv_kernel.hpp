// Generic Kokkos kernels of the causal depthwise ShortConv + SiLU and its state update.
#pragma once

#include <cstdint>
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

/// Tokens one work item of short_conv_blocked walks.
inline constexpr int kConvTokenBlock = 16;

/// short_conv_generic for a width K known at compile time: one work item per (block of
/// kConvTokenBlock tokens, channel), its K-1 earlier inputs sliding through registers, so each
/// input is read once (not K times) and the weights once per block; same sums in the same
/// order, so the same results. Pays when sequences are long (prefill), not for one token per
/// sequence (decode), where every token would start a new window.
template <int K, class Space, class Real = float>
void short_conv_blocked(const Space& space, const View2<const std::type_identity_t<Real>, Space>& x,
                        const View2<const std::type_identity_t<Real>, Space>& w,
                        const View1<const std::type_identity_t<Real>, Space>& b,
                        const View3<const std::type_identity_t<Real>, Space>& state,
                        const SeqBatch<Space>& batch,
                        const View2<std::type_identity_t<Real>, Space>& xs) {
  static_assert(K >= 2 && K <= kMaxConv);
  const int e_dim = static_cast<int>(w.extent(0));
  const int n_tok = batch.num_tokens;
  const auto offsets = batch.offsets;
  const auto slot = batch.slot;
  const auto token_seq = batch.token_seq;
  parallel_rows_cols(
      RODIMUS_KERNEL_LABEL("rodimus::short_conv"), space,
      (n_tok + kConvTokenBlock - 1) / kConvTokenBlock, e_dim,
      KOKKOS_LAMBDA(const int blk, const int c) {
        Real wc[K], win[K - 1] = {};  // weights; inputs t-K+1 .. t-1
        for (int j = 0; j < K; ++j) wc[j] = w(c, j);
        const Real bias = b(c);
        const int t0 = blk * kConvTokenBlock;
        const int t1 = t0 + kConvTokenBlock < n_tok ? t0 + kConvTokenBlock : n_tok;
        int s = -1;
        for (int t = t0; t < t1; ++t) {
          if (token_seq(t) != s) {  // a new sequence (or the block's first): fill the window
            s = token_seq(t);
            const int i = t - offsets(s);
            for (int j = 0; j < K - 1; ++j) {
              const int m = i - (K - 1) + j;
              win[j] = m >= 0 ? x(offsets(s) + m, c) : state(slot(s), K - 1 + m, c);
            }
          }
          const Real v = x(t, c);
          Real acc = bias;
          for (int j = 0; j < K - 1; ++j) acc += wc[j] * win[j];
          acc += wc[K - 1] * v;
          xs(t, c) = silu(acc);
          for (int j = 0; j + 1 < K - 1; ++j) win[j] = win[j + 1];
          win[K - 2] = v;
        }
      });
}

/// The conv kernel for a batch: short_conv_blocked when the width is 2..4 and sequences are
/// at least a token block long on average, else short_conv_generic.
template <class Space, class Real = float>
void short_conv_kernel(const Space& space, const View2<const std::type_identity_t<Real>, Space>& x,
                       const View2<const std::type_identity_t<Real>, Space>& w,
                       const View1<const std::type_identity_t<Real>, Space>& b,
                       const View3<const std::type_identity_t<Real>, Space>& state,
                       const SeqBatch<Space>& batch,
                       const View2<std::type_identity_t<Real>, Space>& xs) {
  const int k = static_cast<int>(w.extent(1));
  if (batch.num_tokens >= std::int64_t(kConvTokenBlock) * batch.num_seqs) {
    switch (k) {
      case 2:
        return short_conv_blocked<2, Space, Real>(space, x, w, b, state, batch, xs);
      case 3:
        return short_conv_blocked<3, Space, Real>(space, x, w, b, state, batch, xs);
      case 4:
        return short_conv_blocked<4, Space, Real>(space, x, w, b, state, batch, xs);
      default:
        break;
    }
  }
  short_conv_generic<Space, Real>(space, x, w, b, state, batch, xs);
}

/// A decode step (every sequence of the batch one token long) in one kernel: the conv output
/// and the state shift of each (sequence, channel) by one work item, which alone reads and
/// writes that channel's state, so no second launch is needed for the update.
// x: [N, E], w: [E, K], b: [E], state: [S, K-1, E] (oldest first), xs: [N, E]
template <class Space, class Real = float>
void short_conv_step_generic(const Space& space,
                             const View2<const std::type_identity_t<Real>, Space>& x,
                             const View2<const std::type_identity_t<Real>, Space>& w,
                             const View1<const std::type_identity_t<Real>, Space>& b,
                             const View3<std::type_identity_t<Real>, Space>& state,
                             const SeqBatch<Space>& batch,
                             const View2<std::type_identity_t<Real>, Space>& xs) {
  const int e_dim = static_cast<int>(w.extent(0));
  const int km1 = static_cast<int>(w.extent(1)) - 1;
  const auto offsets = batch.offsets;
  const auto slot = batch.slot;
  parallel_rows_cols(
      RODIMUS_KERNEL_LABEL("rodimus::short_conv_step"), space, batch.num_seqs, e_dim,
      KOKKOS_LAMBDA(const int s, const int c) {
        const int t = offsets(s), sl = slot(s);
        const Real v = x(t, c);
        Real acc = b(c);
        Real prev = km1 > 0 ? state(sl, 0, c) : Real(0);
        for (int j = 0; j < km1; ++j) {
          const Real next = j + 1 < km1 ? state(sl, j + 1, c) : v;
          acc += w(c, j) * prev;
          state(sl, j, c) = next;  // shifted by one: the oldest input drops out
          prev = next;
        }
        acc += w(c, km1) * v;
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
      detail::range_policy(space, 0, std::int64_t(batch.num_seqs) * e_dim),
      KOKKOS_LAMBDA(const std::int64_t idx) {
        const auto s_c = split_index(idx, e_dim);
        const int s = s_c.row, c = s_c.col;
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
