// Byte-level BPE training: word counts over pre-tokenized text, merges learned by pair frequency
// with incremental pair counts and a lazy priority queue, written as a complete tokenizer.json.
#pragma once

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "rodimus/core/error.hpp"
#include "rodimus/io/config_json.hpp"
#include "rodimus/io/tokenizer/bpe.hpp"
#include "rodimus/io/tokenizer/byte_level.hpp"
#include "rodimus/io/tokenizer/json_util.hpp"
#include "rodimus/io/tokenizer/pipeline.hpp"
#include "rodimus/io/tokenizer/utf8.hpp"

namespace rodimus::io {

/// The pre-tokenizer pattern of Llama 3 and cl100k: letters keep one leading non-letter
/// (` foo`, `.foo`, `(foo`), digits go in groups of at most three, punctuation runs keep the
/// newlines after them, and whitespace before a newline stays with the newline. It suits code.
inline constexpr std::string_view code_pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

/// GPT-2's pattern (detail::gpt2_pattern): ` ?letters`, ` ?digits`, ` ?punctuation`, spaces.
inline constexpr std::string_view gpt2_pattern = detail::gpt2_pattern;

/// What BpeTrainer learns and writes.
struct BpeTrainerOptions {
  /// Tokens in all: the 256 byte symbols, the merged tokens and the special tokens.
  std::size_t vocab_size = 8192;
  /// A pair seen fewer times than this (summed over the corpus) is never merged; 0 and 1 alike
  /// allow every pair seen at least once.
  std::uint64_t min_frequency = 0;
  /// Special tokens, e.g. "<|endoftext|>": matched in text before pre-tokenization, never
  /// learned from, and given the last ids in this order.
  std::vector<std::string> special_tokens;
  /// The regex of the Split pre-tokenizer (PCRE2 / Oniguruma syntax), run before ByteLevel.
  std::string pattern = std::string(code_pattern);
};

/// A learned byte-level BPE: what a tokenizer.json holds.
struct TrainedBpe {
  /// Token strings by id, in the ByteLevel alphabet: ids 0..255 are the byte symbols in byte
  /// order (id b stands for byte b), then the merged tokens in the order learned, then the
  /// special tokens (as written, not mapped).
  std::vector<std::string> tokens;
  /// Merges by rank: the ids of the left and the right token.
  std::vector<std::pair<std::int32_t, std::int32_t>> merges;
  std::size_t special_count = 0;  ///< the last special_count tokens are the special tokens
  std::string pattern;            ///< the Split pre-tokenizer's regex

  /// The tokenizer.json object: BPE model, Split + ByteLevel pre-tokenizer, ByteLevel decoder,
  /// special tokens as added tokens, no normalizer and no post-processor.
  nlohmann::ordered_json to_json() const {
    using nlohmann::ordered_json;
    ordered_json added = ordered_json::array();
    for (std::size_t i = tokens.size() - special_count; i < tokens.size(); ++i)
      added.push_back({{"id", i},
                       {"content", tokens[i]},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", false},
                       {"special", true}});
    ordered_json vocab = ordered_json::object();
    for (std::size_t i = 0; i < tokens.size(); ++i) vocab[tokens[i]] = i;
    ordered_json merge_list = ordered_json::array();
    for (const auto& [a, b] : merges)
      merge_list.push_back(
          {tokens[static_cast<std::size_t>(a)], tokens[static_cast<std::size_t>(b)]});
    return ordered_json{{"version", "1.0"},
                        {"truncation", nullptr},
                        {"padding", nullptr},
                        {"added_tokens", std::move(added)},
                        {"normalizer", nullptr},
                        {"pre_tokenizer", pre_tokenizer_json(pattern)},
                        {"post_processor", nullptr},
                        {"decoder",
                         {{"type", "ByteLevel"},
                          {"add_prefix_space", true},
                          {"trim_offsets", true},
                          {"use_regex", true}}},
                        {"model",
                         {{"type", "BPE"},
                          {"dropout", nullptr},
                          {"unk_token", nullptr},
                          {"continuing_subword_prefix", nullptr},
                          {"end_of_word_suffix", nullptr},
                          {"fuse_unk", false},
                          {"byte_fallback", false},
                          {"ignore_merges", false},
                          {"vocab", std::move(vocab)},
                          {"merges", std::move(merge_list)}}}};
  }

