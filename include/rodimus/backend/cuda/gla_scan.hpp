// The GLA scan on Kokkos::Cuda: routes ops/gla_scan.hpp to the tensor-core chunk kernel of
// gla_chunk_scan.cuh when the shapes fit it (compiled only by a CUDA compiler).
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "rodimus/backend/cuda/gemv.hpp"
#include "rodimus/backend/exec_space_traits.hpp"
#include "rodimus/core/dtype.hpp"
#include "rodimus/core/seq_batch.hpp"
#include "rodimus/core/views.hpp"

#if RODIMUS_CUDA_KERNELS
#include "rodimus/backend/cuda/context.hpp"
#include "rodimus/backend/cuda/dependent_launch.cuh"
#include "rodimus/backend/cuda/gla_chunk_scan.cuh"
#endif

namespace rodimus::backend::cuda {

/// The gate of the Rodimus mixer's gated RMSNorm (SPEC 2 step 8) for the decode scan to apply
/// to its output: o becomes z = (o + xs * w_res) * silu(g), the norm's input.
// xs, g: [>=N, E]; w_res: [E] (empty: no residual term)
template <class Space>
struct ScanOutputGate {
  View2<const float, Space> xs;
  View1<const float, Space> w_res;
  View2<const float, Space> g;
};

/// True when the tensor-core kernel takes a state of height `n` and width `e`.
inline bool gla_chunk_scan_supports(int n, std::int64_t e) {
  return (n == 32 || n == 64 || n == 128) && e > 0 && e % 64 == 0;
}

/// Runs the scan of `batch` with the tensor-core chunk kernel (fp32 inputs; split-precision
/// operands, about fp32 accuracy, or bf16 ones under OperandPrecision::Bf16, see
/// CudaContext::operands) on `space`'s stream and returns true, when `Space` is
/// Kokkos::Cuda and the shapes fit the kernel; returns false (nothing done) otherwise.
/// Long sequences (prefill) take the kernel's split schedule (chunks of 32: two CTAs per
/// multiprocessor at n <= 64, faster than 64 in bench_gla_chunk_scan) with `scratch`, grown
/// here when needed, as its workspace; decode steps the recurrent schedule and the rest the
/// fused one (nothing allocated, so CUDA graphs can record them).
// q, k, a: [>=N, n]; u, o: [>=N, E]; state: [S, n, E]
template <class Space>
bool gla_scan_cuda([[maybe_unused]] const Space& space,
                   [[maybe_unused]] const View2<const float, Space>& q,
                   [[maybe_unused]] const View2<const float, Space>& k,
                   [[maybe_unused]] const View2<const float, Space>& a,
                   [[maybe_unused]] const View2<const float, Space>& u,
                   [[maybe_unused]] const View3<float, Space>& state,
                   [[maybe_unused]] const SeqBatch<Space>& batch,
                   [[maybe_unused]] const View2<float, Space>& o, [[maybe_unused]] float scale,
                   [[maybe_unused]] View1<float, Space>& scratch) {
#if RODIMUS_CUDA_KERNELS
  if constexpr (is_cuda_space_v<Space>) {
    const int n = static_cast<int>(q.extent(1));
    const auto e = static_cast<std::int64_t>(u.extent(1));
    // the kernel takes dense rows (leading dimension = width) and a contiguous [S, n, E] state
    auto st = [](const auto& v, int d) { return static_cast<std::int64_t>(v.stride(d)); };
    auto dense = [&](const auto& v) {
      return st(v, 1) == 1 && st(v, 0) == static_cast<std::int64_t>(v.extent(1));
    };
    if (!gla_chunk_scan_supports(n, e) || !dense(q) || !dense(k) || !dense(a) || !dense(u) ||
        !dense(o) || st(state, 2) != 1 || st(state, 1) != e || st(state, 0) != std::int64_t(n) * e)
      return false;
    GlaChunkScanOptions opts;
    opts.slots = batch.slot.data();
    opts.scale = scale;
    opts.total_tokens = batch.num_tokens;
    const cudaStream_t stream = space.cuda_stream();
    const int B = batch.num_seqs, E = static_cast<int>(e);
    Kokkos::Profiling::pushRegion("rodimus::gla_scan.cuda_chunk");  // for profilers
    auto go = [&]<ScanPrecision P>() {
      // chunks of 32: the split schedule's (two CTAs per SM at n <= 64) and, with fp32 inputs
      // (u split too), the largest the fused schedule's shared memory allows below n = 128
      const GlaChunkScanPlan plan = gla_chunk_scan_plan<32, P, float>(B, 0, n, E, true, opts);
      if (plan.workspace_bytes > 0) {  // long sequences: the split schedule's workspace
        rodimus::detail::ensure_length(scratch, (plan.workspace_bytes + 3) / 4,
                                       "rodimus::gla.cuda_split");
        opts.workspace = scratch.data();
        opts.workspace_bytes = scratch.extent(0) * sizeof(float);
      }
      if (n == 128 && plan.workspace_bytes == 0 && !plan.recurrent)  // fused, n = 128: C = 16
        gla_chunk_scan<float, float, 16, P>(q.data(), k.data(), a.data(), u.data(), state.data(),
                                            o.data(), B, 0, n, E, stream, batch.offsets.data(),
                                            opts);
      else
        gla_chunk_scan<float, float, 32, P>(q.data(), k.data(), a.data(), u.data(), state.data(),
                                            o.data(), B, 0, n, E, stream, batch.offsets.data(),
                                            opts);
    };
    auto& ctx = detail::CudaContext::get();
    if (ctx.operands == OperandPrecision::Bf16)
      go.template operator()<ScanPrecision::Bf16>();
    else
      go.template operator()<ScanPrecision::Split>();
    // plain launches that write the states: a decode scan next reads them after its wait
    ctx.launches.launched(stream, detail::LaunchOrder::NeverTriggers, {state.data()});
    Kokkos::Profiling::popRegion();
    return true;
  }
#endif
  return false;
}

#if RODIMUS_CUDA_KERNELS
namespace detail {

/// The recurrent kernel's u as the channel gate of the mixer (SPEC 2 step 4) from its
/// down-projection z_r = x W1^T: u[r, e] = sigmoid(z_r[r] . W2[e] + b2[e]) * x[r, e], with the
/// operations (and their order) of the decode GEMV's short-row kernel with the sigmoid
/// product as epilogue (gemv.hpp, gemv_thin_kernel): per 8-wide group an fmaf chain, the
/// groups summed by the butterfly of that kernel's shuffles, the bias added last. Row e of
/// W2 (R <= 64 weights) is loaded before the kernel waits; z_r of each token goes through
/// shared memory.
template <class W>
struct ChannelGateU {
  static constexpr int kShared = 64;
  static constexpr int kMaxGroups = kShared / 8;
  const W* w;       // [E, R]
  const float* b;   // [E] or null
  const float* zr;  // [tokens, R], row stride ldzr
  std::int64_t ldzr;
  const float* x;  // [tokens, E], row stride ldx
  std::int64_t ldx;
  int r;    // R, a multiple of 8 up to kShared
  int tpr;  // lanes of the short-row kernel's reduction: the power of two covering r / 8
  uint4 wr[kMaxGroups] = {};
  float be = 0.f;

