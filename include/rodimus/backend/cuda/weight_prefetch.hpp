// Weights into L2 ahead of the GEMVs that read them, during a recorded decode step.
//
// Why: a decode step at batch 1 alternates bandwidth-bound GEMVs (8-34 MB of weights each for
// the 1.6B model) with latency-bound kernels (norms, ShortConv, the recurrence, the attention:
// tens of microseconds per layer in which HBM is nearly idle). The H100/H200 L2 holds 50 MB. A
// GEMV whose blocks have finished their own loads issues bulk L2 prefetches
// (cp.async.bulk.prefetch.L2, sm_90) of the weights the next GEMVs will read; the copies run
// on while the latency-bound kernels execute, and those GEMVs then read from L2.
//
// How the GEMV knows what comes next: the step's first run (StepGraph's warm-up, direct
// launches) records the weight spans of every GEMV launch in order (WeightPrefetchPlan in
// Record mode); while the graph is recorded (Replay mode) each launch checks that it is the
// launch recorded at that position (any mismatch turns the plan off: a prefetch is only a hint,
// never needed for correctness) and is handed the spans that follow it, as long as at most
// `budget` bytes are prefetched ahead of the launch in flight. Every span is prefetched once,
// by the first launch with room for it; a span larger than the budget is prefetched up to the
// budget when nothing else is ahead (the LM head's first rows). Spans that are not 16-byte
// aligned or shorter than 16 bytes are skipped.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "rodimus/backend/exec_space_traits.hpp"

namespace rodimus::backend::cuda {

/// Most spans one kernel prefetches.
inline constexpr int kPrefetchSpans = 4;

/// The spans one kernel prefetches into L2 as its blocks finish (a kernel parameter): their
/// bytes end to end, end[j] = bytes of spans 0..j, split evenly over the grid. Pointers and
/// sizes are multiples of 16 bytes (the bulk prefetch's alignment).
struct L2Prefetch {
  const char* p[kPrefetchSpans] = {};
  std::uint64_t end[kPrefetchSpans] = {};
  int count = 0;
  bool evict_last = false;  ///< mark the lines evict-last (kept over normal lines)
};

/// The order in which one decode step's GEMV launches read their weights, and the prefetch
/// schedule derived from it (see the file comment). Host-side bookkeeping only.
class WeightPrefetchPlan {
 public:
  struct Span {
    const void* p = nullptr;
    std::size_t bytes = 0;
    bool operator==(const Span&) const = default;
  };
  enum class Mode { Off, Record, Replay };

  /// Forgets the recorded order and records the launches that follow.
  void start_recording() {
    order_.clear();
    mode_ = Mode::Record;
  }
  /// Hands the recorded order's spans out to the launches that follow, at most `budget`
  /// bytes ahead; a zero budget or an empty order turns the plan off.
  void start_replay(std::size_t budget, bool evict_last) {
    cursor_ = ahead_end_ = 0;
    taken_.assign(order_.size(), 0);
    budget_ = budget & ~std::size_t(15);
    evict_last_ = evict_last;
    mode_ = budget_ > 0 && !order_.empty() ? Mode::Replay : Mode::Off;
  }
  void stop() { mode_ = Mode::Off; }

  Mode mode() const { return mode_; }
  const std::vector<Span>& order() const { return order_; }

  /// Called by a GEMV launch with the weight spans it reads (in its order); returns the spans
  /// it prefetches (none while recording, when off, or when the launch is not the one the
  /// plan expects, which turns the plan off).
  L2Prefetch next(const Span* spans, int count) {
    L2Prefetch pf;
    if (mode_ == Mode::Record) {
      order_.insert(order_.end(), spans, spans + count);
      return pf;
    }
    if (mode_ != Mode::Replay) return pf;
    if (cursor_ + std::size_t(count) > order_.size() ||
        !std::equal(spans, spans + count, order_.begin() + std::ptrdiff_t(cursor_))) {
      mode_ = Mode::Off;  // the step diverged from the recorded one
      return pf;
    }
    cursor_ += std::size_t(count);
    ahead_end_ = std::max(ahead_end_, cursor_);
    std::size_t ahead = 0;  // bytes handed out to earlier launches and not yet read
    for (std::size_t i = cursor_; i < ahead_end_; ++i) ahead += taken_[i];
    pf.evict_last = evict_last_;
    std::uint64_t total = 0;
    while (ahead_end_ < order_.size() && pf.count < kPrefetchSpans) {
      const Span& s = order_[ahead_end_];
      const bool aligned = reinterpret_cast<std::uintptr_t>(s.p) % 16 == 0;
      std::size_t take = aligned ? s.bytes & ~std::size_t(15) : 0;
      if (ahead + take > budget_) {
        if (ahead > 0) break;
        take = budget_;  // larger than the budget: its first budget bytes
      }
      taken_[ahead_end_++] = take;
      if (take == 0) continue;  // not prefetchable (unaligned, or under 16 bytes)
      ahead += take;
      total += take;
      pf.p[pf.count] = static_cast<const char*>(s.p);
      pf.end[pf.count++] = total;
    }
    return pf;
  }

 private:
  std::vector<Span> order_;
  std::vector<std::size_t> taken_;  ///< bytes of each span handed out in this replay
  Mode mode_ = Mode::Off;
  std::size_t cursor_ = 0;     ///< spans of the launches replayed so far
  std::size_t ahead_end_ = 0;  ///< one past the last span handed out
  std::size_t budget_ = 0;
  bool evict_last_ = false;
};

#if RODIMUS_CUDA_KERNELS
namespace detail {

/// Issues this block's share of `pf` (the bytes end to end, split evenly over `blocks`) as bulk
/// L2 prefetches of up to 4 KiB each, one per thread of the calling warp at a time. Call from
/// one warp, after the block's own loads; nothing waits for the copies.
__device__ inline void issue_l2_prefetch(const L2Prefetch& pf, unsigned block, unsigned blocks,
                                         unsigned lane) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (pf.count == 0) return;
  const std::uint64_t total = pf.end[pf.count - 1];
  const std::uint64_t lo = (total * block / blocks) & ~std::uint64_t(15);
  const std::uint64_t hi =
      block + 1 == blocks ? total : (total * (block + 1) / blocks) & ~std::uint64_t(15);
  constexpr std::uint64_t kPiece = 4096;
  std::uint64_t policy = 0;
  if (pf.evict_last)
    asm volatile("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;" : "=l"(policy));
  for (std::uint64_t off = lo + lane * kPiece; off < hi; off += 32 * kPiece) {
    std::uint64_t cur = off;
    const std::uint64_t stop = off + kPiece < hi ? off + kPiece : hi;
    int j = 0;
    while (cur < stop) {  // a piece may cross from one span into the next
      while (cur >= pf.end[j]) ++j;
      const std::uint64_t start = j ? pf.end[j - 1] : 0;
      const std::uint64_t len = (stop < pf.end[j] ? stop : pf.end[j]) - cur;
      const auto addr = __cvta_generic_to_global(pf.p[j] + (cur - start));
      if (pf.evict_last)
        asm volatile("cp.async.bulk.prefetch.L2.global.L2::cache_hint [%0], %1, %2;" ::"l"(addr),
                     "r"(static_cast<std::uint32_t>(len)), "l"(policy)
                     : "memory");
      else
        asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(addr),
                     "r"(static_cast<std::uint32_t>(len))
                     : "memory");
      cur += len;
    }
  }
#else
  (void)pf, (void)block, (void)blocks, (void)lane;
#endif
}

}  // namespace detail
#endif  // RODIMUS_CUDA_KERNELS

}  // namespace rodimus::backend::cuda
