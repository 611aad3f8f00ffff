// The decode state of a batch of sequences (SPEC 7): conv tails, GLA states, rolling K/V.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "rodimus/backend/exec_space_traits.hpp"
#include "rodimus/core/error.hpp"
#include "rodimus/core/views.hpp"
#include "rodimus/model/config.hpp"

namespace rodimus {

/// Recurrent state of `slots` independent sequences. Slot b of every layer belongs to one
/// sequence; a forward call continues the slots it names. For Rodimus the size is constant in
/// the context length; Rodimus+ adds a rolling K/V cache of W/2 rows per layer.
template <class Space>
class State {
 public:
  /// Per-layer buffers, all fp32.
  struct Layer {
    View3<float, Space> conv;     ///< [slots, K-1, E] last conv inputs, oldest first
    View3<float, Space> gla;      ///< [slots, n, E]
    View3<float, Space> k_cache;  ///< [slots, Wc, Hk*hd] row = position % Wc (Rodimus+)
    View3<float, Space> v_cache;  ///< [slots, Wc, Hv*hd]
  };

  State() = default;

  /// A zeroed state for `slots` sequences. `kv_rows` is the K/V cache length (W/2 for a
  /// windowed model; the maximum context for unbounded attention; ignored for Rodimus).
  State(const ModelConfig& cfg, int slots, int kv_rows) : slots_(slots), pos_(slots, 0) {
    if (slots <= 0) throw ArgumentError("State: slots must be positive");
    require_launch_thread<Space>("State");
    const int e = cfg.d_inner(), n = cfg.mem_size(), km1 = cfg.d_conv() - 1;
    kv_rows_ = cfg.is_plus() ? kv_rows : 0;
    kdim_ = cfg.is_plus() ? cfg.num_heads_k() * cfg.head_dim() : 0;
    vdim_ = cfg.is_plus() ? cfg.num_heads_v() * cfg.head_dim() : 0;
    dims_ = {cfg.n_layer, e, n, km1, kv_rows_, kdim_, vdim_};
    layers_.resize(cfg.n_layer);
    for (auto& l : layers_) {
      l.conv = alloc("rodimus::state.conv", slots, km1, e);
      l.gla = alloc("rodimus::state.gla", slots, n, e);
      l.k_cache = alloc("rodimus::state.k_cache", slots, kv_rows_, kdim_);
      l.v_cache = alloc("rodimus::state.v_cache", slots, kv_rows_, vdim_);
    }
  }

  int slots() const { return slots_; }

  /// True when this state has exactly the shape a model of `cfg` with `kv_rows` cache rows needs.
  bool matches(const ModelConfig& cfg, int kv_rows) const {
    const int kr = cfg.is_plus() ? kv_rows : 0;
    const std::array<std::int32_t, 7> want = {
        cfg.n_layer,
        cfg.d_inner(),
        cfg.mem_size(),
        cfg.d_conv() - 1,
        kr,
        cfg.is_plus() ? cfg.num_heads_k() * cfg.head_dim() : 0,
        cfg.is_plus() ? cfg.num_heads_v() * cfg.head_dim() : 0};
    return want == dims_;
  }
  int num_layers() const { return static_cast<int>(layers_.size()); }
  const Layer& layer(int l) const { return layers_.at(l); }
  /// Rows of the K/V cache (0 for Rodimus).
  int kv_rows() const { return kv_rows_; }

  /// Tokens slot `b` has consumed (its next absolute position).
  std::int64_t position(int b) const { return pos_.at(check_slot(b)); }
  /// Called by the model after a forward call.
  void advance(int b, std::int64_t tokens) { pos_.at(check_slot(b)) += tokens; }

  /// Bytes of state one sequence occupies.
  std::size_t bytes_per_sequence() const {
    std::size_t per_layer = (std::size_t(dims_[3]) * dims_[1] + std::size_t(dims_[2]) * dims_[1] +
                             std::size_t(dims_[4]) * (dims_[5] + dims_[6]));
    return per_layer * layers_.size() * sizeof(float);
  }

  /// Zeroes every slot.
  void reset() {
    for (int b = 0; b < slots_; ++b) reset(b);
  }

  /// Zeroes slot `b`: the sequence starts over at position 0.
  void reset(int b) {
    check_slot(b);
    for (auto& l : layers_) {
      for (auto* v : {&l.conv, &l.gla, &l.k_cache, &l.v_cache})
        if (v->size() > 0) Kokkos::deep_copy(Space(), slot_view(*v, b), 0.f);
    }
    pos_[b] = 0;
    Space().fence();
  }

  /// Copies slot `src_slot` of `src` (a state of the same model) into slot `dst_slot`.
  void copy_slot(int dst_slot, const State& src, int src_slot) {
    check_slot(dst_slot);
    src.check_slot(src_slot);
    if (src.dims_ != dims_) throw StateError("State::copy_slot: states of different models");
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      auto& d = layers_[i];
      const auto& s = src.layers_[i];
      copy(d.conv, dst_slot, s.conv, src_slot);
      copy(d.gla, dst_slot, s.gla, src_slot);
      copy(d.k_cache, dst_slot, s.k_cache, src_slot);
      copy(d.v_cache, dst_slot, s.v_cache, src_slot);
    }
    pos_[dst_slot] = src.pos_[src_slot];
    Space().fence();
  }

