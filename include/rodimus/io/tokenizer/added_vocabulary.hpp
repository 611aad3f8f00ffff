// Added and special tokens: ids assigned as `tokenizers` assigns them, and their leftmost-longest
// extraction from text (with single_word, lstrip, rstrip and normalized) before pre-tokenization.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "rodimus/io/tokenizer/bpe.hpp"
#include "rodimus/io/tokenizer/pipeline.hpp"
#include "rodimus/io/tokenizer/utf8.hpp"

namespace rodimus::io::detail {

struct AddedToken {
  std::string content;
  bool single_word = false, lstrip = false, rstrip = false, normalized = true, special = false;
  bool operator==(const AddedToken&) const = default;
};

/// An added token as stored by id: its flags, and the text that id_to_token and decode give
/// (the normalized content for a normalized token, as in `tokenizers`).
struct AddedEntry {
  AddedToken token;
  std::string text;
};

/// A byte trie over token contents answering leftmost-longest matches (aho-corasick's
/// MatchKind::LeftmostLongest as tokenizers configures it).
class TokenTrie {
 public:
  void add(std::string_view pattern, int id) {
    if (pattern.empty()) return;
    int node = 0;
    for (const char c : pattern) {
      const auto b = static_cast<unsigned char>(c);
      int child = -1;
      for (const auto& [byte, n] : nodes_[static_cast<std::size_t>(node)].children)
        if (byte == b) child = n;
      if (child < 0) {
        child = static_cast<int>(nodes_.size());
        nodes_[static_cast<std::size_t>(node)].children.emplace_back(b, child);
        nodes_.emplace_back();
      }
      node = child;
    }
    if (nodes_[static_cast<std::size_t>(node)].id < 0)
      nodes_[static_cast<std::size_t>(node)].id = id;  // first pattern wins
    first_[static_cast<unsigned char>(pattern[0])] = true;
    empty_ = false;
  }
  bool empty() const { return empty_; }

  /// The leftmost-longest match starting at or after `from`: (start, end, id).
  std::optional<std::array<std::size_t, 3>> find(std::string_view s, std::size_t from) const {
    for (std::size_t i = from; i < s.size(); ++i) {
      if (!first_[static_cast<unsigned char>(s[i])]) continue;
      int node = 0;
      std::size_t best_end = 0;
      int best_id = -1;
      for (std::size_t k = i; k < s.size(); ++k) {
        int child = -1;
        for (const auto& [byte, n] : nodes_[static_cast<std::size_t>(node)].children)
          if (byte == static_cast<unsigned char>(s[k])) child = n;
        if (child < 0) break;
        node = child;
        if (nodes_[static_cast<std::size_t>(node)].id >= 0) {
          best_end = k + 1;
          best_id = nodes_[static_cast<std::size_t>(node)].id;
        }
      }
      if (best_id >= 0)
        return std::array<std::size_t, 3>{i, best_end, static_cast<std::size_t>(best_id)};
    }
    return std::nullopt;
  }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int>> children;
    int id = -1;
  };
  std::vector<Node> nodes_{1};
  std::array<bool, 256> first_{};
  bool empty_ = true;
};

/// A piece of the input: text still to pre-tokenize and model (id < 0), or an added token.
struct Piece {
  std::string text;
  int id = -1;
};

class AddedVocabulary {
 public:
  AddedVocabulary() = default;

  /// Adds `tokens` in file order (tokenizers' AddedVocabulary::add_tokens): a content already in
  /// the vocabulary keeps its id, a new one gets the next id after the model vocabulary.
  void add(const std::vector<AddedToken>& tokens, const BpeModel& model,
           const Normalizer& normalizer) {
    for (const AddedToken& t : tokens) {
      if (t.special && !t.content.empty() && !special_set_.contains(t.content)) {
        special_.push_back(t);
        special_set_.insert(t.content);
      }
    }
    for (const AddedToken& t : tokens) {
      if (t.content.empty()) continue;
      if (const auto it = by_content_.find(t.content); it != by_content_.end()) {
        if (const auto e = by_id_.find(it->second); e != by_id_.end() && e->second.token == t)
          continue;
      }
      int new_id;
      if (const auto known = token_to_id(t.content, model)) {
        new_id = *known;
      } else {
        const int model_size = static_cast<int>(model.size());
        new_id = max_id_ < 0                                  ? model_size
                 : (max_id_ >= model_size || model_size == 0) ? max_id_ + 1
                                                              : model_size;
      }
      by_content_[t.content] = new_id;
      max_id_ = std::max(max_id_, new_id);
      by_id_[new_id] = AddedEntry{t, t.normalized ? normalizer.apply(t.content) : t.content};
      if (!special_set_.contains(t.content)) classic_.push_back(t);
    }
    // Matching sets: special tokens first, then the others; normalized ones match normalized text.
    for (const auto* list : {&special_, &classic_}) {
      for (const AddedToken& t : *list) {
        const int id = *token_to_id(t.content, model);
        if (t.normalized)
          normalized_trie_.add(normalizer.apply(t.content), id);
        else
          raw_trie_.add(t.content, id);
      }
    }
  }

