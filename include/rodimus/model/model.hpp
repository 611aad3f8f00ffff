// The Rodimus / Rodimus+ language model: shared read-only weights, forward over packed batches
// of sequences with per-sequence decode state (SPEC 5).
#pragma once

#include <cmath>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "rodimus/backend/cuda/step_graph.hpp"
#include "rodimus/backend/exec_space_traits.hpp"
#include "rodimus/backend/host/operands.hpp"
#include "rodimus/core/instantiation.hpp"
#include "rodimus/core/precision.hpp"
#include "rodimus/io/checkpoint.hpp"
#include "rodimus/io/config_json.hpp"
#include "rodimus/layers/rodimus_plus_block.hpp"
#include "rodimus/model/state.hpp"
#include "rodimus/model/token_batch.hpp"
#include "rodimus/model/weights.hpp"
#include "rodimus/ops/embedding.hpp"
#include "rodimus/ops/rms_norm.hpp"

namespace rodimus {

namespace detail {

/// The call's token ids into `ids` on the device (grown when too small, through the mirror
/// `host`), fenced: before any kernel of the call.
template <class Space>
void upload_ids(const Space& space, const TokenBatch& tokens, View1<int, Space>& ids,
                typename View1<int, Space>::HostMirror& host) {
  const int nt = static_cast<int>(tokens.ids.size());
  if (static_cast<int>(ids.extent(0)) < nt || ids.extent(0) == 0) {
    note_reallocation();
    ids = View1<int, Space>(
        Kokkos::view_alloc(std::string("rodimus::ids"), Kokkos::WithoutInitializing),
        nt > 1 ? nt : 1);
    host = Kokkos::create_mirror_view(ids);
  }
  for (int t = 0; t < nt; ++t) host(t) = tokens.ids[t];
  Kokkos::deep_copy(space, ids, host);
  space.fence();
}

/// out[b] = RMSNorm_f(h + r) at the last token of sequence b (zeros for an empty sequence).
// h, r: [>=N, D]; w: [D]; out: [>=B, D]
template <class Space>
void final_norm_last(const Space& space, const SeqBatch<Space>& batch,
                     const View2<const float, Space>& h, const View2<const float, Space>& r,
                     const View1<const float, Space>& w, const View2<float, Space>& out,
                     float eps) {
  const int d = static_cast<int>(w.extent(0));
  const auto offsets = batch.offsets;
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::final_norm_last"),
      team_policy(space, batch.num_seqs, row_team_size(d)),
      KOKKOS_LAMBDA(const typename Kokkos::TeamPolicy<Space>::member_type& m) {
        const int s = m.league_rank();
        const int t = offsets(s + 1) - 1;
        if (offsets(s + 1) == offsets(s)) {
          Kokkos::parallel_for(Kokkos::TeamThreadRange(m, d),
                               [&](const int c) { out(s, c) = 0.f; });
          return;
        }
        team_rms_row(
            m, d, eps, [&](int c) { return h(t, c) + r(t, c); },
            [&](int c, float z, float inv) { out(s, c) = z * inv * w(c); });
      });
}

}  // namespace detail

/// Which positions get logits.
enum class LogitsMode {
  All,   ///< every token of the call: [N, V]
  Last,  ///< the last token of each sequence: [B, V] (row b = sequence b; zeros if it is empty)
  None   ///< no logits (state update only)
};

/// Compile-time choices of a model: which scan runs prefill and which runs decode.
struct DefaultModelPolicy {
  using prefill_scan = ChunkedScan<64>;
  using decode_scan = RecurrentScan;
};

/// A model policy: two scan algorithm tags.
template <class P>
concept ModelPolicy =
    ScanAlgorithm<typename P::prefill_scan> && ScanAlgorithm<typename P::decode_scan>;

