// Command-line parsing of the rodimus tool: subcommands, options, token id lists, usage text.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace rodimus::cli {

/// Exit status of a successful run, a runtime failure (loading, I/O) and a usage error.
inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1;
inline constexpr int exit_usage = 2;

/// A wrong command line: the message names the problem; the tool prints it with the usage
/// and exits with `exit_usage`.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Command {
  Help,
  Version,
  Info,
  Logits,
  Generate,
  Chat,
  Tokenize,
  Detokenize,
  TrainTokenizer,
  Train,
  Eval
};

/// Weight storage type in memory.
enum class WeightDType { F32, BF16 };

inline std::string_view dtype_name(WeightDType d) { return d == WeightDType::F32 ? "f32" : "bf16"; }

/// Everything the command line asked for.
struct Options {
  Command command = Command::Help;
  std::string model;                     ///< --model DIR
  std::optional<std::string> tokenizer;  ///< --tokenizer FILE (tokenize, detokenize)
  std::vector<std::int32_t> ids;         ///< --ids 5,17,3
  bool has_ids = false;                  ///< --ids was given
  std::optional<std::string> prompt;     ///< --prompt TEXT (generate)
  std::optional<std::string> text;       ///< --text TEXT (tokenize)
  std::string system;                    ///< --system TEXT (chat)
  std::optional<std::string> out;        ///< --out FILE (logits)
  int max_new_tokens = 20;               ///< -n N (generate: 20, chat: 256 per answer)
  bool stop_at_eos = false;              ///< --stop-at-eos (generate --ids)
  bool ignore_eos = false;               ///< --ignore-eos (generate --prompt, chat)
  double temperature = 0.0;              ///< --temperature T (0 = greedy)
  int top_k = 0;                         ///< --top-k K (0 = off)
  double top_p = 1.0;                    ///< --top-p P (1 = off)
  double min_p = 0.0;                    ///< --min-p P (0 = off)
  double repetition_penalty = 1.0;       ///< --repetition-penalty R (1 = off)
  std::uint64_t seed = 0;                ///< --seed S
  std::vector<std::string> stops;        ///< --stop STR, repeatable
  int max_context = 0;                   ///< --max-context N (0 = the model's own limit)
  WeightDType dtype = WeightDType::F32;  ///< --dtype f32|bf16
  // train-tokenizer
  std::string input;                      ///< --input DIR
  int vocab = 0;                          ///< --vocab N
  std::vector<std::string> extensions;    ///< --ext .py, repeatable (none: every file)
  std::vector<std::string> exclude_dirs;  ///< --exclude-dir NAME, repeatable
  std::vector<std::string> specials;      ///< --special TOKEN, repeatable
  int min_frequency = 0;                  ///< --min-frequency F
  bool skip_heldout = false;              ///< --skip-heldout
  std::string pattern = "code";           ///< --pattern code|gpt2
  // train, eval
  std::string data;               ///< --data DIR (train, eval)
  std::string config;             ///< --config FILE (train)
  std::int64_t steps = 0;         ///< --steps N (0: fit --minutes)
  double minutes = 0.0;           ///< --minutes M (0: no time limit)
  int batch = 16;                 ///< --batch B (train: sequences per step; eval: windows per call)
  int seq = 0;                    ///< --seq T (0: train 256; eval: the checkpoint's)
  int micro_batches = 1;          ///< --micro-batches M
  double lr = 1e-3;               ///< --lr X
  double min_lr = -1.0;           ///< --min-lr X (default lr / 10)
  std::int64_t warmup = 100;      ///< --warmup N
  double weight_decay = 0.1;      ///< --weight-decay X
  double clip = 1.0;              ///< --clip X (0: off)
  std::int64_t eval_every = 200;  ///< --eval-every N (0: only at the end)
  std::int64_t eval_windows = 32;       ///< --eval-windows N
  std::int64_t checkpoint_every = 500;  ///< --checkpoint-every N (0: only at the end)
  bool resume = false;                  ///< --resume
  bool list_heldout = false;            ///< --list-heldout (eval)
  bool seen_train_seed = false;         ///< --seed given to train
};

