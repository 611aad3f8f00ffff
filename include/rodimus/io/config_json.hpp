// Hugging Face config.json <-> ModelConfig: typed, validated parsing (SPEC section 1) and writing.
#pragma once

#include <climits>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "rodimus/core/error.hpp"
#include "rodimus/model/config.hpp"

namespace rodimus::io {

namespace detail {

/// Upper bounds that keep a hostile config from asking for absurd allocations.
struct ConfigLimits {
  static constexpr int d_model = 65536;
  static constexpr int n_layer = 1024;
  static constexpr int vocab_size = 10'000'000;
  static constexpr int d_conv = 64;
  static constexpr int mem_size = 4096;
  static constexpr int low_rank = 65536;
  static constexpr int max_position_embeddings = 1 << 24;
  static constexpr double expand_ratio = 64.0;
};

/// `s` as a double-quoted, printable, length-limited string for error messages.
inline std::string printable(std::string_view s) {
  constexpr std::size_t max_len = 64;
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size() && i < max_len; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      static constexpr char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (s.size() > max_len) out += "...";
  return out + "\"";
}

/// Reads typed values out of a config.json object; every error names the source and key path.
class ConfigReader {
 public:
  explicit ConfigReader(std::string_view source) : source_(source) {}

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw ConfigError(source_ + ": key '" + key + "' " + what);
  }

  static std::string join(std::string_view prefix, std::string_view key) {
    return prefix.empty() ? std::string(key) : std::string(prefix) + "." + std::string(key);
  }

  /// "string", "number 2.5", ... for messages.
  static std::string describe(const nlohmann::json& v) {
    if (v.is_number_float()) {
      std::ostringstream os;
      os << "number " << v.get<double>();
      return os.str();
    }
    return v.type_name();
  }

  /// The value at `key` in `obj`, or nullptr when absent.
  static const nlohmann::json* get(const nlohmann::json& obj, std::string_view key) {
    const auto it = obj.find(key);
    return it == obj.end() ? nullptr : &*it;
  }

  int to_int(const nlohmann::json& v, const std::string& path) const {
    if (v.is_number_unsigned()) {
      const auto u = v.get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(INT_MAX))
        fail(path, "is out of range: " + std::to_string(u));
      return static_cast<int>(u);
    }
    if (v.is_number_integer()) {
      const auto i = v.get<std::int64_t>();
      if (i < INT_MIN || i > INT_MAX) fail(path, "is out of range: " + std::to_string(i));
      return static_cast<int>(i);
    }
    if (v.is_number_float()) {
      const double d = v.get<double>();
      if (!std::isfinite(d) || d != std::floor(d))
        fail(path, "must be an integer, got " + describe(v));
      if (d < static_cast<double>(INT_MIN) || d > static_cast<double>(INT_MAX))
        fail(path, "is out of range: " + describe(v));
      return static_cast<int>(d);
    }
    fail(path, "must be an integer, got " + describe(v));
  }

  double to_number(const nlohmann::json& v, const std::string& path) const {
    if (!v.is_number()) fail(path, "must be a number, got " + describe(v));
    const double d = v.get<double>();
    if (!std::isfinite(d)) fail(path, "must be finite");
    return d;
  }

  int get_int(const nlohmann::json& obj, std::string_view prefix, std::string_view key,
              int def) const {
    const auto* v = get(obj, key);
    return v ? to_int(*v, join(prefix, key)) : def;
  }

  /// An integer key that may also be null (-> nullopt); absent -> def.
  std::optional<int> get_opt_int(const nlohmann::json& obj, std::string_view prefix,
                                 std::string_view key, std::optional<int> def) const {
    const auto* v = get(obj, key);
    if (!v) return def;
    if (v->is_null()) return std::nullopt;
    return to_int(*v, join(prefix, key));
  }

  double get_number(const nlohmann::json& obj, std::string_view prefix, std::string_view key,
                    double def) const {
    const auto* v = get(obj, key);
    return v ? to_number(*v, join(prefix, key)) : def;
  }

