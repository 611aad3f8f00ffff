// Scratch shared by the blocks of one forward call, and the trace hook for intermediate outputs.
#pragma once

#include <functional>
#include <string_view>

#include "rodimus/layers/rodimus_mixer.hpp"
#include "rodimus/layers/ska_attention.hpp"

namespace rodimus {

/// Called with (layer, name, activation [>=N, D], N) after each sub-layer when set; names are
/// "mixer_out", "attn_out", "ffn_out" (the sub-layer's output before any residual add).
template <class Space>
using TraceFn = std::function<void(int, std::string_view, const View2<const float, Space>&, int)>;

/// Activation buffers of the blocks.
template <class Space>
struct BlockWorkspace {
  View2<float, Space> hn;            // [N, D] normalised block input
  View2<float, Space> ffn_a, ffn_g;  // [N, F]
  MixerWorkspace<Space> mixer;
  AttentionWorkspace<Space> attn;

  void reserve(const ModelConfig& cfg, int n_tokens) {
    detail::ensure_capacity(hn, n_tokens, cfg.d_model, "rodimus::block.hn");
    mixer.reserve(cfg, n_tokens);
    if (cfg.is_plus()) {
      detail::ensure_capacity(ffn_a, n_tokens, cfg.ffn_dim(), "rodimus::ffn.a");
      detail::ensure_capacity(ffn_g, n_tokens, cfg.ffn_dim(), "rodimus::ffn.g");
      attn.reserve(cfg, n_tokens);
    }
  }
};

}  // namespace rodimus
