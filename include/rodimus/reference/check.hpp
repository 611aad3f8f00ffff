// Argument checks shared by the double-precision reference implementation.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "rodimus/core/error.hpp"

namespace rodimus::reference::detail {

/// Throws ArgumentError naming `what` unless `v.size() == expected`.
inline void check_size(const std::vector<double>& v, std::size_t expected, const char* what) {
  if (v.size() != expected) {
    throw ArgumentError(std::string("rodimus::reference: ") + what + " has " +
                        std::to_string(v.size()) + " elements, expected " +
                        std::to_string(expected));
  }
}

/// Throws ArgumentError with `message` unless `ok`.
inline void require(bool ok, const std::string& message) {
  if (!ok) throw ArgumentError("rodimus::reference: " + message);
}

/// Product of sizes as std::size_t (avoids int overflow in shape arithmetic).
inline std::size_t sz(long long a, long long b) {
  return static_cast<std::size_t>(a) * static_cast<std::size_t>(b);
}
inline std::size_t sz(long long a, long long b, long long c) {
  return sz(a, b) * static_cast<std::size_t>(c);
}

}  // namespace rodimus::reference::detail
