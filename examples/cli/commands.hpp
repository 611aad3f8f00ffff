// The model and text commands of the rodimus tool: info, logits, generate (ids or text), chat,
// tokenize and detokenize, on Kokkos' default space.
#pragma once

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <limits>
#include <rodimus/rodimus.hpp>
#include <set>
#include <string>
#include <vector>

#include "args.hpp"

namespace rodimus::cli {

using Space = Kokkos::DefaultExecutionSpace;
using HostLogits = Kokkos::View<float**, Kokkos::LayoutRight, Kokkos::HostSpace>;

/// Loads the config of model directory `dir`; throws rodimus::Error when `dir` is no directory.
inline ModelConfig load_model_config(const std::string& dir) {
  std::error_code ec;
  const auto st = std::filesystem::status(dir, ec);
  if (!std::filesystem::exists(st)) throw Error("model directory '" + dir + "' does not exist");
  if (!std::filesystem::is_directory(st)) throw Error("'" + dir + "' is not a model directory");
  return io::load_config(dir);
}

/// Throws UsageError when a token id lies outside [0, vocab).
inline void check_vocabulary(const std::vector<std::int32_t>& ids, const ModelConfig& cfg,
                             const std::string& model) {
  for (std::size_t i = 0; i < ids.size(); ++i)
    if (ids[i] >= cfg.vocab_size)
      throw UsageError("--ids: token id " + std::to_string(ids[i]) + " at index " +
                       std::to_string(i) + " is outside the vocabulary [0, " +
                       std::to_string(cfg.vocab_size) + ") of " + model);
}

inline std::string_view block_type_name(const ModelConfig& cfg) {
  return cfg.is_plus() ? "rodimus_plus" : "rodimus";
}

/// Index of the largest entry of `row` (the first one on ties).
inline int argmax(const float* row, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (row[i] > row[best]) best = i;
  return best;
}

/// The model in `dir` (config `cfg` already read), its weights stored as W.
template <class W>
Model<Space, W> load_model(const std::string& dir, const ModelConfig& cfg) {
  return Model<Space, W>(cfg, io::Checkpoint::open(dir));
}

/// `rodimus info`: configuration, sizes, dtypes and backend, one `key: value` per line.
template <class W>
int run_info(const Options& o) {
  const ModelConfig cfg = load_model_config(o.model);
  const io::Checkpoint ckpt = io::Checkpoint::open(o.model);
  const Model<Space, W> model(cfg, ckpt);
  const State<Space> state = model.make_state(1);

  // dtypes of the stored tensors, e.g. "F32" or "BF16,F32" for a mixed checkpoint
  std::set<std::string> disk;
  for (const auto& name : ckpt.names())
    disk.insert(std::string(io::st_dtype_name(ckpt.find(name)->dtype)));
  std::string disk_dtypes;
  for (const auto& d : disk) disk_dtypes += (disk_dtypes.empty() ? "" : ",") + d;

  const auto yes_no = [](bool b) { return b ? "true" : "false"; };
  std::string eos;
  for (int id : cfg.eos_token_ids) eos += (eos.empty() ? "" : ",") + std::to_string(id);

  fmt::print("model: {}\n", o.model);
  fmt::print("block_type: {}\n", block_type_name(cfg));
  fmt::print("d_model: {}\n", cfg.d_model);
  fmt::print("n_layer: {}\n", cfg.n_layer);
  fmt::print("vocab_size: {}\n", cfg.vocab_size);
  fmt::print("d_inner: {}\n", cfg.d_inner());
  fmt::print("mem_size: {}\n", cfg.mem_size());
  fmt::print("d_conv: {}\n", cfg.d_conv());
  fmt::print("low_rank: {}\n", cfg.low_rank());
  if (cfg.is_plus()) {
    fmt::print("num_heads: {}\n", cfg.num_heads());
    fmt::print("num_heads_k: {}\n", cfg.num_heads_k());
    fmt::print("num_heads_v: {}\n", cfg.num_heads_v());
    fmt::print("head_dim: {}\n", cfg.head_dim());
    if (cfg.attn.window_size > 0) {
      fmt::print("window_size: {}\n", cfg.attn.window_size);
    } else {
      fmt::print("window_size: none\n");
    }
    fmt::print("rotary_dim: {}\n", cfg.rotary_dim());
    fmt::print("ffn_dim: {}\n", cfg.ffn_dim());
  }
  fmt::print("tie_word_embeddings: {}\n", yes_no(cfg.tie_word_embeddings));
  fmt::print("max_position_embeddings: {}\n", cfg.max_position_embeddings);
  fmt::print("bos_token_id: {}\n",
             cfg.bos_token_id >= 0 ? std::to_string(cfg.bos_token_id) : "none");
  fmt::print("eos_token_ids: {}\n", eos.empty() ? "none" : eos);
  fmt::print("parameters: {}\n", model.parameter_count());
  fmt::print("state_bytes_per_sequence: {}\n", state.bytes_per_sequence());
  if (cfg.is_plus()) fmt::print("kv_cache_rows: {}\n", state.kv_rows());
  fmt::print("checkpoint_tensors: {}\n", ckpt.names().size());
  fmt::print("weight_dtype_on_disk: {}\n", disk_dtypes.empty() ? "none" : disk_dtypes);
  fmt::print("weight_dtype_in_memory: {}\n", dtype_name(o.dtype));
  fmt::print("backend: {}\n", backend_name<Space>());
  fmt::print("concurrency: {}\n", Space().concurrency());
  return exit_ok;
}

/// `rodimus logits`: one forward pass over the ids; a summary on stdout, the logits [T, V]
/// optionally to a safetensors file.
template <class W>
int run_logits(const Options& o) {
  const ModelConfig cfg = load_model_config(o.model);
  check_vocabulary(o.ids, cfg, o.model);
  const Model<Space, W> model = load_model<W>(o.model, cfg);
  const int t = static_cast<int>(o.ids.size());
  const int v = cfg.vocab_size;
  State<Space> state = model.make_state(1, t);
  Workspace<Space> ws;

  // logits: [T, V]
  const auto logits = model.forward(state, ws, TokenBatch::single(o.ids), LogitsMode::All);
  HostLogits host("rodimus_cli::logits", t, v);
  Kokkos::deep_copy(host, logits);
  const float* data = host.data();
  const std::size_t count = std::size_t(t) * std::size_t(v);

  double sum = 0.0, max_abs = 0.0;
  for (std::size_t i = 0; i < count; ++i) {
    sum += data[i];
    max_abs = std::max(max_abs, std::fabs(double(data[i])));
  }
  // top-5 of the last position, larger logit first, smaller id first on ties
  const float* last = data + std::size_t(t - 1) * std::size_t(v);
  std::vector<int> order(static_cast<std::size_t>(v));
  for (int i = 0; i < v; ++i) order[std::size_t(i)] = i;
  const int k = std::min(5, v);
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int a, int b) {
    return last[a] > last[b] || (last[a] == last[b] && a < b);
  });
  std::string top;
  for (int i = 0; i < k; ++i)
    top += fmt::format("{}{}:{:.6f}", i ? " " : "", order[std::size_t(i)],
                       last[order[std::size_t(i)]]);

  // the file first: a failed write leaves no summary behind
  if (o.out) {
    const std::vector<std::int64_t> ids(o.ids.begin(), o.ids.end());
    const io::TensorWrite tensors[] = {
        {"input_ids", io::StDType::I64, {t}, ids.data()},
        {"logits", io::StDType::F32, {t, v}, data},
    };
    io::write_safetensors(*o.out, tensors,
                          {{"model", o.model}, {"weight_dtype", std::string(dtype_name(o.dtype))}});
  }
  fmt::print("model: {}\n", o.model);
  fmt::print("block_type: {}\n", block_type_name(cfg));
  fmt::print("weight_dtype_in_memory: {}\n", dtype_name(o.dtype));
  fmt::print("T: {}\n", t);
  fmt::print("V: {}\n", v);
  fmt::print("top5_last: {}\n", top);
  fmt::print("max_abs_logit: {:.6f}\n", max_abs);
  fmt::print("logit_sum: {:.6f}\n", sum);
  if (o.out) fmt::print("out: {}\n", *o.out);
  return exit_ok;
}

