// One projection of a shared input, y = x W^T + b, as the CUDA linear kernels take it (device
// pointers): the decode GEMV (gemv.hpp) and cuBLAS (cublas_linear.hpp) serve several of them
// per call.
#pragma once

#include <cstdint>

#include "rodimus/core/dtype.hpp"

namespace rodimus::backend::cuda {

/// The rotary embedding of y (SPEC 3 step 2, "rotate half") in the decode GEMV's epilogue: in
/// every head of head_dim outputs, the pairs (i, i + half), i < half, rotated by the angle
/// pos * inv_freq[i], pos = pos0[s] + n - offsets[s] for token n of sequence s = token_seq[n]
/// (the call's SeqBatch). The GEMV only; inactive while inv_freq is null.
struct RopeEpilogue {
  const float* inv_freq = nullptr;  // [half]
  int head_dim = 0, half = 0;
  const int* offsets = nullptr;
  const int* pos0 = nullptr;
  const int* token_seq = nullptr;
};

/// ShortConv + SiLU of a decode step in the decode GEMV's epilogue (SPEC 2 step 2; token n is the
/// only token of sequence n): xs[n, c] = silu(b[c] + sum_j w[c, j] x_{t-k+1+j}[c]), the k - 1
/// earlier inputs from state[slot[n], :, c] (oldest first), which then shifts by one. The same
/// operations in the same order as short_conv's step kernel. The GEMV only; inactive while w is
/// null.
struct ConvEpilogue {
  const float* w = nullptr;   // [out, k]
  const float* b = nullptr;   // [out]
  float* state = nullptr;     // [S, k - 1, out]
  const int* slot = nullptr;  // [N]
  float* xs = nullptr;        // [N, out], row stride ldxs
  std::int64_t ldxs = 0;
  int k = 0;
};

/// w: [out, in] dense, b: [out] or null, y: [N, out] with leading dimension ldy.
/// gate (or null): gated[n, j] = sigmoid(y[n, j]) * gate[n, j] as well, the channel gate of
/// SPEC 2 step 4 in the projection's epilogue (the GEMV's, or cuBLAS's bias pass).
/// rope / conv / glu_w: the GEMV's other epilogues (cuBLAS rejects them); at most one of gate,
/// rope, conv and glu_w per projection.
template <StorageType W>
struct Projection {
  const W* w = nullptr;
  const float* b = nullptr;
  float* y = nullptr;
  std::int64_t ldy = 0;
  int out = 0;
  const float* gate = nullptr;
  float* gated = nullptr;
  std::int64_t ldgate = 0, ldgated = 0;
  RopeEpilogue rope;
  ConvEpilogue conv;
  /// The projection's own input in place of the launch's (the GEMV only; null: the launch's):
  /// [N, in] with row stride ldx, the launch's `in` features, 16-byte aligned rows. Projections
  /// of two inputs of one width then share a launch (the channel gate's down-projection of x
  /// beside the DDTS projections of xs).
  const float* x = nullptr;
  std::int64_t ldx = 0;
  /// SwiGLU's product in the GEMV's epilogue (SPEC 4; the GEMV only; inactive while glu_w is
  /// null): w is the up-projection a and glu_w the gate g ([out, in] each, glu_b g's bias or
  /// null); the launch's rows are their rows in pairs (a_i, g_i), so both land in one block,
  /// which stores y[n, i] = silu(g_i) * a_i.
  const W* glu_w = nullptr;
  const float* glu_b = nullptr;
  /// The residual add (the GEMV only; inactive while null): y[n, j] = x W^T + b + res[n, j],
  /// res: [N, out] with row stride ldres; it may be y itself (each element is read and then
  /// written by one thread). Not with rope or glu_w.
  const float* res = nullptr;
  std::int64_t ldres = 0;

  /// Rows of the launch's layout: the output features, or twice that for a SwiGLU pair.
  RODIMUS_INLINE int rows() const { return glu_w ? 2 * out : out; }
  /// Whether an epilogue or an input only the GEMV takes is set.
  bool gemv_only() const {
    return rope.inv_freq != nullptr || conv.w != nullptr || x != nullptr || glu_w != nullptr ||
           res != nullptr;
  }
};

}  // namespace rodimus::backend::cuda
