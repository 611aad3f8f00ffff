// Writes a checkpoint folder (config.json + model.safetensors) with random weights of any
// shape: for benchmarks at published sizes without a download, and for tests of config paths
// the golden models do not cover.
#pragma once

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "rodimus/core/dtype.hpp"
#include "rodimus/io/config_json.hpp"
#include "rodimus/io/safetensors.hpp"
#include "rodimus/model/config.hpp"

namespace rodimus::io {

/// Writes `dir/config.json` and `dir/model.safetensors` for `cfg`: every SPEC section 6 tensor,
/// matrices ~ U(-1, 1) / sqrt(fan_in), norm weights ~ 1 + U(-0.1, 0.1), biases small, stored as
/// `dtype` (F32, F16 or BF16). The memory-gate bias is shifted by `gate_bias` (negative values
/// give weaker decay, positive values stronger).
inline void write_random_checkpoint(const ModelConfig& cfg, const std::filesystem::path& dir,
                                    std::uint64_t seed, StDType dtype = StDType::F32,
                                    float gate_bias = 0.f) {
  std::filesystem::create_directories(dir);
  {
    std::ofstream f(dir / "config.json");
    f << config_to_json(cfg).dump(2);
    if (!f)
      throw CheckpointError("write_random_checkpoint: cannot write " +
                            (dir / "config.json").string());
  }
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uni(-1.f, 1.f);
  struct Pending {
    std::string name;
    std::vector<std::int64_t> shape;
    std::vector<float> data;
  };
  std::vector<Pending> all;
  auto matrix = [&](const std::string& name, std::int64_t rows, std::int64_t cols) {
    Pending p{name, {rows, cols}, std::vector<float>(std::size_t(rows * cols))};
    const float s = 1.f / std::sqrt(float(cols));
    for (auto& v : p.data) v = uni(rng) * s;
    all.push_back(std::move(p));
  };
  auto vec = [&](const std::string& name, std::int64_t n, float center, float spread) {
    Pending p{name, {n}, std::vector<float>(std::size_t(n))};
    for (auto& v : p.data) v = center + spread * uni(rng);
    all.push_back(std::move(p));
  };
  const std::int64_t d = cfg.d_model, e = cfg.d_inner(), n = cfg.mem_size(), k = cfg.d_conv(),
                     r = cfg.low_rank(), v = cfg.vocab_size;
  {
    Pending emb{"model.embeddings.weight", {v, d}, std::vector<float>(std::size_t(v * d))};
    for (auto& x : emb.data) x = uni(rng);
    all.push_back(std::move(emb));
  }
  if (cfg.use_norm_embedding) vec("model.embed_norm.weight", d, 1.f, 0.1f);
  for (int l = 0; l < cfg.n_layer; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const std::string im = p + "mixer.inner_mixer.";
    vec(p + "mixer_norm.weight", d, 1.f, 0.1f);
    matrix(p + "mixer.fc.weight", 2 * e, d);
    matrix(p + "mixer.out_proj.weight", d, e);
    vec(p + "mixer.act_norm.weight", e, 1.f, 0.1f);
    {
      Pending c{im + "short_conv.conv1d.weight", {e, 1, k}, std::vector<float>(std::size_t(e * k))};
      for (auto& x : c.data) x = uni(rng) / std::sqrt(float(k));
      all.push_back(std::move(c));
    }
    vec(im + "short_conv.conv1d.bias", e, 0.f, 0.1f);
    vec(im + "residual_weight", e, 1.f, 0.5f);
    matrix(im + "in_proj.weight", 2 * n, e);
    matrix(im + "ch_gate_proj.0.weight", r, e);
    matrix(im + "ch_gate_proj.1.weight", e, r);
    vec(im + "ch_gate_proj.1.bias", e, 0.f, 0.1f);
    matrix(im + "mem_gate_proj.weight", 2 * n, e);
    vec(im + "mem_gate_proj.bias", 2 * n, gate_bias, 1.f);
    if (cfg.is_plus()) {
      const std::int64_t hd = cfg.head_dim(), f = cfg.ffn_dim();
      vec(p + "attn_norm.weight", d, 1.f, 0.1f);
      matrix(p + "attn.q_proj.weight", cfg.num_heads() * hd, d);
      matrix(p + "attn.k_proj.weight", cfg.num_heads_k() * hd, d);
      matrix(p + "attn.v_proj.weight", cfg.num_heads_v() * hd, d);
      matrix(p + "attn.out_proj.weight", d, d);
      vec(p + "ffn_norm.weight", d, 1.f, 0.1f);
      matrix(p + "ffn.fc.weight", 2 * f, d);
      matrix(p + "ffn.out_proj.weight", d, f);
    }
  }
  vec("model.norm_f.weight", d, 1.f, 0.1f);
  if (!cfg.tie_word_embeddings) matrix("lm_head.weight", v, d);

  // Convert to the storage dtype, then write.
  std::vector<std::vector<std::uint16_t>> half(all.size());
  std::vector<TensorWrite> tw;
  for (std::size_t i = 0; i < all.size(); ++i) {
    TensorWrite w{all[i].name, dtype, all[i].shape, all[i].data.data()};
    if (dtype == StDType::BF16 || dtype == StDType::F16) {
      half[i].resize(all[i].data.size());
      for (std::size_t j = 0; j < half[i].size(); ++j)
        half[i][j] = dtype == StDType::BF16 ? from_f32<bf16>(all[i].data[j]).bits
                                            : from_f32<fp16>(all[i].data[j]).bits;
      w.data = half[i].data();
    } else if (dtype != StDType::F32) {
      throw CheckpointError("write_random_checkpoint: dtype must be F32, F16 or BF16");
    }
    tw.push_back(std::move(w));
  }
  write_safetensors(dir / "model.safetensors", tw, {{"format", "pt"}});
}

}  // namespace rodimus::io
