// Host fast path of the linear layer through a CBLAS (OpenBLAS on Debian): sgemm for token
// blocks, sgemv for single tokens; bf16/fp16 weights are widened in row panels first.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "rodimus/core/dtype.hpp"

#if defined(RODIMUS_HAVE_CBLAS)
#include <cblas.h>
#endif

namespace rodimus::backend::host {

/// True when rodimus was built against a CBLAS (CMake defines RODIMUS_HAVE_CBLAS).
inline constexpr bool has_cblas =
#if defined(RODIMUS_HAVE_CBLAS)
    true;
#else
    false;
#endif

/// Most elements of a reduced-precision weight widened to fp32 per sgemm call (64 MiB): every
/// block matrix of the published models in one call, so the BLAS packs the activations once.
inline constexpr std::int64_t kWidenPanelElems = std::int64_t(1) << 24;

/// y[0:n, :] = x[0:n, :] W^T + b on host memory, all row-major and contiguous.
// x: [n, in] (row stride ldx), w: [out, in], bias: [out] or null, y: [n, out] (row stride ldy)
template <StorageType W>
void blas_linear([[maybe_unused]] const float* x, [[maybe_unused]] int ldx,
                 [[maybe_unused]] const W* w, [[maybe_unused]] const float* bias,
                 [[maybe_unused]] float* y, [[maybe_unused]] int ldy, [[maybe_unused]] int n,
                 [[maybe_unused]] int in, [[maybe_unused]] int out) {
#if defined(RODIMUS_HAVE_CBLAS)
  if constexpr (std::is_same_v<W, float>) {
    if (n == 1) {
      cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.f, w, in, x, 1, 0.f, y, 1);
    } else {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.f, x, ldx, w, in, 0.f, y,
                  ldy);
    }
  } else {
    thread_local std::vector<float> panel;
    const int panel_rows = static_cast<int>(
        std::clamp<std::int64_t>(kWidenPanelElems / std::max(in, 1), 16, std::max(out, 16)));
    panel.resize(std::size_t(panel_rows) * in);
    for (int r0 = 0; r0 < out; r0 += panel_rows) {
      const int rows = std::min(panel_rows, out - r0);
      for (std::int64_t i = 0; i < std::int64_t(rows) * in; ++i)
        panel[i] = to_f32(w[std::int64_t(r0) * in + i]);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, rows, in, 1.f, x, ldx, panel.data(),
                  in, 0.f, y + r0, ldy);
    }
  }
  if (bias != nullptr)
    for (int t = 0; t < n; ++t)
      for (int o = 0; o < out; ++o) y[std::int64_t(t) * ldy + o] += bias[o];
#endif
}

/// The two products of the linear layer's backward on host memory, fp32, row-major with unit
/// column stride: dx[0:n] = dy W (beta = 0) or dx += dy W (`accumulate`), and dw += dy^T x.
// dy: [n, out] (row stride lddy), w: [out, in] (ldw), dx: [n, in] (lddx), x: [n, in] (ldx),
// dw: [out, in] (lddw)
inline void blas_linear_grad_input([[maybe_unused]] const float* dy, [[maybe_unused]] int lddy,
                                   [[maybe_unused]] const float* w, [[maybe_unused]] int ldw,
                                   [[maybe_unused]] float* dx, [[maybe_unused]] int lddx,
                                   [[maybe_unused]] int n, [[maybe_unused]] int in,
                                   [[maybe_unused]] int out, [[maybe_unused]] bool accumulate) {
#if defined(RODIMUS_HAVE_CBLAS)
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, out, 1.f, dy, lddy, w, ldw,
              accumulate ? 1.f : 0.f, dx, lddx);
#endif
}

inline void blas_linear_grad_weight([[maybe_unused]] const float* x, [[maybe_unused]] int ldx,
                                    [[maybe_unused]] const float* dy, [[maybe_unused]] int lddy,
                                    [[maybe_unused]] float* dw, [[maybe_unused]] int lddw,
                                    [[maybe_unused]] int n, [[maybe_unused]] int in,
                                    [[maybe_unused]] int out) {
#if defined(RODIMUS_HAVE_CBLAS)
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, n, 1.f, dy, lddy, x, ldx, 1.f, dw,
              lddw);
#endif
}

}  // namespace rodimus::backend::host
