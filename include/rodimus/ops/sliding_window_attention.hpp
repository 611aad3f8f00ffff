// Sliding-window shared-key softmax attention with a rolling KV cache (SPEC 3, steps 3-4).
#pragma once

#include <string>
#include <type_traits>

#include "rodimus/backend/cuda/window_attention.hpp"
#include "rodimus/backend/exec_space_traits.hpp"
#include "rodimus/backend/host/attention.hpp"
#include "rodimus/backend/host/kv_cache.hpp"
#include "rodimus/core/parallel.hpp"
#include "rodimus/core/seq_batch.hpp"

namespace rodimus {

/// Attention geometry: H query heads, Hk key heads, Hv value heads of `head_dim`; a query
/// at position p sees keys p - window_back .. p (window_back < 0: all earlier keys).
struct AttentionShape {
  int heads = 0;
  int heads_k = 0;
  int heads_v = 0;
  int head_dim = 0;
  int window_back = -1;
  /// Score scale; fp64 so that the fp64 training forward is exact (fp32 kernels round it).
  double scale = 1.0;
};

namespace detail {

// q: [N, H*hd]; k: [N, Hk*hd]; v: [N, Hv*hd]; k_cache: [S, Wc, Hk*hd]; v_cache: [S, Wc, Hv*hd]
// out: [N, H*hd].  Key at absolute position j lives in the call (j >= pos0) or at cache row j % Wc.
template <class Space, class Real = float>
void swa_generic(const Space& space, const View2<const std::type_identity_t<Real>, Space>& q,
                 const View2<const std::type_identity_t<Real>, Space>& k,
                 const View2<const std::type_identity_t<Real>, Space>& v,
                 const View3<const std::type_identity_t<Real>, Space>& k_cache,
                 const View3<const std::type_identity_t<Real>, Space>& v_cache,
                 const SeqBatch<Space>& batch, const View2<std::type_identity_t<Real>, Space>& out,
                 const AttentionShape& shape) {
  const int heads = shape.heads, hk = shape.heads_k, hv = shape.heads_v, hd = shape.head_dim;
  const int wb = shape.window_back;
  const Real scale = static_cast<Real>(shape.scale);
  const int wc = static_cast<int>(k_cache.extent(1));
  const auto offsets = batch.offsets;
  const auto pos0 = batch.pos0;
  const auto slot = batch.slot;
  const auto token_seq = batch.token_seq;
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::sliding_window_attention"),
      detail::range_policy(space, 0, std::int64_t(batch.num_tokens) * heads),
      KOKKOS_LAMBDA(const std::int64_t idx) {
        const auto t_h = detail::split_index(idx, heads);
        const int t = t_h.row, h = t_h.col;
        const int s = token_seq(t);
        const int p0 = pos0(s);
        const int p = p0 + (t - offsets(s));
        const int lo = (wb < 0 || p - wb < 0) ? 0 : p - wb;
        const int kb = (h % hk) * hd;
        const int vb = (h % hv) * hd;
        const int qb = h * hd;
        auto score = [&](int j) {
          Real d = Real(0);
          if (j >= p0) {
            const int r = offsets(s) + (j - p0);
            for (int c = 0; c < hd; ++c) d += q(t, qb + c) * k(r, kb + c);
          } else {
            const int r = j % wc;
            for (int c = 0; c < hd; ++c) d += q(t, qb + c) * k_cache(slot(s), r, kb + c);
          }
          return d * scale;
        };
        Real mx = Real(-3.0e38);
        for (int j = lo; j <= p; ++j) {
          const Real sc = score(j);
          mx = sc > mx ? sc : mx;
        }
        for (int c = 0; c < hd; ++c) out(t, qb + c) = Real(0);
        Real sum = Real(0);
        for (int j = lo; j <= p; ++j) {
          const Real w = kmath::exp(score(j) - mx);
          sum += w;
          if (j >= p0) {
            const int r = offsets(s) + (j - p0);
            for (int c = 0; c < hd; ++c) out(t, qb + c) += w * v(r, vb + c);
          } else {
            const int r = j % wc;
            for (int c = 0; c < hd; ++c) out(t, qb + c) += w * v_cache(slot(s), r, vb + c);
          }
        }
        const Real inv = Real(1) / sum;
        for (int c = 0; c < hd; ++c) out(t, qb + c) *= inv;
      });
}

// Writes the keys/values of the last min(len, Wc) tokens of each sequence into its cache.
template <class Space, class Real = float>
void kv_cache_update_generic(const Space& space,
                             const View2<const std::type_identity_t<Real>, Space>& k,
                             const View2<const std::type_identity_t<Real>, Space>& v,
                             const View3<std::type_identity_t<Real>, Space>& k_cache,
                             const View3<std::type_identity_t<Real>, Space>& v_cache,
                             const SeqBatch<Space>& batch) {
  const int wc = static_cast<int>(k_cache.extent(1));
  const int kd = static_cast<int>(k.extent(1));
  const int vd = static_cast<int>(v.extent(1));
  const auto offsets = batch.offsets;
  const auto pos0 = batch.pos0;
  const auto slot = batch.slot;
  const auto token_seq = batch.token_seq;
  const int width = kd + vd;
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::kv_cache_update"),
      detail::range_policy(space, 0, std::int64_t(batch.num_tokens) * width),
      KOKKOS_LAMBDA(const std::int64_t idx) {
        const auto t_c = split_index(idx, width);
        const int t = t_c.row, c = t_c.col;
        const int s = token_seq(t);
        const int len = offsets(s + 1) - offsets(s);
        const int i = t - offsets(s);
        if (i < len - wc) return;  // overwritten later in this same call
        const int r = (pos0(s) + i) % wc;
        if (c < kd) {
          k_cache(slot(s), r, c) = k(t, c);
        } else {
          v_cache(slot(s), r, c - kd) = v(t, c - kd);
        }
      });
}