  /// tokenizer.json text: one vocab entry and one merge per line, the rest compact.
  std::string dump() const {
    nlohmann::ordered_json j = to_json();
    nlohmann::ordered_json& model = j["model"];
    const nlohmann::ordered_json vocab = std::move(model["vocab"]);
    const nlohmann::ordered_json merge_list = std::move(model["merges"]);
    model.erase("vocab");
    model.erase("merges");
    std::string out = "{\n";
    for (auto it = j.begin(); it != j.end(); ++it) {
      out += "  " + nlohmann::json(it.key()).dump() + ": ";
      if (it.key() != "model") {
        out += it.value().dump() + ",\n";
        continue;
      }
      std::string head = it.value().dump();  // {"type":"BPE",...}
      head.pop_back();
      out += head + ",\n    \"vocab\": {";
      bool first = true;
      for (auto v = vocab.begin(); v != vocab.end(); ++v) {
        out += (first ? "\n      " : ",\n      ") + nlohmann::json(v.key()).dump() + ": " +
               v.value().dump();
        first = false;
      }
      out += "\n    },\n    \"merges\": [";
      first = true;
      for (const auto& m : merge_list) {
        out += (first ? "\n      " : ",\n      ") + m.dump();
        first = false;
      }
      out += "\n    ]\n  }\n";
    }
    return out + "}\n";
  }

  /// The pre_tokenizer object for `pattern`: Split (Isolated) then ByteLevel without its regex.
  static nlohmann::ordered_json pre_tokenizer_json(const std::string& pattern) {
    return {{"type", "Sequence"},
            {"pretokenizers",
             {{{"type", "Split"},
               {"pattern", {{"Regex", pattern}}},
               {"behavior", "Isolated"},
               {"invert", false}},
              {{"type", "ByteLevel"},
               {"add_prefix_space", false},
               {"trim_offsets", true},
               {"use_regex", false}}}}};
  }
};

/// Learns a byte-level BPE from text (docs/tokenizer.md, "Training a tokenizer").
///
/// add_text() splits text as the written tokenizer will: special tokens out (leftmost-longest),
/// then the Split pattern, then the ByteLevel mapping; it counts each piece (a word). train()
/// starts from the 256 byte symbols and repeatedly merges the adjacent pair with the largest
/// count summed over all words; ties go to the pair whose (left id, right id) is smallest.
/// Merging is greedy left to right inside a word, as a `tokenizers` trainer does. The result
/// does not depend on the order in which text is added.
class BpeTrainer {
 public:
  using WordCounts =
      std::unordered_map<std::string, std::uint64_t, detail::StringHash, std::equal_to<>>;

  /// Checks the options: throws ArgumentError for a vocab_size below 256 + specials or above
  /// what a tokenizer.json may hold, an empty, repeated or ill-formed special token, or a bad
  /// pattern (ConfigError from the regex compiler).
  explicit BpeTrainer(BpeTrainerOptions options)
      : options_(std::move(options)),
        pre_tokenizer_(nlohmann::json(TrainedBpe::pre_tokenizer_json(options_.pattern)),
                       detail::TokenizerJson("pre-tokenizer pattern"), "pre_tokenizer") {
    const std::size_t specials = options_.special_tokens.size();
    if (options_.vocab_size < 256 + specials)
      throw ArgumentError("vocab size " + std::to_string(options_.vocab_size) +
                          " is smaller than the 256 byte symbols plus " + std::to_string(specials) +
                          " special token(s)");
    if (options_.vocab_size > static_cast<std::size_t>(detail::ConfigLimits::vocab_size))
      throw ArgumentError("vocab size " + std::to_string(options_.vocab_size) +
                          " is above the limit of " +
                          std::to_string(detail::ConfigLimits::vocab_size));
    const auto& table = detail::ByteLevelTable::get();
    for (const std::string& s : options_.special_tokens) {
      if (s.empty()) throw ArgumentError("a special token is empty");
      if (!detail::is_valid_utf8(s))
        throw ArgumentError("special token " + detail::printable(s) + " is not valid UTF-8");
      if (std::count(options_.special_tokens.begin(), options_.special_tokens.end(), s) > 1)
        throw ArgumentError("special token " + detail::printable(s) + " is given twice");
      if (std::find(table.byte_to_utf8.begin(), table.byte_to_utf8.end(), s) !=
          table.byte_to_utf8.end())
        throw ArgumentError("special token " + detail::printable(s) +
                            " is a symbol of the byte-level alphabet");
    }
  }

