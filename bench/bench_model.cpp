// Whole-model prefill and decode on random-weight checkpoints (no download needed), at the
// published shapes and a small one, with the roofline measured in the same binary:
//   decode   floor = (weight bytes + state bytes read per step) / STREAM-triad bandwidth
//   prefill  floor = 2 x (matrix-product parameters) x tokens / best GEMM rate here (host:
//            sgemm; GPU: cuBLAS in the weight type, bf16 on the tensor cores)
// Every benchmark reports `tokens_per_s` and `roofline_fraction` (floor / measured time).
// Decode also reports `compute_fraction`: the arithmetic floor (2 x matrix parameters x B
// FLOPs over the same GEMM rate as prefill's) / measured time; the step's real floor is the
// larger of the two, which on a few CPU cores is the arithmetic one from B = 16 on.
//
// Shapes (RODIMUS_BENCH_SHAPES, comma-separated; default "small"):
//   small        Rodimus and Rodimus+ at D=1024, 12 layers, n=64, E=2048, 8 heads of 128, one
//                shared key head, window 1024 (512 back), vocab 32000, tied embeddings
//   rodimus-1.4b pure Rodimus, D=2048, 48 layers, n=64, E=4096, vocab 126464
//   plus-1.6b    Rodimus+, D=2048, 24 layers, 16 heads of 128 (1 key head, 16 value heads),
//                window 4096 (2048 back), FFN 2736, low rank 32, vocab 126464, tied embeddings
// Checkpoints are written once (bf16) under $RODIMUS_BENCH_DIR (default: the temp folder).
// Names: prefill/<model>/<dtype>/T:<tokens>, decode/<model>/<dtype>/ctx:<C>/B:<B>,
// decode_prefilled/... (context built by a real prefill, to check the synthetic one),
// decode_nograph/... (GPU: decode steps launched kernel by kernel, not replayed as a graph),
// prefill_bf16ops/..., decode_bf16ops/... (GPU, bf16 weights: OperandPrecision::Bf16),
// prefill_bf16ops/<model>/bf16/T:<tokens> on the host (Workspace::host_operands = Bf16: the
// projections on vdpbf16ps where the CPU has AVX512_BF16),
// decode_variant/<model>/bf16/(gemv_seq:off|defaults)/ctx:1024/B:1 on the host: the one-token
// GEMV kernel A/B (row-blocked against sequential-rows, backend/host/gemv.hpp),
// B: 1, 4, 16 on the host, 1, 16, 128 on a GPU (Kokkos::DefaultExecutionSpace),
// state_memory/<model>/ctx:<C>. Threads: the process's (OMP_NUM_THREADS / --kokkos-threads).
//
// "Decode after a context of C tokens" puts every slot of a state at position C with random
// recurrent state and a full K/V cache (what C real tokens leave behind), so a 32k context
// needs no 32k-token prefill; decode_prefilled shows the two agree.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench_main.hpp"
#include "kernel_profile.hpp"
#include "rodimus/io/random_checkpoint.hpp"
#include "rodimus/model/model.hpp"
#include "roofline.hpp"
#include "synthetic_state.hpp"

