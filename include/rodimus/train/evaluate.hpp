// Held-out evaluation of an inference Model: cross-entropy over the fixed windows of a token
// stream, in nats per token and bits per byte.
#pragma once

#include <Kokkos_Core.hpp>
#include <algorithm>
#include <cstdint>
#include <numbers>
#include <vector>

#include "rodimus/core/views.hpp"
#include "rodimus/grad/cross_entropy.hpp"
#include "rodimus/model/model.hpp"
#include "rodimus/model/token_batch.hpp"
#include "rodimus/train/batch_sampler.hpp"
#include "rodimus/train/corpus.hpp"

namespace rodimus::train {

/// The summed loss of an evaluation and what it covered.
struct EvalResult {
  double nats = 0.0;         ///< sum over the targets of -ln p(target)
  std::int64_t targets = 0;  ///< tokens scored
  double bytes = 0.0;        ///< UTF-8 bytes of the text those targets encode
  bool bytes_exact = true;   ///< false: `bytes` is the stream's bytes scaled by targets scored
  std::int64_t windows = 0;  ///< windows evaluated

  /// Validation loss in nats per token.
  double loss() const { return targets > 0 ? nats / double(targets) : 0.0; }
  /// Bits per byte: (nats / ln 2) / bytes.
  double bits_per_byte() const { return bytes > 0 ? nats / std::numbers::ln2 / bytes : 0.0; }
};

/// Bytes of text covered by `scored` of the stream's targets: all of stream.bytes when every
/// target was scored, else that scaled by the fraction scored (an estimate: flagged inexact).
inline void set_bytes(EvalResult& r, const TokenStream& stream) {
  const std::int64_t all = stream.targets();
  r.bytes_exact = r.targets == all;
  r.bytes = all > 0 ? double(stream.bytes) * double(r.targets) / double(all) : 0.0;
}

/// Evaluates `model` on `stream` (eval_window windows of `seq_len`; the first `max_windows`
/// of them when max_windows >= 0), `batch` windows per forward call, each from a fresh state:
/// the summed cross-entropy of every target. Bytes are exact when every window is scored.
template <class Space, class W, class Policy>
EvalResult evaluate_model(const Model<Space, W, Policy>& model, const TokenStream& stream,
                          int seq_len, int batch = 8, std::int64_t max_windows = -1) {
  if (batch < 1) throw ArgumentError("evaluate_model: batch must be at least 1");
  EvalResult r;
  const std::span<const std::int32_t> ids(stream.ids);
  std::int64_t windows = eval_window_count(std::int64_t(ids.size()), seq_len);
  if (max_windows >= 0) windows = std::min(windows, max_windows);
  const int v = model.config().vocab_size;
  State<Space> state = model.make_state(batch, seq_len);
  Workspace<Space> ws;
  View1<int, Space> targets("rodimus::eval.targets", std::size_t(batch) * seq_len);
  auto targets_host = Kokkos::create_mirror_view(targets);
  View2<float, Space> scratch("rodimus::eval.dlogits", std::size_t(batch) * seq_len,
                              std::size_t(v));
  for (std::int64_t w0 = 0; w0 < windows; w0 += batch) {
    const int nb = static_cast<int>(std::min<std::int64_t>(batch, windows - w0));
    TokenBatch tb;
    int nt = 0;
    for (int b = 0; b < nb; ++b) {
      const auto win = eval_window(ids, seq_len, w0 + b);  // [len + 1]
      const auto in = win.first(win.size() - 1);
      tb.add(in, b);
      for (std::size_t t = 1; t < win.size(); ++t) targets_host(nt++) = win[t];
    }
    state.reset();
    const auto logits = model.forward(state, ws, tb, LogitsMode::All);  // [nt, V]
    Kokkos::deep_copy(targets, targets_host);
    const auto ce =
        grad::cross_entropy<float>(Space(), logits, View1<const int, Space>(targets), scratch, nt);
    r.nats += ce.loss_sum;
    r.targets += ce.count;
    r.windows += nb;
  }
  set_bytes(r, stream);
  return r;
}

}  // namespace rodimus::train
