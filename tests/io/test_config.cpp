// Tests of config.json parsing: golden configs, defaults, round trips, and errors naming the key.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>

#include "rodimus/io/config_json.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace rodimus;
using namespace rodimus::io;

namespace {

std::string cfg_error(const std::string& text) {
  try {
    parse_config(text, "cfg.json");
  } catch (const ConfigError& e) {
    return e.what();
  }
  FAIL("no ConfigError was thrown for " << text);
  return {};
}

void check_same(const ModelConfig& a, const ModelConfig& b) {
  CHECK(a.block_type == b.block_type);
  CHECK(a.d_model == b.d_model);
  CHECK(a.n_layer == b.n_layer);
  CHECK(a.vocab_size == b.vocab_size);
  CHECK(a.norm_epsilon == b.norm_epsilon);
  CHECK(a.residual_in_fp32 == b.residual_in_fp32);
  CHECK(a.tie_word_embeddings == b.tie_word_embeddings);
  CHECK(a.use_scale_embedding == b.use_scale_embedding);
  CHECK(a.use_norm_embedding == b.use_norm_embedding);
  CHECK(a.max_position_embeddings == b.max_position_embeddings);
  CHECK(a.bos_token_id == b.bos_token_id);
  CHECK(a.eos_token_id == b.eos_token_id);
  CHECK(a.eos_token_ids == b.eos_token_ids);
  CHECK(a.pad_token_id == b.pad_token_id);
  CHECK(a.mixer.d_conv == b.mixer.d_conv);
  CHECK(a.mixer.expand_ratio == b.mixer.expand_ratio);
  CHECK(a.mixer.mem_size == b.mixer.mem_size);
  CHECK(a.mixer.input_gate_low_rank == b.mixer.input_gate_low_rank);
  CHECK(a.mixer.normalize_epsilon == b.mixer.normalize_epsilon);
  CHECK(a.d_inner() == b.d_inner());
  CHECK(a.low_rank() == b.low_rank());
  if (a.is_plus()) {
    CHECK(a.attn.num_heads == b.attn.num_heads);
    CHECK(a.attn.num_heads_k == b.attn.num_heads_k);
    CHECK(a.attn.num_heads_v == b.attn.num_heads_v);
    CHECK(a.attn.window_size == b.attn.window_size);
    CHECK(a.attn.rotary_emb_dim == b.attn.rotary_emb_dim);
    CHECK(a.attn.rotary_emb_base == b.attn.rotary_emb_base);
    CHECK(a.attn.softmax_scale == b.attn.softmax_scale);
    CHECK(a.attn.ffn_expand_ratio == b.attn.ffn_expand_ratio);
    CHECK(a.head_dim() == b.head_dim());
    CHECK(a.ffn_dim() == b.ffn_dim());
    CHECK(a.rotary_dim() == b.rotary_dim());
    CHECK(a.window_back() == b.window_back());
    CHECK(a.attn_scale() == b.attn_scale());
  }
}

/// A valid Rodimus+ config as JSON, for mutation.
json plus_config() {
  return json::parse(R"({
    "model_type": "rodimus", "block_type": "rodimus_plus", "d_model": 256, "n_layer": 3,
    "vocab_size": 1000, "norm_epsilon": 1e-6, "tie_word_embeddings": true,
    "bos_token_id": 1, "eos_token_id": [2, 3], "pad_token_id": 0,
    "mixer_cfg": {"d_conv": 3, "expand_ratio": 1.5, "mem_size": 32, "input_gate_low_rank": 24},
    "attn_cfg": {"num_heads": 4, "num_heads_k": 1, "num_heads_v": 2, "window_size": 64,
                 "rotary_emb_dim": 32, "softmax_scale": 0.25, "ffn_expand_ratio": 2.5}
  })");
}

}  // namespace

