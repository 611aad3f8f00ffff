// Library-wide macros, version, and Kokkos version shims (Kokkos 3.4 .. 4.x).
#pragma once

#include <Kokkos_Core.hpp>
#include <string>

#define RODIMUS_VERSION_MAJOR 0
#define RODIMUS_VERSION_MINOR 1
#define RODIMUS_VERSION_PATCH 0
#define RODIMUS_VERSION_STRING "0.1.0"

/// Marks functions callable from host and device code.
#define RODIMUS_INLINE KOKKOS_INLINE_FUNCTION
#define RODIMUS_FORCEINLINE KOKKOS_FORCEINLINE_FUNCTION

// Kokkos 3.4 (Debian's package) lacks KOKKOS_CLASS_LAMBDA; it arrived in 3.5 / 4.x.
#ifndef KOKKOS_CLASS_LAMBDA
#define KOKKOS_CLASS_LAMBDA [ =, *this ] KOKKOS_FUNCTION
#endif

/// A kernel's name for Kokkos' profiling tools, built once: a std::string made from a literal at
/// every launch would allocate on the heap in each decode step.
#define RODIMUS_KERNEL_LABEL(text)                 \
  ([]() -> const std::string& {                    \
    static const std::string rodimus_label_(text); \
    return rodimus_label_;                         \
  }())

#if KOKKOS_VERSION >= 40000
#define RODIMUS_KOKKOS_4 1
#else
#define RODIMUS_KOKKOS_4 0
#endif

namespace rodimus::detail::kmath {
// Kokkos 4 moved the math functions from Kokkos::Experimental to Kokkos.
#if RODIMUS_KOKKOS_4
using Kokkos::cos;
using Kokkos::exp;
using Kokkos::expm1;
using Kokkos::fabs;
using Kokkos::log;
using Kokkos::log1p;
using Kokkos::pow;
using Kokkos::sin;
using Kokkos::sqrt;
#else
using Kokkos::Experimental::cos;
using Kokkos::Experimental::exp;
using Kokkos::Experimental::expm1;
using Kokkos::Experimental::fabs;
using Kokkos::Experimental::log;
using Kokkos::Experimental::log1p;
using Kokkos::Experimental::pow;
using Kokkos::Experimental::sin;
using Kokkos::Experimental::sqrt;
#endif
}  // namespace rodimus::detail::kmath
