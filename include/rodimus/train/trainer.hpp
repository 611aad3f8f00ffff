// The training loop: micro-batch gradient accumulation, global-norm clipping, warm-up + cosine
// schedule, AdamW, periodic held-out evaluation and exact-resume checkpoints, generic over the
// model's loss-and-gradient.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <type_traits>

#include "rodimus/core/error.hpp"
#include "rodimus/core/views.hpp"
#include "rodimus/io/safetensors.hpp"
#include "rodimus/train/adamw.hpp"
#include "rodimus/train/batch_sampler.hpp"
#include "rodimus/train/checkpoint.hpp"
#include "rodimus/train/corpus.hpp"
#include "rodimus/train/evaluate.hpp"
#include "rodimus/train/grad_norm.hpp"
#include "rodimus/train/parameters.hpp"
#include "rodimus/train/schedule.hpp"

namespace rodimus::train {

/// What a model provides to be trained: `m(params, batch)` runs the forward and backward of one
/// micro-batch ([B, T+1] ids, train/batch_sampler.hpp), returns the mean cross-entropy over its
/// B*T targets and ADDS the gradient of that mean to the grad of every parameter it uses (the
/// trainer zeroes the grads once per optimiser step). It must be deterministic for exact resume.
template <class M, class Space>
concept LossAndGradient = requires(M& m, ParameterSet<Space>& p, const TrainBatch& b) {
  { m(p, b) } -> std::convertible_to<double>;
};

/// Optional: `m.loss(params, batch)`, the same mean cross-entropy without gradients, used for
/// held-out evaluation when present (else the trainer calls `m(params, batch)` and discards the
/// gradient it adds).
template <class M, class Space>
concept HasForwardLoss = requires(M& m, ParameterSet<Space>& p, const TrainBatch& b) {
  { m.loss(p, b) } -> std::convertible_to<double>;
};

/// Copies the ids of `batch` ([B, T+1], host) into `buffer` in Space's memory (reallocated when
/// its shape differs) and returns it: the form a device-side loss-and-gradient takes, e.g.
///   struct WholeModel {                       // a LossAndGradient over ModelTrainer
///     ModelTrainer<float, Space> t;  View2<int, Space> ids;
///     double operator()(ParameterSet<Space>& p, const TrainBatch& b) {
///       return t.forward_backward(p, upload_batch(b, ids));
///     }
///     double loss(ParameterSet<Space>& p, const TrainBatch& b) {
///       return t.forward_loss(p, upload_batch(b, ids));
///     }
///   };
// batch.tokens: [B, T+1] host; buffer (a View2<int, Space>): [B, T+1], returned as const
template <class IdView>
requires(Kokkos::is_view<IdView>::value&& IdView::rank == 2 &&
         std::is_same_v<typename IdView::value_type, int>) typename IdView::const_type
    upload_batch(const TrainBatch& batch, IdView& buffer) {
  const auto rows = std::size_t(batch.batch), cols = std::size_t(batch.seq_len) + 1;
  if (batch.tokens.size() != rows * cols)
    throw ArgumentError("upload_batch: the batch holds " + std::to_string(batch.tokens.size()) +
                        " ids, not B (T + 1) = " + std::to_string(rows * cols));
  if (buffer.extent(0) != rows || buffer.extent(1) != cols)
    buffer =
        IdView(Kokkos::view_alloc(std::string("rodimus::train.batch"), Kokkos::WithoutInitializing),
               rows, cols);
  static_assert(std::is_same_v<int, std::int32_t>, "token ids are int32 on host and device");
  Kokkos::deep_copy(
      buffer,
      Kokkos::View<const int**, Kokkos::LayoutRight, Kokkos::HostSpace, Kokkos::MemoryUnmanaged>(
          reinterpret_cast<const int*>(batch.tokens.data()), rows, cols));
  return buffer;
}

/// The trainer's settings. The learning rate follows CosineSchedule{lr, min_lr, warmup_steps,
/// steps}; every step sees `batch` windows of `seq_len + 1` tokens, split into `micro_batches`
/// equal micro-batches whose gradients are averaged.
struct TrainerOptions {
  int batch = 16;            ///< sequences per optimiser step (all micro-batches together)
  int micro_batches = 1;     ///< must divide batch
  int seq_len = 256;         ///< T: tokens per sequence
  std::int64_t steps = 0;    ///< optimiser steps in all (the schedule's length); 0: fit max_seconds
  double max_seconds = 0.0;  ///< wall-clock budget of one run() (0: none)
  int calibration_steps = 5;  ///< steps timed to fix `steps` when it is 0
  double lr = 1e-3;           ///< peak learning rate
  double min_lr = 1e-4;       ///< floor of the cosine
  std::int64_t warmup_steps = 100;
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1;  ///< AdamW
  double clip = 1.0;                     ///< global gradient-norm clip (0: off)
  std::uint64_t seed = 1;                ///< the data order (BatchSampler)
  std::int64_t eval_every = 0;           ///< steps between held-out evaluations (0: none)
  std::int64_t eval_windows = 32;        ///< held-out windows per periodic evaluation (-1: all)
  std::int64_t checkpoint_every = 0;     ///< steps between checkpoints (0: only at the end)
  std::filesystem::path checkpoint_dir;  ///< where checkpoints go (empty: none written)
  io::StDType model_dtype = io::StDType::BF16;  ///< dtype of the checkpoint's model.safetensors
  nlohmann::json run_info;  ///< any JSON the caller records in checkpoints (extra.run)

