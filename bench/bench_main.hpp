// A Google Benchmark main that initialises Kokkos around the benchmarks.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdlib>

#include "rodimus/config.hpp"

#define RODIMUS_BENCHMARK_MAIN()                                   \
  int main(int argc, char** argv) {                                \
    setenv("OMP_PROC_BIND", "false", 0);                           \
    Kokkos::ScopeGuard guard(argc, argv);                          \
    benchmark::Initialize(&argc, argv);                            \
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1; \
    benchmark::RunSpecifiedBenchmarks();                           \
    benchmark::Shutdown();                                         \
    return 0;                                                      \
  }