/// Per-caller scratch of forward calls. Keep one per thread; it grows to the largest call and
/// is then reused, so steady-state decode allocates nothing.
template <class Space>
class Workspace {
 public:
  View2<float, Space> h, r, logits, last_hn;
  View1<int, Space> ids;
  typename View1<int, Space>::HostMirror ids_host;
  BlockWorkspace<Space> blocks;
  detail::SeqBatchBuffers<Space> batch;
  std::vector<int> pos0;        // host: start position of each sequence of the call
  std::vector<char> slot_used;  // host: slots named by the call
  TokenBatch step;              // decode()'s batch, refilled in place
  /// Decode steps on CUDA are recorded once and replayed as a CUDA graph (one launch instead of
  /// ~36 per layer); set false to launch every kernel directly.
  bool cuda_graphs = true;
  /// How the GPU's tensor-core products (projections of more than a few tokens, the chunked
  /// GLA scan, the prefill attention) take their fp32 operands: Split (default, fp32 accuracy)
  /// or Bf16 (rounded once, half the GEMM work, as a bf16 PyTorch model; see OperandPrecision).
  /// No effect on the host, which computes in fp32.
  OperandPrecision gpu_operands = OperandPrecision::Split;
  /// The host's counterpart: Split (default) keeps the projections' activations in fp32; Bf16
  /// rounds them once to bf16 for the bf16-weight projections of more than 16 tokens (prefill),
  /// which then run on AVX512_BF16's vdpbf16ps where the CPU has it (backend/host/bf16_gemm.hpp,
  /// twice the rate of the fp32 GEMM). Decode steps (the GEMV) keep fp32 activations.
  OperandPrecision host_operands = OperandPrecision::Split;
  backend::cuda::StepGraph graph;
};

/// A Rodimus or Rodimus+ model on execution space `Space` with weights stored as `W`
/// (float, bf16 or fp16; arithmetic is fp32).
template <ExecutionSpace Space = Kokkos::DefaultExecutionSpace, StorageType W = float,
          ModelPolicy Policy = DefaultModelPolicy>
class Model {
 public:
  using execution_space = Space;
  using weight_type = W;
  using policy = Policy;
  using state_type = State<Space>;
  using workspace_type = Workspace<Space>;

  /// Loads config.json and the safetensors weights (single file or sharded) from `dir`.
  static Model load(const std::filesystem::path& dir) {
    const ModelConfig cfg = io::load_config(dir);
    return Model(cfg, io::Checkpoint::open(dir));
  }

  /// Binds the weights of `cfg` from an open checkpoint.
  Model(const ModelConfig& cfg, const io::Checkpoint& ckpt)
      : cfg_(cfg), weights_(bind_weights<W, Space>(cfg, ckpt)) {}

  const ModelConfig& config() const { return cfg_; }
  const ModelWeights<W, Space>& weights() const { return weights_; }

  /// Number of parameters (tied embeddings counted once).
  std::int64_t parameter_count() const {
    const std::int64_t d = cfg_.d_model, e = cfg_.d_inner(), n = cfg_.mem_size(), k = cfg_.d_conv(),
                       r = cfg_.low_rank(), v = cfg_.vocab_size;
    std::int64_t per = d + 2 * e * d + e * k + e + 2 * n * e + r * e + e * r + e + 2 * n * e +
                       2 * n + e + e + d * e;
    if (cfg_.is_plus()) {
      const std::int64_t hd = cfg_.head_dim();
      per += 2 * d + d * hd * (cfg_.num_heads() + cfg_.num_heads_k() + cfg_.num_heads_v()) + d * d +
             3 * d * cfg_.ffn_dim();
    }
    std::int64_t total = per * cfg_.n_layer + v * d + d;
    if (!cfg_.tie_word_embeddings) total += v * d;
    if (cfg_.use_norm_embedding) total += d;
    return total;
  }

