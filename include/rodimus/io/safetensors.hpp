// The safetensors format: a validating memory-mapped reader and a writer (floats and ints).
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rodimus/core/dtype.hpp"
#include "rodimus/core/error.hpp"

namespace rodimus::io {

/// Every element type the safetensors format names (sub-byte F4/F6 types are not supported).
enum class StDType : std::uint8_t {
  BOOL,
  U8,
  I8,
  F8_E5M2,
  F8_E4M3,
  F8_E8M0,
  I16,
  U16,
  F16,
  BF16,
  I32,
  U32,
  F32,
  C64,
  F64,
  I64,
  U64
};

namespace detail {

struct StDTypeInfo {
  StDType dtype;
  std::string_view name;
  std::size_t size;
};

inline constexpr StDTypeInfo st_dtype_table[] = {
    {StDType::BOOL, "BOOL", 1},       {StDType::U8, "U8", 1},
    {StDType::I8, "I8", 1},           {StDType::F8_E5M2, "F8_E5M2", 1},
    {StDType::F8_E4M3, "F8_E4M3", 1}, {StDType::F8_E8M0, "F8_E8M0", 1},
    {StDType::I16, "I16", 2},         {StDType::U16, "U16", 2},
    {StDType::F16, "F16", 2},         {StDType::BF16, "BF16", 2},
    {StDType::I32, "I32", 4},         {StDType::U32, "U32", 4},
    {StDType::F32, "F32", 4},         {StDType::C64, "C64", 8},
    {StDType::F64, "F64", 8},         {StDType::I64, "I64", 8},
    {StDType::U64, "U64", 8},
};

/// a * b into out, false on overflow (both operands non-negative).
inline bool checked_mul(std::int64_t a, std::int64_t b, std::int64_t& out) {
  return !__builtin_mul_overflow(a, b, &out);
}

/// "[2, 3]" for a shape.
inline std::string shape_str(std::span<const std::int64_t> shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

/// A printable, length-limited rendering of a (possibly hostile) name for error messages.
inline std::string quoted(std::string_view s) {
  constexpr std::size_t max_len = 200;
  std::string out = "'";
  for (std::size_t i = 0; i < s.size() && i < max_len; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (s.size() > max_len) out += "...";
  return out + "'";
}

/// Reads a little-endian u64 from 8 bytes.
inline std::uint64_t load_le_u64(const std::byte* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | std::to_integer<std::uint64_t>(p[i]);
  return v;
}

/// A read-only private mapping of a whole file; owns the mapping, movable.
class MappedFile {
 public:
  MappedFile() = default;
  MappedFile(void* data, std::size_t size) : data_(data), size_(size) {}
  MappedFile(MappedFile&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  MappedFile& operator=(MappedFile&& o) noexcept {
    if (this != &o) {
      reset();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() { reset(); }

  std::span<const std::byte> bytes() const { return {static_cast<const std::byte*>(data_), size_}; }

 private:
  void reset() noexcept {
    if (data_) ::munmap(data_, size_);
    data_ = nullptr;
    size_ = 0;
  }
  void* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace detail

/// Bytes per element of a safetensors dtype.
constexpr std::size_t st_dtype_size(StDType d) {
  for (const auto& e : detail::st_dtype_table)
    if (e.dtype == d) return e.size;
  return 0;
}

/// The format's spelling of a dtype ("F32", "BF16", "I64", ...).
constexpr std::string_view st_dtype_name(StDType d) {
  for (const auto& e : detail::st_dtype_table)
    if (e.dtype == d) return e.name;
  return "?";
}

/// The dtype a header string names, or nullopt when it names none this reader supports.
constexpr std::optional<StDType> parse_st_dtype(std::string_view name) {
  for (const auto& e : detail::st_dtype_table)
    if (e.name == name) return e.dtype;
  return std::nullopt;
}

/// The rodimus storage dtype of a float safetensors dtype (F32, F16, BF16), else nullopt.
constexpr std::optional<DType> as_float_dtype(StDType d) {
  switch (d) {
    case StDType::F32:
      return DType::F32;
    case StDType::F16:
      return DType::F16;
    case StDType::BF16:
      return DType::BF16;
    default:
      return std::nullopt;
  }
}

/// One tensor of a safetensors file: a view of its bytes (possibly unaligned) in the file.
struct TensorRef {
  std::string name;
  StDType dtype = StDType::F32;
  std::vector<std::int64_t> shape;
  std::span<const std::byte> bytes;  ///< numel() * st_dtype_size(dtype) bytes

  /// Number of elements (1 for a scalar of shape []).
  std::int64_t numel() const {
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
};

/// A parsed, validated safetensors file; memory-mapped when opened from a path.
class SafetensorsFile {
 public:
  /// Largest header accepted (the reference implementation's limit).
  static constexpr std::uint64_t max_header_size = 100u << 20;

  SafetensorsFile() = default;
  SafetensorsFile(SafetensorsFile&&) noexcept = default;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept = default;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  /// Maps `path` read-only and validates it. Throws CheckpointError naming the path when the
  /// file is missing, not a regular file, empty, or not a well-formed safetensors file.
  /// The file must not be truncated by another process while it is mapped.
  static SafetensorsFile open(const std::filesystem::path& path) {
    const std::string src = path.string();
    auto fail = [&](const std::string& what) -> CheckpointError {
      return CheckpointError("safetensors file '" + src + "': " + what);
    };
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) throw fail(std::string("cannot open: ") + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      throw fail(std::string("cannot stat: ") + std::strerror(err));
    }
    if (S_ISDIR(st.st_mode)) {
      ::close(fd);
      throw fail("is a directory");
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      throw fail("is not a regular file");
    }
    if (st.st_size == 0) {
      ::close(fd);
      throw fail("is empty");
    }
    const auto size = static_cast<std::size_t>(st.st_size);
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    const int err = errno;
    ::close(fd);
    if (p == MAP_FAILED) throw fail(std::string("cannot mmap: ") + std::strerror(err));
    detail::MappedFile map(p, size);
    SafetensorsFile f = parse(map.bytes(), src);
    f.map_ = std::move(map);
    return f;
  }

  /// Parses and validates an in-memory safetensors image without copying it; the caller keeps
  /// `buffer` alive as long as the result (and its tensors' byte spans) are used.
  static SafetensorsFile parse(std::span<const std::byte> buffer,
                               std::string source_name = "<buffer>") {
    SafetensorsFile f;
    f.source_ = std::move(source_name);
    try {
      f.parse_impl(buffer);
    } catch (const nlohmann::json::exception& e) {
      throw f.error(std::string("malformed header: ") + e.what());
    }
    return f;
  }

  /// All tensors, sorted by name.
  const std::vector<TensorRef>& tensors() const { return tensors_; }

  /// The tensor called `name`, or nullptr.
  const TensorRef* find(std::string_view name) const {
    auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                               [](const TensorRef& t, std::string_view n) { return t.name < n; });
    return (it != tensors_.end() && it->name == name) ? &*it : nullptr;
  }

  /// The `__metadata__` string map (empty when absent).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  /// The path or name the file was read from, as used in error messages.
  const std::string& source() const { return source_; }

 private:
  CheckpointError error(const std::string& what) const {
    return CheckpointError("safetensors file '" + source_ + "': " + what);
  }
  CheckpointError error(std::string_view tensor, const std::string& what) const {
    return error("tensor " + detail::quoted(tensor) + ": " + what);
  }

  /// A non-negative JSON integer as u64, or nullopt.
  static std::optional<std::uint64_t> as_u64(const nlohmann::json& j) {
    if (j.is_number_unsigned()) return j.get<std::uint64_t>();
    if (j.is_number_integer()) {
      const auto v = j.get<std::int64_t>();
      if (v >= 0) return static_cast<std::uint64_t>(v);
    }
    return std::nullopt;
  }

  void parse_impl(std::span<const std::byte> buf) {
    if (buf.size() < 8)
      throw error("file is " + std::to_string(buf.size()) +
                  " bytes, shorter than the 8-byte header length");
    const std::uint64_t n = detail::load_le_u64(buf.data());
    const std::uint64_t avail = buf.size() - 8;
    if (n > max_header_size)
      throw error("header length " + std::to_string(n) + " is absurd (limit " +
                  std::to_string(max_header_size) + ")");
    if (n > avail)
      throw error("header length " + std::to_string(n) + " exceeds the " + std::to_string(avail) +
                  " bytes after the length field (truncated file?)");
    const std::string_view text(reinterpret_cast<const char*>(buf.data() + 8),
                                static_cast<std::size_t>(n));
    const std::span<const std::byte> data = buf.subspan(8 + static_cast<std::size_t>(n));

    nlohmann::json header;
    try {
      header = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      throw error(std::string("header is not valid JSON: ") + e.what());
    }
    if (!header.is_object()) throw error("header is not a JSON object");

    tensors_.reserve(header.size());
    for (const auto& [name, entry] : header.items()) {
      if (name == "__metadata__") {
        if (!entry.is_object()) throw error("__metadata__ is not an object");
        for (const auto& [k, v] : entry.items()) {
          if (!v.is_string())
            throw error("__metadata__ value of key " + detail::quoted(k) + " is not a string");
          metadata_.emplace(k, v.get<std::string>());
        }
        continue;
      }
      tensors_.push_back(parse_entry(name, entry, data));
    }
    // header.items() of a std::map-backed json is already sorted by name
    check_overlaps();
  }

  TensorRef parse_entry(const std::string& name, const nlohmann::json& entry,
                        std::span<const std::byte> data) const {
    if (!entry.is_object()) throw error(name, "entry is not an object");
    TensorRef t;
    t.name = name;

    const auto dt = entry.find("dtype");
    if (dt == entry.end()) throw error(name, "missing 'dtype'");
    if (!dt->is_string()) throw error(name, "'dtype' is not a string");
    const auto& dts = dt->get_ref<const std::string&>();
    const auto parsed = parse_st_dtype(dts);
    if (!parsed) throw error(name, "unknown or unsupported dtype " + detail::quoted(dts));
    t.dtype = *parsed;

    const auto sh = entry.find("shape");
    if (sh == entry.end()) throw error(name, "missing 'shape'");
    if (!sh->is_array()) throw error(name, "'shape' is not an array");
    std::int64_t numel = 1;
    t.shape.reserve(sh->size());
    for (const auto& d : *sh) {
      const auto v = as_u64(d);
      if (!v) throw error(name, "'shape' has a dimension that is not a non-negative integer");
      if (*v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        throw error(name, "'shape' dimension " + std::to_string(*v) + " is too large");
      const auto dim = static_cast<std::int64_t>(*v);
      if (!detail::checked_mul(numel, dim, numel))
        throw error(name, "element count of 'shape' overflows");
      t.shape.push_back(dim);
    }
    std::int64_t nbytes = 0;
    if (!detail::checked_mul(numel, static_cast<std::int64_t>(st_dtype_size(t.dtype)), nbytes))
      throw error(name, "byte size of shape " + detail::shape_str(t.shape) + " overflows");

    const auto off = entry.find("data_offsets");
    if (off == entry.end()) throw error(name, "missing 'data_offsets'");
    if (!off->is_array() || off->size() != 2)
      throw error(name, "'data_offsets' is not an array of two integers");
    const auto b = as_u64((*off)[0]);
    const auto e = as_u64((*off)[1]);
    if (!b || !e) throw error(name, "'data_offsets' are not two non-negative integers");
    if (*b > *e)
      throw error(name, "data_offsets [" + std::to_string(*b) + ", " + std::to_string(*e) +
                            "] begin after they end");
    if (*e > data.size())
      throw error(name, "data_offsets [" + std::to_string(*b) + ", " + std::to_string(*e) +
                            "] end beyond the " + std::to_string(data.size()) +
                            "-byte data section (truncated file?)");
    if (*e - *b != static_cast<std::uint64_t>(nbytes))
      throw error(name, "data_offsets [" + std::to_string(*b) + ", " + std::to_string(*e) +
                            "] span " + std::to_string(*e - *b) + " bytes, but shape " +
                            detail::shape_str(t.shape) + " of " +
                            std::string(st_dtype_name(t.dtype)) + " needs " +
                            std::to_string(nbytes));
    t.bytes = data.subspan(static_cast<std::size_t>(*b), static_cast<std::size_t>(*e - *b));
    return t;
  }

  void check_overlaps() const {
    std::vector<const TensorRef*> order;
    order.reserve(tensors_.size());
    for (const auto& t : tensors_) order.push_back(&t);
    std::sort(order.begin(), order.end(), [](const TensorRef* a, const TensorRef* b) {
      const auto ab = a->bytes.data(), bb = b->bytes.data();
      if (ab != bb) return std::less<>()(ab, bb);
      return a->bytes.size() < b->bytes.size();
    });
    const std::byte* max_end = nullptr;
    const TensorRef* max_owner = nullptr;
    for (const TensorRef* t : order) {
      if (max_owner && std::less<>()(t->bytes.data(), max_end))
        throw error(t->name, "data overlaps tensor " + detail::quoted(max_owner->name));
      const std::byte* end = t->bytes.data() + t->bytes.size();
      if (!max_owner || std::less<>()(max_end, end)) {
        max_end = end;
        max_owner = t;
      }
    }
  }

  detail::MappedFile map_;  // empty for parse()
  std::string source_;
  std::vector<TensorRef> tensors_;
  std::map<std::string, std::string> metadata_;
};

/// One tensor to write: `data` points to numel * st_dtype_size(dtype) bytes.
struct TensorWrite {
  std::string name;
  StDType dtype = StDType::F32;
  std::vector<std::int64_t> shape;
  const void* data = nullptr;
};

namespace detail {

/// The header of a safetensors file (padded with spaces to a multiple of 8 bytes) and each
/// tensor's byte size. Errors are CheckpointErrors prefixed by `who`; `need_data` also rejects
/// null data of non-zero size.
struct SafetensorsLayout {
  std::string header;
  std::vector<std::size_t> sizes;
  std::uint64_t data_bytes = 0;
};

inline SafetensorsLayout safetensors_layout(std::span<const TensorWrite> tensors,
                                            const std::map<std::string, std::string>& metadata,
                                            const std::string& who, bool need_data) {
  auto fail = [&](const std::string& what) { return CheckpointError(who + what); };
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) {
    nlohmann::json m = nlohmann::json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = std::move(m);
  }
  SafetensorsLayout out;
  out.sizes.reserve(tensors.size());
  std::uint64_t offset = 0;
  for (const auto& t : tensors) {
    if (t.name == "__metadata__") throw fail("tensor name '__metadata__' is reserved");
    if (header.contains(t.name)) throw fail("duplicate tensor name " + detail::quoted(t.name));
    std::int64_t numel = 1;
    for (auto d : t.shape) {
      if (d < 0) throw fail("tensor " + detail::quoted(t.name) + " has a negative dimension");
      if (!detail::checked_mul(numel, d, numel))
        throw fail("tensor " + detail::quoted(t.name) + " is too large");
    }
    std::int64_t nbytes = 0;
    if (!detail::checked_mul(numel, static_cast<std::int64_t>(st_dtype_size(t.dtype)), nbytes))
      throw fail("tensor " + detail::quoted(t.name) + " is too large");
    if (need_data && nbytes > 0 && t.data == nullptr)
      throw fail("tensor " + detail::quoted(t.name) + " has no data");
    header[t.name] = {{"dtype", std::string(st_dtype_name(t.dtype))},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + static_cast<std::uint64_t>(nbytes)}}};
    offset += static_cast<std::uint64_t>(nbytes);
    out.sizes.push_back(static_cast<std::size_t>(nbytes));
  }
  try {
    out.header = header.dump();
  } catch (const nlohmann::json::exception& e) {
    throw fail(std::string("cannot encode header: ") + e.what());  // e.g. a name not UTF-8
  }
  out.header.append((8 - out.header.size() % 8) % 8, ' ');
  out.data_bytes = offset;
  return out;
}

/// The 8-byte little-endian header length that opens a safetensors file.
inline void store_le_u64(std::uint64_t n, std::byte* p) {
  for (std::size_t i = 0; i < 8; ++i) p[i] = static_cast<std::byte>((n >> (8 * i)) & 0xffu);
}

}  // namespace detail

/// Serialises tensors (data in the given order) and string metadata into a safetensors image.
/// The header is padded with spaces to a multiple of 8 bytes. Throws CheckpointError for a
/// duplicate or reserved name, a negative dimension, or null data of non-zero size.
inline std::vector<std::byte> serialize_safetensors(
    std::span<const TensorWrite> tensors, const std::map<std::string, std::string>& metadata = {}) {
  const auto layout =
      detail::safetensors_layout(tensors, metadata, "serialize_safetensors: ", true);
  const std::string& text = layout.header;
  std::vector<std::byte> out(8 + text.size() + layout.data_bytes);
  detail::store_le_u64(text.size(), out.data());
  std::memcpy(out.data() + 8, text.data(), text.size());
  std::byte* p = out.data() + 8 + text.size();
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    if (layout.sizes[i]) std::memcpy(p, tensors[i].data, layout.sizes[i]);
    p += layout.sizes[i];
  }
  return out;
}

/// Writes the same file as write_safetensors, one tensor at a time: the `data` members of
/// `tensors` are ignored and `data_of(i)` gives tensor i's bytes instead (called once per
/// tensor, in order; the pointer must stay valid until the next call). Only one tensor's bytes
/// need to be in memory, for checkpoints larger than the host's memory would hold twice.
/// Throws CheckpointError naming the path on bad tensors or I/O failure.
inline void write_safetensors_streamed(const std::filesystem::path& path,
                                       std::span<const TensorWrite> tensors,
                                       const std::function<const void*(std::size_t)>& data_of,
                                       const std::map<std::string, std::string>& metadata = {}) {
  const std::string who = "cannot write safetensors file '" + path.string() + "': ";
  const auto layout = detail::safetensors_layout(tensors, metadata, who, false);
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw CheckpointError(who + std::strerror(errno));
  auto put = [&](const void* p, std::size_t n) {
    if (n && std::fwrite(p, 1, n, f) != n) {
      const int err = errno;
      std::fclose(f);
      throw CheckpointError(who + std::strerror(err));
    }
  };
  std::byte len[8];
  detail::store_le_u64(layout.header.size(), len);
  put(len, 8);
  put(layout.header.data(), layout.header.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const void* p = data_of(i);
    if (layout.sizes[i] && !p) {
      std::fclose(f);
      throw CheckpointError(who + "tensor " + detail::quoted(tensors[i].name) + " has no data");
    }
    put(p, layout.sizes[i]);
  }
  if (std::fclose(f) != 0) throw CheckpointError(who + std::strerror(errno));
}

/// Writes a safetensors file (see serialize_safetensors); throws CheckpointError on I/O failure.
inline void write_safetensors(const std::filesystem::path& path,
                              std::span<const TensorWrite> tensors,
                              const std::map<std::string, std::string>& metadata = {}) {
  const std::vector<std::byte> bytes = serialize_safetensors(tensors, metadata);
  auto fail = [&](const std::string& what) {
    return CheckpointError("cannot write safetensors file '" + path.string() + "': " + what);
  };
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw fail(std::strerror(errno));
  const std::size_t written = std::fwrite(bytes.data(), 1, bytes.size(), f);
  const int werr = errno;
  if (written != bytes.size()) {
    std::fclose(f);
    throw fail(std::strerror(werr));
  }
  if (std::fclose(f) != 0) throw fail(std::strerror(errno));
}

}  // namespace rodimus::io
