// Typed reads from a tokenizer.json tree: every error is a ConfigError naming the source and the
// key path (model.merges[3], pre_tokenizer.pretokenizers[0].behavior, ...).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "rodimus/core/error.hpp"
#include "rodimus/io/config_json.hpp"

namespace rodimus::io::detail {

class TokenizerJson {
 public:
  explicit TokenizerJson(std::string source) : source_(std::move(source)) {}

  const std::string& source() const { return source_; }

  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    throw ConfigError(source_ + ": " + (path.empty() ? "" : "key '" + path + "' ") + what);
  }

  /// An unsupported component: names its kind and its type.
  [[noreturn]] void unsupported(const std::string& path, std::string_view kind,
                                std::string_view type) const {
    fail(path, "is an unsupported " + std::string(kind) + " type " + printable(type) +
                   " (rodimus supports: " + supported_for(kind) + ")");
  }

  static std::string join(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }
  static std::string index(const std::string& path, std::size_t i) {
    return path + "[" + std::to_string(i) + "]";
  }

  static const nlohmann::json* get(const nlohmann::json& obj, std::string_view key) {
    if (!obj.is_object()) return nullptr;
    const auto it = obj.find(key);
    return it == obj.end() ? nullptr : &*it;
  }

  const nlohmann::json& object(const nlohmann::json& v, const std::string& path) const {
    if (!v.is_object()) fail(path, std::string("must be an object, got ") + v.type_name());
    return v;
  }
  const nlohmann::json& array(const nlohmann::json& v, const std::string& path) const {
    if (!v.is_array()) fail(path, std::string("must be an array, got ") + v.type_name());
    return v;
  }
  const std::string& string(const nlohmann::json& v, const std::string& path) const {
    if (!v.is_string()) fail(path, std::string("must be a string, got ") + v.type_name());
    return v.get_ref<const std::string&>();
  }

  /// A required string member.
  const std::string& req_string(const nlohmann::json& obj, const std::string& path,
                                std::string_view key) const {
    const auto* v = get(obj, key);
    if (!v) fail(join(path, key), "is missing");
    return string(*v, join(path, key));
  }

  /// An optional string member (absent or null -> nullopt).
  std::optional<std::string> opt_string(const nlohmann::json& obj, const std::string& path,
                                        std::string_view key) const {
    const auto* v = get(obj, key);
    if (!v || v->is_null()) return std::nullopt;
    return string(*v, join(path, key));
  }

  bool opt_bool(const nlohmann::json& obj, const std::string& path, std::string_view key,
                bool def) const {
    const auto* v = get(obj, key);
    if (!v || v->is_null()) return def;
    if (!v->is_boolean())
      fail(join(path, key), std::string("must be a boolean, got ") + v->type_name());
    return v->get<bool>();
  }

  /// A token id: an integer in [0, limit).
  int id(const nlohmann::json& v, const std::string& path) const {
    constexpr std::int64_t limit = ConfigLimits::vocab_size;
    if (!v.is_number_integer() && !v.is_number_unsigned())
      fail(path, std::string("must be a token id, got ") + v.type_name());
    if (v.is_number_unsigned() ? v.get<std::uint64_t>() >= static_cast<std::uint64_t>(limit)
                               : (v.get<std::int64_t>() < 0 || v.get<std::int64_t>() >= limit))
      fail(path, "is not a token id in [0, " + std::to_string(limit) + "): " + v.dump());
    return static_cast<int>(v.get<std::int64_t>());
  }

 private:
  static std::string supported_for(std::string_view kind) {
    if (kind == "model") return "BPE";
    if (kind == "normalizer") return "NFC, NFD, NFKC, NFKD, Sequence";
    if (kind == "pre-tokenizer") return "ByteLevel, Split, Sequence";
    if (kind == "decoder") return "ByteLevel";
    if (kind == "post-processor")
      return "ByteLevel, TemplateProcessing, BertProcessing, RobertaProcessing, Sequence";
    return "none";
  }

  std::string source_;
};

}  // namespace rodimus::io::detail