  /// Rows of the K/V cache a state needs: W/2 with a window, else `max_context`.
  int kv_rows(int max_context = 0) const {
    if (!cfg_.is_plus()) return 0;
    if (cfg_.window_back() >= 0) return cfg_.window_back();
    return max_context > 0 ? max_context : cfg_.max_position_embeddings;
  }

  /// A fresh decode state for `slots` sequences (`max_context` only matters for Rodimus+
  /// without a window, whose cache must hold the whole context).
  State<Space> make_state(int slots = 1, int max_context = 0) const {
    return State<Space>(cfg_, slots, kv_rows(max_context));
  }

  /// Runs every sequence of `tokens` from where its state slot stands, updates the slots, and
  /// returns logits per `mode` (a view into `ws`, valid until its next use). The chunked scan
  /// runs when any sequence has more than one token, the recurrent one otherwise.
  View2<const float, Space> forward(State<Space>& state, Workspace<Space>& ws,
                                    const TokenBatch& tokens, LogitsMode mode = LogitsMode::All,
                                    const TraceFn<Space>& trace = {}) const;

  /// Prefill: consumes whole prompts (chunked scan); returns the last token's logits per
  /// sequence by default.
  View2<const float, Space> prefill(State<Space>& state, Workspace<Space>& ws,
                                    const TokenBatch& tokens,
                                    LogitsMode mode = LogitsMode::Last) const {
    return forward(state, ws, tokens, mode);
  }

  /// Decode step: one token for each of slots 0..B-1 (O(1) work per token for Rodimus);
  /// returns logits [B, V].
  View2<const float, Space> decode(State<Space>& state, Workspace<Space>& ws,
                                   std::span<const std::int32_t> next) const {
    const int b = static_cast<int>(next.size());
    ws.step.ids.assign(next.begin(), next.end());
    ws.step.lengths.assign(b, 1);
    ws.step.slots.resize(b);
    for (int i = 0; i < b; ++i) ws.step.slots[i] = i;
    return forward(state, ws, ws.step, LogitsMode::Last);
  }

 private:
  template <class Scan>
  void run(const Space& space, State<Space>& state, Workspace<Space>& ws,
           const SeqBatch<Space>& batch, const TraceFn<Space>& trace) const {
    using CV = View2<const float, Space>;
    const int nt = batch.num_tokens;
    const float eps = static_cast<float>(cfg_.norm_epsilon);
    detail::ensure_capacity(ws.h, nt, cfg_.d_model, "rodimus::h");
    detail::ensure_capacity(ws.r, nt, cfg_.d_model, "rodimus::r");
    ws.blocks.reserve(cfg_, nt);
    if (nt == 0) return;
    // h = Embed[ids] * (sqrt(n) if use_scale_embedding); optional embed_norm      [N, D]
    const float scale = cfg_.use_scale_embedding ? std::sqrt(float(cfg_.mem_size())) : 1.f;
    embedding(space, View1<const int, Space>(ws.ids), weights_.embed, scale, ws.h, nt);
    if (cfg_.use_norm_embedding) rms_norm(space, CV(ws.h), weights_.embed_norm, ws.h, nt, eps);
    // no blocks (n_layer = 0, a bigram model): the residual stream the final norm adds is zero
    if (cfg_.n_layer == 0) Kokkos::deep_copy(space, ws.r, 0.f);
    // Each layer but the last ends with the next one's residual add + norm (its output
    // projection's linear_residual_norm): on a GPU at 1 to 2 tokens the norm then runs in the
    // next layer's first GEMV (NormedRows).
    NormedRows<Space> carried;
    for (int l = 0; l < cfg_.n_layer; ++l) {
      const auto& st = state.layer(l);
      const bool chain = l + 1 < cfg_.n_layer;
      const ResidualNorm<Space> next{
          ws.r,
          chain ? weights_.layers[l + 1].mixer_norm : View1<const float, Space>(),
          ws.blocks.hn,
          eps,
          ResidualMode::Add,
          !trace};
      const NormedRows<Space>* in = l > 0 ? &carried : nullptr;
      if (cfg_.is_plus()) {
        carried = rodimus_plus_block<Scan>(space, cfg_, weights_.layers[l], weights_.rope_inv_freq,
                                           l, ws.h, ws.r, st, batch, ws.blocks, trace,
                                           chain ? &next : nullptr, in);
      } else {
        carried = rodimus_block<Scan>(space, cfg_, weights_.layers[l], l, ws.h, ws.r, st, batch,
                                      ws.blocks, trace, chain ? &next : nullptr, in);
      }
    }
  }

