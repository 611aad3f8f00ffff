// Element-wise launch over a [rows, cols] index space, shaped for each kind of execution space.
#pragma once

#include <cstdint>
#include <string>

#include "rodimus/backend/exec_space_traits.hpp"

namespace rodimus::detail {

/// The launch policies of rodimus's kernels. On GPUs they carry Kokkos' light-weight hint, so
/// the functor travels as a kernel argument (no constant-memory copy guarded by a host-side
/// event wait): every launch can then be recorded into a CUDA graph (step_graph.hpp).
template <class Space>
auto range_policy(const Space& space, std::int64_t begin, std::int64_t end) {
  Kokkos::RangePolicy<Space> p(space, begin, end);
  if constexpr (is_gpu_space_v<Space>)
    return Kokkos::Experimental::require(p,
                                         Kokkos::Experimental::WorkItemProperty::HintLightWeight);
  else
    return p;
}

/// Runs f(item) for item in [0, items) on a host space: a call of one item (a decode step's
/// element-wise kernels: one block of token rows) runs on the calling thread, without the
/// OpenMP fork / join (3.5-4 us on the 2-vCPU Zen 5 VM, ~70 calls of a small model's decode
/// step); more items take a Kokkos::parallel_for. Kokkos tools see the inline call as a kernel
/// of the same label. Host parallel_for is synchronous, so either way f has run on return.
template <class Space, class F>
void host_items_for(const Space& space, const std::string& label, std::int64_t items, const F& f) {
  if (items <= 0) return;
  if (items == 1) {
    if (Kokkos::Profiling::profileLibraryLoaded()) {
      std::uint64_t id = 0;
      Kokkos::Profiling::beginParallelFor(label, 0, &id);
      f(std::int64_t(0));
      Kokkos::Profiling::endParallelFor(id);
    } else {
      f(std::int64_t(0));
    }
    return;
  }
  Kokkos::parallel_for(label, Kokkos::RangePolicy<Space>(space, 0, items), f);
}

/// `league` teams, light-weight on GPUs (see range_policy). Team size: Kokkos' choice on the
/// host; on GPUs `gpu_team_size` threads when given (> 0), else Kokkos' choice.
template <class Space>
auto team_policy(const Space& space, int league, int gpu_team_size = 0) {
  if constexpr (is_gpu_space_v<Space>) {
    auto p = gpu_team_size > 0 ? Kokkos::TeamPolicy<Space>(space, league, gpu_team_size)
                               : Kokkos::TeamPolicy<Space>(space, league, Kokkos::AUTO);
    return Kokkos::Experimental::require(p,
                                         Kokkos::Experimental::WorkItemProperty::HintLightWeight);
  } else {
    return Kokkos::TeamPolicy<Space>(space, league, Kokkos::AUTO);
  }
}

/// Threads per team for a kernel whose teams each walk one row of `width` elements on a GPU:
/// about 4 elements per thread, 32 to 512 threads. A decode step has one row per token, so a
/// small team would leave a single SM stepping through the row one dependent load at a time.
inline int row_team_size(int width) {
  const int t = (width / 4 + 31) / 32 * 32;
  return t < 32 ? 32 : (t > 512 ? 512 : t);
}

/// A flat index of a [rows, d] launch split into its row and column.
struct RowCol {
  int row, col;
};

/// {idx / d, idx % d}. GPUs have no integer divide instruction: a 64-bit division is a long
/// software routine, costly beside an element-wise kernel's few memory accesses per element,
/// while a 32-bit one is a short sequence; indices below 2^32 (every launch rodimus makes in
/// practice) take the 32-bit form.
KOKKOS_FORCEINLINE_FUNCTION RowCol split_index(std::int64_t idx, int d) {
  if (static_cast<std::uint64_t>(idx) < (std::uint64_t(1) << 32)) {
    const auto u = static_cast<std::uint32_t>(idx), ud = static_cast<std::uint32_t>(d);
    const std::uint32_t q = u / ud;
    return {static_cast<int>(q), static_cast<int>(u - q * ud)};
  }
  const std::int64_t q = idx / d;
  return {static_cast<int>(q), static_cast<int>(idx - q * d)};
}

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
        label, range_policy(space, 0, std::int64_t(rows) * cols),
        KOKKOS_LAMBDA(const std::int64_t idx) {
          const RowCol rc = split_index(idx, cols);
          f(rc.row, rc.col);
        });
  }
}

}  // namespace rodimus::detail
