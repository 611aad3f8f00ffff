// Host instruction sets, detected at run time: the ONLY place in rodimus with x86 #ifdefs.
// Kernels compiled for a wider ISA than the build's baseline carry RODIMUS_TARGET_AVX512 /
// RODIMUS_TARGET_AVX2 and run only when host_isa() says the CPU has it, so one binary built for
// plain x86-64 uses AVX-512 where it exists and stays correct everywhere else.
#pragma once

#include <cstdlib>
#include <string>
#include <string_view>

#include "rodimus/core/error.hpp"

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define RODIMUS_HAVE_X86_DISPATCH 1
#include <immintrin.h>
/// Compiles a function for AVX-512 (F, BW, VL, DQ) with FMA.
#define RODIMUS_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")))
/// Compiles a function for AVX-512 with the bf16 dot product (vdpbf16ps, AVX512_BF16).
#define RODIMUS_TARGET_AVX512BF16 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,f16c")))
/// Compiles a function for AVX2 with FMA and F16C.
#define RODIMUS_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#else
#define RODIMUS_HAVE_X86_DISPATCH 0
#define RODIMUS_TARGET_AVX512
#define RODIMUS_TARGET_AVX512BF16
#define RODIMUS_TARGET_AVX2
#endif

/// `#pragma GCC unroll n` for host loops; nothing in a translation unit nvcc compiles, whose
/// front end does not know the pragma (warning 1675-D) and whose host kernels are not the
/// hot paths there.
#if defined(__CUDACC__)
#define RODIMUS_HOST_UNROLL(n)
#else
#define RODIMUS_HOST_PRAGMA(x) _Pragma(#x)
#define RODIMUS_HOST_UNROLL(n) RODIMUS_HOST_PRAGMA(GCC unroll n)
#endif

namespace rodimus::backend::host {

/// Flushes subnormal floats to zero on the calling thread for a scope (x86 MXCSR FTZ and DAZ,
/// restored afterwards; nothing elsewhere). For kernels whose products of decay factors in
/// [0, 1] reach subnormal values, which x86 cores process many times slower, while anything
/// that small is far below the fp32 resolution of the results it feeds.
class FlushSubnormals {
 public:
#if RODIMUS_HAVE_X86_DISPATCH
  FlushSubnormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040u); }  // FTZ | DAZ
  ~FlushSubnormals() { _mm_setcsr(saved_); }
#else
  FlushSubnormals() = default;
#endif
  FlushSubnormals(const FlushSubnormals&) = delete;
  FlushSubnormals& operator=(const FlushSubnormals&) = delete;

#if RODIMUS_HAVE_X86_DISPATCH
 private:
  unsigned saved_;
#endif
};

/// The widest host instruction set rodimus kernels use.
enum class HostIsa { Generic = 0, Avx2 = 1, Avx512 = 2 };

inline std::string_view host_isa_name(HostIsa isa) {
  switch (isa) {
    case HostIsa::Avx512:
      return "avx512";
    case HostIsa::Avx2:
      return "avx2";
    default:
      return "generic";
  }
}

/// What this CPU supports (ignoring RODIMUS_HOST_ISA).
inline HostIsa detected_host_isa() {
#if RODIMUS_HAVE_X86_DISPATCH
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("fma"))
    return HostIsa::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return HostIsa::Avx2;
#endif
  return HostIsa::Generic;
}

namespace detail {
/// The ISA for `request` ("generic", "avx2", "avx512" or empty = best) on a CPU that has
/// `detected`; asking for more than the CPU has is an error.
inline HostIsa choose_host_isa(std::string_view request, HostIsa detected) {
  if (request.empty()) return detected;
  HostIsa want;
  if (request == "generic") {
    want = HostIsa::Generic;
  } else if (request == "avx2") {
    want = HostIsa::Avx2;
  } else if (request == "avx512") {
    want = HostIsa::Avx512;
  } else {
    throw ArgumentError("RODIMUS_HOST_ISA='" + std::string(request) +
                        "': expected generic, avx2 or avx512");
  }
  if (static_cast<int>(want) > static_cast<int>(detected))
    throw ArgumentError("RODIMUS_HOST_ISA='" + std::string(request) + "': this CPU supports only " +
                        std::string(host_isa_name(detected)));
  return want;
}
}  // namespace detail

/// The ISA host kernels use: the best the CPU has, or a lower one named by the environment
/// variable RODIMUS_HOST_ISA (generic, avx2, avx512), read once. Tests use it to run every path.
inline HostIsa host_isa() {
  static const HostIsa isa = [] {
    const char* env = std::getenv("RODIMUS_HOST_ISA");
    return detail::choose_host_isa(env ? std::string_view(env) : std::string_view(),
                                   detected_host_isa());
  }();
  return isa;
}

/// Whether host kernels may use AVX512_BF16's vdpbf16ps: the CPU has it and host_isa() is
/// avx512 (RODIMUS_HOST_ISA=avx2 or generic turns it off with the rest of AVX-512).
inline bool host_has_avx512_bf16() {
  static const bool has = [] {
#if RODIMUS_HAVE_X86_DISPATCH
    __builtin_cpu_init();
    return host_isa() == HostIsa::Avx512 && __builtin_cpu_supports("avx512bf16");
#else
    return false;
#endif
  }();
  return has;
}

}  // namespace rodimus::backend::host
