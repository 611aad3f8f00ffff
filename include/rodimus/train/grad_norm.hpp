// Gradient utilities of a ParameterSet: global L2 norm, clipping, scaling (accumulation).
#pragma once

#include <Kokkos_Core.hpp>
#include <cmath>
#include <cstdint>

#include "rodimus/train/parameters.hpp"

namespace rodimus::train {

/// The global L2 norm sqrt(sum_p sum_j g_pj^2) of every gradient: one Kokkos reduction per
/// parameter, each accumulated in fp64, summed on the host in parameter order. Fences `space`.
template <class Space>
double grad_norm(const ParameterSet<Space>& params, const Space& space = Space()) {
  double total = 0;
  for (const auto& p : params) {
    auto g = p.grad;
    double s = 0;
    Kokkos::parallel_reduce(
        "rodimus::train::grad_sq_sum", Kokkos::RangePolicy<Space>(space, 0, p.numel()),
        KOKKOS_LAMBDA(const std::int64_t j, double& acc) {
          const double x = g(j);
          acc += x * x;
        },
        s);
    total += s;
  }
  return std::sqrt(total);
}

/// g <- factor * g for every gradient (e.g. factor = 1 / micro_batches after accumulating).
/// Enqueued on `space`, not fenced.
template <class Space>
void scale_grads(ParameterSet<Space>& params, double factor, const Space& space = Space()) {
  const float f = static_cast<float>(factor);
  for (auto& p : params) {
    auto g = p.grad;
    Kokkos::parallel_for(
        "rodimus::train::scale_grads", Kokkos::RangePolicy<Space>(space, 0, p.numel()),
        KOKKOS_LAMBDA(const std::int64_t j) { g(j) *= f; });
  }
}

/// Clips the global gradient norm to `max_norm` and returns the norm before clipping. When the
/// norm is above max_norm every gradient is scaled by max_norm / norm, so the norm after is
/// max_norm (up to rounding); at or below it (a zero gradient included) nothing changes. A
/// non-finite norm is returned as is and the gradients are left alone, so the caller can skip
/// the step. (torch.nn.utils.clip_grad_norm_ scales by max_norm / (norm + 1e-6) whenever that
/// is below 1.)
template <class Space>
double clip_grad_norm(ParameterSet<Space>& params, double max_norm, const Space& space = Space()) {
  const double norm = grad_norm(params, space);
  if (std::isfinite(norm) && norm > max_norm) scale_grads(params, max_norm / norm, space);
  return norm;
}

}  // namespace rodimus::train
