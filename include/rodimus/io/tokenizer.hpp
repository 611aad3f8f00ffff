// Hugging Face tokenizer.json: BPE with byte-level, Split and NFC stages, added/special tokens,
// template post-processing, decoding and streaming decoding (docs/tokenizer.md).
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "rodimus/core/error.hpp"
#include "rodimus/io/tokenizer/added_vocabulary.hpp"
#include "rodimus/io/tokenizer/bpe.hpp"
#include "rodimus/io/tokenizer/byte_level.hpp"
#include "rodimus/io/tokenizer/json_util.hpp"
#include "rodimus/io/tokenizer/pipeline.hpp"
#include "rodimus/io/tokenizer/utf8.hpp"

namespace rodimus::io {

namespace detail {

/// The post-processor's single-sequence templates, applied in order: each item is either the
/// sequence itself or the ids of a special token.
class PostProcessor {
 public:
  using Item = std::variant<std::monostate, std::vector<std::int32_t>>;  // monostate: the sequence

  PostProcessor() = default;
  PostProcessor(const nlohmann::json& p, const TokenizerJson& js, const std::string& path) {
    parse(p, js, path);
  }

  std::vector<std::int32_t> apply(std::vector<std::int32_t> ids) const {
    for (const auto& t : templates_) {
      std::vector<std::int32_t> out;
      out.reserve(ids.size() + 4);
      for (const Item& item : t) {
        if (std::holds_alternative<std::monostate>(item))
          out.insert(out.end(), ids.begin(), ids.end());
        else
          out.insert(out.end(), std::get<1>(item).begin(), std::get<1>(item).end());
      }
      ids = std::move(out);
    }
    return ids;
  }

 private:
  void parse(const nlohmann::json& p, const TokenizerJson& js, const std::string& path) {
    if (p.is_null()) return;
    js.object(p, path);
    const std::string& type = js.req_string(p, path, "type");
    if (type == "Sequence") {
      const std::string lp = TokenizerJson::join(path, "processors");
      const auto* list = TokenizerJson::get(p, "processors");
      if (!list) js.fail(lp, "is missing");
      js.array(*list, lp);
      for (std::size_t i = 0; i < list->size(); ++i)
        parse((*list)[i], js, TokenizerJson::index(lp, i));
    } else if (type == "ByteLevel") {
      // offsets only: ids pass through
    } else if (type == "BertProcessing" || type == "RobertaProcessing") {
      // single sequence: cls A sep, with "cls": ["[CLS]", 101]
      const auto special = [&](std::string_view key) {
        const std::string kp = TokenizerJson::join(path, key);
        const auto* v = TokenizerJson::get(p, key);
        if (!v || !v->is_array() || v->size() != 2 || !(*v)[0].is_string())
          js.fail(kp, "must be a pair [token, id]");
        return std::vector<std::int32_t>{js.id((*v)[1], kp + "[1]")};
      };
      templates_.push_back({special("cls"), std::monostate{}, special("sep")});
    } else if (type == "TemplateProcessing") {
      const std::string sp = TokenizerJson::join(path, "special_tokens");
      const auto* specials = TokenizerJson::get(p, "special_tokens");
      const std::string tp = TokenizerJson::join(path, "single");
      const auto* single = TokenizerJson::get(p, "single");
      if (!single) js.fail(tp, "is missing");
      js.array(*single, tp);
      std::vector<Item> t;
      for (std::size_t i = 0; i < single->size(); ++i) {
        const std::string ip = TokenizerJson::index(tp, i);
        const auto& item = js.object((*single)[i], ip);
        if (const auto* seq = TokenizerJson::get(item, "Sequence")) {
          const std::string& which =
              js.req_string(js.object(*seq, ip + ".Sequence"), ip + ".Sequence", "id");
          if (which != "A")
            js.fail(ip + ".Sequence.id", "must be \"A\" in a single-sequence template");
          t.emplace_back(std::monostate{});
        } else if (const auto* tok = TokenizerJson::get(item, "SpecialToken")) {
          const std::string& name =
              js.req_string(js.object(*tok, ip + ".SpecialToken"), ip + ".SpecialToken", "id");
          const auto* entry = specials ? TokenizerJson::get(*specials, name) : nullptr;
          if (!entry) js.fail(sp, "has no entry for " + printable(name) + " used by " + ip);
          const std::string ep = sp + "." + printable(name);
          const auto* ids = TokenizerJson::get(js.object(*entry, ep), "ids");
          if (!ids) js.fail(ep + ".ids", "is missing");
          js.array(*ids, ep + ".ids");
          std::vector<std::int32_t> v;
          for (std::size_t k = 0; k < ids->size(); ++k)
            v.push_back(js.id((*ids)[k], TokenizerJson::index(ep + ".ids", k)));
          t.emplace_back(std::move(v));
        } else {
          js.fail(ip, "must hold \"Sequence\" or \"SpecialToken\"");
        }
      }
      templates_.push_back(std::move(t));
    } else {
      js.unsupported(TokenizerJson::join(path, "type"), "post-processor", type);
    }
  }

