// Reference baseline Transformer in double: the GQA attention layer, the pre-norm block and the
// whole forward of one sequence, the referee of TransformerModel.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "rodimus/model/transformer_config.hpp"
#include "rodimus/reference/causal_attention.hpp"
#include "rodimus/reference/check.hpp"
#include "rodimus/reference/linear.hpp"
#include "rodimus/reference/rms_norm.hpp"
#include "rodimus/reference/rope.hpp"
#include "rodimus/reference/swiglu.hpp"
#include "rodimus/reference/weights.hpp"

namespace rodimus::reference {

/// The attention layer of block `layer`: q = h Wq^T, k = h Wk^T, v = h Wv^T; RoPE on all of hd
/// (base rope_theta) at positions 0 .. T-1; causal GQA attention (scale 1/sqrt(hd));
/// o Wo^T. h: [T, D] (normalised); returns [T, D].
inline std::vector<double> gqa_attention(const TransformerConfig& cfg, const Weights& w, int layer,
                                         const std::vector<double>& h, int T) {
  const int D = cfg.d_model, H = cfg.heads, Hkv = cfg.kv_heads, hd = cfg.head_dim;
  const std::string p = layer_prefix(layer) + "attn.";
  detail::check_size(h, detail::sz(T, D), "gqa_attention: h");
  const auto q = linear(h, weight(w, p + "q_proj.weight", detail::sz(H, hd, D)), T, D, H * hd);
  const auto k = linear(h, weight(w, p + "k_proj.weight", detail::sz(Hkv, hd, D)), T, D, Hkv * hd);
  const auto v = linear(h, weight(w, p + "v_proj.weight", detail::sz(Hkv, hd, D)), T, D, Hkv * hd);
  const auto qr = rope(q, T, H, hd, hd, cfg.rope_theta, 0);    // [T, H, hd]
  const auto kr = rope(k, T, Hkv, hd, hd, cfg.rope_theta, 0);  // [T, Hkv, hd]
  const auto o = causal_attention(qr, kr, v, T, H, Hkv, hd, 1.0 / std::sqrt(double(hd)));
  return linear(o, weight(w, p + "out_proj.weight", detail::sz(D, H, hd)), T, H * hd, D);
}

/// The SwiGLU FFN of block `layer`: [a, g] = split(h W_fc^T), (silu(g) * a) W_out^T.
/// h: [T, D] (normalised); returns [T, D].
inline std::vector<double> transformer_ffn(const TransformerConfig& cfg, const Weights& w,
                                           int layer, const std::vector<double>& h, int T) {
  const int D = cfg.d_model, F = cfg.ffn_dim;
  const std::string p = layer_prefix(layer) + "ffn.";
  const auto z = linear(h, weight(w, p + "fc.weight", detail::sz(2 * F, D)), T, D, 2 * F);
  return linear(swiglu(z, T, F), weight(w, p + "out_proj.weight", detail::sz(D, F)), T, F, D);
}

/// One pre-norm block on the residual stream x: x += Attn(RMSNorm_attn(x)), then
/// x += FFN(RMSNorm_ffn(x)). x: [T, D]; returns the new x.
inline std::vector<double> transformer_block(const TransformerConfig& cfg, const Weights& w,
                                             int layer, std::vector<double> x, int T) {
  const int D = cfg.d_model;
  const std::string p = layer_prefix(layer);
  const auto a = gqa_attention(
      cfg, w, layer, rms_norm(x, weight(w, p + "attn_norm.weight", D), cfg.norm_eps, T, D), T);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] += a[i];
  const auto f = transformer_ffn(
      cfg, w, layer, rms_norm(x, weight(w, p + "ffn_norm.weight", D), cfg.norm_eps, T, D), T);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] += f[i];
  return x;
}

/// Logits of one sequence: x = Embed[ids]; the blocks; RMSNorm_f(x) W_lm^T (W_lm = the
/// embedding when tied). ids: [T]; returns [T, V].
inline std::vector<double> transformer_forward(const TransformerConfig& cfg, const Weights& w,
                                               const std::vector<int>& ids) {
  const int T = static_cast<int>(ids.size()), D = cfg.d_model, V = cfg.vocab;
  const auto& embed = weight(w, "model.embeddings.weight", detail::sz(V, D));
  std::vector<double> x(detail::sz(T, D));
  for (int t = 0; t < T; ++t) {
    detail::require(ids[t] >= 0 && ids[t] < V, "transformer_forward: token id out of range");
    for (int c = 0; c < D; ++c) x[detail::sz(t, D) + c] = embed[detail::sz(ids[t], D) + c];
  }
  for (int l = 0; l < cfg.n_layer; ++l) x = transformer_block(cfg, w, l, std::move(x), T);
  const auto xf = rms_norm(x, weight(w, "model.norm_f.weight", D), cfg.norm_eps, T, D);
  const auto& lm = cfg.tie_embeddings ? embed : weight(w, "lm_head.weight", detail::sz(V, D));
  return linear(xf, lm, T, D, V);
}

}  // namespace rodimus::reference
