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

/// The gradient of `loss` with respect to every element of `x` by central differences at steps
/// h and 2h combined by Richardson extrapolation, (4 D(h) - D(2h)) / 3, whose truncation error
/// is O(h^4) instead of O(h^2): a plain central difference at h misses by ~h^2 f'''(x) / 6,
/// which near the RMS norm's small-norm region (a row of two elements) reached 1.3e-6 of the
/// gradient in CI. h = 1e-5 * max(1, |x_i|); each D divides by the step actually taken,
/// (x+h) - (x-h). `x` is perturbed in place and restored. `absolute_step` uses h = 1e-5
/// whatever |x_i|: for a loss whose curvature does not grow with the input's offset (softmax is
/// shift-invariant), where a step proportional to a huge offset would only add truncation error.
inline std::vector<double> fd_grad(std::vector<double>& x, const std::function<double()>& loss,
                                   bool absolute_step = false) {
  std::vector<double> g(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i];
    const double h = 1e-5 * (absolute_step ? 1.0 : std::max(1.0, std::fabs(x0)));
    const auto central = [&](double step) {
      const double xp = x0 + step, xm = x0 - step;
      x[i] = xp;
      const double lp = loss();
      x[i] = xm;
      const double lm = loss();
      x[i] = x0;
      return (lp - lm) / (xp - xm);
    };
    g[i] = (4.0 * central(h) - central(2.0 * h)) / 3.0;
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

/// silu'(p) = s + p s (1 - s) (s = sigmoid(p)) as its two terms, for grad_err_parts: near the
/// root of silu' (p ~ -1.28) they cancel, and fp32 rounding is relative to the terms.
struct SiluPrimeTerms {
  double s, z;  ///< s and p s (1 - s)
};
inline SiluPrimeTerms silu_prime_terms(double p) {
  const double s = 1.0 / (1.0 + std::exp(-p));
  return {s, p * s * (1.0 - s)};
}

/// ||got - ref||_2 / || sum_j |parts[j]| ||_2: the error measured against the size of the
/// contributions whose sum `ref` is (ref = sum_j parts[j] elementwise), not against the sum.
/// A backward pass is linear in its upstream gradient, so running it once per piece of that
/// gradient (one per upstream tensor, or one per upstream element) gives the parts. Where the
/// parts nearly cancel, fp32 rounding is relative to the parts, and ||ref|| alone would turn a
/// correct kernel's rounding into a failure (one element with ten-fold cancellation: 1.2e-5 in
/// CI). Infinite when `got` holds a non-finite value or every part is zero.
inline double grad_err_parts(const std::vector<double>& got, const std::vector<double>& ref,
                             const std::vector<std::vector<double>>& parts) {
  REQUIRE(got.size() == ref.size());
  std::vector<double> d(got.size()), scale(got.size(), 0.0), split(got.size(), 0.0);
  for (const auto& p : parts) {
    REQUIRE(p.size() == ref.size());
    for (std::size_t i = 0; i < p.size(); ++i) {
      scale[i] += std::fabs(p[i]);
      split[i] += p[i];
    }
  }
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    d[i] = got[i] - ref[i];
    split[i] -= ref[i];
  }
  const double n = norm2(scale);
  // the parts must add up to ref, or the measure would be against the wrong size
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
