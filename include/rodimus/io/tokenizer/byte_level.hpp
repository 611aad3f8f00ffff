// GPT-2's byte <-> printable character table used by the ByteLevel pre-tokenizer and decoder.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "rodimus/io/tokenizer/utf8.hpp"

namespace rodimus::io::detail {

/// Each byte b maps to a printable character: b itself for '!'..'~', '¡'..'¬', '®'..'ÿ', and
/// 256 + n (n = 0, 1, ...) for the others in increasing order.
struct ByteLevelTable {
  std::array<std::string, 256> byte_to_utf8;  // UTF-8 of the character standing for a byte
  std::array<int, 324> char_to_byte{};        // code point -> byte, -1 when none

  ByteLevelTable() {
    char_to_byte.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable =
          (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const char32_t cp = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
      utf8_append(byte_to_utf8[static_cast<std::size_t>(b)], cp);
      char_to_byte[cp] = b;
    }
  }

  static const ByteLevelTable& get() {
    static const ByteLevelTable table;
    return table;
  }

  /// `s` with each byte replaced by its character.
  void encode(std::string_view s, std::string& out) const {
    out.clear();
    out.reserve(s.size() * 2);
    for (const char c : s) out += byte_to_utf8[static_cast<unsigned char>(c)];
  }

  /// Appends the bytes a token stands for; a token with a character outside the table is kept
  /// as its own UTF-8 (the ByteLevel decoder's rule).
  void decode_token(std::string_view token, std::string& out) const {
    const std::size_t mark = out.size();
    for (std::size_t i = 0; i < token.size();) {
      int len = 0;
      const char32_t cp = utf8_decode(token, i, len);
      if (cp >= char_to_byte.size() || char_to_byte[cp] < 0) {
        out.resize(mark);
        out.append(token);
        return;
      }
      out += static_cast<char>(char_to_byte[cp]);
      i += static_cast<std::size_t>(len);
    }
  }
};

}  // namespace rodimus::io::detail