namespace {

using namespace rodimus;
using Space = Kokkos::DefaultExecutionSpace;

struct Shape {
  std::string name;
  ModelConfig cfg;
};

ModelConfig small_config(bool plus) {
  ModelConfig c;
  c.block_type = plus ? BlockType::RodimusPlus : BlockType::Rodimus;
  c.d_model = 1024;
  c.n_layer = 12;
  c.vocab_size = 32000;
  c.mixer.mem_size = 64;
  c.attn.num_heads = 8;
  c.attn.num_heads_k = 1;
  c.attn.num_heads_v = 8;
  c.attn.window_size = 1024;
  c.tie_word_embeddings = true;
  return c;
}

ModelConfig published_config(bool plus) {
  ModelConfig c;
  c.block_type = plus ? BlockType::RodimusPlus : BlockType::Rodimus;
  c.d_model = 2048;
  c.n_layer = plus ? 24 : 48;
  c.vocab_size = 126464;
  c.mixer.mem_size = 64;
  c.attn.num_heads = 16;
  c.attn.num_heads_k = 1;
  c.attn.num_heads_v = 16;
  c.attn.window_size = 4096;
  c.max_position_embeddings = 1 << 20;
  c.tie_word_embeddings = true;
  return c;
}

std::vector<Shape> shapes_from_env() {
  const char* env = std::getenv("RODIMUS_BENCH_SHAPES");
  std::stringstream list(env ? env : "small");
  std::vector<Shape> out;
  for (std::string s; std::getline(list, s, ',');) {
    if (s == "small") {
      out.push_back({"small-rodimus", small_config(false)});
      out.push_back({"small-plus", small_config(true)});
    } else if (s == "rodimus-1.4b") {
      out.push_back({s, published_config(false)});
    } else if (s == "plus-1.6b") {
      out.push_back({s, published_config(true)});
    } else if (!s.empty()) {
      throw ArgumentError("RODIMUS_BENCH_SHAPES: unknown shape '" + s +
                          "' (small, rodimus-1.4b, plus-1.6b)");
    }
  }
  return out;
}

std::filesystem::path checkpoint_dir(const Shape& s) {
  const char* env = std::getenv("RODIMUS_BENCH_DIR");
  const std::filesystem::path base = env ? env : std::filesystem::temp_directory_path();
  const auto dir = base / ("rodimus_bench_" + s.name);
  if (!std::filesystem::exists(dir / "config.json"))
    io::write_random_checkpoint(s.cfg, dir, 42, io::StDType::BF16);
  return dir;
}

// One loaded model per (shape, weight type), kept for the whole run.
template <class W>
const Model<Space, W>& cached_model(const Shape& s) {
  static std::map<std::string, std::unique_ptr<Model<Space, W>>> models;
  auto& m = models[s.name];
  if (!m) {
    if (models.size() == 1) bench_cleanups().push_back([] { models.clear(); });
    m = std::make_unique<Model<Space, W>>(Model<Space, W>::load(checkpoint_dir(s)));
  }
  return *m;
}

template <class W>
std::string dtype_name() {
  return std::is_same_v<W, float> ? "fp32" : "bf16";
}

std::vector<std::int32_t> random_ids(int n, int vocab, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::int32_t> ids(n);
  for (auto& x : ids) x = static_cast<std::int32_t>(rng() % unsigned(vocab));
  return ids;
}

// Bytes of weights one decode step reads: every linear weight and norm once (the tied
// embedding once, as the lm head), not the embedding table's other rows.
template <class W>
double decode_weight_bytes(const Model<Space, W>& m) {
  return double(m.parameter_count()) * sizeof(W);
}

// State bytes one decode step reads for a slot at position `ctx`: the whole recurrent state
// and the K/V rows inside the window.
template <class W>
double decode_state_bytes(const Model<Space, W>& m, std::int64_t ctx) {
  const auto& c = m.config();
  const double per_layer_rec =
      double(c.d_conv() - 1) * c.d_inner() * 4 + double(c.mem_size()) * c.d_inner() * 4;
  double kv = 0;
  if (c.is_plus()) {
    const std::int64_t rows = std::min<std::int64_t>(ctx, m.kv_rows());
    kv = double(rows) * (c.num_heads_k() + c.num_heads_v()) * c.head_dim() * 4;
  }
  return c.n_layer * (per_layer_rec + kv);
}

template <class W>
void BM_prefill(benchmark::State& bs, const Shape& s, int t,
                OperandPrecision operands = OperandPrecision::Split) {
  const auto& m = cached_model<W>(s);
  const auto ids = random_ids(t, m.config().vocab_size, 3);
  TokenBatch tb;
  tb.ids = ids;
  tb.lengths = {t};
  tb.slots = {0};
  Workspace<Space> ws;
  ws.gpu_operands = operands;
  ws.host_operands = operands;
  auto st = m.make_state(1);
  for (auto _ : bs) {
    st.reset(0);
    m.prefill(st, ws, tb);
  }
  const auto& c = m.config();
  const double mm_params = double(m.parameter_count()) - double(c.vocab_size) * c.d_model;
  const double flops = 2.0 * mm_params * t + 2.0 * double(c.vocab_size) * c.d_model;
  const double peak = bench::gemm_peak<W>();  // host: sgemm; GPU: cuBLAS GEMM in W
  const double floor_s = peak > 0 ? flops / peak : 0;
  bs.counters["tokens_per_s"] =
      benchmark::Counter(double(t) * bs.iterations(), benchmark::Counter::kIsRate);
  bs.counters["roofline_fraction"] =
      benchmark::Counter(floor_s * bs.iterations(), benchmark::Counter::kIsRate);
  bs.counters["gflops"] =
      benchmark::Counter(flops * bs.iterations() / 1e9, benchmark::Counter::kIsRate);
  bs.counters["sgemm_peak_gflops"] = bench::sgemm_peak() / 1e9;
  bs.counters["gemm_peak_gflops"] = peak / 1e9;
}

/// CUDA decode settings an A/B variant changes for one benchmark (CudaContext), each at its
/// CudaContext default unless a variant sets it: the decode attention's CTAs per SM (0: the
/// default), the GEMV's early trigger and the dependent norm launches (gemv_early_trigger,
/// dependent_norms), the GEMV's RoPE / ShortConv epilogues (gemv_epilogues); and the fusions
/// of session 24 (on by default since session 25's GPU run): SwiGLU's product in the gate /
/// up GEMV (gemv_swiglu_epilogue), the two-input GEMV launch (gemv_two_inputs), the GEMV's rows
/// per block at 3-8 tokens (gemv_batch_rows, 0: the default), the decode scan as a dependent
/// launch (dependent_scan), the channel gate inside the decode scan (scan_channel_gate), the
/// norms between sublayers in the GEMVs around them (gemv_norm_in, session 28), the GEMV's rows
/// per block at 1-2 tokens (gemv_token_rows, -1: the default; 0: the earlier rule), the gated
/// norm's gate in the decode scan and its norm in the output projection (scan_output_gate,
/// session 29), 8 rows per block for GEMVs with an input norm down to one block per SM
/// (gemv_norm_in_rows8, session 29), the 8-row rule's blocks per SM and slices
/// (gemv_rows8_blocks_per_sm, gemv_rows8_slices, 0: the default) and the decode attention's
/// early cache loads (decode_attention_early_loads; session 30). Variants name only the fields
/// they change (designated initializers).
struct DecodeKnobs {
  int attention_ctas_per_sm = 0;
  bool gemv_early_trigger = true;
  bool dependent_norms = true;
  bool gemv_epilogues = true;
  bool gemv_swiglu_epilogue = true;
  bool gemv_two_inputs = true;
  int gemv_batch_rows = 0;
  bool dependent_scan = true;
  bool scan_channel_gate = true;
  bool gemv_norm_in = true;
  int gemv_token_rows = -1;
  bool scan_output_gate = true;
  bool gemv_norm_in_rows8 = true;
  int gemv_rows8_blocks_per_sm = 0;  // 0: CudaContext's default
  int gemv_rows8_slices = 0;         // 0: CudaContext's default
  bool decode_attention_early_loads = false;
};

/// Applies DecodeKnobs for a scope (null: the defaults) and restores the defaults.
struct KnobScope {
#if RODIMUS_CUDA_KERNELS
  explicit KnobScope(const DecodeKnobs* k) {
    if (!k) return;
    auto& ctx = scope.context();
    ctx.gemv_early_trigger = k->gemv_early_trigger;
    ctx.dependent_norms = k->dependent_norms;
    ctx.gemv_epilogues = k->gemv_epilogues;
    ctx.gemv_swiglu_epilogue = k->gemv_swiglu_epilogue;
    ctx.gemv_two_inputs = k->gemv_two_inputs;
    if (k->gemv_batch_rows > 0) ctx.gemv_batch_rows = k->gemv_batch_rows;
    ctx.dependent_scan = k->dependent_scan;
    ctx.scan_channel_gate = k->scan_channel_gate;
    ctx.gemv_norm_in = k->gemv_norm_in;
    if (k->gemv_token_rows >= 0) ctx.gemv_token_rows = k->gemv_token_rows;
    ctx.scan_output_gate = k->scan_output_gate;
    ctx.gemv_norm_in_rows8 = k->gemv_norm_in_rows8;
    if (k->gemv_rows8_blocks_per_sm > 0) ctx.gemv_rows8_blocks_per_sm = k->gemv_rows8_blocks_per_sm;
    if (k->gemv_rows8_slices > 0) ctx.gemv_rows8_slices = k->gemv_rows8_slices;
    ctx.decode_attention_early_loads = k->decode_attention_early_loads;
    if (k->attention_ctas_per_sm > 0) ctx.decode_attention_ctas_per_sm = k->attention_ctas_per_sm;
  }
  backend::cuda::detail::DecodeSettingsScope scope;
#else
  explicit KnobScope(const DecodeKnobs*) {}
#endif
};

template <class W>
void BM_decode(benchmark::State& bs, const Shape& s, std::int64_t ctx, int b, bool prefilled,
               bool graphs = true, OperandPrecision operands = OperandPrecision::Split,
               const DecodeKnobs* knobs = nullptr) {
  const KnobScope knob_scope(knobs);
  const auto& m = cached_model<W>(s);
  Workspace<Space> ws;
  ws.cuda_graphs = graphs;
  ws.gpu_operands = operands;
  ws.host_operands = operands;
  auto st = m.make_state(b, static_cast<int>(ctx + 4096));
  if (prefilled) {
    // A real context: the same random prompt of ctx tokens in every slot, in blocks of 2048.
    const auto ids = random_ids(static_cast<int>(ctx), m.config().vocab_size, 5);
    for (std::int64_t t0 = 0; t0 < ctx; t0 += 2048) {
      const int len = static_cast<int>(std::min<std::int64_t>(2048, ctx - t0));
      TokenBatch tb;
      for (int i = 0; i < b; ++i) {
        tb.ids.insert(tb.ids.end(), ids.begin() + t0, ids.begin() + t0 + len);
        tb.lengths.push_back(len);
        tb.slots.push_back(i);
      }
      m.forward(st, ws, tb, LogitsMode::None);
    }
  } else {
    bench::fast_forward(st, ctx, 7);
  }
  std::vector<std::int32_t> next = random_ids(b, m.config().vocab_size, 11);
  std::mt19937 rng(13);
  // the first steps size the workspace (and on CUDA record the step graph): time the steady state
  for (int i = 0; i < 3; ++i) m.decode(st, ws, next);
  for (auto _ : bs) {
    m.decode(st, ws, next);
    for (auto& x : next) x = static_cast<std::int32_t>(rng() % unsigned(m.config().vocab_size));
  }
  const double bytes = decode_weight_bytes(m) + b * decode_state_bytes(m, ctx);
  const double floor_s = bytes / bench::triad_bandwidth();
  // The arithmetic floor: every matrix parameter (the tied head counted as a matrix, the
  // embedding lookup not) multiplied with each of the b tokens, at the GEMM rate of this binary.
  // Large batches on a few CPU cores are bound by it rather than by the bytes.
  const auto& c = m.config();
  const double embed = double(c.vocab_size) * c.d_model;
  const double mm_params = double(m.parameter_count()) - (c.tie_word_embeddings ? 0.0 : embed);
  const double flops = 2.0 * mm_params * b;
  const double peak = bench::gemm_peak<W>();
  const double compute_floor_s = peak > 0 ? flops / peak : 0;
  bs.counters["tokens_per_s"] =
      benchmark::Counter(double(b) * bs.iterations(), benchmark::Counter::kIsRate);
  bs.counters["roofline_fraction"] =
      benchmark::Counter(floor_s * bs.iterations(), benchmark::Counter::kIsRate);
  bs.counters["ms_per_step"] = benchmark::Counter(
      1e-3, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  bs.counters["compute_fraction"] =
      benchmark::Counter(compute_floor_s * bs.iterations(), benchmark::Counter::kIsRate);
  bs.counters["bytes_per_step"] = bytes;
  bs.counters["triad_gbs"] = bench::triad_bandwidth() / 1e9;
  bs.counters["state_bytes"] = double(st.bytes_per_sequence());
  bs.counters["cuda_graph"] = ws.graph.recorded() ? 1 : 0;
}

// Resident decode-state memory per sequence against context length (no timing of interest).
void BM_state_memory(benchmark::State& bs, const Shape& s, std::int64_t ctx) {
  const auto& m = cached_model<bf16>(s);
  std::size_t bytes = 0;
  for (auto _ : bs) {
    auto st = m.make_state(1, static_cast<int>(ctx));
    bytes = st.bytes_per_sequence();
    benchmark::DoNotOptimize(bytes);
  }
  bs.counters["state_bytes"] = double(bytes);
  bs.counters["context"] = double(ctx);
  bs.counters["tokens_per_s"] = 0;
  bs.counters["roofline_fraction"] = 0;
}

void BM_machine_limits(benchmark::State& bs) {
  for (auto _ : bs) benchmark::DoNotOptimize(bench::triad_bandwidth());
  bs.counters["triad_gbs"] = bench::triad_bandwidth() / 1e9;
  bs.counters["sgemm_gflops"] = bench::sgemm_peak() / 1e9;
  bs.counters["gemm_bf16_gflops"] = bench::gemm_peak<bf16>() / 1e9;
  bs.counters["threads"] = Space().concurrency();
  bs.counters["tokens_per_s"] = 0;
  bs.counters["roofline_fraction"] = 0;
}

template <class W>
void register_shape(const Shape& s) {
  const bool published = s.cfg.d_model >= 2048;
  const std::string base = s.name + "/" + dtype_name<W>();
  for (int t : {512, 2048, 8192}) {
    auto* b =
        benchmark::RegisterBenchmark(("prefill/" + base + "/T:" + std::to_string(t)).c_str(),
                                     [s, t](benchmark::State& st) { BM_prefill<W>(st, s, t); });
    b->Unit(benchmark::kMillisecond)->UseRealTime();
    if (published || t == 8192) b->Iterations(1);
  }
  // batches: the CPU issue's 1, 4, 16; on a GPU the CUDA issue's 1, 16, 128
  const std::vector<int> batches =
      is_gpu_space_v<Space> ? std::vector<int>{1, 16, 128} : std::vector<int>{1, 4, 16};
  for (std::int64_t ctx : {1024, 8192, 32768})
    for (int nb : batches) {
      auto* b = benchmark::RegisterBenchmark(
          ("decode/" + base + "/ctx:" + std::to_string(ctx) + "/B:" + std::to_string(nb)).c_str(),
          [s, ctx, nb](benchmark::State& st) { BM_decode<W>(st, s, ctx, nb, false); });
      b->Unit(benchmark::kMillisecond)->UseRealTime();
      if (published) b->MinTime(2.0);
    }
  if constexpr (is_cuda_space_v<Space>)  // the same steps launched kernel by kernel
    for (int nb : batches) {
      auto* b = benchmark::RegisterBenchmark(
          ("decode_nograph/" + base + "/ctx:1024/B:" + std::to_string(nb)).c_str(),
          [s, nb](benchmark::State& st) { BM_decode<W>(st, s, 1024, nb, false, false); });
      b->Unit(benchmark::kMillisecond)->UseRealTime();
    }
  if constexpr (is_host_space_v<Space> && std::is_same_v<W, bf16>) {
    // OperandPrecision::Bf16 on the host: the prefill projections on vdpbf16ps
    for (int t : {512, 2048}) {
      auto* b = benchmark::RegisterBenchmark(
          ("prefill_bf16ops/" + base + "/T:" + std::to_string(t)).c_str(),
          [s, t](benchmark::State& st) { BM_prefill<W>(st, s, t, OperandPrecision::Bf16); });
      b->Unit(benchmark::kMillisecond)->UseRealTime();
    }
    // A/B of the one-token GEMV kernel in one process (gemv.hpp): gemv_seq:off is the
    // row-blocked kernel, defaults the sequential-rows one; the same step as decode/.../ctx:1024
    for (const bool seq : {false, true}) {
      auto* b = benchmark::RegisterBenchmark(
          ("decode_variant/" + base + (seq ? "/defaults" : "/gemv_seq:off") + "/ctx:1024/B:1")
              .c_str(),
          [s, seq](benchmark::State& st) {
            const bool saved = backend::host::gemv_one_token_sequential();
            backend::host::set_gemv_one_token_sequential(seq);
            BM_decode<W>(st, s, 1024, 1, false);
            backend::host::set_gemv_one_token_sequential(saved);
          });
      b->Unit(benchmark::kMillisecond)->UseRealTime();
    }
  }
  if constexpr (is_cuda_space_v<Space> && !std::is_same_v<W, float>) {
    // OperandPrecision::Bf16: the activations rounded once to bf16 for the tensor cores
    for (int t : {2048, 8192}) {
      auto* b = benchmark::RegisterBenchmark(
          ("prefill_bf16ops/" + base + "/T:" + std::to_string(t)).c_str(),
          [s, t](benchmark::State& st) { BM_prefill<W>(st, s, t, OperandPrecision::Bf16); });
      b->Unit(benchmark::kMillisecond)->UseRealTime();
    }
    for (int nb : batches) {
      auto* b = benchmark::RegisterBenchmark(
          ("decode_bf16ops/" + base + "/ctx:1024/B:" + std::to_string(nb)).c_str(),
          [s, nb](benchmark::State& st) {
            BM_decode<W>(st, s, 1024, nb, false, true, OperandPrecision::Bf16);
          });
      b->Unit(benchmark::kMillisecond)->UseRealTime();
    }
    // A/B variants of the CUDA decode settings (the benchmarks above: CudaContext's defaults).
    // The programmatic-launch knobs act on the GEMV steps (<= 8 tokens); the attention's CTAs
    // per SM matter at the larger batches.
    struct Variant {
      std::string name;
      DecodeKnobs knobs;
      std::vector<int> batches;
    };
    const std::vector<Variant> variants = {
        {"attn_ctas:4", {.attention_ctas_per_sm = 4}, {16, 128}},
        {"pdl:off", {.gemv_early_trigger = false, .dependent_norms = false}, {1, 4, 16}},
        {"epilogues:off", {.gemv_epilogues = false}, {1, 4}},
        {"swiglu_epi:off", {.gemv_swiglu_epilogue = false}, {1, 4}},
        {"two_inputs:off", {.gemv_two_inputs = false}, {1, 4}},
        {"batch_rows:2", {.gemv_batch_rows = 2}, {4}},
        {"scan_pdl:off", {.dependent_scan = false}, {1}},
        {"chgate:off", {.scan_channel_gate = false}, {1, 4}},
        {"norm_in:off", {.gemv_norm_in = false}, {1, 2}},
        {"rows:4", {.gemv_token_rows = 0}, {1, 2}},
        {"norm_in:off,rows:4", {.gemv_norm_in = false, .gemv_token_rows = 0}, {1, 2}},
        {"out_gate:off", {.scan_output_gate = false}, {1, 2}},
        {"norm_rows8:off", {.gemv_norm_in_rows8 = false}, {1, 2}},
        {"rows8_sm:1", {.gemv_rows8_blocks_per_sm = 1}, {1, 2}},
        {"rows8_sm:2", {.gemv_rows8_blocks_per_sm = 2}, {1, 2}},
        {"rows8_slices:1", {.gemv_rows8_slices = 1}, {1, 2}},
        {"rows8_slices:2", {.gemv_rows8_slices = 2}, {1, 2}},
        {"rows8_sm:1,slices:2", {.gemv_rows8_blocks_per_sm = 1, .gemv_rows8_slices = 2}, {1, 2}},
        {"attn_early:on", {.decode_attention_early_loads = true}, {1, 2}},
        {"fusions:off",
         {.gemv_swiglu_epilogue = false,
          .gemv_two_inputs = false,
          .gemv_batch_rows = 2,
          .dependent_scan = false,
          .scan_channel_gate = false,
          .gemv_norm_in = false,
          .gemv_token_rows = 0,
          .scan_output_gate = false},
         {1, 4, 16}},
        {"defaults", {}, {1, 2, 4}}};
    for (const auto& v : variants)
      for (int nb : v.batches) {
        auto* b = benchmark::RegisterBenchmark(
            ("decode_variant/" + base + "/" + v.name + "/ctx:1024/B:" + std::to_string(nb)).c_str(),
            [s, nb, knobs = v.knobs](benchmark::State& st) {
              BM_decode<W>(st, s, 1024, nb, false, true, OperandPrecision::Bf16, &knobs);
            });
        b->Unit(benchmark::kMillisecond)->UseRealTime();
      }
  }
  if (!published)
    for (std::int64_t ctx : {1024, 8192}) {
      auto* b = benchmark::RegisterBenchmark(
          ("decode_prefilled/" + base + "/ctx:" + std::to_string(ctx) + "/B:1").c_str(),
          [s, ctx](benchmark::State& st) { BM_decode<W>(st, s, ctx, 1, true); });
      b->Unit(benchmark::kMillisecond)->UseRealTime();
    }
}

void register_all() {
  benchmark::RegisterBenchmark("machine_limits", BM_machine_limits)->Iterations(1);
  for (const auto& s : shapes_from_env()) {
    register_shape<bf16>(s);
    register_shape<float>(s);
    for (std::int64_t ctx : {1024, 4096, 16384, 65536})
      benchmark::RegisterBenchmark(
          ("state_memory/" + s.name + "/ctx:" + std::to_string(ctx)).c_str(),
          [s, ctx](benchmark::State& st) { BM_state_memory(st, s, ctx); })
          ->Iterations(1);
  }
}

// RODIMUS_PROFILE=1: instead of the benchmarks, one prefill of RODIMUS_PROFILE_T tokens (2048)
// and 8 decode steps at B = RODIMUS_PROFILE_B (1) after a 1024-token context, bf16 weights, for
// each shape, each printed as a per-kernel table (bench/kernel_profile.hpp;
// RODIMUS_PROFILE_TRACE=1 also prints each kernel as it starts; RODIMUS_PROFILE_OPERANDS=bf16
// runs OperandPrecision::Bf16).
int profile_run() {
  const char* t_env = std::getenv("RODIMUS_PROFILE_T");
  const int t = t_env ? std::atoi(t_env) : 2048;
  for (const auto& s : shapes_from_env()) {
    const auto& m = cached_model<bf16>(s);
    Workspace<Space> ws;
    ws.cuda_graphs = false;  // the profiler fences every kernel: nothing can be recorded
    const char* ops_env = std::getenv("RODIMUS_PROFILE_OPERANDS");
    if (ops_env && std::string(ops_env) == "bf16") ws.gpu_operands = OperandPrecision::Bf16;
    TokenBatch tb;
    tb.ids = random_ids(t, m.config().vocab_size, 3);
    tb.lengths = {t};
    tb.slots = {0};
    auto st = m.make_state(1, t + 64);
    m.prefill(st, ws, tb);  // warm-up: sizes workspaces, loads modules
    st.reset(0);
    bench::profile::enable();
    bench::profile::reset();
    m.prefill(st, ws, tb);
    bench::profile::report((s.name + " bf16 prefill T=" + std::to_string(t)).c_str());
    const char* b_env = std::getenv("RODIMUS_PROFILE_B");
    const int nb = b_env ? std::max(1, std::atoi(b_env)) : 1;
    auto sd = m.make_state(nb, 1024 + 64);
    bench::fast_forward(sd, 1024, 7);
    std::vector<std::int32_t> next = random_ids(nb, m.config().vocab_size, 11);
    m.decode(sd, ws, next);
    bench::profile::reset();
    for (int i = 0; i < 8; ++i) m.decode(sd, ws, next);
    bench::profile::report(
        (s.name + " bf16 decode B=" + std::to_string(nb) + " ctx=1024, 8 steps").c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  rodimus::backend::host::reexec_with_quiet_idle_threads(argv);  // see blas_threads.hpp
  setenv("OMP_PROC_BIND", "false", 0);
  Kokkos::ScopeGuard guard(argc, argv);
  if (std::getenv("RODIMUS_PROFILE")) {
    const int rc = profile_run();
    for (auto& f : bench_cleanups()) f();
    return rc;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  try {
    register_all();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_model: %s\n", e.what());
    return 2;
  }
  benchmark::AddCustomContext("host_isa",
                              std::string(backend::host::host_isa_name(backend::host::host_isa())));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  for (auto& f : bench_cleanups()) f();
  return 0;
}
