// The "last item merges" handshake of split host kernels (the decode attention's key ranges,
// the decode scan's row groups): every item of a group writes its part, then arrives at the
// group's counter; the one that arrives last merges the parts.
#pragma once

#include <atomic>

namespace rodimus::backend::host {

/// Counts one arrival of `items` at `counter` (zero before the first). True for the last
/// arrival, whose acquire sees every other item's writes (each released by its own arrival);
/// it also resets the counter to zero for the next call.
inline bool last_arrival(int& counter, int items) {
  std::atomic_ref<int> count(counter);
  if (count.fetch_add(1, std::memory_order_acq_rel) != items - 1) return false;
  count.store(0, std::memory_order_relaxed);
  return true;
}

}  // namespace rodimus::backend::host