  /// Counts the words of `text`. Text that is not well-formed UTF-8 is first decoded lossily
  /// (U+FFFD per ill-formed subsequence), as Tokenizer::encode does.
  void add_text(std::string_view text) {
    std::string valid;
    if (!detail::is_valid_utf8(text)) {
      valid = detail::utf8_lossy(text);
      text = valid;
    }
    std::vector<std::string> pieces;
    for_each_segment(text, [&](std::string_view segment) {
      pieces.clear();
      pieces.emplace_back(segment);
      pre_tokenizer_.apply(pieces);
      for (std::string& p : pieces) {
        ++words_;
        ++counts_[std::move(p)];
      }
    });
  }

  /// Words counted so far (pre-tokenized pieces) and distinct ones.
  std::uint64_t words() const { return words_; }
  std::size_t word_types() const { return counts_.size(); }

  /// Each distinct word (in the ByteLevel alphabet) and how often it was seen.
  const WordCounts& word_counts() const { return counts_; }

  const BpeTrainerOptions& options() const { return options_; }

  /// Learns merges until the vocabulary holds vocab_size tokens or no pair is frequent enough.
  TrainedBpe train() const {
    const auto& table = detail::ByteLevelTable::get();
    TrainedBpe r;
    r.pattern = options_.pattern;
    r.tokens.assign(table.byte_to_utf8.begin(), table.byte_to_utf8.end());
    detail::TokenMap ids;
    for (int b = 0; b < 256; ++b) ids.emplace(r.tokens[static_cast<std::size_t>(b)], b);
    const std::unordered_set<std::string> specials(options_.special_tokens.begin(),
                                                   options_.special_tokens.end());
    const std::size_t target = options_.vocab_size - options_.special_tokens.size();
    const std::uint64_t min_count = std::max<std::uint64_t>(options_.min_frequency, 1);

    // Word types in a fixed order (sorted), each as byte symbols.
    std::vector<const std::string*> keys;
    keys.reserve(counts_.size());
    for (const auto& kv : counts_) keys.push_back(&kv.first);
    std::sort(keys.begin(), keys.end(), [](const auto* a, const auto* b) { return *a < *b; });
    std::vector<Word> words(keys.size());
    for (std::size_t w = 0; w < keys.size(); ++w) {
      const std::string& s = *keys[w];
      words[w].count = counts_.find(s)->second;
      for (std::size_t i = 0; i < s.size();) {
        int len = 0;
        const char32_t cp = detail::utf8_decode(s, i, len);
        words[w].symbols.push_back(table.char_to_byte[cp]);
        i += static_cast<std::size_t>(len);
      }
    }

    PairCounts pairs;
    for (std::size_t w = 0; w < words.size(); ++w) {
      const auto& s = words[w].symbols;
      for (std::size_t i = 0; i + 1 < s.size(); ++i)
        pairs.change(pair_key(s[i], s[i + 1]), static_cast<std::int64_t>(words[w].count),
                     static_cast<std::uint32_t>(w));
    }
    std::priority_queue<Entry> queue;
    for (const auto& [key, count] : pairs.count)
      if (count > 0) queue.push(Entry{count, key});

    while (r.tokens.size() < target && !queue.empty()) {
      const Entry top = queue.top();
      queue.pop();
      const auto it = pairs.count.find(top.pair);
      const std::int64_t current = it == pairs.count.end() ? 0 : it->second;
      if (current != top.count) {  // stale: the count changed since this entry was pushed
        if (current > 0) queue.push(Entry{current, top.pair});
        continue;
      }
      if (static_cast<std::uint64_t>(current) < min_count) break;
      const auto a = static_cast<std::int32_t>(top.pair >> 32);
      const auto b = static_cast<std::int32_t>(top.pair & 0xFFFFFFFFu);
      std::string merged =
          r.tokens[static_cast<std::size_t>(a)] + r.tokens[static_cast<std::size_t>(b)];
      if (specials.contains(merged)) continue;  // never learn a special token's text
      std::int32_t x;
      if (const auto known = ids.find(merged); known != ids.end()) {
        x = known->second;  // the same text reached through another pair: no new token
      } else {
        x = static_cast<std::int32_t>(r.tokens.size());
        ids.emplace(merged, x);
        r.tokens.push_back(std::move(merged));
      }
      r.merges.emplace_back(a, b);
      merge(words, pairs, top.pair, a, b, x, queue);
    }
    for (const std::string& s : options_.special_tokens) r.tokens.push_back(s);
    r.special_count = options_.special_tokens.size();
    return r;
  }

