// Backward pass of the ShortConv: causal depthwise convolution of width K, then SiLU (SPEC 2.2).
#pragma once

#include <string>

#include "rodimus/core/parallel.hpp"
#include "rodimus/core/seq_batch.hpp"
#include "rodimus/core/views.hpp"
#include "rodimus/grad/grad_mode.hpp"
#include "rodimus/grad/impl/activations.hpp"
#include "rodimus/grad/impl/column_sums.hpp"

namespace rodimus::grad {

/// Backward of ops/short_conv.hpp for a packed batch of whole sequences, each starting from a
/// zero conv state (training): with p_t[c] = b[c] + sum_j w[c, j] x_{t-K+1+j}[c] and
/// xs_t = silu(p_t), let dp_t = dxs_t * silu'(p_t); then
///   dx_t[c] = sum_j w[c, j] dp_{t+K-1-j}[c] over the taps inside the same sequence
///             (overwrites dx, or adds to it with `dx_mode = Accumulate`),
///   dw[c, j] += sum_t dp_t[c] x_{t-K+1+j}[c],   db[c] += sum_t dp_t[c].
/// No gradient crosses a sequence boundary. Throws ArgumentError when a sequence of `batch`
/// continues a state (pos0 != 0). dx may alias dxs. Pass an empty view for any of dx, dw, db
/// that is not wanted. Allocates an [N, E] scratch.
// x: [>=N, E], w: [E, K], b: [E], dxs: [>=N, E], dx: [>=N, E], dw: [E, K], db: [E]
template <class Real, class Space>
void short_conv_backward(const Space& space, const View2<const Real, Space>& x,
                         const View2<const Real, Space>& w, const View1<const Real, Space>& b,
                         const SeqBatch<Space>& batch, const View2<const Real, Space>& dxs,
                         const View2<Real, Space>& dx, const View2<Real, Space>& dw,
                         const View1<Real, Space>& db, GradMode dx_mode = GradMode::Overwrite) {
  namespace rd = ::rodimus::detail;
  const int e_dim = static_cast<int>(w.extent(0));
  const int k_dim = static_cast<int>(w.extent(1));
  const int n = batch.num_tokens;
  if (k_dim < 1) throw ArgumentError("short_conv_backward: w: kernel width must be >= 1");
  rd::check_extent(b, 0, e_dim, "short_conv_backward: b");
  rd::check_extent(x, 1, e_dim, "short_conv_backward: x");
  rd::check_extent(dxs, 1, e_dim, "short_conv_backward: dxs");
  rd::check_extent_at_least(x, 0, n, "short_conv_backward: x");
  rd::check_extent_at_least(dxs, 0, n, "short_conv_backward: dxs");
  if (detail::wanted(dx)) {
    rd::check_extent(dx, 1, e_dim, "short_conv_backward: dx");
    rd::check_extent_at_least(dx, 0, n, "short_conv_backward: dx");
  }
  if (detail::wanted(dw)) {
    rd::check_extent(dw, 0, e_dim, "short_conv_backward: dw");
    rd::check_extent(dw, 1, k_dim, "short_conv_backward: dw");
  }
  if (detail::wanted(db)) rd::check_extent(db, 0, e_dim, "short_conv_backward: db");
  for (std::size_t s = 0; s < batch.h_pos0.size(); ++s)
    if (batch.h_pos0[s] != 0)
      throw ArgumentError("short_conv_backward: batch: sequence " + std::to_string(s) +
                          " has pos0 " + std::to_string(batch.h_pos0[s]) +
                          "; the backward needs sequences that start from a zero conv state");
  if (n == 0 || e_dim == 0) return;
  const auto offsets = batch.offsets;
  const auto token_seq = batch.token_seq;
  // x_{t-K+1+j}[c] inside t's sequence (0 before its start)
  const auto tap = KOKKOS_LAMBDA(int t, int j, int c) {
    const int m = t - (k_dim - 1) + j;
    return m >= offsets(token_seq(t)) ? x(m, c) : Real(0);
  };
  View2<Real, Space> dp(Kokkos::view_alloc(space, std::string("rodimus::grad.short_conv.dp"),
                                           Kokkos::WithoutInitializing),
                        n, e_dim);
  rd::parallel_rows_cols(
      RODIMUS_KERNEL_LABEL("rodimus::grad::short_conv.dp"), space, n, e_dim,
      KOKKOS_LAMBDA(const int t, const int c) {
        Real p = b(c);
        for (int j = 0; j < k_dim; ++j) p += w(c, j) * tap(t, j, c);
        dp(t, c) = dxs(t, c) * detail::silu_grad(p);
      });
  // Columns [0, E K): dw[c, j] at c K + j; [E K, E K + E): db.
  const bool want_dw = detail::wanted(dw), want_db = detail::wanted(db);
  const int ek = e_dim * k_dim;
  if (want_dw || want_db)
    detail::column_sums<Real>(
        space, n, ek + e_dim,
        KOKKOS_LAMBDA(int t, int col) {
          if (col >= ek) return want_db ? dp(t, col - ek) : Real(0);
          const int c = col / k_dim;
          return want_dw ? dp(t, c) * tap(t, col % k_dim, c) : Real(0);
        },
        KOKKOS_LAMBDA(int col, Real s) {
          if (col >= ek) {
            if (want_db) db(col - ek) += s;
          } else if (want_dw) {
            dw(col / k_dim, col % k_dim) += s;
          }
        });
  if (detail::wanted(dx)) {
    const bool accumulate = dx_mode == GradMode::Accumulate;
    rd::parallel_rows_cols(
        RODIMUS_KERNEL_LABEL("rodimus::grad::short_conv.dx"), space, n, e_dim,
        KOKKOS_LAMBDA(const int t, const int c) {
          const int end = offsets(token_seq(t) + 1);
          Real acc = Real(0);
          for (int j = 0; j < k_dim; ++j) {
            const int u = t + (k_dim - 1) - j;  // the output that read x_t through tap j
            if (u < end) acc += w(c, j) * dp(u, c);
          }
          dx(t, c) = accumulate ? dx(t, c) + acc : acc;
        });
  }
}

}  // namespace rodimus::grad
