// The CBLAS's own threads against Kokkos's (host builds with RODIMUS_HAVE_CBLAS).
//
// OpenBLAS (Debian's pthreads build) keeps its worker threads spinning for 2^28 cycles after
// every call before they sleep (OPENBLAS_THREAD_TIMEOUT, default 28). A prefill alternates its
// sgemm calls with Kokkos OpenMP kernels (gates, ShortConv, norms, the scan, the attention) on
// the same cores, and those kernels then share the cores with the spinning BLAS threads: on the
// 2-core development machine the small Rodimus+ prefill's non-GEMM share read 18-23 % with the
// default and 12-13 % with OPENBLAS_THREAD_TIMEOUT=4, the whole prefill 4-8 % faster (session
// 26, docs/performance.md); decode steps (rodimus's own GEMV kernels) do not change.
//
// OpenBLAS reads the variable while it loads, before main() runs, so a program sets it and
// executes itself again: reexec_with_quiet_blas_threads(argv) at the top of main() does that once
// (Linux, a CBLAS build, the variable not already set; the user's value is left alone). The
// library never calls it by itself: it replaces the process image.
#pragma once

#include <cstdlib>

#if defined(__linux__)
#include <unistd.h>
#endif

namespace rodimus::backend::host {

/// The OPENBLAS_THREAD_TIMEOUT that reexec_with_quiet_blas_threads() sets (2^4 cycles, the
/// smallest OpenBLAS takes).
inline constexpr const char* kQuietBlasThreadTimeout = "4";

/// Sets OPENBLAS_THREAD_TIMEOUT=4 and re-executes the program (/proc/self/exe with the same
/// arguments and environment) when the variable is unset, on Linux in a build with a CBLAS;
/// returns at once otherwise, and if the exec fails (the program then runs on as it is).
inline void reexec_with_quiet_blas_threads([[maybe_unused]] char** argv) {
#if defined(__linux__) && defined(RODIMUS_HAVE_CBLAS)
  if (argv == nullptr || std::getenv("OPENBLAS_THREAD_TIMEOUT") != nullptr) return;
  if (setenv("OPENBLAS_THREAD_TIMEOUT", kQuietBlasThreadTimeout, 1) != 0) return;
  execv("/proc/self/exe", argv);  // returns only on failure
#endif
}

}  // namespace rodimus::backend::host
