// Backward pass of the rotary position embedding (SPEC 3.2): the rotation by -angle.
#pragma once

#include <cmath>
#include <string>

#include "rodimus/core/seq_batch.hpp"
#include "rodimus/core/views.hpp"

namespace rodimus::grad {

/// inv_freq_i = 1 / base^(2i / rd), i < rd/2, evaluated in Real: for float the very table of
/// ops/rope.hpp `rope_inv_freq` (fp32, as the release), for double the fp64 one.
template <class Real, class Space>
View1<Real, Space> rope_inv_freq(int rotary_dim, double base) {
  View1<Real, Space> inv(Kokkos::view_alloc(std::string("rodimus::grad.rope.inv_freq"), Space()),
                         rotary_dim / 2 > 0 ? rotary_dim / 2 : 1);
  auto h = Kokkos::create_mirror_view(inv);
  for (int i = 0; i < rotary_dim / 2; ++i)
    h(i) = Real(1) / std::pow(static_cast<Real>(base), static_cast<Real>(2 * i) / Real(rotary_dim));
  Kokkos::deep_copy(Space(), inv, h);
  Space().fence();
  return inv;
}

/// Backward of ops/rope.hpp, in place: the forward rotates each pair (x_i, x_{i+rd/2}) of every
/// head by angle = pos * inv_freq_i (pos = pos0[seq] + index in the call), so the gradient
/// rotates back: (g_i, g_{i+rd/2}) -> (g_i cos + g_{i+rd/2} sin, g_{i+rd/2} cos - g_i sin).
/// Dims past rotary_dim pass through. Angles are computed in Real as pos * inv_freq.
// dx: [>=N, heads * hd] (dL/dy on entry, dL/dx on exit), inv_freq: [rd / 2]
template <class Real, class Space>
void rope_backward(const Space& space, const View2<Real, Space>& dx, int heads, int head_dim,
                   const View1<const Real, Space>& inv_freq, int rotary_dim,
                   const SeqBatch<Space>& batch) {
  if (rotary_dim < 0 || rotary_dim % 2 != 0 || rotary_dim > head_dim)
    throw ArgumentError("rope_backward: rotary_dim must be even and in [0, head_dim]");
  ::rodimus::detail::check_extent(dx, 1, std::int64_t(heads) * head_dim, "rope_backward: dx");
  ::rodimus::detail::check_extent_at_least(dx, 0, batch.num_tokens, "rope_backward: dx");
  if (rotary_dim == 0 || batch.num_tokens == 0 || heads == 0) return;
  ::rodimus::detail::check_extent_at_least(inv_freq, 0, rotary_dim / 2, "rope_backward: inv_freq");
  const int half = rotary_dim / 2;
  const auto offsets = batch.offsets;
  const auto pos0 = batch.pos0;
  const auto token_seq = batch.token_seq;
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::grad::rope"),
      Kokkos::RangePolicy<Space>(space, 0, std::int64_t(batch.num_tokens) * heads * half),
      KOKKOS_LAMBDA(const std::int64_t idx) {
        namespace km = ::rodimus::detail::kmath;
        const int i = static_cast<int>(idx % half);
        const int h = static_cast<int>((idx / half) % heads);
        const int t = static_cast<int>(idx / (std::int64_t(half) * heads));
        const int s = token_seq(t);
        const Real pos = static_cast<Real>(pos0(s) + (t - offsets(s)));
        const Real ang = pos * inv_freq(i);
        const Real c = km::cos(ang);
        const Real sn = km::sin(ang);
        const int base = h * head_dim;
        const Real g1 = dx(t, base + i);
        const Real g2 = dx(t, base + i + half);
        dx(t, base + i) = g1 * c + g2 * sn;
        dx(t, base + i + half) = g2 * c - g1 * sn;
      });
}

}  // namespace rodimus::grad
