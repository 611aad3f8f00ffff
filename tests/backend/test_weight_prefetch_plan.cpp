// The CUDA decode step's L2 weight-prefetch schedule (backend/cuda/weight_prefetch.hpp): host
// bookkeeping only, so it is tested on every build. A random sequence of GEMV launches (1-3
// weight spans each, random sizes around the budget, some not 16-byte aligned or shorter than
// 16 bytes) is recorded and replayed under random budgets; the schedule must hand out every
// usable span exactly once and in order, never more than the budget ahead of the launch in
// flight, as early as the budget and the per-launch span limit allow, and stop when a launch
// differs from the recorded one. The seed is fresh each run and printed.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <random>
#include <vector>

#include "rodimus/backend/cuda/weight_prefetch.hpp"

using rodimus::backend::cuda::kPrefetchSpans;
using rodimus::backend::cuda::L2Prefetch;
using rodimus::backend::cuda::WeightPrefetchPlan;
using Span = WeightPrefetchPlan::Span;

namespace {

const void* fake_ptr(std::uintptr_t a) { return reinterpret_cast<const void*>(a); }

// Spans whose bytes a launch can prefetch: 16-byte aligned start, at least 16 bytes.
bool usable(const Span& s) {
  return reinterpret_cast<std::uintptr_t>(s.p) % 16 == 0 && s.bytes >= 16;
}

struct Launches {
  std::vector<std::vector<Span>> launches;
  std::vector<Span> flat;
};

Launches random_launches(std::mt19937_64& rng, std::size_t budget) {
  Launches l;
  const int n = std::uniform_int_distribution<int>(1, 60)(rng);
  std::uintptr_t addr = 1 << 20;
  for (int i = 0; i < n; ++i) {
    const int k = std::uniform_int_distribution<int>(1, 3)(rng);
    std::vector<Span> spans;
    for (int j = 0; j < k; ++j) {
      std::size_t bytes;
      switch (std::uniform_int_distribution<int>(0, 5)(rng)) {
        case 0:
          bytes = std::uniform_int_distribution<std::size_t>(0, 15)(rng);  // too short
          break;
        case 1:
          bytes = budget + std::uniform_int_distribution<std::size_t>(1, budget)(rng);  // oversize
          break;
        default:
          bytes = std::uniform_int_distribution<std::size_t>(16, budget)(rng);
      }
      const bool aligned = std::uniform_int_distribution<int>(0, 9)(rng) != 0;
      spans.push_back({fake_ptr(addr + (aligned ? 0 : 8)), bytes});
      addr += (bytes + 64) & ~std::uintptr_t(15);
    }
    l.flat.insert(l.flat.end(), spans.begin(), spans.end());
    l.launches.push_back(std::move(spans));
  }
  return l;
}

}  // namespace

TEST_CASE("weight prefetch plan: every usable span once, in order, within the budget",
          "[backend][cuda][prefetch]") {
  const auto seed = std::random_device{}();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (int trial = 0; trial < 200; ++trial) {
    const std::size_t budget = std::uniform_int_distribution<std::size_t>(16, 1 << 16)(rng) & ~15u;
    const auto l = random_launches(rng, budget);
    INFO("trial " << trial << " budget " << budget << " launches " << l.launches.size());
    WeightPrefetchPlan plan;
    plan.start_recording();
    for (const auto& s : l.launches) CHECK(plan.next(s.data(), int(s.size())).count == 0);
    plan.stop();
    REQUIRE(plan.order() == l.flat);

    const bool evict_last = trial % 2 == 1;
    plan.start_replay(budget, evict_last);
    REQUIRE(plan.mode() == WeightPrefetchPlan::Mode::Replay);
    // handed[i]: bytes of flat span i handed out (or 0); consumed: spans read by launches so far
    std::vector<std::size_t> handed(l.flat.size(), 0);
    std::size_t next_expected = 0, consumed = 0;
    for (const auto& s : l.launches) {
      consumed += s.size();
      const L2Prefetch pf = plan.next(s.data(), int(s.size()));
      REQUIRE(pf.count <= kPrefetchSpans);
      if (pf.count) CHECK(pf.evict_last == evict_last);
      std::uint64_t prev_end = 0;
      // spans already read are never prefetched (those not handed out in time are skipped)
      next_expected = std::max(next_expected, consumed);
      for (int j = 0; j < pf.count; ++j) {
        // the next usable span after the ones already handed out, never one already read
        while (next_expected < l.flat.size() && !usable(l.flat[next_expected])) ++next_expected;
        REQUIRE(next_expected < l.flat.size());
        const Span& want = l.flat[next_expected];
        CHECK(pf.p[j] == want.p);
        const std::uint64_t bytes = pf.end[j] - prev_end;
        CHECK(bytes % 16 == 0);
        CHECK(bytes == std::min<std::size_t>(want.bytes & ~std::size_t(15), budget));
        handed[next_expected++] = bytes;
        prev_end = pf.end[j];
      }
      // at most the budget ahead of the launch in flight (spans handed out but not yet read)
      std::size_t ahead = 0;
      for (std::size_t i = consumed; i < l.flat.size(); ++i) ahead += handed[i];
      CHECK(ahead <= budget);
      // greedy: the launch stopped only at the span limit, the end, or a span that would not
      // fit beside what is already ahead
      if (pf.count < kPrefetchSpans) {
        std::size_t k = next_expected;
        while (k < l.flat.size() && !usable(l.flat[k])) ++k;
        if (k < l.flat.size() && k >= consumed) {
          CHECK(ahead > 0);
          CHECK(ahead + (l.flat[k].bytes & ~std::size_t(15)) > budget);
        }
      }
    }
    for (std::size_t i = 0; i < l.launches[0].size(); ++i) CHECK(handed[i] == 0);
  }
}