/// `rodimus generate`: prefill, then greedy argmax + decode one token at a time. The ids go to
/// stdout, comma-separated on one line; a timing line goes to stderr.
template <class W>
int run_generate(const Options& o) {
  using clock = std::chrono::steady_clock;
  const ModelConfig cfg = load_model_config(o.model);
  check_vocabulary(o.ids, cfg, o.model);
  const std::int64_t t = static_cast<std::int64_t>(o.ids.size());
  if (t + o.max_new_tokens > std::numeric_limits<std::int32_t>::max())
    throw UsageError("-n " + std::to_string(o.max_new_tokens) + " is too large for a prompt of " +
                     std::to_string(t) + " tokens");
  const Model<Space, W> model = load_model<W>(o.model, cfg);
  const int v = cfg.vocab_size;
  State<Space> state = model.make_state(1, static_cast<int>(t + o.max_new_tokens));
  Workspace<Space> ws;
  HostLogits host("rodimus_cli::logits", 1, v);
  const auto is_eos = [&](int id) {
    return std::find(cfg.eos_token_ids.begin(), cfg.eos_token_ids.end(), id) !=
           cfg.eos_token_ids.end();
  };

  std::vector<std::int32_t> out;
  out.reserve(static_cast<std::size_t>(o.max_new_tokens));
  double prefill_s = 0.0, decode_s = 0.0;
  int decoded = 0;
  if (o.max_new_tokens > 0) {
    const auto t0 = clock::now();
    Kokkos::deep_copy(host, model.prefill(state, ws, TokenBatch::single(o.ids), LogitsMode::Last));
    out.push_back(argmax(host.data(), v));
    const auto t1 = clock::now();
    prefill_s = std::chrono::duration<double>(t1 - t0).count();
    while (static_cast<int>(out.size()) < o.max_new_tokens &&
           !(o.stop_at_eos && is_eos(out.back()))) {
      const std::int32_t next[1] = {out.back()};
      Kokkos::deep_copy(host, model.decode(state, ws, next));
      out.push_back(argmax(host.data(), v));
      ++decoded;
    }
    decode_s = std::chrono::duration<double>(clock::now() - t1).count();
  }

  std::string line;
  for (std::size_t i = 0; i < out.size(); ++i) line += (i ? "," : "") + std::to_string(out[i]);
  fmt::print("{}\n", line);
  std::fflush(stdout);

  const auto rate = [](double n, double s) {
    return s > 0.0 ? fmt::format("{:.1f}", n / s) : std::string("n/a");
  };
  fmt::print(stderr,
             "rodimus: prefill {} tokens in {:.3f} ms ({} tokens/s), decode {} tokens in {:.3f} ms "
             "({} tokens/s), {} weights on {}\n",
             o.max_new_tokens > 0 ? t : 0, prefill_s * 1e3, rate(double(t), prefill_s), decoded,
             decode_s * 1e3, decoded > 0 ? rate(decoded, decode_s) : std::string("n/a"),
             dtype_name(o.dtype), backend_name<Space>());
  return exit_ok;
}

