// Rotary position embedding, non-interleaved "rotate half" form (SPEC 3, step 2).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "rodimus/backend/host/rope.hpp"
#include "rodimus/core/parallel.hpp"
#include "rodimus/core/seq_batch.hpp"

namespace rodimus {

/// inv_freq_i = 1 / base^(2i / rd), i < rd/2, computed in fp32 as the reference release does.
template <class Space>
View1<float, Space> rope_inv_freq(int rotary_dim, double base) {
  View1<float, Space> inv(Kokkos::view_alloc(std::string("rodimus::rope.inv_freq"), Space()),
                          rotary_dim / 2 > 0 ? rotary_dim / 2 : 1);
  auto h = Kokkos::create_mirror_view(inv);
  for (int i = 0; i < rotary_dim / 2; ++i)
    h(i) = 1.0f / std::pow(static_cast<float>(base), static_cast<float>(2 * i) / float(rotary_dim));
  Kokkos::deep_copy(Space(), inv, h);
  Space().fence();
  return inv;
}

namespace detail {
/// Runs the rotary embedding of x (heads_x heads) and, when heads_y > 0, of y (heads_y heads)
/// with the host kernel (backend/host/rope.hpp), both in one parallel loop, when `Space` is a
/// host space, the tensors have unit-stride rows and rotary_dim / 2 fits its table; false
/// (nothing done) otherwise.
template <class Space>
bool rope_host(const Space& space, const View2<float, Space>& x, int heads_x,
               const View2<float, Space>& y, int heads_y, int head_dim,
               const View1<const float, Space>& inv_freq, int half, const SeqBatch<Space>& batch) {
  if constexpr (is_host_space_v<Space>) {
    namespace hb = backend::host;
    if (half > hb::kRopeMaxHalf || x.stride(1) != 1 || inv_freq.stride(0) != 1 ||
        (heads_y > 0 && y.stride(1) != 1))
      return false;
    auto args = [&](const View2<float, Space>& v, int heads) {
      hb::RopeArgs a;
      a.x = v.data();
      a.ldx = static_cast<std::int64_t>(v.stride(0));
      a.inv_freq = inv_freq.data();
      a.offsets = batch.offsets.data();
      a.pos0 = batch.pos0.data();
      a.token_seq = batch.token_seq.data();
      a.heads = heads;
      a.head_dim = head_dim;
      a.half = half;
      return a;
    };
    const hb::RopeArgs ax = args(x, heads_x);
    const hb::RopeArgs ay = heads_y > 0 ? args(y, heads_y) : hb::RopeArgs{};
    const std::int64_t nt = batch.num_tokens;
    constexpr std::int64_t kb = hb::kRopeTokenBlock;
    detail::host_items_for(space, RODIMUS_KERNEL_LABEL("rodimus::rope.host"), (nt + kb - 1) / kb,
                           [=](const std::int64_t blk) {
                             const std::int64_t t0 = blk * kb, t1 = std::min(nt, (blk + 1) * kb);
                             hb::rope_rows(ax, t0, t1);
                             if (ay.x) hb::rope_rows(ay, t0, t1);
                           });
    return true;
  }
  return false;
}
}  // namespace detail

namespace detail {
/// The generic kernel: rotates the heads of x (heads_x of them) and of y (heads_y; none when
/// heads_y is 0) in one launch, a work item per (token, head, rotated pair).
template <class Real, class Space>
void rope_generic(const Space& space, const View2<Real, Space>& x, int heads_x,
                  const View2<Real, Space>& y, int heads_y, int head_dim,
                  const View1<const Real, Space>& inv_freq, int half,
                  const SeqBatch<Space>& batch) {
  const auto offsets = batch.offsets;
  const auto pos0 = batch.pos0;
  const auto token_seq = batch.token_seq;
  const int heads = heads_x + heads_y;
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::rope"),
      detail::range_policy(space, 0, std::int64_t(batch.num_tokens) * heads * half),
      KOKKOS_LAMBDA(const std::int64_t idx) {
        const auto th_i = detail::split_index(idx, half);
        const int th = th_i.row, i = th_i.col;
        const auto t_h = detail::split_index(th, heads);
        const int t = t_h.row, hh = t_h.col;
        const auto& v = hh < heads_x ? x : y;
        const int h = hh < heads_x ? hh : hh - heads_x;
        const int s = token_seq(t);
        const Real pos = static_cast<Real>(pos0(s) + (t - offsets(s)));
        const Real ang = pos * inv_freq(i);
        const Real c = detail::kmath::cos(ang);
        const Real sn = detail::kmath::sin(ang);
        const int base = h * head_dim;
        const Real x1 = v(t, base + i);
        const Real x2 = v(t, base + i + half);
        v(t, base + i) = x1 * c - x2 * sn;
        v(t, base + i + half) = x2 * c + x1 * sn;
      });
}

/// The checks of rope and rope_qk; returns rotary_dim / 2.
template <class View>
int rope_checked(const View& x, int heads, int head_dim, int rotary_dim, int num_tokens,
                 const char* what) {
  if (rotary_dim % 2 != 0 || rotary_dim > head_dim)
    throw ArgumentError("rope: rotary_dim must be even and <= head_dim");
  detail::check_extent(x, 1, std::int64_t(heads) * head_dim, what);
  detail::check_extent_at_least(x, 0, num_tokens, what);
  return rotary_dim / 2;
}

/// rope / rope_qk after their checks: x (heads_x heads) and, when heads_y > 0, y in one launch,
/// the host kernel where it takes the operands, else the generic one. half = rotary_dim / 2 > 0.
template <class Real, class Space>
void rope_run(const Space& space, const View2<Real, Space>& x, int heads_x,
              const View2<Real, Space>& y, int heads_y, int head_dim,
              const View1<const Real, Space>& inv_freq, int half, const SeqBatch<Space>& batch) {
  if constexpr (std::is_same_v<Real, float>)
    if (rope_host(space, x, heads_x, y, heads_y, head_dim, inv_freq, half, batch)) return;
  rope_generic<Real>(space, x, heads_x, y, heads_y, head_dim, inv_freq, half, batch);
}
}  // namespace detail

