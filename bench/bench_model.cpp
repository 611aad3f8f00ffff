// Whole-model prefill and decode on a random-weight checkpoint (no download needed).
// Shape: D = 512, 4 layers, n = 64, Rodimus and Rodimus+ (the published shapes are issue 4's).
#include <filesystem>
#include <random>

#include "bench_main.hpp"
#include "rodimus/io/random_checkpoint.hpp"
#include "rodimus/model/model.hpp"

namespace {

using Space = Kokkos::DefaultExecutionSpace;
using namespace rodimus;

ModelConfig bench_config(bool plus) {
  ModelConfig c;
  c.block_type = plus ? BlockType::RodimusPlus : BlockType::Rodimus;
  c.d_model = 512;
  c.n_layer = 4;
  c.vocab_size = 4096;
  c.mixer.mem_size = 64;
  c.attn.num_heads = 4;
  c.attn.num_heads_k = 1;
  c.attn.num_heads_v = 4;
  c.attn.window_size = 512;
  c.tie_word_embeddings = true;
  return c;
}

template <class W>
const Model<Space, W>& bench_model(bool plus) {
  static std::unique_ptr<Model<Space, W>> m[2];
  if (!m[plus]) {
    const auto dir = std::filesystem::temp_directory_path() /
                     (std::string("rodimus_bench_") + (plus ? "plus" : "rodimus"));
    if (!std::filesystem::exists(dir / "model.safetensors"))
      io::write_random_checkpoint(bench_config(plus), dir, 42);
    if (!m[0] && !m[1])
      bench_cleanups().push_back([] {
        m[0].reset();
        m[1].reset();
      });
    m[plus] = std::make_unique<Model<Space, W>>(Model<Space, W>::load(dir));
  }
  return *m[plus];
}

template <class W>
void BM_prefill(benchmark::State& st) {
  const auto& model = bench_model<W>(st.range(1) != 0);
  const int t = static_cast<int>(st.range(0));
  std::vector<std::int32_t> ids(t);
  std::mt19937 rng(3);
  for (auto& x : ids) x = static_cast<std::int32_t>(rng() % 4096);
  Workspace<Space> ws;
  auto state = model.make_state(1);
  for (auto _ : st) {
    state.reset();
    model.prefill(state, ws, TokenBatch::single(ids));
  }
  st.counters["tokens_per_s"] =
      benchmark::Counter(double(t) * st.iterations(), benchmark::Counter::kIsRate);
}

template <class W>
void BM_decode(benchmark::State& st) {
  const auto& model = bench_model<W>(st.range(1) != 0);
  const int b = static_cast<int>(st.range(0));
  Workspace<Space> ws;
  auto state = model.make_state(b);
  std::vector<std::int32_t> next(b, 7);
  model.decode(state, ws, next);  // warm the workspace
  for (auto _ : st) model.decode(state, ws, next);
  st.counters["tokens_per_s"] =
      benchmark::Counter(double(b) * st.iterations(), benchmark::Counter::kIsRate);
}

BENCHMARK_TEMPLATE(BM_prefill, float)
    ->ArgsProduct({{512}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_prefill, bf16)
    ->ArgsProduct({{512}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_decode, float)
    ->ArgsProduct({{1, 4}, {0, 1}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_decode, bf16)
    ->ArgsProduct({{1, 4}, {0, 1}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace

RODIMUS_BENCHMARK_MAIN();