/// The tokenizer of the command: --tokenizer FILE, or DIR/tokenizer.json of --model DIR.
inline io::Tokenizer load_tokenizer(const Options& o) {
  std::error_code ec;
  if (o.tokenizer) {
    if (!std::filesystem::exists(*o.tokenizer, ec))
      throw Error("tokenizer file '" + *o.tokenizer + "' does not exist");
    return io::Tokenizer::from_file(*o.tokenizer);
  }
  const auto st = std::filesystem::status(o.model, ec);
  if (!std::filesystem::exists(st)) throw Error("model directory '" + o.model + "' does not exist");
  if (!std::filesystem::is_directory(st)) throw Error("'" + o.model + "' is not a model directory");
  const auto file = std::filesystem::path(o.model) / "tokenizer.json";
  if (!std::filesystem::exists(file, ec))
    throw Error("no tokenizer.json in model directory '" + o.model +
                "' (text commands need the model's Hugging Face tokenizer.json)");
  return io::Tokenizer::from_file(file);
}

/// `rodimus tokenize`: the ids of --text, comma-separated on one line.
inline int run_tokenize(const Options& o) {
  const io::Tokenizer tok = load_tokenizer(o);
  const auto ids = tok.encode(*o.text);
  std::string line;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) line += ',';
    line += std::to_string(ids[i]);
  }
  fmt::print("{}\n", line);
  return exit_ok;
}

/// `rodimus detokenize`: the text of --ids, then a newline.
inline int run_detokenize(const Options& o) {
  const io::Tokenizer tok = load_tokenizer(o);
  for (std::size_t i = 0; i < o.ids.size(); ++i)
    if (!tok.id_to_token(o.ids[i]))
      throw UsageError("--ids: token id " + std::to_string(o.ids[i]) + " at index " +
                       std::to_string(i) + " is not in the tokenizer's vocabulary (" +
                       std::to_string(tok.vocab_size()) + " tokens)");
  const std::string text = tok.decode(o.ids);
  std::fwrite(text.data(), 1, text.size(), stdout);
  fmt::print("\n");
  return exit_ok;
}

/// The context limit of the text commands: --max-context, else max_position_embeddings for
/// Rodimus+ without a window (its KV cache holds the whole sequence), else none (0).
inline int context_limit(const Options& o, const ModelConfig& cfg) {
  if (o.max_context > 0) return o.max_context;
  return cfg.is_plus() && cfg.window_back() < 0 ? cfg.max_position_embeddings : 0;
}