  std::vector<std::vector<Item>> templates_;
};

}  // namespace detail

class StreamDecoder;

/// A Hugging Face tokenizer.json tokenizer (BPE models such as Qwen and Llama 3).
///
/// encode() gives the ids the `tokenizers` library gives for the same file and text; text that is
/// not well-formed UTF-8 is first decoded lossily (each ill-formed subsequence becomes U+FFFD), as
/// a caller of `tokenizers` has to. Copies share the loaded data; all members are thread-safe.
class Tokenizer {
 public:
  /// Loads a tokenizer.json file; errors name the file and the offending key.
  static Tokenizer from_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw ConfigError(path.string() + ": cannot open tokenizer file");
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) throw ConfigError(path.string() + ": cannot read tokenizer file");
    return from_json(text.str(), path.string());
  }

  /// Parses tokenizer.json text; `source` names it in error messages.
  static Tokenizer from_json(std::string_view text, std::string_view source = "tokenizer.json") {
    const detail::TokenizerJson js{std::string(source)};
    nlohmann::json root;
    try {
      root = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      throw ConfigError(std::string(source) + ": malformed JSON: " + e.what());
    }
    js.object(root, "");
    Tokenizer t;
    t.impl_ = std::make_shared<const Impl>(root, js);
    return t;
  }

  /// Token ids of `text`; with `add_special_tokens`, the post-processor's special tokens too.
  std::vector<std::int32_t> encode(std::string_view text, bool add_special_tokens = false) const {
    std::string valid;
    if (!detail::is_valid_utf8(text)) {
      valid = detail::utf8_lossy(text);
      text = valid;
    }
    const Impl& im = *impl_;
    std::vector<std::int32_t> ids;
    ids.reserve(text.size() / 3 + 4);
    std::vector<std::string> pieces;
    for (detail::Piece& p : im.added.extract_and_normalize(text, im.normalizer)) {
      if (p.id >= 0) {
        ids.push_back(p.id);
        continue;
      }
      pieces.clear();
      pieces.push_back(std::move(p.text));
      im.pre_tokenizer.apply(pieces);
      for (const std::string& piece : pieces) im.model.encode(piece, ids);
    }
    return add_special_tokens ? im.post_processor.apply(std::move(ids)) : ids;
  }

  /// The text of `ids`; an id outside the vocabulary is an ArgumentError.
  std::string decode(std::span<const std::int32_t> ids, bool skip_special_tokens = false) const {
    std::string out;
    bool first = true;
    for (std::size_t i = 0; i < ids.size(); ++i)
      append_token(ids[i], i, skip_special_tokens, first, out);
    return impl_->byte_level_decoder ? detail::utf8_lossy(out) : out;
  }

  /// The id of a token string (added tokens first, then the model's vocabulary).
  std::optional<std::int32_t> token_to_id(std::string_view token) const {
    return impl_->added.token_to_id(token, impl_->model);
  }

  /// The token string of an id, or nullopt when no token has it.
  std::optional<std::string> id_to_token(std::int32_t id) const {
    const std::string* s = token_ptr(id);
    return s ? std::optional<std::string>(*s) : std::nullopt;
  }

  /// Whether `id` is a special token (skipped by decode with skip_special_tokens).
  bool is_special(std::int32_t id) const {
    const std::string* s = token_ptr(id);
    return s && impl_->added.is_special(*s);
  }

  /// Number of distinct tokens, added tokens included (tokenizers' get_vocab_size(true)).
  std::size_t vocab_size() const { return impl_->vocab_size; }

  /// A decoder that turns ids into text one token at a time (see StreamDecoder).
  StreamDecoder stream_decoder(bool skip_special_tokens = false) const;

 private:
  friend class StreamDecoder;

  struct Impl {
    detail::Normalizer normalizer;
    detail::PreTokenizer pre_tokenizer;
    detail::BpeModel model;
    detail::AddedVocabulary added;
    detail::PostProcessor post_processor;
    bool byte_level_decoder = false;
    std::size_t vocab_size = 0;

    Impl(const nlohmann::json& root, const detail::TokenizerJson& js)
        : normalizer(member(root, "normalizer"), js, "normalizer"),
          pre_tokenizer(member(root, "pre_tokenizer"), js, "pre_tokenizer"),
          model(model_json(root, js), js, "model"),
          post_processor(member(root, "post_processor"), js, "post_processor") {
      const nlohmann::json& d = member(root, "decoder");
      if (!d.is_null()) {
        js.object(d, "decoder");
        const std::string& type = js.req_string(d, "decoder", "type");
        if (type != "ByteLevel") js.unsupported("decoder.type", "decoder", type);
        byte_level_decoder = true;
      }
      std::vector<detail::AddedToken> tokens;
      if (const auto* list = detail::TokenizerJson::get(root, "added_tokens");
          list && !list->is_null()) {
        js.array(*list, "added_tokens");
        for (std::size_t i = 0; i < list->size(); ++i) {
          const std::string p = detail::TokenizerJson::index("added_tokens", i);
          const auto& o = js.object((*list)[i], p);
          detail::AddedToken t;
          t.content = js.req_string(o, p, "content");
          t.special = js.opt_bool(o, p, "special", false);
          t.single_word = js.opt_bool(o, p, "single_word", false);
          t.lstrip = js.opt_bool(o, p, "lstrip", false);
          t.rstrip = js.opt_bool(o, p, "rstrip", false);
          t.normalized = js.opt_bool(o, p, "normalized", !t.special);
          tokens.push_back(std::move(t));
        }
      }
      added.add(tokens, model, normalizer);
      vocab_size = model.size();
      for (const auto& [content, id] : added.contents())
        if (!model.token_to_id(content)) ++vocab_size;
    }

    static const nlohmann::json& member(const nlohmann::json& root, std::string_view key) {
      static const nlohmann::json null;
      const auto* v = detail::TokenizerJson::get(root, key);
      return v ? *v : null;
    }
    static const nlohmann::json& model_json(const nlohmann::json& root,
                                            const detail::TokenizerJson& js) {
      const auto* m = detail::TokenizerJson::get(root, "model");
      if (!m) js.fail("model", "is missing");
      js.object(*m, "model");
      const auto* type = detail::TokenizerJson::get(*m, "type");
      if (type) {
        const std::string& t = js.string(*type, "model.type");
        if (t != "BPE") js.unsupported("model.type", "model", t);
      } else if (!detail::TokenizerJson::get(*m, "merges")) {
        js.fail("model", "has no \"type\" and is not a BPE model (no \"merges\")");
      }
      return *m;
    }
  };

  const std::string* token_ptr(std::int32_t id) const {
    if (const auto* t = impl_->added.find_id(id)) return &t->text;
    return impl_->model.id_to_token(id);
  }

  /// Appends the decoder's text (byte-level: raw bytes) of ids[i]; `first` tracks the joining
  /// space of a tokenizer without decoder.
  void append_token(std::int32_t id, std::size_t i, bool skip_special, bool& first,
                    std::string& out) const {
    const std::string* s = token_ptr(id);
    if (!s)
      throw ArgumentError("decode: token id " + std::to_string(id) + " at position " +
                          std::to_string(i) + " is not in the vocabulary (" +
                          std::to_string(vocab_size()) + " tokens)");
    if (skip_special && impl_->added.is_special(*s)) return;
    if (impl_->byte_level_decoder) {
      detail::ByteLevelTable::get().decode_token(*s, out);
    } else {
      if (!first) out += ' ';
      out += *s;
    }
    first = false;
  }

  std::shared_ptr<const Impl> impl_;
};

