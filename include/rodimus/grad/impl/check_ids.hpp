// Range check of token ids that live in device memory, reported as an ArgumentError on the host.
#pragma once

#include <string>

#include "rodimus/core/views.hpp"

namespace rodimus::grad::detail {

/// Throws ArgumentError naming the first position t < N whose id lies outside [0, vocab) and
/// is not `ignore` (pass a value in range, e.g. 0, when no id is to be ignored). One reduction
/// on the device, then a copy of the offending id only.
// ids: [>=N]
template <class Space>
void check_ids(const Space& space, const View1<const int, Space>& ids, int n_tokens, int vocab,
               int ignore, const std::string& what) {
  int first_bad = n_tokens;
  Kokkos::parallel_reduce(
      RODIMUS_KERNEL_LABEL("rodimus::grad::check_ids"),
      Kokkos::RangePolicy<Space>(space, 0, n_tokens),
      KOKKOS_LAMBDA(const int t, int& acc) {
        const int id = ids(t);
        if (id != ignore && (id < 0 || id >= vocab) && t < acc) acc = t;
      },
      Kokkos::Min<int>(first_bad));
  if (first_bad < n_tokens) {
    int bad = 0;
    Kokkos::deep_copy(bad, Kokkos::subview(ids, first_bad));
    throw ArgumentError(what + "[" + std::to_string(first_bad) + "] = " + std::to_string(bad) +
                        " is outside [0, " + std::to_string(vocab) + ")");
  }
}

}  // namespace rodimus::grad::detail
