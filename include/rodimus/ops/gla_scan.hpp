// The gated linear attention scan (SPEC 2 step 7, SPEC 2.1): algorithm tags, and the dispatch
// from a tag to its implementation (one specialisation per tag, CUTLASS-style).
#pragma once

#include <algorithm>
#include <type_traits>

#include "rodimus/backend/cuda/gla_scan.hpp"
#include "rodimus/backend/host/gla_chunk_scan.hpp"
#include "rodimus/backend/host/gla_scan.hpp"
#include "rodimus/ops/impl/gla_chunked.hpp"
#include "rodimus/ops/impl/gla_recurrent.hpp"

namespace rodimus {

/// Token-by-token recurrence: O(T n E) with no extra memory; the decode path.
/// On host spaces RecurrentScan runs backend/host/gla_scan.hpp (the exact recurrence,
/// register-blocked for prefill, streamed for decode) and ChunkedScan<C> runs
/// backend/host/gla_chunk_scan.hpp (chunks of C tokens as matrix products) for prefill, the
/// recurrent kernel for decode (no sequence longer than 4 tokens); on Kokkos::Cuda both
/// run the tensor-core chunk kernel of backend/cuda/ where its shapes fit (n = 32, 64, 128 and
/// E a multiple of 64); elsewhere, the generic Kokkos kernels.
struct RecurrentScan {};

/// Chunkwise-parallel scan with chunks of `C` tokens (16..128): the prefill/training path.
template <int C>
struct ChunkedScan {
  static_assert(C >= 1 && C <= 256, "ChunkedScan: chunk size must be in [1, 256]");
  static constexpr int chunk_size = C;
};

namespace detail {
template <class>
inline constexpr bool dependent_false = false;
template <class T>
struct is_chunked_scan : std::false_type {};
template <int C>
struct is_chunked_scan<ChunkedScan<C>> : std::true_type {};
}  // namespace detail

/// A scan algorithm tag rodimus knows how to run.
template <class A>
concept ScanAlgorithm = std::is_same_v<A, RecurrentScan> || detail::is_chunked_scan<A>::value;

/// Scratch any scan algorithm may use; one per thread of work, reused across calls. Real is
/// the scan's arithmetic type (float; double for the fp64 training forward).
template <class Space, class Real = float>
struct GlaScanWorkspace {
  View2<Real, Space> decay;        // [N, n] exp(a), recurrent path
  View2<float, Space> chunk_prep;  // [chunks, gla_chunk_prep_floats] host chunk path
  View2<int, Space> chunk_first;   // [B + 1, 1] host chunk path: first chunk of each sequence
  detail::GlaChunkWorkspace<Space, Real> chunk;
  View1<float, Space> cuda_split;      // the CUDA chunk kernel's split-schedule workspace (prefill)
  View2<float, Space> decode_partial;  // [(groups - 1) N, E] host decode: row groups' parts of o
  View1<int, Space> decode_done;       // [B] host decode: zero counters between calls
  /// Host decode: groups of state rows per sequence (threads of one sequence split its rows);
  /// 0 = chosen from the batch size and the space's concurrency (gla_scan_decode_row_groups).
  int decode_row_groups = 0;
};

namespace detail {

/// Runs the scan with the host kernel (backend/host/gla_scan.hpp) when `Space` is a host space
/// and the state height fits it; returns false (nothing done) otherwise.
template <class Space>
bool gla_scan_host(const Space& space, const View2<const float, Space>& q,
                   const View2<const float, Space>& k, const View2<const float, Space>& a,
                   const View2<const float, Space>& u, const View3<float, Space>& state,
                   const SeqBatch<Space>& batch, const View2<float, Space>& o, float scale,
                   GlaScanWorkspace<Space>& ws) {
  if constexpr (is_host_space_v<Space>) {
    namespace hb = backend::host;
    const int n = static_cast<int>(q.extent(1));
    const auto e = static_cast<std::int64_t>(u.extent(1));
    // the kernel takes unit-stride rows and a contiguous [S, n, E] state
    auto st = [](const auto& v, int d) { return static_cast<std::int64_t>(v.stride(d)); };
    if (!hb::gla_scan_host_supports(n) || st(state, 0) != std::int64_t(n) * e ||
        st(state, 1) != e || st(state, 2) != 1 || st(q, 1) != 1 || st(k, 1) != 1 || st(a, 1) != 1 ||
        st(u, 1) != 1 || st(o, 1) != 1)
      return false;
    hb::GlaScanArgs args{};
    args.q = q.data();
    args.k = k.data();
    args.u = u.data();
    args.o = o.data();
    args.state = state.data();
    args.ldq = q.stride(0);
    args.ldk = k.stride(0);
    args.ldu = u.stride(0);
    args.ldo = o.stride(0);
    args.n = n;
    args.e = static_cast<int>(e);
    args.scale = scale;
    args.offsets = batch.offsets.data();
    args.slot = batch.slot.data();
    args.num_seqs = batch.num_seqs;
    if (batch.max_len <= hb::kScanDecodeTokens) {
      // decode: (sequence, row group) items over all columns, exp(a) taken in the items
      const int groups = ws.decode_row_groups > 0 ? std::min(ws.decode_row_groups, n)
                                                  : hb::gla_scan_decode_row_groups(
                                                        n, batch.num_seqs, space.concurrency());
      args.log_decay = a.data();
      args.ldl = a.stride(0);
      args.row_groups = groups;
      if (groups > 1) {
        ensure_capacity(ws.decode_partial, std::size_t(groups - 1) * batch.num_tokens, e,
                        "rodimus::gla.decode_partial");
        if (ws.decode_done.extent(0) < std::size_t(batch.num_seqs)) {
          note_reallocation();
          ws.decode_done = View1<int, Space>("rodimus::gla.decode_done", batch.num_seqs);
        }
        args.partial = ws.decode_partial.data();
        args.ldp = static_cast<std::int64_t>(ws.decode_partial.stride(0));
        args.done = ws.decode_done.data();
      }
      space.fence();
      detail::host_items_for(space, RODIMUS_KERNEL_LABEL("rodimus::gla_scan.host_decode"),
                             hb::gla_scan_items(args),
                             [=](const std::int64_t item) { hb::gla_scan_item(args, item); });
      return true;
    }
    ensure_capacity(ws.decay, batch.num_tokens, q.extent(1), "rodimus::gla.decay");
    args.decay = ws.decay.data();
    args.ldd = ws.decay.stride(0);
    args.token_block = hb::kScanTokenBlock;
    args.tiles_per_item = hb::gla_scan_tiles_per_item(batch.max_len);
    constexpr int kExpBlock = 64;  // tokens per work item of the exp pass
    const float* ap = a.data();
    const std::int64_t lda = a.stride(0);
    float* dp = ws.decay.data();
    const std::int64_t ldd = args.ldd;
    const std::int64_t nt = batch.num_tokens;
    space.fence();
    detail::host_items_for(space, RODIMUS_KERNEL_LABEL("rodimus::gla_decay.host"),
                           (nt + kExpBlock - 1) / kExpBlock, [=](const std::int64_t blk) {
                             hb::gla_decay_rows(ap, lda, dp, ldd, n, blk * kExpBlock,
                                                std::min(nt, (blk + 1) * kExpBlock));
                           });
    detail::host_items_for(space, RODIMUS_KERNEL_LABEL("rodimus::gla_scan.host"),
                           hb::gla_scan_items(args),
                           [=](const std::int64_t item) { hb::gla_scan_item(args, item); });
    return true;
  }
  return false;
}

/// Runs the scan with the host chunk kernel (backend/host/gla_chunk_scan.hpp, chunks of `c`
/// tokens) when `Space` is a host space, the CPU takes the AVX-512 build, the shapes fit it and
/// the call is a prefill (longest sequence > kScanDecodeTokens: decode stays recurrent);
/// returns false (nothing done) otherwise.
template <class Space>
bool gla_chunk_scan_host(const Space& space, int c, const View2<const float, Space>& q,
                         const View2<const float, Space>& k, const View2<const float, Space>& a,
                         const View2<const float, Space>& u, const View3<float, Space>& state,
                         const SeqBatch<Space>& batch, const View2<float, Space>& o, float scale,
                         GlaScanWorkspace<Space>& ws) {
  if constexpr (is_host_space_v<Space>) {
    namespace hb = backend::host;
    const int n = static_cast<int>(q.extent(1));
    const auto e = static_cast<std::int64_t>(u.extent(1));
    auto st = [](const auto& v, int d) { return static_cast<std::int64_t>(v.stride(d)); };
    // the AVX-512 build only: the AVX2 and generic builds of the chunk kernel were not
    // measured against the recurrent host kernel, which they would replace
    if (c <= 0 || batch.max_len <= hb::kScanDecodeTokens || hb::host_isa() != hb::HostIsa::Avx512 ||
        !hb::gla_chunk_scan_host_supports(n, c) || st(state, 0) != std::int64_t(n) * e ||
        st(state, 1) != e || st(state, 2) != 1 || st(q, 1) != 1 || st(k, 1) != 1 || st(a, 1) != 1 ||
        st(u, 1) != 1 || st(o, 1) != 1)
      return false;
    ensure_capacity(ws.chunk_first, batch.num_seqs + 1, 1, "rodimus::gla.chunk_first");
    const int chunks =
        hb::gla_chunk_index(batch.offsets.data(), batch.num_seqs, c, ws.chunk_first.data());
    const std::int64_t ld_prep = hb::gla_chunk_prep_floats(n, c);
    ensure_capacity(ws.chunk_prep, std::max(chunks, 1), ld_prep, "rodimus::gla.chunk_prep");
    hb::GlaChunkArgs args{};
    args.q = q.data();
    args.k = k.data();
    args.a = a.data();
    args.u = u.data();
    args.o = o.data();
    args.state = state.data();
    args.ldq = q.stride(0);
    args.ldk = k.stride(0);
    args.lda = a.stride(0);
    args.ldu = u.stride(0);
    args.ldo = o.stride(0);
    args.n = n;
    args.e = static_cast<int>(e);
    args.scale = scale;
    args.offsets = batch.offsets.data();
    args.slot = batch.slot.data();
    args.num_seqs = batch.num_seqs;
    args.chunk = c;
    args.first_chunk = ws.chunk_first.data();
    args.prep = ws.chunk_prep.data();
    args.ld_prep = static_cast<std::int64_t>(ws.chunk_prep.stride(0));
    args.group_cols = hb::kChunkGroupCols;
    space.fence();
    detail::host_items_for(space, RODIMUS_KERNEL_LABEL("rodimus::gla_chunk_prep.host"), chunks,
                           [=](const std::int64_t ci) { hb::gla_chunk_prep(args, ci); });
    detail::host_items_for(space, RODIMUS_KERNEL_LABEL("rodimus::gla_chunk_scan.host"),
                           hb::gla_chunk_items(args),
                           [=](const std::int64_t item) { hb::gla_chunk_item(args, item); });
    return true;
  }
  return false;
}

/// Primary template: an algorithm without an implementation fails to compile, loudly.
template <class Algo, class Space>
struct GlaScanImpl {
  static_assert(dependent_false<Algo>, "rodimus::gla_scan: no implementation for this algorithm");
};

// The fast paths (host kernels, CUDA chunk kernel) serve both algorithm tags, in fp32 only;
// false when none takes the call (Real = double runs the generic kernels). `chunk` > 0 (a
// ChunkedScan's C) sends host prefill to the host chunk kernel; 0 (RecurrentScan) and decode
// take the recurrent host kernel.
template <class Space, class Real>
bool gla_scan_fast(const Space& space, int chunk, const View2<const Real, Space>& q,
                   const View2<const Real, Space>& k, const View2<const Real, Space>& a,
                   const View2<const Real, Space>& u, const View3<Real, Space>& state,
                   const SeqBatch<Space>& batch, const View2<Real, Space>& o, Real scale,
                   GlaScanWorkspace<Space, Real>& ws) {
  if constexpr (std::is_same_v<Real, float>) {
    if (gla_chunk_scan_host(space, chunk, q, k, a, u, state, batch, o, scale, ws)) return true;
    if (gla_scan_host(space, q, k, a, u, state, batch, o, scale, ws)) return true;
    if (backend::cuda::gla_scan_cuda(space, q, k, a, u, state, batch, o, scale, ws.cuda_split))
      return true;
  }
  return false;
}

template <class Space>
struct GlaScanImpl<RecurrentScan, Space> {
  template <class Real>
  static void run(const Space& space, const View2<const Real, Space>& q,
                  const View2<const Real, Space>& k, const View2<const Real, Space>& a,
                  const View2<const Real, Space>& u, const View3<Real, Space>& state,
                  const SeqBatch<Space>& batch, const View2<Real, Space>& o, Real scale,
                  GlaScanWorkspace<Space, Real>& ws) {
    if (gla_scan_fast(space, 0, q, k, a, u, state, batch, o, scale, ws)) return;
    ensure_capacity(ws.decay, batch.num_tokens, q.extent(1), "rodimus::gla.decay");
    exp_generic<Space, Real>(space, a, ws.decay, batch.num_tokens);
    gla_recurrent_generic<Space, Real>(space, q, k, View2<const Real, Space>(ws.decay), u, state,
                                       batch, o, scale);
  }
};

template <int C, class Space>
struct GlaScanImpl<ChunkedScan<C>, Space> {
  template <class Real>
  static void run(const Space& space, const View2<const Real, Space>& q,
                  const View2<const Real, Space>& k, const View2<const Real, Space>& a,
                  const View2<const Real, Space>& u, const View3<Real, Space>& state,
                  const SeqBatch<Space>& batch, const View2<Real, Space>& o, Real scale,
                  GlaScanWorkspace<Space, Real>& ws) {
    if (gla_scan_fast(space, C, q, k, a, u, state, batch, o, scale, ws)) return;
    gla_chunked_generic<C, Space, Real>(space, q, k, a, u, state, batch, o, scale, ws.chunk);
  }
};

}  // namespace detail

/// Runs the GLA scan for every sequence of `batch`, continuing and updating its state slot:
///   S_t = diag(exp(a_t)) S_{t-1} + k_t^T u_t,   o_t = scale * q_t S_t.
/// `scale` is 1/sqrt(n) in the Rodimus mixer; `k` is the already gated and normalised k'.
/// Real: float, or double (`gla_scan<Algo, double>`: the generic kernels, for the fp64
/// training forward).
// q, k, a: [>=N, n] (a <= 0, the log forget gate); u, o: [>=N, E]; state: [S, n, E] fp32
template <ScanAlgorithm Algo, class Real = float, class Space>
void gla_scan(const Space& space, const View2<const std::type_identity_t<Real>, Space>& q,
              const View2<const std::type_identity_t<Real>, Space>& k,
              const View2<const std::type_identity_t<Real>, Space>& a,
              const View2<const std::type_identity_t<Real>, Space>& u,
              const View3<std::type_identity_t<Real>, Space>& state, const SeqBatch<Space>& batch,
              const View2<std::type_identity_t<Real>, Space>& o, std::type_identity_t<Real> scale,
              GlaScanWorkspace<Space, Real>& ws) {
  const auto n = q.extent(1);
  const auto e = u.extent(1);
  detail::check_extent(k, 1, n, "gla_scan: k");
  detail::check_extent(a, 1, n, "gla_scan: a");
  detail::check_extent(o, 1, e, "gla_scan: o");
  detail::check_extent(state, 1, n, "gla_scan: state");
  detail::check_extent(state, 2, e, "gla_scan: state");
  for (auto* v : {&q, &k, &a, &u})
    detail::check_extent_at_least(*v, 0, batch.num_tokens, "gla_scan: input");
  detail::check_extent_at_least(o, 0, batch.num_tokens, "gla_scan: o");
  if (batch.num_tokens == 0) return;
  detail::GlaScanImpl<Algo, Space>::template run<Real>(space, q, k, a, u, state, batch, o, scale,
                                                       ws);
}

}  // namespace rodimus
