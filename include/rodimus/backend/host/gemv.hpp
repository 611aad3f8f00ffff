// Host kernel of the linear layer for a few tokens (decode): each weight row is streamed once
// for up to kGemvTokens tokens, in lanes of independent partial sums that compilers vectorise
// (no reassociation needed), with bf16/fp16 widened in registers.
#pragma once

#include <cstdint>

#include "rodimus/core/dtype.hpp"
#include "rodimus/core/views.hpp"

namespace rodimus::backend::host {

/// Tokens served by one pass over the weights.
inline constexpr int kGemvTokens = 4;
/// Independent partial sums per token (one AVX-512 register of floats).
inline constexpr int kGemvLanes = 16;

/// y[t, o] = sum_i x[t, i] w[o, i] (+ b[o]) for t < n <= kGemvTokens.
// x: [n, in] (row stride ldx), w: [out, in], bias: [out] or null, y: [n, out] (row stride ldy)
template <StorageType W>
inline void gemv_rows(const float* x, int ldx, const W* w, const float* bias, float* y, int ldy,
                      int n, int in, int o_begin, int o_end) {
  const int in_main = in / kGemvLanes * kGemvLanes;
  for (int o = o_begin; o < o_end; ++o) {
    const W* wr = w + std::int64_t(o) * in;
    float acc[kGemvTokens][kGemvLanes] = {};
    for (int i = 0; i < in_main; i += kGemvLanes) {
      float wf[kGemvLanes];
      for (int j = 0; j < kGemvLanes; ++j) wf[j] = to_f32(wr[i + j]);
      for (int t = 0; t < kGemvTokens; ++t) {
        if (t < n) {
          const float* xr = x + std::int64_t(t) * ldx + i;
          for (int j = 0; j < kGemvLanes; ++j) acc[t][j] += xr[j] * wf[j];
        }
      }
    }
    for (int t = 0; t < n; ++t) {
      float s = 0.f;
      for (int j = 0; j < kGemvLanes; ++j) s += acc[t][j];
      const float* xr = x + std::int64_t(t) * ldx;
      for (int i = in_main; i < in; ++i) s += xr[i] * to_f32(wr[i]);
      y[std::int64_t(t) * ldy + o] = s + (bias ? bias[o] : 0.f);
    }
  }
}

}  // namespace rodimus::backend::host
