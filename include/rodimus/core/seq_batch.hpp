// The packed ("varlen") description of several sequences in one call: tokens of sequence b are
// rows offsets[b] .. offsets[b+1]-1 of every [N, ...] activation, and continue state slot slot[b]
// at absolute position pos0[b].
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "rodimus/core/views.hpp"

namespace rodimus {

/// Device-side view of a packed batch, plus the host copies the planners need.
template <class Space>
struct SeqBatch {
  int num_seqs = 0;
  int num_tokens = 0;
  int max_len = 0;
  View1<const int, Space> offsets;    // [B + 1]
  View1<const int, Space> pos0;       // [B]  tokens already in the state of each sequence
  View1<const int, Space> slot;       // [B]  state slot of each sequence
  View1<const int, Space> token_seq;  // [N]  sequence index of each token
  std::vector<int> h_offsets, h_pos0, h_slot;
};

namespace detail {

/// Owns the index arrays of a SeqBatch; grows only, so repeated decode steps never allocate.
template <class Space>
class SeqBatchBuffers {
 public:
  /// Fills the arrays for sequences of `lengths` continuing `pos0` in `slots`.
  SeqBatch<Space> build(const std::vector<int>& lengths, const std::vector<int>& pos0,
                        const std::vector<int>& slots) {
    const int b = static_cast<int>(lengths.size());
    int n = 0, max_len = 0;
    for (int l : lengths) {
      n += l;
      max_len = l > max_len ? l : max_len;
    }
    grow(offsets_, b + 1, "rodimus::batch.offsets");
    grow(pos0_, b, "rodimus::batch.pos0");
    grow(slot_, b, "rodimus::batch.slot");
    grow(token_seq_, n, "rodimus::batch.token_seq");
    auto h_off = Kokkos::create_mirror_view(offsets_);
    auto h_p0 = Kokkos::create_mirror_view(pos0_);
    auto h_sl = Kokkos::create_mirror_view(slot_);
    auto h_ts = Kokkos::create_mirror_view(token_seq_);
    SeqBatch<Space> out;
    out.h_offsets.resize(b + 1);
    h_off(0) = 0;
    out.h_offsets[0] = 0;
    for (int i = 0; i < b; ++i) {
      h_off(i + 1) = h_off(i) + lengths[i];
      out.h_offsets[i + 1] = h_off(i + 1);
      h_p0(i) = pos0[i];
      h_sl(i) = slots[i];
      for (int t = h_off(i); t < h_off(i + 1); ++t) h_ts(t) = i;
    }
    const Space space{};
    Kokkos::deep_copy(space, offsets_, h_off);
    Kokkos::deep_copy(space, pos0_, h_p0);
    Kokkos::deep_copy(space, slot_, h_sl);
    Kokkos::deep_copy(space, token_seq_, h_ts);
    space.fence();
    out.num_seqs = b;
    out.num_tokens = n;
    out.max_len = max_len;
    out.offsets = offsets_;
    out.pos0 = pos0_;
    out.slot = slot_;
    out.token_seq = token_seq_;
    out.h_pos0 = pos0;
    out.h_slot = slots;
    return out;
  }

 private:
  static void grow(View1<int, Space>& v, int n, const char* label) {
    if (static_cast<int>(v.extent(0)) < n || v.extent(0) == 0)
      v = View1<int, Space>(Kokkos::view_alloc(std::string(label), Kokkos::WithoutInitializing),
                            n > 1 ? n : 1);
  }
  View1<int, Space> offsets_, pos0_, slot_, token_seq_;
};

}  // namespace detail
}  // namespace rodimus
