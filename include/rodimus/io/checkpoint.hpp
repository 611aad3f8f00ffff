// A checkpoint: one safetensors file or a sharded set with an index, looked up by tensor name.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <nlohmann/json.hpp>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "rodimus/core/dtype.hpp"
#include "rodimus/core/error.hpp"
#include "rodimus/io/safetensors.hpp"

namespace rodimus::io {

/// The weights of a model, looked up by their SPEC section 6 names across one or more
/// memory-mapped safetensors shards.
class Checkpoint {
 public:
  /// File name of a single-file checkpoint inside a model directory.
  static constexpr std::string_view single_file_name = "model.safetensors";
  /// File name of the shard index inside a model directory.
  static constexpr std::string_view index_file_name = "model.safetensors.index.json";

  Checkpoint() = default;
  Checkpoint(Checkpoint&&) noexcept = default;
  Checkpoint& operator=(Checkpoint&&) noexcept = default;
  Checkpoint(const Checkpoint&) = delete;
  Checkpoint& operator=(const Checkpoint&) = delete;

  /// Opens `path`: a directory (its model.safetensors.index.json when present, else its
  /// model.safetensors), a `*.index.json` file, or a single .safetensors file.
  /// Throws CheckpointError when nothing usable is there or any file is malformed.
  static Checkpoint open(const std::filesystem::path& path) {
    namespace fs = std::filesystem;
    Checkpoint c;
    c.path_ = path.string();
    std::error_code ec;
    const auto st = fs::status(path, ec);
    if (ec || !fs::exists(st)) throw c.error("does not exist");
    if (fs::is_directory(st)) {
      c.dir_ = path;
      const fs::path index = path / index_file_name;
      const fs::path single = path / single_file_name;
      if (fs::exists(index, ec)) {
        c.open_index(index);
      } else if (fs::exists(single, ec)) {
        c.open_single(single);
      } else {
        throw c.error("directory has neither " + std::string(index_file_name) + " nor " +
                      std::string(single_file_name));
      }
    } else {
      c.dir_ = path.parent_path();
      if (c.dir_.empty()) c.dir_ = ".";
      const std::string fname = path.filename().string();
      if (fname.size() >= 11 && fname.ends_with(".index.json")) {
        c.open_index(path);
      } else {
        c.open_single(path);
      }
    }
    return c;
  }

  /// The tensor called `name`, or nullptr.
  const TensorRef* find(std::string_view name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : it->second;
  }

  /// The float tensor called `name` with exactly `shape`; throws CheckpointError naming the
  /// tensor when it is missing, has another shape, or is not F32, F16 or BF16.
  const TensorRef& require(std::string_view name, std::span<const std::int64_t> shape) const {
    const TensorRef* t = find(name);
    if (!t) throw tensor_error(name, "is missing");
    if (!std::equal(t->shape.begin(), t->shape.end(), shape.begin(), shape.end()))
      throw tensor_error(name, "has shape " + detail::shape_str(t->shape) + ", expected " +
                                   detail::shape_str(shape));
    if (!as_float_dtype(t->dtype))
      throw tensor_error(name, "has dtype " + std::string(st_dtype_name(t->dtype)) +
                                   ", expected F32, F16 or BF16");
    return *t;
  }
  const TensorRef& require(std::string_view name, std::initializer_list<std::int64_t> shape) const {
    return require(name, std::span<const std::int64_t>(shape.begin(), shape.size()));
  }

  /// Copies the float tensor `name` (checked as by require) into `out` (numel elements of T),
  /// converting F32/F16/BF16 to T through fp32.
  template <StorageType T>
  void read(std::string_view name, std::span<const std::int64_t> shape, T* out) const {
    const TensorRef& t = require(name, shape);
    const DType src = *as_float_dtype(t.dtype);
    const auto n = static_cast<std::size_t>(t.numel());
    const std::byte* p = t.bytes.data();
    if (src == dtype_traits<T>::dtype) {
      if (n) std::memcpy(out, p, t.bytes.size());
      return;
    }
    switch (src) {
      case DType::F32:
        for (std::size_t i = 0; i < n; ++i) {
          float v;
          std::memcpy(&v, p + 4 * i, 4);
          out[i] = from_f32<T>(v);
        }
        break;
      case DType::F16:
        for (std::size_t i = 0; i < n; ++i) {
          fp16 v;
          std::memcpy(&v.bits, p + 2 * i, 2);
          out[i] = from_f32<T>(to_f32(v));
        }
        break;
      case DType::BF16:
        for (std::size_t i = 0; i < n; ++i) {
          bf16 v;
          std::memcpy(&v.bits, p + 2 * i, 2);
          out[i] = from_f32<T>(to_f32(v));
        }
        break;
    }
  }
  template <StorageType T>
  void read(std::string_view name, std::initializer_list<std::int64_t> shape, T* out) const {
    read<T>(name, std::span<const std::int64_t>(shape.begin(), shape.size()), out);
  }

