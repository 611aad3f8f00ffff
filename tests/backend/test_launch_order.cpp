// The CUDA backend's launch record (backend/cuda/launch_order.hpp): which data a kernel launched
// next may read before its grid dependency wait. Host-only logic, so tested on every build.
#include <catch2/catch.hpp>

#include "rodimus/backend/cuda/launch_order.hpp"

using rodimus::backend::cuda::detail::LaunchOrder;
using rodimus::backend::cuda::detail::LaunchRecord;

namespace {
// distinct addresses standing for streams and device arrays
const int s1_tag = 0, s2_tag = 0, cache_tag = 0, state_tag = 0, other_tag = 0;
const void* const s1 = &s1_tag;
const void* const s2 = &s2_tag;
const void* const cache = &cache_tag;
const void* const state = &state_tag;
const void* const other = &other_tag;
}  // namespace

TEST_CASE("launch record: a waits-first writer stays pending until a later kernel waits first",
          "[backend][launch_order]") {
  LaunchRecord r;
  CHECK(r.settled(s1, cache));  // nothing launched yet
  r.launched(s1, LaunchOrder::WaitsFirst, {cache});  // the decode attention writes its cache
  CHECK_FALSE(r.settled(s1, cache));                  // the next attention must not prefetch
  CHECK(r.settled(s1, other));
  CHECK(r.settled(s2, cache));  // another stream: ordered through events, which wait for all
  // GEMVs and norms let their successors start before they wait: still pending
  r.launched(s1, LaunchOrder::TriggersFirst, {});
  r.launched(s1, LaunchOrder::TriggersFirst, {other});
  CHECK_FALSE(r.settled(s1, cache));
  CHECK_FALSE(r.settled(s1, other));
  // another layer's attention waits before it triggers: everything before it has finished
  // before any later kernel starts; only its own writes are pending now
  r.launched(s1, LaunchOrder::WaitsFirst, {state});
  CHECK(r.settled(s1, cache));
  CHECK(r.settled(s1, other));
  CHECK_FALSE(r.settled(s1, state));
}

TEST_CASE("launch record: a never-triggering writer is pending for the next launch only",
          "[backend][launch_order]") {
  LaunchRecord r;
  r.launched(s1, LaunchOrder::TriggersFirst, {cache});
  r.launched(s1, LaunchOrder::NeverTriggers, {state});  // the decode scan
  CHECK_FALSE(r.settled(s1, state));  // two scans in a row: the second one waits for the states
  CHECK(r.settled(s1, cache));        // the scan waited for everything before it
  r.launched(s1, LaunchOrder::TriggersFirst, {});  // the kernel after it started after its end
  CHECK(r.settled(s1, state));
  // the same for a waits-first launch right after it, which adds its own writes
  r.launched(s1, LaunchOrder::NeverTriggers, {state});
  r.launched(s1, LaunchOrder::WaitsFirst, {cache});
  CHECK(r.settled(s1, state));
  CHECK_FALSE(r.settled(s1, cache));
  r.clear();
  CHECK(r.settled(s1, cache));
}

TEST_CASE("launch record: streams are kept apart and null writes are ignored",
          "[backend][launch_order]") {
  LaunchRecord r;
  r.launched(s1, LaunchOrder::WaitsFirst, {cache, nullptr});
  r.launched(s2, LaunchOrder::WaitsFirst, {state});
  r.launched(s2, LaunchOrder::WaitsFirst, {other});  // fences s2 only
  CHECK_FALSE(r.settled(s1, cache));
  CHECK(r.settled(s2, state));
  CHECK_FALSE(r.settled(s2, other));
  CHECK(r.settled(s1, nullptr));
}