/// The usage text printed by `rodimus help` and after every usage error.
inline std::string usage_text() {
  return R"(usage: rodimus <command> [options] [--kokkos-*...]

Runs Rodimus / Rodimus+ language models (a directory with config.json and
model.safetensors or a sharded model.safetensors.index.json; text commands
also need its tokenizer.json).

commands:
  info      --model DIR                  print the configuration, parameter count,
                                         decode state size, weight dtype, backend
  logits    --model DIR --ids LIST [--out FILE]
                                         run one forward pass; print the top-5 ids of
                                         the last position, and max |logit| and the sum
                                         over all T x V logits; --out writes `logits`
                                         F32 [T, V] and `input_ids` I64 [T] (safetensors)
  generate  --model DIR --ids LIST [-n N] [--stop-at-eos]
                                         greedy decoding: prints the N generated ids
                                         (default 20) comma-separated on stdout and a
                                         timing line on stderr; --stop-at-eos stops
                                         after a config eos id
  generate  --model DIR --prompt TEXT [-n N] [sampling options]
                                         streams the generated text to stdout (then a
                                         newline) and a summary line to stderr: token
                                         counts, prefill and decode tokens/s, state size;
                                         stops at an eos id of the config
  chat      --model DIR [--system TEXT] [-n N] [sampling options]
                                         a conversation in the Rodimus chat format: each
                                         line of stdin is a user turn, each answer (at
                                         most N tokens, default 256) goes to stdout with
                                         a newline; the state carries the conversation
  tokenize  (--model DIR | --tokenizer FILE) --text TEXT
                                         prints the token ids of TEXT comma-separated
  detokenize (--model DIR | --tokenizer FILE) --ids LIST
                                         prints the text of the ids
  train-tokenizer --input DIR --vocab N --out FILE [--ext EXT]... [--exclude-dir NAME]...
                  [--special TOKEN]... [--min-frequency F] [--pattern code|gpt2]
                  [--skip-heldout]
                                         learns a byte-level BPE of N tokens from the
                                         files under DIR and writes its tokenizer.json;
                                         prints a summary (files, bytes, merges, time,
                                         bytes per token of the input)
  train     --data DIR --tokenizer FILE --config FILE --out DIR [--minutes M] [--steps N]
            [--batch B] [--seq T] [--lr X] [--resume] [training options]
                                         trains the model of the config on the files under
                                         DIR (5 % of them held out), writing checkpoints and
                                         train_log.jsonl to --out; a progress line on stderr,
                                         a summary on stdout. Rodimus and Rodimus+
                                         configs (n_layer = 0: a bigram model)
  eval      --model DIR --data DIR [--seq T] [--batch B] [--dtype f32|bf16]
                                         held-out loss of the model on the files under DIR
                                         (the 5 % that train holds out): nats per token and
                                         bits per byte
  eval      --data DIR --list-heldout    prints the held-out files that eval scores (valid
                                         UTF-8), one path a line
  help      print this text (also -h, --help)

options:
  --model DIR       model directory
  --tokenizer FILE  a tokenizer.json (tokenize, detokenize)
  --ids LIST        comma-separated token ids, e.g. 5,17,3
  --prompt TEXT     prompt text, encoded as is (special tokens written in it count)
  --text TEXT       text to tokenize
  --system TEXT     system message of a chat
  --out FILE        safetensors file for the logits (logits); the tokenizer.json
                    to write (train-tokenizer)
  -n, --max-new-tokens N
                    tokens to generate, N >= 0 (generate, chat)
  --stop-at-eos     stop after generating an eos id of the config (generate --ids)
  --dtype f32|bf16  weight storage type in memory (default f32); arithmetic is fp32
  --version         print the version
  --kokkos-*        passed to Kokkos, e.g. --kokkos-threads=4 (Kokkos 3) or
                    --kokkos-num-threads=4 (Kokkos 4); OMP_NUM_THREADS works too

train-tokenizer options:
  --input DIR       directory read recursively (in sorted order); files that are not
                    valid UTF-8 are skipped and counted
  --vocab N         tokens in all: 256 byte symbols + merges + special tokens
  --ext EXT         read only files whose name ends in EXT (e.g. .py); repeatable
  --exclude-dir NAME
                    skip directories called NAME, or at the path NAME relative to
                    DIR when it holds a '/' (e.g. idlelib/idle_test); repeatable
  --special TOKEN   a special token (e.g. '<|endoftext|>'), given the last ids; repeatable
  --min-frequency F merge only pairs seen at least F times (default 0: any)
  --skip-heldout    leave out the 5 % of the files that train and eval hold out
  --pattern code|gpt2
                    pre-tokenizer regex: code (Llama 3 / cl100k, default) or gpt2

sampling options (generate --prompt, chat; the default is greedy):
  --temperature T   T >= 0, 0 = greedy (default 0)
  --top-k K         keep the K most likely tokens, 0 = all (default 0)
  --top-p P         keep the most likely tokens up to probability P, 0 < P <= 1 (default 1)
  --min-p P         drop tokens below P times the top probability, 0 <= P <= 1 (default 0)
  --repetition-penalty R
                    R > 0; seen tokens' logits divided (positive) or multiplied
                    (negative) by R (default 1: off)
  --seed S          seed of the sampler, 0 <= S < 2^64 (default 0)
  --stop STR        stop when the text reaches STR (not printed); repeatable
  --ignore-eos      do not stop at the config's eos ids
  --max-context N   positions the sequence may reach (default: max_position_embeddings
                    for Rodimus+ without a window, else unlimited); a longer prompt is
                    an error, generation stops when it is reached

train and eval options:
  --data DIR        corpus directory, read recursively; files not valid UTF-8 skipped
  --ext EXT, --exclude-dir NAME
                    as for train-tokenizer; eval defaults to the filter a trained
                    model's trainer_state.json records
  --tokenizer FILE  tokenizer.json (train: copied to --out; eval: default
                    --model's tokenizer.json); needs the token <|endoftext|>
  --config FILE     model config.json (published keys only; unknown keys are errors)
  --out DIR         checkpoint directory (config.json, model.safetensors in bf16,
                    optimizer.safetensors, trainer_state.json, tokenizer.json,
                    train_log.jsonl)
  --steps N         optimiser steps, the schedule's length (default: fit --minutes)
  --minutes M       stop after M minutes (checkpoint saved; --resume continues)
  --batch B         train: sequences per step (default 16); eval: windows per call (8)
  --seq T           tokens per sequence / eval window (train default 256; eval
                    default the model's training --seq, else 256)
  --micro-batches M split each step into M micro-batches (gradient accumulation)
  --lr X, --min-lr X, --warmup N
                    peak lr (1e-3), cosine floor (lr / 10), linear warm-up steps (100)
  --weight-decay X  AdamW decay of the matrices (0.1); --clip X: gradient norm (1, 0 off)
  --seed S          data order and initial weights (default 1)
  --eval-every N    steps between held-out evaluations (200; 0: only at the end)
  --eval-windows N  held-out windows per periodic evaluation (32)
  --checkpoint-every N
                    steps between checkpoints (500; 0: only at the end)
  --resume          continue the checkpoint in --out exactly (same data, seed, batch)

exit status: 0 success, 1 runtime error (unreadable model, write failure), 2 usage error
)";
}

/// Parses "5,17,3" into token ids. Each entry is a decimal integer in [0, 2^31), optionally
/// surrounded by spaces. Throws UsageError naming the bad entry.
inline std::vector<std::int32_t> parse_ids(std::string_view text) {
  std::vector<std::int32_t> ids;
  const auto is_space = [](char c) { return c == ' ' || c == '\t'; };
  std::size_t start = 0;
  for (std::size_t index = 0;; ++index) {
    const std::size_t comma = text.find(',', start);
    std::string_view item = text.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    while (!item.empty() && is_space(item.front())) item.remove_prefix(1);
    while (!item.empty() && is_space(item.back())) item.remove_suffix(1);
    if (item.empty()) {
      if (text.find_first_not_of(" \t") == std::string_view::npos)
        throw UsageError("--ids is empty: give at least one token id");
      throw UsageError("--ids: entry " + std::to_string(index) + " is empty in '" +
                       std::string(text) + "'");
    }
    std::int64_t v = 0;
    const auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (ec == std::errc::result_out_of_range ||
        (ec == std::errc() && ptr == item.data() + item.size() &&
         v > std::numeric_limits<std::int32_t>::max()))
      throw UsageError("--ids: token id '" + std::string(item) + "' is too large");
    if (ec != std::errc() || ptr != item.data() + item.size() || item.front() == '+')
      throw UsageError("--ids: '" + std::string(item) +
                       "' is not a token id (a non-negative integer)");
    if (v < 0) throw UsageError("--ids: token id " + std::to_string(v) + " is negative");
    ids.push_back(static_cast<std::int32_t>(v));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return ids;
}

/// Parses the value of -n: a decimal integer in [0, 2^31).
inline int parse_count(std::string_view flag, std::string_view text) {
  std::int64_t v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec == std::errc() && ptr == text.data() + text.size() && v < 0)
    throw UsageError(std::string(flag) + " must be non-negative, got " + std::string(text));
  if (ec == std::errc::result_out_of_range ||
      (ec == std::errc() && ptr == text.data() + text.size() &&
       v > std::numeric_limits<std::int32_t>::max()))
    throw UsageError(std::string(flag) + " is too large: " + std::string(text));
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size())
    throw UsageError(std::string(flag) + " needs a non-negative integer, got '" +
                     std::string(text) + "'");
  return static_cast<int>(v);
}