  __device__ void prefetch(int e, bool col) {
    if (!col) return;
#pragma unroll
    for (int g = 0; g < kMaxGroups; ++g)
      if (g < r / 8) wr[g] = __ldg(reinterpret_cast<const uint4*>(w + std::int64_t(e) * r) + g);
    be = b ? b[e] : 0.f;
  }
  __device__ void stage(std::int64_t t, float* su) const {
    for (int i = static_cast<int>(threadIdx.x); i < r; i += 128) su[i] = zr[t * ldzr + i];
  }
  __device__ float operator()(std::int64_t t, int e, int, const float* su) const {
    const int groups = r / 8;
    float v[kMaxGroups];
#pragma unroll
    for (int g = 0; g < kMaxGroups; ++g) {
      float acc = 0.f;
      if (g < groups) {
        float wf[8];
        widen8<W>(wr[g], wf);
#pragma unroll
        for (int i = 0; i < 8; ++i) acc = fmaf(wf[i], su[8 * g + i], acc);
      }
      v[g] = acc;
    }
    // lane 0 of the short-row kernel's shuffle reduction over tpr lanes
#pragma unroll
    for (int o = kMaxGroups / 2; o > 0; o /= 2)
      if (o < tpr)
#pragma unroll
        for (int l = 0; l < o; ++l) v[l] = v[l] + v[l + o];
    const float z = v[0] + be;
    return rodimus::detail::sigmoid(z) * x[t * ldx + e];
  }
};

/// The recurrent kernel's output with the gate of the mixer's gated RMSNorm applied (SPEC 2
/// step 8): o[r, e] = (v + xs[r, e] w_res[e]) silu(g[r, e]), gated_rms_norm's z (rms_norm.hpp's
/// kernel: the same operations), the norm itself left to the output projection's GEMV. w_res
/// (when the model has it) is loaded before the kernel waits, xs and g of each token as the
/// token starts.
struct GatedOut {
  float* o;  // [tokens, E]
  const float* xs;  // [tokens, E], row stride ldxs; null: no residual term
  std::int64_t ldxs;
  const float* w_res;  // [E]
  const float* g;      // [tokens, E], row stride ldg
  std::int64_t ldg;
  float wr = 0.f, xv = 0.f, gv = 0.f;