  // Final norm + LM head into ws.logits: every token (All) or the last of each sequence (Last).
  void logits(const Space& space, Workspace<Space>& ws, const SeqBatch<Space>& batch,
              LogitsMode mode) const {
    using CV = View2<const float, Space>;
    const float eps = static_cast<float>(cfg_.norm_epsilon);
    const int v = cfg_.vocab_size, nt = batch.num_tokens;
    if (mode == LogitsMode::All) {
      detail::ensure_capacity(ws.logits, nt, v, "rodimus::logits");
      if (nt == 0) return;
      add_rms_norm(space, CV(ws.h), ws.r, weights_.norm_f, ws.blocks.hn, nt, eps,
                   ResidualMode::AddNoStore);
      linear(space, CV(ws.blocks.hn), weights_.lm_head, ws.logits, nt);
      return;
    }
    // Last: gather the last row of each sequence, then norm + head on B rows only.
    const int b = batch.num_seqs;
    detail::ensure_capacity(ws.last_hn, b, cfg_.d_model, "rodimus::last_hn");
    detail::ensure_capacity(ws.logits, b, v, "rodimus::logits");
    detail::final_norm_last(space, batch, View2<const float, Space>(ws.h),
                            View2<const float, Space>(ws.r), weights_.norm_f, ws.last_hn, eps);
    linear(space, CV(ws.last_hn), weights_.lm_head, ws.logits, b);
  }

  void validate(const State<Space>& state, Workspace<Space>& ws, const TokenBatch& tokens) const {
    if (!state.matches(cfg_, kv_rows(state.kv_rows())))
      throw ArgumentError("forward: the state was made for a different model");
    if (tokens.slots.size() != tokens.lengths.size())
      throw ArgumentError("forward: TokenBatch has " + std::to_string(tokens.lengths.size()) +
                          " lengths but " + std::to_string(tokens.slots.size()) + " slots");
    std::size_t total = 0;
    auto& used = ws.slot_used;
    used.assign(state.slots(), 0);
    for (std::size_t s = 0; s < tokens.lengths.size(); ++s) {
      if (tokens.lengths[s] < 0) throw ArgumentError("forward: negative sequence length");
      total += static_cast<std::size_t>(tokens.lengths[s]);
      const int sl = tokens.slots[s];
      if (sl < 0 || sl >= state.slots())
        throw ArgumentError("forward: slot " + std::to_string(sl) + " out of range [0, " +
                            std::to_string(state.slots()) + ")");
      if (used[sl]++) throw ArgumentError("forward: slot " + std::to_string(sl) + " used twice");
      if (state.position(sl) + tokens.lengths[s] > std::int64_t(INT32_MAX))
        throw ArgumentError("forward: sequence position overflows");
      if (cfg_.is_plus() && cfg_.window_back() < 0 &&
          state.position(sl) + tokens.lengths[s] > state.kv_rows())
        throw ArgumentError("forward: slot " + std::to_string(sl) + " would reach " +
                            std::to_string(state.position(sl) + tokens.lengths[s]) +
                            " tokens, beyond its KV cache of " + std::to_string(state.kv_rows()) +
                            " (unwindowed attention: pass a larger max_context to make_state)");
    }
    if (total != tokens.ids.size())
      throw ArgumentError("forward: lengths add up to " + std::to_string(total) + " but " +
                          std::to_string(tokens.ids.size()) + " ids were given");
    for (std::size_t t = 0; t < tokens.ids.size(); ++t)
      if (tokens.ids[t] < 0 || tokens.ids[t] >= cfg_.vocab_size)
        throw ArgumentError("forward: token id " + std::to_string(tokens.ids[t]) + " at index " +
                            std::to_string(t) + " is outside the vocabulary [0, " +
                            std::to_string(cfg_.vocab_size) + ")");
  }

