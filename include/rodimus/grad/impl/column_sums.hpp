// Deterministic, race-free sums over the token rows of [N, cols] terms: the weight-gradient
// reductions of the backward ops.
#pragma once

#include <cstdint>
#include <string>

#include "rodimus/backend/exec_space_traits.hpp"
#include "rodimus/core/views.hpp"

namespace rodimus::grad::detail {

/// Rows one partial sum of `column_sums` covers. Fixed, so the summation order (and the result,
/// bit for bit) does not depend on the thread count or the backend's launch shape.
inline constexpr int kColumnChunk = 256;

/// For every column c < cols: sink(c, sum_{t < rows} term(t, c)), in two stages: partial sums
/// over chunks of kColumnChunk rows into a [chunks, cols] scratch (one work item per chunk on
/// host spaces, per (chunk, column) on GPUs), then the chunks in order, one work item per
/// column. `sink` runs once per column from one work item, so it may `+=` into a caller's
/// buffer without atomics. `term` and `sink` must be KOKKOS_LAMBDAs.
template <class Real, class Space, class Term, class Sink>
void column_sums(const Space& space, int rows, int cols, const Term& term, const Sink& sink) {
  if (cols <= 0) return;
  const int chunks = rows > 0 ? (rows + kColumnChunk - 1) / kColumnChunk : 0;
  View2<Real, Space> part(Kokkos::view_alloc(space, std::string("rodimus::grad.column_sums"),
                                             Kokkos::WithoutInitializing),
                          chunks > 0 ? chunks : 1, cols);
  if (chunks > 0) {
    if constexpr (is_host_space_v<Space>) {
      Kokkos::parallel_for(
          RODIMUS_KERNEL_LABEL("rodimus::grad::column_sums.partial"),
          Kokkos::RangePolicy<Space>(space, 0, chunks), KOKKOS_LAMBDA(const int ch) {
            const int t0 = ch * kColumnChunk;
            const int t1 = t0 + kColumnChunk < rows ? t0 + kColumnChunk : rows;
            for (int c = 0; c < cols; ++c) part(ch, c) = Real(0);
            for (int t = t0; t < t1; ++t)
              for (int c = 0; c < cols; ++c) part(ch, c) += term(t, c);
          });
    } else {
      Kokkos::parallel_for(
          RODIMUS_KERNEL_LABEL("rodimus::grad::column_sums.partial"),
          Kokkos::RangePolicy<Space>(space, 0, std::int64_t(chunks) * cols),
          KOKKOS_LAMBDA(const std::int64_t idx) {
            const int ch = static_cast<int>(idx / cols);
            const int c = static_cast<int>(idx % cols);
            const int t0 = ch * kColumnChunk;
            const int t1 = t0 + kColumnChunk < rows ? t0 + kColumnChunk : rows;
            Real acc = Real(0);
            for (int t = t0; t < t1; ++t) acc += term(t, c);
            part(ch, c) = acc;
          });
    }
  }
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::grad::column_sums.total"),
      Kokkos::RangePolicy<Space>(space, 0, cols), KOKKOS_LAMBDA(const int c) {
        Real acc = Real(0);
        for (int ch = 0; ch < chunks; ++ch) acc += part(ch, c);
        sink(c, acc);
      });
}

/// Whether an optional output was given (an empty view means "not wanted").
template <class V>
bool wanted(const V& v) {
  return v.size() > 0;
}

}  // namespace rodimus::grad::detail
