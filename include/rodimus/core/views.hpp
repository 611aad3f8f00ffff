// View aliases used across rodimus, and the shape checks public entry points run first.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "rodimus/config.hpp"
#include "rodimus/core/error.hpp"

namespace rodimus {

/// The memory space an execution space computes in.
template <class Space>
using memory_space_t = typename Space::memory_space;

/// Row-major device arrays. All rodimus buffers are LayoutRight (the last index is contiguous).
template <class T, class Space>
using View1 = Kokkos::View<T*, Kokkos::LayoutRight, memory_space_t<Space>>;
template <class T, class Space>
using View2 = Kokkos::View<T**, Kokkos::LayoutRight, memory_space_t<Space>>;
template <class T, class Space>
using View3 = Kokkos::View<T***, Kokkos::LayoutRight, memory_space_t<Space>>;
template <class T, class Space>
using View4 = Kokkos::View<T****, Kokkos::LayoutRight, memory_space_t<Space>>;

namespace detail {

/// Throws ArgumentError unless `v.extent(dim) == expected`; `what` names the argument.
template <class V>
void check_extent(const V& v, int dim, std::int64_t expected, std::string_view what) {
  if (static_cast<std::int64_t>(v.extent(dim)) != expected) {
    throw ArgumentError(std::string(what) + ": extent " + std::to_string(dim) + " is " +
                        std::to_string(v.extent(dim)) + ", expected " + std::to_string(expected));
  }
}

/// Throws ArgumentError unless `v.extent(dim) >= needed`.
template <class V>
void check_extent_at_least(const V& v, int dim, std::int64_t needed, std::string_view what) {
  if (static_cast<std::int64_t>(v.extent(dim)) < needed) {
    throw ArgumentError(std::string(what) + ": extent " + std::to_string(dim) + " is " +
                        std::to_string(v.extent(dim)) + ", need at least " +
                        std::to_string(needed));
  }
}

/// Counts (re)allocations of rodimus's buffers that kernels read or write: workspaces, decode
/// states, caches, weights, GPU scratch. A recorded CUDA graph (backend/cuda/step_graph.hpp)
/// keeps the addresses it was recorded with and is valid only while this count is unchanged.
inline std::atomic<std::uint64_t>& buffer_generation_counter() {
  static std::atomic<std::uint64_t> count{0};
  return count;
}
inline std::uint64_t buffer_generation() {
  return buffer_generation_counter().load(std::memory_order_acquire);
}
inline void note_reallocation() {
  buffer_generation_counter().fetch_add(1, std::memory_order_acq_rel);
}

/// Grows `v` to at least `n0 x n1` without preserving contents (no-op when big enough).
template <class V>
void ensure_capacity(V& v, std::size_t n0, std::size_t n1, const char* label) {
  if (v.extent(0) < n0 || v.extent(1) < n1) {
    note_reallocation();
    v = V(Kokkos::view_alloc(std::string(label), Kokkos::WithoutInitializing),
          n0 > v.extent(0) ? n0 : v.extent(0), n1 > v.extent(1) ? n1 : v.extent(1));
  }
}

/// Grows the 1-D `v` to at least `n` elements without preserving contents (no-op when big
/// enough).
template <class V>
void ensure_length(V& v, std::size_t n, const char* label) {
  if (v.extent(0) < n) {
    note_reallocation();
    v = V(Kokkos::view_alloc(std::string(label), Kokkos::WithoutInitializing), n);
  }
}

}  // namespace detail
}  // namespace rodimus
