// The train / held-out split of a corpus: a fixed fraction of its files, chosen by a stable hash
// of each file's relative path.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "rodimus/core/error.hpp"

namespace rodimus::train {

/// The fraction of files held out for validation by default (issue 6: 5 %).
inline constexpr double default_heldout_fraction = 0.05;

/// 64-bit FNV-1a of `s` (offset basis 0xcbf29ce484222325, prime 0x100000001b3): the split's
/// hash, fixed forever so that a held-out set never changes between versions.
constexpr std::uint64_t fnv1a64(std::string_view s) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (const char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

/// How many of `n_files` files are held out: round(fraction * n), at least 1 when fraction > 0
/// and n > 0. fraction must be in [0, 1).
inline std::size_t heldout_count(std::size_t n_files, double fraction) {
  if (!(fraction >= 0.0 && fraction < 1.0))
    throw ArgumentError("heldout fraction must be in [0, 1), got " + std::to_string(fraction));
  if (n_files == 0 || fraction == 0.0) return 0;
  const auto k = static_cast<std::size_t>(std::llround(fraction * double(n_files)));
  return std::clamp<std::size_t>(k, 1, n_files);
}

/// The split rule, the same for training and evaluation: of the corpus files, given by their
/// paths relative to the corpus root with '/' separators, the heldout_count(n, fraction) files
/// with the smallest fnv1a64(relative path) are held out (ties, which need a 64-bit collision,
/// by path). Returns one flag per file, in the order given (true = held out). The choice of a
/// file depends only on its path and the corpus's file count, not on contents, order or time.
inline std::vector<bool> heldout_mask(const std::vector<std::string>& relative_paths,
                                      double fraction = default_heldout_fraction) {
  const std::size_t n = relative_paths.size();
  const std::size_t k = heldout_count(n, fraction);
  std::vector<std::size_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = i;
  std::vector<std::uint64_t> h(n);
  for (std::size_t i = 0; i < n; ++i) h[i] = fnv1a64(relative_paths[i]);
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return h[a] != h[b] ? h[a] < h[b] : relative_paths[a] < relative_paths[b];
  });
  std::vector<bool> mask(n, false);
  for (std::size_t i = 0; i < k; ++i) mask[order[i]] = true;
  return mask;
}

}  // namespace rodimus::train
