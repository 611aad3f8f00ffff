// Backward passes of the DDTS gates with the key scaling, and of the low-rank channel gate
// (SPEC 2, steps 4-6; the forward is ops/ddts_gate.hpp).
#pragma once

#include <string>
#include <utility>

#include "rodimus/core/parallel.hpp"
#include "rodimus/core/views.hpp"
#include "rodimus/grad/grad_mode.hpp"
#include "rodimus/grad/impl/activations.hpp"
#include "rodimus/grad/linear.hpp"

namespace rodimus::grad {

/// Backward of `ddts_gate`: s = softplus(s_raw), tau = sigmoid(tau_raw), a = -tau s,
/// beta = s^tau, k' = beta k / max(||k||_2, eps) (SPEC 2.5-2.6). With dbeta = dk' k / N,
/// N = max(||k||, eps):
///   ds_raw   = -da tau sigmoid(s_raw) + dbeta tau beta sigmoid(s_raw) / s,
///   dtau_raw = (-da s + dbeta beta log s) tau (1 - tau),
///   dk_j     = dk'_j beta_j / N - [||k|| > eps] k_j / N^3 sum_i dk'_i beta_i k_i   (overwrite).
/// log s and sigmoid(s_raw) / s use forms that stay finite for every s_raw (s underflows to 0
/// in fp32 below s_raw ~ -104), and tau (1 - tau) = sigmoid(tau_raw) sigmoid(-tau_raw), so the
/// gradients are finite for any pre-activation.
// s_raw, tau_raw, k, da, dk_out: [>=N, n]; ds_raw, dtau_raw, dk: [>=N, n]
template <class Real, class Space>
void ddts_gate_backward(const Space& space, const View2<const Real, Space>& s_raw,
                        const View2<const Real, Space>& tau_raw, const View2<const Real, Space>& k,
                        const View2<const Real, Space>& da, const View2<const Real, Space>& dk_out,
                        const View2<Real, Space>& ds_raw, const View2<Real, Space>& dtau_raw,
                        const View2<Real, Space>& dk, int n_tokens, double normalize_eps) {
  namespace rd = ::rodimus::detail;
  const int n = static_cast<int>(k.extent(1));
  if (n_tokens < 0) throw ArgumentError("ddts_gate_backward: n_tokens is negative");
  rd::check_extent_at_least(k, 0, n_tokens, "ddts_gate_backward: k");
  for (auto [v, name] : {std::pair{&s_raw, "ddts_gate_backward: s_raw"},
                         std::pair{&tau_raw, "ddts_gate_backward: tau_raw"},
                         std::pair{&da, "ddts_gate_backward: da"},
                         std::pair{&dk_out, "ddts_gate_backward: dk_out"}}) {
    rd::check_extent(*v, 1, n, name);
    rd::check_extent_at_least(*v, 0, n_tokens, name);
  }
  for (auto [v, name] : {std::pair{&ds_raw, "ddts_gate_backward: ds_raw"},
                         std::pair{&dtau_raw, "ddts_gate_backward: dtau_raw"},
                         std::pair{&dk, "ddts_gate_backward: dk"}}) {
    rd::check_extent(*v, 1, n, name);
    rd::check_extent_at_least(*v, 0, n_tokens, name);
  }
  if (n_tokens == 0 || n == 0) return;
  // beta_i = exp(tau log s), finite for every s_raw
  const auto beta = KOKKOS_LAMBDA(int t, int i) {
    return rd::kmath::exp(detail::sigmoid(tau_raw(t, i)) * detail::log_softplus(s_raw(t, i)));
  };
  // per row: stats(t, 0) = 1 / N, stats(t, 1) = [||k|| > eps] / N^3 sum_i dk'_i beta_i k_i
  View2<Real, Space> stats(Kokkos::view_alloc(space, std::string("rodimus::grad.ddts_stats"),
                                              Kokkos::WithoutInitializing),
                           n_tokens, 2);
  const Real eps = static_cast<Real>(normalize_eps);
  using Member = typename Kokkos::TeamPolicy<Space>::member_type;
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::grad::ddts_gate.stats"),
      Kokkos::TeamPolicy<Space>(space, n_tokens, Kokkos::AUTO), KOKKOS_LAMBDA(const Member& m) {
        const int t = m.league_rank();
        Real ss = Real(0), s = Real(0);
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(m, n),
            [&](const int i, Real& acc) { acc += k(t, i) * k(t, i); }, ss);
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(m, n),
            [&](const int i, Real& acc) { acc += dk_out(t, i) * beta(t, i) * k(t, i); }, s);
        Kokkos::single(Kokkos::PerTeam(m), [&]() {
          const Real norm = rd::kmath::sqrt(ss);
          const Real inv = Real(1) / (norm > eps ? norm : eps);
          stats(t, 0) = inv;
          stats(t, 1) = norm > eps ? inv * inv * inv * s : Real(0);
        });
      });
  rd::parallel_rows_cols(
      RODIMUS_KERNEL_LABEL("rodimus::grad::ddts_gate"), space, n_tokens, n,
      KOKKOS_LAMBDA(const int t, const int i) {
        const Real z = s_raw(t, i), y = tau_raw(t, i), kk = k(t, i);
        const Real dka = dk_out(t, i), dat = da(t, i);
        const Real inv = stats(t, 0), coef = stats(t, 1);
        const Real s = detail::softplus(z);
        const Real tau = detail::sigmoid(y);
        const Real dtau_dy = tau * detail::sigmoid(-y);
        const Real log_s = detail::log_softplus(z);
        const Real b = rd::kmath::exp(tau * log_s);
        const Real dbeta = dka * kk * inv;
        ds_raw(t, i) =
            -dat * tau * detail::sigmoid(z) + dbeta * tau * b * detail::sigmoid_over_softplus(z);
        dtau_raw(t, i) = (-dat * s + dbeta * b * log_s) * dtau_dy;
        dk(t, i) = dka * b * inv - kk * coef;
      });
}

