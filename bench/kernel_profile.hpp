// Where a run's time goes, kernel by kernel, from Kokkos' tool callbacks: every Kokkos kernel and
// every profiling region (rodimus marks its cuBLAS and raw CUDA calls as regions) is fenced
// before and after, so its time is its own; the rest is "(host, between kernels)". Fencing
// removes the overlap of launches with execution, so the total is larger than an unprofiled run:
// read it for proportions, not speed.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "rodimus/config.hpp"

namespace rodimus::bench::profile {

struct Entry {
  double seconds = 0;
  long calls = 0;
};

struct State {
  using Clock = std::chrono::steady_clock;
  std::map<std::string, Entry> table;
  std::vector<std::string> names;  // kernel id -> name
  std::vector<Clock::time_point> region_start;
  std::vector<std::string> region_name;
  Clock::time_point t_begin, t_last;
  bool have_last = false;
};

inline State& state() {
  static State s;
  return s;
}

inline void account_gap(State::Clock::time_point now) {
  auto& s = state();
  if (s.have_last) {
    auto& e = s.table["(host, between kernels)"];
    e.seconds += std::chrono::duration<double>(now - s.t_last).count();
  }
}

/// RODIMUS_PROFILE_TRACE=1: also print every kernel and region as it starts (stderr,
/// unbuffered), to see where a run stops.
inline void trace(const char* what, const char* name) {
  static const bool on = std::getenv("RODIMUS_PROFILE_TRACE") != nullptr;
  if (on) std::fprintf(stderr, "[trace] %s %s\n", what, name);
}

inline void begin_kernel(const char* name, const std::uint32_t, std::uint64_t* id) {
  trace("kernel", name);
  Kokkos::fence();
  auto& s = state();
  const auto now = State::Clock::now();
  account_gap(now);
  *id = s.names.size();
  s.names.emplace_back(name);
  s.t_begin = now;
}

inline void end_kernel(const std::uint64_t id) {
  Kokkos::fence();
  auto& s = state();
  const auto now = State::Clock::now();
  auto& e = s.table[s.names[id]];
  e.seconds += std::chrono::duration<double>(now - s.t_begin).count();
  ++e.calls;
  s.t_last = now;
  s.have_last = true;
}

inline void push_region(const char* name) {
  trace("region", name);
  Kokkos::fence();
  auto& s = state();
  const auto now = State::Clock::now();
  account_gap(now);
  s.region_name.emplace_back(name);
  s.region_start.push_back(now);
  s.have_last = false;  // time inside the region is the region's, not a gap
}

inline void pop_region() {
  Kokkos::fence();
  auto& s = state();
  const auto now = State::Clock::now();
  if (s.region_start.empty()) return;
  auto& e = s.table["[region] " + s.region_name.back()];
  e.seconds += std::chrono::duration<double>(now - s.region_start.back()).count();
  ++e.calls;
  s.region_name.pop_back();
  s.region_start.pop_back();
  s.t_last = now;
  s.have_last = true;
}

/// Installs the callbacks (from now on every kernel is fenced and timed).
inline void enable() {
  namespace kt = Kokkos::Tools::Experimental;
  kt::set_begin_parallel_for_callback(begin_kernel);
  kt::set_end_parallel_for_callback(end_kernel);
  kt::set_begin_parallel_reduce_callback(begin_kernel);
  kt::set_end_parallel_reduce_callback(end_kernel);
  kt::set_begin_parallel_scan_callback(begin_kernel);
  kt::set_end_parallel_scan_callback(end_kernel);
  kt::set_push_region_callback(push_region);
  kt::set_pop_region_callback(pop_region);
}

/// Forgets what was recorded so far.
inline void reset() {
  auto& s = state();
  s.table.clear();
  s.have_last = false;
}

/// Prints the `top` most expensive entries with their share of the recorded time.
inline void report(const char* title, int top = 30) {
  auto& s = state();
  std::vector<std::pair<std::string, Entry>> rows(s.table.begin(), s.table.end());
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.second.seconds > b.second.seconds; });
  double total = 0;
  for (const auto& r : rows) total += r.second.seconds;
  std::printf("\nprofile: %s (fenced; total %.3f ms)\n", title, total * 1e3);
  std::printf("%10s %6s %9s  %s\n", "ms", "share", "calls", "kernel / region");
  for (int i = 0; i < static_cast<int>(rows.size()) && i < top; ++i)
    std::printf("%10.3f %5.1f%% %9ld  %s\n", rows[i].second.seconds * 1e3,
                100.0 * rows[i].second.seconds / (total > 0 ? total : 1), rows[i].second.calls,
                rows[i].first.c_str());
}

}  // namespace rodimus::bench::profile
