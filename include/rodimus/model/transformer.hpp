// The baseline Transformer language model, composed from rodimus' parts: embedding, pre-norm
// blocks of GQA attention (RoPE, growing KV cache) and SwiGLU FFN, final RMSNorm, lm head.
#pragma once

#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "rodimus/model/model.hpp"
#include "rodimus/model/transformer_state.hpp"
#include "rodimus/model/transformer_weights.hpp"

namespace rodimus {

/// Per-caller scratch of TransformerModel calls; keep one per thread. It grows to the largest
/// call and is then reused, so steady-state decode allocates nothing (while the state's
/// capacity suffices).
template <class Space>
class TransformerWorkspace {
 public:
  View2<float, Space> h, r, logits, last_hn;
  View1<int, Space> ids;
  typename View1<int, Space>::HostMirror ids_host;
  TransformerBlockWorkspace<Space> blocks;
  detail::SeqBatchBuffers<Space> batch;
  std::vector<int> pos0;        // host: start position of each sequence of the call
  std::vector<char> slot_used;  // host: slots named by the call
  TokenBatch step;              // decode()'s batch, refilled in place
};

/// A decoder-only Transformer on execution space `Space` with matrices stored as `W` (float,
/// bf16, fp16; arithmetic and the residual stream are fp32):
///   x = Embed[ids];  per layer x += Attn(RMSNorm(x)), x += SwiGLU(RMSNorm(x));
///   logits = RMSNorm_f(x) W_lm^T.
/// The same API as Model: forward / prefill / decode over packed TokenBatches of several
/// sequences, each continuing one slot of a TransformerState.
template <ExecutionSpace Space = Kokkos::DefaultExecutionSpace, StorageType W = float>
class TransformerModel {
 public:
  using execution_space = Space;
  using weight_type = W;
  using state_type = TransformerState<Space>;
  using workspace_type = TransformerWorkspace<Space>;

  /// Capacity (positions per slot) of a state made without one.
  static constexpr int kDefaultCapacity = 256;

  /// Binds the parameters of `cfg` from named host tensors (see HostTensors for the names).
  TransformerModel(const TransformerConfig& cfg, const HostTensors& tensors)
      : cfg_(cfg), weights_(bind_transformer_weights<W, Space>(cfg, tensors)) {}

  /// A model with random parameters (random_transformer_tensors), for benchmarks and tests.
  static TransformerModel random(const TransformerConfig& cfg, std::uint64_t seed) {
    return TransformerModel(cfg, random_transformer_tensors(cfg, seed));
  }

  const TransformerConfig& config() const { return cfg_; }
  const TransformerWeights<W, Space>& weights() const { return weights_; }
  std::int64_t parameter_count() const { return cfg_.parameter_count(); }

  /// An empty state for `slots` sequences with room for `capacity` positions each (0: the
  /// default); forward grows it when a sequence goes further.
  TransformerState<Space> make_state(int slots = 1, int capacity = 0) const {
    return TransformerState<Space>(cfg_, slots, capacity > 0 ? capacity : kDefaultCapacity);
  }

  /// Runs every sequence of `tokens` from where its slot stands (growing the state's caches
  /// when a sequence would pass their capacity), updates the slots, and returns logits per
  /// `mode` (a view into `ws`, valid until its next use). `trace` sees "attn_out", "ffn_out".
  View2<const float, Space> forward(TransformerState<Space>& state, TransformerWorkspace<Space>& ws,
                                    const TokenBatch& tokens, LogitsMode mode = LogitsMode::All,
                                    const TraceFn<Space>& trace = {}) const {
    const std::int64_t rows = validate(state, ws, tokens);
    require_launch_thread<Space>("TransformerModel::forward");
    std::unique_lock<std::mutex> lock(detail::host_dispatch_mutex(), std::defer_lock);
    if constexpr (!is_gpu_space_v<Space>) lock.lock();
    const Space space{};
    state.reserve(rows);
    ws.pos0.resize(tokens.num_seqs());
    for (int s = 0; s < tokens.num_seqs(); ++s)
      ws.pos0[s] = static_cast<int>(state.position(tokens.slots[s]));
    const SeqBatch<Space> batch = ws.batch.build(tokens.lengths, ws.pos0, tokens.slots);
    run(space, state, ws, tokens, batch, trace);
    for (int s = 0; s < tokens.num_seqs(); ++s) state.advance(tokens.slots[s], tokens.lengths[s]);
    if (mode == LogitsMode::None) return {};
    using CV = View2<const float, Space>;
    const int nt = batch.num_tokens, v = cfg_.vocab;
    const float eps = static_cast<float>(cfg_.norm_eps);
    if (mode == LogitsMode::All) {
      detail::ensure_capacity(ws.logits, nt, v, "rodimus::logits");
      add_rms_norm(space, CV(ws.h), ws.r, weights_.norm_f, ws.blocks.hn, nt, eps,
                   ResidualMode::AddNoStore);
      linear(space, CV(ws.blocks.hn), weights_.lm_head, ws.logits, nt);
      space.fence();
      return Kokkos::subview(ws.logits, std::make_pair(0, nt), Kokkos::ALL);
    }
    // Last: RMSNorm_f(h + r) of each sequence's last token, then the head on B rows only.
    const int b = tokens.num_seqs();
    detail::ensure_capacity(ws.last_hn, b, cfg_.d_model, "rodimus::last_hn");
    detail::ensure_capacity(ws.logits, b, v, "rodimus::logits");
    detail::final_norm_last(space, batch, CV(ws.h), CV(ws.r), weights_.norm_f, ws.last_hn, eps);
    linear(space, CV(ws.last_hn), weights_.lm_head, ws.logits, b);
    space.fence();
    return Kokkos::subview(ws.logits, std::make_pair(0, b), Kokkos::ALL);
  }