  __device__ void prefetch(int e, bool col) {
    if (col && xs) wr = w_res[e];
  }
  __device__ void fetch(std::int64_t r, int e) {
    if (xs) xv = xs[r * ldxs + e];
    gv = g[r * ldg + e];
  }
  __device__ void operator()(std::int64_t r, int e, int E, float v) const {
    float z = v;
    if (xs) z += xv * wr;
    o[r * E + e] = z * rodimus::detail::silu(gv);
  }
};

/// ddts_gla_scan_cuda's launch with the u policy `uin` and the output policy `out` writing
/// o's rows (the checks of q, k, the gates, o and the state done here; the policies' other
/// operands checked by the caller).
template <class Space, class UIn, class Out = RecurrentOut<float>>
bool ddts_gla_scan_launch(const Space& space, const View2<const float, Space>& q,
                          const View2<const float, Space>& k,
                          const View2<const float, Space>& s_raw,
                          const View2<const float, Space>& tau_raw, const UIn& uin,
                          const View3<float, Space>& state, const SeqBatch<Space>& batch,
                          const View2<float, Space>& o, float scale, float eps,
                          Out out = {nullptr}) {
  const int n = static_cast<int>(q.extent(1));
  const auto e = static_cast<std::int64_t>(o.extent(1));
  auto st = [](const auto& v, int d) { return static_cast<std::int64_t>(v.stride(d)); };
  auto dense = [&](const auto& v) {
    return st(v, 1) == 1 && st(v, 0) == static_cast<std::int64_t>(v.extent(1));
  };
  const int B = batch.num_seqs, E = static_cast<int>(e);
  out.o = o.data();
  if (!gla_chunk_scan_supports(n, e) || !dense(q) || !dense(k) || !dense(s_raw) ||
      !dense(tau_raw) || !dense(o) || st(state, 2) != 1 || st(state, 1) != e ||
      st(state, 0) != std::int64_t(n) * e ||
      std::int64_t(batch.num_tokens) > std::int64_t(kRecurrentTokens) * B)
    return false;
  // A programmatic dependent launch: the state loads overlap the kernel before (the GEMV,
  // which lets its dependents start early). The kernel itself lets its successor start only
  // as it ends. Where a kernel may still be writing these states (the launch record: two
  // scans in a row), a normal launch: the states are read only once that kernel's writes are
  // visible.
  auto& ctx = CudaContext::get();
  const cudaStream_t stream = space.cuda_stream();
  const bool after_writer = !ctx.launches.settled(stream, state.data()) || !ctx.dependent_scan;
  const CudaLaunch plain{stream, "rodimus::backend::cuda::ddts_gla_scan"};
  auto launch = [&](auto kernel, dim3 grid, dim3 block, int shared, const auto&... args) {
    if (after_writer) {
      plain(kernel, grid, block, shared, args...);
      ctx.launches.launched(stream, LaunchOrder::NeverTriggers, {state.data()});
    } else {
      launch_dependent(kernel, grid, block, static_cast<std::size_t>(shared), stream,
                       DependentLaunch("rodimus::backend::cuda::ddts_gla_scan",
                                       LaunchOrder::NeverTriggers, {state.data()}),
                       args...);
    }
  };
  const int groups = recurrent_row_groups(B, E, multiprocessors());
  auto go = [&]<int N>() {
    const DdtsRecurrentInputs<N> in{q.data(), k.data(), s_raw.data(), tau_raw.data(), eps};
    launch_recurrent<N>(launch, groups, in, uin, state.data(), out, batch.offsets.data(),
                        batch.slot.data(), B, 0, E, scale);
  };
  Kokkos::Profiling::pushRegion("rodimus::ddts_gla_scan.cuda_recurrent");  // for profilers
  if (n == 32) go.template operator()<32>();
  if (n == 64) go.template operator()<64>();
  if (n == 128) go.template operator()<128>();
  Kokkos::Profiling::popRegion();
  return true;
}

}  // namespace detail
#endif

/// The DDTS gates and the scan in one kernel for decode-sized calls (up to 4 tokens per
/// sequence, the calls the recurrent schedule takes): the recurrent kernel computes each
/// token's decays and gated, normalised key from s_raw, tau_raw and k (ops/ddts_gate.hpp's
/// formulas) as it loads them, so the gates need no launch of their own and write nothing.
/// Returns false (nothing done) off Kokkos::Cuda, for other shapes, strided operands or longer
/// calls.
// q, k, s_raw, tau_raw: [>=N, n]; u, o: [>=N, E]; state: [S, n, E]
template <class Space>
bool ddts_gla_scan_cuda([[maybe_unused]] const Space& space,
                        [[maybe_unused]] const View2<const float, Space>& q,
                        [[maybe_unused]] const View2<const float, Space>& k,
                        [[maybe_unused]] const View2<const float, Space>& s_raw,
                        [[maybe_unused]] const View2<const float, Space>& tau_raw,
                        [[maybe_unused]] const View2<const float, Space>& u,
                        [[maybe_unused]] const View3<float, Space>& state,
                        [[maybe_unused]] const SeqBatch<Space>& batch,
                        [[maybe_unused]] const View2<float, Space>& o, [[maybe_unused]] float scale,
                        [[maybe_unused]] float eps) {
#if RODIMUS_CUDA_KERNELS
  if constexpr (is_cuda_space_v<Space>) {
    if (u.stride(1) != 1 || u.stride(0) != u.extent(1)) return false;
    return detail::ddts_gla_scan_launch(space, q, k, s_raw, tau_raw,
                                        detail::RecurrentU<float>{u.data()}, state, batch, o, scale,
                                        eps);
  }
#endif
  return false;
}

/// ddts_gla_scan_cuda with u = sigmoid(z_r W2^T + b2) * x, the channel gate's up-projection and
/// product computed in the recurrent kernel (ChannelGateU): bf16 / fp16 W2 of R <= 64 (R % 8
/// == 0), CudaContext::scan_channel_gate on. With `gate`, o gets the gated norm's input
/// z = (o + xs * w_res) * silu(g) instead (GatedOut; unit-stride rows of xs, g and w_res).
/// False (nothing done) otherwise.
// x: [>=N, E]; z_r: [>=N, R]; w2: [E, R]; b2: [E] or empty
template <class Space, StorageType W>
bool ddts_gla_scan_gated_cuda([[maybe_unused]] const Space& space,
                              [[maybe_unused]] const View2<const float, Space>& q,
                              [[maybe_unused]] const View2<const float, Space>& k,
                              [[maybe_unused]] const View2<const float, Space>& s_raw,
                              [[maybe_unused]] const View2<const float, Space>& tau_raw,
                              [[maybe_unused]] const View2<const float, Space>& x,
                              [[maybe_unused]] const View2<const float, Space>& z_r,
                              [[maybe_unused]] const View2<const W, Space>& w2,
                              [[maybe_unused]] const View1<const float, Space>& b2,
                              [[maybe_unused]] const View3<float, Space>& state,
                              [[maybe_unused]] const SeqBatch<Space>& batch,
                              [[maybe_unused]] const View2<float, Space>& o,
                              [[maybe_unused]] float scale, [[maybe_unused]] float eps,
                              [[maybe_unused]] const ScanOutputGate<Space>* gate = nullptr) {
#if RODIMUS_CUDA_KERNELS
  if constexpr (is_cuda_space_v<Space> && !std::is_same_v<W, float>) {
    const auto r = static_cast<std::int64_t>(w2.extent(1));
    if (!detail::CudaContext::get().scan_channel_gate || r % 8 != 0 ||
        r > detail::ChannelGateU<W>::kShared || x.stride(1) != 1 || z_r.stride(1) != 1 ||
        w2.stride(1) != 1 || w2.stride(0) != static_cast<std::size_t>(r) ||
        (b2.extent(0) > 0 && b2.stride(0) != 1) || !aligned16(w2.data()))
      return false;
    detail::ChannelGateU<W> uin{};
    uin.w = w2.data();
    uin.b = b2.extent(0) > 0 ? b2.data() : nullptr;
    uin.zr = z_r.data();
    uin.ldzr = static_cast<std::int64_t>(z_r.stride(0));
    uin.x = x.data();
    uin.ldx = static_cast<std::int64_t>(x.stride(0));
    uin.r = static_cast<int>(r);
    uin.tpr = 1;
    while (uin.tpr < uin.r / 8) uin.tpr *= 2;
    if (!gate)
      return detail::ddts_gla_scan_launch(space, q, k, s_raw, tau_raw, uin, state, batch, o,
                                          scale, eps);
    const bool res = gate->w_res.extent(0) > 0;
    if (gate->g.stride(1) != 1 || (res && (gate->xs.stride(1) != 1 || gate->w_res.stride(0) != 1)))
      return false;
    detail::GatedOut out{};
    out.xs = res ? gate->xs.data() : nullptr;
    out.ldxs = res ? static_cast<std::int64_t>(gate->xs.stride(0)) : 0;
    out.w_res = res ? gate->w_res.data() : nullptr;
    out.g = gate->g.data();
    out.ldg = static_cast<std::int64_t>(gate->g.stride(0));
    return detail::ddts_gla_scan_launch(space, q, k, s_raw, tau_raw, uin, state, batch, o, scale,
                                        eps, out);
  }
#endif
  return false;
}

}  // namespace rodimus::backend::cuda
