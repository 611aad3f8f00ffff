// Shared helpers of the train tests: small configs, host <-> device copies of parameters.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <filesystem>
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