  /// A deep copy (State's copy constructor shares buffers, like a Kokkos::View).
  State clone() const {
    State out;
    out.slots_ = slots_;
    out.kv_rows_ = kv_rows_;
    out.kdim_ = kdim_;
    out.vdim_ = vdim_;
    out.dims_ = dims_;
    out.pos_ = pos_;
    out.layers_.resize(layers_.size());
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      const auto& s = layers_[i];
      auto& d = out.layers_[i];
      for (auto [dv, sv] : {std::pair{&d.conv, &s.conv}, std::pair{&d.gla, &s.gla},
                            std::pair{&d.k_cache, &s.k_cache}, std::pair{&d.v_cache, &s.v_cache}}) {
        *dv = alloc(sv->label(), sv->extent(0), sv->extent(1), sv->extent(2));
        Kokkos::deep_copy(Space(), *dv, *sv);
      }
    }
    Space().fence();
    return out;
  }

  /// Serialises slot `b`: a header (magic, version, sizes, position) and the raw fp32 arrays.
  std::vector<std::byte> serialize(int b) const {
    check_slot(b);
    std::vector<std::byte> out;
    append(out, kMagic, sizeof kMagic);
    const std::uint32_t version = 1;
    append(out, &version, sizeof version);
    for (std::int32_t d : dims_) append(out, &d, sizeof d);
    append(out, &pos_[b], sizeof(std::int64_t));
    for (const auto& l : layers_)
      for (const auto* v : {&l.conv, &l.gla, &l.k_cache, &l.v_cache}) {
        auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), slot_view(*v, b));
        append(out, h.data(), h.size() * sizeof(float));
      }
    return out;
  }

  /// Restores slot `b` from serialize()'s bytes; throws StateError if they come from another
  /// model shape, are truncated, or are corrupt.
  void restore(int b, std::span<const std::byte> bytes) {
    check_slot(b);
    std::size_t off = 0;
    auto take = [&](void* dst, std::size_t n) {
      if (bytes.size() - off < n) throw StateError("State::restore: data truncated");
      std::memcpy(dst, bytes.data() + off, n);
      off += n;
    };
    char magic[sizeof kMagic];
    take(magic, sizeof magic);
    if (std::memcmp(magic, kMagic, sizeof kMagic) != 0)
      throw StateError("State::restore: not a rodimus state (bad magic)");
    std::uint32_t version = 0;
    take(&version, sizeof version);
    if (version != 1)
      throw StateError("State::restore: unsupported version " + std::to_string(version));
    std::array<std::int32_t, 7> dims{};
    for (auto& d : dims) take(&d, sizeof d);
    if (dims != dims_)
      throw StateError("State::restore: the state was saved from a model of another shape");
    std::int64_t pos = 0;
    take(&pos, sizeof pos);
    if (pos < 0) throw StateError("State::restore: negative position");
    const std::size_t expect = off + bytes_per_sequence();
    if (bytes.size() != expect)
      throw StateError("State::restore: expected " + std::to_string(expect) + " bytes, got " +
                       std::to_string(bytes.size()));
    for (auto& l : layers_)
      for (auto* v : {&l.conv, &l.gla, &l.k_cache, &l.v_cache}) {
        auto dst = slot_view(*v, b);
        auto h = Kokkos::create_mirror_view(Kokkos::HostSpace(), dst);
        take(h.data(), h.size() * sizeof(float));
        Kokkos::deep_copy(Space(), dst, h);
      }
    pos_[b] = pos;
    Space().fence();
  }

 private:
  static constexpr char kMagic[8] = {'R', 'O', 'D', 'I', 'M', 'U', 'S', 'S'};

  int check_slot(int b) const {
    if (b < 0 || b >= slots_)
      throw ArgumentError("State: slot " + std::to_string(b) + " out of range [0, " +
                          std::to_string(slots_) + ")");
    return b;
  }
  // Zero-initialised through `Space` itself, so any thread that may run `Space` can allocate.
  static View3<float, Space> alloc(const std::string& label, std::size_t a, std::size_t b,
                                   std::size_t c) {
    detail::note_reallocation();
    return View3<float, Space>(Kokkos::view_alloc(label, Space()), a, b, c);
  }
  static auto slot_view(const View3<float, Space>& v, int b) {
    return Kokkos::subview(v, b, Kokkos::ALL, Kokkos::ALL);
  }
  static void copy(const View3<float, Space>& d, int db, const View3<float, Space>& s, int sb) {
    if (d.size() > 0) Kokkos::deep_copy(Space(), slot_view(d, db), slot_view(s, sb));
  }
  static void append(std::vector<std::byte>& out, const void* p, std::size_t n) {
    const auto* b = static_cast<const std::byte*>(p);
    out.insert(out.end(), b, b + n);
  }

  int slots_ = 0;
  int kv_rows_ = 0, kdim_ = 0, vdim_ = 0;
  std::array<std::int32_t, 7> dims_{};  // layers, E, n, K-1, kv rows, k dim, v dim
  std::vector<std::int64_t> pos_;
  std::vector<Layer> layers_;
};

}  // namespace rodimus