/// Decodes one token at a time: step() returns the text that the new token completes, holding
/// back bytes of a character split between tokens; the pieces of step()... and flush() joined
/// equal Tokenizer::decode of all the ids.
class StreamDecoder {
 public:
  StreamDecoder(Tokenizer tokenizer, bool skip_special_tokens)
      : tokenizer_(std::move(tokenizer)), skip_special_(skip_special_tokens) {}

  /// The text completed by token `id` (possibly empty).
  std::string step(std::int32_t id) {
    tokenizer_.append_token(id, count_++, skip_special_, first_, pending_);
    const std::size_t ready = pending_.size() - detail::utf8_incomplete_tail(pending_);
    std::string out = detail::utf8_lossy(std::string_view(pending_).substr(0, ready));
    pending_.erase(0, ready);
    return out;
  }

  /// The rest of the text at the end of the stream (U+FFFD for a character left incomplete).
  std::string flush() {
    std::string out = detail::utf8_lossy(pending_);
    pending_.clear();
    return out;
  }

 private:
  Tokenizer tokenizer_;
  bool skip_special_;
  bool first_ = true;
  std::size_t count_ = 0;
  std::string pending_;  // bytes of a character that is not complete yet
};

inline StreamDecoder Tokenizer::stream_decoder(bool skip_special_tokens) const {
  return StreamDecoder(*this, skip_special_tokens);
}

}  // namespace rodimus::io
