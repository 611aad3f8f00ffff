// `rodimus train` (the training loop on a directory of text, with a live progress line) and
// `rodimus eval` (held-out loss of a model in nats per token and bits per byte).
#pragma once

#include <fmt/core.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <rodimus/rodimus.hpp>
#include <set>
#include <string>
#include <vector>

#include "args.hpp"
#include "commands.hpp"

namespace rodimus::cli {

/// Keys of a config.json that `rodimus train` accepts: those rodimus reads (io::config_to_json
/// writes them all) and the bookkeeping keys of Hugging Face configs, which it ignores.
inline void check_config_keys(const nlohmann::json& j, const ModelConfig& cfg,
                              const std::string& file) {
  ModelConfig plus = cfg;
  plus.block_type = BlockType::RodimusPlus;
  const nlohmann::json known = io::config_to_json(plus);
  static const std::set<std::string> ignored = {"_name_or_path",
                                                "transformers_version",
                                                "torch_dtype",
                                                "dtype",
                                                "use_cache",
                                                "initializer_range",
                                                "no_weight_decay_on_bias",
                                                "no_weight_decay_on_embedding",
                                                "no_weight_decay_on_norm",
                                                "rescale_prenorm_residual",
                                                "use_fast_path",
                                                "use_fused_cross_entropy",
                                                "use_fused_swiglu",
                                                "dropout",
                                                "attention_dropout",
                                                "activation_dropout",
                                                "id2label",
                                                "label2id",
                                                "return_dict",
                                                "output_attentions",
                                                "output_hidden_states",
                                                "problem_type",
                                                "chunk_size_feed_forward",
                                                "is_encoder_decoder"};
  const auto unknown = [&](const std::string& key) {
    return Error(file + ": unknown config key '" + key +
                 "' (rodimus train accepts the published config.json keys only; a typo?)");
  };
  for (const auto& [key, value] : j.items()) {
    if (ignored.count(key)) continue;
    if (!known.contains(key)) throw unknown(key);
    if ((key == "mixer_cfg" || key == "attn_cfg") && value.is_object())
      for (const auto& [sub, v] : value.items())
        if (!known[key].contains(sub)) throw unknown(key + "." + sub);
  }
}

/// The model config of --config, checked for unknown keys.
inline ModelConfig load_train_config(const std::string& file) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec))
    throw Error("config file '" + file + "' does not exist or is not a file");
  std::ifstream in(file, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const ModelConfig cfg = io::parse_config(text, file);
  check_config_keys(nlohmann::json::parse(text), cfg, file);
  return cfg;
}

