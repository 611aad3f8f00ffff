// A Google Benchmark main that initialises Kokkos around the benchmarks.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <functional>
#include <vector>

#include "rodimus/backend/host/blas_threads.hpp"
#include "rodimus/config.hpp"

/// Callbacks run before Kokkos::finalize (benchmarks that cache Kokkos objects register here).
inline std::vector<std::function<void()>>& bench_cleanups() {
  static std::vector<std::function<void()>> c;
  return c;
}

#define RODIMUS_BENCHMARK_MAIN()                                      \
  int main(int argc, char** argv) {                                   \
    rodimus::backend::host::reexec_with_quiet_idle_threads(argv);     \
    setenv("OMP_PROC_BIND", "false", 0);                              \
    Kokkos::ScopeGuard guard(argc, argv);                             \
    benchmark::Initialize(&argc, argv);                               \
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1; \
    benchmark::RunSpecifiedBenchmarks();                              \
    benchmark::Shutdown();                                            \
    for (auto& f : bench_cleanups()) f();                             \
    return 0;                                                         \
  }
