// Tests of the tokenizer.json tokenizer: ids and decoded text equal to the `tokenizers` library's
// (tests/data/tokenizer/fixture.json, made by scripts/make_tokenizer_fixtures.sh), round trips,
// streaming decode, and errors that name the unsupported component or the bad input.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "rodimus/io/tokenizer.hpp"

using nlohmann::json;
using namespace rodimus;
using namespace rodimus::io;

namespace {

const std::filesystem::path data_dir = std::filesystem::path(RODIMUS_TEST_DATA_DIR) / "tokenizer";

const json& fixture() {
  static const json f = [] {
    std::ifstream in(data_dir / "fixture.json");
    REQUIRE(in);
    return json::parse(in);
  }();
  return f;
}

/// The fixture's tokenizers, loaded once.
const Tokenizer& tokenizer(const std::string& name) {
  static std::map<std::string, Tokenizer> cache;
  auto it = cache.find(name);
  if (it == cache.end()) {
    const std::string file = fixture().at("tokenizers").at(name).at("file");
    it = cache.emplace(name, Tokenizer::from_file(data_dir / file)).first;
  }
  return it->second;
}

std::string from_hex(const std::string& hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return out;
}

std::string case_text(const json& c) { return c.contains("hex") ? from_hex(c.at("hex")) : c.at("text").get<std::string>(); }

std::string streamed(const Tokenizer& t, const std::vector<std::int32_t>& ids, bool skip) {
  StreamDecoder s = t.stream_decoder(skip);
  std::string out;
  for (const auto id : ids) out += s.step(id);
  return out + s.flush();
}

std::string error_of(const std::string& text) {
  try {
    Tokenizer::from_json(text, "tok.json");
  } catch (const ConfigError& e) {
    return e.what();
  }
  FAIL("no ConfigError for " << text);
  return {};
}

/// A tiny byte-level tokenizer.json with the given pieces swapped in.
std::string tiny(const std::string& normalizer = "null", const std::string& pre = R"({"type":"ByteLevel"})",
                 const std::string& model = R"({"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]})",
                 const std::string& decoder = R"({"type":"ByteLevel"})") {
  return R"({"added_tokens":[],"normalizer":)" + normalizer + R"(,"pre_tokenizer":)" + pre + R"(,"model":)" + model +
         R"(,"decoder":)" + decoder + "}";
}

}  // namespace

TEST_CASE("tokenizer: ids and decoded text equal the tokenizers library's on the fixture corpus") {
  const json& cases = fixture().at("cases");
  REQUIRE(cases.size() > 1000);
  std::map<std::string, std::size_t> lines, ids_compared;
  for (const json& c : cases) {
    const std::string name = c.at("tokenizer");
    const Tokenizer& t = tokenizer(name);
    const std::string text = case_text(c);
    const auto expected = c.at("ids").get<std::vector<std::int32_t>>();
    INFO(name << " text " << c.dump().substr(0, 300));
    const auto ids = t.encode(text, c.at("add_special_tokens").get<bool>());
    REQUIRE(ids == expected);
    CHECK(t.decode(ids) == c.at("decoded").get<std::string>());
    CHECK(t.decode(ids, true) == c.at("decoded_skip").get<std::string>());
    ++lines[name];
    ids_compared[name] += ids.size();
  }
  for (const auto& [name, meta] : fixture().at("tokenizers").items()) {
    INFO(name);
    CHECK(lines[name] > 100);
    CHECK(tokenizer(name).vocab_size() == meta.at("vocab_size").get<std::size_t>());
  }
  CHECK(ids_compared["qwen3"] > 8000);
  CHECK(ids_compared["llama3"] > 8000);
}

TEST_CASE("tokenizer: streaming decode equals full decode") {
  for (const json& c : fixture().at("cases")) {
    const Tokenizer& t = tokenizer(c.at("tokenizer"));
    const auto ids = c.at("ids").get<std::vector<std::int32_t>>();
    INFO(c.dump().substr(0, 300));
    CHECK(streamed(t, ids, false) == c.at("decoded").get<std::string>());
    CHECK(streamed(t, ids, true) == c.at("decoded_skip").get<std::string>());
  }
  // A 4-byte character split over byte tokens comes out whole, at its last token.
  const Tokenizer& t = tokenizer("llama3");
  const auto ids = t.encode("a😀b");
  REQUIRE(ids.size() >= 3);
  StreamDecoder s = t.stream_decoder();
  std::vector<std::string> pieces;
  for (const auto id : ids) pieces.push_back(s.step(id));
  CHECK(pieces.front() == "a");
  std::string joined;
  for (const auto& p : pieces) {
    CHECK(io::detail::is_valid_utf8(p));
    joined += p;
  }
  CHECK(joined + s.flush() == "a😀b");
  // A character cut short at the end of the stream becomes U+FFFD on flush, as decode does.
  const auto head = std::vector<std::int32_t>(ids.begin(), ids.end() - 1);
  StreamDecoder s2 = t.stream_decoder();
  std::string out;
  for (std::size_t i = 0; i + 1 < head.size(); ++i) out += s2.step(head[i]);
  out += s2.step(head.back());
  CHECK(out + s2.flush() == t.decode(head));
}

