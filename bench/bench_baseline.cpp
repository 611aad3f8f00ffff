// Decode after a long context: the baseline Transformer (growing KV cache) beside Rodimus
// (constant state) and Rodimus+ (windowed KV cache), all at one shape with random weights:
// D = 1024, 12 layers, 8 heads of 128; Rodimus+ has a SwiGLU FFN of F = round_up(4/3 D, 8) =
// 1368, shares one key head and attends over a window of 1024 (512 back); the Transformer is
// multi-head (8 KV heads) with its FFN widened to Rodimus+'s parameter count. Weights bf16,
// vocabulary 4096, tied embeddings.
//
// Each benchmark puts a sequence at a context of range(0) tokens with random state and cache
// contents (synthetic_state.hpp: decode cost does not depend on them; prefill speed is
// bench_model's subject), then times single-token decode steps.
// Counters: tokens_per_s (decode), ms_per_token, roofline_fraction (weights + state read once
// per step at the measured triad bandwidth), state_bytes (what the sequence's decode state
// occupies at that context), params, context.
#include <filesystem>
#include <memory>
#include <random>

#include "bench_main.hpp"
#include "rodimus/io/random_checkpoint.hpp"
#include "rodimus/model/model.hpp"
#include "rodimus/model/transformer.hpp"
#include "roofline.hpp"
#include "synthetic_state.hpp"

namespace {

using Space = Kokkos::DefaultExecutionSpace;
using W = rodimus::bf16;
using namespace rodimus;

constexpr int kD = 1024, kLayers = 12, kVocab = 4096;

ModelConfig rodimus_config(bool plus) {
  ModelConfig c;
  c.block_type = plus ? BlockType::RodimusPlus : BlockType::Rodimus;
  c.d_model = kD;
  c.n_layer = kLayers;
  c.vocab_size = kVocab;
  c.mixer.mem_size = 64;
  c.attn.num_heads = 8;
  c.attn.num_heads_k = 1;
  c.attn.num_heads_v = 8;
  c.attn.window_size = 1024;
  c.tie_word_embeddings = true;
  return c;
}

const Model<Space, W>& rodimus_model(bool plus);

// The Transformer's FFN is widened so that its parameter count matches Rodimus+'s (the
// comparison is at equal size, as in the paper): F = round_up8 of what the other weights leave.
TransformerConfig transformer_config() {
  TransformerConfig c;
  c.d_model = kD;
  c.n_layer = kLayers;
  c.heads = 8;
  c.kv_heads = 8;
  c.head_dim = 128;
  const double target = double(rodimus_model(true).parameter_count());
  const double fixed = double(kVocab) * kD + kD + kLayers * (2.0 * kD + 4.0 * kD * kD);
  c.ffn_dim = (static_cast<int>((target - fixed) / (3.0 * kD * kLayers)) + 7) / 8 * 8;
  c.vocab = kVocab;
  c.tie_embeddings = true;
  return c;
}

const Model<Space, W>& rodimus_model(bool plus) {
  static std::unique_ptr<Model<Space, W>> m[2];
  if (!m[plus]) {
    const auto dir = std::filesystem::temp_directory_path() /
                     (std::string("rodimus_bench_baseline_") + (plus ? "plus" : "rodimus"));
    if (!std::filesystem::exists(dir / "model.safetensors"))
      io::write_random_checkpoint(rodimus_config(plus), dir, 42, io::StDType::BF16);
    if (!m[0] && !m[1])
      bench_cleanups().push_back([] {
        m[0].reset();
        m[1].reset();
      });
    m[plus] = std::make_unique<Model<Space, W>>(Model<Space, W>::load(dir));
  }
  return *m[plus];
}

const TransformerModel<Space, W>& transformer_model() {
  static std::unique_ptr<TransformerModel<Space, W>> m;
  if (!m) {
    m = std::make_unique<TransformerModel<Space, W>>(
        TransformerModel<Space, W>::random(transformer_config(), 42));
    bench_cleanups().push_back([] { m.reset(); });
  }
  return *m;
}

/// Times decode steps of one sequence after a context of st.range(0) tokens.
template <class M, class S, class Ws, class Bytes>
void decode_after_context(benchmark::State& st, const M& model, S& state, Ws& ws,
                          const Bytes& state_bytes) {
  const int context = static_cast<int>(st.range(0));
  bench::fast_forward(state, context, 11);
  const double bytes = double(state_bytes(state));  // at the context, before the timed steps
  std::vector<std::int32_t> next = {7};
  model.decode(state, ws, next);  // warm the workspace for one-token steps
  for (auto _ : st) model.decode(state, ws, next);
  st.counters["tokens_per_s"] =
      benchmark::Counter(double(st.iterations()), benchmark::Counter::kIsRate);
  // Floor: every weight and the whole decode state read once per step, at triad bandwidth.
  const double floor_s =
      (double(model.parameter_count()) * sizeof(W) + bytes) / bench::triad_bandwidth();
  st.counters["roofline_fraction"] =
      benchmark::Counter(floor_s * st.iterations(), benchmark::Counter::kIsRate);
  st.counters["ms_per_token"] = benchmark::Counter(
      1e-3, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  st.counters["state_bytes"] = bytes;
  st.counters["params"] = double(model.parameter_count());
  st.counters["context"] = context;
}

void BM_transformer_decode(benchmark::State& st) {
  const auto& model = transformer_model();
  TransformerWorkspace<Space> ws;
  // capacity for the context and every timed step: decode never reallocates the cache
  auto state = model.make_state(1, static_cast<int>(st.range(0)) + 1024);
  decode_after_context(st, model, state, ws, [](const auto& s) { return s.bytes_used(0); });
}

void BM_rodimus_decode(benchmark::State& st, bool plus) {
  const auto& model = rodimus_model(plus);
  Workspace<Space> ws;
  auto state = model.make_state(1);
  decode_after_context(st, model, state, ws, [](const auto& s) { return s.bytes_per_sequence(); });
}

void BM_rodimus_plus_decode(benchmark::State& st) { BM_rodimus_decode(st, true); }
void BM_rodimus_pure_decode(benchmark::State& st) { BM_rodimus_decode(st, false); }

// Contexts up to 64k: the Transformer's cache then holds 6 GiB; a few steps per size suffice.
#define RODIMUS_BASELINE_BENCH(fn)    \
  BENCHMARK(fn)                       \
      ->Arg(1024)                     \
      ->Arg(4096)                     \
      ->Arg(16384)                    \
      ->Arg(65536)                    \
      ->Iterations(16)                \
      ->Unit(benchmark::kMillisecond) \
      ->UseRealTime()

RODIMUS_BASELINE_BENCH(BM_transformer_decode);
RODIMUS_BASELINE_BENCH(BM_rodimus_plus_decode);
RODIMUS_BASELINE_BENCH(BM_rodimus_pure_decode);

}  // namespace

RODIMUS_BENCHMARK_MAIN();
