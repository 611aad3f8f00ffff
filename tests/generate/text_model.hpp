// Test helper: a small random-weight model whose vocabulary covers the test tokenizer
// (tests/data/generate/tokenizer.json: 710 tokens, <|endoftext|> = 709), written to a temporary
// folder once per configuration.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

#include "rodimus/io/random_checkpoint.hpp"
#include "rodimus/io/tokenizer.hpp"
#include "rodimus/model/model.hpp"

namespace rodimus::test {

using Host = Kokkos::DefaultHostExecutionSpace;
using TextModel = Model<Host, float>;

inline constexpr int text_vocab = 720;
inline constexpr int text_eos = 709;

/// plus: Rodimus+ (window 0 = unbounded attention) or Rodimus.
inline ModelConfig text_config(bool plus, int window = 0) {
  ModelConfig c;
  c.block_type = plus ? BlockType::RodimusPlus : BlockType::Rodimus;
  c.d_model = 64;
  c.n_layer = 2;
  c.vocab_size = text_vocab;
  c.mixer.mem_size = 16;
  c.mixer.expand_ratio = 1.5;
  c.attn.num_heads = 4;
  c.attn.num_heads_k = 2;
  c.attn.num_heads_v = 4;
  c.attn.window_size = window;
  c.max_position_embeddings = 512;
  c.bos_token_id = -1;
  c.eos_token_id = text_eos;
  c.eos_token_ids = {text_eos};
  return c;
}

/// The model of text_config(plus, window) with weights from `seed`.
inline TextModel make_text_model(bool plus, std::uint64_t seed, int window = 0) {
  const auto dir =
      std::filesystem::temp_directory_path() /
      ("rodimus_text_model_" + std::to_string(::getpid()) + "_" + std::to_string(plus) + "_" +
       std::to_string(window) + "_" + std::to_string(seed));
  io::write_random_checkpoint(text_config(plus, window), dir, seed);
  TextModel m = TextModel::load(dir);
  std::filesystem::remove_all(dir);
  return m;
}

inline io::Tokenizer text_tokenizer() {
  return io::Tokenizer::from_file(std::string(RODIMUS_TEST_DATA_DIR) + "/generate/tokenizer.json");
}

}  // namespace rodimus::test