TEST_CASE("tokenizer: decode(encode(x)) == x for random UTF-8 on lossless tokenizers") {
  std::mt19937 rng(7);
  const std::vector<std::pair<char32_t, char32_t>> ranges = {
      {0x20, 0x7E}, {0x09, 0x0D}, {0xA0, 0x2FF}, {0x300, 0x36F}, {0x400, 0x4FF}, {0x4E00, 0x4FFF},
      {0x3040, 0x30FF}, {0x1F300, 0x1F6FF}, {0x2000, 0x206F}, {0xAC00, 0xAD00}, {0x10000, 0x10FFFD}};
  for (const char* name : {"llama3", "split_Isolated", "split_Contiguous", "split_MergedWithPrevious"}) {
    const Tokenizer& t = tokenizer(name);
    for (int trial = 0; trial < 200; ++trial) {
      std::string s;
      const int n = static_cast<int>(rng() % 40);
      for (int k = 0; k < n; ++k) {
        const auto& r = ranges[rng() % ranges.size()];
        char32_t cp = r.first + static_cast<char32_t>(rng() % (r.second - r.first + 1));
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'x';
        io::detail::utf8_append(s, cp);
      }
      INFO(name << " " << s);
      CHECK(t.decode(t.encode(s)) == s);
    }
  }
}

TEST_CASE("tokenizer: token lookups, special tokens and post-processing") {
  const Tokenizer& q = tokenizer("qwen3");
  CHECK(q.token_to_id("<|im_start|>") == 151644);
  CHECK(q.id_to_token(151644) == "<|im_start|>");
  CHECK(q.token_to_id("Hello") == 9707);
  CHECK(!q.token_to_id("no such token at all"));
  CHECK(!q.id_to_token(999999));
  CHECK(q.is_special(151643));
  CHECK(!q.is_special(9707));
  const std::vector<std::int32_t> ids = q.encode("<|im_start|>user\nhi<|im_end|>");
  CHECK(ids.front() == 151644);
  CHECK(q.decode(ids, true) == "user\nhi");

  const Tokenizer& g = tokenizer("gpt2_style");
  const auto plain = g.encode("hello");
  const auto with = g.encode("hello", true);
  REQUIRE(with.size() == plain.size() + 2);
  CHECK(with.front() == *g.token_to_id("<s>"));
  CHECK(with.back() == *g.token_to_id("</s>"));
}

TEST_CASE("tokenizer: unsupported components are errors naming their type") {
  CHECK_THAT(error_of(tiny("null", "null", R"({"type":"WordPiece","vocab":{"a":0}})")),
             Catch::Contains("WordPiece") && Catch::Contains("model.type"));
  CHECK_THAT(error_of(tiny("null", R"({"type":"Metaspace","replacement":"_"})")),
             Catch::Contains("Metaspace") && Catch::Contains("pre-tokenizer"));
  CHECK_THAT(error_of(tiny("null", R"({"type":"Sequence","pretokenizers":[{"type":"ByteLevel"},{"type":"Digits"}]})")),
             Catch::Contains("Digits") && Catch::Contains("pre_tokenizer.pretokenizers[1].type"));
  CHECK_THAT(error_of(tiny(R"({"type":"Sequence","normalizers":[{"type":"NFC"},{"type":"Lowercase"}]})")),
             Catch::Contains("Lowercase") && Catch::Contains("normalizer"));
  CHECK_THAT(error_of(tiny("null", R"({"type":"ByteLevel"})",
                           R"({"type":"BPE","vocab":{"a":0},"merges":[]})", R"({"type":"WordPiece"})")),
             Catch::Contains("WordPiece") && Catch::Contains("decoder"));
  CHECK_THAT(error_of(R"({"model":{"type":"BPE","vocab":{},"merges":[]},"post_processor":{"type":"Foo"}})"),
             Catch::Contains("Foo") && Catch::Contains("post-processor"));
  CHECK_THAT(error_of(tiny("null", R"({"type":"Split","pattern":{"Regex":"a"},"behavior":"Sideways","invert":false})")),
             Catch::Contains("Sideways"));
}

