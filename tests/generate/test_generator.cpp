// The streaming generator on small random-weight models with the test tokenizer: greedy ids
// against a hand-written loop, streamed pieces against decode(), EOS, stop strings, callbacks,
// context limits, seeds and argument errors.
#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <vector>

#include "rodimus/generate/generator.hpp"
#include "text_model.hpp"

using namespace rodimus;
using test::Host;
using test::TextModel;

namespace {

std::uint64_t test_seed() {
  static const std::uint64_t s = std::random_device{}();
  return s;
}

std::vector<std::int32_t> random_prompt(std::mt19937_64& rng, int n, int vocab) {
  std::vector<std::int32_t> ids(static_cast<std::size_t>(n));
  for (auto& t : ids) t = static_cast<std::int32_t>(rng() % std::uint64_t(vocab));
  return ids;
}

// Greedy decoding by hand: prefill, argmax over the ids the tokenizer has (0..709), decode.
std::vector<std::int32_t> greedy_by_hand(const TextModel& m, std::span<const std::int32_t> prompt,
                                         int n, int tokenizer_vocab) {
  auto state = m.make_state(1, 256);
  Workspace<Host> ws;
  std::vector<std::int32_t> out;
  auto logits = m.prefill(state, ws, TokenBatch::single(prompt));
  for (int i = 0; i < n; ++i) {
    int best = 0;
    for (int c = 1; c < tokenizer_vocab; ++c)
      if (logits(0, c) > logits(0, best)) best = c;
    out.push_back(best);
    const std::int32_t next[1] = {best};
    logits = m.decode(state, ws, next);
  }
  return out;
}

GenerationConfig no_eos(int n) {
  GenerationConfig g;
  g.max_new_tokens = n;
  g.stop_at_eos = false;
  return g;
}

struct Collected {
  std::vector<std::int32_t> ids;
  std::vector<std::string> pieces;
  TokenCallback callback() {
    return [this](std::int32_t id, std::string_view piece) {
      ids.push_back(id);
      pieces.emplace_back(piece);
      return true;
    };
  }
  std::string joined() const {
    std::string s;
    for (const auto& p : pieces) s += p;
    return s;
  }
};

}  // namespace

TEST_CASE("Generator: greedy ids equal prefill + argmax + decode; pieces join to decode(ids)",
          "[generate]") {
  CAPTURE(test_seed());
  std::mt19937_64 rng(test_seed());
  const auto tok = test::text_tokenizer();
  for (const bool plus : {false, true}) {
    CAPTURE(plus);
    const TextModel m = test::make_text_model(plus, rng());
    const auto prompt = random_prompt(rng, 5 + int(rng() % 20), int(tok.vocab_size()));
    const int n = 24;
    auto state = m.make_state(1, 256);
    Collected got;
    Generator<Host> gen(m, tok, no_eos(n));
    const auto r = gen.generate(state, prompt, got.callback());
    REQUIRE(r.tokens == greedy_by_hand(m, prompt, n, int(tok.vocab_size())));
    REQUIRE(got.ids == r.tokens);
    REQUIRE(got.joined() == tok.decode(r.tokens));
    REQUIRE(r.text == got.joined());
    REQUIRE(r.finish_reason == FinishReason::Length);
    REQUIRE(r.prompt_tokens == std::int64_t(prompt.size()));
    REQUIRE(r.generated_tokens() == n);
    REQUIRE(r.decode_steps == n - 1);
    REQUIRE(r.prefill_seconds > 0.0);
    REQUIRE(r.decode_seconds > 0.0);
    // the state holds the prompt and every token but the last
    REQUIRE(state.position(0) == std::int64_t(prompt.size()) + n - 1);
  }
}

TEST_CASE("Generator: streamed pieces are whole UTF-8 characters, also when tokens split them",
          "[generate]") {
  CAPTURE(test_seed());
  std::mt19937_64 rng(test_seed());
  const auto tok = test::text_tokenizer();
  const TextModel m = test::make_text_model(false, 11);
  GenerationConfig cfg = no_eos(1500);
  cfg.sampler.temperature = 8.0;  // nearly uniform over the vocabulary: many byte tokens
  cfg.sampler.seed = 5;           // fixed: the split below happens for this stream
  auto state = m.make_state(1);
  Collected got;
  Generator<Host> gen(m, tok, cfg);
  const auto r = gen.generate(state, random_prompt(rng, 8, 700), got.callback());
  REQUIRE(got.joined() == tok.decode(r.tokens));
  // ids 710..719 of the model have no token and are never drawn
  for (const auto id : r.tokens) REQUIRE(id < std::int32_t(tok.vocab_size()));
  int split = 0;  // tokens whose piece is empty while a later piece completes a character
  for (std::size_t i = 0; i + 1 < got.pieces.size(); ++i) {
    const auto& p = got.pieces[i];
    const auto text = tok.decode(std::span<const std::int32_t>(&r.tokens[i], 1));
    const std::string& next = got.pieces[i + 1];
    if (p.empty() && !text.empty() && !next.empty() &&
        static_cast<unsigned char>(next[0]) >= 0xc0 &&
        next.rfind("\xef\xbf\xbd", 0) != 0)  // a real character, not U+FFFD
      ++split;
    // every piece is valid UTF-8 on its own: it never ends inside a character
    for (std::size_t b = 0; b < p.size();) {
      const auto c = static_cast<unsigned char>(p[b]);
      const std::size_t len = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
      REQUIRE((c < 0x80 || c >= 0xc2));
      REQUIRE(b + len <= p.size());
      for (std::size_t k = 1; k < len; ++k)
        REQUIRE((static_cast<unsigned char>(p[b + k]) & 0xc0) == 0x80);
      b += len;
    }
  }
  REQUIRE(split > 0);
}