  /// Throws ArgumentError naming the first bad setting.
  void validate() const {
    const auto bad = [](const std::string& what) { throw ArgumentError("trainer: " + what); };
    if (batch < 1) bad("batch must be at least 1");
    if (micro_batches < 1 || batch % micro_batches != 0)
      bad("micro_batches (" + std::to_string(micro_batches) + ") must divide batch (" +
          std::to_string(batch) + ")");
    if (seq_len < 1) bad("seq_len must be at least 1");
    if (steps < 0) bad("steps must be non-negative");
    if (steps == 0 && !(max_seconds > 0)) bad("give a number of steps or a time budget");
    if (max_seconds < 0) bad("max_seconds must be non-negative");
    if (calibration_steps < 1) bad("calibration_steps must be at least 1");
    if (!(lr > 0) || !(min_lr >= 0) || min_lr > lr) bad("need 0 <= min_lr <= lr and lr > 0");
    if (warmup_steps < 0) bad("warmup_steps must be non-negative");
    if (!(clip >= 0)) bad("clip must be non-negative");
    if (eval_every < 0 || checkpoint_every < 0) bad("eval_every / checkpoint_every must be >= 0");
  }
};

/// Reported after every optimiser step.
struct StepReport {
  std::int64_t step = 0;           ///< steps done (this one included)
  std::int64_t total_steps = 0;    ///< the schedule's length (0 while calibrating)
  double loss = 0.0;               ///< mean training loss of the step (nats per token)
  double lr = 0.0;                 ///< learning rate the step used
  double grad_norm = 0.0;          ///< global norm before clipping
  bool skipped = false;            ///< the gradient was not finite: no update
  std::int64_t tokens = 0;         ///< training targets seen so far (all runs)
  double tokens_per_second = 0.0;  ///< this run's average
  double elapsed_seconds = 0.0;    ///< this run's wall time
  double eta_seconds = 0.0;        ///< estimated time to total_steps (0 while calibrating)
};

/// Reported after every held-out evaluation.
struct EvalReport {
  std::int64_t step = 0;
  EvalResult result;
  double seconds = 0.0;
};

/// Observers of a run (each optional).
struct TrainerCallbacks {
  std::function<void(const StepReport&)> on_step;
  std::function<void(const EvalReport&)> on_eval;
  std::function<void(const std::filesystem::path&, std::int64_t step)> on_checkpoint;
  /// Asked after every step; true ends the run there (checkpoint and evaluation as at the end).
  std::function<bool()> stop_requested;
};

/// What run() did.
struct TrainSummary {
  std::int64_t first_step = 0;               ///< the step it started from (after a resume: > 0)
  std::int64_t steps = 0;                    ///< steps done in all at the end
  std::int64_t total_steps = 0;              ///< the schedule's length
  std::int64_t skipped_steps = 0;            ///< steps of this run with a non-finite gradient
  bool stopped_by_time = false;              ///< max_seconds ended it before total_steps
  bool stopped_by_request = false;           ///< TrainerCallbacks::stop_requested ended it
  double first_loss = 0.0, last_loss = 0.0;  ///< training loss of this run's first / last step
  std::int64_t tokens = 0;                   ///< training targets seen in all
  double seconds = 0.0;                      ///< this run's wall time
  std::optional<EvalResult> last_eval;
};

/// Trains `params` on a TokenStream. The step counter, the optimiser and the schedule length
/// are the trainer's state; checkpoints hold them with the data seed, so resume() continues a
/// run exactly (the same batches, the same updates, bit for bit on the same machine).
template <class Space>
class Trainer {
 public:
  /// `params`, `train` and `heldout` (may be null) must outlive the trainer.
  Trainer(ParameterSet<Space>& params, const TokenStream& train, const TokenStream* heldout,
          const TrainerOptions& opt)
      : params_(params),
        train_(train),
        heldout_(heldout),
        opt_(opt),
        sampler_((opt.validate(), std::span<const std::int32_t>(train.ids)), opt.seq_len, opt.seed),
        adamw_(params, {opt.lr, opt.beta1, opt.beta2, opt.eps, opt.weight_decay}),
        total_steps_(opt.steps) {}

