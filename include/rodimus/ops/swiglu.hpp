// SwiGLU feed-forward network of the Rodimus+ block (SPEC 4).
#pragma once

#include <array>
#include <string>

#include "rodimus/ops/impl/gate_host.hpp"
#include "rodimus/ops/impl/gate_kernels.hpp"
#include "rodimus/ops/linear.hpp"
#include "rodimus/ops/linear_residual_norm.hpp"
#include "rodimus/ops/normed_rows.hpp"

namespace rodimus {

/// Weights of the SwiGLU FFN: [a, g] = split(h W_fc^T), out = (silu(g) * a) W_out^T.
template <StorageType W, class Space>
struct SwigluWeights {
  LinearWeights<W, Space> fc_a;  ///< first F rows of W_fc: [F, D]
  LinearWeights<W, Space> fc_g;  ///< last F rows of W_fc: [F, D]
  LinearWeights<W, Space> out;   ///< W_out: [D, F]
};

/// out = silu(g) * a, element-wise.   a, g, out: [>=N, F]; out may alias a.
/// Real: float, or double (`swiglu<double>`).
template <class Real = float, class Space>
void swiglu(const Space& space, const View2<const std::type_identity_t<Real>, Space>& a,
            const View2<const std::type_identity_t<Real>, Space>& g,
            const View2<std::type_identity_t<Real>, Space>& out, int n_tokens) {
  detail::check_extent(g, 1, a.extent(1), "swiglu: g");
  detail::check_extent(out, 1, a.extent(1), "swiglu: out");
  detail::check_extent_at_least(a, 0, n_tokens, "swiglu: a");
  detail::check_extent_at_least(g, 0, n_tokens, "swiglu: g");
  detail::check_extent_at_least(out, 0, n_tokens, "swiglu: out");
  if (n_tokens <= 0) return;
  if constexpr (std::is_same_v<Real, float>)
    if (detail::gate_product_host<backend::host::GateProduct::Silu>(space, g, a, out, n_tokens))
      return;
  detail::swiglu_generic<Space, Real>(space, a, g, out, n_tokens);
}

/// The whole FFN: y = (silu(h W_g^T) * (h W_a^T)) W_out^T. A pending norm of the input
/// (NormedRows) runs in the gate / up GEMV where it takes it, else first (rms_norm). With
/// `next`, the down-projection is linear_residual_norm's (the residual add + RMSNorm that
/// follows, returned as the rows the next sublayer reads); without, it returns {y}.
// h: [>=N, D]; a, g: [>=N, F] scratch; y: [>=N, D]
template <class Space, StorageType W>
NormedRows<Space> swiglu_ffn(const Space& space, const std::type_identity_t<NormedRows<Space>>& in,
                             const SwigluWeights<W, Space>& fw, const View2<float, Space>& a,
                             const View2<float, Space>& g, const View2<float, Space>& y,
                             int n_tokens, const ResidualNorm<Space>* next = nullptr) {
  using CV = View2<const float, Space>;
  const auto& h = in.x;
  detail::check_linear_args<Space, W>(h, fw.fc_a, a, n_tokens);
  detail::check_linear_args<Space, W>(h, fw.fc_g, g, n_tokens);
  detail::check_linear_args<Space, W>(CV(a), fw.out, y, n_tokens);
  detail::check_normed_rows(in, h.extent(1), n_tokens, "swiglu_ffn: h");
  if (next) detail::check_residual_norm(*next, y.extent(1), n_tokens);
  if (fw.fc_g.out_features() != fw.fc_a.out_features())
    throw ArgumentError("swiglu_ffn: fc_g has " + std::to_string(fw.fc_g.out_features()) +
                        " outputs, fc_a " + std::to_string(fw.fc_a.out_features()));
  // the down-projection of the product p: [N, F]
  auto down = [&](const CV& p) {
    if (next) return linear_residual_norm(space, p, fw.out, y, *next, n_tokens);
    detail::linear_checked(space, p, fw.out, y, n_tokens);
    return NormedRows<Space>(CV(y));
  };
  if (n_tokens <= 0) return down(CV(a));
  if constexpr (is_cuda_space_v<Space>) {
    // A decode step: the product in the up-projections' GEMV epilogue (gate and up rows paired
    // in its blocks; `a` receives silu(g) * a, g is not written), then a plain GEMV.
    if (backend::cuda::gemv_fusion_enabled(backend::cuda::GemvFusion::SwigluEpilogue) &&
        detail::cuda_dense(h, fw.fc_g, g) &&
        backend::cuda::gemv_supports<W>(n_tokens, fw.fc_g.in_features(), h.data(),
                                        static_cast<std::int64_t>(h.stride(0)), fw.fc_g.w.data()) &&
        detail::cuda_gemv_normed(space, in, std::array{&fw.fc_a}, std::array{a}, n_tokens,
                                 [&](auto& proj) {
                                   proj[0].glu_w = fw.fc_g.w.data();
                                   proj[0].glu_b = fw.fc_g.has_bias() ? fw.fc_g.b.data() : nullptr;
                                 }))
      return down(CV(a));
  }
  const auto x = detail::materialize(space, in, n_tokens);
  detail::linear_shared_input_checked(space, x, std::array{&fw.fc_a, &fw.fc_g}, std::array{a, g},
                                      n_tokens);
  // CUDA: the product formed by the down-projection as it reads its input (the decode GEMV's
  // loads, or cuBLAS's operand conversion: one pass fewer; a keeps the up-projection).
  // Elsewhere the product overwrites a, then the down-projection.
  if constexpr (is_cuda_space_v<Space>) {
    if (detail::cuda_linear_glu(space, CV(a), CV(g), fw.out, y, n_tokens)) {
      if (!next) return NormedRows<Space>(CV(y));
      return detail::residual_norm_checked(space, CV(y), *next, n_tokens);
    }
  }
  swiglu(space, CV(a), CV(g), a, n_tokens);
  return down(CV(a));
}

}  // namespace rodimus
