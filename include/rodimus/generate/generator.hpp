// Streaming text generation: prefill a prompt, then sample and decode one token at a time,
// handing each token and its text to a callback, until EOS, a stop string, a limit or the caller
// says stop.
#pragma once

#include <Kokkos_Core.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rodimus/core/error.hpp"
#include "rodimus/generate/sampler.hpp"
#include "rodimus/generate/stop_strings.hpp"
#include "rodimus/io/tokenizer.hpp"
#include "rodimus/model/model.hpp"

namespace rodimus {

/// What ended a generate() call.
enum class FinishReason : std::uint8_t {
  Length,      ///< max_new_tokens tokens were generated
  Eos,         ///< an end-of-sequence token was sampled
  StopString,  ///< the text reached a stop string
  Callback,    ///< the token callback returned false
  Context      ///< the context limit (max_context, or a Rodimus+ KV cache) is full
};

inline const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::Length:
      return "length";
    case FinishReason::Eos:
      return "eos";
    case FinishReason::StopString:
      return "stop_string";
    case FinishReason::Callback:
      return "callback";
    case FinishReason::Context:
      return "context";
  }
  return "unknown";
}

/// Settings of one generation.
struct GenerationConfig {
  int max_new_tokens = 128;                 ///< tokens to sample at most (>= 0)
  SamplerConfig sampler;                    ///< greedy by default
  std::vector<std::string> stops;           ///< stop strings, matched on the decoded text
  bool stop_at_eos = true;                  ///< end at an id of eos_token_ids
  std::vector<std::int32_t> eos_token_ids;  ///< empty: the model config's eos_token_ids
  std::int64_t max_context = 0;      ///< positions a sequence may reach; 0 = no limit of ours
  bool skip_special_tokens = false;  ///< leave special tokens out of the text pieces

  /// Throws ArgumentError naming the first bad setting.
  void validate() const {
    if (max_new_tokens < 0)
      throw ArgumentError("generate: max_new_tokens must be >= 0, got " +
                          std::to_string(max_new_tokens));
    if (max_context < 0)
      throw ArgumentError("generate: max_context must be >= 0, got " + std::to_string(max_context));
    sampler.validate();
    for (std::size_t i = 0; i < stops.size(); ++i)
      if (stops[i].empty())
        throw ArgumentError("generate: stop string " + std::to_string(i) + " is empty");
  }
};

/// The outcome of generate(): the sampled tokens, their text and timings.
struct GenerationResult {
  std::vector<std::int32_t> tokens;  ///< every sampled token, a final EOS included
  std::string text;                  ///< the text handed to the callback, pieces joined
  std::int64_t prompt_tokens = 0;    ///< tokens of the prompt
  std::int64_t decode_steps = 0;     ///< decode calls (tokens fed after the prompt)
  double prefill_seconds = 0.0;      ///< prompt forward pass and its logits
  double decode_seconds = 0.0;       ///< sampling and decode steps after the first token
  FinishReason finish_reason = FinishReason::Length;

  std::int64_t generated_tokens() const { return static_cast<std::int64_t>(tokens.size()); }
  double prefill_tokens_per_second() const {
    return prefill_seconds > 0.0 ? double(prompt_tokens) / prefill_seconds : 0.0;
  }
  double decode_tokens_per_second() const {
    return decode_seconds > 0.0 ? double(decode_steps) / decode_seconds : 0.0;
  }
};

/// Called once per sampled token with its id and the text it completes (possibly empty: a
/// multi-byte character or a possible stop string may be held back to a later token). Return
/// false to stop. The pieces joined equal the decoded tokens, a final EOS left out and the text
/// from a stop string on cut off.
using TokenCallback = std::function<bool(std::int32_t id, std::string_view piece)>;

/// Generates text with one model for one conversation at a time, on slot 0 of a caller-owned
/// State. Ids below the model's vocab_size that the tokenizer has no token for (padding of the
/// embedding matrix) are never sampled. The random stream of the sampler continues across calls
/// (one seed, one stream), so a chat of several generate() calls is reproducible. Not thread-safe;
/// use one per thread.
template <ExecutionSpace Space, StorageType W = float, ModelPolicy Policy = DefaultModelPolicy>
class Generator {
 public:
  using model_type = Model<Space, W, Policy>;

  /// Throws ArgumentError for an invalid `cfg`. `model` must outlive the generator.
  Generator(const Model<Space, W, Policy>& model, io::Tokenizer tokenizer, GenerationConfig cfg)
      : model_(&model),
        tokenizer_(std::move(tokenizer)),
        cfg_(std::move(cfg)),
        sampler_((cfg_.validate(), cfg_.sampler)),
        host_("rodimus::generate::logits", model.config().vocab_size) {
    if (cfg_.eos_token_ids.empty())
      for (const int id : model.config().eos_token_ids) cfg_.eos_token_ids.push_back(id);
    // A model's vocabulary is often padded beyond the tokenizer's: ids without a token are
    // never sampled.
    for (std::int32_t id = 0; id < model.config().vocab_size; ++id)
      if (!tokenizer_.id_to_token(id)) no_token_.push_back(id);
  }

  const GenerationConfig& config() const { return cfg_; }
  const io::Tokenizer& tokenizer() const { return tokenizer_; }
  Workspace<Space>& workspace() { return ws_; }