TEST_CASE("golden configs parse with the expected derived sizes", "[io][config][golden]") {
  const fs::path root = fs::path(RODIMUS_TEST_DATA_DIR) / "golden";

  const ModelConfig r = load_config(root / "tiny_rodimus");
  CHECK(r.block_type == BlockType::Rodimus);
  CHECK(r.d_model == 64);
  CHECK(r.n_layer == 2);
  CHECK(r.vocab_size == 97);
  CHECK(r.d_inner() == 128);
  CHECK(r.mem_size() == 16);
  CHECK(r.d_conv() == 4);
  CHECK(r.mixer.input_gate_low_rank == -1);
  CHECK(r.low_rank() == 16);
  CHECK(r.norm_epsilon == 1e-5);
  CHECK(r.residual_in_fp32);
  CHECK_FALSE(r.tie_word_embeddings);
  CHECK_FALSE(r.use_scale_embedding);
  CHECK_FALSE(r.use_norm_embedding);
  CHECK(r.bos_token_id == 0);
  CHECK(r.eos_token_id == 0);
  CHECK(r.eos_token_ids == std::vector<int>{0});
  CHECK_FALSE(r.pad_token_id.has_value());

  const ModelConfig p = load_config(root / "tiny_rodimus_plus" / "config.json");
  CHECK(p.is_plus());
  CHECK(p.d_model == 128);
  CHECK(p.d_inner() == 256);
  CHECK(p.num_heads() == 2);
  CHECK(p.num_heads_k() == 1);
  CHECK(p.num_heads_v() == 2);
  CHECK(p.head_dim() == 64);
  CHECK(p.rotary_dim() == 64);
  CHECK(p.window_back() == 8);
  CHECK(p.ffn_dim() == 176);
  CHECK(p.attn_scale() == Approx(0.125));
  CHECK(p.attn.rotary_emb_base == 10000.0);

  const ModelConfig s = load_config(root / "strong_decay_rodimus");
  CHECK(s.vocab_size == 61);
  CHECK(s.mem_size() == 32);
  CHECK(s.mixer.input_gate_low_rank == 16);
  CHECK(s.low_rank() == 16);

  for (const auto* c : {&r, &p, &s}) {
    INFO(config_to_json(*c).dump());
    check_same(*c, parse_config(config_to_json(*c).dump()));
  }
}

TEST_CASE("config defaults", "[io][config]") {
  const ModelConfig c = parse_config("{}");
  CHECK(c.block_type == BlockType::Rodimus);
  CHECK(c.d_model == 2048);
  CHECK(c.n_layer == 24);
  CHECK(c.vocab_size == 50277);
  CHECK(c.d_inner() == 4096);
  CHECK(c.low_rank() == 32);
  CHECK(c.mem_size() == 64);
  CHECK(c.d_conv() == 4);
  CHECK(c.max_position_embeddings == 2048);
  CHECK(c.mixer.normalize_epsilon == 1e-12);

  const ModelConfig p =
      parse_config(R"({"block_type":"rodimus_plus","d_model":1024,"attn_cfg":{"num_heads":null}})");
  CHECK(p.num_heads() == 8);
  CHECK(p.head_dim() == 128);
  CHECK(p.num_heads_k() == 8);
  CHECK(p.window_back() == -1);
  CHECK(p.ffn_dim() == 1368);  // round_up(1024 * 4/3, 8)
  const ModelConfig q = parse_config(R"({"block_type":"rodimus_plus","d_model":512})");
  CHECK(q.num_heads() == 4);
  // integral floats are accepted for integer keys; unknown keys are ignored
  const ModelConfig f =
      parse_config(R"({"d_model": 64.0, "whatever": [1, {"x": null}], "attn_cfg": null})");
  CHECK(f.d_model == 64);
  // null bos / eos mean none
  const ModelConfig n = parse_config(R"({"bos_token_id": null, "eos_token_id": null})");
  CHECK(n.bos_token_id == -1);
  CHECK(n.eos_token_id == -1);
  CHECK(n.eos_token_ids.empty());
  check_same(n, parse_config(config_to_json(n).dump()));
}