TEST_CASE("Generator: EOS ends generation and adds no text", "[generate]") {
  CAPTURE(test_seed());
  std::mt19937_64 rng(test_seed());
  const auto tok = test::text_tokenizer();
  const TextModel m = test::make_text_model(true, rng(), 10);
  const auto prompt = random_prompt(rng, 12, 700);
  const int n = 16;
  auto s0 = m.make_state(1);
  const auto free_run = Generator<Host>(m, tok, no_eos(n)).generate(s0, prompt);
  const std::int32_t eos = free_run.tokens[5];
  const auto first = std::find(free_run.tokens.begin(), free_run.tokens.end(), eos);
  const std::vector<std::int32_t> want(free_run.tokens.begin(), first + 1);

  GenerationConfig cfg;
  cfg.max_new_tokens = n;
  cfg.eos_token_ids = {eos};
  auto s1 = m.make_state(1);
  Collected got;
  const auto r = Generator<Host>(m, tok, cfg).generate(s1, prompt, got.callback());
  REQUIRE(r.tokens == want);
  REQUIRE(r.finish_reason == FinishReason::Eos);
  REQUIRE(got.ids == want);
  const std::vector<std::int32_t> before(want.begin(), want.end() - 1);
  REQUIRE(got.joined() == tok.decode(before));

  // with no eos_token_ids given, the model config's (the tokenizer's <|endoftext|>) apply
  Generator<Host> defaults(m, tok, GenerationConfig{});
  REQUIRE(defaults.config().eos_token_ids == std::vector<std::int32_t>{test::text_eos});
}

TEST_CASE("Generator: a stop string split across tokens stops generation and is not emitted",
          "[generate]") {
  CAPTURE(test_seed());
  std::mt19937_64 rng(test_seed());
  const auto tok = test::text_tokenizer();
  const TextModel m = test::make_text_model(false, rng());
  const auto prompt = random_prompt(rng, 10, 700);
  const int n = 40;
  auto s0 = m.make_state(1);
  Collected free;
  const auto ref = Generator<Host>(m, tok, no_eos(n)).generate(s0, prompt, free.callback());
  // streamed text after each token
  std::vector<std::size_t> end_of(free.pieces.size());
  std::size_t len = 0;
  for (std::size_t i = 0; i < free.pieces.size(); ++i) end_of[i] = len += free.pieces[i].size();
  // a stop string from the last byte of one non-empty piece through the first of the next
  std::size_t k = 0;
  for (std::size_t i = 3; i + 1 < free.pieces.size(); ++i) {
    if (!free.pieces[i].empty() && !free.pieces[i + 1].empty() &&
        static_cast<unsigned char>(free.pieces[i].back()) < 0x80 &&
        static_cast<unsigned char>(free.pieces[i + 1][0]) < 0x80) {
      k = i;
      break;
    }
  }
  REQUIRE(k > 0);
  const std::string text = free.joined();
  const std::string stop = text.substr(end_of[k] - 1, 2);
  const std::size_t at = text.find(stop);
  // the token whose text completes the first occurrence
  std::size_t last = 0;
  while (end_of[last] < at + stop.size()) ++last;

  GenerationConfig cfg = no_eos(n);
  cfg.stops = {"never in this text \x01", stop};
  auto s1 = m.make_state(1);
  Collected got;
  const auto r = Generator<Host>(m, tok, cfg).generate(s1, prompt, got.callback());
  CAPTURE(text, stop);
  REQUIRE(r.finish_reason == FinishReason::StopString);
  REQUIRE(got.joined() == text.substr(0, at));
  REQUIRE(r.tokens == std::vector<std::int32_t>(ref.tokens.begin(), ref.tokens.begin() + last + 1));
}

