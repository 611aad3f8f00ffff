// Shared helpers of the gradient tests: views of any real type, central finite differences,
// and the relative error measure of an analytic gradient against the numeric one.
#pragma once

#include <cmath>
#include <functional>
#include <vector>

#include "../ops/op_test_util.hpp"

namespace rodimus::test {

/// A [rows, cols] view of Real holding `v` (row-major); rows past v.size() / cols hold `pad`.
template <class Real, class Space>
View2<Real, Space> upload2r(const std::vector<double>& v, std::size_t rows, std::size_t cols,
                            double pad = 0.0) {
  View2<Real, Space> d("rodimus::test.grad2", rows, cols);
  auto h = Kokkos::create_mirror_view(d);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c) {
      const std::size_t i = r * cols + c;
      h(r, c) = static_cast<Real>(i < v.size() ? v[i] : pad);
    }
  Kokkos::deep_copy(d, h);
  return d;
}

/// A [n] view of Real holding `v`.
template <class Real, class Space>
View1<Real, Space> upload1r(const std::vector<double>& v) {
  View1<Real, Space> d("rodimus::test.grad1", v.size());
  auto h = Kokkos::create_mirror_view(d);
  for (std::size_t i = 0; i < v.size(); ++i) h(i) = static_cast<Real>(v[i]);
  Kokkos::deep_copy(d, h);
  return d;
}

/// Every element of a 1-D or 2-D view of any real type, row-major, as doubles (no rounding).
template <class V>
std::vector<double> download_r(const V& d) {
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), d);
  std::vector<double> out;
  out.reserve(d.size());
  if constexpr (V::rank == 1) {
    for (std::size_t i = 0; i < d.extent(0); ++i) out.push_back(static_cast<double>(h(i)));
  } else {
    for (std::size_t r = 0; r < d.extent(0); ++r)
      for (std::size_t c = 0; c < d.extent(1); ++c) out.push_back(static_cast<double>(h(r, c)));
  }
  return out;
}

/// L = sum_i dy[i] * y[i]: the scalar whose gradient a backward pass with upstream gradient dy
/// computes.
inline double dot(const std::vector<double>& dy, const std::vector<double>& y) {
  REQUIRE(dy.size() == y.size());
  double s = 0;
  for (std::size_t i = 0; i < y.size(); ++i) s += dy[i] * y[i];
  return s;
}

/// The central-difference gradient of `loss` with respect to every element of `x`, with step
/// h = 1e-5 * max(1, |x_i|) (the step actually taken, (x+h) - (x-h), divides). `x` is
/// perturbed in place and restored. `absolute_step` uses h = 1e-5 whatever |x_i|: for a loss
/// whose curvature does not grow with the input's offset (softmax is shift-invariant), where a
/// step proportional to a huge offset would only add truncation error.
inline std::vector<double> fd_grad(std::vector<double>& x, const std::function<double()>& loss,
                                   bool absolute_step = false) {
  std::vector<double> g(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i];
    const double h = 1e-5 * (absolute_step ? 1.0 : std::max(1.0, std::fabs(x0)));
    const double xp = x0 + h, xm = x0 - h;
    x[i] = xp;
    const double lp = loss();
    x[i] = xm;
    const double lm = loss();
    x[i] = x0;
    g[i] = (lp - lm) / (xp - xm);
  }
  return g;
}

inline double norm2(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x * x;
  return std::sqrt(s);
}

/// ||got - ref||_2 / ||ref||_2; infinite when `got` holds a non-finite value or `ref` is zero
/// (a zero reference gradient would make the check unable to fail).
inline double grad_err(const std::vector<double>& got, const std::vector<double>& ref) {
  REQUIRE(got.size() == ref.size());
  std::vector<double> d(got.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    d[i] = got[i] - ref[i];
  }
  const double n = norm2(ref);
  return n > 0 ? norm2(d) / n : INFINITY;
}

/// ||got - ref||_2 / || |part_a| + |part_b| ||_2: the error measured against the size of the
/// two contributions whose sum `ref` is (ref = part_a + part_b elementwise), not against the
/// sum. A backward pass is linear in its upstream gradients, so running it once per upstream
/// gradient gives the parts. Where the parts nearly cancel, fp32 rounding is relative to the
/// parts, and ||ref|| alone would turn a correct kernel's rounding into a failure (one element,
/// ten-fold cancellation: 1.2e-5 in CI). Infinite when `got` holds a non-finite value or both
/// parts are zero.
inline double grad_err_parts(const std::vector<double>& got, const std::vector<double>& ref,
                             const std::vector<double>& part_a,
                             const std::vector<double>& part_b) {
  REQUIRE(got.size() == ref.size());
  REQUIRE(part_a.size() == ref.size());
  REQUIRE(part_b.size() == ref.size());
  std::vector<double> d(got.size()), scale(got.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    d[i] = got[i] - ref[i];
    scale[i] = std::fabs(part_a[i]) + std::fabs(part_b[i]);
  }
  const double n = norm2(scale);
  // the parts must add up to ref, or the measure would be against the wrong size
  std::vector<double> split(got.size());
  for (std::size_t i = 0; i < got.size(); ++i) split[i] = part_a[i] + part_b[i] - ref[i];
  CHECK(norm2(split) <= 1e-12 * n);
  return n > 0 ? norm2(d) / n : INFINITY;
}

/// Tolerance of the fp64 analytic gradient against central differences.
inline constexpr double kFdTol = 1e-6;
/// Tolerance of the fp32 backward against the fp64 backward (norm-wise relative error).
inline constexpr double kF32Tol = 1e-5;
/// The same for the RMS norms: their input gradient removes the component along the row
/// (g - z (z . g) / (||z||^2 + D eps)), a difference of nearly equal terms that amplifies fp32
/// rounding by up to ~10x on short rows (D of a few).
inline constexpr double kF32NormTol = 1e-4;

}  // namespace rodimus::test