/// The generation settings of the command line.
inline GenerationConfig generation_config(const Options& o) {
  GenerationConfig g;
  g.max_new_tokens = o.max_new_tokens;
  g.sampler.temperature = o.temperature;
  g.sampler.top_k = o.top_k;
  g.sampler.top_p = o.top_p;
  g.sampler.min_p = o.min_p;
  g.sampler.repetition_penalty = o.repetition_penalty;
  g.sampler.seed = o.seed;
  g.stops = o.stops;
  g.stop_at_eos = !o.ignore_eos;
  g.max_context = o.max_context;
  return g;
}

/// Throws UsageError when the tokenizer gives ids the model does not have.
inline void check_text_ids(const std::vector<std::int32_t>& ids, const ModelConfig& cfg,
                           const std::string& what) {
  for (std::size_t i = 0; i < ids.size(); ++i)
    if (ids[i] >= cfg.vocab_size)
      throw UsageError(what + ": token " + std::to_string(i) + " has id " + std::to_string(ids[i]) +
                       ", outside the model's vocabulary of " + std::to_string(cfg.vocab_size) +
                       " (tokenizer.json does not fit the model)");
}

/// Writes a piece of generated text to stdout at once.
inline bool print_piece(std::string_view piece) {
  if (!piece.empty()) std::fwrite(piece.data(), 1, piece.size(), stdout);
  std::fflush(stdout);
  return true;
}

inline std::string rate_text(double per_second) {
  return per_second > 0.0 ? fmt::format("{:.1f}", per_second) : std::string("n/a");
}

/// The stderr summary of one generation.
inline std::string summary(const GenerationResult& r, std::size_t state_bytes) {
  return fmt::format(
      "prompt {} tokens, generated {} tokens (finish: {}), prefill {} tokens/s, decode {} "
      "tokens/s, state {} bytes ({:.2f} MiB)",
      r.prompt_tokens, r.generated_tokens(), finish_reason_name(r.finish_reason),
      rate_text(r.prefill_tokens_per_second()), rate_text(r.decode_tokens_per_second()),
      state_bytes, double(state_bytes) / (1024.0 * 1024.0));
}

/// `rodimus generate --prompt`: streams the text to stdout, then a newline; a summary on
/// stderr.
template <class W>
int run_generate_text(const Options& o) {
  const ModelConfig cfg = load_model_config(o.model);
  const io::Tokenizer tok = load_tokenizer(o);
  const auto ids = tok.encode(*o.prompt);
  if (ids.empty()) throw UsageError("--prompt is empty: it gives no tokens");
  check_text_ids(ids, cfg, "--prompt");
  const int limit = context_limit(o, cfg);
  if (limit > 0 && static_cast<std::int64_t>(ids.size()) > limit)
    throw UsageError("--prompt has " + std::to_string(ids.size()) +
                     " tokens, more than the context limit of " + std::to_string(limit) +
                     (o.max_context > 0 ? " (--max-context)"
                                        : " (max_position_embeddings of a Rodimus+ model "
                                          "without a window; see --max-context)"));
  const Model<Space, W> model = load_model<W>(o.model, cfg);
  State<Space> state = model.make_state(1, limit);
  Generator<Space, W> gen(model, tok, generation_config(o));
  const GenerationResult r = gen.generate(
      state, ids, [](std::int32_t, std::string_view piece) { return print_piece(piece); });
  fmt::print("\n");
  std::fflush(stdout);
  fmt::print(stderr, "rodimus: {}, {} weights on {}\n", summary(r, state.bytes_per_sequence()),
             dtype_name(o.dtype), backend_name<Space>());
  return exit_ok;
}

/// `rodimus chat`: one user turn per stdin line (empty lines are skipped), each answer streamed
/// to stdout and ended with a newline, one summary line per turn on stderr.
template <class W>
int run_chat(const Options& o) {
  const ModelConfig cfg = load_model_config(o.model);
  const io::Tokenizer tok = load_tokenizer(o);
  const int limit = context_limit(o, cfg);
  const Model<Space, W> model = load_model<W>(o.model, cfg);
  Chat<Space, W> chat(model, tok, generation_config(o), o.system, limit);
  std::string line;
  int turn = 0;
  while (std::getline(std::cin, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    ++turn;
    const GenerationResult r =
        chat.reply(line, [](std::int32_t, std::string_view piece) { return print_piece(piece); });
    fmt::print("\n");
    std::fflush(stdout);
    fmt::print(stderr, "rodimus: turn {}: {}, context {} tokens\n", turn,
               summary(r, chat.state().bytes_per_sequence()), chat.transcript().size());
  }
  return exit_ok;
}

}  // namespace rodimus::cli