TEST_CASE("config round trip of a non-default Rodimus+ config", "[io][config]") {
  const ModelConfig c = parse_config(plus_config().dump());
  CHECK(c.eos_token_id == 2);
  CHECK(c.eos_token_ids == std::vector<int>{2, 3});
  CHECK(c.pad_token_id == 0);
  CHECK(c.attn.softmax_scale == 0.25);
  CHECK(c.d_inner() == 384);
  CHECK(c.low_rank() == 24);
  CHECK(c.ffn_dim() == 640);
  CHECK(c.rotary_dim() == 32);
  CHECK(c.window_back() == 32);
  const json j = config_to_json(c);
  CHECK(j["model_type"] == "rodimus");
  CHECK(j["block_type"] == "rodimus_plus");
  CHECK(j["mixer_cfg"]["input_gate_low_rank"] == 24);
  check_same(c, parse_config(j.dump()));

  // random sizes that satisfy the constraints round-trip too
  std::mt19937 gen{std::random_device{}()};
  for (int it = 0; it < 50; ++it) {
    ModelConfig r;
    r.block_type = (gen() % 2) ? BlockType::RodimusPlus : BlockType::Rodimus;
    const int heads = 1 << (gen() % 4);
    r.d_model = heads * 2 * static_cast<int>(1 + gen() % 64);
    r.n_layer = 1 + static_cast<int>(gen() % 48);
    r.vocab_size = 1 + static_cast<int>(gen() % 100000);
    r.norm_epsilon = std::uniform_real_distribution<double>(1e-8, 1e-3)(gen);
    r.eos_token_id = static_cast<int>(gen() % static_cast<unsigned>(r.vocab_size));
    r.eos_token_ids = {r.eos_token_id};
    r.mixer.expand_ratio = std::uniform_real_distribution<double>(0.5, 4.0)(gen);
    r.mixer.mem_size = 1 + static_cast<int>(gen() % 256);
    r.mixer.input_gate_low_rank = (gen() % 2) ? -1 : 1 + static_cast<int>(gen() % 64);
    if (r.is_plus()) {
      r.attn.num_heads = heads;
      r.attn.num_heads_k = 1;
      r.attn.window_size = static_cast<int>(gen() % 300) - 10;
      r.attn.rotary_emb_dim = (gen() % 2) ? -1 : 0;
      r.attn.ffn_expand_ratio = std::uniform_real_distribution<double>(1.0, 4.0)(gen);
    }
    INFO(config_to_json(r).dump());
    check_same(r, parse_config(config_to_json(r).dump()));
  }
}

