// The decode state of the baseline Transformer: a growing K/V cache per layer, positions per slot.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "rodimus/layers/kv_cache.hpp"
#include "rodimus/model/transformer_config.hpp"

namespace rodimus {

/// The keys and values of every past position of `slots` sequences, in every layer. Unlike a
/// Rodimus state it grows with the context: `bytes()` is what it holds now. All layers share
/// one capacity, grown by `reserve` (amortised doubling; the model calls it before each
/// forward call).
template <class Space>
class TransformerState {
 public:
  TransformerState() = default;

  /// An empty state for `slots` sequences with room for `capacity` positions each.
  TransformerState(const TransformerConfig& cfg, int slots, int capacity)
      : slots_(slots),
        layers_n_(cfg.n_layer),
        kv_dim_(cfg.kv_heads * cfg.head_dim),
        pos_(slots > 0 ? slots : 0, 0) {
    cfg.validate();
    if (slots <= 0) throw ArgumentError("TransformerState: slots must be positive");
    if (capacity < 0) throw ArgumentError("TransformerState: capacity must be >= 0");
    layers_.reserve(cfg.n_layer);
    for (int l = 0; l < cfg.n_layer; ++l) layers_.emplace_back(slots, kv_dim_, capacity);
  }

  int slots() const { return slots_; }
  int num_layers() const { return layers_n_; }
  /// Positions each slot can hold before the caches grow.
  int capacity() const { return layers_.empty() ? 0 : layers_.front().capacity(); }
  const KvCache<Space>& layer(int l) const { return layers_.at(l); }

  /// True when this state has the shape a model of `cfg` needs.
  bool matches(const TransformerConfig& cfg) const {
    return layers_n_ == cfg.n_layer && kv_dim_ == cfg.kv_heads * cfg.head_dim;
  }

  /// Tokens slot `b` has consumed (its next absolute position).
  std::int64_t position(int b) const { return pos_.at(check_slot(b)); }
  /// Called by the model after a forward call.
  void advance(int b, std::int64_t tokens) { pos_.at(check_slot(b)) += tokens; }
  /// Slot `b` starts over at position 0 (its cache rows are overwritten as it refills).
  void reset(int b) { pos_.at(check_slot(b)) = 0; }
  void reset() { std::fill(pos_.begin(), pos_.end(), 0); }

  /// Room for `rows` positions per slot in every layer; true when the caches reallocated.
  bool reserve(std::int64_t rows) {
    bool grew = false;
    for (auto& l : layers_) grew = l.reserve(rows) || grew;
    return grew;
  }

  /// Bytes the caches hold now (all slots, all layers, the whole capacity).
  std::size_t bytes() const {
    std::size_t b = 0;
    for (const auto& l : layers_) b += l.bytes();
    return b;
  }
  /// Bytes one position of one sequence occupies (keys and values of every layer).
  std::size_t bytes_per_token() const { return std::size_t(2) * layers_n_ * kv_dim_ * 4; }
  /// Bytes the context of slot `b` occupies: position(b) * bytes_per_token().
  std::size_t bytes_used(int b) const { return std::size_t(position(b)) * bytes_per_token(); }

 private:
  int check_slot(int b) const {
    if (b < 0 || b >= slots_)
      throw ArgumentError("TransformerState: slot " + std::to_string(b) + " out of range [0, " +
                          std::to_string(slots_) + ")");
    return b;
  }

  int slots_ = 0, layers_n_ = 0, kv_dim_ = 0;
  std::vector<std::int64_t> pos_;
  std::vector<KvCache<Space>> layers_;
};

}  // namespace rodimus
