// Tests of the byte-level BPE trainer: its merges equal a naive re-counting trainer's, the
// tokenizer.json it writes loads and round-trips bytes, training is deterministic, the committed
// trained tokenizer (tests/data/tokenizer_train/) is what it writes and encodes like the
// `tokenizers` library (fixture.json, made by scripts/make_tokenizer_fixtures.sh), and errors.
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "rodimus/io/tokenizer.hpp"
#include "rodimus/io/tokenizer/bpe_trainer.hpp"

using nlohmann::json;
using namespace rodimus;
using namespace rodimus::io;

namespace {

namespace fs = std::filesystem;
const fs::path data_dir = fs::path(RODIMUS_TEST_DATA_DIR) / "tokenizer_train";

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE(in);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// The committed corpus as `rodimus train-tokenizer --exclude-dir test` reads it: files in
/// sorted order, the `test` folder and files that are not UTF-8 left out.
std::vector<std::string> corpus_texts() {
  std::vector<fs::path> files;
  for (auto it = fs::recursive_directory_iterator(data_dir / "corpus");
       it != fs::recursive_directory_iterator(); ++it) {
    if (it->is_directory() && it->path().filename() == "test") {
      it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file()) files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  std::vector<std::string> texts;
  for (const auto& f : files) {
    std::string t = read_bytes(f);
    if (io::detail::is_valid_utf8(t)) texts.push_back(std::move(t));
  }
  REQUIRE(texts.size() == 5);
  return texts;
}

/// The options the committed tokenizer.json was trained with
/// (tests/data/tokenizer_train/README.md).
BpeTrainerOptions committed_options() {
  BpeTrainerOptions o;
  o.vocab_size = 512;
  o.min_frequency = 2;
  o.special_tokens = {"<|endoftext|>", "<|pad|>"};
  return o;
}

TrainedBpe train_bpe(const BpeTrainerOptions& o, const std::vector<std::string>& texts) {
  BpeTrainer t(o);
  for (const auto& s : texts) t.add_text(s);
  return t.train();
}

/// Word counts found independently of BpeTrainer::add_text: text between special tokens
/// (leftmost, then longest), split by the pre-tokenizer the trainer writes.
std::map<std::string, std::uint64_t> count_words(const std::vector<std::string>& texts,
                                                 const BpeTrainerOptions& o) {
  const io::detail::PreTokenizer pre(json(TrainedBpe::pre_tokenizer_json(o.pattern)),
                                 io::detail::TokenizerJson("test"), "pre_tokenizer");
  std::map<std::string, std::uint64_t> counts;
  const auto add = [&](const std::string& segment) {
    if (segment.empty()) return;
    std::vector<std::string> pieces{segment};
    pre.apply(pieces);
    for (const auto& p : pieces) ++counts[p];
  };
  for (const std::string& text : texts) {
    std::size_t i = 0, start = 0;
    while (i < text.size()) {
      std::size_t len = 0;
      for (const auto& s : o.special_tokens)
        if (text.compare(i, s.size(), s) == 0) len = std::max(len, s.size());
      if (len == 0) {
        ++i;
        continue;
      }
      add(text.substr(start, i - start));
      i += len;
      start = i;
    }
    add(text.substr(start));
  }
  return counts;
}

/// A naive trainer: recounts every pair of every word before each merge (O(merges x corpus)),
/// with the rules BpeTrainer documents.
TrainedBpe naive_train(const std::map<std::string, std::uint64_t>& word_counts,
                       const BpeTrainerOptions& o) {
  const auto& table = io::detail::ByteLevelTable::get();
  TrainedBpe r;
  r.tokens.assign(table.byte_to_utf8.begin(), table.byte_to_utf8.end());
  std::vector<std::pair<std::vector<std::int32_t>, std::uint64_t>> words;
  for (const auto& [w, c] : word_counts) {
    std::vector<std::int32_t> s;
    for (std::size_t i = 0; i < w.size();) {
      int len = 0;
      s.push_back(table.char_to_byte[io::detail::utf8_decode(w, i, len)]);
      i += static_cast<std::size_t>(len);
    }
    words.emplace_back(std::move(s), c);
  }
  const std::set<std::string> specials(o.special_tokens.begin(), o.special_tokens.end());
  std::set<std::pair<std::int32_t, std::int32_t>> forbidden;
  const std::size_t target = o.vocab_size - o.special_tokens.size();
  while (r.tokens.size() < target) {
    std::map<std::pair<std::int32_t, std::int32_t>, std::uint64_t> counts;
    for (const auto& [s, c] : words)
      for (std::size_t i = 0; i + 1 < s.size(); ++i) counts[{s[i], s[i + 1]}] += c;
    std::pair<std::int32_t, std::int32_t> best{-1, -1};
    std::uint64_t best_count = 0;
    for (const auto& [p, c] : counts)  // ascending pairs: the first of the largest count wins
      if (c > best_count && !forbidden.contains(p)) {
        best = p;
        best_count = c;
      }
    if (best_count == 0 || best_count < std::max<std::uint64_t>(o.min_frequency, 1)) break;
    const std::string merged =
        r.tokens[std::size_t(best.first)] + r.tokens[std::size_t(best.second)];
    if (specials.contains(merged)) {
      forbidden.insert(best);
      continue;
    }
    std::int32_t x = -1;
    for (std::size_t i = 0; i < r.tokens.size(); ++i)
      if (r.tokens[i] == merged) x = static_cast<std::int32_t>(i);
    if (x < 0) {  // else the same text reached through another pair: no new token
      x = static_cast<std::int32_t>(r.tokens.size());
      r.tokens.push_back(merged);
    }
    r.merges.push_back(best);
    for (auto& [s, c] : words) {
      std::vector<std::int32_t> out;
      for (std::size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == best.first && s[i + 1] == best.second) {
          out.push_back(x);
          i += 2;
        } else {
          out.push_back(s[i++]);
        }
      }
      s = std::move(out);
    }
  }
  for (const auto& s : o.special_tokens) r.tokens.push_back(s);
  r.special_count = o.special_tokens.size();
  r.pattern = o.pattern;
  return r;
}

/// Trains both ways on `texts` and requires the same word counts, tokens and merges.
void check_against_naive(const BpeTrainerOptions& o, const std::vector<std::string>& texts) {
  BpeTrainer t(o);
  for (const auto& s : texts) t.add_text(s);
  const auto words = count_words(texts, o);
  REQUIRE(t.word_types() == words.size());
  std::uint64_t total = 0;
  for (const auto& [w, c] : words) {
    INFO("word " << w);
    const auto it = t.word_counts().find(w);
    REQUIRE(it != t.word_counts().end());
    CHECK(it->second == c);
    total += c;
  }
  CHECK(t.words() == total);
  const TrainedBpe fast = t.train();
  const TrainedBpe slow = naive_train(words, o);
  REQUIRE(fast.merges.size() == slow.merges.size());
  for (std::size_t i = 0; i < fast.merges.size(); ++i) {
    INFO("merge " << i);
    REQUIRE(fast.merges[i] == slow.merges[i]);
  }
  CHECK(fast.tokens == slow.tokens);
  CHECK(fast.special_count == o.special_tokens.size());
}

/// Random words over a tiny alphabet: many equal counts (ties) and pairs that overlap (`aaa`).
std::vector<std::string> synthetic_corpus(std::uint32_t seed, int n_words) {
  std::mt19937 rng(seed);
  std::vector<std::string> texts(1);
  for (int i = 0; i < n_words; ++i) {
    std::string w;
    const int len = 1 + static_cast<int>(rng() % 7);
    for (int k = 0; k < len; ++k) w += "abc"[rng() % 3];
    texts.back() += (rng() % 5 == 0 ? "\n" : " ") + w;
    if (rng() % 50 == 0) texts.emplace_back();  // another document
  }
  return texts;
}

std::uint32_t fresh_seed() {
  const std::uint32_t seed = std::random_device{}();
  std::printf("test_bpe_trainer: random seed %u\n", seed);
  return seed;
}

std::string error_of(const BpeTrainerOptions& o) {
  try {
    BpeTrainer t(o);
  } catch (const Error& e) {
    return e.what();
  }
  FAIL("no error");
  return {};
}

}  // namespace

