// UTF-8 helpers for the tokenizer: lossy validation (U+FFFD per maximal subpart), code points,
// incomplete tails for streaming, and the Unicode White_Space set.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace rodimus::io::detail {

/// The replacement character U+FFFD in UTF-8.
inline constexpr std::string_view utf8_replacement = "\xEF\xBF\xBD";

/// Length of the well-formed UTF-8 sequence at s[i], or, when it is ill-formed, minus the length
/// of its maximal subpart (at least 1): the unit that one U+FFFD replaces (Unicode 15 section 3.9,
/// the practice of the WHATWG decoder and of Rust's String::from_utf8_lossy).
inline int utf8_unit(std::string_view s, std::size_t i) {
  const auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b = at(i);
  if (b < 0x80) return 1;
  int need = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
  if (b >= 0xC2 && b <= 0xDF) {
    need = 1;
  } else if (b >= 0xE0 && b <= 0xEF) {
    need = 2;
    if (b == 0xE0) lo = 0xA0;
    if (b == 0xED) hi = 0x9F;
  } else if (b >= 0xF0 && b <= 0xF4) {
    need = 3;
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;
  } else {
    return -1;
  }
  std::size_t k = i + 1;
  for (int n = 0; n < need; ++n, ++k) {
    if (k >= s.size()) return -static_cast<int>(k - i);
    const unsigned char c = at(k);
    const unsigned char l = n == 0 ? lo : 0x80, h = n == 0 ? hi : 0xBF;
    if (c < l || c > h) return -static_cast<int>(k - i);
  }
  return need + 1;
}

/// True when `s` is well-formed UTF-8.
inline bool is_valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const int u = utf8_unit(s, i);
    if (u < 0) return false;
    i += static_cast<std::size_t>(u);
  }
  return true;
}

/// `s` with every ill-formed subsequence replaced by U+FFFD (String::from_utf8_lossy).
inline std::string utf8_lossy(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size() && static_cast<unsigned char>(s[i]) < 0x80) ++i;  // ASCII fast path
  if (i == s.size()) return std::string(s);
  std::string out(s.substr(0, i));
  out.reserve(s.size() + 8);
  while (i < s.size()) {
    const int u = utf8_unit(s, i);
    if (u > 0) {
      out.append(s.substr(i, static_cast<std::size_t>(u)));
      i += static_cast<std::size_t>(u);
    } else {
      out.append(utf8_replacement);
      i += static_cast<std::size_t>(-u);
    }
  }
  return out;
}

/// Number of bytes at the end of `s` that form a proper prefix of a well-formed sequence (a
/// character cut short, 0..3): what a streaming decoder holds back until the next token.
inline std::size_t utf8_incomplete_tail(std::string_view s) {
  const std::size_t n = s.size();
  for (std::size_t back = 1; back <= 3 && back <= n; ++back) {
    const std::size_t i = n - back;
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) return 0;
    if (b >= 0xC0) {  // a lead byte: hold it back only if it and what follows can still complete
      if (b < 0xC2 || b > 0xF4) return 0;
      const int u = utf8_unit(s, i);
      return (u < 0 && static_cast<std::size_t>(-u) == back) ? back : 0;
    }
  }
  return 0;
}

/// The code point of the well-formed sequence at s[i] (no checks), and its length in `len`.
inline char32_t utf8_decode(std::string_view s, std::size_t i, int& len) {
  const auto b = static_cast<unsigned char>(s[i]);
  const auto c = [&](std::size_t k) {
    return static_cast<char32_t>(static_cast<unsigned char>(s[i + k]) & 0x3F);
  };
  if (b < 0x80) {
    len = 1;
    return b;
  }
  if (b < 0xE0) {
    len = 2;
    return (static_cast<char32_t>(b & 0x1F) << 6) | c(1);
  }
  if (b < 0xF0) {
    len = 3;
    return (static_cast<char32_t>(b & 0x0F) << 12) | (c(1) << 6) | c(2);
  }
  len = 4;
  return (static_cast<char32_t>(b & 0x07) << 18) | (c(1) << 12) | (c(2) << 6) | c(3);
}

/// Length in bytes of the character that starts at s[i] of well-formed UTF-8.
inline std::size_t utf8_char_len(std::string_view s, std::size_t i) {
  const auto b = static_cast<unsigned char>(s[i]);
  return b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
}

/// Appends code point `cp` to `out` as UTF-8.
inline void utf8_append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

/// Unicode White_Space (PropList.txt): what Rust's char::is_whitespace and regex `\s` accept.
inline bool is_white_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

}  // namespace rodimus::io::detail
