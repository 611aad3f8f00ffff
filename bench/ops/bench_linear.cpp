// Decode-sized linear layers alone (N = 1..8 tokens), at the Rodimus+-1.6B projection shapes.
// A decode step is a chain of these: each reads its weights once, so its floor is weight bytes
// over the memory bandwidth (the triad measured in this binary); `roofline_fraction` is that
// floor over the measured time, `gbs` the weight bytes per second.
//
// The weights rotate through copies that together exceed the caches (160 MB on a GPU, 640 MB
// on the host), so that no cache holds them between calls (a decode step does not reuse them
// either). Each
// iteration makes `calls` back-to-back calls on one stream, then waits: the per-call launch
// cost is included, as in a decode step outside a CUDA graph.
//
//   linear/<shape>/<W>/N:n                 one projection (n = 1, 4, 16 tokens)
//   linear_group/<group>/<W>/N:n/<mode>    projections of one input: mode 0 one linear() each,
//                                          mode 1 one linear_shared_input() for all of them
//   linear_prefill/<shape>/<W>/N:n         one projection of a prefill-sized block (n = 512,
//                                          2048): compute-bound, `roofline_fraction` against
//                                          the sgemm peak measured in this binary (on the host
//                                          bf16 weights are widened to fp32 for the BLAS: the
//                                          bf16 / f32 gap is that widening)
#include <array>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "bench_main.hpp"
#include "rodimus/ops/linear.hpp"
#include "roofline.hpp"
#include "synthetic_state.hpp"

namespace {

using Space = Kokkos::DefaultExecutionSpace;
using namespace rodimus;

// past an H200's 50 MB L2 and a large server CPU's L3 (this VM's Xeon: 260 MB)
constexpr std::size_t kRotateBytes = std::size_t(rodimus::is_host_space_v<Space> ? 640 : 160) << 20;

template <class W>
void fill_weights(const View2<W, Space>& w, unsigned seed) {
  W* p = w.data();
  Kokkos::parallel_for(
      "fill_weights", Kokkos::RangePolicy<Space>(0, w.size()), KOKKOS_LAMBDA(const std::size_t i) {
        std::uint32_t h = static_cast<std::uint32_t>(i) * 2654435761u ^ seed;
        h ^= h >> 15;
        h *= 2246822519u;
        h ^= h >> 13;
        p[i] = from_f32<W>((float(h & 0xffffu) / 32768.f - 1.f) * 0.05f);
      });
  Space().fence();
}

/// `copies` sets of the projections [outs[i], in], each set's weights in one allocation.
template <class W, std::size_t K>
struct WeightSets {
  std::vector<View2<W, Space>> storage;
  std::vector<std::array<LinearWeights<W, Space>, K>> sets;
  std::size_t bytes_per_set = 0;

