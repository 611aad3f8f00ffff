// The configuration of the baseline Transformer (pre-norm, GQA attention with RoPE, SwiGLU FFN).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "rodimus/core/error.hpp"
#include "rodimus/ops/causal_attention.hpp"

namespace rodimus {

/// Sizes of a plain decoder-only Transformer built from rodimus' parts: per layer
/// x += Attn(RMSNorm(x)), x += SwiGLU(RMSNorm(x)); logits = RMSNorm_f(x) W_lm^T.
struct TransformerConfig {
  int d_model = 1024;
  int n_layer = 12;
  int heads = 8;       ///< query heads H
  int kv_heads = 8;    ///< key/value heads Hkv (H % Hkv == 0; Hkv == H: multi-head attention)
  int head_dim = 128;  ///< hd (even: RoPE rotates all of it)
  int ffn_dim = 1368;  ///< F of the SwiGLU FFN
  int vocab = 4096;
  bool tie_embeddings = false;  ///< lm_head shares the embedding matrix
  double rope_theta = 10000.0;  ///< RoPE base
  double norm_eps = 1e-5;       ///< eps of every RMSNorm

  /// Throws ConfigError naming the first field that is out of range or inconsistent.
  void validate() const {
    auto positive = [](int v, const char* name) {
      if (v <= 0)
        throw ConfigError(std::string("TransformerConfig: ") + name + " must be positive, got " +
                          std::to_string(v));
    };
    positive(d_model, "d_model");
    positive(n_layer, "n_layer");
    positive(heads, "heads");
    positive(kv_heads, "kv_heads");
    positive(head_dim, "head_dim");
    positive(ffn_dim, "ffn_dim");
    positive(vocab, "vocab");
    if (heads % kv_heads != 0)
      throw ConfigError("TransformerConfig: heads (" + std::to_string(heads) +
                        ") must be a multiple of kv_heads (" + std::to_string(kv_heads) + ")");
    if (head_dim % 2 != 0)
      throw ConfigError("TransformerConfig: head_dim must be even (RoPE), got " +
                        std::to_string(head_dim));
    if (!(rope_theta > 0.0)) throw ConfigError("TransformerConfig: rope_theta must be positive");
    if (!(norm_eps >= 0.0)) throw ConfigError("TransformerConfig: norm_eps must be >= 0");
  }

  /// The attention geometry, with scale 1 / sqrt(head_dim).
  CausalAttentionShape attention_shape() const {
    CausalAttentionShape s;
    s.heads = heads;
    s.kv_heads = kv_heads;
    s.head_dim = head_dim;
    s.scale = static_cast<float>(1.0 / std::sqrt(double(head_dim)));
    return s;
  }

  /// Number of parameters (tied embeddings counted once).
  std::int64_t parameter_count() const {
    const std::int64_t d = d_model, q = std::int64_t(heads) * head_dim,
                       kv = std::int64_t(kv_heads) * head_dim, f = ffn_dim, v = vocab;
    const std::int64_t per = 2 * d + d * (q + 2 * kv) + q * d + 3 * d * f;
    return per * n_layer + v * d * (tie_embeddings ? 1 : 2) + d;
  }
};

}  // namespace rodimus