  std::int64_t step() const { return step_; }
  std::int64_t total_steps() const { return total_steps_; }
  const TrainerOptions& options() const { return opt_; }
  AdamW<Space>& optimizer() { return adamw_; }
  CosineSchedule schedule() const {
    return {opt_.lr, opt_.min_lr, opt_.warmup_steps, total_steps_ > 0 ? total_steps_ : 1};
  }
  /// The learning rate of step `s` (0-based). While the length is not yet fixed (time budget,
  /// calibrating), warm-up only: the schedule's first steps do not depend on its length.
  double lr_at(std::int64_t s) const {
    if (total_steps_ > 0) return schedule().lr(s);
    return CosineSchedule{opt_.lr, opt_.min_lr, opt_.warmup_steps,
                          std::numeric_limits<std::int64_t>::max() / 2}
        .lr(s);
  }

  /// The trainer's record in a checkpoint's `extra`.
  nlohmann::json state_json() const {
    return {{"trainer", "rodimus-trainer-v1"},
            {"seed", opt_.seed},
            {"batch", opt_.batch},
            {"micro_batches", opt_.micro_batches},
            {"seq_len", opt_.seq_len},
            {"total_steps", total_steps_},
            {"lr", opt_.lr},
            {"min_lr", opt_.min_lr},
            {"warmup_steps", opt_.warmup_steps},
            {"clip", opt_.clip},
            {"tokens", tokens_},
            {"train_stream_tokens", train_.ids.size()},
            {"train_stream_bytes", train_.bytes},
            {"run", opt_.run_info}};
  }

  /// Writes a training checkpoint of the current state into `dir`.
  void save(const std::filesystem::path& dir) const {
    save_training_checkpoint(dir, params_.config(), params_, adamw_, step_, state_json(),
                             {opt_.model_dtype});
  }

