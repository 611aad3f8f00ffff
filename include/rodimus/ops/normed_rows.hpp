// The input of a projection that may still owe its pre-norm (SPEC 5): rows x to be read as
// RMSNorm(x) * w. linear_residual_norm returns one; the ops that start a sublayer
// (linear_short_conv, linear_rope, swiglu_ffn) take one. On a CUDA GPU at 1 to 2 tokens the
// norm then runs inside the consumer's GEMV (backend::cuda::InputNorm): no norm kernel between
// two sublayers. Anywhere else the consumer first writes the norm to `out` (rms_norm).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>

#include "rodimus/backend/cuda/gemv.hpp"
#include "rodimus/ops/linear.hpp"
#include "rodimus/ops/rms_norm.hpp"

namespace rodimus {

/// Rows x read as RMSNorm(x) * w (pending) or, with w empty, as they are. Converts implicitly
/// from a view of rows, so a consumer takes plain activations as before.
template <class Space>
struct NormedRows {
  View2<const float, Space> x;  ///< [>=N, D]
  View1<const float, Space> w;  ///< [D]; empty: nothing pending
  float eps = 0.f;
  View2<float, Space> out;  ///< [>=N, D]: where a consumer that cannot fuse the norm writes it

  NormedRows() = default;
  template <class V>
  requires std::is_convertible_v<const V&, View2<const float, Space>> NormedRows(const V& rows)
      : x(rows) {}  // NOLINT(google-explicit-constructor): plain rows
  NormedRows(View2<const float, Space> rows, View1<const float, Space> weight, float epsilon,
             View2<float, Space> scratch)
      : x(std::move(rows)), w(std::move(weight)), eps(epsilon), out(std::move(scratch)) {}

  bool pending() const { return w.data() != nullptr; }
};

namespace detail {

/// The rows a consumer reads: x when nothing is pending; else rms_norm(x, w) written to out
/// first.
template <class Space>
View2<const float, Space> materialize(const Space& space, const NormedRows<Space>& in,
                                      int n_tokens) {
  if (!in.pending()) return in.x;
  rms_norm(space, in.x, in.w, in.out, n_tokens, in.eps);
  return View2<const float, Space>(in.out);
}

/// The CUDA GEMV's InputNorm for a pending norm it takes (NormedRows::w dense over `in`
/// features, 1 to kGemvNormInMaxTokens tokens, CudaContext::gemv_norm_in on); w null when
/// nothing is pending or the GEMV cannot take it.
template <class Space>
backend::cuda::InputNorm cuda_input_norm(const NormedRows<Space>& in, int in_features,
                                         int n_tokens) {
  backend::cuda::InputNorm n;
  if (!in.pending() || in.w.stride(0) != 1 ||
      in.w.extent(0) != static_cast<std::size_t>(in_features) ||
      !backend::cuda::gemv_fusion_enabled(backend::cuda::GemvFusion::NormIn))
    return n;
  n.w = in.w.data();
  n.eps = in.eps;
  if (!backend::cuda::gemv_input_norm_takes(n, n_tokens, in_features)) n.w = nullptr;
  return n;
}

/// cuda_gemv_with on rows that may owe their norm: the GEMV normalises a pending input as it
/// reads it (InputNorm). False, having done nothing, where cuda_gemv_with is, or where the input
/// is pending and the GEMV cannot take its norm: the caller then materializes it.
template <class Space, StorageType W, std::size_t K, class Decorate>
bool cuda_gemv_normed(const Space& space, const NormedRows<Space>& in,
                      const std::array<const LinearWeights<W, Space>*, K>& lw,
                      const std::array<View2<float, Space>, K>& y, int n_tokens,
                      Decorate&& decorate) {
  const backend::cuda::InputNorm in_norm = cuda_input_norm(in, lw[0]->in_features(), n_tokens);
  if (in.pending() && !in_norm.w) return false;
  return cuda_gemv_with(space, in.x, lw, y, n_tokens, std::forward<Decorate>(decorate), &in_norm);
}

/// Checks a pending norm's operands against the rows' width d and N tokens.
template <class Space>
void check_normed_rows(const NormedRows<Space>& in, std::size_t d, int n_tokens, const char* what) {
  if (!in.pending()) return;
  const std::string w = what;
  check_extent(in.w, 0, static_cast<std::int64_t>(d), w + ": norm weight");
  check_extent(in.out, 1, static_cast<std::int64_t>(d), w + ": norm output");
  check_extent_at_least(in.out, 0, n_tokens, w + ": norm output");
}

}  // namespace detail
}  // namespace rodimus