inline std::string duration_text(double s) {
  if (!(s >= 0) || !std::isfinite(s)) return "--";
  const auto t = static_cast<long long>(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02}m{:02}s", t / 3600, t / 60 % 60, t % 60);
  if (t >= 60) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

/// The live progress line on stderr: rewritten in place (\r) at most 4 times a second on a
/// terminal; otherwise one line per 10 seconds and at the first and last step.
class ProgressLine {
 public:
  ProgressLine() : tty_(::isatty(::fileno(stderr)) != 0) {}

  void step(const train::StepReport& r) {
    const auto now = std::chrono::steady_clock::now();
    const bool last = r.total_steps > 0 && r.step >= r.total_steps;
    const double since = std::chrono::duration<double>(now - last_).count();
    if (!(printed_ == 0 || last || since >= (tty_ ? 0.25 : 10.0))) return;
    last_ = now;
    ++printed_;
    const std::string total = r.total_steps > 0 ? std::to_string(r.total_steps) : "?";
    std::string line = fmt::format(
        "step {}/{} | loss {:.4f} | lr {:.2e} | {:.0f} tok/s | {} elapsed | ETA {}", r.step, total,
        r.loss, r.lr, r.tokens_per_second, duration_text(r.elapsed_seconds),
        r.total_steps > 0 ? duration_text(r.eta_seconds) : std::string("--"));
    if (r.skipped) line += " | non-finite gradient: step skipped";
    if (tty_) {
      const std::size_t width = line.size();
      if (width < width_) line.append(width_ - width, ' ');
      width_ = width;
      fmt::print(stderr, "\r{}", line);
      open_ = true;
    } else {
      fmt::print(stderr, "rodimus: {}\n", line);
    }
    std::fflush(stderr);
  }

  /// A line of its own (an evaluation, a checkpoint), below the progress line.
  void note(const std::string& text) {
    end_line();
    fmt::print(stderr, "rodimus: {}\n", text);
    std::fflush(stderr);
  }

  void end_line() {
    if (open_) fmt::print(stderr, "\n");
    open_ = false;
    width_ = 0;
  }

 private:
  bool tty_;
  bool open_ = false;
  std::size_t width_ = 0;
  long printed_ = 0;
  std::chrono::steady_clock::time_point last_{};
};

/// Set by the first SIGINT / SIGTERM during `rodimus train`: the step in progress completes, a
/// checkpoint is written and the summary printed; the handler then reverts to the default, so a
/// second signal ends the process at once.
inline std::atomic<bool>& stop_signal() {
  static std::atomic<bool> flag{false};
  return flag;
}

extern "C" inline void on_stop_signal(int sig) {
  stop_signal().store(true);
  std::signal(sig, SIG_DFL);
}

/// The corpus options of the command line: the split rule is fixed (5 % of the files).
inline train::CorpusOptions corpus_options(const std::vector<std::string>& ext,
                                           const std::vector<std::string>& exclude) {
  train::CorpusOptions c;
  c.filter.extensions = ext;
  c.filter.exclude_dirs = exclude;
  return c;
}

/// The whole model's loss and gradient (train::ModelTrainer) as the trainer's plug-in.
struct WholeModel {
  train::ModelTrainer<float, Space> t;
  View2<int, Space> ids;
  double operator()(train::ParameterSet<Space>& p, const train::TrainBatch& b) {
    return t.forward_backward(p, train::upload_batch(b, ids));
  }
  double loss(train::ParameterSet<Space>& p, const train::TrainBatch& b) {
    return t.forward_loss(p, train::upload_batch(b, ids));
  }
};

/// `rodimus train`.
inline int run_train(const Options& o) {
  namespace fs = std::filesystem;
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  const ModelConfig cfg = load_train_config(o.config);
  std::error_code ec;
  if (!fs::exists(*o.tokenizer, ec))
    throw Error("tokenizer file '" + *o.tokenizer + "' does not exist");
  const io::Tokenizer tok = io::Tokenizer::from_file(*o.tokenizer);
  if (tok.vocab_size() > std::size_t(cfg.vocab_size))
    throw Error(o.config + ": vocab_size " + std::to_string(cfg.vocab_size) +
                " is smaller than the tokenizer's " + std::to_string(tok.vocab_size()) + " tokens");
  const fs::path out(*o.out);
  if (fs::exists(out, ec) && !fs::is_directory(out, ec))
    throw Error("--out '" + *o.out + "' is not a directory");
  const bool has_ckpt = fs::exists(out / train::trainer_state_file_name, ec);
  if (o.resume && !has_ckpt)
    throw Error("--resume: '" + *o.out + "' holds no training checkpoint (no " +
                train::trainer_state_file_name + ")");
  if (!o.resume && has_ckpt)
    throw Error("'" + *o.out +
                "' already holds a training checkpoint: pass --resume to continue it, or "
                "choose another --out");

  const train::CorpusOptions copt = corpus_options(o.extensions, o.exclude_dirs);
  const train::Corpus corpus = train::load_corpus(o.data, tok, copt);
  if (corpus.train.targets() < o.seq + 1)
    throw Error("the training files under '" + o.data + "' give " +
                std::to_string(corpus.train.ids.size()) +
                " tokens, fewer than --seq + 1 = " + std::to_string(o.seq + 1));
  ProgressLine progress;
  fmt::print(stderr,
             "rodimus: {} files under {} ({} held out, {} skipped as not UTF-8): train {} tokens "
             "/ {} bytes, held-out {} tokens / {} bytes\n",
             corpus.files.size(), o.data, corpus.heldout.files, corpus.skipped_not_utf8,
             corpus.train.ids.size(), corpus.train.bytes, corpus.heldout.ids.size(),
             corpus.heldout.bytes);

  fs::create_directories(out, ec);
  if (ec) throw Error("cannot create --out '" + *o.out + "': " + ec.message());
  fs::copy_file(*o.tokenizer, out / "tokenizer.json", fs::copy_options::overwrite_existing, ec);
  if (ec) throw Error("cannot copy the tokenizer into '" + *o.out + "': " + ec.message());

  auto params = train::make_parameters<Space>(cfg, {train::initializer_range(o.config), o.seed});
  train::TrainerOptions topt;
  topt.batch = o.batch;
  topt.micro_batches = o.micro_batches;
  topt.seq_len = o.seq;
  topt.steps = o.steps;
  topt.max_seconds = o.minutes * 60.0;
  topt.lr = o.lr;
  topt.min_lr = o.min_lr;
  topt.warmup_steps = o.warmup;
  topt.weight_decay = o.weight_decay;
  topt.clip = o.clip;
  topt.seed = o.seed;
  topt.eval_every = o.eval_every;
  topt.eval_windows = o.eval_windows;
  topt.checkpoint_every = o.checkpoint_every;
  topt.checkpoint_dir = out;
  topt.run_info = {{"data", o.data},
                   {"ext", o.extensions},
                   {"exclude_dirs", o.exclude_dirs},
                   {"separator", copt.separator},
                   {"heldout_fraction", copt.heldout_fraction}};
  train::Trainer<Space> trainer(params, corpus.train, &corpus.heldout, topt);
  if (o.resume) {
    trainer.resume(out);
    fmt::print(stderr, "rodimus: resumed {} at step {}\n", *o.out, trainer.step());
  }
  fmt::print(stderr, "rodimus: {} parameters, batch {} x {} tokens{}, {}\n", params.numel(),
             o.batch, o.seq,
             o.micro_batches > 1 ? fmt::format(" in {} micro-batches", o.micro_batches) : "",
             o.steps > 0 ? fmt::format("{} steps", o.steps)
                         : fmt::format("steps to fit {} minutes", o.minutes));

  std::ofstream log(out / "train_log.jsonl", o.resume ? std::ios::app : std::ios::trunc);
  if (!log) throw Error("cannot write '" + (out / "train_log.jsonl").string() + "'");
  const auto write_log = [&](const nlohmann::json& j) {
    log << j.dump() << '\n';
    log.flush();
  };
  train::TrainerCallbacks cb;
  cb.on_step = [&](const train::StepReport& r) {
    progress.step(r);
    write_log({{"event", "step"},
               {"step", r.step},
               {"loss", r.loss},
               {"lr", r.lr},
               {"grad_norm", std::isfinite(r.grad_norm) ? nlohmann::json(r.grad_norm) : nullptr},
               {"tokens", r.tokens},
               {"elapsed_s", r.elapsed_seconds},
               {"tokens_per_s", r.tokens_per_second}});
  };
  cb.on_eval = [&](const train::EvalReport& r) {
    progress.note(
        fmt::format("eval at step {}: held-out loss {:.4f} nats/token, {}{:.4f} bits/byte ({} "
                    "tokens, {:.1f} s)",
                    r.step, r.result.loss(), r.result.bytes_exact ? "" : "~",
                    r.result.bits_per_byte(), r.result.targets, r.seconds));
    write_log({{"event", "eval"},
               {"step", r.step},
               {"val_loss", r.result.loss()},
               {"val_bpb", r.result.bits_per_byte()},
               {"bpb_exact", r.result.bytes_exact},
               {"targets", r.result.targets}});
  };
  cb.on_checkpoint = [&](const fs::path& dir, std::int64_t step) {
    progress.note(fmt::format("checkpoint at step {} in {}", step, dir.string()));
  };
  bool told = false;
  cb.stop_requested = [&] {
    if (!stop_signal().load()) return false;
    if (!told) progress.note("interrupted: checkpoint and evaluation follow (again to abort)");
    told = true;
    return true;
  };
  stop_signal().store(false);
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  train::TrainSummary s;
  if (cfg.n_layer == 0) {
    train::BigramModel<Space> model(cfg);
    s = trainer.run(model, cb);
  } else {
    WholeModel model{train::ModelTrainer<float, Space>(cfg), {}};
    s = trainer.run(model, cb);
  }
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  progress.end_line();

  // The saved checkpoint through the inference Model, on every held-out window: the exact
  // figure `rodimus eval` gives.
  train::EvalResult final_eval;
  if (corpus.heldout.targets() > 0) {
    const Model<Space, float> m = Model<Space, float>::load(out);
    final_eval = train::evaluate_model(m, corpus.heldout, o.seq, 8);
    write_log({{"event", "final"},
               {"step", s.steps},
               {"val_loss", final_eval.loss()},
               {"val_bpb", final_eval.bits_per_byte()},
               {"bpb_exact", true},
               {"targets", final_eval.targets}});
  }
  const double seconds = std::chrono::duration<double>(clock::now() - t0).count();
  fmt::print("config: {}\n", o.config);
  fmt::print("data: {}\n", o.data);
  fmt::print("files_train: {}\n", corpus.train.files);
  fmt::print("files_heldout: {}\n", corpus.heldout.files);
  fmt::print("skipped_not_utf8: {}\n", corpus.skipped_not_utf8);
  fmt::print("train_tokens: {}\n", corpus.train.ids.size());
  fmt::print("train_bytes: {}\n", corpus.train.bytes);
  fmt::print("heldout_tokens: {}\n", corpus.heldout.ids.size());
  fmt::print("heldout_bytes: {}\n", corpus.heldout.bytes);
  fmt::print("parameters: {}\n", params.numel());
  fmt::print("first_step: {}\n", s.first_step);
  fmt::print("steps: {}\n", s.steps);
  fmt::print("total_steps: {}\n", s.total_steps);
  fmt::print("stopped_by_time: {}\n", s.stopped_by_time ? "true" : "false");
  fmt::print("stopped_by_signal: {}\n", s.stopped_by_request ? "true" : "false");
  fmt::print("skipped_steps: {}\n", s.skipped_steps);
  fmt::print("tokens_seen: {}\n", s.tokens);
  fmt::print("train_seconds: {:.3f}\n", s.seconds);
  fmt::print("tokens_per_second: {:.1f}\n",
             s.seconds > 0 ? double((s.steps - s.first_step) * o.batch * o.seq) / s.seconds : 0.0);
  fmt::print("train_loss_first: {:.6f}\n", s.first_loss);
  fmt::print("train_loss_last: {:.6f}\n", s.last_loss);
  if (final_eval.targets > 0) {
    fmt::print("val_loss: {:.6f}\n", final_eval.loss());
    fmt::print("val_bits_per_byte: {:.6f}\n", final_eval.bits_per_byte());
  }
  fmt::print("seconds: {:.3f}\n", seconds);
  fmt::print("out: {}\n", *o.out);
  return exit_ok;
}

/// `rodimus eval`: the held-out split of --data through the model, or (--list-heldout) its
/// file list.
template <class W>
int run_eval(const Options& o) {
  namespace fs = std::filesystem;
  using clock = std::chrono::steady_clock;
  std::vector<std::string> ext = o.extensions, exclude = o.exclude_dirs;
  int seq = o.seq;
  std::string filter_from = "command line";
  if (!o.list_heldout) {
    // a model trained by rodimus train records its data filter and window length
    std::ifstream in(fs::path(o.model) / train::trainer_state_file_name, std::ios::binary);
    if (in) {
      try {
        const auto extra = nlohmann::json::parse(in).value("extra", nlohmann::json());
        if (extra.is_object()) {
          const auto run = extra.value("run", nlohmann::json());
          if (ext.empty() && exclude.empty() && run.is_object()) {
            ext = run.value("ext", std::vector<std::string>{});
            exclude = run.value("exclude_dirs", std::vector<std::string>{});
            filter_from = std::string(train::trainer_state_file_name);
          }
          if (seq == 0) seq = extra.value("seq_len", 0);
        }
      } catch (const nlohmann::json::exception&) {
        // not a trainer state we understand: the command line's settings stand
      }
    }
  }
  if (seq == 0) seq = 256;
  const train::CorpusOptions copt = corpus_options(ext, exclude);
  if (o.list_heldout) {
    // the files eval scores: held out and valid UTF-8
    for (const auto& f : train::corpus_files(o.data, copt)) {
      const fs::path path = fs::path(o.data) / f.path;
      if (f.heldout && io::detail::is_valid_utf8(io::read_file_bytes(path)))
        fmt::print("{}\n", path.string());
    }
    return exit_ok;
  }
  const ModelConfig cfg = load_model_config(o.model);
  Options to = o;
  const io::Tokenizer tok = load_tokenizer(to);
  const auto t0 = clock::now();
  const train::Corpus corpus = train::load_corpus(o.data, tok, copt);
  if (corpus.heldout.targets() == 0)
    throw Error("no held-out text under '" + o.data + "' (every held-out file was skipped)");
  for (const auto id : corpus.heldout.ids)
    if (id >= cfg.vocab_size)
      throw Error("the tokenizer gives id " + std::to_string(id) + ", outside the vocabulary of " +
                  std::to_string(cfg.vocab_size) + " of " + o.model);
  const Model<Space, W> model = load_model<W>(o.model, cfg);
  const auto t1 = clock::now();
  const train::EvalResult r = train::evaluate_model(model, corpus.heldout, seq, o.batch);
  const double eval_s = std::chrono::duration<double>(clock::now() - t1).count();
  fmt::print("model: {}\n", o.model);
  fmt::print("data: {}\n", o.data);
  fmt::print("filter_from: {}\n", filter_from);
  fmt::print("files_heldout: {}\n", corpus.heldout.files);
  fmt::print("bytes: {}\n", corpus.heldout.bytes);
  fmt::print("tokens: {}\n", r.targets);
  fmt::print("windows: {}\n", r.windows);
  fmt::print("seq: {}\n", seq);
  fmt::print("val_loss: {:.6f}\n", r.loss());
  fmt::print("val_bits_per_byte: {:.6f}\n", r.bits_per_byte());
  fmt::print("nats: {:.6f}\n", r.nats);
  fmt::print("load_seconds: {:.3f}\n", std::chrono::duration<double>(t1 - t0).count());
  fmt::print("eval_seconds: {:.3f}\n", eval_s);
  fmt::print("tokens_per_second: {:.1f}\n", eval_s > 0 ? double(r.targets) / eval_s : 0.0);
  return exit_ok;
}

}  // namespace rodimus::cli