/// The rolling-cache update on host spaces (unit-stride k / v rows, contiguous caches), by the
/// row-copy kernel of backend/host/kv_cache.hpp. False (nothing done) for other layouts.
template <class Space>
bool kv_cache_update_host(const Space& space, const View2<const float, Space>& k,
                          const View2<const float, Space>& v, const View3<float, Space>& k_cache,
                          const View3<float, Space>& v_cache, const SeqBatch<Space>& batch) {
  const int wc = static_cast<int>(k_cache.extent(1));
  const auto kd = static_cast<std::int64_t>(k.extent(1));
  const auto vd = static_cast<std::int64_t>(v.extent(1));
  if (k.stride(1) != 1 || v.stride(1) != 1 || !k_cache.span_is_contiguous() ||
      !v_cache.span_is_contiguous() || static_cast<std::int64_t>(k_cache.extent(2)) != kd ||
      static_cast<std::int64_t>(v_cache.extent(2)) != vd)
    return false;
  namespace bh = backend::host;
  const bh::KvCacheArgs a{k.data(), v.data(), k_cache.data(), v_cache.data(),
                          static_cast<std::int64_t>(k.stride(0)),
                          static_cast<std::int64_t>(v.stride(0)), kd, vd, wc, batch.num_seqs,
                          batch.num_tokens, batch.offsets.data(), batch.pos0.data(),
                          batch.slot.data()};
  host_items_for(space, RODIMUS_KERNEL_LABEL("rodimus::kv_cache_update.host"),
                 bh::kv_cache_items(a),
                 [=](const std::int64_t item) { bh::kv_cache_update_item(a, item); });
  return true;
}

}  // namespace detail

