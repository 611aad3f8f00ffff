// Normalizers (utf8proc NFC/NFD/NFKC/NFKD, Sequence) and pre-tokenizers (Split, ByteLevel,
// Sequence) of tokenizer.json, each parsed from its JSON object and applied to text pieces.
#pragma once

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rodimus/io/tokenizer/byte_level.hpp"
#include "rodimus/io/tokenizer/json_util.hpp"
#include "rodimus/io/tokenizer/regex.hpp"

namespace rodimus::io::detail {

/// A chain of Unicode normalization forms (a "Sequence" is flattened; null is the empty chain).
class Normalizer {
 public:
  Normalizer() = default;
  Normalizer(const nlohmann::json& n, const TokenizerJson& js, const std::string& path) {
    parse(n, js, path);
  }

  bool empty() const { return forms_.empty(); }

  /// `s` (well-formed UTF-8) normalized.
  std::string apply(std::string s) const {
    for (const int options : forms_) {
      bool ascii = true;
      for (const char c : s) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
      if (ascii) continue;  // every normalization form leaves ASCII as it is
      utf8proc_uint8_t* out = nullptr;
      const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                              static_cast<utf8proc_ssize_t>(s.size()), &out,
                                              static_cast<utf8proc_option_t>(options));
      if (n < 0) throw Error(std::string("tokenizer normalizer: ") + utf8proc_errmsg(n));
      s.assign(reinterpret_cast<const char*>(out), static_cast<std::size_t>(n));
      std::free(out);
    }
    return s;
  }

 private:
  void parse(const nlohmann::json& n, const TokenizerJson& js, const std::string& path) {
    if (n.is_null()) return;
    js.object(n, path);
    const std::string& type = js.req_string(n, path, "type");
    if (type == "Sequence") {
      const std::string p = TokenizerJson::join(path, "normalizers");
      const auto* list = TokenizerJson::get(n, "normalizers");
      if (!list) js.fail(p, "is missing");
      js.array(*list, p);
      for (std::size_t i = 0; i < list->size(); ++i)
        parse((*list)[i], js, TokenizerJson::index(p, i));
      return;
    }
    const int stable = UTF8PROC_STABLE;
    if (type == "NFC") {
      forms_.push_back(stable | UTF8PROC_COMPOSE);
    } else if (type == "NFD") {
      forms_.push_back(stable | UTF8PROC_DECOMPOSE);
    } else if (type == "NFKC") {
      forms_.push_back(stable | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
    } else if (type == "NFKD") {
      forms_.push_back(stable | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
    } else {
      js.unsupported(TokenizerJson::join(path, "type"), "normalizer", type);
    }
  }

  std::vector<int> forms_;  // utf8proc options, applied in order
};

/// How a Split pre-tokenizer treats the matched delimiters.
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

/// GPT-2's pattern, used by ByteLevel when use_regex is on.
inline constexpr std::string_view gpt2_pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

/// Splits `s` at the matches of `re` (tokenizers' NormalizedString::split) and appends the
/// non-empty parts to `out`.
inline void split_pieces(std::string_view s, const Regex& re, SplitBehavior behavior, bool invert,
                         std::vector<std::string>& out) {
  struct Part {
    std::size_t start, end;
    bool flag;  // a match (a delimiter to remove, for Removed)
  };
  std::vector<Part> parts;
  if (s.empty()) return;
  std::size_t prev = 0;
  re.find_iter(s, [&](std::size_t start, std::size_t end) {
    if (prev != start) parts.push_back({prev, start, invert});
    parts.push_back({start, end, !invert});
    prev = end;
  });
  if (prev != s.size()) parts.push_back({prev, s.size(), invert});

  std::vector<Part> merged;
  merged.reserve(parts.size());
  bool previous = false;
  switch (behavior) {
    case SplitBehavior::Removed:
      merged = std::move(parts);
      break;
    case SplitBehavior::Isolated:
      for (const Part& p : parts) merged.push_back({p.start, p.end, false});
      break;
    case SplitBehavior::Contiguous:
      for (const Part& p : parts) {
        if (p.flag == previous && !merged.empty())
          merged.back().end = p.end;
        else
          merged.push_back({p.start, p.end, false});
        previous = p.flag;
      }
      break;
    case SplitBehavior::MergedWithPrevious:
      for (const Part& p : parts) {
        if (p.flag && !previous && !merged.empty())
          merged.back().end = p.end;
        else
          merged.push_back({p.start, p.end, false});
        previous = p.flag;
      }
      break;
    case SplitBehavior::MergedWithNext:
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->flag && !previous && !merged.empty())
          merged.back().start = it->start;
        else
          merged.push_back({it->start, it->end, false});
        previous = it->flag;
      }
      std::reverse(merged.begin(), merged.end());
      break;
  }
  for (const Part& p : merged)
    if (!p.flag && p.end > p.start) out.emplace_back(s.substr(p.start, p.end - p.start));
}

