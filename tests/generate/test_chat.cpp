// Chat: the Rodimus chat format, and a state carried across turns that gives the same answers
// as reading the whole transcript from scratch.
#include <algorithm>
#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <vector>

#include "rodimus/generate/chat.hpp"
#include "text_model.hpp"

using namespace rodimus;
using test::Host;
using test::TextModel;

namespace {

std::string random_message(std::mt19937_64& rng) {
  static const std::vector<std::string> words = {
      "hello", "what", "is", "the",   "caf\xc3\xa9",  "model", "?",
      "tell",  "me",   "a",  "story", "\xe2\x82\xac", "123",   "WORD"};
  std::string s;
  const int n = 1 + int(rng() % 6);
  for (int i = 0; i < n; ++i) s += (i ? " " : "") + words[rng() % words.size()];
  return s;
}

}  // namespace

TEST_CASE("ChatTemplate: the Rodimus chat format", "[chat]") {
  const ChatTemplate t;
  REQUIRE(t.turn("Hi", "Be brief.", true) ==
          "<role>SYSTEM</role>Be brief.<role>HUMAN</role>Hi<role>ASSISTANT</role>");
  REQUIRE(t.turn("Hi", "", true) == "<role>HUMAN</role>Hi<role>ASSISTANT</role>");
  REQUIRE(t.turn("Again", "Be brief.", false) == "<role>HUMAN</role>Again<role>ASSISTANT</role>");
  // the role markers are single special tokens of the test tokenizer
  const auto tok = test::text_tokenizer();
  const auto ids = tok.encode("<role>HUMAN</role>");
  REQUIRE(ids.front() == *tok.token_to_id("<role>"));
  REQUIRE(ids.back() == *tok.token_to_id("</role>"));
}

TEST_CASE("Chat: answers with the carried state equal a from-scratch run on the transcript",
          "[chat]") {
  const std::uint64_t seed = std::random_device{}();
  CAPTURE(seed);
  std::mt19937_64 rng(seed);
  const auto tok = test::text_tokenizer();
  struct Case {
    bool plus;
    int window;
  };
  for (const Case c : {Case{false, 0}, Case{true, 0}, Case{true, 10}}) {
    CAPTURE(c.plus, c.window);
    const TextModel m = test::make_text_model(c.plus, rng(), c.window);
    const std::string system = "You are terse.";
    std::vector<std::string> turns;
    for (int i = 0; i < 4; ++i) turns.push_back(random_message(rng));
    GenerationConfig cfg;
    cfg.max_new_tokens = 8;
    cfg.sampler.repetition_penalty = 1.2;  // greedy, penalising the whole transcript
    cfg.eos_token_ids = {test::text_eos};

    // A first run finds a token of the second answer that the first lacks: as EOS it ends the
    // second answer early and leaves the first as it was.
    std::vector<std::vector<std::int32_t>> probe;
    {
      GenerationConfig free = cfg;
      free.stop_at_eos = false;
      Chat<Host> chat(m, tok, free, system, 256);
      for (const auto& t : turns) probe.push_back(chat.reply(t).tokens);
    }
    std::int32_t eos = -1;
    for (const auto id : probe[1])
      if (std::find(probe[0].begin(), probe[0].end(), id) == probe[0].end()) {
        eos = id;
        break;
      }
    REQUIRE(eos >= 0);
    cfg.eos_token_ids = {eos};

    Chat<Host> chat(m, tok, cfg, system, 256);
    const ChatTemplate format;
    std::optional<std::int32_t> pending;
    int eos_turns = 0, length_turns = 0;
    for (std::size_t k = 0; k < turns.size(); ++k) {
      CAPTURE(k, turns[k]);
      const std::vector<std::int32_t> before = chat.transcript();
      std::string streamed;
      const auto r = chat.reply(turns[k], [&](std::int32_t, std::string_view piece) {
        streamed += piece;
        return true;
      });
      // the turn's prompt: the previous answer's unfed last token, then the formatted message
      std::vector<std::int32_t> want_prompt;
      if (pending) want_prompt.push_back(*pending);
      const auto turn_ids = tok.encode(format.turn(turns[k], system, k == 0));
      want_prompt.insert(want_prompt.end(), turn_ids.begin(), turn_ids.end());
      REQUIRE(chat.last_prompt() == want_prompt);
      REQUIRE(streamed == r.text);

      // from scratch: a fresh state reads transcript + this turn in one prefill
      std::vector<std::int32_t> full = before;
      full.insert(full.end(), want_prompt.begin(), want_prompt.end());
      auto fresh = m.make_state(1, 256);
      Generator<Host> gen(m, tok, cfg);
      const auto ref = gen.generate(fresh, full);
      REQUIRE(r.tokens == ref.tokens);
      REQUIRE(r.finish_reason == ref.finish_reason);
      REQUIRE(r.text == ref.text);

      // the state holds exactly the transcript
      REQUIRE(chat.state().position(0) == std::int64_t(chat.transcript().size()));
      REQUIRE(std::int64_t(chat.transcript().size()) ==
              std::int64_t(full.size()) + r.generated_tokens() - 1);
      pending = r.finish_reason == FinishReason::Eos ? std::nullopt
                                                     : std::optional<std::int32_t>(r.tokens.back());
      REQUIRE(chat.pending_token() == pending);
      eos_turns += r.finish_reason == FinishReason::Eos;
      length_turns += r.finish_reason == FinishReason::Length;
    }
    REQUIRE(eos_turns >= 1);
    REQUIRE(length_turns >= 1);

    // reset starts a new conversation
    chat.reset();
    REQUIRE(chat.transcript().empty());
    REQUIRE(chat.state().position(0) == 0);
    const auto again = chat.reply(turns[0]);
    REQUIRE(again.tokens.size() >= 1);
  }
}
