// Host-side input of a forward call: several sequences of different lengths, each continuing
// one state slot.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace rodimus {

/// Tokens of several sequences, packed one after another.
struct TokenBatch {
  std::vector<std::int32_t> ids;  ///< all tokens, sequence after sequence
  std::vector<int> lengths;       ///< tokens of each sequence (0 allowed)
  std::vector<int> slots;         ///< state slot each sequence continues

  /// Appends a sequence that continues state slot `slot`.
  TokenBatch& add(std::span<const std::int32_t> tokens, int slot) {
    ids.insert(ids.end(), tokens.begin(), tokens.end());
    lengths.push_back(static_cast<int>(tokens.size()));
    slots.push_back(slot);
    return *this;
  }

  /// One sequence in slot 0.
  static TokenBatch single(std::span<const std::int32_t> tokens, int slot = 0) {
    TokenBatch b;
    b.add(tokens, slot);
    return b;
  }

  /// Sequence i continues slot i.
  static TokenBatch of(const std::vector<std::vector<std::int32_t>>& seqs) {
    TokenBatch b;
    for (std::size_t i = 0; i < seqs.size(); ++i) b.add(seqs[i], static_cast<int>(i));
    return b;
  }

  /// One token for each of slots 0..B-1: a decode step.
  static TokenBatch step(std::span<const std::int32_t> next) {
    TokenBatch b;
    for (std::size_t i = 0; i < next.size(); ++i) b.add(next.subspan(i, 1), static_cast<int>(i));
    return b;
  }

  int num_seqs() const { return static_cast<int>(lengths.size()); }
};

}  // namespace rodimus
