// The baseline Transformer's parameters: named host tensors (random ones for benchmarks and
// tests), and their device form.
#pragma once

#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "rodimus/layers/transformer_block.hpp"

namespace rodimus {

/// fp32 host tensors by name, row-major. A Transformer's names (per layer i, prefix
/// "model.layers.i."): attn_norm.weight [D]; attn.q_proj.weight [H*hd, D];
/// attn.k_proj.weight, attn.v_proj.weight [Hkv*hd, D]; attn.out_proj.weight [D, H*hd];
/// ffn_norm.weight [D]; ffn.fc.weight [2F, D] (the `a` rows first, then the gate rows);
/// ffn.out_proj.weight [D, F]. Global: model.embeddings.weight [V, D], model.norm_f.weight [D],
/// lm_head.weight [V, D] (absent when tied).
using HostTensors = std::map<std::string, std::vector<float>>;

/// Every parameter of a Transformer on the device.
template <StorageType W, class Space>
struct TransformerWeights {
  View2<const W, Space> embed;  ///< [V, D]
  std::vector<TransformerBlockWeights<W, Space>> layers;
  View1<const float, Space> norm_f;         ///< [D]
  LinearWeights<W, Space> lm_head;          ///< [V, D]; shares `embed` when tied
  View1<const float, Space> rope_inv_freq;  ///< [hd / 2]

  /// Bytes of all parameters (tied embeddings counted once).
  std::size_t bytes() const {
    std::size_t b = embed.size() * sizeof(W) + norm_f.size() * sizeof(float);
    if (lm_head.w.data() != embed.data()) b += lm_head.bytes();
    for (const auto& l : layers)
      b += (l.attn_norm.size() + l.ffn_norm.size()) * sizeof(float) + l.attn.q.bytes() +
           l.attn.k.bytes() + l.attn.v.bytes() + l.attn.o.bytes() + l.ffn.fc_a.bytes() +
           l.ffn.fc_g.bytes() + l.ffn.out.bytes();
    return b;
  }
};

/// Random parameters for `cfg`: matrices ~ U(-1, 1) / sqrt(fan_in), the embedding ~ U(-1, 1),
/// norm weights ~ 1 + U(-0.1, 0.1). Deterministic in `seed`.
inline HostTensors random_transformer_tensors(const TransformerConfig& cfg, std::uint64_t seed) {
  cfg.validate();
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uni(-1.f, 1.f);
  HostTensors t;
  auto matrix = [&](const std::string& name, std::int64_t rows, std::int64_t cols, float s) {
    auto& m = t[name];
    m.resize(std::size_t(rows * cols));
    for (auto& x : m) x = uni(rng) * s;
  };
  auto norm = [&](const std::string& name) {
    auto& m = t[name];
    m.resize(std::size_t(cfg.d_model));
    for (auto& x : m) x = 1.f + 0.1f * uni(rng);
  };
  const std::int64_t d = cfg.d_model, q = std::int64_t(cfg.heads) * cfg.head_dim,
                     kv = std::int64_t(cfg.kv_heads) * cfg.head_dim, f = cfg.ffn_dim;
  auto fan = [](std::int64_t in) { return 1.f / std::sqrt(float(in)); };
  matrix("model.embeddings.weight", cfg.vocab, d, 1.f);
  for (int l = 0; l < cfg.n_layer; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    norm(p + "attn_norm.weight");
    matrix(p + "attn.q_proj.weight", q, d, fan(d));
    matrix(p + "attn.k_proj.weight", kv, d, fan(d));
    matrix(p + "attn.v_proj.weight", kv, d, fan(d));
    matrix(p + "attn.out_proj.weight", d, q, fan(q));
    norm(p + "ffn_norm.weight");
    matrix(p + "ffn.fc.weight", 2 * f, d, fan(d));
    matrix(p + "ffn.out_proj.weight", d, f, fan(f));
  }
  norm("model.norm_f.weight");
  if (!cfg.tie_embeddings) matrix("lm_head.weight", cfg.vocab, d, fan(d));
  return t;
}

namespace detail {

/// The tensor `name` of `tensors`, checked to hold `numel` elements (CheckpointError otherwise).
inline const std::vector<float>& host_tensor(const HostTensors& tensors, const std::string& name,
                                             std::int64_t numel) {
  const auto it = tensors.find(name);
  if (it == tensors.end()) throw CheckpointError("Transformer: missing tensor " + name);
  if (static_cast<std::int64_t>(it->second.size()) != numel)
    throw CheckpointError("Transformer: tensor " + name + " has " +
                          std::to_string(it->second.size()) + " elements, expected " +
                          std::to_string(numel));
  return it->second;
}

/// Rows [row0, row0 + rows) of a [*, cols] host matrix as a device view of T.
template <class T, class Space>
View2<const T, Space> upload_rows(const std::string& label, const std::vector<float>& src,
                                  std::int64_t row0, std::int64_t rows, std::int64_t cols) {
  View2<T, Space> v(Kokkos::view_alloc(label, Kokkos::WithoutInitializing), rows, cols);
  auto h = Kokkos::create_mirror_view(v);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c)
      h(r, c) = from_f32<T>(src[std::size_t((row0 + r) * cols + c)]);
  Kokkos::deep_copy(Space(), v, h);
  Space().fence();
  return v;
}

}  // namespace detail