  // Kokkos host backends of 3.4 are not safe for concurrent dispatch from several threads.
  static std::mutex& dispatch_mutex() { return detail::host_dispatch_mutex(); }

  ModelConfig cfg_;
  ModelWeights<W, Space> weights_;
};

// Out of the class body (so not implicitly inline): with RODIMUS_EXTERN_TEMPLATES a translation
// unit then leaves the whole forward pass of the instances below to the one that compiles them.
template <ExecutionSpace Space, StorageType W, ModelPolicy Policy>
View2<const float, Space> Model<Space, W, Policy>::forward(State<Space>& state,
                                                           Workspace<Space>& ws,
                                                           const TokenBatch& tokens,
                                                           LogitsMode mode,
                                                           const TraceFn<Space>& trace) const {
  validate(state, ws, tokens);
  require_launch_thread<Space>("Model::forward");
  std::unique_lock<std::mutex> lock(dispatch_mutex(), std::defer_lock);
  if constexpr (!is_gpu_space_v<Space>) lock.lock();
  const Space space{};
  ws.pos0.resize(tokens.num_seqs());
  for (int s = 0; s < tokens.num_seqs(); ++s)
    ws.pos0[s] = static_cast<int>(state.position(tokens.slots[s]));
  const SeqBatch<Space> batch = ws.batch.build(tokens.lengths, ws.pos0, tokens.slots);
  detail::upload_ids(space, tokens, ws.ids, ws.ids_host);
  const int nt = batch.num_tokens;
  const int rows = mode == LogitsMode::All ? nt : tokens.num_seqs();
  // Everything from here on only enqueues kernels (no allocation once the workspace is warm,
  // no host synchronisation), so on CUDA a decode step can be replayed as one graph.
  auto launch = [&] {
    if (batch.max_len > 1) {
      run<typename Policy::prefill_scan>(space, state, ws, batch, trace);
    } else {
      run<typename Policy::decode_scan>(space, state, ws, batch, trace);
    }
    if (mode != LogitsMode::None) logits(space, ws, batch, mode);
  };
  if constexpr (is_cuda_space_v<Space>) {
    const backend::cuda::detail::OperandPrecisionScope operands(ws.gpu_operands);
    if (ws.cuda_graphs && batch.max_len == 1 && nt > 0 && mode != LogitsMode::All && !trace) {
      const backend::cuda::StepGraphKey key{this, &state, nt, detail::buffer_generation(),
                                            ws.gpu_operands};
      ws.graph.run(space.cuda_stream(), key, launch);
    } else {
      launch();
    }
  } else {
    const backend::host::HostOperandScope operands(ws.host_operands);
    launch();
  }
  space.fence();
  for (int s = 0; s < tokens.num_seqs(); ++s) state.advance(tokens.slots[s], tokens.lengths[s]);
  if (mode == LogitsMode::None) return {};
  return Kokkos::subview(ws.logits, std::make_pair(0, rows), Kokkos::ALL);
}

#ifdef RODIMUS_TEMPLATE_INSTANCE
// The host models in fp32 and bf16 (core/instantiation.hpp).
RODIMUS_TEMPLATE_INSTANCE class Model<Kokkos::DefaultHostExecutionSpace, float>;
RODIMUS_TEMPLATE_INSTANCE class Model<Kokkos::DefaultHostExecutionSpace, bf16>;
#endif

}  // namespace rodimus
