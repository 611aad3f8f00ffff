// The GLA scan alone at the Rodimus state shape (n = 64, E = 4096): chunked vs recurrent.
// Peer (issue 4): ggml's gated_linear_attn ran this shape at 39.7k / 58.9k tokens/s (T = 2048,
// 1 / 2 threads) and 42.5 / 24.6 us per decode step with the state in cache.
#include <random>

#include "bench_main.hpp"
#include "roofline.hpp"
#include "rodimus/ops/gla_scan.hpp"

namespace {

using Space = Kokkos::DefaultExecutionSpace;
using namespace rodimus;

struct ScanInputs {
  View2<float, Space> q, k, a, u, o;
  View3<float, Space> state;
  detail::SeqBatchBuffers<Space> buffers;
  SeqBatch<Space> batch;

  ScanInputs(int t, int n, int e) {
    q = View2<float, Space>("q", t, n);
    k = View2<float, Space>("k", t, n);
    a = View2<float, Space>("a", t, n);
    u = View2<float, Space>("u", t, e);
    o = View2<float, Space>("o", t, e);
    state = View3<float, Space>("S", 1, n, e);
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> d(-1.f, 1.f), dec(-3.f, 0.f);
    auto fill = [&](auto& v, auto& dist) {
      auto h = Kokkos::create_mirror_view(v);
      for (std::size_t i = 0; i < h.extent(0); ++i)
        for (std::size_t j = 0; j < h.extent(1); ++j) h(i, j) = dist(rng);
      Kokkos::deep_copy(v, h);
    };
    fill(q, d);
    fill(k, d);
    fill(a, dec);
    fill(u, d);
    const std::vector<int> len = {t}, pos0 = {0}, slot = {0};
    batch = buffers.build(len, pos0, slot);
  }
};

template <class Algo>
void BM_gla_scan(benchmark::State& st) {
  const int t = static_cast<int>(st.range(0)), n = 64, e = 4096;
  ScanInputs in(t, n, e);
  GlaScanWorkspace<Space> ws;
  using CV = View2<const float, Space>;
  for (auto _ : st) {
    gla_scan<Algo>(Space(), CV(in.q), CV(in.k), CV(in.a), CV(in.u), in.state, in.batch, in.o,
                   0.125f, ws);
    Space().fence();
  }
  st.counters["tokens_per_s"] =
      benchmark::Counter(double(t) * st.iterations(), benchmark::Counter::kIsRate);
  // Floor: the bytes the scan must move (q, k, log-gates, u in; o out; the state in and out)
  // at the triad bandwidth. The chunk form does 2 x (2C + 2n) x E FLOPs per token besides.
  const double bytes = 4.0 * (double(t) * (3.0 * n + 2.0 * e) + 2.0 * n * e);
  st.counters["roofline_fraction"] = benchmark::Counter(
      bytes / bench::triad_bandwidth() * st.iterations(), benchmark::Counter::kIsRate);
}

BENCHMARK_TEMPLATE(BM_gla_scan, ChunkedScan<64>)
    ->Arg(2048)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_gla_scan, ChunkedScan<32>)
    ->Arg(2048)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_gla_scan, RecurrentScan)
    ->Arg(2048)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_gla_scan, RecurrentScan)
    ->Arg(1)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace

RODIMUS_BENCHMARK_MAIN();
