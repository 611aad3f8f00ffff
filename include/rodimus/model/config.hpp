// The typed model configuration (SPEC section 1), with derived sizes.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace rodimus {

/// Which block the model stacks.
enum class BlockType : std::uint8_t { Rodimus, RodimusPlus };

/// Settings of the Rodimus mixer (`mixer_cfg`).
struct MixerConfig {
  int d_conv = 4;                    ///< K, ShortConv width
  double expand_ratio = 2.0;         ///< E = round_up(D * expand_ratio, 8)
  int mem_size = 64;                 ///< n, GLA state rows
  int input_gate_low_rank = -1;      ///< R; -1 means "auto" = max(D / 64, 16)
  double normalize_epsilon = 1e-12;  ///< floor of ||k||_2
};

/// Settings of the sliding-window shared-key attention and FFN (`attn_cfg`, Rodimus+ only).
struct AttnConfig {
  int num_heads = 0;        ///< H; 0 in the file means D / 128
  int num_heads_k = 0;      ///< Hk (0 = H)
  int num_heads_v = 0;      ///< Hv (0 = H)
  int window_size = 0;      ///< W; <= 0 means no window (full causal attention)
  int rotary_emb_dim = -1;  ///< -1 = head dim, 0 = no RoPE
  double rotary_emb_base = 10000.0;
  bool rotary_emb_interleaved = false;  ///< only false is supported
  std::optional<double> softmax_scale;  ///< null = 1/sqrt(hd)
  double ffn_expand_ratio = 4.0 / 3.0;
};

/// The whole model configuration, as read from config.json and validated.
struct ModelConfig {
  BlockType block_type = BlockType::Rodimus;
  int d_model = 2048;
  int n_layer = 24;
  int vocab_size = 50277;
  double norm_epsilon = 1e-5;
  bool residual_in_fp32 = true;
  bool tie_word_embeddings = false;
  bool use_scale_embedding = false;
  bool use_norm_embedding = false;
  int max_position_embeddings = 2048;
  int bos_token_id = 0;
  int eos_token_id = 0;
  std::vector<int> eos_token_ids;  ///< all end-of-sequence ids (config.json may list several)
  std::optional<int> pad_token_id;
  MixerConfig mixer;
  AttnConfig attn;

  // ---- derived sizes ----
  static constexpr int round_up8(double x) {
    const auto v = static_cast<long long>(x);
    const long long c = (static_cast<double>(v) < x) ? v + 1 : v;  // ceil
    return static_cast<int>((c + 7) / 8 * 8);
  }
  /// E = round_up(D * expand_ratio, 8)
  int d_inner() const { return round_up8(d_model * mixer.expand_ratio); }
  /// n
  int mem_size() const { return mixer.mem_size; }
  /// K
  int d_conv() const { return mixer.d_conv; }
  /// R
  int low_rank() const {
    return mixer.input_gate_low_rank > 0 ? mixer.input_gate_low_rank
                                         : (d_model / 64 > 16 ? d_model / 64 : 16);
  }
  bool is_plus() const { return block_type == BlockType::RodimusPlus; }
  int num_heads() const { return attn.num_heads > 0 ? attn.num_heads : d_model / 128; }
  int num_heads_k() const { return attn.num_heads_k > 0 ? attn.num_heads_k : num_heads(); }
  int num_heads_v() const { return attn.num_heads_v > 0 ? attn.num_heads_v : num_heads(); }
  int head_dim() const { return d_model / num_heads(); }
  int rotary_dim() const { return attn.rotary_emb_dim < 0 ? head_dim() : attn.rotary_emb_dim; }
  /// Keys a query sees before itself: W/2, or -1 for unbounded causal attention.
  int window_back() const { return attn.window_size > 0 ? attn.window_size / 2 : -1; }
  /// F = round_up(D * ffn_expand_ratio, 8)
  int ffn_dim() const { return round_up8(d_model * attn.ffn_expand_ratio); }
  /// Softmax scale: softmax_scale when given, else 1/sqrt(hd).
  double attn_scale() const {
    return attn.softmax_scale ? *attn.softmax_scale : 1.0 / std::sqrt(double(head_dim()));
  }
};

}  // namespace rodimus