TEST_CASE("weight prefetch plan: with room for everything, every span after the first launch",
          "[backend][cuda][prefetch]") {
  // launches read at most 3 spans and each may hand out kPrefetchSpans = 4: the schedule stays
  // ahead of the reads, so nothing usable is skipped
  static_assert(kPrefetchSpans >= 4);
  const auto seed = std::random_device{}();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (int trial = 0; trial < 50; ++trial) {
    const auto l = random_launches(rng, 1 << 12);
    std::size_t total = 0;
    for (const auto& s : l.flat) total += s.bytes;
    WeightPrefetchPlan plan;
    plan.start_recording();
    for (const auto& s : l.launches) plan.next(s.data(), int(s.size()));
    plan.start_replay(total + 16, false);
    std::vector<const void*> got;
    for (const auto& s : l.launches) {
      const auto pf = plan.next(s.data(), int(s.size()));
      for (int j = 0; j < pf.count; ++j) got.push_back(pf.p[j]);
    }
    std::vector<const void*> want;
    for (std::size_t i = l.launches[0].size(); i < l.flat.size(); ++i)
      if (usable(l.flat[i])) want.push_back(l.flat[i].p);
    CHECK(got == want);
  }
}

TEST_CASE("weight prefetch plan: off without a budget, a recording, or after a divergence",
          "[backend][cuda][prefetch]") {
  const auto seed = std::random_device{}();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  const std::size_t budget = 1 << 14;
  const auto l = random_launches(rng, budget);
  WeightPrefetchPlan plan;
  plan.start_replay(budget, false);  // nothing recorded
  CHECK(plan.mode() == WeightPrefetchPlan::Mode::Off);
  CHECK(plan.next(l.launches[0].data(), int(l.launches[0].size())).count == 0);

  plan.start_recording();
  for (const auto& s : l.launches) plan.next(s.data(), int(s.size()));
  plan.start_replay(0, false);
  CHECK(plan.mode() == WeightPrefetchPlan::Mode::Off);
  plan.start_replay(15, false);  // below one 16-byte unit
  CHECK(plan.mode() == WeightPrefetchPlan::Mode::Off);

  // a launch that is not the recorded one turns the plan off for the rest of the step
  plan.start_replay(budget, false);
  const Span stranger{fake_ptr(16), 4096};
  CHECK(plan.next(&stranger, 1).count == 0);
  CHECK(plan.mode() == WeightPrefetchPlan::Mode::Off);
  for (const auto& s : l.launches) CHECK(plan.next(s.data(), int(s.size())).count == 0);

  // more launches than recorded: off as well
  plan.start_replay(budget, false);
  for (const auto& s : l.launches) plan.next(s.data(), int(s.size()));
  CHECK(plan.next(l.launches[0].data(), int(l.launches[0].size())).count == 0);
  CHECK(plan.mode() == WeightPrefetchPlan::Mode::Off);

  // a replay starts over: the same schedule again
  plan.start_replay(budget, false);
  std::vector<int> first, second;
  for (const auto& s : l.launches) first.push_back(plan.next(s.data(), int(s.size())).count);
  plan.start_replay(budget, false);
  for (const auto& s : l.launches) second.push_back(plan.next(s.data(), int(s.size())).count);
  CHECK(first == second);
}
