// libFuzzer target: parse_config either throws rodimus::Error or yields a config that round-trips.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "rodimus/io/config_json.hpp"

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

void check_same(const rodimus::ModelConfig& a, const rodimus::ModelConfig& b) {
  require(a.block_type == b.block_type);
  require(a.d_model == b.d_model && a.n_layer == b.n_layer && a.vocab_size == b.vocab_size);
  require(a.d_inner() == b.d_inner() && a.mem_size() == b.mem_size() && a.d_conv() == b.d_conv());
  require(a.low_rank() == b.low_rank());
  require(a.norm_epsilon == b.norm_epsilon &&
          a.mixer.normalize_epsilon == b.mixer.normalize_epsilon);
  require(a.bos_token_id == b.bos_token_id && a.eos_token_id == b.eos_token_id);
  require(a.eos_token_ids == b.eos_token_ids && a.pad_token_id == b.pad_token_id);
  require(a.tie_word_embeddings == b.tie_word_embeddings &&
          a.residual_in_fp32 == b.residual_in_fp32);
  require(a.use_scale_embedding == b.use_scale_embedding &&
          a.use_norm_embedding == b.use_norm_embedding);
  require(a.max_position_embeddings == b.max_position_embeddings);
  if (a.is_plus()) {
    require(a.num_heads() == b.num_heads() && a.num_heads_k() == b.num_heads_k());
    require(a.num_heads_v() == b.num_heads_v() && a.head_dim() == b.head_dim());
    require(a.rotary_dim() == b.rotary_dim() && a.window_back() == b.window_back());
    require(a.ffn_dim() == b.ffn_dim() && a.attn_scale() == b.attn_scale());
    require(a.attn.rotary_emb_base == b.attn.rotary_emb_base);
    // derived sizes are usable
    require(a.head_dim() > 0 && a.d_model % a.num_heads() == 0 && a.ffn_dim() > 0);
    require(a.num_heads() % a.num_heads_k() == 0 && a.num_heads() % a.num_heads_v() == 0);
    require(a.rotary_dim() >= 0 && a.rotary_dim() <= a.head_dim() && a.rotary_dim() % 2 == 0);
  }
  require(a.d_inner() > 0 && a.low_rank() > 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace rodimus::io;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  rodimus::ModelConfig c;
  try {
    c = parse_config(text, "fuzz");
  } catch (const rodimus::Error&) {
    return 0;
  }
  // a config that parsed must survive a round trip unchanged
  const rodimus::ModelConfig d = parse_config(config_to_json(c).dump(), "round trip");
  check_same(c, d);
  return 0;
}
