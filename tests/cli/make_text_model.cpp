// Writes a small random-weight model directory for the CLI's text commands: config.json and
// model.safetensors of tests/generate/text_model.hpp's configuration, plus a tokenizer.json copy.
//
//   make_text_model DIR rodimus|rodimus_plus TOKENIZER_JSON SEED
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>

#include "../generate/text_model.hpp"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: make_text_model DIR rodimus|rodimus_plus TOKENIZER_JSON SEED\n");
    return 2;
  }
  try {
    const std::filesystem::path dir = argv[1];
    const std::string block = argv[2];
    if (block != "rodimus" && block != "rodimus_plus") throw std::runtime_error("bad block type");
    std::filesystem::remove_all(dir);
    rodimus::io::write_random_checkpoint(rodimus::test::text_config(block == "rodimus_plus"), dir,
                                         std::strtoull(argv[4], nullptr, 10));
    std::filesystem::copy_file(argv[3], dir / "tokenizer.json");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_text_model: %s\n", e.what());
    return 1;
  }
  return 0;
}