TEST_CASE("bpe trainer: merges equal a naive re-counting trainer's") {
  const auto texts = corpus_texts();
  SECTION("committed options") { check_against_naive(committed_options(), texts); }
  SECTION("larger vocabulary, GPT-2 pattern, no specials") {
    BpeTrainerOptions o;
    o.vocab_size = 900;
    o.pattern = std::string(gpt2_pattern);
    check_against_naive(o, texts);
  }
  SECTION("min_frequency stops early") {
    BpeTrainerOptions o = committed_options();
    o.vocab_size = 5000;
    o.min_frequency = 6;
    check_against_naive(o, texts);
    CHECK(train_bpe(o, texts).tokens.size() < 5000);
  }
  SECTION("synthetic words: ties and overlapping pairs") {
    BpeTrainerOptions o;
    o.vocab_size = 256 + 120;
    o.special_tokens = {"<|endoftext|>"};
    check_against_naive(o, synthetic_corpus(12345, 3000));
  }
  SECTION("synthetic words, fresh seed") {
    const std::uint32_t seed = fresh_seed();
    INFO("seed " << seed);
    BpeTrainerOptions o;
    o.vocab_size = 256 + 150;
    check_against_naive(o, synthetic_corpus(seed, 2000));
  }
}

TEST_CASE("bpe trainer: the written tokenizer.json loads and round-trips arbitrary bytes") {
  const BpeTrainerOptions o = committed_options();
  const TrainedBpe bpe = train_bpe(o, corpus_texts());
  const Tokenizer t = Tokenizer::from_json(bpe.dump(), "trained.json");
  REQUIRE(t.vocab_size() == 512);
  REQUIRE(bpe.tokens.size() == 512);
  const auto& table = io::detail::ByteLevelTable::get();
  for (int b = 0; b < 256; ++b) CHECK(t.id_to_token(b) == table.byte_to_utf8[std::size_t(b)]);
  CHECK(t.token_to_id("<|endoftext|>") == 510);
  CHECK(t.token_to_id("<|pad|>") == 511);
  CHECK(t.is_special(510));
  CHECK(t.is_special(511));
  CHECK(!t.is_special(300));
  for (std::size_t i = 256; i < 510; ++i) CHECK(t.token_to_id(bpe.tokens[i]) == int(i));
  CHECK(t.encode("<|pad|>x<|endoftext|>") ==
        std::vector<std::int32_t>{511, *t.token_to_id("x"), 510});
  CHECK(t.encode("    self.capacity = capacity\n").size() < 12);  // 29 bytes: merges do apply

  const std::uint32_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937 rng(seed);
  // random bytes: invalid UTF-8 comes back as U+FFFD, exactly as encode saw it
  for (int trial = 0; trial < 300; ++trial) {
    std::string s;
    const int n = static_cast<int>(rng() % 64);
    for (int k = 0; k < n; ++k) s += static_cast<char>(rng() % 256);
    INFO("bytes trial " << trial);
    const auto ids = t.encode(s);
    for (const auto id : ids) REQUIRE((id >= 0 && id < 512));
    CHECK(t.decode(ids) == io::detail::utf8_lossy(s));
  }
  // random UTF-8 (ASCII-heavy, with code, specials, all planes): an exact round trip
  const std::vector<std::pair<char32_t, char32_t>> ranges = {
      {0x20, 0x7E},    {0x20, 0x7E},        {0x09, 0x0D},     {0x00, 0x1F},      {0x80, 0x7FF},
      {0x800, 0xFFFF}, {0x10000, 0x10FFFF}, {0x4E00, 0x4FFF}, {0x1F300, 0x1F6FF}};
  const std::vector<std::string> words = {"self", "    ", "<|endoftext|>", "<|pad|>", "def ", "\n"};
  for (int trial = 0; trial < 300; ++trial) {
    std::string s;
    const int n = static_cast<int>(rng() % 48);
    for (int k = 0; k < n; ++k) {
      if (rng() % 8 == 0) {
        s += words[rng() % words.size()];
        continue;
      }
      const auto& r = ranges[rng() % ranges.size()];
      char32_t cp = r.first + static_cast<char32_t>(rng() % (r.second - r.first + 1));
      if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'x';
      io::detail::utf8_append(s, cp);
    }
    INFO("utf-8 trial " << trial << ": " << s);
    CHECK(t.decode(t.encode(s)) == s);
  }
}