  bool get_bool(const nlohmann::json& obj, std::string_view prefix, std::string_view key,
                bool def) const {
    const auto* v = get(obj, key);
    if (!v) return def;
    if (!v->is_boolean()) fail(join(prefix, key), "must be a boolean, got " + describe(*v));
    return v->get<bool>();
  }

  std::optional<std::string> get_string(const nlohmann::json& obj, std::string_view prefix,
                                        std::string_view key) const {
    const auto* v = get(obj, key);
    if (!v) return std::nullopt;
    if (!v->is_string()) fail(join(prefix, key), "must be a string, got " + describe(*v));
    return v->get<std::string>();
  }

  /// A sub-object; absent or null -> nullptr.
  const nlohmann::json* get_object(const nlohmann::json& obj, std::string_view key) const {
    const auto* v = get(obj, key);
    if (!v || v->is_null()) return nullptr;
    if (!v->is_object()) fail(std::string(key), "must be an object, got " + describe(*v));
    return v;
  }

  void check_range(int v, const std::string& key, int lo, int hi) const {
    if (v < lo || v > hi)
      fail(key, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                    std::to_string(v));
  }

  void check_positive(double v, const std::string& key, double hi) const {
    if (!(v > 0.0) || v > hi) {
      std::ostringstream os;
      os << "must be in (0, " << hi << "], got " << v;
      fail(key, os.str());
    }
  }

 private:
  std::string source_;
};

inline void parse_mixer_cfg(const ConfigReader& r, const nlohmann::json* m, ModelConfig& c) {
  using L = ConfigLimits;
  if (m) {
    const auto& j = *m;
    c.mixer.d_conv = r.get_int(j, "mixer_cfg", "d_conv", c.mixer.d_conv);
    c.mixer.expand_ratio = r.get_number(j, "mixer_cfg", "expand_ratio", c.mixer.expand_ratio);
    c.mixer.mem_size = r.get_int(j, "mixer_cfg", "mem_size", c.mixer.mem_size);
    if (const auto* lr = ConfigReader::get(j, "input_gate_low_rank")) {
      if (lr->is_string()) {
        if (lr->get_ref<const std::string&>() != "auto")
          r.fail("mixer_cfg.input_gate_low_rank", "must be an integer or \"auto\", got string " +
                                                      printable(lr->get_ref<const std::string&>()));
        c.mixer.input_gate_low_rank = -1;
      } else {
        if (!lr->is_number())
          r.fail("mixer_cfg.input_gate_low_rank",
                 "must be an integer or \"auto\", got " + ConfigReader::describe(*lr));
        c.mixer.input_gate_low_rank = r.to_int(*lr, "mixer_cfg.input_gate_low_rank");
        r.check_range(c.mixer.input_gate_low_rank, "mixer_cfg.input_gate_low_rank", 1, L::low_rank);
      }
    }
    c.mixer.normalize_epsilon =
        r.get_number(j, "mixer_cfg", "normalize_epsilon", c.mixer.normalize_epsilon);
  }
  r.check_range(c.mixer.d_conv, "mixer_cfg.d_conv", 1, L::d_conv);
  r.check_range(c.mixer.mem_size, "mixer_cfg.mem_size", 1, L::mem_size);
  r.check_positive(c.mixer.expand_ratio, "mixer_cfg.expand_ratio", L::expand_ratio);
  r.check_positive(c.mixer.normalize_epsilon, "mixer_cfg.normalize_epsilon", 1.0);
}

