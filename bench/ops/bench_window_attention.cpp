// Sliding-window shared-key attention alone (SW-SKA, SPEC 3) at the Rodimus+-1.6B attention
// shape: 16 query heads of 128, one shared key head, 16 value heads, window 2048 back.
//
// window_attention/...: one sequence of T tokens from an empty cache (prefill). Issue 5's peer
// is PyTorch's scaled_dot_product_attention at the same shape (scripts/device_attn_peer.py).
// Work: each query sees min(p + 1, 2049) keys; scores and values cost 2 x 2 x hd FLOPs per
// (query, key, head) pair. `tflops` reports that useful work over the measured time.
//
// window_attention_decode_cold/...: the same step with every operand coming from memory.
// window_attention_decode/.../ctx:C/B:b: one decode step of b sequences, each at position C
// with C keys in its cache slot (fp32): bandwidth work, every key and value row of the window
// read once per token ((C + 1) x (1 + 16) x 128 floats). `roofline_fraction` is those bytes
// per second over the triad bandwidth measured in this binary. On CUDA also
// window_attention_decode_two_kernels: the same steps through the two-kernel split-key path.
#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "bench_main.hpp"
#include "roofline.hpp"
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

void window_attention_decode(benchmark::State& st) {
  const int ctx = static_cast<int>(st.range(0)), b = static_cast<int>(st.range(1));
  std::mt19937 rng(7);
  View2<float, Space> q("q", b, kHeads * kHeadDim), k("k", b, kHeadDim),
      v("v", b, kHeads * kHeadDim), out("out", b, kHeads * kHeadDim);
  View3<float, Space> kc("k_cache", b, kWindowBack, kHeadDim),
      vc("v_cache", b, kWindowBack, kHeads * kHeadDim);
  for (auto* x : {&q, &k, &v}) bench::fill_random(*x, rng);
  bench::fill_random(kc, rng);
  bench::fill_random(vc, rng);
  detail::SeqBatchBuffers<Space> buffers;
  std::vector<int> len(b, 1), pos0(b, ctx), slot(b);
  for (int i = 0; i < b; ++i) slot[i] = i;
  const SeqBatch<Space> batch = buffers.build(len, pos0, slot);
  AttentionShape shape;
  shape.heads = kHeads;
  shape.heads_k = 1;
  shape.heads_v = kHeads;
  shape.head_dim = kHeadDim;
  shape.window_back = kWindowBack;
  shape.scale = 1.f / std::sqrt(float(kHeadDim));
  using CV = View2<const float, Space>;
  for (auto _ : st) {  // the same step again: the cache row it writes is the same each time
    sliding_window_attention(Space(), CV(q), CV(k), CV(v), kc, vc, batch, out, shape);
    Space().fence();
  }
  const int keys = std::min(ctx + 1, kWindowBack + 1);
  const double bytes = double(b) * keys * (1 + kHeads) * kHeadDim * sizeof(float);
  const double bw = bench::triad_bandwidth();
  st.counters["tokens_per_s"] =
      benchmark::Counter(double(b) * st.iterations(), benchmark::Counter::kIsRate);
  st.counters["gbs"] =
      benchmark::Counter(bytes * 1e-9 * st.iterations(), benchmark::Counter::kIsRate);
  st.counters["roofline_fraction"] =
      benchmark::Counter(bytes / bw * st.iterations(), benchmark::Counter::kIsRate);
  st.counters["triad_gbs"] = bw * 1e-9;
}

