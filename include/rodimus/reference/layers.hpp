// Reference layers: the Rodimus mixer, SW-SKA attention and the SwiGLU FFN, for one sequence.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "rodimus/model/config.hpp"
#include "rodimus/reference/check.hpp"
#include "rodimus/reference/ddts_gate.hpp"
#include "rodimus/reference/gla_scan.hpp"
#include "rodimus/reference/linear.hpp"
#include "rodimus/reference/rms_norm.hpp"
#include "rodimus/reference/rope.hpp"
#include "rodimus/reference/short_conv.hpp"
#include "rodimus/reference/sliding_window_attention.hpp"
#include "rodimus/reference/swiglu.hpp"
#include "rodimus/reference/weights.hpp"

namespace rodimus::reference {

/// Recurrent state of one mixer for one sequence (SPEC 7); empty vectors mean zeros.
struct MixerState {
  std::vector<double> conv;  ///< last K-1 conv inputs x, oldest first: [K-1, E]
  std::vector<double> ssm;   ///< GLA state S: [n, E]
};

/// The Rodimus mixer (RodimusFlow), SPEC 2 steps 1-10, up to and including out_proj.
/// h: [T, D] (the normed block input); returns out: [T, D]. When `state` is given it supplies
/// the initial conv/GLA state (zeros if empty) and receives the final one.
inline std::vector<double> rodimus_mixer(const ModelConfig& cfg, const Weights& w, int layer,
                                         const std::vector<double>& h, int T,
                                         MixerState* state = nullptr) {
  const int D = cfg.d_model, E = cfg.d_inner(), n = cfg.mem_size(), K = cfg.d_conv();
  const int R = cfg.low_rank();
  const std::string p = layer_prefix(layer) + "mixer.";
  const std::string pi = p + "inner_mixer.";
  detail::check_size(h, detail::sz(T, D), "rodimus_mixer: h");

  // 1. [x, g] = split(h W_fc^T)                                   // [T, 2E] -> 2 x [T, E]
  const auto xg = linear(h, weight(w, p + "fc.weight", detail::sz(2 * E, D)), T, D, 2 * E);
  const auto x = columns(xg, T, 2 * E, 0, E);
  const auto g = columns(xg, T, 2 * E, E, E);

  // 2. ShortConv + SiLU                                           // [T, E]
  const std::vector<double>* conv_in = (state && !state->conv.empty()) ? &state->conv : nullptr;
  auto conv = short_conv(x, weight(w, pi + "short_conv.conv1d.weight", detail::sz(E, K)),
                         weight(w, pi + "short_conv.conv1d.bias", E), T, E, K, conv_in);
  const std::vector<double>& xs = conv.y;

  // 3. [q, k] = split(xs W_in^T)                                  // [T, 2n] -> 2 x [T, n]
  const auto qk = linear(xs, weight(w, pi + "in_proj.weight", detail::sz(2 * n, E)), T, E, 2 * n);
  const auto q = columns(qk, T, 2 * n, 0, n);
  const auto k = columns(qk, T, 2 * n, n, n);

  // 4. u = sigmoid((x W_c1^T) W_c2^T + b_c2) * x                  // [T, E]
  const auto u = channel_gate(x, weight(w, pi + "ch_gate_proj.0.weight", detail::sz(R, E)),
                              weight(w, pi + "ch_gate_proj.1.weight", detail::sz(E, R)),
                              weight(w, pi + "ch_gate_proj.1.bias", E), T, E, R);

  // 5. DDTS gates from xs W_mem^T + b_mem                         // [T, 2n] -> 4 x [T, n]
  const auto& b_mem = weight(w, pi + "mem_gate_proj.bias", 2 * n);
  const auto z =
      linear(xs, weight(w, pi + "mem_gate_proj.weight", detail::sz(2 * n, E)), T, E, 2 * n, &b_mem);
  const DdtsGates gates = ddts_gates(z, T, n);

  // 6. k' = beta * k / max(||k||, eps)                            // [T, n]
  const auto kp = l2_normalize_scale(k, gates.beta, cfg.mixer.normalize_epsilon, T, n);

  // 7. GLA scan                                                   // [T, E], S: [n, E]
  std::vector<double> S_local(detail::sz(n, E), 0.0);
  std::vector<double>& S = (state && !state->ssm.empty()) ? state->ssm : S_local;
  auto o = gla_scan_recurrent(q, kp, u, gates.a, T, n, E, S);

  // 8. o += xs * w_res
  const auto& w_res = weight(w, pi + "residual_weight", E);
  for (int t = 0; t < T; ++t)
    for (int e = 0; e < E; ++e) o[detail::sz(t, E) + e] += xs[detail::sz(t, E) + e] * w_res[e];

  // 9. gated RMSNorm, 10. out_proj                                // [T, E] -> [T, D]
  const auto y = gated_rms_norm(o, g, weight(w, p + "act_norm.weight", E), cfg.norm_epsilon, T, E);
  if (state != nullptr) {
    state->conv = std::move(conv.state);
    if (state->ssm.empty()) state->ssm = std::move(S_local);
  }
  return linear(y, weight(w, p + "out_proj.weight", detail::sz(D, E)), T, E, D);
}

/// Sliding-window shared-key attention (SW-SKA), SPEC 3 steps 1-5, including out_proj.
/// h: [T, D] (the normed input), positions pos0 .. pos0 + T - 1; returns [T, D].
inline std::vector<double> ska_attention(const ModelConfig& cfg, const Weights& w, int layer,
                                         const std::vector<double>& h, int T, long long pos0 = 0) {
  const int D = cfg.d_model, H = cfg.num_heads(), Hk = cfg.num_heads_k(), Hv = cfg.num_heads_v();
  const int hd = cfg.head_dim();
  const std::string p = layer_prefix(layer) + "attn.";
  detail::check_size(h, detail::sz(T, D), "ska_attention: h");
  const auto q = linear(h, weight(w, p + "q_proj.weight", detail::sz(H * hd, D)), T, D, H * hd);
  const auto k = linear(h, weight(w, p + "k_proj.weight", detail::sz(Hk * hd, D)), T, D, Hk * hd);
  const auto v = linear(h, weight(w, p + "v_proj.weight", detail::sz(Hv * hd, D)), T, D, Hv * hd);
  const int rd = cfg.rotary_dim();
  const double base = cfg.attn.rotary_emb_base;
  const auto qr = rope(q, T, H, hd, rd, base, pos0);   // [T, H, hd]
  const auto kr = rope(k, T, Hk, hd, rd, base, pos0);  // [T, Hk, hd]
  const auto o = sliding_window_attention(qr, kr, v, T, H, Hk, Hv, hd, cfg.window_back(),
                                          cfg.attn_scale());  // [T, H, hd] = [T, H * hd]
  return linear(o, weight(w, p + "out_proj.weight", detail::sz(D, H * hd)), T, H * hd, D);
}

/// SwiGLU FFN, SPEC 4: (silu(g) * a) W_ffn_out^T with [a, g] = split(h W_ffn_fc^T).
/// h: [T, D] (the normed input); returns [T, D].
inline std::vector<double> glu_ffn(const ModelConfig& cfg, const Weights& w, int layer,
                                   const std::vector<double>& h, int T) {
  const int D = cfg.d_model, F = cfg.ffn_dim();
  const std::string p = layer_prefix(layer) + "ffn.";
  const auto z = linear(h, weight(w, p + "fc.weight", detail::sz(2 * F, D)), T, D, 2 * F);
  const auto act = swiglu(z, T, F);  // [T, F]
  return linear(act, weight(w, p + "out_proj.weight", detail::sz(D, F)), T, F, D);
}

}  // namespace rodimus::reference