inline void parse_attn_cfg(const ConfigReader& r, const nlohmann::json* a, ModelConfig& c) {
  using L = ConfigLimits;
  constexpr std::string_view p = "attn_cfg";
  if (a) {
    const auto& j = *a;
    c.attn.num_heads = r.get_opt_int(j, p, "num_heads", 0).value_or(0);
    if (const auto* v = ConfigReader::get(j, "num_heads"); v && !v->is_null())
      r.check_range(c.attn.num_heads, "attn_cfg.num_heads", 1, L::d_model);
    c.attn.num_heads_k = r.get_opt_int(j, p, "num_heads_k", 0).value_or(0);
    if (const auto* v = ConfigReader::get(j, "num_heads_k"); v && !v->is_null())
      r.check_range(c.attn.num_heads_k, "attn_cfg.num_heads_k", 1, L::d_model);
    c.attn.num_heads_v = r.get_opt_int(j, p, "num_heads_v", 0).value_or(0);
    if (const auto* v = ConfigReader::get(j, "num_heads_v"); v && !v->is_null())
      r.check_range(c.attn.num_heads_v, "attn_cfg.num_heads_v", 1, L::d_model);
    c.attn.window_size = r.get_opt_int(j, p, "window_size", 0).value_or(0);
    c.attn.rotary_emb_dim = r.get_int(j, p, "rotary_emb_dim", c.attn.rotary_emb_dim);
    c.attn.rotary_emb_base = r.get_number(j, p, "rotary_emb_base", c.attn.rotary_emb_base);
    c.attn.rotary_emb_interleaved =
        r.get_bool(j, p, "rotary_emb_interleaved", c.attn.rotary_emb_interleaved);
    if (const auto* s = ConfigReader::get(j, "softmax_scale"); s && !s->is_null()) {
      if (s->is_string() && s->get_ref<const std::string&>() == "norm")
        r.fail("attn_cfg.softmax_scale", "is \"norm\": that attention variant is unsupported");
      if (!s->is_number())
        r.fail("attn_cfg.softmax_scale",
               "must be null or a number, got " + ConfigReader::describe(*s));
      c.attn.softmax_scale = r.to_number(*s, "attn_cfg.softmax_scale");
      r.check_positive(*c.attn.softmax_scale, "attn_cfg.softmax_scale", 1e6);
    } else {
      c.attn.softmax_scale.reset();
    }
    c.attn.ffn_expand_ratio = r.get_number(j, p, "ffn_expand_ratio", c.attn.ffn_expand_ratio);
  }
  if (c.attn.rotary_emb_interleaved)
    r.fail("attn_cfg.rotary_emb_interleaved", "is true: interleaved RoPE is unsupported");
  const int d = c.d_model;
  const int h = c.num_heads();
  if (h <= 0)
    r.fail("attn_cfg.num_heads", "is absent or null, and d_model / 128 = " +
                                     std::to_string(d / 128) + " heads is not a valid default");
  if (d % h != 0)
    r.fail("attn_cfg.num_heads",
           "= " + std::to_string(h) + " does not divide d_model = " + std::to_string(d));
  if (h % c.num_heads_k() != 0)
    r.fail("attn_cfg.num_heads_k", "= " + std::to_string(c.num_heads_k()) +
                                       " does not divide num_heads = " + std::to_string(h));
  if (h % c.num_heads_v() != 0)
    r.fail("attn_cfg.num_heads_v", "= " + std::to_string(c.num_heads_v()) +
                                       " does not divide num_heads = " + std::to_string(h));
  if (c.attn.rotary_emb_dim < -1)
    r.fail("attn_cfg.rotary_emb_dim", "must be -1 (head dim), 0 (none) or positive, got " +
                                          std::to_string(c.attn.rotary_emb_dim));
  const int rd = c.rotary_dim();
  if (rd % 2 != 0 || rd > c.head_dim())
    r.fail("attn_cfg.rotary_emb_dim", "= " + std::to_string(rd) +
                                          " must be even and at most the head dim " +
                                          std::to_string(c.head_dim()));
  r.check_positive(c.attn.rotary_emb_base, "attn_cfg.rotary_emb_base", 1e30);
  r.check_positive(c.attn.ffn_expand_ratio, "attn_cfg.ffn_expand_ratio", L::expand_ratio);
}