  /// The float tensor `name` (checked as by require) converted to fp32.
  std::vector<float> read_f32(std::string_view name, std::span<const std::int64_t> shape) const {
    const TensorRef& t = require(name, shape);
    std::vector<float> out(static_cast<std::size_t>(t.numel()));
    read<float>(name, shape, out.data());
    return out;
  }
  std::vector<float> read_f32(std::string_view name,
                              std::initializer_list<std::int64_t> shape) const {
    return read_f32(name, std::span<const std::int64_t>(shape.begin(), shape.size()));
  }

  /// Names of all tensors, sorted (for a sharded checkpoint: the index's weight_map keys).
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    out.reserve(index_.size());
    for (const auto& kv : index_) out.push_back(kv.first);
    return out;
  }

  /// The directory holding the checkpoint's files.
  const std::filesystem::path& dir() const { return dir_; }

  /// The path the checkpoint was opened from, as used in error messages.
  const std::string& path() const { return path_; }

  /// The opened shard files.
  const std::vector<SafetensorsFile>& shards() const { return shards_; }

 private:
  CheckpointError error(const std::string& what) const {
    return CheckpointError("checkpoint " + path_ + ": " + what);
  }
  CheckpointError tensor_error(std::string_view name, const std::string& what) const {
    return error("tensor " + detail::quoted(name) + " " + what);
  }

  void open_single(const std::filesystem::path& file) {
    shards_.push_back(SafetensorsFile::open(file));
    for (const auto& t : shards_.back().tensors()) index_.emplace(t.name, &t);
  }

  void open_index(const std::filesystem::path& index_file) {
    const std::string idx = index_file.string();
    auto fail = [&](const std::string& what) { return error(idx + ": " + what); };
    std::ifstream in(index_file, std::ios::binary);
    if (!in) throw fail("cannot open");
    std::ostringstream ss;
    ss << in.rdbuf();
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(ss.str());
    } catch (const nlohmann::json::exception& e) {
      throw fail(std::string("invalid JSON: ") + e.what());
    }
    if (!j.is_object()) throw fail("not a JSON object");
    const auto wm = j.find("weight_map");
    if (wm == j.end()) throw fail("missing 'weight_map'");
    if (!wm->is_object()) throw fail("'weight_map' is not an object");

    // shard file name -> position in shards_
    std::map<std::string, std::size_t> shard_pos;
    std::vector<std::pair<std::string, std::size_t>> entries;
    for (const auto& [name, v] : wm->items()) {
      if (!v.is_string())
        throw fail("weight_map entry " + detail::quoted(name) + " is not a string");
      const auto& file = v.get_ref<const std::string&>();
      if (file.empty() || file == "." || file == ".." ||
          file.find_first_of("/\\") != std::string::npos || file.find('\0') != std::string::npos)
        throw fail("weight_map entry " + detail::quoted(name) + " names shard " +
                   detail::quoted(file) + ", which is not a plain file name");
      auto [it, inserted] = shard_pos.emplace(file, shards_.size());
      if (inserted) shards_.push_back(SafetensorsFile::open(dir_ / file));
      entries.emplace_back(name, it->second);
    }
    for (const auto& [name, pos] : entries) {
      const TensorRef* t = shards_[pos].find(name);
      if (!t)
        throw fail("tensor " + detail::quoted(name) + " is listed in weight_map but missing from " +
                   shards_[pos].source());
      index_.emplace(name, t);
    }
  }

  std::string path_;
  std::filesystem::path dir_;
  std::vector<SafetensorsFile> shards_;
  std::map<std::string, const TensorRef*, std::less<>> index_;
};

}  // namespace rodimus::io
