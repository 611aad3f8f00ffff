// A projection followed by the pre-norm residual add + RMSNorm of its output (SPEC 5: a layer's
// output projection, then the next sublayer's norm). On a CUDA GPU a decode-sized call is one
// GEMV launch whose last block runs the norm: one kernel fewer per sublayer.
#pragma once

#include <array>
#include <cstdint>

#include "rodimus/ops/linear.hpp"
#include "rodimus/ops/rms_norm.hpp"

namespace rodimus {

/// The residual add + RMSNorm that follows a projection (add_rms_norm's operands but h, which
/// is the projection's output): r per `mode`, out = RMSNorm(h + r) * w.
template <class Space>
struct ResidualNorm {
  View2<float, Space> r;        ///< [>=N, D] fp32 residual stream
  View1<const float, Space> w;  ///< [D]
  View2<float, Space> out;      ///< [>=N, D]
  float eps = 0.f;
  ResidualMode mode = ResidualMode::Add;
};

/// y = x W^T + b (linear), then add_rms_norm(y, norm.r, norm.w, norm.out, n_tokens, norm.eps,
/// norm.mode): the same results as those two calls. On Kokkos::Cuda a call of at most
/// backend::cuda::kGemvMaxTokens tokens with bf16 / fp16 weights, dense operands and 16-byte
/// aligned rows of D % 4 == 0 floats (D <= 8192) is one GEMV launch that runs the norm in its
/// last block (CudaContext::gemv_norm_after); otherwise the two calls run in turn.
// x: [>=N, in]; y: [>=N, D]
template <class Space, StorageType W>
void linear_residual_norm(const Space& space, const View2<const float, Space>& x,
                          const LinearWeights<W, Space>& lw, const View2<float, Space>& y,
                          const ResidualNorm<Space>& norm, int n_tokens) {
  detail::check_linear_args<Space, W>(x, lw, y, n_tokens);
  const auto d = norm.w.extent(0);
  detail::check_extent(y, 1, d, "linear_residual_norm: y");
  detail::check_extent(norm.r, 1, d, "linear_residual_norm: r");
  detail::check_extent(norm.out, 1, d, "linear_residual_norm: out");
  detail::check_extent_at_least(norm.r, 0, n_tokens, "linear_residual_norm: r");
  detail::check_extent_at_least(norm.out, 0, n_tokens, "linear_residual_norm: out");
  if (n_tokens <= 0) return;
  if constexpr (is_cuda_space_v<Space>) {
    namespace bc = backend::cuda;
    if (bc::gemv_fusion_enabled(bc::GemvFusion::NormAfter)) {
      const auto ps = detail::cuda_projections(x, std::array{&lw}, std::array{y}, n_tokens);
      auto st = [](const auto& v, int dim) { return static_cast<std::int64_t>(v.stride(dim)); };
      if (ps.dense == 1 && ps.gemv == 1 && st(norm.r, 1) == 1 && st(norm.out, 1) == 1 &&
          st(norm.w, 0) == 1) {
        backend::RmsNormArgs a;
        a.r = norm.r.data();
        a.w = norm.w.data();
        a.out = norm.out.data();
        a.ldr = st(norm.r, 0);
        a.ldo = st(norm.out, 0);
        a.d = static_cast<int>(d);
        a.eps = norm.eps;
        a.mode = static_cast<int>(norm.mode);
        if (bc::gemv_norm_after_takes(a, ps.proj[0])) {
          detail::cuda_linear_launch<Space, W>(
              space, true, x.data(), static_cast<std::int64_t>(x.stride(0)), ps.proj.data(), 1,
              n_tokens, lw.in_features(), nullptr, 0, &a);
          return;
        }
      }
    }
  }
  detail::linear_checked(space, x, lw, y, n_tokens);
  detail::add_rms_norm_checked<float>(space, View2<const float, Space>(y), norm.r, norm.w,
                                      norm.out, n_tokens, norm.eps, norm.mode);
}

}  // namespace rodimus