/// Rotates the first `rd` dims of every head of x in place, at absolute position
/// pos = pos0[seq] + index in call: (x_i, x_{i+rd/2}) -> (x_i cos - x_{i+rd/2} sin,
/// x_{i+rd/2} cos + x_i sin), angle = pos * inv_freq_i (fp32).
/// Real: float, or double (`rope<double>` with grad::rope_inv_freq<double>: angles in fp64).
// x: [>=N, heads * hd], inv_freq: [rd / 2]
template <class Real = float, class Space>
void rope(const Space& space, const View2<std::type_identity_t<Real>, Space>& x, int heads,
          int head_dim, const View1<const std::type_identity_t<Real>, Space>& inv_freq,
          int rotary_dim, const SeqBatch<Space>& batch) {
  if (rotary_dim == 0 || batch.num_tokens == 0) return;
  const int half =
      detail::rope_checked(x, heads, head_dim, rotary_dim, batch.num_tokens, "rope: x");
  detail::rope_run<Real>(space, x, heads, View2<Real, Space>(), 0, head_dim, inv_freq, half, batch);
}

/// rope of the queries q (heads_q heads) and the keys k (heads_k heads) of one attention layer,
/// same positions, in one launch (one parallel loop on the host).
// q: [>=N, heads_q * hd], k: [>=N, heads_k * hd], inv_freq: [rd / 2]
template <class Real = float, class Space>
void rope_qk(const Space& space, const View2<std::type_identity_t<Real>, Space>& q, int heads_q,
             const View2<std::type_identity_t<Real>, Space>& k, int heads_k, int head_dim,
             const View1<const std::type_identity_t<Real>, Space>& inv_freq, int rotary_dim,
             const SeqBatch<Space>& batch) {
  if (rotary_dim == 0 || batch.num_tokens == 0) return;
  const int half =
      detail::rope_checked(q, heads_q, head_dim, rotary_dim, batch.num_tokens, "rope_qk: q");
  detail::rope_checked(k, heads_k, head_dim, rotary_dim, batch.num_tokens, "rope_qk: k");
  detail::rope_run<Real>(space, q, heads_q, k, heads_k, head_dim, inv_freq, half, batch);
}

}  // namespace rodimus