inline void check_token_id(const ConfigReader& r, int id, const char* key, int vocab) {
  if (id < 0 || id >= vocab)
    r.fail(key, "= " + std::to_string(id) + " is outside the vocabulary [0, " +
                    std::to_string(vocab) + ")");
}

}  // namespace detail

/// Parses and validates the text of a Hugging Face config.json (SPEC section 1). Unknown keys are
/// ignored and absent keys take their defaults. A null (or -1) bos_token_id / eos_token_id becomes
/// -1, meaning none; an eos_token_id list fills eos_token_ids and its first entry is eos_token_id.
/// Throws ConfigError naming `source` and the offending key.
inline ModelConfig parse_config(std::string_view json_text,
                                std::string_view source = "config.json") {
  using L = detail::ConfigLimits;
  const detail::ConfigReader r(source);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(std::string(source) + ": invalid JSON: " + e.what());
  }
  if (!j.is_object()) throw ConfigError(std::string(source) + ": top level is not a JSON object");

  ModelConfig c;
  try {
    if (auto mt = r.get_string(j, "", "model_type"); mt && *mt != "rodimus")
      r.fail("model_type", "must be \"rodimus\", got " + detail::printable(*mt));
    if (auto bt = r.get_string(j, "", "block_type")) {
      if (*bt == "rodimus") {
        c.block_type = BlockType::Rodimus;
      } else if (*bt == "rodimus_plus") {
        c.block_type = BlockType::RodimusPlus;
      } else {
        r.fail("block_type",
               "must be \"rodimus\" or \"rodimus_plus\", got " + detail::printable(*bt));
      }
    }
    c.d_model = r.get_int(j, "", "d_model", c.d_model);
    c.n_layer = r.get_int(j, "", "n_layer", c.n_layer);
    c.vocab_size = r.get_int(j, "", "vocab_size", c.vocab_size);
    c.norm_epsilon = r.get_number(j, "", "norm_epsilon", c.norm_epsilon);
    c.residual_in_fp32 = r.get_bool(j, "", "residual_in_fp32", c.residual_in_fp32);
    c.tie_word_embeddings = r.get_bool(j, "", "tie_word_embeddings", c.tie_word_embeddings);
    c.use_scale_embedding = r.get_bool(j, "", "use_scale_embedding", c.use_scale_embedding);
    c.use_norm_embedding = r.get_bool(j, "", "use_norm_embedding", c.use_norm_embedding);
    c.max_position_embeddings =
        r.get_int(j, "", "max_position_embeddings", c.max_position_embeddings);
    c.bos_token_id = r.get_opt_int(j, "", "bos_token_id", c.bos_token_id).value_or(-1);
    c.pad_token_id = r.get_opt_int(j, "", "pad_token_id", std::nullopt);
    c.eos_token_ids.clear();
    if (const auto* e = detail::ConfigReader::get(j, "eos_token_id"); e && e->is_array()) {
      if (e->empty()) r.fail("eos_token_id", "is an empty list");
      for (std::size_t i = 0; i < e->size(); ++i)
        c.eos_token_ids.push_back(r.to_int((*e)[i], "eos_token_id[" + std::to_string(i) + "]"));
      c.eos_token_id = c.eos_token_ids.front();
    } else {
      c.eos_token_id = r.get_opt_int(j, "", "eos_token_id", c.eos_token_id).value_or(-1);
      if (c.eos_token_id >= 0) c.eos_token_ids.push_back(c.eos_token_id);
    }

    r.check_range(c.d_model, "d_model", 1, L::d_model);
    r.check_range(c.n_layer, "n_layer", 0, L::n_layer);  // 0: no blocks (a bigram model)
    r.check_range(c.vocab_size, "vocab_size", 1, L::vocab_size);
    r.check_positive(c.norm_epsilon, "norm_epsilon", 1.0);
    r.check_range(c.max_position_embeddings, "max_position_embeddings", 1,
                  L::max_position_embeddings);
    // -1 (or null) means "none" for bos / eos
    if (c.bos_token_id != -1)
      detail::check_token_id(r, c.bos_token_id, "bos_token_id", c.vocab_size);
    if (c.eos_token_id != -1 || !c.eos_token_ids.empty())
      detail::check_token_id(r, c.eos_token_id, "eos_token_id", c.vocab_size);
    for (int id : c.eos_token_ids) detail::check_token_id(r, id, "eos_token_id", c.vocab_size);
    if (c.pad_token_id) detail::check_token_id(r, *c.pad_token_id, "pad_token_id", c.vocab_size);

    detail::parse_mixer_cfg(r, r.get_object(j, "mixer_cfg"), c);
    const auto* attn = r.get_object(j, "attn_cfg");
    if (c.is_plus()) detail::parse_attn_cfg(r, attn, c);
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(std::string(source) + ": " + e.what());
  }
  return c;
}