// The same step with the caches coming from memory, as in a model's decode step (each layer's
// cache is read once per token and evicted by the others' weights): the step cycles through
// copies of q, k, v and the caches, at least 256 MiB in all, so none is in cache when it is read.
// Shapes: 8 heads, window 512 back (bench_model's small-plus) and 16 heads, 2048 back (1.6B).
void BM_window_attention_decode_cold(benchmark::State& st) {
  const int heads = static_cast<int>(st.range(0)), wb = static_cast<int>(st.range(1)),
            b = static_cast<int>(st.range(2));
  const int ctx = wb;  // a full window: wb cached keys and the token's own
  const double set_bytes = double(b) * (wb + 1) * (1 + heads) * kHeadDim * sizeof(float);
  const int sets = std::max(2, static_cast<int>((256.0 * (1 << 20)) / set_bytes) + 1);
  std::mt19937 rng(7);
  struct Set {
    View2<float, Space> q, k, v, out;
    View3<float, Space> kc, vc;
  };
  std::vector<Set> data;
  for (int i = 0; i < sets; ++i) {
    Set d{View2<float, Space>("q", b, heads * kHeadDim), View2<float, Space>("k", b, kHeadDim),
          View2<float, Space>("v", b, heads * kHeadDim),
          View2<float, Space>("out", b, heads * kHeadDim),
          View3<float, Space>("k_cache", b, wb, kHeadDim),
          View3<float, Space>("v_cache", b, wb, heads * kHeadDim)};
    for (auto* x : {&d.q, &d.k, &d.v}) bench::fill_random(*x, rng);
    bench::fill_random(d.kc, rng);
    bench::fill_random(d.vc, rng);
    data.push_back(d);
  }
  detail::SeqBatchBuffers<Space> buffers;
  std::vector<int> len(b, 1), pos0(b, ctx), slot(b);
  for (int i = 0; i < b; ++i) slot[i] = i;
  const SeqBatch<Space> batch = buffers.build(len, pos0, slot);
  AttentionShape shape;
  shape.heads = heads;
  shape.heads_k = 1;
  shape.heads_v = heads;
  shape.head_dim = kHeadDim;
  shape.window_back = wb;
  shape.scale = 1.f / std::sqrt(float(kHeadDim));
  using CV = View2<const float, Space>;
  std::size_t next = 0;
  for (auto _ : st) {
    const Set& d = data[next];
    next = (next + 1) % data.size();
    sliding_window_attention(Space(), CV(d.q), CV(d.k), CV(d.v), d.kc, d.vc, batch, d.out, shape);
    Space().fence();
  }
  const double bw = bench::triad_bandwidth();
  st.counters["tokens_per_s"] =
      benchmark::Counter(double(b) * st.iterations(), benchmark::Counter::kIsRate);
  st.counters["gbs"] =
      benchmark::Counter(set_bytes * 1e-9 * st.iterations(), benchmark::Counter::kIsRate);
  st.counters["roofline_fraction"] =
      benchmark::Counter(set_bytes / bw * st.iterations(), benchmark::Counter::kIsRate);
  st.counters["triad_gbs"] = bw * 1e-9;
}
BENCHMARK(BM_window_attention_decode_cold)
    ->Name("window_attention_decode_cold/hd:128")
    ->ArgNames({"H", "window_back", "B"})
    ->Args({8, 512, 1})
    ->Args({8, 512, 4})
    ->Args({16, 2048, 1})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// B = 128 on the GPU only: its caches (2.3 GB) take minutes to fill on a 2-core host
#if RODIMUS_CUDA_KERNELS
const std::vector<std::int64_t> kDecodeBatches = {1, 16, 128};
#else
const std::vector<std::int64_t> kDecodeBatches = {1, 16};
#endif

void BM_window_attention_decode(benchmark::State& st) { window_attention_decode(st); }
BENCHMARK(BM_window_attention_decode)
    ->Name("window_attention_decode/H:16/hd:128/window_back:2048")
    ->ArgNames({"ctx", "B"})
    ->ArgsProduct({{1024, 2047}, kDecodeBatches})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

#if RODIMUS_CUDA_KERNELS
// The same steps through the two-kernel split-key path (split kernel + combine kernel + cache
// update) instead of the one-kernel decode path: the A/B of decode_attention.cuh.
void BM_window_attention_decode_two_kernels(benchmark::State& st) {
  const backend::cuda::detail::DecodeSettingsScope scope;
  scope.context().one_kernel_decode_attention = false;
  window_attention_decode(st);
}
BENCHMARK(BM_window_attention_decode_two_kernels)
    ->Name("window_attention_decode_two_kernels/H:16/hd:128/window_back:2048")
    ->ArgNames({"ctx", "B"})
    ->ArgsProduct({{1024, 2047}, kDecodeBatches})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
// The one-kernel path's grid target (CTAs per SM before a CTA walks several chunks of keys).
void BM_window_attention_decode_ctas(benchmark::State& st) {
  const backend::cuda::detail::DecodeSettingsScope scope;
  scope.context().decode_attention_ctas_per_sm = static_cast<int>(st.range(2));
  window_attention_decode(st);
}
BENCHMARK(BM_window_attention_decode_ctas)
    ->Name("window_attention_decode_ctas/H:16/hd:128/window_back:2048")
    ->ArgNames({"ctx", "B", "ctas_per_sm"})
    ->ArgsProduct({{1024}, {16, 128}, {2, 4, 16, 32}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
#endif

}  // namespace

RODIMUS_BENCHMARK_MAIN();
