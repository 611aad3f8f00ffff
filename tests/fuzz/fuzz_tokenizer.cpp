// libFuzzer target: the tokenizer.json parser and the encoder. An input is a tokenizer.json, then
// optionally "\n--\n" and a text. Parsing either throws rodimus::Error or yields a tokenizer whose
// encode() of the text gives ids that decode, and whose streaming decode equals decode.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "rodimus/io/tokenizer.hpp"

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

void check_text(const rodimus::io::Tokenizer& t, std::string_view text) {
  for (const bool add_special : {false, true}) {
    const std::vector<std::int32_t> ids = t.encode(text, add_special);
    std::string full;
    try {
      full = t.decode(ids);
    } catch (const rodimus::ArgumentError&) {
      // a post-processor may name ids that no token has (so may `tokenizers`); nothing to compare
      continue;
    }
    require(rodimus::io::detail::is_valid_utf8(full));
    auto stream = t.stream_decoder();
    std::string pieces;
    for (const auto id : ids) pieces += stream.step(id);
    pieces += stream.flush();
    require(pieces == full);
    const std::string skipped = t.decode(ids, true);
    require(rodimus::io::detail::is_valid_utf8(skipped));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  constexpr std::string_view separator = "\n--\n";
  const std::size_t cut = input.find(separator);
  const std::string_view json = input.substr(0, cut);
  const std::string_view text = cut == std::string_view::npos ? input : input.substr(cut + separator.size());
  try {
    const auto t = rodimus::io::Tokenizer::from_json(json, "fuzz");
    check_text(t, text);
    check_text(t, "Hello, world! 123 \xC3\xA9\xE4\xBD\xA0\xF0\x9F\x98\x80 <s>\r\n  x");
  } catch (const rodimus::Error&) {
    return 0;
  }
  return 0;
}
