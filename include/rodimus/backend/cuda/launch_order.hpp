// Which of the data written by the kernels launched on a stream a kernel launched next may read
// before its grid_dependency_wait() (programmatic dependent launch, dependent_launch.cuh).
//
// A dependent kernel may start while the kernels before it still run, and must wait before it
// reads what they write. Two kernels read data before that wait that was written long before,
// by an earlier launch: the recurrent decode scan its states (written by the previous step's
// scan of the layer), the one-kernel decode attention the cache rows of its first chunk
// (written by the previous steps' attention of the layer). That is safe only when the writer
// has finished, which depends on how each kernel in between lets its successor start:
//   TriggersFirst  lets its successor start before it waits itself (the GEMVs, the norms):
//                  nothing launched before it need have finished when its successor starts;
//   WaitsFirst     waits, then lets its successor start (the decode attention): every kernel
//                  launched before it has finished before any later kernel starts, but not
//                  its own writes, which come after the trigger;
//   NeverTriggers  waits and lets no successor start before it ends (the decode scan, and
//                  every launch that is not a dependent one): as WaitsFirst, and its own
//                  writes are done when the next kernel starts; that next kernel still must
//                  not read them before its wait (visibility without the wait is not
//                  promised), kernels after it may.
// Launches this record does not see (Kokkos kernels, cuBLAS) only make it more cautious.
// Host-only logic (streams and data are opaque pointers), so it is tested on the host.
#pragma once

#include <algorithm>
#include <initializer_list>
#include <vector>

namespace rodimus::backend::cuda::detail {

/// How a kernel lets the next kernel of its stream start (see above).
enum class LaunchOrder { TriggersFirst, WaitsFirst, NeverTriggers };

/// Per stream, the data written by launched kernels that a kernel launched next may not read
/// before its wait.
class LaunchRecord {
 public:
  /// Whether a kernel launched next on `stream` may read `data` before its wait.
  [[nodiscard]] bool settled(const void* stream, const void* data) const {
    for (const auto& s : streams_)
      if (s.id == stream) return std::find(s.pending.begin(), s.pending.end(), data) == s.pending.end();
    return true;
  }

  /// Records a launch on `stream` of a kernel of `order` that writes `writes` (null entries
  /// ignored). Call after settled() was asked for the launch's own early reads.
  void launched(const void* stream, LaunchOrder order, std::initializer_list<const void*> writes) {
    Stream& s = find(stream);
    // The kernel before ended before this one started: what it and all before it wrote is
    // done for every kernel after this one.
    if (s.ends_before_next) s.pending.clear();
    s.ends_before_next = order == LaunchOrder::NeverTriggers;
    if (order != LaunchOrder::TriggersFirst) s.pending.clear();
    for (const void* w : writes)
      if (w && std::find(s.pending.begin(), s.pending.end(), w) == s.pending.end())
        s.pending.push_back(w);
  }

  /// Forgets every stream (all launched work has finished, e.g. after a device synchronisation).
  void clear() { streams_.clear(); }

 private:
  struct Stream {
    const void* id = nullptr;
    std::vector<const void*> pending;
    bool ends_before_next = false;
  };
  Stream& find(const void* stream) {
    for (auto& s : streams_)
      if (s.id == stream) return s;
    streams_.push_back(Stream{stream, {}, false});
    return streams_.back();
  }
  std::vector<Stream> streams_;
};

}  // namespace rodimus::backend::cuda::detail