TEST_CASE("Generator: the callback stops; max_new_tokens 0 only reads the prompt", "[generate]") {
  CAPTURE(test_seed());
  std::mt19937_64 rng(test_seed());
  const auto tok = test::text_tokenizer();
  const TextModel m = test::make_text_model(false, rng());
  const auto prompt = random_prompt(rng, 7, 700);
  auto state = m.make_state(1);
  Generator<Host> gen(m, tok, no_eos(50));
  int calls = 0;
  const auto r =
      gen.generate(state, prompt, [&](std::int32_t, std::string_view) { return ++calls < 3; });
  REQUIRE(calls == 3);
  REQUIRE(r.tokens.size() == 3);
  REQUIRE(r.finish_reason == FinishReason::Callback);
  REQUIRE(state.position(0) == 7 + 2);

  auto fresh = m.make_state(1);
  const auto none = Generator<Host>(m, tok, no_eos(0)).generate(fresh, prompt);
  REQUIRE(none.tokens.empty());
  REQUIRE(fresh.position(0) == 7);
}

TEST_CASE("Generator: context limits of unwindowed Rodimus+ and max_context", "[generate]") {
  CAPTURE(test_seed());
  std::mt19937_64 rng(test_seed());
  const auto tok = test::text_tokenizer();
  const TextModel plus = test::make_text_model(true, rng(), 0);
  auto state = plus.make_state(1, 20);  // KV cache of 20 positions
  Generator<Host> gen(plus, tok, no_eos(10));
  const auto r = gen.generate(state, random_prompt(rng, 15, 700));
  // tokens at positions 15..19 are fed, the one sampled at position 20 ends it
  REQUIRE(r.tokens.size() == 6);
  REQUIRE(r.finish_reason == FinishReason::Context);
  REQUIRE(state.position(0) == 20);
  auto other = plus.make_state(1, 20);
  REQUIRE_THROWS_WITH(gen.generate(other, random_prompt(rng, 21, 700)),
                      Catch::Contains("exceeds the context limit of 20"));

  const TextModel rec = test::make_text_model(false, rng());
  GenerationConfig cfg = no_eos(10);
  cfg.max_context = 12;
  Generator<Host> capped(rec, tok, cfg);
  auto s = rec.make_state(1);
  const auto rc = capped.generate(s, random_prompt(rng, 10, 700));
  REQUIRE(rc.tokens.size() == 3);
  REQUIRE(rc.finish_reason == FinishReason::Context);
  // a limit that is reached exactly by max_new_tokens is a normal end
  cfg.max_new_tokens = 3;
  auto s2 = rec.make_state(1);
  REQUIRE(Generator<Host>(rec, tok, cfg).generate(s2, random_prompt(rng, 10, 700)).finish_reason ==
          FinishReason::Length);
}

TEST_CASE("Generator: a seed reproduces sampled text; bad input is an ArgumentError",
          "[generate]") {
  CAPTURE(test_seed());
  std::mt19937_64 rng(test_seed());
  const auto tok = test::text_tokenizer();
  const TextModel m = test::make_text_model(true, rng(), 10);
  const auto prompt = random_prompt(rng, 9, 700);
  GenerationConfig cfg = no_eos(30);
  cfg.sampler.temperature = 1.2;
  cfg.sampler.top_p = 0.9;
  cfg.sampler.top_k = 100;
  cfg.sampler.seed = rng();
  auto s1 = m.make_state(1), s2 = m.make_state(1), s3 = m.make_state(1);
  const auto a = Generator<Host>(m, tok, cfg).generate(s1, prompt);
  const auto b = Generator<Host>(m, tok, cfg).generate(s2, prompt);
  cfg.sampler.seed += 1;
  const auto c = Generator<Host>(m, tok, cfg).generate(s3, prompt);
  REQUIRE(a.tokens == b.tokens);
  REQUIRE(a.text == b.text);
  REQUIRE(a.tokens != c.tokens);

  auto s = m.make_state(1);
  Generator<Host> gen(m, tok, no_eos(4));
  REQUIRE_THROWS_WITH(gen.generate(s, std::vector<std::int32_t>{}), Catch::Contains("empty"));
  REQUIRE_THROWS_WITH(gen.generate(s, std::vector<std::int32_t>{3, test::text_vocab}),
                      Catch::Contains("outside the vocabulary"));
  GenerationConfig bad = no_eos(-1);
  REQUIRE_THROWS_WITH(Generator<Host>(m, tok, bad), Catch::Contains("max_new_tokens"));
  bad = no_eos(4);
  bad.sampler.top_p = 0;
  REQUIRE_THROWS_WITH(Generator<Host>(m, tok, bad), Catch::Contains("top_p"));
  bad = no_eos(4);
  bad.stops = {""};
  REQUIRE_THROWS_WITH(Generator<Host>(m, tok, bad), Catch::Contains("stop string 0 is empty"));
}