TEST_CASE("bpe trainer: training is deterministic and independent of the order of the files") {
  const auto texts = corpus_texts();
  const BpeTrainerOptions o = committed_options();
  BpeTrainer t(o);
  for (const auto& s : texts) t.add_text(s);
  const std::string first = t.train().dump();
  CHECK(t.train().dump() == first);
  auto reversed = texts;
  std::reverse(reversed.begin(), reversed.end());
  CHECK(train_bpe(o, reversed).dump() == first);
  CHECK(train_bpe(o, texts).dump() == first);
}

TEST_CASE("bpe trainer: the committed tokenizer.json is what the trainer writes") {
  CHECK(train_bpe(committed_options(), corpus_texts()).dump() ==
        read_bytes(data_dir / "tokenizer.json"));
}

TEST_CASE("bpe trainer: the trained tokenizer encodes like the tokenizers library") {
  std::ifstream in(data_dir / "fixture.json");
  REQUIRE(in);
  const json fixture = json::parse(in);
  const Tokenizer t = Tokenizer::from_file(data_dir / "tokenizer.json");
  CHECK(t.vocab_size() == fixture.at("vocab_size").get<std::size_t>());
  const json& cases = fixture.at("cases");
  REQUIRE(cases.size() > 300);
  std::size_t ids_compared = 0;
  for (const json& c : cases) {
    std::string text;
    if (c.contains("hex")) {
      const std::string hex = c.at("hex");
      for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
        text += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
    } else {
      text = c.at("text").get<std::string>();
    }
    INFO(c.dump().substr(0, 300));
    const auto ids = t.encode(text);
    REQUIRE(ids == c.at("ids").get<std::vector<std::int32_t>>());
    CHECK(t.decode(ids) == c.at("decoded").get<std::string>());
    CHECK(t.decode(ids, true) == c.at("decoded_skip").get<std::string>());
    ids_compared += ids.size();
  }
  CHECK(ids_compared > 5000);
}

