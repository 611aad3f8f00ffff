// The packed ("varlen") description of several sequences in one call: tokens of sequence b are
// rows offsets[b] .. offsets[b+1]-1 of every [N, ...] activation, and continue state slot slot[b]
// at absolute position pos0[b].
#pragma once

#include <cstdint>
#include <span>
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
  std::span<const int> h_offsets, h_pos0, h_slot;  // host copies, owned by the buffers
};

namespace detail {

/// Owns the index arrays of a SeqBatch (device views, their host mirrors, host vectors). Grows
/// only, so repeated calls of the same or smaller size (decode steps) allocate nothing.
template <class Space>
class SeqBatchBuffers {
 public:
  /// Fills the arrays for sequences of `lengths` continuing `pos0` in `slots`.
  SeqBatch<Space> build(std::span<const int> lengths, std::span<const int> pos0,
                        std::span<const int> slots) {
    const int b = static_cast<int>(lengths.size());
    int n = 0, max_len = 0;
    for (int l : lengths) {
      n += l;
      max_len = l > max_len ? l : max_len;
    }
    grow(offsets_, h_offsets_view_, b + 1, "rodimus::batch.offsets");
    grow(pos0_, h_pos0_view_, b, "rodimus::batch.pos0");
    grow(slot_, h_slot_view_, b, "rodimus::batch.slot");
    grow(token_seq_, h_token_seq_view_, n, "rodimus::batch.token_seq");
    h_offsets_.resize(b + 1);
    h_pos0_.assign(pos0.begin(), pos0.end());
    h_slot_.assign(slots.begin(), slots.end());
    h_offsets_[0] = 0;
    h_offsets_view_(0) = 0;
    for (int i = 0; i < b; ++i) {
      h_offsets_[i + 1] = h_offsets_[i] + lengths[i];
      h_offsets_view_(i + 1) = h_offsets_[i + 1];
      h_pos0_view_(i) = pos0[i];
      h_slot_view_(i) = slots[i];
      for (int t = h_offsets_[i]; t < h_offsets_[i + 1]; ++t) h_token_seq_view_(t) = i;
    }
    const Space space{};
    Kokkos::deep_copy(space, offsets_, h_offsets_view_);
    Kokkos::deep_copy(space, pos0_, h_pos0_view_);
    Kokkos::deep_copy(space, slot_, h_slot_view_);
    Kokkos::deep_copy(space, token_seq_, h_token_seq_view_);
    space.fence();
    SeqBatch<Space> out;
    out.num_seqs = b;
    out.num_tokens = n;
    out.max_len = max_len;
    out.offsets = offsets_;
    out.pos0 = pos0_;
    out.slot = slot_;
    out.token_seq = token_seq_;
    out.h_offsets = h_offsets_;
    out.h_pos0 = h_pos0_;
    out.h_slot = h_slot_;
    return out;
  }

 private:
  using DeviceView = View1<int, Space>;
  using HostView = typename DeviceView::HostMirror;
  static void grow(DeviceView& v, HostView& h, int n, const char* label) {
    if (static_cast<int>(v.extent(0)) < n || v.extent(0) == 0) {
      note_reallocation();
      v = DeviceView(Kokkos::view_alloc(std::string(label), Kokkos::WithoutInitializing),
                     n > 1 ? n : 1);
      h = Kokkos::create_mirror_view(v);
    }
  }
  DeviceView offsets_, pos0_, slot_, token_seq_;
  HostView h_offsets_view_, h_pos0_view_, h_slot_view_, h_token_seq_view_;
  std::vector<int> h_offsets_, h_pos0_, h_slot_;
};

}  // namespace detail
}  // namespace rodimus