/// Causal softmax attention of each query over the keys in its window, from this call and from
/// the rolling cache; query head h reads key head h % Hk and value head h % Hv. Afterwards the
/// last Wc keys/values of each sequence are written into the cache (Wc = cache rows, which
/// must be >= window_back; for unbounded attention, >= the whole context).
/// Caches with no rows (Wc = 0, training) mean attention within the call only: every
/// sequence must then start at position 0 (batch.pos0 = 0), and nothing is cached.
/// Real: float, or double (`sliding_window_attention<double>`, always the generic kernel).
// q: [>=N, H*hd], k: [>=N, Hk*hd], v: [>=N, Hv*hd] (RoPE applied); caches: [S, Wc, Hk*hd] and
// [S, Wc, Hv*hd]; out: [>=N, H*hd]
template <class Real = float, class Space>
void sliding_window_attention(const Space& space,
                              const View2<const std::type_identity_t<Real>, Space>& q,
                              const View2<const std::type_identity_t<Real>, Space>& k,
                              const View2<const std::type_identity_t<Real>, Space>& v,
                              const View3<std::type_identity_t<Real>, Space>& k_cache,
                              const View3<std::type_identity_t<Real>, Space>& v_cache,
                              const SeqBatch<Space>& batch,
                              const View2<std::type_identity_t<Real>, Space>& out,
                              const AttentionShape& shape) {
  const int hd = shape.head_dim;
  if (shape.heads <= 0 || shape.heads_k <= 0 || shape.heads_v <= 0 || hd <= 0)
    throw ArgumentError("sliding_window_attention: head counts and head_dim must be positive");
  detail::check_extent(q, 1, std::int64_t(shape.heads) * hd, "sliding_window_attention: q");
  detail::check_extent(k, 1, std::int64_t(shape.heads_k) * hd, "sliding_window_attention: k");
  detail::check_extent(v, 1, std::int64_t(shape.heads_v) * hd, "sliding_window_attention: v");
  detail::check_extent(out, 1, std::int64_t(shape.heads) * hd, "sliding_window_attention: out");
  detail::check_extent(k_cache, 2, std::int64_t(shape.heads_k) * hd,
                       "sliding_window_attention: k_cache");
  detail::check_extent(v_cache, 2, std::int64_t(shape.heads_v) * hd,
                       "sliding_window_attention: v_cache");
  detail::check_extent(v_cache, 1, k_cache.extent(1), "sliding_window_attention: v_cache");
  const int wc = static_cast<int>(k_cache.extent(1));
  if (wc == 0) {
    for (int s = 0; s < batch.num_seqs; ++s)
      if (batch.h_pos0[s] != 0)
        throw ArgumentError("sliding_window_attention: batch.pos0[" + std::to_string(s) + "] is " +
                            std::to_string(batch.h_pos0[s]) +
                            ", must be 0 without a KV cache (the caches have no rows)");
  } else if (shape.window_back >= 0 && wc < shape.window_back) {
    throw ArgumentError("sliding_window_attention: cache holds fewer rows than the window");
  }
  for (int s = 0; s < batch.num_seqs && wc > 0; ++s) {
    const int len = batch.h_offsets[s + 1] - batch.h_offsets[s];
    if (shape.window_back < 0 && batch.h_pos0[s] + len > wc)
      throw ArgumentError("sliding_window_attention: sequence of " +
                          std::to_string(batch.h_pos0[s] + len) +
                          " tokens exceeds the KV cache capacity of " + std::to_string(wc));
  }
  for (auto* x : {&q, &k, &v})
    detail::check_extent_at_least(*x, 0, batch.num_tokens, "sliding_window_attention: input");
  if (batch.num_tokens == 0) return;
  bool done = false, cache_done = false;
  constexpr bool fp32 = std::is_same_v<Real, float>;
  if constexpr (fp32 && is_host_space_v<Space>) {
    // Host: query blocks x key tiles with an online softmax (backend/host/attention.hpp).
    if (hd <= backend::host::kAttnMaxHeadDim) {
      backend::host::AttentionArgs a{};
      a.q = q.data();
      a.k = k.data();
      a.v = v.data();
      a.k_cache = k_cache.data();
      a.v_cache = v_cache.data();
      a.out = out.data();
      a.ldq = q.stride(0);
      a.ldk = k.stride(0);
      a.ldv = v.stride(0);
      a.ldo = out.stride(0);
      a.ldkc = static_cast<std::int64_t>(k_cache.extent(2));
      a.ldvc = static_cast<std::int64_t>(v_cache.extent(2));
      a.heads = shape.heads;
      a.heads_k = shape.heads_k;
      a.heads_v = shape.heads_v;
      a.hd = hd;
      a.window_back = shape.window_back;
      a.wc = wc;
      a.scale = static_cast<float>(shape.scale);
      a.offsets = batch.offsets.data();
      a.pos0 = batch.pos0.data();
      a.slot = batch.slot.data();
      a.num_seqs = batch.num_seqs;
      space.fence();
      if (backend::host::attention_decode_takes(a, batch.num_tokens, batch.max_len)) {
        // decode: (sequence, group of heads, range of keys) items, each key and value row read
        // once per group
        const auto plan = backend::host::attention_decode_plan(a, space.concurrency());
        float* partials = nullptr;
        int* counters = nullptr;
        if (plan.splits > 1) {
          auto& buffers = backend::host::attention_decode_buffers();
          buffers.reserve(plan, a.num_seqs, a.hd);
          partials = buffers.partials.data();
          counters = buffers.done.data();
        }
        detail::host_items_for(
            space, RODIMUS_KERNEL_LABEL("rodimus::sliding_window_attention.host_decode"),
            plan.items(a.num_seqs), [=](const std::int64_t item) {
              backend::host::attention_decode_item(a, plan, item, partials, counters);
            });
        if (plan.splits > 1) space.fence();  // the buffers serve this thread's next call
      } else {
        Kokkos::parallel_for(
            RODIMUS_KERNEL_LABEL("rodimus::sliding_window_attention.host"),
            Kokkos::RangePolicy<Space, Kokkos::Schedule<Kokkos::Dynamic>>(
                space, 0, backend::host::attention_items(a)),
            [=](const std::int64_t item) { backend::host::attention_item(a, item); });
      }
      done = true;
    }
  }
  if constexpr (fp32 && is_cuda_space_v<Space>) {
    // CUDA: the flash kernel for sequences of >= 64 tokens, split-key kernels for the rest
    const bool unit = wc > 0 && q.stride(1) == 1 && k.stride(1) == 1 && v.stride(1) == 1 &&
                      out.stride(1) == 1 && k_cache.span_is_contiguous() &&
                      v_cache.span_is_contiguous();
    if (unit) {
      backend::cuda::WindowAttentionArgs a;
      a.q = q.data();
      a.k = k.data();
      a.v = v.data();
      a.k_cache = k_cache.data();
      a.v_cache = v_cache.data();
      a.out = out.data();
      a.ldq = static_cast<std::int64_t>(q.stride(0));
      a.ldk = static_cast<std::int64_t>(k.stride(0));
      a.ldv = static_cast<std::int64_t>(v.stride(0));
      a.ldo = static_cast<std::int64_t>(out.stride(0));
      a.heads = shape.heads;
      a.heads_k = shape.heads_k;
      a.heads_v = shape.heads_v;
      a.hd = hd;
      a.window_back = shape.window_back;
      a.wc = wc;
      a.scale = static_cast<float>(shape.scale);
      a.offsets = batch.offsets.data();
      a.pos0 = batch.pos0.data();
      a.slot = batch.slot.data();
      a.token_seq = batch.token_seq.data();
      a.h_offsets = batch.h_offsets;
      a.h_pos0 = batch.h_pos0;
      a.num_seqs = batch.num_seqs;
      a.num_tokens = batch.num_tokens;
      if (batch.max_len <= 1) {  // a decode step: the kernel may write the caches itself
        a.k_cache_w = k_cache.data();
        a.v_cache_w = v_cache.data();
      }
      const auto r = backend::cuda::window_attention(a, space.cuda_stream());
      done = r.out;
      cache_done = r.cache;
    }
  }
  if (!done) detail::swa_generic<Space, Real>(space, q, k, v, k_cache, v_cache, batch, out, shape);
  if constexpr (fp32 && is_host_space_v<Space>)
    if (wc > 0 && !cache_done)
      cache_done = detail::kv_cache_update_host(space, k, v, k_cache, v_cache, batch);
  if (wc > 0 && !cache_done)
    detail::kv_cache_update_generic<Space, Real>(space, k, v, k_cache, v_cache, batch);
}

}  // namespace rodimus
