// Writes a checkpoint folder (config.json + model.safetensors) with random weights of any
// shape: for benchmarks at published sizes without a download, and for tests of config paths
// the golden models do not cover.
#pragma once

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "rodimus/core/dtype.hpp"
#include "rodimus/io/config_json.hpp"
#include "rodimus/io/safetensors.hpp"
#include "rodimus/model/config.hpp"
#include "rodimus/model/tensor_table.hpp"

namespace rodimus::io {

/// Writes `dir/config.json` and `dir/model.safetensors` for `cfg`: every SPEC section 6 tensor,
/// matrices ~ U(-1, 1) / sqrt(fan_in), norm weights ~ 1 + U(-0.1, 0.1), biases small, stored as
/// `dtype` (F32, F16 or BF16). The memory-gate bias is shifted by `gate_bias` (negative values
/// give weaker decay, positive values stronger).
inline void write_random_checkpoint(const ModelConfig& cfg, const std::filesystem::path& dir,
                                    std::uint64_t seed, StDType dtype = StDType::F32,
                                    float gate_bias = 0.f) {
  std::filesystem::create_directories(dir);
  {
    std::ofstream f(dir / "config.json");
    f << config_to_json(cfg).dump(2);
    if (!f)
      throw CheckpointError("write_random_checkpoint: cannot write " +
                            (dir / "config.json").string());
  }
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uni(-1.f, 1.f);
  struct Pending {
    std::string name;
    std::vector<std::int64_t> shape;
    std::vector<float> data;
  };
  std::vector<Pending> all;
  // One draw sequence per tensor, in the order of checkpoint_tensors (the shared SPEC 6 table).
  for (const TensorSpec& t : checkpoint_tensors(cfg)) {
    Pending p{t.name, t.shape, std::vector<float>(std::size_t(t.numel()))};
    auto fill = [&](float center, float spread) {
      for (auto& x : p.data) x = center + spread * uni(rng);
    };
    switch (t.role) {
      case TensorRole::Embedding:
        fill(0.f, 1.f);
        break;
      case TensorRole::Matrix:
        fill(0.f, 1.f / std::sqrt(float(t.shape[1])));
        break;
      case TensorRole::ConvWeight:
        for (auto& x : p.data) x = uni(rng) / std::sqrt(float(t.shape[2]));
        break;
      case TensorRole::Norm:
        fill(1.f, 0.1f);
        break;
      case TensorRole::ConvBias:
      case TensorRole::LinearBias:
        fill(0.f, 0.1f);
        break;
      case TensorRole::ResidualWeight:
        fill(1.f, 0.5f);
        break;
      case TensorRole::MemGateBias:
        fill(gate_bias, 1.f);
        break;
    }
    all.push_back(std::move(p));
  }

  // Convert to the storage dtype, then write.
  std::vector<std::vector<std::uint16_t>> half(all.size());
  std::vector<TensorWrite> tw;
  for (std::size_t i = 0; i < all.size(); ++i) {
    TensorWrite w{all[i].name, dtype, all[i].shape, all[i].data.data()};
    if (dtype == StDType::BF16 || dtype == StDType::F16) {
      half[i].resize(all[i].data.size());
      for (std::size_t j = 0; j < half[i].size(); ++j)
        half[i][j] = dtype == StDType::BF16 ? from_f32<bf16>(all[i].data[j]).bits
                                            : from_f32<fp16>(all[i].data[j]).bits;
      w.data = half[i].data();
    } else if (dtype != StDType::F32) {
      throw CheckpointError("write_random_checkpoint: dtype must be F32, F16 or BF16");
    }
    tw.push_back(std::move(w));
  }
  write_safetensors(dir / "model.safetensors", tw, {{"format", "pt"}});
}

}  // namespace rodimus::io
