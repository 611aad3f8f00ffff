// Tests of Checkpoint: single files, shards, typed reads, and errors that name the tensor.
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "rodimus/io/checkpoint.hpp"
#include "rodimus/io/config_json.hpp"

namespace fs = std::filesystem;
using namespace rodimus;
using namespace rodimus::io;

namespace {

std::mt19937& ck_rng() {
  static std::mt19937 gen{std::random_device{}()};
  return gen;
}

std::vector<float> ck_random(std::size_t n) {
  std::uniform_real_distribution<float> dist(-4.f, 4.f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(ck_rng());
  return v;
}

struct CkTempDir {
  fs::path path;
  CkTempDir() {
    std::uniform_int_distribution<unsigned long long> d;
    path = fs::temp_directory_path() / ("rodimus_ck_" + std::to_string(d(ck_rng())));
    fs::create_directories(path);
  }
  ~CkTempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

void write_text(const fs::path& p, const std::string& s) {
  std::ofstream(p, std::ios::binary) << s;
}

template <class F>
std::string ck_error(F&& f) {
  try {
    f();
  } catch (const CheckpointError& e) {
    return e.what();
  }
  FAIL("no CheckpointError was thrown");
  return {};
}

/// Every tensor SPEC section 6 names for `c`, with its shape.
std::vector<std::pair<std::string, std::vector<std::int64_t>>> spec_tensors(const ModelConfig& c) {
  const std::int64_t D = c.d_model, E = c.d_inner(), n = c.mem_size(), K = c.d_conv(),
                     R = c.low_rank(), V = c.vocab_size;
  std::vector<std::pair<std::string, std::vector<std::int64_t>>> out = {
      {"model.embeddings.weight", {V, D}}, {"model.norm_f.weight", {D}}};
  if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", {V, D}});
  if (c.use_norm_embedding) out.push_back({"model.embed_norm.weight", {D}});
  for (int i = 0; i < c.n_layer; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    const std::string im = p + "mixer.inner_mixer.";
    out.insert(out.end(), {
                              {p + "mixer_norm.weight", {D}},
                              {p + "mixer.fc.weight", {2 * E, D}},
                              {p + "mixer.out_proj.weight", {D, E}},
                              {p + "mixer.act_norm.weight", {E}},
                              {im + "short_conv.conv1d.weight", {E, 1, K}},
                              {im + "short_conv.conv1d.bias", {E}},
                              {im + "residual_weight", {E}},
                              {im + "in_proj.weight", {2 * n, E}},
                              {im + "ch_gate_proj.0.weight", {R, E}},
                              {im + "ch_gate_proj.1.weight", {E, R}},
                              {im + "ch_gate_proj.1.bias", {E}},
                              {im + "mem_gate_proj.weight", {2 * n, E}},
                              {im + "mem_gate_proj.bias", {2 * n}},
                          });
    if (c.is_plus()) {
      const std::int64_t hd = c.head_dim(), F = c.ffn_dim();
      out.insert(out.end(), {
                                {p + "attn_norm.weight", {D}},
                                {p + "attn.q_proj.weight", {c.num_heads() * hd, D}},
                                {p + "attn.k_proj.weight", {c.num_heads_k() * hd, D}},
                                {p + "attn.v_proj.weight", {c.num_heads_v() * hd, D}},
                                {p + "attn.out_proj.weight", {D, D}},
                                {p + "ffn_norm.weight", {D}},
                                {p + "ffn.fc.weight", {2 * F, D}},
                                {p + "ffn.out_proj.weight", {D, F}},
                            });
    }
  }
  return out;
}

}  // namespace

TEST_CASE("Checkpoint: single file, typed reads and require errors", "[io][checkpoint]") {
  CkTempDir dir;
  const auto w = ck_random(6);
  std::vector<fp16> h;
  std::vector<bf16> b;
  for (float x : w) h.push_back(from_f32<fp16>(x));
  for (float x : w) b.push_back(from_f32<bf16>(x));
  const std::int64_t ids[2] = {3, 4};
  const std::vector<TensorWrite> ws = {{"w32", StDType::F32, {2, 3}, w.data()},
                                       {"w16", StDType::F16, {2, 3}, h.data()},
                                       {"wbf", StDType::BF16, {2, 3}, b.data()},
                                       {"ids", StDType::I64, {2}, ids}};
  write_safetensors(dir.path / "model.safetensors", ws);

  for (const fs::path& p : {dir.path, dir.path / "model.safetensors"}) {
    INFO(p.string());
    const auto ck = Checkpoint::open(p);
    CHECK(ck.dir() == dir.path);
    CHECK(ck.names() == std::vector<std::string>{"ids", "w16", "w32", "wbf"});
    CHECK(ck.find("w32") != nullptr);
    CHECK(ck.find("nope") == nullptr);
    CHECK(&ck.require("w32", {2, 3}) == ck.find("w32"));

    // fp32 source: exact to float, rounded to half types
    CHECK(ck.read_f32("w32", {2, 3}) == w);
    std::vector<fp16> h2(6);
    std::vector<bf16> b2(6);
    ck.read<fp16>("w32", {2, 3}, h2.data());
    ck.read<bf16>("w32", {2, 3}, b2.data());
    for (int i = 0; i < 6; ++i) {
      CHECK(h2[i].bits == h[i].bits);
      CHECK(b2[i].bits == b[i].bits);
    }
    // half sources widen exactly
    const auto from16 = ck.read_f32("w16", {2, 3});
    const auto frombf = ck.read_f32("wbf", {2, 3});
    for (int i = 0; i < 6; ++i) {
      CHECK(from16[i] == to_f32(h[i]));
      CHECK(frombf[i] == to_f32(b[i]));
    }
    // fp16 -> bf16 goes through fp32
    std::vector<bf16> b3(6);
    const std::vector<std::int64_t> shape = {2, 3};
    ck.read<bf16>("w16", shape, b3.data());
    for (int i = 0; i < 6; ++i) CHECK(b3[i].bits == from_f32<bf16>(to_f32(h[i])).bits);

    const std::string where = "checkpoint " + p.string() + ": ";
    CHECK(ck_error([&] { ck.require("nope", {1}); }) == where + "tensor 'nope' is missing");
    CHECK(ck_error([&] {
            ck.require("w32", {3, 2});
          }) == where + "tensor 'w32' has shape [2, 3], expected [3, 2]");
    CHECK(ck_error([&] { ck.require("w32", {6}); }) ==
          where + "tensor 'w32' has shape [2, 3], expected [6]");
    CHECK(ck_error([&] { ck.require("ids", {2}); }) ==
          where + "tensor 'ids' has dtype I64, expected F32, F16 or BF16");
    CHECK_THROWS_AS(ck.read_f32("ids", {2}), CheckpointError);
  }
}

TEST_CASE("Checkpoint: reads from unaligned data", "[io][checkpoint]") {
  // a 1-byte tensor first puts the float data at an odd offset
  const auto w = ck_random(5);
  const std::uint8_t pad = 7;
  const std::vector<TensorWrite> ws = {{"a", StDType::U8, {1}, &pad},
                                       {"w", StDType::F32, {5}, w.data()}};
  CkTempDir dir;
  write_safetensors(dir.path / "m.safetensors", ws);
  const auto ck = Checkpoint::open(dir.path / "m.safetensors");
  CHECK(reinterpret_cast<std::uintptr_t>(ck.find("w")->bytes.data()) % 4 != 0);
  CHECK(ck.read_f32("w", {5}) == w);
}

TEST_CASE("Checkpoint: sharded directory with model.safetensors.index.json", "[io][checkpoint]") {
  CkTempDir dir;
  const auto a = ck_random(8), b = ck_random(3), c = ck_random(4);
  const std::vector<TensorWrite> s1 = {{"x.a", StDType::F32, {2, 4}, a.data()},
                                       {"x.b", StDType::F32, {3}, b.data()}};
  const std::vector<TensorWrite> s2 = {{"y.c", StDType::F32, {4}, c.data()}};
  write_safetensors(dir.path / "model-00001-of-00002.safetensors", s1);
  write_safetensors(dir.path / "model-00002-of-00002.safetensors", s2);
  const std::string good_index = R"({"metadata":{"total_size":60},"weight_map":{
      "x.a":"model-00001-of-00002.safetensors","x.b":"model-00001-of-00002.safetensors",
      "y.c":"model-00002-of-00002.safetensors"}})";
  const auto index = dir.path / "model.safetensors.index.json";

  SECTION("good") {
    write_text(index, good_index);
    // a stray single file is ignored when an index exists
    write_safetensors(dir.path / "model.safetensors", s2);
    for (const fs::path& p : {dir.path, index}) {
      const auto ck = Checkpoint::open(p);
      CHECK(ck.shards().size() == 2);
      CHECK(ck.names() == std::vector<std::string>{"x.a", "x.b", "y.c"});
      CHECK(ck.read_f32("x.a", {2, 4}) == a);
      CHECK(ck.read_f32("x.b", {3}) == b);
      CHECK(ck.read_f32("y.c", {4}) == c);
      CHECK(ck.dir() == dir.path);
    }
    // moving keeps the tensor views valid
    auto ck = Checkpoint::open(dir.path);
    Checkpoint moved = std::move(ck);
    CHECK(moved.read_f32("y.c", {4}) == c);
  }
  SECTION("missing shard") {
    fs::remove(dir.path / "model-00002-of-00002.safetensors");
    write_text(index, good_index);
    const auto msg = ck_error([&] { Checkpoint::open(dir.path); });
    CHECK_THAT(msg, Catch::Contains("model-00002-of-00002.safetensors"));
    CHECK_THAT(msg, Catch::Contains("cannot open"));
  }
  SECTION("tensor listed in the index but absent from its shard") {
    write_text(index, R"({"weight_map":{"x.a":"model-00001-of-00002.safetensors",
                                      "y.c":"model-00001-of-00002.safetensors"}})");
    const auto msg = ck_error([&] { Checkpoint::open(dir.path); });
    CHECK_THAT(msg, Catch::Contains("'y.c' is listed in weight_map but missing from"));
    CHECK_THAT(msg, Catch::Contains("model-00001-of-00002.safetensors"));
  }
  SECTION("malformed index") {
    auto bad = [&](const std::string& text, const std::string& fragment) {
      write_text(index, text);
      const auto msg = ck_error([&] { Checkpoint::open(dir.path); });
      CHECK_THAT(msg, Catch::Contains("model.safetensors.index.json"));
      CHECK_THAT(msg, Catch::Contains(fragment));
    };
    bad("{", "invalid JSON");
    bad("[]", "not a JSON object");
    bad(R"({"metadata":{}})", "missing 'weight_map'");
    bad(R"({"weight_map":[]})", "'weight_map' is not an object");
    bad(R"({"weight_map":{"x.a":1}})", "entry 'x.a' is not a string");
    bad(R"({"weight_map":{"x.a":"../model-00001-of-00002.safetensors"}})", "not a plain file name");
    bad(R"({"weight_map":{"x.a":"sub/model.safetensors"}})", "not a plain file name");
    bad(R"({"weight_map":{"x.a":".."}})", "not a plain file name");
    bad(R"({"weight_map":{"x.a":""}})", "not a plain file name");
  }
  SECTION("a corrupt shard is reported with its path") {
    write_text(index, good_index);
    write_text(dir.path / "model-00002-of-00002.safetensors",
               std::string("\x10\0\0\0\0\0\0\0{}", 10));
    const auto msg = ck_error([&] { Checkpoint::open(dir.path); });
    CHECK_THAT(msg, Catch::Contains("model-00002-of-00002.safetensors"));
    CHECK_THAT(msg, Catch::Contains("header length 16 exceeds"));
  }
}