  /// Positions slot 0 of `state` may reach: max_context, and for Rodimus+ without a window the
  /// KV cache rows.
  std::int64_t context_limit(const State<Space>& state) const {
    std::int64_t limit =
        cfg_.max_context > 0 ? cfg_.max_context : std::numeric_limits<std::int32_t>::max();
    const auto& mc = model_->config();
    if (mc.is_plus() && mc.window_back() < 0)
      limit = std::min<std::int64_t>(limit, state.kv_rows());
    return limit;
  }

  /// Feeds `prompt` to slot 0 of `state` (from where it stands), then samples up to
  /// max_new_tokens tokens, feeding each but the last back into the state. On return the state
  /// has consumed the prompt and every token of `tokens` except the last one.
  /// `context` lists earlier tokens the state already holds; the repetition penalty counts them
  /// with the prompt and the new tokens. Throws ArgumentError for an empty prompt, ids outside
  /// the vocabulary, or a prompt that does not fit the context limit.
  GenerationResult generate(State<Space>& state, std::span<const std::int32_t> prompt,
                            const TokenCallback& on_token = {},
                            std::span<const std::int32_t> context = {}) {
    using clock = std::chrono::steady_clock;
    if (prompt.empty()) throw ArgumentError("generate: the prompt is empty");
    if (state.slots() < 1) throw ArgumentError("generate: the state has no slot");
    const std::int64_t limit = context_limit(state);
    const std::int64_t start = state.position(0);
    if (start + std::int64_t(prompt.size()) > limit)
      throw ArgumentError("generate: a prompt of " + std::to_string(prompt.size()) +
                          " tokens after " + std::to_string(start) +
                          " earlier ones exceeds the context limit of " + std::to_string(limit) +
                          " tokens");
    GenerationResult res;
    res.prompt_tokens = static_cast<std::int64_t>(prompt.size());
    res.tokens.reserve(static_cast<std::size_t>(cfg_.max_new_tokens));
    sampler_.clear_history();
    sampler_.observe(context);
    sampler_.observe(prompt);
    io::StreamDecoder decoder = tokenizer_.stream_decoder(cfg_.skip_special_tokens);
    StopStrings stops(cfg_.stops);

    const auto t0 = clock::now();
    auto logits = model_->prefill(state, ws_, TokenBatch::single(prompt));  // [1, V]
    const float* row = host_row(logits);
    const auto t1 = clock::now();
    res.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();
    res.finish_reason = FinishReason::Length;

    std::string piece;
    for (int i = 0; i < cfg_.max_new_tokens; ++i) {
      if (i > 0) {
        const std::int32_t next[1] = {res.tokens.back()};
        logits = model_->decode(state, ws_, next);
        row = host_row(logits);
        ++res.decode_steps;
      }
      const std::int32_t id = sampler_.sample(std::span<const float>(row, host_.extent(0)));
      res.tokens.push_back(id);
      sampler_.observe(id);
      const bool eos = cfg_.stop_at_eos && is_eos(id);
      // the last token: no room for another, or the state cannot take this one
      const bool full = state.position(0) + 1 > limit;
      const bool last = eos || full || i + 1 == cfg_.max_new_tokens;
      // an EOS adds no text of its own; the last token releases everything held back
      std::string text = eos ? decoder.flush() : decoder.step(id);
      if (last && !eos) text += decoder.flush();
      const bool stopped = stops.push(text, piece);
      if (last && !stopped) piece += stops.flush();
      res.text += piece;
      const bool go_on = !on_token || on_token(id, piece);
      if (eos) {
        res.finish_reason = FinishReason::Eos;
      } else if (stopped) {
        res.finish_reason = FinishReason::StopString;
      } else if (!go_on) {
        res.finish_reason = FinishReason::Callback;
      } else if (full && i + 1 < cfg_.max_new_tokens) {
        res.finish_reason = FinishReason::Context;
      }
      if (last || stopped || !go_on) break;
    }
    res.decode_seconds = std::chrono::duration<double>(clock::now() - t1).count();
    return res;
  }

 private:
  bool is_eos(std::int32_t id) const {
    return std::find(cfg_.eos_token_ids.begin(), cfg_.eos_token_ids.end(), id) !=
           cfg_.eos_token_ids.end();
  }

  /// Row 0 of `logits` [B, V] on the host, ids without a token at -inf.
  const float* host_row(const View2<const float, Space>& logits) {
    Kokkos::deep_copy(host_, Kokkos::subview(logits, 0, Kokkos::ALL));
    for (const std::int32_t id : no_token_) host_(id) = -std::numeric_limits<float>::infinity();
    return host_.data();
  }

  const model_type* model_;
  io::Tokenizer tokenizer_;
  GenerationConfig cfg_;
  Sampler sampler_;
  std::vector<std::int32_t> no_token_;            // ids the tokenizer has no token for
  Kokkos::View<float*, Kokkos::HostSpace> host_;  // [V]
  Workspace<Space> ws_;
};

/// One generation with a fresh Generator (see Generator::generate).
template <ExecutionSpace Space, StorageType W, ModelPolicy Policy>
GenerationResult generate(const Model<Space, W, Policy>& model, const io::Tokenizer& tokenizer,
                          State<Space>& state, std::span<const std::int32_t> prompt,
                          const GenerationConfig& cfg, const TokenCallback& on_token = {}) {
  Generator<Space, W, Policy> g(model, tokenizer, cfg);
  return g.generate(state, prompt, on_token);
}

}  // namespace rodimus
