// Fused softmax cross-entropy over the vocabulary: the training loss and its gradient with
// respect to the logits, one team per row.
#pragma once

#include <string>

#include "rodimus/core/views.hpp"
#include "rodimus/grad/impl/check_ids.hpp"

namespace rodimus::grad {

/// Targets equal to this are left out of the loss and get a zero gradient (as in PyTorch).
inline constexpr int kIgnoreIndex = -100;

/// What `cross_entropy` returns.
struct CrossEntropyResult {
  double loss = 0.0;      ///< loss_sum / count (0 when every target is ignored)
  double loss_sum = 0.0;  ///< sum over the counted rows of -log softmax(logits_t)[y_t]
  int count = 0;          ///< rows whose target is not ignore_index
};

/// Softmax cross-entropy of logits against targets and its gradient, one team per row (after a
/// device-side check and count of the targets):
///   loss_t = log sum_v exp(l_t[v] - m_t) + m_t - l_t[y_t],  m_t = max_v l_t[v]  (stable for any
///   logit scale), mean over the rows whose target is not `ignore_index`;
///   dlogits_t = (softmax(l_t) - onehot(y_t)) / normalizer, and 0 on ignored rows (overwrite).
/// `normalizer` defaults (<= 0) to the count of counted rows, so dlogits is the gradient of the
/// mean loss; pass the token count of the whole batch instead when gradients are accumulated
/// over micro-batches. dlogits may alias logits. A target outside [0, V) that is not
/// ignore_index throws ArgumentError naming its position (checked before anything is written).
// logits: [>=N, V], targets: [>=N], dlogits: [>=N, V]
template <class Real, class Space>
CrossEntropyResult cross_entropy(const Space& space, const View2<const Real, Space>& logits,
                                 const View1<const int, Space>& targets,
                                 const View2<Real, Space>& dlogits, int n_tokens,
                                 double normalizer = 0.0, int ignore_index = kIgnoreIndex) {
  namespace rd = ::rodimus::detail;
  const int v = static_cast<int>(logits.extent(1));
  if (n_tokens < 0) throw ArgumentError("cross_entropy: n_tokens is negative");
  rd::check_extent_at_least(logits, 0, n_tokens, "cross_entropy: logits");
  rd::check_extent_at_least(targets, 0, n_tokens, "cross_entropy: targets");
  rd::check_extent(dlogits, 1, v, "cross_entropy: dlogits");
  rd::check_extent_at_least(dlogits, 0, n_tokens, "cross_entropy: dlogits");
  if (n_tokens > 0 && v == 0) throw ArgumentError("cross_entropy: logits: the vocabulary is empty");
  CrossEntropyResult res;
  if (n_tokens == 0) return res;
  detail::check_ids(space, targets, n_tokens, v, ignore_index, "cross_entropy: targets");
  Kokkos::parallel_reduce(
      RODIMUS_KERNEL_LABEL("rodimus::grad::cross_entropy.count"),
      Kokkos::RangePolicy<Space>(space, 0, n_tokens),
      KOKKOS_LAMBDA(const int t, int& acc) { acc += targets(t) != ignore_index ? 1 : 0; },
      res.count);
  const Real scale =
      static_cast<Real>(1.0 / (normalizer > 0.0 ? normalizer : (res.count > 0 ? res.count : 1)));
  using Member = typename Kokkos::TeamPolicy<Space>::member_type;
  Kokkos::parallel_reduce(
      RODIMUS_KERNEL_LABEL("rodimus::grad::cross_entropy"),
      Kokkos::TeamPolicy<Space>(space, n_tokens, Kokkos::AUTO),
      KOKKOS_LAMBDA(const Member& m, double& loss_acc) {
        namespace km = ::rodimus::detail::kmath;
        const int t = m.league_rank();
        const int y = targets(t);
        if (y == ignore_index) {
          Kokkos::parallel_for(Kokkos::TeamThreadRange(m, v),
                               [&](const int c) { dlogits(t, c) = Real(0); });
          return;
        }
        Real mx = logits(t, 0);
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(m, v),
            [&](const int c, Real& acc) {
              const Real l = logits(t, c);
              if (l > acc) acc = l;
            },
            Kokkos::Max<Real>(mx));
        Real sum = Real(0);
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(m, v),
            [&](const int c, Real& acc) { acc += km::exp(logits(t, c) - mx); }, sum);
        const Real target_logit = logits(t, y);
        m.team_barrier();  // every read of row t is done before dlogits (maybe logits) is written
        const Real log_sum = km::log(sum);
        const Real inv_sum = Real(1) / sum;
        Kokkos::parallel_for(Kokkos::TeamThreadRange(m, v), [&](const int c) {
          const Real p = km::exp(logits(t, c) - mx) * inv_sum;
          dlogits(t, c) = (c == y ? p - Real(1) : p) * scale;
        });
        Kokkos::single(Kokkos::PerTeam(m),
                       [&]() { loss_acc += static_cast<double>(log_sum + (mx - target_logit)); });
      },
      res.loss_sum);
  res.loss = res.count > 0 ? res.loss_sum / res.count : 0.0;
  return res;
}

}  // namespace rodimus::grad
