// The machine's limits, measured in the benchmark binary itself: STREAM-style triad bandwidth
// and the best sgemm rate (OpenBLAS when rodimus has a CBLAS).
#pragma once

#include <chrono>
#include <vector>

#include "rodimus/backend/host/blas_linear.hpp"
#include "rodimus/config.hpp"

namespace rodimus::bench {

/// Bytes per second of a[i] = b[i] + s * c[i] over arrays far larger than the caches, on the
/// default host execution space (its threads), best of 5; measured once per process.
inline double triad_bandwidth() {
  static const double bw = [] {
    using Host = Kokkos::DefaultHostExecutionSpace;
    const std::size_t n = std::size_t(1) << 25;  // 3 arrays x 128 MiB
    Kokkos::View<float*, Kokkos::HostSpace> a("a", n), b("b", n), c("c", n);
    Kokkos::deep_copy(b, 1.f);
    Kokkos::deep_copy(c, 2.f);
    double best = 0;
    for (int rep = 0; rep < 5; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      Kokkos::parallel_for("triad", Kokkos::RangePolicy<Host>(0, n),
                           [=](const std::size_t i) { a(i) = b(i) + 0.5f * c(i); });
      Host().fence();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best = std::max(best, 3.0 * n * sizeof(float) / s);
    }
    return best;
  }();
  return bw;
}

/// FLOP/s of a 2048^3 sgemm through the CBLAS (0 without one), best of 3; measured once.
inline double sgemm_peak() {
  static const double peak = [] {
    if (!backend::host::has_cblas) return 0.0;
    const int n = 2048;
    std::vector<float> a(std::size_t(n) * n, 1.f), b(std::size_t(n) * n, 0.5f),
        c(std::size_t(n) * n);
    double best = 0;
    for (int rep = 0; rep < 3; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      backend::host::blas_linear<float>(a.data(), n, b.data(), nullptr, c.data(), n, n, n, n);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best = std::max(best, 2.0 * n * n * n / s);
    }
    return best;
  }();
  return peak;
}

}  // namespace rodimus::bench