  WeightSets(const std::array<int, K>& outs, int in) {
    for (int o : outs) bytes_per_set += std::size_t(o) * in * sizeof(W);
    const std::size_t copies =
        std::max<std::size_t>(2, (kRotateBytes + bytes_per_set - 1) / bytes_per_set);
    for (std::size_t c = 0; c < copies; ++c) {
      std::array<LinearWeights<W, Space>, K> set;
      for (std::size_t i = 0; i < K; ++i) {
        View2<W, Space> w("w", outs[i], in);
        fill_weights(w, unsigned(c * 131 + i));
        storage.push_back(w);
        set[i].w = w;
      }
      sets.push_back(set);
    }
  }
};

template <class W>
constexpr const char* wname() {
  if constexpr (std::is_same_v<W, float>)
    return "f32";
  else
    return "bf16";
}

template <class W, std::size_t K>
void run_linear(benchmark::State& st, const std::array<int, K>& outs, int in, int n, int mode) {
  WeightSets<W, K> ws(outs, in);
  std::mt19937 rng(11);
  View2<float, Space> x("x", n, in);
  bench::fill_random(x, rng);
  std::array<View2<float, Space>, K> y;
  for (std::size_t i = 0; i < K; ++i) y[i] = View2<float, Space>("y", n, outs[i]);
  const int calls = static_cast<int>(ws.sets.size());
  const View2<const float, Space> cx(x);
  Space space;
  auto one_pass = [&] {
    for (int c = 0; c < calls; ++c) {
      const auto& set = ws.sets[c];
      if (mode == 1) {
        std::array<const LinearWeights<W, Space>*, K> p;
        for (std::size_t i = 0; i < K; ++i) p[i] = &set[i];
        linear_shared_input(space, cx, p, y, n);
      } else {
        for (std::size_t i = 0; i < K; ++i) linear(space, cx, set[i], y[i], n);
      }
    }
    space.fence();
  };
  one_pass();  // warm-up (scratch buffers, first-touch)
  for (auto _ : st) one_pass();
  const double bytes = double(ws.bytes_per_set) * calls * st.iterations();
  const double bw = bench::triad_bandwidth();
  st.counters["gbs"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsRate);
  st.counters["roofline_fraction"] =
      benchmark::Counter(bytes / bw, benchmark::Counter::kIsRate);  // floor seconds per second
  st.counters["tokens_per_s"] =
      benchmark::Counter(double(n) * calls * st.iterations(), benchmark::Counter::kIsRate);
  st.counters["s_per_call"] = benchmark::Counter(
      double(calls) * st.iterations(), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  st.counters["triad_gbs"] = bw * 1e-9;
}

/// One projection [out, in] on n tokens, the weights of one set reused (a prefill's GEMM reads
/// them once per call from memory, a negligible part of its time).
template <class W>
void run_prefill(benchmark::State& st, int out, int in, int n) {
  View2<W, Space> w("w", out, in);
  fill_weights(w, 7u);
  LinearWeights<W, Space> lw;
  lw.w = w;
  std::mt19937 rng(13);
  View2<float, Space> x("x", n, in), y("y", n, out);
  bench::fill_random(x, rng);
  Space space;
  const View2<const float, Space> cx(x);
  linear(space, cx, lw, y, n);  // warm-up
  space.fence();
  for (auto _ : st) {
    linear(space, cx, lw, y, n);
    space.fence();
  }
  const double flops = 2.0 * n * double(out) * in * double(st.iterations());
  st.counters["gflops"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsRate);
  st.counters["roofline_fraction"] =
      benchmark::Counter(flops / bench::sgemm_peak(), benchmark::Counter::kIsRate);
  st.counters["tokens_per_s"] =
      benchmark::Counter(double(n) * st.iterations(), benchmark::Counter::kIsRate);
}

template <class W, std::size_t K>
void add(const std::string& name, std::array<int, K> outs, int in, bool group) {
  for (int n : {1, 4, 16}) {
    for (int mode : group ? std::vector<int>{0, 1} : std::vector<int>{0}) {
      std::string full = std::string(group ? "linear_group/" : "linear/") + name + "/" +
                         wname<W>() + "/N:" + std::to_string(n);
      if (group) full += mode == 1 ? "/shared" : "/separate";
      benchmark::RegisterBenchmark(
          full.c_str(), [=](benchmark::State& st) { run_linear<W, K>(st, outs, in, n, mode); })
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime()
          ->MinTime(0.3);
    }
  }
}

template <class W>
void register_type() {
  // Rodimus+-1.6B: D 2048, E 4096, n 64, low rank 32, FFN 2736, 16 heads of 128, vocab 126464
  add<W, 1>("fc_x:4096x2048", {4096}, 2048, false);
  add<W, 1>("out:2048x4096", {2048}, 4096, false);
  add<W, 1>("attn_q:2048x2048", {2048}, 2048, false);
  add<W, 1>("ffn_down:2048x2736", {2048}, 2736, false);
  add<W, 1>("in_q:64x4096", {64}, 4096, false);
  add<W, 1>("ch_up:4096x32", {4096}, 32, false);  // the channel gate's up-projection: short rows
  add<W, 1>("lm_head:126464x2048", {126464}, 2048, false);
  add<W, 2>("mixer_fc:2x4096x2048", {4096, 4096}, 2048, true);
  add<W, 4>("mixer_in:64,64,32,32x4096", {64, 64, 32, 32}, 4096, true);
  add<W, 3>("attn_qkv:2048,128,2048x2048", {2048, 128, 2048}, 2048, true);
  add<W, 2>("ffn_in:2x2736x2048", {2736, 2736}, 2048, true);
  for (int n : {512, 2048})
    for (const auto& [name, out, in] : {std::tuple{"fc_x:4096x2048", 4096, 2048},
                                        std::tuple{"out:2048x4096", 2048, 4096}})
      benchmark::RegisterBenchmark(("linear_prefill/" + std::string(name) + "/" + wname<W>() +
                                    "/N:" + std::to_string(n))
                                       .c_str(),
                                   [=](benchmark::State& st) { run_prefill<W>(st, out, in, n); })
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->MinTime(0.5);
}

const bool registered = [] {
  register_type<bf16>();
  register_type<float>();
  return true;
}();

}  // namespace

RODIMUS_BENCHMARK_MAIN();