/// A chain of pre-tokenizers (a "Sequence" is flattened; null is the empty chain).
class PreTokenizer {
 public:
  PreTokenizer() = default;
  PreTokenizer(const nlohmann::json& p, const TokenizerJson& js, const std::string& path) {
    parse(p, js, path);
  }

  /// Splits each piece in turn by each step; ByteLevel maps bytes to its printable characters.
  void apply(std::vector<std::string>& pieces) const {
    std::vector<std::string> next;
    for (const Step& step : steps_) {
      next.clear();
      next.reserve(pieces.size() * 2);
      if (step.byte_level) {
        std::string mapped;
        for (std::string& piece : pieces) {
          if (step.add_prefix_space && (piece.empty() || piece[0] != ' '))
            piece.insert(piece.begin(), ' ');
          const std::size_t first = next.size();
          if (step.regex)
            split_pieces(piece, *step.regex, SplitBehavior::Isolated, false, next);
          else if (!piece.empty())
            next.push_back(std::move(piece));
          for (std::size_t i = first; i < next.size(); ++i) {
            ByteLevelTable::get().encode(next[i], mapped);
            next[i].swap(mapped);
          }
        }
      } else {
        for (const std::string& piece : pieces)
          split_pieces(piece, *step.regex, step.behavior, step.invert, next);
      }
      pieces.swap(next);
    }
  }

 private:
  struct Step {
    bool byte_level = false;
    std::shared_ptr<const Regex> regex;  // ByteLevel: null when use_regex is off
    SplitBehavior behavior = SplitBehavior::Isolated;
    bool invert = false;
    bool add_prefix_space = false;
  };

  void parse(const nlohmann::json& p, const TokenizerJson& js, const std::string& path) {
    if (p.is_null()) return;
    js.object(p, path);
    const std::string& type = js.req_string(p, path, "type");
    if (type == "Sequence") {
      const std::string lp = TokenizerJson::join(path, "pretokenizers");
      const auto* list = TokenizerJson::get(p, "pretokenizers");
      if (!list) js.fail(lp, "is missing");
      js.array(*list, lp);
      for (std::size_t i = 0; i < list->size(); ++i)
        parse((*list)[i], js, TokenizerJson::index(lp, i));
    } else if (type == "ByteLevel") {
      Step s;
      s.byte_level = true;
      s.add_prefix_space = js.opt_bool(p, path, "add_prefix_space", true);
      js.opt_bool(p, path, "trim_offsets", true);  // offsets only: no effect on ids
      if (js.opt_bool(p, path, "use_regex", true))
        s.regex =
            std::make_shared<const Regex>(gpt2_pattern, false, js.source() + ": ByteLevel regex");
      steps_.push_back(std::move(s));
    } else if (type == "Split") {
      Step s;
      const std::string pp = TokenizerJson::join(path, "pattern");
      const auto* pat = TokenizerJson::get(p, "pattern");
      if (!pat) js.fail(pp, "is missing");
      js.object(*pat, pp);
      if (const auto* r = TokenizerJson::get(*pat, "Regex")) {
        s.regex = std::make_shared<const Regex>(js.string(*r, pp + ".Regex"), false,
                                                js.source() + ": key '" + pp + ".Regex'");
      } else if (const auto* l = TokenizerJson::get(*pat, "String")) {
        s.regex = std::make_shared<const Regex>(js.string(*l, pp + ".String"), true,
                                                js.source() + ": key '" + pp + ".String'");
      } else {
        js.fail(pp, "must hold \"Regex\" or \"String\"");
      }
      const std::string& b = js.req_string(p, path, "behavior");
      if (b == "Removed")
        s.behavior = SplitBehavior::Removed;
      else if (b == "Isolated")
        s.behavior = SplitBehavior::Isolated;
      else if (b == "MergedWithPrevious")
        s.behavior = SplitBehavior::MergedWithPrevious;
      else if (b == "MergedWithNext")
        s.behavior = SplitBehavior::MergedWithNext;
      else if (b == "Contiguous")
        s.behavior = SplitBehavior::Contiguous;
      else
        js.fail(TokenizerJson::join(path, "behavior"),
                "is an unknown split behavior " + printable(b));
      s.invert = js.opt_bool(p, path, "invert", false);
      steps_.push_back(std::move(s));
    } else {
      js.unsupported(TokenizerJson::join(path, "type"), "pre-tokenizer", type);
    }
  }

  std::vector<Step> steps_;
};

}  // namespace rodimus::io::detail
