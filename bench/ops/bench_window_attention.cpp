// Sliding-window shared-key attention alone (SW-SKA, SPEC 3) at the Rodimus+-1.6B attention
// shape: 16 query heads of 128, one shared key head, 16 value heads, window 2048 back; one
// sequence of T tokens from an empty cache (prefill). Issue 5's peer is PyTorch's
// scaled_dot_product_attention at the same shape (scripts/device_attn_peer.py).
//
// Work: each query sees min(p + 1, 2049) keys; scores and values cost 2 x 2 x hd FLOPs per
// (query, key, head) pair. `tflops` reports that useful work over the measured time.
#include <random>

#include "bench_main.hpp"
#include "synthetic_state.hpp"
#include "rodimus/ops/sliding_window_attention.hpp"

namespace {

using Space = Kokkos::DefaultExecutionSpace;
using namespace rodimus;

constexpr int kHeads = 16, kHeadDim = 128, kWindowBack = 2048;

void BM_window_attention(benchmark::State& st) {
  const int t = static_cast<int>(st.range(0));
  std::mt19937 rng(7);
  View2<float, Space> q("q", t, kHeads * kHeadDim), k("k", t, kHeadDim),
      v("v", t, kHeads * kHeadDim), out("out", t, kHeads * kHeadDim);
  View3<float, Space> kc("k_cache", 1, kWindowBack, kHeadDim),
      vc("v_cache", 1, kWindowBack, kHeads * kHeadDim);
  bench::fill_random(q, rng);
  bench::fill_random(k, rng);
  bench::fill_random(v, rng);
  detail::SeqBatchBuffers<Space> buffers;
  const std::vector<int> len = {t}, pos0 = {0}, slot = {0};
  const SeqBatch<Space> batch = buffers.build(len, pos0, slot);
  AttentionShape shape;
  shape.heads = kHeads;
  shape.heads_k = 1;
  shape.heads_v = kHeads;
  shape.head_dim = kHeadDim;
  shape.window_back = kWindowBack;
  shape.scale = 1.f / std::sqrt(float(kHeadDim));
  using CV = View2<const float, Space>;
  for (auto _ : st) {
    sliding_window_attention(Space(), CV(q), CV(k), CV(v), kc, vc, batch, out, shape);
    Space().fence();
  }
  double pairs = 0;  // (query, key) pairs inside the window
  for (int p = 0; p < t; ++p) pairs += std::min(p + 1, kWindowBack + 1);
  const double flops = 4.0 * kHeadDim * kHeads * pairs;
  st.counters["tokens_per_s"] =
      benchmark::Counter(double(t) * st.iterations(), benchmark::Counter::kIsRate);
  st.counters["tflops"] =
      benchmark::Counter(flops * 1e-12 * st.iterations(), benchmark::Counter::kIsRate);
}

BENCHMARK(BM_window_attention)
    ->Name("window_attention/H:16/hd:128/window_back:2048")
    ->ArgName("T")
    ->Arg(4096)
    ->Arg(16384)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

RODIMUS_BENCHMARK_MAIN();
