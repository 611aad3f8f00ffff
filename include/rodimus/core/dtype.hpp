// Storage dtypes (bf16, fp16, fp32) with host/device conversions to and from fp32.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>
#include <type_traits>

#include "rodimus/config.hpp"

namespace rodimus {

/// Runtime tag of a stored tensor's element type.
enum class DType : std::uint8_t { F32, F16, BF16 };

/// bfloat16 stored as its 16 raw bits; arithmetic happens in fp32.
struct bf16 {
  std::uint16_t bits = 0;
};

/// IEEE half precision stored as its 16 raw bits; arithmetic happens in fp32.
struct fp16 {
  std::uint16_t bits = 0;
};

namespace detail {

RODIMUS_INLINE std::uint32_t f32_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

RODIMUS_INLINE float bits_f32(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

}  // namespace detail

/// Widens a stored value to fp32 (identity for float).
RODIMUS_FORCEINLINE float to_f32(float x) { return x; }
RODIMUS_FORCEINLINE float to_f32(bf16 x) { return detail::bits_f32(std::uint32_t(x.bits) << 16); }
RODIMUS_INLINE float to_f32(fp16 x) {
  const std::uint32_t h = x.bits;
  const std::uint32_t sign = (h & 0x8000u) << 16;
  std::uint32_t exp = (h >> 10) & 0x1fu;
  std::uint32_t man = h & 0x3ffu;
  if (exp == 0x1fu) return detail::bits_f32(sign | 0x7f800000u | (man << 13));  // inf / nan
  if (exp == 0) {
    if (man == 0) return detail::bits_f32(sign);
    // subnormal: normalise
    int e = -1;
    do {
      ++e;
      man <<= 1;
    } while ((man & 0x400u) == 0);
    man &= 0x3ffu;
    return detail::bits_f32(sign | (std::uint32_t(127 - 15 - e) << 23) | (man << 13));
  }
  return detail::bits_f32(sign | ((exp + 127 - 15) << 23) | (man << 13));
}

/// Narrows fp32 to a storage type with round-to-nearest-even.
template <class T>
RODIMUS_INLINE T from_f32(float x);

template <>
RODIMUS_FORCEINLINE float from_f32<float>(float x) {
  return x;
}

template <>
RODIMUS_INLINE bf16 from_f32<bf16>(float x) {
  std::uint32_t u = detail::f32_bits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{std::uint16_t((u >> 16) | 0x40u)};  // quiet nan
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16{std::uint16_t(u >> 16)};
}

template <>
RODIMUS_INLINE fp16 from_f32<fp16>(float x) {
  const std::uint32_t u = detail::f32_bits(x);
  const std::uint32_t sign = (u >> 16) & 0x8000u;
  const std::uint32_t absu = u & 0x7fffffffu;
  if (absu > 0x7f800000u) return fp16{std::uint16_t(sign | 0x7e00u)};   // nan
  if (absu >= 0x477ff000u) return fp16{std::uint16_t(sign | 0x7c00u)};  // overflow -> inf
  if (absu < 0x38800000u) {                                             // subnormal or zero
    if (absu < 0x33000000u) return fp16{std::uint16_t(sign)};
    const std::uint32_t e = absu >> 23;
    const std::uint32_t m = (absu & 0x7fffffu) | 0x800000u;
    const std::uint32_t shift = 126u - e;  // 14..24
    std::uint32_t r = m >> shift;
    const std::uint32_t rem = m & ((1u << shift) - 1u);
    const std::uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return fp16{std::uint16_t(sign | r)};
  }
  std::uint32_t r = absu - 0x38000000u;  // rebias exponent 127 -> 15
  r += 0xfffu + ((r >> 13) & 1u);
  return fp16{std::uint16_t(sign | (r >> 13))};
}

/// Compile-time facts about a storage type.
template <class T>
struct dtype_traits;
template <>
struct dtype_traits<float> {
  static constexpr DType dtype = DType::F32;
  static constexpr std::string_view name = "F32";
};
template <>
struct dtype_traits<bf16> {
  static constexpr DType dtype = DType::BF16;
  static constexpr std::string_view name = "BF16";
};
template <>
struct dtype_traits<fp16> {
  static constexpr DType dtype = DType::F16;
  static constexpr std::string_view name = "F16";
};

/// A type rodimus can store weights in.
template <class T>
concept StorageType = requires {
  dtype_traits<T>::dtype;
};

/// A type a linear layer's weights can be bound in: a storage type, or double (the fp64
/// training forward of the gradient checks, which also computes in fp64).
template <class T>
concept WeightType = StorageType<T> || std::is_same_v<T, double>;

/// The arithmetic type of an op on weights of type W: fp32, and fp64 for double weights.
template <class W>
struct compute_type {
  using type = float;
};
template <>
struct compute_type<double> {
  using type = double;
};
template <class W>
using compute_t = typename compute_type<W>::type;

/// Widens a weight to its compute type (to_f32 for storage types, identity for double).
template <StorageType T>
RODIMUS_FORCEINLINE float to_compute(T x) {
  return to_f32(x);
}
RODIMUS_FORCEINLINE double to_compute(double x) { return x; }

/// Bytes per element of a runtime dtype.
constexpr std::size_t dtype_size(DType d) { return d == DType::F32 ? 4 : 2; }

/// The safetensors spelling of a dtype ("F32", "F16", "BF16").
constexpr std::string_view dtype_name(DType d) {
  switch (d) {
    case DType::F32:
      return "F32";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
  }
  return "?";
}

}  // namespace rodimus
