// Projections of one input followed by the rotary embedding of some of their outputs (SPEC 3
// steps 1-2: q, k, v = h W^T, then RoPE of q and k). On a CUDA GPU a decode-sized call is one
// GEMV launch, the rotation in the GEMV's epilogue: one kernel fewer per attention layer.
#pragma once

#include <array>
#include <cstddef>

#include "rodimus/ops/linear.hpp"
#include "rodimus/ops/normed_rows.hpp"
#include "rodimus/ops/rope.hpp"

namespace rodimus {

/// y[i][0:N] = x[0:N] W_i^T + b_i for every i (linear_shared_input), then, for each i with
/// rotate[i], rope of y[i] (heads of head_dim, the first rotary_dim dims of each rotated at the
/// positions of `batch`): the same results as those calls. On Kokkos::Cuda a call of at most
/// backend::cuda::kGemvMaxTokens tokens with bf16 / fp16 weights and dense operands is one GEMV
/// launch with the rotation in its epilogue; otherwise the calls run in turn. A pending norm of
/// the input (NormedRows) runs in that GEMV where it takes it, else first (rms_norm).
// x: [>=N, in]; y[i]: [>=N, heads_i * head_dim] where rotated; inv_freq: [>= rotary_dim / 2]
template <class Space, StorageType W, std::size_t K>
void linear_rope(const Space& space, const std::type_identity_t<NormedRows<Space>>& in,
                 const std::array<const LinearWeights<W, Space>*, K>& lw,
                 const std::array<View2<float, Space>, K>& y, const std::array<bool, K>& rotate,
                 int head_dim, const View1<const float, Space>& inv_freq, int rotary_dim,
                 const SeqBatch<Space>& batch) {
  static_assert(K > 0, "linear_rope: no projection");
  const int nt = batch.num_tokens;
  for (std::size_t i = 0; i < K; ++i) detail::check_linear_args<Space, W>(in.x, *lw[i], y[i], nt);
  detail::check_normed_rows(in, in.x.extent(1), nt, "linear_rope: x");
  if (head_dim <= 0) throw ArgumentError("linear_rope: head_dim must be positive");
  std::array<int, K> heads{};
  for (std::size_t i = 0; i < K; ++i) {
    if (!rotate[i]) continue;
    if (y[i].extent(1) % static_cast<std::size_t>(head_dim) != 0)
      throw ArgumentError("linear_rope: a rotated output is not a whole number of heads");
    heads[i] = static_cast<int>(y[i].extent(1)) / head_dim;
    detail::rope_checked(y[i], heads[i], head_dim, rotary_dim, nt, "linear_rope: y");
  }
  if (inv_freq.extent(0) < static_cast<std::size_t>(rotary_dim / 2))
    throw ArgumentError("linear_rope: inv_freq is shorter than rotary_dim / 2");
  if (nt == 0) return;
  if constexpr (is_cuda_space_v<Space>) {
    if (rotary_dim > 0 && inv_freq.stride(0) == 1 &&
        detail::cuda_gemv_normed(space, in, lw, y, nt, [&](auto& proj) {
          for (std::size_t i = 0; i < K; ++i) {
            if (!rotate[i]) continue;
            auto& r = proj[i].rope;
            r.inv_freq = inv_freq.data();
            r.head_dim = head_dim;
            r.half = rotary_dim / 2;
            r.offsets = batch.offsets.data();
            r.pos0 = batch.pos0.data();
            r.token_seq = batch.token_seq.data();
          }
        }))
      return;
  }
  const auto x = detail::materialize(space, in, nt);
  detail::linear_shared_input_checked(space, x, lw, y, nt);
  if (rotary_dim == 0) return;
  // the rotated outputs two at a time (one launch for a layer's q and k)
  int pending = -1;
  for (std::size_t i = 0; i < K; ++i) {
    if (!rotate[i]) continue;
    if (pending < 0) {
      pending = static_cast<int>(i);
      continue;
    }
    detail::rope_run<float>(space, y[pending], heads[pending], y[i], heads[i], head_dim, inv_freq,
                            rotary_dim / 2, batch);
    pending = -1;
  }
  if (pending >= 0)
    detail::rope_run<float>(space, y[pending], heads[pending], View2<float, Space>(), 0, head_dim,
                            inv_freq, rotary_dim / 2, batch);
}

}  // namespace rodimus