/// Backward of the channel gate's last step u = sigmoid(z) * x (ops/ddts_gate.hpp):
///   dz = du x sigmoid(z) sigmoid(-z)  (overwrite),
///   dx = du sigmoid(z)  (overwrite, or add with `dx_mode = Accumulate`).
/// Pass an empty dx when it is not wanted.
// z, x, du: [>=N, E]; dz, dx: [>=N, E]
template <class Real, class Space>
void sigmoid_gate_backward(const Space& space, const View2<const Real, Space>& z,
                           const View2<const Real, Space>& x, const View2<const Real, Space>& du,
                           const View2<Real, Space>& dz, const View2<Real, Space>& dx, int n_tokens,
                           GradMode dx_mode = GradMode::Overwrite) {
  namespace rd = ::rodimus::detail;
  const int e = static_cast<int>(x.extent(1));
  if (n_tokens < 0) throw ArgumentError("sigmoid_gate_backward: n_tokens is negative");
  rd::check_extent_at_least(x, 0, n_tokens, "sigmoid_gate_backward: x");
  rd::check_extent(z, 1, e, "sigmoid_gate_backward: z");
  rd::check_extent_at_least(z, 0, n_tokens, "sigmoid_gate_backward: z");
  rd::check_extent(du, 1, e, "sigmoid_gate_backward: du");
  rd::check_extent_at_least(du, 0, n_tokens, "sigmoid_gate_backward: du");
  rd::check_extent(dz, 1, e, "sigmoid_gate_backward: dz");
  rd::check_extent_at_least(dz, 0, n_tokens, "sigmoid_gate_backward: dz");
  const bool want_dx = detail::wanted(dx);
  if (want_dx) {
    rd::check_extent(dx, 1, e, "sigmoid_gate_backward: dx");
    rd::check_extent_at_least(dx, 0, n_tokens, "sigmoid_gate_backward: dx");
  }
  if (n_tokens == 0 || e == 0) return;
  const bool accumulate = dx_mode == GradMode::Accumulate;
  rd::parallel_rows_cols(
      RODIMUS_KERNEL_LABEL("rodimus::grad::sigmoid_gate"), space, n_tokens, e,
      KOKKOS_LAMBDA(const int t, const int c) {
        const Real zz = z(t, c), xx = x(t, c), g = du(t, c);
        const Real sg = detail::sigmoid(zz);
        dz(t, c) = g * xx * sg * detail::sigmoid(-zz);
        if (want_dx) dx(t, c) = accumulate ? dx(t, c) + g * sg : g * sg;
      });
}

