// The DDTS gates (SPEC 2, steps 4-6): tempered selection gates, key normalisation, and the
// low-rank channel (input) gate.
#pragma once

#include <type_traits>

#include "rodimus/ops/impl/gate_host.hpp"
#include "rodimus/ops/impl/gate_kernels.hpp"
#include "rodimus/ops/linear.hpp"

namespace rodimus {

/// From the gate projections of `xs`: s = softplus(s_raw), tau = sigmoid(tau_raw);
/// log forget gate a = -tau * s; input gate beta = s^tau; k' = beta * k / max(||k||_2, eps).
/// Real: float, or double (`ddts_gate<double>`, the fp64 training forward).
// s_raw, tau_raw, k: [>=N, n]; a, k_out: [>=N, n]; k_out may alias k.
template <class Real = float, class Space>
void ddts_gate(const Space& space, const View2<const std::type_identity_t<Real>, Space>& s_raw,
               const View2<const std::type_identity_t<Real>, Space>& tau_raw,
               const View2<const std::type_identity_t<Real>, Space>& k,
               const View2<std::type_identity_t<Real>, Space>& a,
               const View2<std::type_identity_t<Real>, Space>& k_out, int n_tokens,
               std::type_identity_t<Real> normalize_eps) {
  const auto n = k.extent(1);
  detail::check_extent(s_raw, 1, n, "ddts_gate: s_raw");
  detail::check_extent(tau_raw, 1, n, "ddts_gate: tau_raw");
  detail::check_extent(a, 1, n, "ddts_gate: a");
  detail::check_extent(k_out, 1, n, "ddts_gate: k_out");
  for (auto* v : {&s_raw, &tau_raw, &k})
    detail::check_extent_at_least(*v, 0, n_tokens, "ddts_gate: input");
  detail::check_extent_at_least(a, 0, n_tokens, "ddts_gate: a");
  detail::check_extent_at_least(k_out, 0, n_tokens, "ddts_gate: k_out");
  if (n_tokens <= 0) return;
  if constexpr (std::is_same_v<Real, float>)
    if (detail::ddts_gate_host(space, s_raw, tau_raw, k, a, k_out, n_tokens, normalize_eps))
      return;
  detail::ddts_gate_generic<Space, Real>(space, s_raw, tau_raw, k, a, k_out, n_tokens,
                                         normalize_eps);
}

/// Weights of the low-rank channel gate u = sigmoid((x W1^T) W2^T + b2) * x.
template <WeightType W, class Space>
struct ChannelGateWeights {
  LinearWeights<W, Space> down;  ///< W1: [R, E]
  LinearWeights<W, Space> up;    ///< W2: [E, R], b2: [E]
};

namespace detail {
/// channel_gate_up after its argument checks (ddts_gla_scan_gated's fallback calls it).
template <class Space, WeightType W>
void channel_gate_up_checked(const Space& space, const View2<const compute_t<W>, Space>& x,
                             const ChannelGateWeights<W, Space>& cw,
                             const View2<const compute_t<W>, Space>& z_r,
                             const View2<compute_t<W>, Space>& z_e,
                             const View2<compute_t<W>, Space>& u, int n_tokens) {
  using C = compute_t<W>;
  if (n_tokens <= 0) return;
  if constexpr (StorageType<W>) {  // CUDA: the product in the GEMV's epilogue or the bias pass
    if (cuda_linear_gated(space, z_r, cw.up, z_e, x, u, n_tokens)) return;
  }
  linear_checked(space, z_r, cw.up, z_e, n_tokens);
  if constexpr (std::is_same_v<C, float>)
    if (gate_product_host<backend::host::GateProduct::Sigmoid>(space, View2<const C, Space>(z_e),
                                                               x, u, n_tokens))
      return;
  sigmoid_gate_generic<Space, C>(space, View2<const C, Space>(z_e), x, u, n_tokens);
}
}  // namespace detail

/// The channel gate after its down-projection: u = sigmoid(z_r W2^T + b2) * x with z_r = x W1^T
/// given (the Rodimus mixer computes z_r in the launch of its DDTS projections). x, u: [>=N, E];
/// z_r: [>=N, R]; z_e: [>=N, E] scratch (on return z_r W2^T + b2, what the backward reads).
template <class Space, WeightType W>
void channel_gate_up(const Space& space, const View2<const compute_t<W>, Space>& x,
                     const ChannelGateWeights<W, Space>& cw,
                     const View2<const compute_t<W>, Space>& z_r,
                     const View2<compute_t<W>, Space>& z_e, const View2<compute_t<W>, Space>& u,
                     int n_tokens) {
  detail::check_extent(u, 1, x.extent(1), "channel_gate: u");
  detail::check_extent_at_least(u, 0, n_tokens, "channel_gate: u");
  detail::check_extent_at_least(x, 0, n_tokens, "channel_gate: x");
  detail::check_linear_args<Space, W>(z_r, cw.up, z_e, n_tokens);
  detail::channel_gate_up_checked(space, x, cw, z_r, z_e, u, n_tokens);
}

/// u = sigmoid((x W1^T) W2^T + b2) * x.   x, u: [>=N, E]; z_r: [>=N, R], z_e: [>=N, E] scratch
/// (on return z_r = x W1^T and z_e = z_r W2^T + b2, what the backward reads). fp64 throughout
/// for `W = double`.
template <class Space, WeightType W>
void channel_gate(const Space& space, const View2<const compute_t<W>, Space>& x,
                  const ChannelGateWeights<W, Space>& cw, const View2<compute_t<W>, Space>& z_r,
                  const View2<compute_t<W>, Space>& z_e, const View2<compute_t<W>, Space>& u,
                  int n_tokens) {
  using C = compute_t<W>;
  detail::check_extent(u, 1, x.extent(1), "channel_gate: u");
  detail::check_extent_at_least(u, 0, n_tokens, "channel_gate: u");
  linear(space, x, cw.down, z_r, n_tokens);
  channel_gate_up(space, x, cw, View2<const C, Space>(z_r), z_e, u, n_tokens);
}

}  // namespace rodimus