TEST_CASE("bpe trainer: special tokens are cut out of the text and never learned") {
  BpeTrainerOptions o;
  o.vocab_size = 300;
  // "ĠĠ" is the byte-level text of two spaces: the merge of two spaces must be skipped.
  o.special_tokens = {"<s>", "<s>>", "\xC4\xA0\xC4\xA0"};
  const std::vector<std::string> texts = {"a    \nb    \nc   \ne<s>>f<s>g<s>>>",
                                          "x   \ny  \n<s><s><s>"};
  check_against_naive(o, texts);
  BpeTrainer t(o);
  for (const auto& s : texts) t.add_text(s);
  CHECK(!t.word_counts().contains(">f"));  // "<s>>" beats "<s>" (leftmost, then longest)
  CHECK(t.word_counts().contains(">"));    // "<s>>>" is "<s>>" then ">"
  CHECK(t.word_counts().at("\xC4\xA0\xC4\xA0\xC4\xA0\xC4\xA0\xC4\x8A") == 2);  // "    \n"
  const TrainedBpe bpe = t.train();
  CHECK(std::count(bpe.tokens.begin(), bpe.tokens.end(), "\xC4\xA0\xC4\xA0") == 1);
  CHECK(std::find(bpe.merges.begin(), bpe.merges.end(),
                  std::pair<std::int32_t, std::int32_t>{32, 32}) == bpe.merges.end());
  CHECK(bpe.merges.size() > 3);
  const Tokenizer tok = Tokenizer::from_json(bpe.dump());
  CHECK(tok.vocab_size() == bpe.tokens.size());
  CHECK(tok.encode("\xC4\xA0\xC4\xA0") ==
        std::vector<std::int32_t>{*tok.token_to_id("\xC4\xA0\xC4\xA0")});
  CHECK(tok.decode(tok.encode("p    \nq")) == "p    \nq");
}

TEST_CASE("bpe trainer: a corpus with fewer pairs than asked for stops with a smaller vocabulary") {
  BpeTrainerOptions o;
  o.vocab_size = 1000;
  o.special_tokens = {"<|endoftext|>"};
  const TrainedBpe bpe = train_bpe(o, {"abab abab"});
  CHECK(bpe.merges.size() < 10);
  CHECK(bpe.tokens.size() == 256 + bpe.merges.size() + 1);
  CHECK(bpe.tokens.back() == "<|endoftext|>");
  const Tokenizer t = Tokenizer::from_json(bpe.dump());
  CHECK(t.encode("abab").size() == 1);
  // exactly 256 + specials: no merges at all
  o.vocab_size = 257;
  CHECK(train_bpe(o, {"abab abab"}).merges.empty());
}

TEST_CASE("bpe trainer: bad options are errors naming the problem") {
  BpeTrainerOptions o;
  o.special_tokens = {"<|endoftext|>", "<|pad|>"};
  o.vocab_size = 257;
  CHECK_THAT(error_of(o), Catch::Contains("vocab size 257") && Catch::Contains("2 special"));
  o.vocab_size = 100'000'000;
  CHECK_THAT(error_of(o), Catch::Contains("above the limit"));
  o.vocab_size = 1000;
  o.special_tokens = {"<a>", ""};
  CHECK_THAT(error_of(o), Catch::Contains("empty"));
  o.special_tokens = {"<a>", "<a>"};
  CHECK_THAT(error_of(o), Catch::Contains("given twice"));
  o.special_tokens = {"\xff<a>"};
  CHECK_THAT(error_of(o), Catch::Contains("not valid UTF-8"));
  o.special_tokens = {"\xC4\xA0"};  // the byte-level symbol of a space
  CHECK_THAT(error_of(o), Catch::Contains("byte-level alphabet"));
  o.special_tokens = {};
  o.pattern = "(unclosed";
  CHECK_THROWS_AS(BpeTrainer(o), ConfigError);
  CHECK_THAT(error_of(o), Catch::Contains("invalid regex"));
}