TEST_CASE("config errors name the key", "[io][config]") {
  struct Case {
    std::function<void(json&)> mutate;
    std::string key;      // must appear as 'key'
    std::string message;  // another fragment
  };
  const std::vector<Case> cases = {
      {[](json& j) { j["model_type"] = "llama"; }, "model_type", "must be \"rodimus\""},
      {[](json& j) { j["model_type"] = 3; }, "model_type", "must be a string, got number"},
      {[](json& j) { j["block_type"] = "mamba"; }, "block_type", "\"rodimus\" or \"rodimus_plus\""},
      {[](json& j) { j["d_model"] = "256"; }, "d_model", "must be an integer, got string"},
      {[](json& j) { j["d_model"] = 256.5; }, "d_model", "must be an integer, got number 256.5"},
      {[](json& j) { j["d_model"] = 0; }, "d_model", "must be in [1, 65536]"},
      {[](json& j) { j["d_model"] = 1 << 20; }, "d_model", "must be in [1, 65536]"},
      {[](json& j) { j["d_model"] = 1e300; }, "d_model", "out of range"},
      {[](json& j) { j["d_model"] = 1ll << 40; }, "d_model", "out of range"},
      {[](json& j) { j["d_model"] = nullptr; }, "d_model", "got null"},
      {[](json& j) { j["n_layer"] = -1; }, "n_layer", "must be in [0, 1024]"},
      {[](json& j) { j["n_layer"] = true; }, "n_layer", "must be an integer, got boolean"},
      {[](json& j) { j["vocab_size"] = 0; }, "vocab_size", "must be in"},
      {[](json& j) { j["vocab_size"] = 20'000'000; }, "vocab_size", "must be in"},
      {[](json& j) { j["norm_epsilon"] = 0; }, "norm_epsilon", "must be in (0"},
      {[](json& j) { j["norm_epsilon"] = "1e-5"; }, "norm_epsilon", "must be a number, got string"},
      {[](json& j) { j["residual_in_fp32"] = 1; }, "residual_in_fp32",
       "must be a boolean, got number"},
      {[](json& j) { j["tie_word_embeddings"] = "true"; }, "tie_word_embeddings",
       "must be a boolean"},
      {[](json& j) { j["use_scale_embedding"] = nullptr; }, "use_scale_embedding",
       "must be a boolean"},
      {[](json& j) { j["use_norm_embedding"] = 0; }, "use_norm_embedding", "must be a boolean"},
      {[](json& j) { j["max_position_embeddings"] = 0; }, "max_position_embeddings", "must be in"},
      {[](json& j) { j["bos_token_id"] = 1000; }, "bos_token_id",
       "outside the vocabulary [0, 1000)"},
      {[](json& j) { j["bos_token_id"] = -5; }, "bos_token_id", "outside the vocabulary"},
      {[](json& j) { j["eos_token_id"] = 5000; }, "eos_token_id", "outside the vocabulary"},
      {[](json& j) {
         j["eos_token_id"] = json::array({2, 1000});
       },
       "eos_token_id", "outside the vocabulary"},
      {[](json& j) {
         j["eos_token_id"] = json::array({2, "x"});
       },
       "eos_token_id[1]", "must be an integer"},
      {[](json& j) { j["eos_token_id"] = json::array(); }, "eos_token_id", "empty list"},
      {[](json& j) { j["eos_token_id"] = "</s>"; }, "eos_token_id",
       "must be an integer, got string"},
      {[](json& j) { j["pad_token_id"] = 1000; }, "pad_token_id", "outside the vocabulary"},
      {[](json& j) { j["pad_token_id"] = 1.5; }, "pad_token_id", "must be an integer"},
      {[](json& j) { j["mixer_cfg"] = json::array(); }, "mixer_cfg",
       "must be an object, got array"},
      {[](json& j) { j["mixer_cfg"]["mem_size"] = "16"; }, "mixer_cfg.mem_size",
       "must be an integer, got string"},
      {[](json& j) { j["mixer_cfg"]["mem_size"] = 0; }, "mixer_cfg.mem_size",
       "must be in [1, 4096]"},
      {[](json& j) { j["mixer_cfg"]["d_conv"] = 0; }, "mixer_cfg.d_conv", "must be in [1, 64]"},
      {[](json& j) { j["mixer_cfg"]["d_conv"] = 65; }, "mixer_cfg.d_conv", "must be in [1, 64]"},
      {[](json& j) { j["mixer_cfg"]["expand_ratio"] = 0; }, "mixer_cfg.expand_ratio",
       "must be in (0"},
      {[](json& j) { j["mixer_cfg"]["expand_ratio"] = -2; }, "mixer_cfg.expand_ratio",
       "must be in (0"},
      {[](json& j) { j["mixer_cfg"]["expand_ratio"] = 1e10; }, "mixer_cfg.expand_ratio",
       "must be in (0"},
      {[](json& j) { j["mixer_cfg"]["expand_ratio"] = "2"; }, "mixer_cfg.expand_ratio",
       "must be a number"},
      {[](json& j) { j["mixer_cfg"]["input_gate_low_rank"] = "big"; },
       "mixer_cfg.input_gate_low_rank", "integer or \"auto\""},
      {[](json& j) { j["mixer_cfg"]["input_gate_low_rank"] = 0; }, "mixer_cfg.input_gate_low_rank",
       "must be in"},
      {[](json& j) { j["mixer_cfg"]["input_gate_low_rank"] = 2.5; },
       "mixer_cfg.input_gate_low_rank", "must be an integer"},
      {[](json& j) { j["mixer_cfg"]["input_gate_low_rank"] = nullptr; },
       "mixer_cfg.input_gate_low_rank", "integer or \"auto\", got null"},
      {[](json& j) { j["mixer_cfg"]["normalize_epsilon"] = 0; }, "mixer_cfg.normalize_epsilon",
       "must be in (0"},
      {[](json& j) { j["attn_cfg"] = "x"; }, "attn_cfg", "must be an object, got string"},
      {[](json& j) { j["attn_cfg"]["num_heads"] = 3; }, "attn_cfg.num_heads",
       "does not divide d_model = 256"},
      {[](json& j) { j["attn_cfg"]["num_heads"] = 0; }, "attn_cfg.num_heads", "must be in"},
      {[](json& j) { j["attn_cfg"]["num_heads"] = "4"; }, "attn_cfg.num_heads",
       "must be an integer"},
      {[](json& j) {
         j["d_model"] = 64;
         j["attn_cfg"].erase("num_heads");
       },
       "attn_cfg.num_heads", "d_model / 128 = 0"},
      {[](json& j) { j["attn_cfg"]["num_heads_k"] = 3; }, "attn_cfg.num_heads_k",
       "does not divide num_heads = 4"},
      {[](json& j) { j["attn_cfg"]["num_heads_v"] = 8; }, "attn_cfg.num_heads_v",
       "does not divide num_heads = 4"},
      {[](json& j) { j["attn_cfg"]["num_heads_v"] = -1; }, "attn_cfg.num_heads_v", "must be in"},
      {[](json& j) { j["attn_cfg"]["window_size"] = "64"; }, "attn_cfg.window_size",
       "must be an integer"},
      {[](json& j) { j["attn_cfg"]["rotary_emb_dim"] = 31; }, "attn_cfg.rotary_emb_dim",
       "must be even"},
      {[](json& j) { j["attn_cfg"]["rotary_emb_dim"] = 66; }, "attn_cfg.rotary_emb_dim",
       "at most the head dim 64"},
      {[](json& j) { j["attn_cfg"]["rotary_emb_dim"] = -2; }, "attn_cfg.rotary_emb_dim",
       "must be -1"},
      {[](json& j) { j["attn_cfg"]["rotary_emb_base"] = 0; }, "attn_cfg.rotary_emb_base",
       "must be in (0"},
      {[](json& j) { j["attn_cfg"]["rotary_emb_interleaved"] = true; },
       "attn_cfg.rotary_emb_interleaved", "unsupported"},
      {[](json& j) { j["attn_cfg"]["rotary_emb_interleaved"] = "no"; },
       "attn_cfg.rotary_emb_interleaved", "must be a boolean"},
      {[](json& j) { j["attn_cfg"]["softmax_scale"] = "norm"; }, "attn_cfg.softmax_scale",
       "unsupported"},
      {[](json& j) { j["attn_cfg"]["softmax_scale"] = "x"; }, "attn_cfg.softmax_scale",
       "null or a number"},
      {[](json& j) { j["attn_cfg"]["softmax_scale"] = -1.0; }, "attn_cfg.softmax_scale",
       "must be in (0"},
      {[](json& j) { j["attn_cfg"]["ffn_expand_ratio"] = 0; }, "attn_cfg.ffn_expand_ratio",
       "must be in (0"},
      {[](json& j) { j["attn_cfg"]["ffn_expand_ratio"] = false; }, "attn_cfg.ffn_expand_ratio",
       "must be a number, got boolean"},
  };
  for (const auto& c : cases) {
    json j = plus_config();
    c.mutate(j);
    INFO(j.dump());
    const std::string msg = cfg_error(j.dump());
    CHECK_THAT(msg, Catch::StartsWith("cfg.json: "));
    CHECK_THAT(msg, Catch::Contains("'" + c.key + "'"));
    CHECK_THAT(msg, Catch::Contains(c.message));
  }
}

