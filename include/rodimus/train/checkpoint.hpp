// Training checkpoints: the model in the published layout plus fp32 masters, AdamW state and
// the trainer's state, so a run resumes exactly.
#pragma once

#include <Kokkos_Core.hpp>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "rodimus/core/dtype.hpp"
#include "rodimus/core/error.hpp"
#include "rodimus/io/checkpoint.hpp"
#include "rodimus/io/config_json.hpp"
#include "rodimus/io/safetensors.hpp"
#include "rodimus/model/config.hpp"
#include "rodimus/train/adamw.hpp"
#include "rodimus/train/parameters.hpp"

namespace rodimus::train {

/// File names inside a training checkpoint directory.
inline constexpr const char* config_file_name = "config.json";
inline constexpr const char* model_file_name = "model.safetensors";
inline constexpr const char* optimizer_file_name = "optimizer.safetensors";
inline constexpr const char* trainer_state_file_name = "trainer_state.json";
/// The `format` value of trainer_state.json.
inline constexpr const char* trainer_state_format = "rodimus-training-checkpoint-v1";

/// How save_training_checkpoint stores the model file.
struct SaveOptions {
  io::StDType model_dtype = io::StDType::BF16;  ///< BF16 (as published) or F32
};

/// What load_training_checkpoint returns besides the restored tensors.
struct TrainingState {
  std::int64_t step = 0;  ///< the `step` passed to save_training_checkpoint
  nlohmann::json extra;   ///< the `extra` object passed to save (null when none)
  io::StDType model_dtype = io::StDType::BF16;  ///< dtype of model.safetensors
};

namespace detail {

template <class V>
std::vector<float> to_host(const V& v) {
  std::vector<float> h(v.extent(0));
  Kokkos::deep_copy(
      Kokkos::View<float*, Kokkos::HostSpace, Kokkos::MemoryUnmanaged>(h.data(), h.size()), v);
  return h;
}

template <class V>
void from_host(const V& v, const float* h) {
  Kokkos::deep_copy(
      v, Kokkos::View<const float*, Kokkos::HostSpace, Kokkos::MemoryUnmanaged>(h, v.extent(0)));
}

/// Writes `text` to `path` through `path.tmp` and a rename, so a crash leaves no torn file.
inline void write_text_atomic(const std::filesystem::path& path, const std::string& text) {
  const auto tmp = std::filesystem::path(path.string() + ".tmp");
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << text;
    f.flush();
    if (!f) throw CheckpointError("cannot write " + tmp.string());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw CheckpointError("cannot rename " + tmp.string() + ": " + ec.message());
}

/// Streams a safetensors file to `path.tmp` (io::write_safetensors_streamed), then renames it.
inline void write_safetensors_atomic(const std::filesystem::path& path,
                                     const std::vector<io::TensorWrite>& tensors,
                                     const std::function<const void*(std::size_t)>& data_of,
                                     const std::map<std::string, std::string>& metadata) {
  const auto tmp = std::filesystem::path(path.string() + ".tmp");
  io::write_safetensors_streamed(tmp, tensors, data_of, metadata);
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw CheckpointError("cannot rename " + tmp.string() + ": " + ec.message());
}

/// config.json of `cfg` as written into a checkpoint: the published keys (io::config_to_json),
/// plus the training keys the published configs carry: torch_dtype, initializer_range and the
/// no_weight_decay_on_{bias,embedding,norm} flags (true: the convention of train::decays).
inline nlohmann::json checkpoint_config_json(const ModelConfig& cfg, io::StDType dtype,
                                             double init_std) {
  auto j = io::config_to_json(cfg);
  j["torch_dtype"] = dtype == io::StDType::BF16 ? "bfloat16" : "float32";
  j["initializer_range"] = init_std;
  j["no_weight_decay_on_bias"] = true;
  j["no_weight_decay_on_embedding"] = true;
  j["no_weight_decay_on_norm"] = true;
  return j;
}

}  // namespace detail

/// Writes a training checkpoint into `dir` (created when missing; files replaced):
/// - `config.json`: `cfg` in the published keys (io::config_to_json) plus `torch_dtype`,
///   `initializer_range` and the `no_weight_decay_on_*` flags;
/// - `model.safetensors`: every parameter under its SPEC 6 name, as `opt.model_dtype` (BF16,
///   round to nearest even, or F32): loadable by Model::load and by the authors' release;
/// - `optimizer.safetensors`: per parameter `<name>.master` (fp32 master weights, so resuming is
///   exact even from a BF16 model file), `<name>.exp_avg` and `<name>.exp_avg_sq` (fp32);
/// - `trainer_state.json`: {format, step, model_dtype, optimizer: {type, step, lr, beta1,
///   beta2, eps, weight_decay}, extra} with `extra` any JSON the trainer passes (schedule, seed,
///   data position, ...).
/// Each file is written to `<file>.tmp` and renamed. Fences the parameters' space. Throws
/// ArgumentError when `params` was built for another config or `optimizer` for other params,
/// CheckpointError when a file cannot be written.
template <class Space>
void save_training_checkpoint(const std::filesystem::path& dir, const ModelConfig& cfg,
                              const ParameterSet<Space>& params, const AdamW<Space>& optimizer,
                              std::int64_t step, const nlohmann::json& extra = nullptr,
                              const SaveOptions& opt = {}) {
  if (io::config_to_json(cfg) != io::config_to_json(params.config()))
    throw ArgumentError("save_training_checkpoint: the parameters were built for another config");
  if (optimizer.size() != params.size())
    throw ArgumentError("save_training_checkpoint: the optimiser has state for " +
                        std::to_string(optimizer.size()) + " parameters, the model has " +
                        std::to_string(params.size()));
  if (opt.model_dtype != io::StDType::BF16 && opt.model_dtype != io::StDType::F32)
    throw ArgumentError("save_training_checkpoint: model_dtype must be BF16 or F32");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw CheckpointError("cannot create " + dir.string() + ": " + ec.message());
  Space().fence();

  // One tensor at a time on the host: a device-to-host copy, then (bf16) a conversion.
  const bool bf = opt.model_dtype == io::StDType::BF16;
  std::vector<float> host;
  std::vector<std::uint16_t> half;
  std::vector<io::TensorWrite> model, state;
  for (const auto& p : params) {
    model.push_back({p.name, opt.model_dtype, p.shape, nullptr});
    state.push_back({p.name + ".master", io::StDType::F32, p.shape, nullptr});
    state.push_back({p.name + ".exp_avg", io::StDType::F32, p.shape, nullptr});
    state.push_back({p.name + ".exp_avg_sq", io::StDType::F32, p.shape, nullptr});
  }
  detail::write_safetensors_atomic(dir / model_file_name, model,
                                   [&](std::size_t i) -> const void* {
                                     host = detail::to_host(params[i].value);
                                     if (!bf) return host.data();
                                     half.resize(host.size());
                                     for (std::size_t j = 0; j < half.size(); ++j)
                                       half[j] = from_f32<bf16>(host[j]).bits;
                                     return half.data();
                                   },
                                   {{"format", "pt"}});
  detail::write_safetensors_atomic(
      dir / optimizer_file_name, state,
      [&](std::size_t k) -> const void* {
        const std::size_t i = k / 3;
        host = detail::to_host(k % 3 == 0   ? params[i].value
                               : k % 3 == 1 ? optimizer.exp_avg(i)
                                            : optimizer.exp_avg_sq(i));
        return host.data();
      },
      {{"format", "rodimus-adamw"}, {"step", std::to_string(optimizer.step_count())}});
  detail::write_text_atomic(
      dir / config_file_name,
      detail::checkpoint_config_json(cfg, opt.model_dtype, params.init_std()).dump(2) + "\n");
  const auto& oc = optimizer.config();
  nlohmann::json ts = {{"format", trainer_state_format},
                       {"step", step},
                       {"model_dtype", std::string(io::st_dtype_name(opt.model_dtype))},
                       {"optimizer",
                        {{"type", "AdamW"},
                         {"step", optimizer.step_count()},
                         {"lr", oc.lr},
                         {"beta1", oc.beta1},
                         {"beta2", oc.beta2},
                         {"eps", oc.eps},
                         {"weight_decay", oc.weight_decay}}},
                       {"extra", extra}};
  detail::write_text_atomic(dir / trainer_state_file_name, ts.dump(2) + "\n");
}

/// Restores a checkpoint written by save_training_checkpoint into `params` (master weights,
/// exactly, from optimizer.safetensors) and `optimizer` (moments, step count and
/// hyper-parameters), and returns the trainer's step and `extra`. Everything is checked before
/// anything is modified: the config must describe the model `params` was built for, and every
/// file must be present and hold every tensor with the right shape and dtype. Throws
/// CheckpointError naming the file (and tensor) otherwise. Fences the parameters' space.
template <class Space>
TrainingState load_training_checkpoint(const std::filesystem::path& dir,
                                       ParameterSet<Space>& params, AdamW<Space>& optimizer) {
  namespace fs = std::filesystem;
  auto fail = [&](const fs::path& file, const std::string& what) {
    return CheckpointError("training checkpoint: " + file.string() + ": " + what);
  };
  // trainer_state.json
  const fs::path ts_file = dir / trainer_state_file_name;
  nlohmann::json ts;
  {
    std::ifstream in(ts_file, std::ios::binary);
    if (!in) throw fail(ts_file, "cannot open (missing?)");
    std::ostringstream ss;
    ss << in.rdbuf();
    try {
      ts = nlohmann::json::parse(ss.str());
    } catch (const nlohmann::json::exception& e) {
      throw fail(ts_file, std::string("invalid JSON: ") + e.what());
    }
  }
  TrainingState out;
  AdamWConfig oc;
  std::int64_t opt_step = 0;
  try {
    if (!ts.is_object() || ts.value("format", std::string()) != trainer_state_format)
      throw fail(ts_file,
                 std::string("not a trainer state (format is not '") + trainer_state_format + "')");
    out.step = ts.at("step").get<std::int64_t>();
    out.extra = ts.value("extra", nlohmann::json());
    const auto dt = io::parse_st_dtype(ts.at("model_dtype").get<std::string>());
    if (!dt) throw fail(ts_file, "unknown model_dtype");
    out.model_dtype = *dt;
    const auto& o = ts.at("optimizer");
    if (o.at("type").get<std::string>() != "AdamW")
      throw fail(ts_file, "optimizer type is not AdamW");
    opt_step = o.at("step").get<std::int64_t>();
    oc.lr = o.at("lr").get<double>();
    oc.beta1 = o.at("beta1").get<double>();
    oc.beta2 = o.at("beta2").get<double>();
    oc.eps = o.at("eps").get<double>();
    oc.weight_decay = o.at("weight_decay").get<double>();
  } catch (const nlohmann::json::exception& e) {
    throw fail(ts_file, std::string("missing or mistyped key: ") + e.what());
  }

  // config.json
  ModelConfig cfg;
  try {
    cfg = io::load_config(dir);
  } catch (const ConfigError& e) {
    throw CheckpointError(std::string("training checkpoint: ") + e.what());
  }
  if (io::config_to_json(cfg) != io::config_to_json(params.config()))
    throw fail(dir / config_file_name,
               "describes another model than the parameters were built for");

  // model.safetensors: present, and every tensor named and shaped as published.
  {
    const auto ckpt = io::Checkpoint::open(dir / model_file_name);
    for (const auto& p : params) ckpt.require(p.name, std::span<const std::int64_t>(p.shape));
  }

  // optimizer.safetensors: validate everything, then copy.
  const fs::path opt_file = dir / optimizer_file_name;
  if (!fs::exists(opt_file)) throw fail(opt_file, "is missing");
  const auto st = io::SafetensorsFile::open(opt_file);
  if (optimizer.size() != params.size())
    throw ArgumentError("load_training_checkpoint: the optimiser was built for " +
                        std::to_string(optimizer.size()) + " parameters, the model has " +
                        std::to_string(params.size()));
  std::vector<const io::TensorRef*> refs;
  for (const auto& p : params) {
    for (const char* suffix : {".master", ".exp_avg", ".exp_avg_sq"}) {
      const std::string name = p.name + suffix;
      const io::TensorRef* t = st.find(name);
      if (!t) throw fail(opt_file, "tensor '" + name + "' is missing");
      if (t->shape != p.shape)
        throw fail(opt_file, "tensor '" + name + "' has shape " + io::detail::shape_str(t->shape) +
                                 ", expected " + io::detail::shape_str(p.shape));
      if (t->dtype != io::StDType::F32)
        throw fail(opt_file, "tensor '" + name + "' has dtype " +
                                 std::string(io::st_dtype_name(t->dtype)) + ", expected F32");
      refs.push_back(t);
    }
  }
  std::vector<float> h;
  for (std::size_t i = 0; i < params.size(); ++i) {
    const View1<float, Space>* dst[3] = {&params[i].value, &optimizer.exp_avg(i),
                                         &optimizer.exp_avg_sq(i)};
    for (int k = 0; k < 3; ++k) {
      const io::TensorRef* t = refs[3 * i + std::size_t(k)];
      h.resize(std::size_t(t->numel()));
      if (!h.empty()) std::memcpy(h.data(), t->bytes.data(), t->bytes.size());
      detail::from_host(*dst[k], h.data());
    }
  }
  Space().fence();
  optimizer.config() = oc;
  optimizer.set_step_count(opt_step);
  return out;
}

}  // namespace rodimus::train
