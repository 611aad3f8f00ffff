// Helpers of the scan and attention gradient checks: views of any Real (fp32 or fp64) from and to
// host vectors of doubles without passing through fp32, and the per-block error measure.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "../ops/op_test_util.hpp"

namespace rodimus::test::grad {

/// A [rows, cols] view of Real holding v (row-major); rows past v.size() / cols hold `pad`.
template <class Real, class Space>
View2<Real, Space> upload2r(const std::vector<double>& v, std::size_t rows, std::size_t cols,
                            double pad = 0.0) {
  View2<Real, Space> d("rodimus::test.grad.v2", rows, cols);
  auto h = Kokkos::create_mirror_view(d);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c) {
      const std::size_t i = r * cols + c;
      h(r, c) = static_cast<Real>(i < v.size() ? v[i] : pad);
    }
  Kokkos::deep_copy(d, h);
  return d;
}

/// A [n0, n1, n2] view of Real holding v; elements past v.size() hold `pad`.
template <class Real, class Space>
View3<Real, Space> upload3r(const std::vector<double>& v, std::size_t n0, std::size_t n1,
                            std::size_t n2, double pad = 0.0) {
  View3<Real, Space> d("rodimus::test.grad.v3", n0, n1, n2);
  auto h = Kokkos::create_mirror_view(d);
  for (std::size_t x = 0; x < n0; ++x)
    for (std::size_t y = 0; y < n1; ++y)
      for (std::size_t z = 0; z < n2; ++z) {
        const std::size_t i = (x * n1 + y) * n2 + z;
        h(x, y, z) = static_cast<Real>(i < v.size() ? v[i] : pad);
      }
  Kokkos::deep_copy(d, h);
  return d;
}

/// Every element of a rank-2 or rank-3 view, row-major, as doubles (exact for fp32 and fp64).
template <class V>
std::vector<double> download(const V& d) {
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), d);
  std::vector<double> out(d.size());
  if constexpr (V::rank == 2) {
    for (std::size_t r = 0; r < d.extent(0); ++r)
      for (std::size_t c = 0; c < d.extent(1); ++c) out[r * d.extent(1) + c] = h(r, c);
  } else {
    for (std::size_t x = 0; x < d.extent(0); ++x)
      for (std::size_t y = 0; y < d.extent(1); ++y)
        for (std::size_t z = 0; z < d.extent(2); ++z)
          out[(x * d.extent(1) + y) * d.extent(2) + z] = h(x, y, z);
  }
  return out;
}

/// max |got - ref| / max(max |ref|, floor) over elements [begin, begin + count): the error of one
/// sequence's block relative to that block's scale; a non-finite `got` is an infinite error.
inline double block_err(const std::vector<double>& got, const std::vector<double>& ref,
                        std::size_t begin, std::size_t count, double floor = 1e-300) {
  double e = 0, scale = 0;
  for (std::size_t i = begin; i < begin + count; ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    e = std::max(e, std::fabs(got[i] - ref[i]));
    scale = std::max(scale, std::fabs(ref[i]));
  }
  return e / std::max(scale, floor);
}

/// The central-difference step for a value x: 1e-5 * max(1, |x|).
inline double fd_step(double x) { return 1e-5 * std::max(1.0, std::fabs(x)); }

}  // namespace rodimus::test::grad