/// Backward of the whole low-rank channel gate u = sigmoid((x W1^T) W2^T + b2) * x (SPEC 2.4),
/// from the forward's intermediates z_r = x W1^T and z_e = z_r W2^T + b2:
///   dx = du sigmoid(z_e) + (dz_e W2) W1   (overwrite, or add with `dx_mode = Accumulate`),
///   dW1 += dz_r^T x,  dW2 += dz_e^T z_r,  db2 += sum_t dz_e,
/// with dz_e = du x sigmoid'(z_e) and dz_r = dz_e W2 left in the scratch views on return.
/// Pass an empty view for any of dw1, dw2, db2 that is not wanted.
// x, z_e, du: [>=N, E]; w1: [R, E]; w2: [E, R]; z_r: [>=N, R]; dz_r: [>=N, R], dz_e: [>=N, E]
// scratch; dx: [>=N, E]; dw1: [R, E]; dw2: [E, R]; db2: [E]
template <class Real, class Space>
void channel_gate_backward(const Space& space, const View2<const Real, Space>& x,
                           const View2<const Real, Space>& w1, const View2<const Real, Space>& w2,
                           const View2<const Real, Space>& z_r, const View2<const Real, Space>& z_e,
                           const View2<const Real, Space>& du, const View2<Real, Space>& dz_r,
                           const View2<Real, Space>& dz_e, const View2<Real, Space>& dx,
                           const View2<Real, Space>& dw1, const View2<Real, Space>& dw2,
                           const View1<Real, Space>& db2, int n_tokens,
                           GradMode dx_mode = GradMode::Overwrite) {
  namespace rd = ::rodimus::detail;
  const auto e = x.extent(1);
  const auto r = w1.extent(0);
  if (n_tokens < 0) throw ArgumentError("channel_gate_backward: n_tokens is negative");
  rd::check_extent(w1, 1, e, "channel_gate_backward: w1");
  rd::check_extent(w2, 0, e, "channel_gate_backward: w2");
  rd::check_extent(w2, 1, r, "channel_gate_backward: w2");
  rd::check_extent(z_r, 1, r, "channel_gate_backward: z_r");
  rd::check_extent_at_least(z_r, 0, n_tokens, "channel_gate_backward: z_r");
  rd::check_extent(dz_r, 1, r, "channel_gate_backward: dz_r");
  rd::check_extent_at_least(dz_r, 0, n_tokens, "channel_gate_backward: dz_r");
  if (!detail::wanted(dx)) throw ArgumentError("channel_gate_backward: dx: must not be empty");
  // every check before the first kernel, so a bad call leaves dx and the weight grads untouched
  if (detail::wanted(dw1)) {
    rd::check_extent(dw1, 0, r, "channel_gate_backward: dw1");
    rd::check_extent(dw1, 1, e, "channel_gate_backward: dw1");
  }
  if (detail::wanted(dw2)) {
    rd::check_extent(dw2, 0, e, "channel_gate_backward: dw2");
    rd::check_extent(dw2, 1, r, "channel_gate_backward: dw2");
  }
  if (detail::wanted(db2)) rd::check_extent(db2, 0, e, "channel_gate_backward: db2");
  for (auto [v, name] : {std::pair{&z_e, "channel_gate_backward: z_e"},
                         std::pair{&du, "channel_gate_backward: du"}}) {
    rd::check_extent(*v, 1, e, name);
    rd::check_extent_at_least(*v, 0, n_tokens, name);
  }
  for (auto [v, name] : {std::pair{&dz_e, "channel_gate_backward: dz_e"},
                         std::pair{&dx, "channel_gate_backward: dx"}}) {
    rd::check_extent(*v, 1, e, name);
    rd::check_extent_at_least(*v, 0, n_tokens, name);
  }
  rd::check_extent_at_least(x, 0, n_tokens, "channel_gate_backward: x");
  sigmoid_gate_backward<Real>(space, z_e, x, du, dz_e, dx, n_tokens, dx_mode);
  linear_backward<Real>(space, z_r, w2, View2<const Real, Space>(dz_e), dz_r, dw2, db2, n_tokens);
  linear_backward<Real>(space, x, w1, View2<const Real, Space>(dz_r), dx, dw1, View1<Real, Space>(),
                        n_tokens, GradMode::Accumulate);
}

}  // namespace rodimus::grad
