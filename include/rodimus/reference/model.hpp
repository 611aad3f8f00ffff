// Reference full-sequence forward of Rodimus and Rodimus+ in double: the referee of all paths.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "rodimus/model/config.hpp"
#include "rodimus/reference/check.hpp"
#include "rodimus/reference/layers.hpp"
#include "rodimus/reference/linear.hpp"
#include "rodimus/reference/rms_norm.hpp"
#include "rodimus/reference/weights.hpp"

namespace rodimus::reference {

/// Per-layer intermediate outputs of forward(), each [T, D]; the names of the golden files.
struct Trace {
  /// `layers.i.mixer_out`: the mixer's output after its out_proj, before any residual add.
  std::vector<std::vector<double>> mixer_out;
  /// `layers.i.attn_out` (Rodimus+): SW-SKA's output after its out_proj, before any add.
  std::vector<std::vector<double>> attn_out;
  /// `layers.i.ffn_out` (Rodimus+): the FFN's output after its out_proj = the block's h.
  std::vector<std::vector<double>> ffn_out;
};

namespace detail {

/// SPEC 5 "prenorm add": r = h + r (r = h when there is no residual yet); returns RMSNorm(r).
inline std::vector<double> prenorm_add(const std::vector<double>& h, std::vector<double>& r,
                                       bool first, const std::vector<double>& norm_w, double eps,
                                       int T, int D) {
  if (first) {
    r = h;
  } else {
    for (std::size_t i = 0; i < r.size(); ++i) r[i] += h[i];
  }
  return rms_norm(r, norm_w, eps, T, D);
}

}  // namespace detail

/// Logits of one sequence, SPEC 5: h = Embed[ids] (* sqrt(n)) (-> embed_norm); per layer the
/// Rodimus block (prenorm add -> mixer) or the Rodimus+ block (prenorm add -> mixer; prenorm
/// add -> SW-SKA; h = RMSNorm_ffn(h + r) without updating r -> FFN); logits =
/// RMSNorm_f(h + r) W_lm^T (W_lm = the embedding when tie_word_embeddings).
/// ids: [T]; returns logits: [T, V]. When `trace` is given it receives per-layer outputs.
inline std::vector<double> forward(const ModelConfig& cfg, const Weights& w,
                                   const std::vector<int>& ids, Trace* trace = nullptr) {
  const int T = static_cast<int>(ids.size());
  const int D = cfg.d_model, V = cfg.vocab_size;
  const double eps = cfg.norm_epsilon;
  const auto& embed = weight(w, "model.embeddings.weight", detail::sz(V, D));

  // Embedding lookup                                              // [T] -> [T, D]
  std::vector<double> h(detail::sz(T, D));
  const double escale =
      cfg.use_scale_embedding ? std::sqrt(static_cast<double>(cfg.mem_size())) : 1.0;
  for (int t = 0; t < T; ++t) {
    detail::require(ids[t] >= 0 && ids[t] < V, "forward: token id " + std::to_string(ids[t]) +
                                                   " out of range [0, " + std::to_string(V) + ")");
    for (int c = 0; c < D; ++c) h[detail::sz(t, D) + c] = embed[detail::sz(ids[t], D) + c] * escale;
  }
  if (cfg.use_norm_embedding) h = rms_norm(h, weight(w, "model.embed_norm.weight", D), eps, T, D);

  if (trace != nullptr) *trace = Trace{};
  std::vector<double> r;  // residual stream  // [T, D]
  for (int l = 0; l < cfg.n_layer; ++l) {
    const std::string p = layer_prefix(l);
    auto hn = detail::prenorm_add(h, r, l == 0, weight(w, p + "mixer_norm.weight", D), eps, T, D);
    h = rodimus_mixer(cfg, w, l, hn, T);
    if (trace != nullptr) trace->mixer_out.push_back(h);
    if (!cfg.is_plus()) continue;

    hn = detail::prenorm_add(h, r, false, weight(w, p + "attn_norm.weight", D), eps, T, D);
    h = ska_attention(cfg, w, l, hn, T);
    if (trace != nullptr) trace->attn_out.push_back(h);

    // Two-hop residual: the FFN reads RMSNorm(h + r) but r is NOT updated.
    std::vector<double> hr(h.size());
    for (std::size_t i = 0; i < h.size(); ++i) hr[i] = h[i] + r[i];
    hn = rms_norm(hr, weight(w, p + "ffn_norm.weight", D), eps, T, D);
    h = glu_ffn(cfg, w, l, hn, T);
    if (trace != nullptr) trace->ffn_out.push_back(h);
  }

  // Final norm of h + r and the lm head                           // [T, D] -> [T, V]
  std::vector<double> hr(h.size());
  for (std::size_t i = 0; i < h.size(); ++i) hr[i] = h[i] + (r.empty() ? 0.0 : r[i]);
  const auto hf = rms_norm(hr, weight(w, "model.norm_f.weight", D), eps, T, D);
  const auto& lm = cfg.tie_word_embeddings ? embed : weight(w, "lm_head.weight", detail::sz(V, D));
  return linear(hf, lm, T, D, V);
}

}  // namespace rodimus::reference