  /// Prefill: consumes whole prompts; returns the last token's logits per sequence by default.
  View2<const float, Space> prefill(TransformerState<Space>& state, TransformerWorkspace<Space>& ws,
                                    const TokenBatch& tokens,
                                    LogitsMode mode = LogitsMode::Last) const {
    return forward(state, ws, tokens, mode);
  }

  /// Decode step: one token for each of slots 0..B-1 (O(context) work per token: attention
  /// reads every cached key and value); returns logits [B, V].
  View2<const float, Space> decode(TransformerState<Space>& state, TransformerWorkspace<Space>& ws,
                                   std::span<const std::int32_t> next) const {
    const int b = static_cast<int>(next.size());
    ws.step.ids.assign(next.begin(), next.end());
    ws.step.lengths.assign(b, 1);
    ws.step.slots.resize(b);
    for (int i = 0; i < b; ++i) ws.step.slots[i] = i;
    return forward(state, ws, ws.step, LogitsMode::Last);
  }

 private:
  void run(const Space& space, TransformerState<Space>& state, TransformerWorkspace<Space>& ws,
           const TokenBatch& tokens, const SeqBatch<Space>& batch,
           const TraceFn<Space>& trace) const {
    const int nt = batch.num_tokens;
    detail::ensure_capacity(ws.h, nt, cfg_.d_model, "rodimus::h");
    detail::ensure_capacity(ws.r, nt, cfg_.d_model, "rodimus::r");
    ws.blocks.reserve(cfg_, nt);
    detail::upload_ids(space, tokens, ws.ids, ws.ids_host);
    if (nt == 0) return;
    embedding(space, View1<const int, Space>(ws.ids), weights_.embed, 1.f, ws.h, nt);  // [N, D]
    for (int l = 0; l < cfg_.n_layer; ++l)
      transformer_block(space, cfg_, weights_.layers[l], weights_.rope_inv_freq, l, ws.h, ws.r,
                        state.layer(l), batch, ws.blocks, trace);
  }

  // Checks the call before any work; returns the cache rows it needs (max of pos0 + len).
  std::int64_t validate(const TransformerState<Space>& state, TransformerWorkspace<Space>& ws,
                        const TokenBatch& tokens) const {
    if (!state.matches(cfg_))
      throw ArgumentError("TransformerModel::forward: the state was made for a different model");
    if (tokens.slots.size() != tokens.lengths.size())
      throw ArgumentError("TransformerModel::forward: TokenBatch has " +
                          std::to_string(tokens.lengths.size()) + " lengths but " +
                          std::to_string(tokens.slots.size()) + " slots");
    std::size_t total = 0;
    std::int64_t rows = 0;
    auto& used = ws.slot_used;
    used.assign(state.slots(), 0);
    for (std::size_t s = 0; s < tokens.lengths.size(); ++s) {
      if (tokens.lengths[s] < 0)
        throw ArgumentError("TransformerModel::forward: negative sequence length");
      total += static_cast<std::size_t>(tokens.lengths[s]);
      const int sl = tokens.slots[s];
      if (sl < 0 || sl >= state.slots())
        throw ArgumentError("TransformerModel::forward: slot " + std::to_string(sl) +
                            " out of range [0, " + std::to_string(state.slots()) + ")");
      if (used[sl]++)
        throw ArgumentError("TransformerModel::forward: slot " + std::to_string(sl) +
                            " used twice");
      const std::int64_t end = state.position(sl) + tokens.lengths[s];
      if (end > std::int64_t(INT32_MAX))
        throw ArgumentError("TransformerModel::forward: sequence position overflows");
      rows = end > rows ? end : rows;
    }
    if (total != tokens.ids.size())
      throw ArgumentError("TransformerModel::forward: lengths add up to " + std::to_string(total) +
                          " but " + std::to_string(tokens.ids.size()) + " ids were given");
    for (std::size_t t = 0; t < tokens.ids.size(); ++t)
      if (tokens.ids[t] < 0 || tokens.ids[t] >= cfg_.vocab)
        throw ArgumentError("TransformerModel::forward: token id " + std::to_string(tokens.ids[t]) +
                            " at index " + std::to_string(t) + " is outside the vocabulary [0, " +
                            std::to_string(cfg_.vocab) + ")");
    return rows;
  }

  TransformerConfig cfg_;
  TransformerWeights<W, Space> weights_;
};

}  // namespace rodimus