/// Reads and parses `file_or_dir` (a directory means its config.json).
inline ModelConfig load_config(const std::filesystem::path& file_or_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path file =
      fs::is_directory(file_or_dir, ec) ? file_or_dir / "config.json" : file_or_dir;
  std::ifstream in(file, std::ios::binary);
  if (!in || fs::is_directory(file, ec))
    throw ConfigError(file.string() + ": cannot open the config file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw ConfigError(file.string() + ": cannot read the config file");
  return parse_config(ss.str(), file.string());
}

/// The config.json object for `c`, in the published key spelling; parse_config reads it back
/// to an equal ModelConfig.
inline nlohmann::json config_to_json(const ModelConfig& c) {
  using nlohmann::json;
  auto opt = [](int v, bool present) { return present ? json(v) : json(nullptr); };
  json j = json::object();
  j["architectures"] = json::array({"RodimusForCausalLM"});
  j["model_type"] = "rodimus";
  j["block_type"] = c.is_plus() ? "rodimus_plus" : "rodimus";
  j["d_model"] = c.d_model;
  j["n_layer"] = c.n_layer;
  j["vocab_size"] = c.vocab_size;
  j["norm_epsilon"] = c.norm_epsilon;
  j["residual_in_fp32"] = c.residual_in_fp32;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["use_scale_embedding"] = c.use_scale_embedding;
  j["use_norm_embedding"] = c.use_norm_embedding;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["bos_token_id"] = opt(c.bos_token_id, c.bos_token_id >= 0);
  if (c.eos_token_ids.size() > 1) {
    j["eos_token_id"] = c.eos_token_ids;
  } else {
    j["eos_token_id"] = opt(c.eos_token_id, c.eos_token_id >= 0);
  }
  j["pad_token_id"] = c.pad_token_id ? json(*c.pad_token_id) : json(nullptr);
  j["mixer_cfg"] = {
      {"d_conv", c.mixer.d_conv},
      {"expand_ratio", c.mixer.expand_ratio},
      {"mem_size", c.mixer.mem_size},
      {"input_gate_low_rank",
       c.mixer.input_gate_low_rank > 0 ? json(c.mixer.input_gate_low_rank) : json("auto")},
      {"normalize_epsilon", c.mixer.normalize_epsilon},
  };
  json a = json::object();
  if (c.is_plus()) {
    a["num_heads"] = opt(c.attn.num_heads, c.attn.num_heads > 0);
    a["num_heads_k"] = opt(c.attn.num_heads_k, c.attn.num_heads_k > 0);
    a["num_heads_v"] = opt(c.attn.num_heads_v, c.attn.num_heads_v > 0);
    a["window_size"] = c.attn.window_size;
    a["rotary_emb_dim"] = c.attn.rotary_emb_dim;
    a["rotary_emb_base"] = c.attn.rotary_emb_base;
    a["rotary_emb_interleaved"] = c.attn.rotary_emb_interleaved;
    a["softmax_scale"] = c.attn.softmax_scale ? json(*c.attn.softmax_scale) : json(nullptr);
    a["ffn_expand_ratio"] = c.attn.ffn_expand_ratio;
  }
  j["attn_cfg"] = std::move(a);
  return j;
}

}  // namespace rodimus::io