/// Parses a finite decimal number (e.g. 0.7, 1e-3) for `flag`.
inline double parse_number(std::string_view flag, std::string_view text) {
  double v = 0.0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || !std::isfinite(v))
    throw UsageError(std::string(flag) + " needs a number, got '" + std::string(text) + "'");
  return v;
}

/// Parses a seed: a decimal integer in [0, 2^64).
inline std::uint64_t parse_seed(std::string_view flag, std::string_view text) {
  std::uint64_t v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size())
    throw UsageError(std::string(flag) + " needs an integer in [0, 2^64), got '" +
                     std::string(text) + "'");
  return v;
}

/// True for an argument Kokkos consumes (`--kokkos-...`); the tool forwards these.
inline bool is_kokkos_arg(std::string_view a) { return a.starts_with("--kokkos-"); }

/// Parses the arguments after the program name, `--kokkos-*` ones already removed.
/// Throws UsageError for anything it does not accept.
inline Options parse_args(const std::vector<std::string>& args) {
  Options o;
  if (args.empty()) throw UsageError("no command given");
  const std::string& cmd = args[0];
  if (cmd == "help" || cmd == "-h" || cmd == "--help") {
    o.command = Command::Help;
    return o;  // anything after help is ignored
  }
  if (cmd == "--version") {
    if (args.size() > 1) throw UsageError("unexpected argument '" + args[1] + "' after --version");
    o.command = Command::Version;
    return o;
  }
  if (cmd == "info") {
    o.command = Command::Info;
  } else if (cmd == "logits") {
    o.command = Command::Logits;
  } else if (cmd == "generate") {
    o.command = Command::Generate;
  } else if (cmd == "chat") {
    o.command = Command::Chat;
  } else if (cmd == "tokenize") {
    o.command = Command::Tokenize;
  } else if (cmd == "detokenize") {
    o.command = Command::Detokenize;
  } else if (cmd == "train-tokenizer") {
    o.command = Command::TrainTokenizer;
  } else if (cmd == "train") {
    o.command = Command::Train;
  } else if (cmd == "eval") {
    o.command = Command::Eval;
  } else if (cmd.starts_with("-")) {
    throw UsageError("expected a command before option '" + cmd + "'");
  } else {
    throw UsageError("unknown command '" + cmd + "'");
  }
  const Command c = o.command;
  const bool text_only = c == Command::Tokenize || c == Command::Detokenize;
  const bool generates = c == Command::Generate || c == Command::Chat;
  const bool trains = c == Command::TrainTokenizer;
  const bool learns = c == Command::Train;
  const bool evals = c == Command::Eval;
  const bool reads_corpus = trains || learns || evals;

  bool seen_model = false, seen_out = false, seen_n = false, seen_dtype = false, seen_eos = false,
       seen_prompt = false, seen_text = false, seen_tokenizer = false, seen_system = false,
       seen_temperature = false, seen_top_k = false, seen_top_p = false, seen_min_p = false,
       seen_penalty = false, seen_seed = false, seen_ignore_eos = false, seen_context = false,
       seen_input = false, seen_vocab = false, seen_min_frequency = false, seen_pattern = false,
       seen_data = false, seen_config = false, seen_steps = false, seen_minutes = false,
       seen_batch = false, seen_seq = false, seen_micro = false, seen_lr = false,
       seen_min_lr = false, seen_warmup = false, seen_wd = false, seen_clip = false,
       seen_eval_every = false, seen_eval_windows = false, seen_ckpt_every = false;
  std::string sampling_flag;  // the first sampling option, for "needs --prompt"
  const auto once = [&](bool& seen, std::string_view name) {
    if (seen) throw UsageError("option '" + std::string(name) + "' given twice");
    seen = true;
  };
  const auto only_if = [&](std::string_view name, bool valid) {
    if (!valid)
      throw UsageError("option '" + std::string(name) + "' is not valid for '" + cmd + "'");
  };
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "-h" || arg == "--help") {
      o = Options{};
      o.command = Command::Help;
      return o;
    }
    // --name=value or --name value
    std::string name = arg;
    std::optional<std::string> inline_value;
    if (arg.starts_with("--")) {
      if (const auto eq = arg.find('='); eq != std::string::npos) {
        name = arg.substr(0, eq);
        inline_value = arg.substr(eq + 1);
      }
    }
    const auto value = [&]() -> std::string {
      if (inline_value) return *inline_value;
      if (i + 1 >= args.size() || args[i + 1].starts_with("--"))
        throw UsageError("option '" + name + "' needs a value");
      return args[++i];
    };
    const auto flag = [&]() {
      if (inline_value) throw UsageError("option '" + name + "' takes no value");
    };
    // a sampling option: generate (--prompt only, checked below) and chat
    const auto sampling = [&](bool& seen) {
      only_if(name, generates);
      once(seen, name);
      if (sampling_flag.empty()) sampling_flag = name;
    };
    // a positive number / a non-negative one for the training options
    const auto positive_number = [&](std::string_view what) {
      const std::string v = value();
      const double x = parse_number(name, v);
      if (!(x > 0)) throw UsageError(std::string(what) + " must be positive, got " + v);
      return x;
    };
    const auto non_negative_number = [&](std::string_view what) {
      const std::string v = value();
      const double x = parse_number(name, v);
      if (!(x >= 0)) throw UsageError(std::string(what) + " must be non-negative, got " + v);
      return x;
    };
    const auto at_least_one = [&]() {
      const int n = parse_count(name, value());
      if (n < 1) throw UsageError(name + " must be at least 1");
      return n;
    };
    if (name == "--seed" && learns) {
      once(o.seen_train_seed, name);
      o.seed = parse_seed(name, value());
    } else if (name == "--data") {
      only_if(name, learns || evals);
      once(seen_data, name);
      o.data = value();
      if (o.data.empty()) throw UsageError("option '--data' needs a value");
    } else if (name == "--config") {
      only_if(name, learns);
      once(seen_config, name);
      o.config = value();
      if (o.config.empty()) throw UsageError("option '--config' needs a value");
    } else if (name == "--steps") {
      only_if(name, learns);
      once(seen_steps, name);
      o.steps = at_least_one();
    } else if (name == "--minutes") {
      only_if(name, learns);
      once(seen_minutes, name);
      o.minutes = positive_number("--minutes");
    } else if (name == "--batch") {
      only_if(name, learns || evals);
      once(seen_batch, name);
      o.batch = at_least_one();
    } else if (name == "--seq") {
      only_if(name, learns || evals);
      once(seen_seq, name);
      o.seq = at_least_one();
    } else if (name == "--micro-batches") {
      only_if(name, learns);
      once(seen_micro, name);
      o.micro_batches = at_least_one();
    } else if (name == "--lr") {
      only_if(name, learns);
      once(seen_lr, name);
      o.lr = positive_number("--lr");
    } else if (name == "--min-lr") {
      only_if(name, learns);
      once(seen_min_lr, name);
      o.min_lr = non_negative_number("--min-lr");
    } else if (name == "--warmup") {
      only_if(name, learns);
      once(seen_warmup, name);
      o.warmup = parse_count(name, value());
    } else if (name == "--weight-decay") {
      only_if(name, learns);
      once(seen_wd, name);
      o.weight_decay = non_negative_number("--weight-decay");
    } else if (name == "--clip") {
      only_if(name, learns);
      once(seen_clip, name);
      o.clip = non_negative_number("--clip");
    } else if (name == "--eval-every") {
      only_if(name, learns);
      once(seen_eval_every, name);
      o.eval_every = parse_count(name, value());
    } else if (name == "--eval-windows") {
      only_if(name, learns);
      once(seen_eval_windows, name);
      o.eval_windows = at_least_one();
    } else if (name == "--checkpoint-every") {
      only_if(name, learns);
      once(seen_ckpt_every, name);
      o.checkpoint_every = parse_count(name, value());
    } else if (name == "--resume") {
      only_if(name, learns);
      flag();
      if (o.resume) throw UsageError("option '--resume' given twice");
      o.resume = true;
    } else if (name == "--list-heldout") {
      only_if(name, evals);
      flag();
      if (o.list_heldout) throw UsageError("option '--list-heldout' given twice");
      o.list_heldout = true;
    } else if (name == "--model") {
      only_if(name, !trains && !learns);
      once(seen_model, name);
      o.model = value();
      if (o.model.empty()) throw UsageError("option '--model' needs a value");
    } else if (name == "--tokenizer") {
      only_if(name, text_only || learns || evals);
      once(seen_tokenizer, name);
      o.tokenizer = value();
      if (o.tokenizer->empty()) throw UsageError("option '--tokenizer' needs a value");
    } else if (name == "--ids") {
      only_if(name, c == Command::Logits || c == Command::Generate || c == Command::Detokenize);
      once(o.has_ids, name);
      o.ids = parse_ids(value());
    } else if (name == "--prompt") {
      only_if(name, c == Command::Generate);
      once(seen_prompt, name);
      o.prompt = value();
    } else if (name == "--text") {
      only_if(name, c == Command::Tokenize);
      once(seen_text, name);
      o.text = value();
    } else if (name == "--system") {
      only_if(name, c == Command::Chat);
      once(seen_system, name);
      o.system = value();
    } else if (name == "--out") {
      only_if(name, c == Command::Logits || trains || learns);
      once(seen_out, name);
      o.out = value();
      if (o.out->empty()) throw UsageError("option '--out' needs a value");
    } else if (name == "-n" || name == "--max-new-tokens") {
      only_if(name, generates);
      once(seen_n, "-n");
      o.max_new_tokens = parse_count(name, value());
    } else if (name == "--stop-at-eos") {
      only_if(name, c == Command::Generate);
      flag();
      once(seen_eos, name);
      o.stop_at_eos = true;
    } else if (name == "--ignore-eos") {
      sampling(seen_ignore_eos);
      flag();
      o.ignore_eos = true;
    } else if (name == "--temperature") {
      sampling(seen_temperature);
      const std::string v = value();
      o.temperature = parse_number(name, v);
      if (o.temperature < 0.0)
        throw UsageError("--temperature must be >= 0 (0 = greedy), got " + v);
    } else if (name == "--top-k") {
      sampling(seen_top_k);
      o.top_k = parse_count(name, value());
    } else if (name == "--top-p") {
      sampling(seen_top_p);
      const std::string v = value();
      o.top_p = parse_number(name, v);
      if (!(o.top_p > 0.0 && o.top_p <= 1.0))
        throw UsageError("--top-p must be in (0, 1], got " + v);
    } else if (name == "--min-p") {
      sampling(seen_min_p);
      const std::string v = value();
      o.min_p = parse_number(name, v);
      if (!(o.min_p >= 0.0 && o.min_p <= 1.0))
        throw UsageError("--min-p must be in [0, 1], got " + v);
    } else if (name == "--repetition-penalty") {
      sampling(seen_penalty);
      const std::string v = value();
      o.repetition_penalty = parse_number(name, v);
      if (!(o.repetition_penalty > 0.0))
        throw UsageError("--repetition-penalty must be > 0 (1 = off), got " + v);
    } else if (name == "--seed") {
      sampling(seen_seed);
      o.seed = parse_seed(name, value());
    } else if (name == "--stop") {
      only_if(name, generates);
      if (sampling_flag.empty()) sampling_flag = name;
      o.stops.push_back(value());
      if (o.stops.back().empty()) throw UsageError("--stop needs a non-empty string");
    } else if (name == "--max-context") {
      sampling(seen_context);
      o.max_context = parse_count(name, value());
      if (o.max_context == 0) throw UsageError("--max-context must be at least 1");
    } else if (name == "--input") {
      only_if(name, trains);
      once(seen_input, name);
      o.input = value();
      if (o.input.empty()) throw UsageError("option '--input' needs a value");
    } else if (name == "--vocab") {
      only_if(name, trains);
      once(seen_vocab, name);
      o.vocab = parse_count(name, value());
    } else if (name == "--ext") {
      only_if(name, reads_corpus);
      std::string e = value();
      if (e.empty() || e == ".") throw UsageError("--ext needs an extension such as .py");
      if (e.front() != '.') e.insert(e.begin(), '.');
      o.extensions.push_back(std::move(e));
    } else if (name == "--exclude-dir") {
      only_if(name, reads_corpus);
      o.exclude_dirs.push_back(value());
      if (o.exclude_dirs.back().empty()) throw UsageError("--exclude-dir needs a directory name");
    } else if (name == "--special") {
      only_if(name, trains);
      std::string t = value();
      if (t.empty()) throw UsageError("--special needs a non-empty token");
      for (const std::string& s : o.specials)
        if (s == t) throw UsageError("--special '" + t + "' given twice");
      o.specials.push_back(std::move(t));
    } else if (name == "--skip-heldout") {
      only_if(name, trains);
      flag();
      if (o.skip_heldout) throw UsageError("option '--skip-heldout' given twice");
      o.skip_heldout = true;
    } else if (name == "--min-frequency") {
      only_if(name, trains);
      once(seen_min_frequency, name);
      o.min_frequency = parse_count(name, value());
    } else if (name == "--pattern") {
      only_if(name, trains);
      once(seen_pattern, name);
      o.pattern = value();
      if (o.pattern != "code" && o.pattern != "gpt2")
        throw UsageError("--pattern must be code or gpt2, got '" + o.pattern + "'");
    } else if (name == "--dtype") {
      only_if(name, !text_only && !trains && !learns);
      once(seen_dtype, name);
      const std::string d = value();
      if (d == "f32") {
        o.dtype = WeightDType::F32;
      } else if (d == "bf16") {
        o.dtype = WeightDType::BF16;
      } else {
        throw UsageError("--dtype must be f32 or bf16, got '" + d + "'");
      }
    } else if (arg.starts_with("-")) {
      throw UsageError("unknown option '" + name + "' for '" + cmd + "'");
    } else {
      throw UsageError("unexpected argument '" + arg + "'");
    }
  }
  if (text_only) {
    if (seen_model == seen_tokenizer)
      throw UsageError("'" + cmd + "' needs either --model DIR or --tokenizer FILE");
  } else if (trains) {
    if (!seen_input) throw UsageError("missing --input DIR");
    if (!seen_vocab) throw UsageError("missing --vocab N");
    if (!seen_out) throw UsageError("missing --out FILE");
    const std::size_t least = 256 + o.specials.size();
    if (static_cast<std::size_t>(o.vocab) < least)
      throw UsageError("--vocab " + std::to_string(o.vocab) + " is below " + std::to_string(least) +
                       " (256 byte symbols + " + std::to_string(o.specials.size()) +
                       " special token(s))");
  } else if (learns) {
    if (!seen_data) throw UsageError("missing --data DIR");
    if (!seen_tokenizer) throw UsageError("missing --tokenizer FILE");
    if (!seen_config) throw UsageError("missing --config FILE");
    if (!seen_out) throw UsageError("missing --out DIR");
    if (!seen_steps && !seen_minutes)
      throw UsageError("'train' needs --steps N, --minutes M or both");
    if (o.batch % o.micro_batches != 0)
      throw UsageError("--micro-batches " + std::to_string(o.micro_batches) +
                       " does not divide --batch " + std::to_string(o.batch));
    if (o.min_lr < 0) o.min_lr = o.lr / 10;
    if (o.min_lr > o.lr) throw UsageError("--min-lr must not exceed --lr");
    if (o.seq == 0) o.seq = 256;
  } else if (evals) {
    if (!seen_data) throw UsageError("missing --data DIR");
    if (o.list_heldout) {
      if (seen_model || seen_tokenizer || seen_seq || seen_batch)
        throw UsageError("--list-heldout takes only --data, --ext and --exclude-dir");
    } else if (!seen_model) {
      throw UsageError("missing --model DIR");
    }
    if (!seen_batch) o.batch = 8;
  } else if (!seen_model) {
    throw UsageError("missing --model DIR");
  }
  switch (c) {
    case Command::Logits:
      if (!o.has_ids) throw UsageError("missing --ids LIST");
      break;
    case Command::Generate:
      if (o.has_ids && seen_prompt)
        throw UsageError("'generate' takes either --ids LIST or --prompt TEXT, not both");
      if (!o.has_ids && !seen_prompt) throw UsageError("missing --ids LIST or --prompt TEXT");
      if (o.has_ids && !sampling_flag.empty())
        throw UsageError("option '" + sampling_flag +
                         "' needs --prompt (generate --ids is greedy; see --stop-at-eos)");
      if (seen_prompt && seen_eos)
        throw UsageError(
            "option '--stop-at-eos' is for --ids (--prompt stops at eos unless "
            "--ignore-eos)");
      break;
    case Command::Chat:
      if (!seen_n) o.max_new_tokens = 256;
      break;
    case Command::Tokenize:
      if (!seen_text) throw UsageError("missing --text TEXT");
      break;
    case Command::Detokenize:
      if (!o.has_ids) throw UsageError("missing --ids LIST");
      break;
    default:
      break;
  }
  return o;
}

}  // namespace rodimus::cli
