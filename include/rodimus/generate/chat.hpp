// Multi-turn chat in the Rodimus chat format, keeping the recurrent state between turns so each
// turn reads only its own new tokens.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rodimus/generate/generator.hpp"

namespace rodimus {

/// The text around the messages of a chat. The default is the Rodimus chat format of the
/// authors' release (`fla.models.rodimus.chat_format.Chat`, name "rodimus_chat"):
///
///     <role>SYSTEM</role>{system}<role>HUMAN</role>{user}<role>ASSISTANT</role>{answer}
///     <role>HUMAN</role>{user}<role>ASSISTANT</role>...
///
/// (one line in reality), the system part only when there is a system message, and nothing
/// after an answer: the model ends it with an EOS token, which is not part of the transcript.
struct ChatTemplate {
  std::string system_prefix = "<role>SYSTEM</role>";
  std::string human_prefix = "<role>HUMAN</role>";
  std::string assistant_prefix = "<role>ASSISTANT</role>";

  /// The text of a turn: the system message on the first turn (when not empty), the user's
  /// message, then the assistant prefix the answer follows.
  std::string turn(std::string_view user, std::string_view system = {}, bool first = false) const {
    std::string text;
    if (first && !system.empty()) text.append(system_prefix).append(system);
    text.append(human_prefix).append(user).append(assistant_prefix);
    return text;
  }
};

/// A conversation with one model: each reply() feeds only the new turn to a state that holds
/// the conversation so far, then generates the answer. The state owns a whole sequence, so
/// for Rodimus+ without a window the conversation may grow to `max_context` tokens (0: the
/// config's max_position_embeddings).
template <ExecutionSpace Space, StorageType W = float, ModelPolicy Policy = DefaultModelPolicy>
class Chat {
 public:
  /// `cfg.max_new_tokens` bounds each answer. The model must outlive the chat.
  Chat(const Model<Space, W, Policy>& model, io::Tokenizer tokenizer, GenerationConfig cfg,
       std::string system = {}, int max_context = 0, ChatTemplate format = {})
      : generator_(model, std::move(tokenizer), std::move(cfg)),
        state_(model.make_state(1, max_context)),
        system_(std::move(system)),
        format_(std::move(format)) {}

  /// Adds the user's message, generates the answer (streamed through `on_token`) and returns
  /// it. An answer ends at EOS, a stop string, max_new_tokens, the callback or a full context.
  GenerationResult reply(std::string_view user, const TokenCallback& on_token = {}) {
    prompt_.clear();
    // The last answer's final token was sampled but never fed; unless it was the EOS that ends
    // a turn, it belongs to the transcript and goes first.
    if (pending_) prompt_.push_back(*pending_);
    const auto turn = generator_.tokenizer().encode(format_.turn(user, system_, first_));
    prompt_.insert(prompt_.end(), turn.begin(), turn.end());
    GenerationResult r = generator_.generate(state_, prompt_, on_token, transcript_);
    first_ = false;
    transcript_.insert(transcript_.end(), prompt_.begin(), prompt_.end());
    pending_.reset();
    if (!r.tokens.empty()) {
      transcript_.insert(transcript_.end(), r.tokens.begin(), r.tokens.end() - 1);
      if (r.finish_reason != FinishReason::Eos) pending_ = r.tokens.back();
    }
    return r;
  }

  /// Every token the state has consumed, in order: the transcript so far.
  const std::vector<std::int32_t>& transcript() const { return transcript_; }
  /// The ids the last reply() fed before generating (its turn, after a pending token).
  const std::vector<std::int32_t>& last_prompt() const { return prompt_; }
  /// The last answer's final token when it was not EOS: it opens the next turn.
  std::optional<std::int32_t> pending_token() const { return pending_; }

  const State<Space>& state() const { return state_; }
  Generator<Space, W, Policy>& generator() { return generator_; }

  /// Starts a new conversation (same system message); the random stream goes on.
  void reset() {
    state_.reset();
    transcript_.clear();
    prompt_.clear();
    pending_.reset();
    first_ = true;
  }

 private:
  Generator<Space, W, Policy> generator_;
  State<Space> state_;
  std::string system_;
  ChatTemplate format_;
  std::vector<std::int32_t> transcript_;
  std::vector<std::int32_t> prompt_;
  std::optional<std::int32_t> pending_;
  bool first_ = true;
};

}  // namespace rodimus
