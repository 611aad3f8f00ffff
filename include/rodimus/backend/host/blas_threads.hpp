// The CBLAS's own threads against Kokkos's (host builds with RODIMUS_HAVE_CBLAS).
//
// A prefill alternates OpenBLAS sgemm calls with Kokkos OpenMP kernels (gates, ShortConv, norms,
// the scan, the attention) on the same cores, and each side's idle threads spin after their work:
// - Debian's OpenBLAS (pthreads build) spins for 2^28 cycles after every call before its threads
//   sleep (OPENBLAS_THREAD_TIMEOUT, default 28), against the Kokkos kernels that follow;
// - libgomp's idle OpenMP threads spin 300,000 pause loops (several ms on Zen 5; GOMP_SPINCOUNT)
//   after every parallel region, against the sgemm that follows.
// On the 2-core development machine (session 26, docs/performance.md): OPENBLAS_THREAD_TIMEOUT=4
// took the small Rodimus+ prefill's non-GEMM share from 18-23 % to 12-13 %, and GOMP_SPINCOUNT
// =10000 (~0.2 ms) then took its T = 2048 prefill from 0.48-0.56 to 0.57-0.64 of the sgemm floor;
// decode steps, whose kernels follow each other within microseconds, did not change beyond noise.
//
// Both variables are read while the libraries load, before main() runs, so a program sets them
// and executes itself again: reexec_with_quiet_idle_threads(argv) at the top of main() does that
// once (Linux, a CBLAS build; a variable the user set is left alone, GOMP_SPINCOUNT also when
// OMP_WAIT_POLICY is set). The library never calls it by itself: it replaces the process image.
#pragma once

#include <cstdlib>

#if defined(__linux__)
#include <unistd.h>
#endif

namespace rodimus::backend::host {

/// The OPENBLAS_THREAD_TIMEOUT that reexec_with_quiet_idle_threads() sets (2^4 cycles, the
/// smallest OpenBLAS takes).
inline constexpr const char* kQuietBlasThreadTimeout = "4";
/// The GOMP_SPINCOUNT it sets: ~0.2 ms of spinning on Zen 5, longer than the gaps between a
/// decode step's kernels, far shorter than a prefill's sgemm.
inline constexpr const char* kQuietOmpSpinCount = "10000";

/// Sets OPENBLAS_THREAD_TIMEOUT=4 and GOMP_SPINCOUNT=10000 where unset and re-executes the
/// program (/proc/self/exe with the same arguments) when it set either, on Linux in a build with
/// a CBLAS; returns at once otherwise, and if the exec fails (the program then runs on as it is).
inline void reexec_with_quiet_idle_threads([[maybe_unused]] char** argv) {
#if defined(__linux__) && defined(RODIMUS_HAVE_CBLAS)
  if (argv == nullptr) return;
  bool changed = false;
  if (std::getenv("OPENBLAS_THREAD_TIMEOUT") == nullptr)
    changed |= setenv("OPENBLAS_THREAD_TIMEOUT", kQuietBlasThreadTimeout, 1) == 0;
  if (std::getenv("GOMP_SPINCOUNT") == nullptr && std::getenv("OMP_WAIT_POLICY") == nullptr)
    changed |= setenv("GOMP_SPINCOUNT", kQuietOmpSpinCount, 1) == 0;
  if (changed) execv("/proc/self/exe", argv);  // returns only on failure
#endif
}

}  // namespace rodimus::backend::host
