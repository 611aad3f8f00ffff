// A projection followed by the pre-norm residual add + RMSNorm of its output (SPEC 5: a layer's
// output projection, then the next sublayer's norm). On a CUDA GPU at 1 to 2 tokens the norm
// is left to the consumer: the projection's GEMV adds the residual stream, and the next
// sublayer's GEMV normalises its input as it reads it (NormedRows): no norm kernel.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "rodimus/ops/linear.hpp"
#include "rodimus/ops/normed_rows.hpp"
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
  /// The caller reads the result only through the returned NormedRows (not y, nor out): the
  /// norm may then be left pending for the consumer.
  bool defer = false;
};

namespace detail {
/// Checks a ResidualNorm's operands against rows of d features and N tokens.
template <class Space>
void check_residual_norm(const ResidualNorm<Space>& norm, std::size_t d, int n_tokens) {
  const auto dd = static_cast<std::int64_t>(d);
  check_extent(norm.w, 0, dd, "linear_residual_norm: w");
  check_extent(norm.r, 1, dd, "linear_residual_norm: r");
  check_extent(norm.out, 1, dd, "linear_residual_norm: out");
  check_extent_at_least(norm.r, 0, n_tokens, "linear_residual_norm: r");
  check_extent_at_least(norm.out, 0, n_tokens, "linear_residual_norm: out");
}

/// The residual add + RMSNorm `norm` after a projection's output rows y (add_rms_norm), after
/// the argument checks; returns the normalised rows {norm.out}.
template <class Space>
NormedRows<Space> residual_norm_checked(const Space& space, const View2<const float, Space>& y,
                                        const ResidualNorm<Space>& norm, int n_tokens) {
  add_rms_norm_checked<float>(space, y, norm.r, norm.w, norm.out, n_tokens, norm.eps, norm.mode);
  return NormedRows<Space>(View2<const float, Space>(norm.out));
}
}  // namespace detail

/// y = x W^T + b (linear), then add_rms_norm(y, norm.r, norm.w, norm.out, n_tokens, norm.eps,
/// norm.mode); returns the rows the next sublayer reads, {out} (normalised). x may owe its own
/// norm (NormedRows: the mixer's gated norm, ddts_gla_scan_gated_norm): the GEMV below takes
/// it, or it is written to x.out first.
/// With norm.defer, on Kokkos::Cuda, at 1 to 2 tokens (backend::cuda::kGemvNormInMaxTokens),
/// modes Add and AddNoStore, bf16 / fp16 weights, dense operands, 16-byte aligned rows and
/// CudaContext::gemv_norm_in on: one GEMV launch that writes z = y + r (to r for Add, to out for
/// AddNoStore; y is not written), returning {z, norm.w, norm.eps, norm.out} with the norm
/// pending: the consumer's GEMV takes it, or writes it to out (detail::materialize).
// x: [>=N, in]; y: [>=N, D]
template <class Space, StorageType W>
NormedRows<Space> linear_residual_norm(const Space& space,
                                       const std::type_identity_t<NormedRows<Space>>& x,
                                       const LinearWeights<W, Space>& lw,
                                       const View2<float, Space>& y,
                                       const ResidualNorm<Space>& norm, int n_tokens) {
  detail::check_linear_args<Space, W>(x.x, lw, y, n_tokens);
  detail::check_normed_rows(x, lw.in_features(), n_tokens, "linear_residual_norm: x");
  const auto d = norm.w.extent(0);
  detail::check_extent(y, 1, d, "linear_residual_norm: y");
  detail::check_residual_norm(norm, d, n_tokens);
  using CV = View2<const float, Space>;
  if (n_tokens <= 0) return NormedRows<Space>(CV(norm.out));
  // an input norm no GEMV here can take is written first
  const auto x_norm = detail::cuda_input_norm(x, lw.in_features(), n_tokens);
  const NormedRows<Space> xr =
      x_norm.w ? x : NormedRows<Space>(detail::materialize(space, x, n_tokens));
  if constexpr (is_cuda_space_v<Space>) {
    namespace bc = backend::cuda;
    const bool add = norm.mode == ResidualMode::Add;
    if (norm.defer && (add || norm.mode == ResidualMode::AddNoStore) &&
        n_tokens <= bc::kGemvNormInMaxTokens && bc::gemv_fusion_enabled(bc::GemvFusion::NormIn)) {
      const auto z = add ? norm.r : norm.out;
      auto ps = detail::cuda_projections(xr.x, std::array{&lw}, std::array{z}, n_tokens);
      const NormedRows<Space> pending(CV(z), norm.w, norm.eps, norm.out);
      const bc::InputNorm in_norm = detail::cuda_input_norm(pending, static_cast<int>(d), n_tokens);
      if (ps.dense == 1 && ps.gemv == 1 && norm.r.stride(1) == 1 && in_norm.w &&
          z.stride(0) % 4 == 0 && bc::aligned16(z.data())) {
        ps.proj[0].res = norm.r.data();
        ps.proj[0].ldres = static_cast<std::int64_t>(norm.r.stride(0));
        detail::cuda_linear_launch<Space, W>(
            space, true, xr.x.data(), static_cast<std::int64_t>(xr.x.stride(0)), ps.proj.data(), 1,
            n_tokens, lw.in_features(), nullptr, 0, x_norm.w ? &x_norm : nullptr);
        return pending;
      }
    }
  }
  detail::linear_checked(space, detail::materialize(space, xr, n_tokens), lw, y, n_tokens);
  return detail::residual_norm_checked(space, CV(y), norm, n_tokens);
}

}  // namespace rodimus
