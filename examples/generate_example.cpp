// Text generation and chat with the rodimus API: stream a sampled continuation of a prompt,
// then hold a two-turn chat whose state carries the conversation.
//
//   generate_example [MODEL_DIR]   (a directory with config.json, model.safetensors and
//                                   tokenizer.json; default: a small random-weight model
//                                   written to a temporary folder, so the text is gibberish)
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <rodimus/io/random_checkpoint.hpp>
#include <rodimus/rodimus.hpp>
#include <string>

namespace {

// A tiny random model that fits the test tokenizer, for running without a download.
std::filesystem::path demo_model() {
  rodimus::ModelConfig cfg;
  cfg.block_type = rodimus::BlockType::RodimusPlus;
  cfg.d_model = 64;
  cfg.n_layer = 2;
  cfg.vocab_size = 720;
  cfg.mixer.mem_size = 16;
  cfg.attn.num_heads = 2;
  cfg.attn.window_size = 32;
  cfg.eos_token_id = 709;  // <|endoftext|> of the tokenizer
  cfg.eos_token_ids = {709};
  const auto dir = std::filesystem::temp_directory_path() / "rodimus_generate_example";
  rodimus::io::write_random_checkpoint(cfg, dir, /*seed=*/42);
  std::filesystem::copy_file(RODIMUS_EXAMPLE_TOKENIZER, dir / "tokenizer.json",
                             std::filesystem::copy_options::overwrite_existing);
  return dir;
}

}  // namespace

int main(int argc, char** argv) {
  setenv("OMP_PROC_BIND", "false", 0);
  Kokkos::ScopeGuard kokkos(argc, argv);
  using Space = Kokkos::DefaultExecutionSpace;
  try {
    const std::filesystem::path dir = argc > 1 ? std::filesystem::path(argv[1]) : demo_model();
    const auto model = rodimus::Model<Space, rodimus::bf16>::load(dir);
    const auto tokenizer = rodimus::io::Tokenizer::from_file(dir / "tokenizer.json");

    // 1. One prompt, sampled, streamed piece by piece as the tokens arrive.
    rodimus::GenerationConfig cfg;
    cfg.max_new_tokens = 40;
    cfg.sampler.temperature = 0.8;
    cfg.sampler.top_p = 0.95;
    cfg.sampler.repetition_penalty = 1.1;
    cfg.sampler.seed = 1234;  // same seed, same text
    cfg.stops = {"\n\n"};     // ends the text before a blank line
    auto state = model.make_state(1);
    const auto prompt = tokenizer.encode("The quickest way to learn C++ is");
    const rodimus::GenerationResult r = rodimus::generate(
        model, tokenizer, state, prompt, cfg, [](std::int32_t, std::string_view piece) {
          std::fwrite(piece.data(), 1, piece.size(), stdout);
          std::fflush(stdout);
          return true;  // false would stop here
        });
    std::printf("\n[%lld prompt tokens, %lld generated, finish: %s, %.0f tokens/s decode]\n",
                static_cast<long long>(r.prompt_tokens),
                static_cast<long long>(r.generated_tokens()),
                rodimus::finish_reason_name(r.finish_reason), r.decode_tokens_per_second());

    // 2. A chat: each reply() reads only the new turn; the state holds the conversation.
    rodimus::GenerationConfig chat_cfg;  // greedy
    chat_cfg.max_new_tokens = 32;
    rodimus::Chat<Space, rodimus::bf16> chat(model, tokenizer, chat_cfg, "You are concise.");
    for (const char* user : {"What is Kokkos?", "And Rodimus?"}) {
      std::printf("> %s\n", user);
      chat.reply(user, [](std::int32_t, std::string_view piece) {
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        return true;
      });
      std::printf("\n");
    }
    std::printf("[conversation: %zu tokens in a state of %zu bytes]\n", chat.transcript().size(),
                chat.state().bytes_per_sequence());
  } catch (const rodimus::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