/// The device parameters of `cfg` from named host tensors, matrices converted to W (CheckpointError
/// naming a missing or mis-sized tensor).
template <StorageType W, class Space>
TransformerWeights<W, Space> bind_transformer_weights(const TransformerConfig& cfg,
                                                      const HostTensors& tensors) {
  cfg.validate();
  const std::int64_t d = cfg.d_model, q = std::int64_t(cfg.heads) * cfg.head_dim,
                     kv = std::int64_t(cfg.kv_heads) * cfg.head_dim, f = cfg.ffn_dim, v = cfg.vocab;
  auto mat = [&](const std::string& name, std::int64_t rows, std::int64_t cols,
                 std::int64_t row0 = 0, std::int64_t total_rows = -1) {
    const auto& src =
        detail::host_tensor(tensors, name, (total_rows < 0 ? rows : total_rows) * cols);
    return detail::upload_rows<W, Space>(name, src, row0, rows, cols);
  };
  auto lin = [&](const std::string& name, std::int64_t rows, std::int64_t cols,
                 std::int64_t row0 = 0, std::int64_t total_rows = -1) {
    LinearWeights<W, Space> lw;
    lw.w = mat(name, rows, cols, row0, total_rows);
    return lw;
  };
  auto vec = [&](const std::string& name) {
    const auto& src = detail::host_tensor(tensors, name, d);
    View1<float, Space> out(Kokkos::view_alloc(name, Kokkos::WithoutInitializing), d);
    auto h = Kokkos::create_mirror_view(out);
    for (std::int64_t i = 0; i < d; ++i) h(i) = src[std::size_t(i)];
    Kokkos::deep_copy(Space(), out, h);
    Space().fence();
    return View1<const float, Space>(out);
  };
  TransformerWeights<W, Space> tw;
  tw.embed = mat("model.embeddings.weight", v, d);
  for (int l = 0; l < cfg.n_layer; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    TransformerBlockWeights<W, Space> lw;
    lw.attn_norm = vec(p + "attn_norm.weight");
    lw.attn.q = lin(p + "attn.q_proj.weight", q, d);
    lw.attn.k = lin(p + "attn.k_proj.weight", kv, d);
    lw.attn.v = lin(p + "attn.v_proj.weight", kv, d);
    lw.attn.o = lin(p + "attn.out_proj.weight", d, q);
    lw.ffn_norm = vec(p + "ffn_norm.weight");
    lw.ffn.fc_a = lin(p + "ffn.fc.weight", f, d, 0, 2 * f);
    lw.ffn.fc_g = lin(p + "ffn.fc.weight", f, d, f, 2 * f);
    lw.ffn.out = lin(p + "ffn.out_proj.weight", d, f);
    tw.layers.push_back(std::move(lw));
  }
  tw.norm_f = vec("model.norm_f.weight");
  if (cfg.tie_embeddings) {
    tw.lm_head.w = tw.embed;
  } else {
    tw.lm_head = lin("lm_head.weight", v, d);
  }
  tw.rope_inv_freq = rope_inv_freq<Space>(cfg.head_dim, cfg.rope_theta);
  return tw;
}

}  // namespace rodimus