TEST_CASE("Checkpoint::open errors", "[io][checkpoint]") {
  CkTempDir dir;
  CHECK_THAT(ck_error([&] { Checkpoint::open(dir.path / "nothing"); }),
             Catch::Contains("does not exist"));
  CHECK_THAT(ck_error([&] { Checkpoint::open(dir.path); }),
             Catch::Contains("neither model.safetensors.index.json nor model.safetensors"));
}

TEST_CASE("golden checkpoints hold every SPEC tensor with the config's shapes",
          "[io][checkpoint][golden]") {
  const fs::path root = fs::path(RODIMUS_TEST_DATA_DIR) / "golden";
  for (const char* name : {"tiny_rodimus", "tiny_rodimus_plus", "strong_decay_rodimus"}) {
    INFO(name);
    const ModelConfig cfg = load_config(root / name);
    const auto ck = Checkpoint::open(root / name);
    const auto expected = spec_tensors(cfg);
    for (const auto& [tname, shape] : expected) {
      INFO(tname);
      const TensorRef& t = ck.require(tname, shape);
      CHECK(t.dtype == StDType::F32);
    }
    CHECK(ck.names().size() == expected.size());
    // a mis-shaped request names the tensor and both shapes
    CHECK_THAT(
        ck_error([&] { ck.require("model.norm_f.weight", {cfg.d_model + 1}); }),
        Catch::Contains("'model.norm_f.weight' has shape [" + std::to_string(cfg.d_model) + "]"));
  }
}