  std::optional<int> token_to_id(std::string_view content, const BpeModel& model) const {
    if (const auto it = by_content_.find(content); it != by_content_.end()) return it->second;
    return model.token_to_id(content);
  }
  const AddedEntry* find_id(int id) const {
    const auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : &it->second;
  }
  bool is_special(std::string_view content) const {
    return special_set_.contains(std::string(content));
  }
  const TokenMap& contents() const { return by_content_; }

  /// Splits `text` (well-formed UTF-8) into added tokens and normalized text pieces.
  std::vector<Piece> extract_and_normalize(std::string_view text,
                                           const Normalizer& normalizer) const {
    std::vector<Piece> raw;
    split(text, raw_trie_, raw);
    std::vector<Piece> out;
    out.reserve(raw.size());
    for (Piece& p : raw) {
      if (p.id >= 0) {
        out.push_back(std::move(p));
        continue;
      }
      const std::string normalized = normalizer.apply(std::move(p.text));
      split(normalized, normalized_trie_, out);
    }
    return out;
  }

 private:
  /// tokenizers' AddedVocabulary::find_matches; empty pieces are dropped.
  void split(std::string_view s, const TokenTrie& trie, std::vector<Piece>& out) const {
    if (trie.empty()) {
      if (!s.empty()) out.push_back(Piece{std::string(s), -1});
      return;
    }
    std::size_t start_offset = 0, from = 0;
    const auto push = [&](std::size_t a, std::size_t b, int id) {
      if (b > a) out.push_back(Piece{std::string(s.substr(a, b - a)), id});
    };
    while (auto m = trie.find(s, from)) {
      std::size_t start = (*m)[0], stop = (*m)[1];
      const int id = static_cast<int>((*m)[2]);
      from = stop;
      const AddedToken& t = by_id_.at(id).token;
      if (t.single_word) {
        const bool start_space = start == 0 || !ends_with_word(s.substr(0, start));
        const bool stop_space = stop == s.size() || !starts_with_word(s.substr(stop));
        if (!start_space || !stop_space) continue;
      }
      if (t.lstrip) start = std::max(space_leftmost_at_end(s.substr(0, start)), start_offset);
      if (t.rstrip) stop += space_rightmost_at_start(s.substr(stop));
      if (start_offset < start) push(start_offset, start, -1);
      push(start, stop, id);
      start_offset = stop;
    }
    if (start_offset < s.size()) push(start_offset, s.size(), -1);
  }

  /// Rust regex's Unicode `\w`: alphabetic, marks, decimal digits, connector punctuation, joiners.
  static const Regex& word_char() {
    static const Regex re(R"([\p{L}\p{Nl}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D}])", false,
                          "word character class");
    return re;
  }
  static bool matches_char(std::string_view c) {
    bool found = false;
    word_char().find_iter(
        c, [&](std::size_t a, std::size_t b) { found = found || (a == 0 && b == c.size()); });
    return found;
  }
  static bool ends_with_word(std::string_view s) {
    if (s.empty()) return false;
    std::size_t i = s.size() - 1;
    while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
    return matches_char(s.substr(i));
  }
  static bool starts_with_word(std::string_view s) {
    return !s.empty() && matches_char(s.substr(0, utf8_char_len(s, 0)));
  }
  /// Start of the run of White_Space that ends `s`.
  static std::size_t space_leftmost_at_end(std::string_view s) {
    std::size_t start = 0;
    for (std::size_t i = 0; i < s.size();) {
      int len = 0;
      const char32_t c = utf8_decode(s, i, len);
      i += static_cast<std::size_t>(len);
      if (!is_white_space(c)) start = i;
    }
    return start;
  }
  /// Length of the run of White_Space that starts `s`.
  static std::size_t space_rightmost_at_start(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
      int len = 0;
      if (!is_white_space(utf8_decode(s, i, len))) break;
      i += static_cast<std::size_t>(len);
    }
    return i;
  }

  TokenMap by_content_;
  std::unordered_map<int, AddedEntry> by_id_;
  std::vector<AddedToken> special_, classic_;
  std::unordered_set<std::string> special_set_;
  TokenTrie raw_trie_, normalized_trie_;
  int max_id_ = -1;
};

}  // namespace rodimus::io::detail