 private:
  struct Word {
    std::vector<std::int32_t> symbols;
    std::uint64_t count = 0;
  };

  /// A pair and its count; the queue's top is the largest count, then the smallest pair.
  struct Entry {
    std::int64_t count;
    std::uint64_t pair;  // left id << 32 | right id: numeric order is (left, right) order
    bool operator<(const Entry& o) const {
      return count != o.count ? count < o.count : pair > o.pair;
    }
  };

  /// Pair counts over all words and, per pair, the words that (may) hold it.
  struct PairCounts {
    std::unordered_map<std::uint64_t, std::int64_t> count;
    std::unordered_map<std::uint64_t, std::vector<std::uint32_t>> where;
    std::vector<std::uint64_t> grown;  // pairs whose count rose during the current merge

    void change(std::uint64_t pair, std::int64_t delta, std::uint32_t word) {
      std::int64_t& c = count[pair];
      c += delta;
      if (delta > 0) {
        auto& w = where[pair];
        if (w.empty() || w.back() != word) w.push_back(word);
        grown.push_back(pair);
      }
    }
  };

  static std::uint64_t pair_key(std::int32_t a, std::int32_t b) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) |
           static_cast<std::uint32_t>(b);
  }

  /// Replaces every (a, b) by x, left to right in each word that holds the pair, updating the
  /// counts of the pair and of its neighbours, and queues the pairs whose count rose.
  static void merge(std::vector<Word>& words, PairCounts& pairs, std::uint64_t key, std::int32_t a,
                    std::int32_t b, std::int32_t x, std::priority_queue<Entry>& queue) {
    std::vector<std::uint32_t> where = std::move(pairs.where[key]);
    pairs.where.erase(key);
    std::sort(where.begin(), where.end());
    where.erase(std::unique(where.begin(), where.end()), where.end());
    pairs.grown.clear();
    std::vector<std::int32_t> out;
    for (const std::uint32_t w : where) {
      Word& word = words[w];
      const auto c = static_cast<std::int64_t>(word.count);
      const auto& s = word.symbols;
      out.clear();
      bool changed = false;
      for (std::size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          if (!out.empty()) {
            pairs.change(pair_key(out.back(), a), -c, w);
            pairs.change(pair_key(out.back(), x), c, w);
          }
          if (i + 2 < s.size()) {
            pairs.change(pair_key(b, s[i + 2]), -c, w);
            pairs.change(pair_key(x, s[i + 2]), c, w);
          }
          pairs.change(key, -c, w);
          out.push_back(x);
          i += 2;
          changed = true;
        } else {
          out.push_back(s[i++]);
        }
      }
      if (changed) word.symbols.assign(out.begin(), out.end());
    }
    pairs.count.erase(key);
    std::sort(pairs.grown.begin(), pairs.grown.end());
    pairs.grown.erase(std::unique(pairs.grown.begin(), pairs.grown.end()), pairs.grown.end());
    for (const std::uint64_t p : pairs.grown)
      if (const auto it = pairs.count.find(p); it != pairs.count.end() && it->second > 0)
        queue.push(Entry{it->second, p});
  }

  /// Calls f on each stretch of `text` between special tokens (leftmost-longest matches).
  template <class F>
  void for_each_segment(std::string_view text, F&& f) const {
    const auto& specials = options_.special_tokens;
    std::vector<std::size_t> next(specials.size(), 0);  // next match of each, npos for none
    for (std::size_t k = 0; k < specials.size(); ++k) next[k] = text.find(specials[k]);
    std::size_t from = 0;
    while (from < text.size()) {
      std::size_t best = std::string_view::npos, best_len = 0;
      for (std::size_t k = 0; k < specials.size(); ++k) {
        if (next[k] != std::string_view::npos && next[k] < from)
          next[k] = text.find(specials[k], from);
        if (next[k] == std::string_view::npos) continue;
        if (next[k] < best || (next[k] == best && specials[k].size() > best_len)) {
          best = next[k];
          best_len = specials[k].size();
        }
      }
      if (best == std::string_view::npos) break;
      if (best > from) f(text.substr(from, best - from));
      from = best + best_len;
    }
    if (from < text.size()) f(text.substr(from));
  }

  BpeTrainerOptions options_;
  detail::PreTokenizer pre_tokenizer_;
  WordCounts counts_;
  std::uint64_t words_ = 0;
};

}  // namespace rodimus::io