  /// Restores params, optimiser, step and schedule length from a checkpoint that this trainer's
  /// settings can continue exactly: the same seed, batch, seq_len and training stream (else
  /// ArgumentError naming the difference; nothing is changed then).
  TrainingState resume(const std::filesystem::path& dir) {
    // check trainer_state.json's extra first: load_training_checkpoint changes the tensors
    const nlohmann::json want = state_json();
    nlohmann::json extra;
    {
      std::ifstream in(dir / trainer_state_file_name, std::ios::binary);
      if (!in)
        throw CheckpointError("resume: " + (dir / trainer_state_file_name).string() +
                              ": cannot open (missing?)");
      try {
        extra = nlohmann::json::parse(in).value("extra", nlohmann::json());
      } catch (const nlohmann::json::exception& e) {
        throw CheckpointError("resume: " + (dir / trainer_state_file_name).string() + ": " +
                              e.what());
      }
    }
    if (!extra.is_object() || extra.value("trainer", "") != "rodimus-trainer-v1")
      throw CheckpointError("resume: " + dir.string() + " was not written by this trainer");
    for (const char* key : {"seed", "batch", "seq_len", "train_stream_tokens"})
      if (extra.value(key, nlohmann::json()) != want[key])
        throw ArgumentError(std::string("resume: the checkpoint's ") + key + " is " +
                            extra.value(key, nlohmann::json()).dump() + ", this run's is " +
                            want[key].dump() +
                            " (an exact resume needs the same data and batches)");
    TrainingState st = load_training_checkpoint(dir, params_, adamw_);
    step_ = st.step;
    tokens_ = extra.value("tokens", std::int64_t(0));
    const std::int64_t recorded = extra.value("total_steps", std::int64_t(0));
    if (opt_.steps == 0 && recorded > 0) total_steps_ = recorded;
    // AdamW hyper-parameters of this run (the checkpoint restores the saved ones)
    adamw_.config() = {opt_.lr, opt_.beta1, opt_.beta2, opt_.eps, opt_.weight_decay};
    return st;
  }

  /// Held-out evaluation with the model's own loss: the first `windows` full windows of the
  /// held-out stream (-1: all full windows; the last, shorter window is left out), `batch`
  /// windows per call. Bytes are exact only when every target was scored.
  template <class M>
  requires LossAndGradient<M, Space> EvalResult evaluate(M& model, std::int64_t windows) {
    EvalResult r;
    if (!heldout_) return r;
    const std::span<const std::int32_t> ids(heldout_->ids);
    const int t = opt_.seq_len;
    std::int64_t full = heldout_->targets() / t;  // windows with T targets
    if (windows >= 0) full = std::min(full, windows);
    for (std::int64_t w0 = 0; w0 < full; w0 += opt_.batch) {
      TrainBatch b;
      b.batch = static_cast<int>(std::min<std::int64_t>(opt_.batch, full - w0));
      b.seq_len = t;
      for (int i = 0; i < b.batch; ++i) {
        const auto win = eval_window(ids, t, w0 + i);
        b.tokens.insert(b.tokens.end(), win.begin(), win.end());
      }
      double mean;
      if constexpr (HasForwardLoss<M, Space>) {
        mean = model.loss(params_, b);
      } else {
        mean = model(params_, b);
      }
      r.nats += mean * double(b.num_targets());
      r.targets += b.num_targets();
      r.windows += b.batch;
    }
    set_bytes(r, *heldout_);
    return r;
  }

