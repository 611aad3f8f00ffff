// Linear layer y = x W^T + b (PyTorch weight convention W: [out, in]), weights in any dtype.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "rodimus/backend/cuda/cublas_linear.hpp"
#include "rodimus/backend/cuda/gemv.hpp"
#include "rodimus/backend/exec_space_traits.hpp"
#include "rodimus/backend/host/bf16_gemm.hpp"
#include "rodimus/backend/host/blas_linear.hpp"
#include "rodimus/backend/host/gemv.hpp"
#include "rodimus/backend/host/operands.hpp"
#include "rodimus/core/dtype.hpp"
#include "rodimus/core/views.hpp"
#include "rodimus/ops/impl/linear_kernel.hpp"

namespace rodimus {

/// A linear layer's parameters on the device: `w: [out, in]` in storage type `W`, optional
/// fp32 bias `b: [out]` (empty view when absent). `W = double` (fp64 weights and bias) is the
/// fp64 training forward of the gradient checks.
template <WeightType W, class Space>
struct LinearWeights {
  using weight_type = W;
  View2<const W, Space> w;
  View1<const compute_t<W>, Space> b;

  int in_features() const { return static_cast<int>(w.extent(1)); }
  int out_features() const { return static_cast<int>(w.extent(0)); }
  bool has_bias() const { return b.extent(0) > 0; }
  /// Bytes the weights occupy (what a decode step streams).
  std::size_t bytes() const { return w.size() * sizeof(W) + b.size() * sizeof(compute_t<W>); }
};

namespace detail {

/// Whether the CUDA kernels take these operands: unit column strides, dense weights.
template <class Space, StorageType W>
bool cuda_dense(const View2<const float, Space>& x, const LinearWeights<W, Space>& lw,
                const View2<float, Space>& y) {
  return x.stride(1) == 1 && y.stride(1) == 1 && lw.w.stride(1) == 1 &&
         lw.w.stride(0) == static_cast<std::size_t>(lw.in_features());
}

template <class Space, WeightType W>
void check_linear_args(const View2<const compute_t<W>, Space>& x, const LinearWeights<W, Space>& lw,
                       const View2<compute_t<W>, Space>& y, int n_tokens) {
  check_extent(x, 1, lw.in_features(), "linear: x");
  check_extent(y, 1, lw.out_features(), "linear: y");
  check_extent_at_least(x, 0, n_tokens, "linear: x");
  check_extent_at_least(y, 0, n_tokens, "linear: y");
  if (lw.has_bias()) check_extent(lw.b, 0, lw.out_features(), "linear: bias");
}

/// Whether the host GEMV takes `n_tokens` tokens of weights W: a few tokens (decode, batch
/// decode); fp32 weights on a CPU without AVX2 go to the BLAS instead.
template <StorageType W>
bool host_gemv_takes(int n_tokens) {
  namespace hb = backend::host;
  return n_tokens <= hb::kGemvMaxTokens &&
         (!std::is_same_v<W, float> || !hb::has_cblas || hb::host_isa() != hb::HostIsa::Generic);
}

/// y[i][0:N] = x[i][0:N] W_i^T + b_i on the host GEMV (backend/host/gemv.hpp): each weight row
/// streamed once for all tokens, blocks of rows of every projection in one parallel loop (one
/// fork / join for all of them). Each projection has its input (the same view for projections
/// of a shared input), all of the same width.
template <class Space, StorageType W, std::size_t K>
void host_gemv(const Space& space, const std::array<View2<const float, Space>, K>& x,
               const std::array<const LinearWeights<W, Space>*, K>& lw,
               const std::array<View2<float, Space>, K>& y, int n_tokens) {
  constexpr int kRowsPerItem = 16;
  struct Part {
    const float* x;
    const W* w;
    const float* b;
    float* y;
    int ldx, ldy, out, item0;  // item0: the part's first work item
  };
  std::array<Part, K> parts;
  int items = 0;
  for (std::size_t i = 0; i < K; ++i) {
    const auto& l = *lw[i];
    parts[i] = {x[i].data(),
                l.w.data(),
                l.has_bias() ? l.b.data() : nullptr,
                y[i].data(),
                static_cast<int>(x[i].stride(0)),
                static_cast<int>(y[i].stride(0)),
                l.out_features(),
                items};
    items += (l.out_features() + kRowsPerItem - 1) / kRowsPerItem;
  }
  const int in = lw[0]->in_features();
  detail::host_items_for(space, RODIMUS_KERNEL_LABEL("rodimus::gemv"), items, [=](const int item) {
    std::size_t j = K - 1;
    while (item < parts[j].item0) --j;
    const Part& p = parts[j];
    const int o0 = (item - p.item0) * kRowsPerItem;
    const int o1 = o0 + kRowsPerItem < p.out ? o0 + kRowsPerItem : p.out;
    backend::host::gemv_rows<W>(p.x, p.ldx, p.w, p.b, p.y, p.ldy, n_tokens, in, o0, o1);
  });
}

/// host_gemv of K projections of one input.
template <class Space, StorageType W, std::size_t K>
void host_gemv(const Space& space, const View2<const float, Space>& x,
               const std::array<const LinearWeights<W, Space>*, K>& lw,
               const std::array<View2<float, Space>, K>& y, int n_tokens) {
  std::array<View2<const float, Space>, K> xs;
  xs.fill(x);
  host_gemv(space, xs, lw, y, n_tokens);
}

/// The CUDA kernels' view of one projection: weights, bias, output (dense rows checked by
/// cuda_dense()).
template <class Space, StorageType W>
backend::cuda::Projection<W> cuda_projection(const LinearWeights<W, Space>& lw,
                                             const View2<float, Space>& y) {
  backend::cuda::Projection<W> p;
  p.w = lw.w.data();
  p.b = lw.has_bias() ? lw.b.data() : nullptr;
  p.y = y.data();
  p.ldy = static_cast<std::int64_t>(y.stride(0));
  p.out = lw.out_features();
  return p;
}

/// K projections of one input as the CUDA kernels take them, with how many have dense operands
/// (cuda_dense) and how many weights the decode GEMV takes at the call's token count.
template <StorageType W, std::size_t K>
struct CudaProjections {
  std::array<backend::cuda::Projection<W>, K> proj;
  std::size_t dense = 0, gemv = 0;
};

template <class Space, StorageType W, std::size_t K>
CudaProjections<W, K> cuda_projections(const View2<const float, Space>& x,
                                       const std::array<const LinearWeights<W, Space>*, K>& lw,
                                       const std::array<View2<float, Space>, K>& y, int n_tokens) {
  CudaProjections<W, K> ps;
  const auto ldx = static_cast<std::int64_t>(x.stride(0));
  for (std::size_t i = 0; i < K; ++i) {
    const auto& l = *lw[i];
    ps.dense += cuda_dense(x, l, y[i]);
    ps.gemv +=
        backend::cuda::gemv_supports<W>(n_tokens, l.in_features(), x.data(), ldx, l.w.data());
    ps.proj[i] = cuda_projection(l, y[i]);
  }
  return ps;
}

/// The decode GEMV (decode-sized N) or cuBLAS on `count` projections of the input x (row stride
/// ldx) with `in` features, inside a profiler region naming the path. xg: SwiGLU's gate input
/// (the GEMV, or cuBLAS's operand pass, forms silu(xg) * x); in_norm: the GEMV's input norm.
template <class Space, StorageType W>
void cuda_linear_launch([[maybe_unused]] const Space& space, [[maybe_unused]] bool gemv,
                        [[maybe_unused]] const float* x, [[maybe_unused]] std::int64_t ldx,
                        [[maybe_unused]] const backend::cuda::Projection<W>* proj,
                        [[maybe_unused]] int count, [[maybe_unused]] int n_tokens,
                        [[maybe_unused]] int in, [[maybe_unused]] const float* xg = nullptr,
                        [[maybe_unused]] std::int64_t ldxg = 0,
                        [[maybe_unused]] const backend::cuda::InputNorm* in_norm = nullptr) {
  if constexpr (is_cuda_space_v<Space>) {
    namespace bc = backend::cuda;
    Kokkos::Profiling::pushRegion(gemv ? "rodimus::linear.gemv" : "rodimus::linear.cublas");
    if (gemv)
      bc::gemv<W>(x, ldx, proj, count, n_tokens, in, space.cuda_stream(), xg, ldxg, in_norm);
    else
      bc::cublas_linear_shared<W>(x, ldx, proj, count, n_tokens, in, space.cuda_stream(), xg, ldxg);
    Kokkos::Profiling::popRegion();
  }
}

/// The CUDA fast paths of K projections of one input, all operands dense: one decode GEMV launch
/// for all of them (decode-sized N), else cuBLAS (bf16 / fp16 weights on the tensor cores with x
/// converted once, fp32 weights as an fp32 SGEMM). False, having done nothing, when an operand
/// is strided or only some weights suit the GEMV.
template <class Space, StorageType W, std::size_t K>
bool cuda_linear([[maybe_unused]] const Space& space,
                 [[maybe_unused]] const View2<const float, Space>& x,
                 [[maybe_unused]] const std::array<const LinearWeights<W, Space>*, K>& lw,
                 [[maybe_unused]] const std::array<View2<float, Space>, K>& y,
                 [[maybe_unused]] int n_tokens) {
  if constexpr (is_cuda_space_v<Space>) {
    const auto ps = cuda_projections(x, lw, y, n_tokens);
    if (ps.dense != K || (ps.gemv != 0 && ps.gemv != K)) return false;
    cuda_linear_launch<Space, W>(space, ps.gemv == K, x.data(),
                                 static_cast<std::int64_t>(x.stride(0)), ps.proj.data(),
                                 static_cast<int>(K), n_tokens, lw[0]->in_features());
    return true;
  }
  return false;
}

/// The decode GEMV alone for K projections of one input, `decorate(proj)` setting epilogues on
/// the projections (std::array<backend::cuda::Projection<W>, K>&) before the launch. False,
/// having done nothing, off Kokkos::Cuda, for strided operands, where the GEMV does not take
/// the shapes, or with CudaContext::gemv_epilogues off: the caller then runs the linear layers
/// and the epilogue's own op. in_norm (w set): the input is RMSNorm(x) * in_norm->w (the caller
/// checked gemv_input_norm_takes).
template <class Space, StorageType W, std::size_t K, class Decorate>
bool cuda_gemv_with([[maybe_unused]] const Space& space,
                    [[maybe_unused]] const View2<const float, Space>& x,
                    [[maybe_unused]] const std::array<const LinearWeights<W, Space>*, K>& lw,
                    [[maybe_unused]] const std::array<View2<float, Space>, K>& y,
                    [[maybe_unused]] int n_tokens, [[maybe_unused]] Decorate&& decorate,
                    [[maybe_unused]] const backend::cuda::InputNorm* in_norm = nullptr) {
  if constexpr (is_cuda_space_v<Space>) {
    if (!backend::cuda::gemv_fusion_enabled(backend::cuda::GemvFusion::Epilogues)) return false;
    auto ps = cuda_projections(x, lw, y, n_tokens);
    if (ps.dense != K || ps.gemv != K) return false;
    decorate(ps.proj);
    cuda_linear_launch<Space, W>(space, true, x.data(), static_cast<std::int64_t>(x.stride(0)),
                                 ps.proj.data(), static_cast<int>(K), n_tokens,
                                 lw[0]->in_features(), nullptr, 0,
                                 in_norm && in_norm->w ? in_norm : nullptr);
    return true;
  }
  return false;
}

/// y = x W^T + b and gated = sigmoid(y) * gate on Kokkos::Cuda without a pass of its own for
/// the product: decode-sized N in one GEMV launch (the product as its epilogue), larger N on
/// cuBLAS with the product in the bias's pass (the channel gate's up-projection). False, having
/// done nothing, off Kokkos::Cuda or for strided operands.
template <class Space, StorageType W>
bool cuda_linear_gated([[maybe_unused]] const Space& space,
                       [[maybe_unused]] const View2<const float, Space>& x,
                       [[maybe_unused]] const LinearWeights<W, Space>& lw,
                       [[maybe_unused]] const View2<float, Space>& y,
                       [[maybe_unused]] const View2<const float, Space>& gate,
                       [[maybe_unused]] const View2<float, Space>& gated,
                       [[maybe_unused]] int n_tokens) {
  if constexpr (is_cuda_space_v<Space>) {
    namespace bc = backend::cuda;
    const int in = lw.in_features();
    const auto ldx = static_cast<std::int64_t>(x.stride(0));
    if (!cuda_dense(x, lw, y) || gate.stride(1) != 1 || gated.stride(1) != 1) return false;
    auto p = cuda_projection(lw, y);
    p.gate = gate.data();
    p.gated = gated.data();
    p.ldgate = static_cast<std::int64_t>(gate.stride(0));
    p.ldgated = static_cast<std::int64_t>(gated.stride(0));
    cuda_linear_launch<Space, W>(space,
                                 bc::gemv_supports<W>(n_tokens, in, x.data(), ldx, lw.w.data()),
                                 x.data(), ldx, &p, 1, n_tokens, in);
    return true;
  }
  return false;
}

/// y = (silu(g) * a) W^T + b on Kokkos::Cuda without a pass of its own for SwiGLU's product
/// (`a` is left as it was): decode-sized N in one GEMV launch (the product formed as the GEMV
/// loads its input; rows of more than 256 inputs), larger N on cuBLAS with bf16 / fp16 weights
/// (the product formed by the pass that converts the input to tensor-core operands). False,
/// having done nothing, off Kokkos::Cuda, for strided or misaligned operands, or where neither
/// takes the shapes.
template <class Space, StorageType W>
bool cuda_linear_glu([[maybe_unused]] const Space& space,
                     [[maybe_unused]] const View2<const float, Space>& a,
                     [[maybe_unused]] const View2<const float, Space>& g,
                     [[maybe_unused]] const LinearWeights<W, Space>& lw,
                     [[maybe_unused]] const View2<float, Space>& y, [[maybe_unused]] int n_tokens) {
  if constexpr (is_cuda_space_v<Space>) {
    namespace bc = backend::cuda;
    const int in = lw.in_features();
    const auto lda = static_cast<std::int64_t>(a.stride(0));
    const auto ldg = static_cast<std::int64_t>(g.stride(0));
    if (!cuda_dense(a, lw, y) || g.stride(1) != 1) return false;
    const auto p = cuda_projection(lw, y);
    if (n_tokens > bc::kGemvMaxTokens) {  // cuBLAS: the tensor-core operand pass forms it
      if constexpr (std::is_same_v<W, float>) {
        return false;  // SGEMM reads the fp32 input as it is
      } else {
        cuda_linear_launch<Space, W>(space, false, a.data(), lda, &p, 1, n_tokens, in, g.data(),
                                     ldg);
        return true;
      }
    }
    if (in <= 256 || !bc::gemv_supports<W>(n_tokens, in, a.data(), lda, lw.w.data()) ||
        !bc::gemv_supports<W>(n_tokens, in, g.data(), ldg, lw.w.data()))
      return false;
    cuda_linear_launch<Space, W>(space, true, a.data(), lda, &p, 1, n_tokens, in, g.data(), ldg);
    return true;
  }
  return false;
}

/// Whether the host's bf16-operand GEMM takes the call: more tokens than the GEMV serves,
/// host_operands() == OperandPrecision::Bf16 (set by the model from its Workspace), dense rows.
template <class Space, std::size_t K>
bool host_bf16_operands_take(const std::array<const LinearWeights<bf16, Space>*, K>& lw,
                             int n_tokens) {
  if (n_tokens <= backend::host::kGemvMaxTokens ||
      backend::host::host_operands() != OperandPrecision::Bf16)
    return false;
  for (const auto* l : lw)
    if (l->w.stride(0) != std::size_t(l->in_features())) return false;
  return true;
}

template <class Space, StorageType W>
void linear_fp32(const Space& space, const View2<const float, Space>& x,
                 const LinearWeights<W, Space>& lw, const View2<float, Space>& y, int n_tokens);

/// y[i][0:N] = bf16(x[0:N]) W_i^T + b_i on the host (OperandPrecision::Bf16): x rounded once for
/// all projections, then the vdpbf16ps GEMM (backend/host/bf16_gemm.hpp), every projection's
/// work items in one parallel loop; without AVX512_BF16 the rounded x (as fp32 values) goes
/// through the fp32 path (the same operands).
template <class Space, std::size_t K>
void host_bf16_linear(const Space& space, const View2<const float, Space>& x,
                      const std::array<const LinearWeights<bf16, Space>*, K>& lw,
                      const std::array<View2<float, Space>, K>& y, int n_tokens) {
  namespace hb = backend::host;
  const int in = lw[0]->in_features();
  const std::int64_t ldx = static_cast<std::int64_t>(x.stride(0));
  const float* xp = x.data();
  space.fence();
  if (!hb::host_has_avx512_bf16()) {
    thread_local std::vector<float> xr_buf;
    if (xr_buf.size() < std::size_t(n_tokens) * in) {
      xr_buf.resize(std::size_t(n_tokens) * in);
      note_reallocation();
    }
    float* xr = xr_buf.data();
    detail::host_items_for(
        space, RODIMUS_KERNEL_LABEL("rodimus::linear.round_bf16"), n_tokens, [=](const int t) {
          for (int i = 0; i < in; ++i)
            xr[std::int64_t(t) * in + i] = to_f32(from_f32<bf16>(xp[t * ldx + i]));
        });
    space.fence();
    const View2<const float, Space> xv(xr, n_tokens, in);
    for (std::size_t i = 0; i < K; ++i) linear_fp32(space, xv, *lw[i], y[i], n_tokens);
    return;
  }
  const int ldxb = hb::bf16_gemm_ld(in);
  thread_local std::vector<bf16> xb_buf;
  if (xb_buf.size() < std::size_t(n_tokens) * ldxb) {
    xb_buf.resize(std::size_t(n_tokens) * ldxb);
    note_reallocation();
  }
  bf16* xb = xb_buf.data();
  constexpr int kRows = 16;
  detail::host_items_for(space, RODIMUS_KERNEL_LABEL("rodimus::linear.round_bf16"),
                         (n_tokens + kRows - 1) / kRows, [=](const int item) {
                           const int r0 = item * kRows;
                           const int r1 = r0 + kRows < n_tokens ? r0 + kRows : n_tokens;
                           hb::round_rows_bf16(xp, ldx, in, xb, ldxb, r0, r1);
                         });
  std::array<hb::Bf16GemmArgs, K> args;
  std::array<int, K + 1> item0{};
  for (std::size_t i = 0; i < K; ++i) {
    auto& a = args[i];
    a.xb = xb;
    a.ldxb = ldxb;
    a.m = n_tokens;
    a.in = in;
    a.w = lw[i]->w.data();
    a.bias = lw[i]->has_bias() ? lw[i]->b.data() : nullptr;
    a.y = y[i].data();
    a.ldy = static_cast<std::int64_t>(y[i].stride(0));
    a.out = lw[i]->out_features();
    hb::bf16_gemm_plan(a, 4 * space.concurrency());
    item0[i + 1] = item0[i] + hb::bf16_gemm_items(a);
  }
  detail::host_items_for(space, RODIMUS_KERNEL_LABEL("rodimus::linear.bf16_gemm"), item0[K],
                         [=](const int item) {
                           std::size_t j = K - 1;
                           while (item < item0[j]) --j;
                           hb::bf16_gemm_item(args[j], item - item0[j]);
                         });
  space.fence();
}

/// The fp32-activation linear: host GEMV / BLAS, CUDA GEMV / cuBLAS, else the generic kernel.
template <class Space, StorageType W>
void linear_fp32(const Space& space, const View2<const float, Space>& x,
                 const LinearWeights<W, Space>& lw, const View2<float, Space>& y, int n_tokens) {
  if constexpr (is_host_space_v<Space>) {
    if (host_gemv_takes<W>(n_tokens))
      return host_gemv(space, x, std::array{&lw}, std::array{y}, n_tokens);
    // Token blocks: the BLAS (reduced-precision weights widened to fp32 in row panels).
    if constexpr (backend::host::has_cblas) {
      space.fence();
      backend::host::blas_linear<W>(x.data(), static_cast<int>(x.stride(0)), lw.w.data(),
                                    lw.has_bias() ? lw.b.data() : nullptr, y.data(),
                                    static_cast<int>(y.stride(0)), n_tokens, lw.in_features(),
                                    lw.out_features());
      return;
    }
  }
  if (cuda_linear(space, x, std::array{&lw}, std::array{y}, n_tokens)) return;
  linear_generic<Space, W>(space, x, lw.w, lw.b, y, n_tokens);
}

/// linear() after its argument checks.
template <class Space, WeightType W>
void linear_checked(const Space& space, const View2<const compute_t<W>, Space>& x,
                    const LinearWeights<W, Space>& lw, const View2<compute_t<W>, Space>& y,
                    int n_tokens) {
  if constexpr (std::is_same_v<W, double>) {
    linear_generic<Space, W>(space, x, lw.w, lw.b, y, n_tokens);
  } else {
    if constexpr (is_host_space_v<Space> && std::is_same_v<W, bf16>)
      if (host_bf16_operands_take(std::array{&lw}, n_tokens))
        return host_bf16_linear(space, x, std::array{&lw}, std::array{y}, n_tokens);
    linear_fp32(space, x, lw, y, n_tokens);
  }
}

}  // namespace detail

namespace detail {
/// linear_shared_input after its argument checks (the fused ops' fallbacks call it).
template <class Space, WeightType W, std::size_t K>
void linear_shared_input_checked(const Space& space, const View2<const compute_t<W>, Space>& x,
                                 const std::array<const LinearWeights<W, Space>*, K>& lw,
                                 const std::array<View2<compute_t<W>, Space>, K>& y, int n_tokens) {
  if (n_tokens <= 0) return;
  if constexpr (is_host_space_v<Space> && StorageType<W>) {
    if (host_gemv_takes<W>(n_tokens)) return host_gemv(space, x, lw, y, n_tokens);
  }
  if constexpr (is_host_space_v<Space> && std::is_same_v<W, bf16>) {
    if (host_bf16_operands_take(lw, n_tokens)) return host_bf16_linear(space, x, lw, y, n_tokens);
  }
  if constexpr (StorageType<W>) {
    if (cuda_linear(space, x, lw, y, n_tokens)) return;
  }
  // a strided operand, or a weight the GEMV cannot take beside ones it can: one by one
  for (std::size_t i = 0; i < K; ++i) linear_checked(space, x, *lw[i], y[i], n_tokens);
}
}  // namespace detail

/// y[0:N] = x[0:N] W^T + b.  x: [>=N, in], y: [>=N, out]. Activations are fp32, or fp64 for
/// `W = double` (always the generic kernel; the BLAS, GEMV and cuBLAS paths are fp32).
template <class Space, WeightType W>
void linear(const Space& space, const View2<const compute_t<W>, Space>& x,
            const LinearWeights<W, Space>& lw, const View2<compute_t<W>, Space>& y, int n_tokens) {
  detail::check_linear_args<Space, W>(x, lw, y, n_tokens);
  if (n_tokens > 0) detail::linear_checked(space, x, lw, y, n_tokens);
}

/// Several projections of one input, y[i][0:N] = x[0:N] W_i^T + b_i: the same results as
/// linear() for each, but a decode-sized N takes one GEMV launch for all of them (one parallel
/// loop on the host), and on a GPU a larger N converts x to the tensor cores' operand form once
/// for all of them (split halves or bf16, see OperandPrecision) instead of once per projection.
///   linear_shared_input(space, h, std::array{&w.fc_x, &w.fc_g}, std::array{x, g}, n);
template <class Space, WeightType W, std::size_t K>
void linear_shared_input(const Space& space,
                         const std::type_identity_t<View2<const compute_t<W>, Space>>& x,
                         const std::array<const LinearWeights<W, Space>*, K>& lw,
                         const std::array<View2<compute_t<W>, Space>, K>& y, int n_tokens) {
  static_assert(K > 0, "linear_shared_input: no projection");
  for (std::size_t i = 0; i < K; ++i)
    detail::check_linear_args<Space, W>(x, *lw[i], y[i], n_tokens);
  detail::linear_shared_input_checked(space, x, lw, y, n_tokens);
}

/// linear_shared_input with pointers to mutable weights.
template <class Space, WeightType W, std::size_t K>
void linear_shared_input(const Space& space,
                         const std::type_identity_t<View2<const compute_t<W>, Space>>& x,
                         const std::array<LinearWeights<W, Space>*, K>& lw,
                         const std::array<View2<compute_t<W>, Space>, K>& y, int n_tokens) {
  std::array<const LinearWeights<W, Space>*, K> c;
  for (std::size_t i = 0; i < K; ++i) c[i] = lw[i];
  linear_shared_input(space, x, c, y, n_tokens);
}

/// linear_shared_input(x1, lw1, y1) and linear_shared_input(x2, lw2, y2), the same results, for
/// two inputs of the same width: a decode-sized call takes one GEMV launch for all projections
/// of both (one parallel loop on the host), one kernel fewer per call on a GPU (the Rodimus
/// mixer's DDTS projections of xs beside the channel gate's down-projection of x); larger calls
/// run the two in turn.
template <class Space, StorageType W, std::size_t K1, std::size_t K2>
void linear_two_inputs(const Space& space, const View2<const float, Space>& x1,
                       const std::array<const LinearWeights<W, Space>*, K1>& lw1,
                       const std::array<View2<float, Space>, K1>& y1,
                       const View2<const float, Space>& x2,
                       const std::array<const LinearWeights<W, Space>*, K2>& lw2,
                       const std::array<View2<float, Space>, K2>& y2, int n_tokens) {
  static_assert(K1 > 0 && K2 > 0, "linear_two_inputs: no projection");
  for (std::size_t i = 0; i < K1; ++i)
    detail::check_linear_args<Space, W>(x1, *lw1[i], y1[i], n_tokens);
  for (std::size_t i = 0; i < K2; ++i)
    detail::check_linear_args<Space, W>(x2, *lw2[i], y2[i], n_tokens);
  if (n_tokens <= 0) return;
  if (x1.extent(1) == x2.extent(1)) {
    constexpr std::size_t K = K1 + K2;
    std::array<View2<const float, Space>, K> x;
    std::array<const LinearWeights<W, Space>*, K> lw;
    std::array<View2<float, Space>, K> y;
    for (std::size_t i = 0; i < K; ++i) {
      x[i] = i < K1 ? x1 : x2;
      lw[i] = i < K1 ? lw1[i] : lw2[i - K1];
      y[i] = i < K1 ? y1[i] : y2[i - K1];
    }
    if constexpr (is_host_space_v<Space>) {
      if (detail::host_gemv_takes<W>(n_tokens)) return detail::host_gemv(space, x, lw, y, n_tokens);
    }
    if constexpr (is_cuda_space_v<Space>) {
      // both inputs' projections on the GEMV: the second input's named per projection
      auto p1 = detail::cuda_projections(x1, lw1, y1, n_tokens);
      auto p2 = detail::cuda_projections(x2, lw2, y2, n_tokens);
      if (backend::cuda::gemv_fusion_enabled(backend::cuda::GemvFusion::TwoInputs) &&
          p1.dense + p2.dense == K && p1.gemv + p2.gemv == K) {
        std::array<backend::cuda::Projection<W>, K> proj;
        for (std::size_t i = 0; i < K; ++i) {
          proj[i] = i < K1 ? p1.proj[i] : p2.proj[i - K1];
          if (i >= K1) {
            proj[i].x = x2.data();
            proj[i].ldx = static_cast<std::int64_t>(x2.stride(0));
          }
        }
        detail::cuda_linear_launch<Space, W>(space, true, x1.data(),
                                             static_cast<std::int64_t>(x1.stride(0)), proj.data(),
                                             static_cast<int>(K), n_tokens, lw1[0]->in_features());
        return;
      }
    }
  }
  detail::linear_shared_input_checked(space, x1, lw1, y1, n_tokens);
  detail::linear_shared_input_checked(space, x2, lw2, y2, n_tokens);
}

/// linear_two_inputs with pointers to mutable weights.
template <class Space, StorageType W, std::size_t K1, std::size_t K2>
void linear_two_inputs(const Space& space, const View2<const float, Space>& x1,
                       const std::array<LinearWeights<W, Space>*, K1>& lw1,
                       const std::array<View2<float, Space>, K1>& y1,
                       const View2<const float, Space>& x2,
                       const std::array<LinearWeights<W, Space>*, K2>& lw2,
                       const std::array<View2<float, Space>, K2>& y2, int n_tokens) {
  std::array<const LinearWeights<W, Space>*, K1> c1;
  std::array<const LinearWeights<W, Space>*, K2> c2;
  for (std::size_t i = 0; i < K1; ++i) c1[i] = lw1[i];
  for (std::size_t i = 0; i < K2; ++i) c2[i] = lw2[i];
  linear_two_inputs(space, x1, c1, y1, x2, c2, y2, n_tokens);
}

}  // namespace rodimus
