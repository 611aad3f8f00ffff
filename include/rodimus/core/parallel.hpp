// Element-wise launch over a [rows, cols] index space, shaped for each kind of execution space.
#pragma once

#include <cstdint>
#include <string>

#include "rodimus/backend/exec_space_traits.hpp"

namespace rodimus::detail {

/// Runs f(t, c) for every t < rows, c < cols. Host spaces: one work item per row with a
/// unit-stride inner loop over c (vectorisable; no integer division per element). GPUs: one
/// thread per element. `f` must be a KOKKOS_LAMBDA (it runs on the device on GPUs).
template <class Space, class F>
void parallel_rows_cols(const std::string& label, const Space& space, int rows, int cols,
                        const F& f) {
  if constexpr (is_host_space_v<Space>) {
    Kokkos::parallel_for(label, Kokkos::RangePolicy<Space>(space, 0, rows),
                         [=](const std::int64_t t) {
                           for (int c = 0; c < cols; ++c) f(static_cast<int>(t), c);
                         });
  } else {
    Kokkos::parallel_for(
        label, Kokkos::RangePolicy<Space>(space, 0, std::int64_t(rows) * cols),
        KOKKOS_LAMBDA(const std::int64_t idx) {
          f(static_cast<int>(idx / cols), static_cast<int>(idx % cols));
        });
  }
}

}  // namespace rodimus::detail
