// The DDTS gates and the GLA scan as one op (SPEC 2 steps 5-7): the mixer's path from the gate
// projections to the scan output. On Kokkos::Cuda a decode-sized call runs both in one kernel
// (the gates computed as the recurrence loads each token); everywhere else it is ddts_gate
// followed by gla_scan.
#pragma once

#include "rodimus/backend/cuda/gla_scan.hpp"
#include "rodimus/ops/ddts_gate.hpp"
#include "rodimus/ops/gated_rms_norm.hpp"
#include "rodimus/ops/gla_scan.hpp"
#include "rodimus/ops/normed_rows.hpp"

namespace rodimus {

namespace detail {
/// The checks of ddts_gla_scan's operands other than u (E: the value width).
template <class Space>
void check_ddts_gla_scan_args(const View2<const float, Space>& q,
                              const View2<const float, Space>& s_raw,
                              const View2<const float, Space>& tau_raw,
                              const View2<float, Space>& k, const View2<float, Space>& a,
                              const View3<float, Space>& state, const SeqBatch<Space>& batch,
                              const View2<float, Space>& o, std::size_t e) {
  const auto n = q.extent(1);
  const int nt = batch.num_tokens;
  check_extent(s_raw, 1, n, "ddts_gla_scan: s_raw");
  check_extent(tau_raw, 1, n, "ddts_gla_scan: tau_raw");
  check_extent(k, 1, n, "ddts_gla_scan: k");
  check_extent(a, 1, n, "ddts_gla_scan: a");
  check_extent(o, 1, e, "ddts_gla_scan: o");
  check_extent(state, 1, n, "ddts_gla_scan: state");
  check_extent(state, 2, e, "ddts_gla_scan: state");
  for (auto* v : {&q, &s_raw, &tau_raw}) check_extent_at_least(*v, 0, nt, "ddts_gla_scan: input");
  for (auto* v : {&k, &a, &o}) check_extent_at_least(*v, 0, nt, "ddts_gla_scan: k, a, o");
}

/// ddts_gla_scan after its argument checks (ddts_gla_scan_gated's fallback calls it).
template <ScanAlgorithm Algo, class Space>
void ddts_gla_scan_checked(const Space& space, const View2<const float, Space>& q,
                           const View2<const float, Space>& s_raw,
                           const View2<const float, Space>& tau_raw, const View2<float, Space>& k,
                           const View2<float, Space>& a, const View2<const float, Space>& u,
                           const View3<float, Space>& state, const SeqBatch<Space>& batch,
                           const View2<float, Space>& o, float scale, float normalize_eps,
                           GlaScanWorkspace<Space, float>& ws) {
  using CV = View2<const float, Space>;
  const int nt = batch.num_tokens;
  if (nt == 0) return;
  if (backend::cuda::ddts_gla_scan_cuda(space, q, CV(k), s_raw, tau_raw, u, state, batch, o,
                                        scale, normalize_eps))
    return;
  ddts_gate(space, s_raw, tau_raw, CV(k), a, k, nt, normalize_eps);
  gla_scan<Algo>(space, q, CV(k), CV(a), u, state, batch, o, scale, ws);
}
}  // namespace detail

/// o = gla_scan<Algo>(q, k', a, u) with a = -tau s and k' = s^tau k / max(||k||, eps) the DDTS
/// gates of (s_raw, tau_raw, k): the same as ddts_gate(s_raw, tau_raw, k, a, k) then
/// gla_scan<Algo>(q, k, a, u, state, batch, o, scale, ws). With the fused CUDA kernel (up to 4
/// tokens per sequence) `a` and `k` are left as they were; otherwise they hold the log forget
/// gate and the gated key afterwards. fp32.
// q, s_raw, tau_raw: [>=N, n]; k, a: [>=N, n] (k in / out, a out); u, o: [>=N, E];
// state: [S, n, E]
template <ScanAlgorithm Algo, class Space>
void ddts_gla_scan(const Space& space, const View2<const float, Space>& q,
                   const View2<const float, Space>& s_raw,
                   const View2<const float, Space>& tau_raw, const View2<float, Space>& k,
                   const View2<float, Space>& a, const View2<const float, Space>& u,
                   const View3<float, Space>& state, const SeqBatch<Space>& batch,
                   const View2<float, Space>& o, float scale, float normalize_eps,
                   GlaScanWorkspace<Space, float>& ws) {
  const int nt = batch.num_tokens;
  detail::check_ddts_gla_scan_args(q, s_raw, tau_raw, k, a, state, batch, o, u.extent(1));
  detail::check_extent_at_least(u, 0, nt, "ddts_gla_scan: u");
  detail::ddts_gla_scan_checked<Algo>(space, q, s_raw, tau_raw, k, a, u, state, batch, o, scale,
                                      normalize_eps, ws);
}

namespace detail {
/// ddts_gla_scan_gated's checks of its operands.
template <class Space, StorageType W>
void check_ddts_gla_scan_gated_args(
    const View2<const float, Space>& q, const View2<const float, Space>& s_raw,
    const View2<const float, Space>& tau_raw, const View2<float, Space>& k,
    const View2<float, Space>& a, const View2<const float, Space>& x,
    const ChannelGateWeights<W, Space>& cw, const View2<const float, Space>& z_r,
    const View2<float, Space>& z_e, const View2<float, Space>& u, const View3<float, Space>& state,
    const SeqBatch<Space>& batch, const View2<float, Space>& o) {
  const int nt = batch.num_tokens;
  check_ddts_gla_scan_args(q, s_raw, tau_raw, k, a, state, batch, o, x.extent(1));
  check_extent(u, 1, x.extent(1), "ddts_gla_scan_gated: u");
  check_extent_at_least(u, 0, nt, "ddts_gla_scan_gated: u");
  check_extent_at_least(x, 0, nt, "ddts_gla_scan_gated: x");
  check_linear_args<Space, W>(z_r, cw.up, z_e, nt);
  check_extent(z_e, 1, x.extent(1), "ddts_gla_scan_gated: z_e");
}

/// ddts_gla_scan_gated after its checks, for at least one token. With `gate`, where the fused
/// CUDA kernel runs, o gets the gated norm's input instead (ScanOutputGate): returns true then
/// (the gate applied), else false.
template <ScanAlgorithm Algo, class Space, StorageType W>
bool ddts_gla_scan_gated_checked(
    const Space& space, const View2<const float, Space>& q, const View2<const float, Space>& s_raw,
    const View2<const float, Space>& tau_raw, const View2<float, Space>& k,
    const View2<float, Space>& a, const View2<const float, Space>& x,
    const ChannelGateWeights<W, Space>& cw, const View2<const float, Space>& z_r,
    const View2<float, Space>& z_e, const View2<float, Space>& u, const View3<float, Space>& state,
    const SeqBatch<Space>& batch, const View2<float, Space>& o, float scale, float normalize_eps,
    GlaScanWorkspace<Space, float>& ws,
    const backend::cuda::ScanOutputGate<Space>* gate = nullptr) {
  using CV = View2<const float, Space>;
  if (backend::cuda::ddts_gla_scan_gated_cuda(space, q, CV(k), s_raw, tau_raw, x, z_r, cw.up.w,
                                              cw.up.b, state, batch, o, scale, normalize_eps, gate))
    return gate != nullptr;
  channel_gate_up_checked(space, x, cw, z_r, z_e, u, batch.num_tokens);
  ddts_gla_scan_checked<Algo>(space, q, s_raw, tau_raw, k, a, CV(u), state, batch, o, scale,
                              normalize_eps, ws);
  return false;
}
}  // namespace detail

/// ddts_gla_scan with u = sigmoid(z_r W2^T + b2) * x, the channel gate after its
/// down-projection z_r = x W1^T (SPEC 2 steps 4-7): the same results as
/// channel_gate_up(x, cw, z_r, z_e, u) then ddts_gla_scan(..., u, ...). On Kokkos::Cuda a
/// decode-sized call with bf16 / fp16 gate weights (R <= 64) is one kernel that computes u as
/// it loads each token (then z_e, u, a and k are left as they were); otherwise the two ops run.
// x, u, z_e, o: [>=N, E]; z_r: [>=N, R]; the rest as ddts_gla_scan
template <ScanAlgorithm Algo, class Space, StorageType W>
void ddts_gla_scan_gated(const Space& space, const View2<const float, Space>& q,
                         const View2<const float, Space>& s_raw,
                         const View2<const float, Space>& tau_raw, const View2<float, Space>& k,
                         const View2<float, Space>& a, const View2<const float, Space>& x,
                         const ChannelGateWeights<W, Space>& cw,
                         const View2<const float, Space>& z_r, const View2<float, Space>& z_e,
                         const View2<float, Space>& u, const View3<float, Space>& state,
                         const SeqBatch<Space>& batch, const View2<float, Space>& o, float scale,
                         float normalize_eps, GlaScanWorkspace<Space, float>& ws) {
  detail::check_ddts_gla_scan_gated_args(q, s_raw, tau_raw, k, a, x, cw, z_r, z_e, u, state,
                                         batch, o);
  if (batch.num_tokens == 0) return;
  detail::ddts_gla_scan_gated_checked<Algo>(space, q, s_raw, tau_raw, k, a, x, cw, z_r, z_e, u,
                                            state, batch, o, scale, normalize_eps, ws);
}

/// The mixer's gated RMSNorm after the scan (SPEC 2 steps 8-9), y = RMSNorm(z) * w with
/// z = (o + xs * w_res) * silu(g): gated_rms_norm's operands but o, the scan's output.
template <class Space>
struct GatedNorm {
  View2<const float, Space> xs;     ///< [>=N, E]
  View1<const float, Space> w_res;  ///< [E]; empty: no residual term
  View2<const float, Space> g;      ///< [>=N, E]
  View1<const float, Space> w;      ///< [E]
  View2<float, Space> out;          ///< [>=N, E]
  float eps = 0.f;
  /// The caller reads y only through the returned NormedRows (not out, nor o): the norm may
  /// then be left pending.
  bool defer = false;
};

/// ddts_gla_scan_gated, then the gated RMSNorm `norm` of its output o (gated_rms_norm); returns
/// the rows the output projection reads, {norm.out}. With norm.defer, on Kokkos::Cuda, at 1 to
/// 2 tokens (backend::cuda::kGemvNormInMaxTokens), where the fused decode kernel runs and
/// CudaContext::gemv_norm_in and scan_output_gate are on: the kernel writes z to o (no norm
/// kernel), returning {o, norm.w, norm.eps, norm.out} with the norm pending: the output
/// projection's GEMV takes it (linear_residual_norm), or it is written to out
/// (detail::materialize).
// norm.out must not overlap o; the rest as ddts_gla_scan_gated
template <ScanAlgorithm Algo, class Space, StorageType W>
NormedRows<Space> ddts_gla_scan_gated_norm(
    const Space& space, const View2<const float, Space>& q, const View2<const float, Space>& s_raw,
    const View2<const float, Space>& tau_raw, const View2<float, Space>& k,
    const View2<float, Space>& a, const View2<const float, Space>& x,
    const ChannelGateWeights<W, Space>& cw, const View2<const float, Space>& z_r,
    const View2<float, Space>& z_e, const View2<float, Space>& u, const View3<float, Space>& state,
    const SeqBatch<Space>& batch, const View2<float, Space>& o, float scale, float normalize_eps,
    GlaScanWorkspace<Space, float>& ws, const GatedNorm<Space>& norm) {
  using CV = View2<const float, Space>;
  namespace bc = backend::cuda;
  const int nt = batch.num_tokens;
  detail::check_ddts_gla_scan_gated_args(q, s_raw, tau_raw, k, a, x, cw, z_r, z_e, u, state,
                                         batch, o);
  detail::check_gated_rms_norm_args<float, Space>(CV(o), norm.xs, norm.w_res, norm.g, norm.w,
                                                  norm.out, nt);
  if (nt == 0) return NormedRows<Space>(CV(norm.out));
  const bc::ScanOutputGate<Space> gate{norm.xs, norm.w_res, norm.g};
  const bool pend = norm.defer && nt <= bc::kGemvNormInMaxTokens &&
                    bc::gemv_fusion_enabled(bc::GemvFusion::GatedNormIn);
  if (detail::ddts_gla_scan_gated_checked<Algo>(space, q, s_raw, tau_raw, k, a, x, cw, z_r, z_e,
                                                u, state, batch, o, scale, normalize_eps, ws,
                                                pend ? &gate : nullptr))
    return NormedRows<Space>(CV(o), norm.w, norm.eps, norm.out);
  gated_rms_norm(space, CV(o), norm.xs, norm.w_res, norm.g, norm.w, norm.out, nt, norm.eps);
  return NormedRows<Space>(CV(norm.out));
}

}  // namespace rodimus
