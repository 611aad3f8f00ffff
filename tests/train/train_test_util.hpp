// Shared helpers of the train tests: small configs, host <-> device copies of parameters.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "../ops/op_test_util.hpp"
#include "rodimus/train/parameters.hpp"

namespace rodimus::test {

/// A tiny Rodimus (or Rodimus+) config: D = 32, E = 64, n = 8, R = 16, V = 50.
inline ModelConfig tiny_train_config(bool plus, bool tied) {
  ModelConfig c;
  c.block_type = plus ? BlockType::RodimusPlus : BlockType::Rodimus;
  c.d_model = 32;
  c.n_layer = 2;
  c.vocab_size = 50;
  c.tie_word_embeddings = tied;
  c.use_norm_embedding = plus;
  c.mixer.mem_size = 8;
  if (plus) {
    c.attn.num_heads = 2;
    c.attn.num_heads_k = 1;
    c.attn.num_heads_v = 2;
    c.attn.window_size = 8;
  }
  return c;
}

/// Host copy of a flat float view.
template <class V>
std::vector<float> host_floats(const V& v) {
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), v);
  return std::vector<float>(h.data(), h.data() + h.extent(0));
}

/// Copies `h` into the flat float view `v`.
template <class V>
void set_floats(const V& v, const std::vector<float>& h) {
  auto m = Kokkos::create_mirror_view(v);
  for (std::size_t i = 0; i < h.size(); ++i) m(i) = h[i];
  Kokkos::deep_copy(v, m);
}

/// A fresh directory under the temp dir, removed by the destructor.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& tag) {
    path = std::filesystem::temp_directory_path() /
           ("rodimus_train_" + tag + "_" + std::to_string(::getpid()) + "_" +
            std::to_string(std::random_device{}()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

}  // namespace rodimus::test

namespace rodimus::test {

/// The tokenizer trained on tests/data/tokenizer_train/corpus (512 tokens, <|endoftext|> = 510).
inline std::filesystem::path small_tokenizer_file() {
  return std::filesystem::path(RODIMUS_TEST_DATA_DIR) / "tokenizer_train" / "tokenizer.json";
}

/// Writes `files` small Python-like text files under `root` (in subfolders a/, b/c/, and one
/// excluded folder test/ plus a .txt file that a ".py" filter skips), their text drawn from a
/// word-level Markov chain seeded by `seed`: a corpus a bigram model can learn. Returns the
/// relative paths of the .py files written outside test/.
inline std::vector<std::string> write_markov_corpus(const std::filesystem::path& root, int files,
                                                    std::uint32_t seed, int words_per_file = 300) {
  static const char* vocab[] = {"def ",    "return ", "self",  ".",   "(",     ")",
                                ":\n",     "    ",    "x",     " = ", "1",     "+",
                                "import ", "os",      "\n",    "if ", "else",  "for ",
                                " in ",    "range",   "print", ", ",  "value", "None"};
  constexpr int nv = sizeof(vocab) / sizeof(vocab[0]);
  std::mt19937 gen(seed);
  // a sparse transition table: each word is followed by one of 3 successors
  std::vector<std::array<int, 3>> next(nv);
  for (auto& n : next)
    for (auto& x : n) x = std::uniform_int_distribution<int>(0, nv - 1)(gen);
  std::vector<std::string> rel;
  const auto write = [&](const std::string& r, int words) {
    const auto p = root / r;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream f(p, std::ios::binary);
    int w = std::uniform_int_distribution<int>(0, nv - 1)(gen);
    for (int i = 0; i < words; ++i) {
      f << vocab[w];
      w = next[w][std::uniform_int_distribution<int>(0, 2)(gen)];
    }
  };
  for (int i = 0; i < files; ++i) {
    const std::string r = (i % 3 == 0   ? "a/"
                           : i % 3 == 1 ? "b/c/"
                                        : "") +
                          std::string("m") + std::to_string(i) + ".py";
    write(r, words_per_file + std::uniform_int_distribution<int>(0, words_per_file)(gen));
    rel.push_back(r);
  }
  write("test/excluded.py", 50);
  write("a/notes.txt", 50);
  std::sort(rel.begin(), rel.end());
  return rel;
}

}  // namespace rodimus::test
