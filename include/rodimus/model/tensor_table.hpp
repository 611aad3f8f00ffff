// The table of every checkpoint tensor of a model (SPEC section 6): name, shape and role.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "rodimus/model/config.hpp"

namespace rodimus {

/// What a checkpoint tensor is, which decides its initialisation and weight decay.
enum class TensorRole : std::uint8_t {
  Embedding,       ///< model.embeddings.weight [V, D]
  Matrix,          ///< a linear layer's weight [out, in] (lm_head included)
  Norm,            ///< an RMSNorm weight [D] or [E]
  ConvWeight,      ///< ShortConv depthwise weight [E, 1, K]
  ConvBias,        ///< ShortConv bias [E]
  LinearBias,      ///< a linear layer's bias (the channel gate's up projection) [E]
  ResidualWeight,  ///< the mixer's `w_res` [E] (SPEC 2.8)
  MemGateBias,     ///< the DDTS gate bias b_mem [2n]: selection half, then temperature half
};

/// One tensor of the published checkpoint layout.
struct TensorSpec {
  std::string name;
  std::vector<std::int64_t> shape;
  TensorRole role = TensorRole::Matrix;

  std::int64_t numel() const {
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
};

/// Every tensor a checkpoint of `cfg` holds, in the published names and shapes (SPEC 6), in a
/// fixed order: embeddings, embed_norm (when used), per layer the mixer tensors then (Rodimus+)
/// the attention and FFN tensors, norm_f, lm_head (absent when tied).
inline std::vector<TensorSpec> checkpoint_tensors(const ModelConfig& cfg) {
  using R = TensorRole;
  const std::int64_t d = cfg.d_model, e = cfg.d_inner(), n = cfg.mem_size(), k = cfg.d_conv(),
                     r = cfg.low_rank(), v = cfg.vocab_size;
  std::vector<TensorSpec> t;
  t.push_back({"model.embeddings.weight", {v, d}, R::Embedding});
  if (cfg.use_norm_embedding) t.push_back({"model.embed_norm.weight", {d}, R::Norm});
  for (int l = 0; l < cfg.n_layer; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const std::string im = p + "mixer.inner_mixer.";
    t.push_back({p + "mixer_norm.weight", {d}, R::Norm});
    t.push_back({p + "mixer.fc.weight", {2 * e, d}, R::Matrix});
    t.push_back({p + "mixer.out_proj.weight", {d, e}, R::Matrix});
    t.push_back({p + "mixer.act_norm.weight", {e}, R::Norm});
    t.push_back({im + "short_conv.conv1d.weight", {e, 1, k}, R::ConvWeight});
    t.push_back({im + "short_conv.conv1d.bias", {e}, R::ConvBias});
    t.push_back({im + "residual_weight", {e}, R::ResidualWeight});
    t.push_back({im + "in_proj.weight", {2 * n, e}, R::Matrix});
    t.push_back({im + "ch_gate_proj.0.weight", {r, e}, R::Matrix});
    t.push_back({im + "ch_gate_proj.1.weight", {e, r}, R::Matrix});
    t.push_back({im + "ch_gate_proj.1.bias", {e}, R::LinearBias});
    t.push_back({im + "mem_gate_proj.weight", {2 * n, e}, R::Matrix});
    t.push_back({im + "mem_gate_proj.bias", {2 * n}, R::MemGateBias});
    if (cfg.is_plus()) {
      const std::int64_t hd = cfg.head_dim(), f = cfg.ffn_dim();
      t.push_back({p + "attn_norm.weight", {d}, R::Norm});
      t.push_back({p + "attn.q_proj.weight", {cfg.num_heads() * hd, d}, R::Matrix});
      t.push_back({p + "attn.k_proj.weight", {cfg.num_heads_k() * hd, d}, R::Matrix});
      t.push_back({p + "attn.v_proj.weight", {cfg.num_heads_v() * hd, d}, R::Matrix});
      t.push_back({p + "attn.out_proj.weight", {d, d}, R::Matrix});
      t.push_back({p + "ffn_norm.weight", {d}, R::Norm});
      t.push_back({p + "ffn.fc.weight", {2 * f, d}, R::Matrix});
      t.push_back({p + "ffn.out_proj.weight", {d, f}, R::Matrix});
    }
  }
  t.push_back({"model.norm_f.weight", {d}, R::Norm});
  if (!cfg.tie_word_embeddings) t.push_back({"lm_head.weight", {v, d}, R::Matrix});
  return t;
}

}  // namespace rodimus
