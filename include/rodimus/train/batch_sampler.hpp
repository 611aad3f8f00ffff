// Training batches drawn from a token stream, deterministic from a seed and a step counter, and
// the fixed windows of held-out evaluation.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "rodimus/core/error.hpp"

namespace rodimus::train {

/// B windows of T + 1 token ids each, row-major on the host: row b is
/// `tokens[b (T+1) .. (b+1)(T+1))`; the model reads ids 0..T-1 of a row and predicts ids 1..T.
struct TrainBatch {
  std::vector<std::int32_t> tokens;  // [B, T+1]
  int batch = 0;                     ///< B
  int seq_len = 0;                   ///< T

  std::span<const std::int32_t> row(int b) const {
    return {tokens.data() + std::size_t(b) * std::size_t(seq_len + 1), std::size_t(seq_len + 1)};
  }
  /// The input ids of row b: [T].
  std::span<const std::int32_t> inputs(int b) const { return row(b).first(std::size_t(seq_len)); }
  /// The target ids of row b: [T].
  std::span<const std::int32_t> targets(int b) const { return row(b).subspan(1); }
  std::int64_t num_targets() const { return std::int64_t(batch) * seq_len; }
};

/// splitmix64's finaliser: a bijective 64-bit mix.
constexpr std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/// The high 64 bits of the 128-bit product a * b.
constexpr std::uint64_t mul_high(std::uint64_t a, std::uint64_t b) {
  const std::uint64_t a_lo = a & 0xffffffffull, a_hi = a >> 32;
  const std::uint64_t b_lo = b & 0xffffffffull, b_hi = b >> 32;
  const std::uint64_t lo_lo = a_lo * b_lo, hi_lo = a_hi * b_lo, lo_hi = a_lo * b_hi;
  const std::uint64_t mid = (lo_lo >> 32) + (hi_lo & 0xffffffffull) + lo_hi;
  return a_hi * b_hi + (hi_lo >> 32) + (mid >> 32);
}

/// Random windows of a token stream, as a pure function of (seed, step, row): the batch of step
/// s is the same whether a run got there directly or resumed from a checkpoint, and splitting a
/// step into micro-batches (rows [first, first + count)) does not change its rows.
///   u = splitmix64(splitmix64(splitmix64(seed) ^ step) ^ row)
///   start = floor(u (n - T) / 2^64),  row = stream[start .. start + T]      (n = stream length)
/// so every window lies inside the stream and every start in [0, n - T - 1] is (near) equally
/// likely. Windows may cross file separators: the model learns what follows an end of text.
class BatchSampler {
 public:
  /// `stream` must outlive the sampler and hold at least T + 1 ids.
  BatchSampler(std::span<const std::int32_t> stream, int seq_len, std::uint64_t seed)
      : stream_(stream), seq_len_(seq_len), seed_(seed) {
    if (seq_len < 1) throw ArgumentError("BatchSampler: seq_len must be at least 1");
    if (stream.size() < std::size_t(seq_len) + 1)
      throw ArgumentError("BatchSampler: the token stream has " + std::to_string(stream.size()) +
                          " tokens, fewer than seq_len + 1 = " + std::to_string(seq_len + 1));
  }

  int seq_len() const { return seq_len_; }
  std::uint64_t seed() const { return seed_; }

  /// First stream index of window `row` of step `step`.
  std::int64_t offset(std::int64_t step, std::int64_t row) const {
    const std::uint64_t u =
        splitmix64(splitmix64(splitmix64(seed_) ^ std::uint64_t(step)) ^ std::uint64_t(row));
    const std::uint64_t range = std::uint64_t(stream_.size()) - std::uint64_t(seq_len_);
    return static_cast<std::int64_t>(mul_high(u, range));
  }

  /// Rows [first, first + count) of step `step`: [count, T + 1].
  TrainBatch batch(std::int64_t step, int first, int count) const {
    if (first < 0 || count < 1) throw ArgumentError("BatchSampler::batch: bad row range");
    TrainBatch b;
    b.batch = count;
    b.seq_len = seq_len_;
    b.tokens.resize(std::size_t(count) * std::size_t(seq_len_ + 1));
    for (int r = 0; r < count; ++r) {
      const std::int64_t s = offset(step, first + r);
      std::copy_n(stream_.begin() + s, seq_len_ + 1,
                  b.tokens.begin() + std::ptrdiff_t(r) * (seq_len_ + 1));
    }
    return b;
  }

 private:
  std::span<const std::int32_t> stream_;
  int seq_len_;
  std::uint64_t seed_;
};

/// Held-out evaluation walks a stream in fixed windows: window w holds ids [wT, wT + T] (T + 1
/// ids, fewer for the last), so its T targets are ids wT+1 .. wT+T and every target of the
/// stream is scored exactly once, each window from an empty context.
inline std::int64_t eval_window_count(std::int64_t stream_size, int seq_len) {
  if (seq_len < 1) throw ArgumentError("eval windows: seq_len must be at least 1");
  const std::int64_t targets = stream_size > 0 ? stream_size - 1 : 0;
  return (targets + seq_len - 1) / seq_len;
}

/// Window `w` of eval_window_count: ids [wT, min(wT + T, n - 1)].
inline std::span<const std::int32_t> eval_window(std::span<const std::int32_t> stream, int seq_len,
                                                 std::int64_t w) {
  const std::int64_t n = std::int64_t(stream.size());
  const std::int64_t b = w * seq_len;
  if (w < 0 || b >= n - 1) throw ArgumentError("eval_window: window index out of range");
  const std::int64_t e = std::min(b + seq_len, n - 1);
  return stream.subspan(std::size_t(b), std::size_t(e - b + 1));
}

}  // namespace rodimus::train