TEST_CASE("tokenizer: malformed files are clear errors") {
  CHECK_THAT(error_of("{\"model\": "), Catch::Contains("tok.json") && Catch::Contains("malformed JSON"));
  CHECK_THAT(error_of("[1, 2]"), Catch::Contains("must be an object"));
  CHECK_THAT(error_of("{}"), Catch::Contains("'model'") && Catch::Contains("missing"));
  CHECK_THAT(error_of(tiny("null", R"({"type":"ByteLevel"})", R"({"type":"BPE","vocab":{"a":0},"merges":["a c"]})")),
             Catch::Contains("model.merges[0]") && Catch::Contains("\"c\""));
  CHECK_THAT(error_of(tiny("null", R"({"type":"ByteLevel"})", R"({"type":"BPE","vocab":{"a":0},"merges":["aa"]})")),
             Catch::Contains("model.merges[0]"));
  CHECK_THAT(error_of(tiny("null", R"({"type":"ByteLevel"})", R"({"type":"BPE","vocab":{"a":-1},"merges":[]})")),
             Catch::Contains("model.vocab"));
  CHECK_THAT(error_of(tiny("null", R"({"type":"Split","pattern":{"Regex":"(unclosed"},"behavior":"Isolated"})")),
             Catch::Contains("pre_tokenizer.pattern.Regex") && Catch::Contains("invalid regex"));
  CHECK_THAT(error_of(tiny("null", R"({"type":"ByteLevel"})",
                           R"({"type":"BPE","dropout":0.1,"vocab":{"a":0},"merges":[]})")),
             Catch::Contains("dropout"));
  CHECK_THROWS_AS(Tokenizer::from_file(data_dir / "no_such_tokenizer.json"), ConfigError);
}

TEST_CASE("tokenizer: decoding an unknown id is an ArgumentError naming it") {
  const Tokenizer t = Tokenizer::from_json(tiny());
  CHECK(t.decode(std::vector<std::int32_t>{2, 0}) == "aba");
  const std::vector<std::int32_t> bad = {0, 7};
  CHECK_THROWS_WITH(t.decode(bad), Catch::Contains("id 7") && Catch::Contains("position 1"));
  CHECK_THROWS_AS(t.decode(std::vector<std::int32_t>{-1}), ArgumentError);
  StreamDecoder s = t.stream_decoder();
  CHECK_THROWS_AS(s.step(3), ArgumentError);
}

TEST_CASE("tokenizer: a tokenizer without decoder joins tokens with spaces; BPE options") {
  // merges in both forms, continuing_subword_prefix and end_of_word_suffix, unk with fuse_unk
  const std::string model =
      R"({"type":"BPE","unk_token":"<unk>","fuse_unk":true,"continuing_subword_prefix":"##",)"
      R"("vocab":{"<unk>":0,"a":1,"##b":2,"ab":3,"##c":4,"abc":5},"merges":[["a","##b"],"ab ##c"]})";
  const Tokenizer t = Tokenizer::from_json(tiny("null", "null", model, "null"));
  CHECK(t.encode("abc") == std::vector<std::int32_t>{5});
  CHECK(t.encode("ab") == std::vector<std::int32_t>{3});
  CHECK(t.encode("axyb") == std::vector<std::int32_t>{1, 0, 2});  // x, y fused into one unk
  CHECK(t.decode(std::vector<std::int32_t>{1, 2}) == "a ##b");
  // byte fallback
  const std::string fb = R"({"type":"BPE","byte_fallback":true,"vocab":{"a":0,"<0xC3>":1,"<0xA9>":2},"merges":[]})";
  CHECK(Tokenizer::from_json(tiny("null", "null", fb, "null")).encode("aé") == std::vector<std::int32_t>{0, 1, 2});
}

TEST_CASE("tokenizer: invalid UTF-8 input is replaced like String::from_utf8_lossy") {
  CHECK(io::detail::utf8_lossy("a\xff" "b") == "a\xEF\xBF\xBD" "b");
  CHECK(io::detail::utf8_lossy("\xE2\x82") == "\xEF\xBF\xBD");           // one maximal subpart
  CHECK(io::detail::utf8_lossy("\xF0\x9F\x98(") == "\xEF\xBF\xBD(");
  CHECK(io::detail::utf8_lossy("\xC0\xAF") == "\xEF\xBF\xBD\xEF\xBF\xBD");  // not a lead byte
  CHECK(io::detail::utf8_lossy("\xED\xA0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  CHECK(io::detail::utf8_incomplete_tail("ab\xF0\x9F\x98") == 3);
  CHECK(io::detail::utf8_incomplete_tail("ab\xC0") == 0);
  CHECK(io::detail::utf8_incomplete_tail("ab\xE2\x28") == 0);
  const Tokenizer& t = tokenizer("llama3");
  CHECK(t.encode("x\xff y") == t.encode("x\xEF\xBF\xBD y"));
}
