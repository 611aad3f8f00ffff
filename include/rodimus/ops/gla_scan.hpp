// The gated linear attention scan (SPEC 2 step 7, SPEC 2.1): algorithm tags, and the dispatch
// from a tag to its implementation (one specialisation per tag, CUTLASS-style).
#pragma once

#include <type_traits>

#include "rodimus/ops/impl/gla_chunked.hpp"
#include "rodimus/ops/impl/gla_recurrent.hpp"

namespace rodimus {

/// Token-by-token recurrence: O(T n E) with no extra memory; the decode path.
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

/// Scratch any scan algorithm may use; one per thread of work, reused across calls.
template <class Space>
struct GlaScanWorkspace {
  View2<float, Space> decay;  // [N, n] exp(a), recurrent path
  detail::GlaChunkWorkspace<Space> chunk;
};

namespace detail {

/// Primary template: an algorithm without an implementation fails to compile, loudly.
template <class Algo, class Space>
struct GlaScanImpl {
  static_assert(dependent_false<Algo>, "rodimus::gla_scan: no implementation for this algorithm");
};

template <class Space>
struct GlaScanImpl<RecurrentScan, Space> {
  static void run(const Space& space, const View2<const float, Space>& q,
                  const View2<const float, Space>& k, const View2<const float, Space>& a,
                  const View2<const float, Space>& u, const View3<float, Space>& state,
                  const SeqBatch<Space>& batch, const View2<float, Space>& o, float scale,
                  GlaScanWorkspace<Space>& ws) {
    ensure_capacity(ws.decay, batch.num_tokens, q.extent(1), "rodimus::gla.decay");
    exp_generic<Space>(space, a, ws.decay, batch.num_tokens);
    gla_recurrent_generic<Space>(space, q, k, ws.decay, u, state, batch, o, scale);
  }
};

template <int C, class Space>
struct GlaScanImpl<ChunkedScan<C>, Space> {
  static void run(const Space& space, const View2<const float, Space>& q,
                  const View2<const float, Space>& k, const View2<const float, Space>& a,
                  const View2<const float, Space>& u, const View3<float, Space>& state,
                  const SeqBatch<Space>& batch, const View2<float, Space>& o, float scale,
                  GlaScanWorkspace<Space>& ws) {
    gla_chunked_generic<C, Space>(space, q, k, a, u, state, batch, o, scale, ws.chunk);
  }
};

}  // namespace detail

/// Runs the GLA scan for every sequence of `batch`, continuing and updating its state slot:
///   S_t = diag(exp(a_t)) S_{t-1} + k_t^T u_t,   o_t = scale * q_t S_t.
/// `scale` is 1/sqrt(n) in the Rodimus mixer; `k` is the already gated and normalised k'.
// q, k, a: [>=N, n] (a <= 0, the log forget gate); u, o: [>=N, E]; state: [S, n, E] fp32
template <ScanAlgorithm Algo, class Space>
void gla_scan(const Space& space, const View2<const float, Space>& q,
              const View2<const float, Space>& k, const View2<const float, Space>& a,
              const View2<const float, Space>& u, const View3<float, Space>& state,
              const SeqBatch<Space>& batch, const View2<float, Space>& o, float scale,
              GlaScanWorkspace<Space>& ws) {
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
  detail::GlaScanImpl<Algo, Space>::run(space, q, k, a, u, state, batch, o, scale, ws);
}

}  // namespace rodimus
