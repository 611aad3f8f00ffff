// The machine's limits, measured in the benchmark binary itself, on the memory and processors
// the models run on (Kokkos::DefaultExecutionSpace):
//   host  STREAM-style triad bandwidth; the best sgemm rate (OpenBLAS when rodimus has a CBLAS)
//   GPU   triad bandwidth of device memory; the cuBLAS GEMM rate of the weight type (bf16 on the
//         tensor cores, fp32 SGEMM for fp32 weights)
#pragma once

#include <chrono>
#include <type_traits>
#include <vector>

#include "rodimus/backend/cuda/cublas_linear.hpp"
#include "rodimus/backend/exec_space_traits.hpp"
#include "rodimus/backend/host/blas_linear.hpp"
#include "rodimus/config.hpp"
#include "rodimus/core/dtype.hpp"

namespace rodimus::bench {

using ModelSpace = Kokkos::DefaultExecutionSpace;

namespace detail {
// Named functions, not lambdas: CUDA's extended device lambdas need a named enclosing function.
inline double measure_triad() {
  using Space = ModelSpace;
  const std::size_t n = std::size_t(1) << 25;  // 3 arrays x 128 MiB
  Kokkos::View<float*, typename Space::memory_space> a("a", n), b("b", n), c("c", n);
  Kokkos::deep_copy(b, 1.f);
  Kokkos::deep_copy(c, 2.f);
  double best = 0;
  for (int rep = 0; rep < 6; ++rep) {
    Space().fence();
    const auto t0 = std::chrono::steady_clock::now();
    Kokkos::parallel_for(
        "triad", Kokkos::RangePolicy<Space>(0, n),
        KOKKOS_LAMBDA(const std::size_t i) { a(i) = b(i) + 0.5f * c(i); });
    Space().fence();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (rep > 0) best = std::max(best, 3.0 * n * sizeof(float) / s);  // rep 0: warm-up
  }
  if constexpr (is_gpu_space_v<Space>) {
    // GPUs: also a device-to-device copy (the copy engine path PyTorch's figure uses); the
    // better of the two is the floor's bandwidth
    for (int rep = 0; rep < 6; ++rep) {
      Space().fence();
      const auto t0 = std::chrono::steady_clock::now();
      Kokkos::deep_copy(Space(), a, b);
      Space().fence();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (rep > 0) best = std::max(best, 2.0 * n * sizeof(float) / s);
    }
  }
  return best;
}

// Space is a template parameter so that the CUDA branch is discarded on other spaces.
template <class W, class Space = ModelSpace>
double measure_gemm() {
  if constexpr (is_cuda_space_v<Space>) {
    const int n = 8192;
    using Mem = typename Space::memory_space;
    Kokkos::View<W*, Mem> a("a", std::size_t(n) * n), b("b", std::size_t(n) * n);
    Kokkos::View<float*, Mem> c("c", std::size_t(n) * n);
    // random-ish operands (zeros run faster on tensor cores)
    Kokkos::parallel_for(
        "fill", Kokkos::RangePolicy<Space>(0, a.size()), KOKKOS_LAMBDA(const std::size_t i) {
          const float x = float((i * 2654435761u) % 1000u) / 1000.f - 0.5f;
          a(i) = from_f32<W>(x);
          b(i) = from_f32<W>(0.5f * x);
        });
    double best = 0;
    for (int rep = 0; rep < 6; ++rep) {
      Space().fence();
      const auto t0 = std::chrono::steady_clock::now();
      backend::cuda::cublas_gemm_rows<W>(a.data(), b.data(), c.data(), n, n, n,
                                         Space().cuda_stream());
      Space().fence();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (rep > 0) best = std::max(best, 2.0 * n * n * n / s);
    }
    return best;
  } else {
    if (!backend::host::has_cblas) return 0.0;
    const int n = 2048;
    std::vector<float> a(std::size_t(n) * n, 1.f), b(std::size_t(n) * n, 0.5f),
        c(std::size_t(n) * n);
    // best of 5 after a warm-up (the first call also faults c's pages in and wakes the BLAS's
    // threads: session 30 saw one process measure 275 GFLOP/s against 344-363 in others)
    double best = 0;
    for (int rep = 0; rep < 6; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      backend::host::blas_linear<float>(a.data(), n, b.data(), nullptr, c.data(), n, n, n, n);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (rep > 0) best = std::max(best, 2.0 * n * n * n / s);
    }
    return best;
  }
}
}  // namespace detail

/// Bytes per second of a[i] = b[i] + s * c[i] over arrays far larger than the caches, in the
/// default execution space's memory with its threads, best of 5 after a warm-up (on a GPU, or
/// of a device-to-device copy if that is faster); measured once.
inline double triad_bandwidth() {
  static const double bw = detail::measure_triad();
  return bw;
}

/// FLOP/s of the best matrix product for weights of type W, measured once per W:
/// host: a 2048^3 sgemm through the CBLAS, best of 5 after a warm-up (0 without one; bf16
/// weights are widened to fp32 there, so the same rate); GPU: an 8192^3 cuBLAS GEMM in W
/// (tensor cores for bf16).
template <class W>
double gemm_peak() {
  static const double peak = detail::measure_gemm<W>();
  return peak;
}

/// The host figure the tables have always shown: the sgemm rate (fp32 GEMM on a GPU).
inline double sgemm_peak() { return gemm_peak<float>(); }

}  // namespace rodimus::bench