TEST_CASE("config: the attention keys matter only for rodimus_plus", "[io][config]") {
  json j = plus_config();
  j["block_type"] = "rodimus";
  j["attn_cfg"]["num_heads"] = 3;
  j["attn_cfg"]["rotary_emb_interleaved"] = true;
  const ModelConfig c = parse_config(j.dump());
  CHECK_FALSE(c.is_plus());
  CHECK(c.attn.num_heads == 0);
}

TEST_CASE("config: invalid JSON and unreadable files", "[io][config]") {
  CHECK_THAT(cfg_error("{\"d_model\": "),
             Catch::StartsWith("cfg.json: invalid JSON") && Catch::Contains("parse error"));
  CHECK_THAT(cfg_error(""), Catch::Contains("invalid JSON"));
  CHECK_THAT(cfg_error(R"({"d_model": 1e400})"),
             Catch::Contains("invalid JSON") && Catch::Contains("overflow"));
  CHECK_THAT(cfg_error(std::string(400, '7')), Catch::Contains("invalid JSON"));
  CHECK_THAT(cfg_error("[1, 2]"), Catch::Contains("not a JSON object"));
  CHECK_THAT(cfg_error("\"rodimus\""), Catch::Contains("not a JSON object"));

  const fs::path dir =
      fs::temp_directory_path() / ("rodimus_cfg_" + std::to_string(std::random_device{}()) +
                                   std::to_string(std::random_device{}()));
  fs::create_directories(dir);
  CHECK_THROWS_AS(load_config(dir), ConfigError);
  CHECK_THROWS_WITH(load_config(dir / "missing.json"), Catch::Contains("missing.json"));
  std::ofstream(dir / "config.json") << R"({"d_model": 128, "mixer_cfg": {"mem_size": -3}})";
  CHECK_THROWS_WITH(load_config(dir), Catch::Contains((dir / "config.json").string()) &&
                                          Catch::Contains("'mixer_cfg.mem_size'"));
  std::ofstream(dir / "config.json") << R"({"d_model": 128})";
  CHECK(load_config(dir).d_model == 128);
  fs::remove_all(dir);
}