  /// Trains until the schedule's last step, until max_seconds has passed (then the step in
  /// progress completes), or for `max_new_steps` steps when that is >= 0. Checkpoints every
  /// checkpoint_every steps and at the end when checkpoint_dir is set; evaluates every eval_every
  /// steps and at the end when there is a held-out stream.
  template <class M>
  requires LossAndGradient<M, Space> TrainSummary run(M& model, const TrainerCallbacks& cb = {},
                                                      std::int64_t max_new_steps = -1) {
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    const auto since = [&] { return std::chrono::duration<double>(clock::now() - t0).count(); };
    TrainSummary s;
    s.first_step = step_;
    const int mb = opt_.batch / opt_.micro_batches;
    const std::int64_t step_tokens = std::int64_t(opt_.batch) * opt_.seq_len;
    std::int64_t done_here = 0;
    std::int64_t last_ckpt = step_;
    std::int64_t last_eval = -1;
    // held-out evaluation needs one full window
    const bool can_eval = heldout_ != nullptr && heldout_->targets() >= opt_.seq_len;
    const auto do_eval = [&] {
      const auto te = clock::now();
      EvalReport rep{step_, evaluate(model, opt_.eval_windows),
                     std::chrono::duration<double>(clock::now() - te).count()};
      s.last_eval = rep.result;
      last_eval = step_;
      if (cb.on_eval) cb.on_eval(rep);
    };
    const auto do_ckpt = [&] {
      if (opt_.checkpoint_dir.empty()) return;
      save(opt_.checkpoint_dir);
      last_ckpt = step_;
      if (cb.on_checkpoint) cb.on_checkpoint(opt_.checkpoint_dir, step_);
    };
    while ((total_steps_ == 0 || step_ < total_steps_) &&
           (max_new_steps < 0 || done_here < max_new_steps)) {
      const double lr = lr_at(step_);
      params_.zero_grad();
      double loss = 0.0;
      for (int m = 0; m < opt_.micro_batches; ++m) {
        const TrainBatch b = sampler_.batch(step_, m * mb, mb);
        loss += static_cast<double>(model(params_, b));
      }
      loss /= opt_.micro_batches;
      if (opt_.micro_batches > 1) scale_grads(params_, 1.0 / opt_.micro_batches);
      const double norm = opt_.clip > 0 ? clip_grad_norm(params_, opt_.clip) : grad_norm(params_);
      const bool finite = std::isfinite(norm) && std::isfinite(loss);
      if (finite) {
        adamw_.step(params_, lr);
      } else {
        ++s.skipped_steps;
      }
      Space().fence();
      ++step_;
      ++done_here;
      tokens_ += step_tokens;
      if (done_here == 1) s.first_loss = loss;
      s.last_loss = loss;
      const double el = since();
      // A time budget without a step count: time the first steps, then fix the schedule.
      if (total_steps_ == 0 && done_here >= opt_.calibration_steps) {
        const double per_step = el / double(done_here);
        const auto more = static_cast<std::int64_t>((opt_.max_seconds - el) / per_step);
        total_steps_ = step_ + std::max<std::int64_t>(more, 0);
        if (total_steps_ < step_ + 1) total_steps_ = step_;
      }
      StepReport rep;
      rep.step = step_;
      rep.total_steps = total_steps_;
      rep.loss = loss;
      rep.lr = lr;
      rep.grad_norm = norm;
      rep.skipped = !finite;
      rep.tokens = tokens_;
      rep.elapsed_seconds = el;
      rep.tokens_per_second = el > 0 ? double(done_here * step_tokens) / el : 0.0;
      rep.eta_seconds =
          total_steps_ > 0 ? double(total_steps_ - step_) * el / double(done_here) : 0.0;
      if (cb.on_step) cb.on_step(rep);
      const bool last = total_steps_ > 0 && step_ >= total_steps_;
      if (opt_.eval_every > 0 && step_ % opt_.eval_every == 0 && !last && can_eval) do_eval();
      if (opt_.checkpoint_every > 0 && step_ % opt_.checkpoint_every == 0 && !last) do_ckpt();
      if (!last && cb.stop_requested && cb.stop_requested()) {
        s.stopped_by_request = true;
        break;
      }
      if (opt_.max_seconds > 0 && !last && el + el / double(done_here) > opt_.max_seconds) {
        s.stopped_by_time = true;
        break;
      }
    }
    if (can_eval && last_eval != step_) do_eval();
    if (last_ckpt != step_ || done_here == 0) do_ckpt();
    s.steps = step_;
    s.total_steps = total_steps_;
    s.tokens = tokens_;
    s.seconds = since();
    return s;
  }

 private:
  ParameterSet<Space>& params_;
  const TokenStream& train_;
  const TokenStream* heldout_;
  TrainerOptions opt_;
  BatchSampler sampler_;
  AdamW<Space> adamw_;
  std::int64_t total_steps_ = 0;
  std::int64_t step_ = 0;
  std::int64_t tokens_ = 0;
};

}  // namespace rodimus::train
