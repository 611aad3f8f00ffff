// Config paths the golden models do not cover (tied head, embedding scale and norm, no window,
// grouped key heads, partial RoPE, bf16/fp16 checkpoints), on random-weight checkpoints, against
// the fp64 reference model.
#include <catch2/catch.hpp>
#include <filesystem>
#include <random>

#include "rodimus/io/random_checkpoint.hpp"
#include "rodimus/model/model.hpp"
#include "rodimus/reference/model.hpp"

using namespace rodimus;
using Host = Kokkos::DefaultHostExecutionSpace;

namespace {

reference::Weights load_reference_weights(const io::Checkpoint& ck) {
  reference::Weights w;
  for (const auto& name : ck.names()) {
    const auto* t = ck.find(name);
    auto f = ck.read_f32(name, std::span<const std::int64_t>(t->shape));
    w[name] = std::vector<double>(f.begin(), f.end());
  }
  return w;
}

ModelConfig small_config(bool plus) {
  ModelConfig c;
  c.block_type = plus ? BlockType::RodimusPlus : BlockType::Rodimus;
  c.d_model = 64;
  c.n_layer = 2;
  c.vocab_size = 53;
  c.mixer.mem_size = 16;
  c.mixer.expand_ratio = 1.5;  // E = 96
  c.attn.num_heads = 4;
  c.attn.num_heads_k = 2;
  c.attn.num_heads_v = 4;
  c.attn.window_size = 10;
  return c;
}

// Prefill and token-by-token decode of one random sequence vs the fp64 reference.
void check_against_reference(const ModelConfig& cfg, io::StDType dtype, double tol) {
  const std::uint64_t seed = std::random_device{}();
  CAPTURE(seed);
  const auto dir =
      std::filesystem::temp_directory_path() / ("rodimus_cfg_test_" + std::to_string(seed));
  io::write_random_checkpoint(cfg, dir, seed, dtype);
  const auto ck = io::Checkpoint::open(dir);
  const auto model = Model<Host, float>(io::load_config(dir), ck);
  std::mt19937 rng(static_cast<unsigned>(seed));
  std::vector<std::int32_t> ids(37);
  for (auto& t : ids) t = std::uniform_int_distribution<int>(0, cfg.vocab_size - 1)(rng);
  const auto ref = reference::forward(model.config(), load_reference_weights(ck),
                                      std::vector<int>(ids.begin(), ids.end()));
  double scale = 0;
  for (double v : ref) scale = std::max(scale, std::fabs(v));
  const int V = cfg.vocab_size;

  auto state = model.make_state(1, 64);
  Workspace<Host> ws;
  auto logits = model.forward(state, ws, TokenBatch::single(ids), LogitsMode::All);
  double err = 0;
  for (int t = 0; t < int(ids.size()); ++t)
    for (int c = 0; c < V; ++c) err = std::max(err, std::fabs(logits(t, c) - ref[t * V + c]));
  INFO("prefill err / scale " << err / scale);
  CHECK(err <= tol * scale);

  auto st2 = model.make_state(1, 64);
  double derr = 0;
  for (int t = 0; t < int(ids.size()); ++t) {
    auto l = model.decode(st2, ws, std::span(ids).subspan(t, 1));
    for (int c = 0; c < V; ++c) derr = std::max(derr, std::fabs(l(0, c) - ref[t * V + c]));
  }
  INFO("decode err / scale " << derr / scale);
  CHECK(derr <= tol * scale);
  std::filesystem::remove_all(dir);
}

}  // namespace

TEST_CASE("random-weight models match the fp64 reference on every config path", "[model][config]") {
  SECTION("Rodimus, tied embeddings, scaled and normalised embeddings") {
    auto c = small_config(false);
    c.tie_word_embeddings = true;
    c.use_scale_embedding = true;
    c.use_norm_embedding = true;
    check_against_reference(c, io::StDType::F32, 1e-4);
  }
  SECTION("Rodimus+, grouped key heads (H=4, Hk=2), window 10") {
    check_against_reference(small_config(true), io::StDType::F32, 1e-4);
  }
  SECTION("Rodimus+, no window (unbounded causal attention, growing cache)") {
    auto c = small_config(true);
    c.attn.window_size = 0;
    check_against_reference(c, io::StDType::F32, 1e-4);
  }
  SECTION("Rodimus+, partial RoPE, fewer value heads, odd window") {
    auto c = small_config(true);
    c.attn.rotary_emb_dim = 8;
    c.attn.num_heads_v = 2;
    c.attn.window_size = 7;
    c.tie_word_embeddings = true;
    check_against_reference(c, io::StDType::F32, 1e-4);
  }
  SECTION("BF16 and F16 checkpoints load (converted to fp32 exactly)") {
    check_against_reference(small_config(true), io::StDType::BF16, 1e-4);
    check_against_reference(small_config(false), io::StDType::F16, 1e-4);
  }
}

TEST_CASE("Rodimus+ without a window refuses to outgrow its cache", "[model][config]") {
  auto c = small_config(true);
  c.attn.window_size = 0;
  const auto dir = std::filesystem::temp_directory_path() / "rodimus_cfg_test_nowindow";
  io::write_random_checkpoint(c, dir, 7);
  const auto model = Model<Host, float>::load(dir);
  auto state = model.make_state(1, 8);
  Workspace<Host> ws;
  std::vector<std::int32_t> ids(9, 3);
  CHECK_THROWS_AS(model.forward(state, ws, TokenBatch::single(ids)), ArgumentError);
  std::filesystem::remove_all(dir);
}
