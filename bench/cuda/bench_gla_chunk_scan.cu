// Times the tensor-core chunk scan (backend/cuda/gla_chunk_scan.cuh) at the Rodimus state shape
// (one head, n = 64, E = 4096, bf16 inputs), against the machine's measured copy bandwidth and
// the datasheet tensor rate. Needs a CUDA GPU.
//
// Each shape: 3 warm-up launches, then the median of RODIMUS_BENCH_REPS (default 25) launches
// timed one by one with CUDA events; the state is not reset between launches (the work per
// launch is the same). Inputs are random (never zeros), decays uniform in [-8, 0].
// Bytes per launch: q, k (bf16) + a (fp32) + u (bf16) in, o out, state in and out.
// FLOPs per token: 2 (2C + 2n) E (the chunk form: q S, A u, k^T u, q k^T), C the chunk.
// Rows: bf16 output, the fused schedule (chunk 64 / tile 128, chunk 32 / tile 64) and the
// split schedule (chunk 64 with tiles 128 and 64, chunk 32 with tile 128; chunk groups by the
// plan, or RODIMUS_BENCH_GROUPS), the split one with ScanPrecision::Bf16 (marked f), and fp32
// output (split, chunk 64); then decode-sized calls (T = 1, B = 1 / 16 / 128, fp32 output):
// fused (chunk 32) against recurrent.
// RODIMUS_BENCH_ONLY=B,T runs one shape; RODIMUS_BENCH_GROUPS=G sets the split schedule's
// chunk groups.
// Output: a table, with one `CSV,...` line after each row for scripts/device_bench.sh.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "rodimus/backend/cuda/gla_chunk_scan.cuh"
#include "../../tests/cuda/cuda_util.hpp"

namespace {

namespace rc = rodimus::backend::cuda;

constexpr double kPeakBf16 = 989e12;  // H100/H200 SXM dense bf16, datasheet

// Fills a device buffer of bf16 or fp32 with values uniform in [lo, hi] (a hash of the index).
template <class T>
__global__ void fill_kernel(T* dst, std::size_t count, float lo, float hi, std::uint32_t seed) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < count;
       i += std::size_t(gridDim.x) * blockDim.x) {
    std::uint32_t h = static_cast<std::uint32_t>(i) * 0x9e3779b9u ^ seed;
    h ^= h >> 16;
    h *= 0x7feb352du;
    h ^= h >> 15;
    h *= 0x846ca68bu;
    h ^= h >> 16;
    const float v = lo + (hi - lo) * static_cast<float>(h >> 8) * (1.f / 16777216.f);
    if constexpr (std::is_same_v<T, float>) {
      dst[i] = v;
    } else {
      dst[i] = __float2bfloat16_rn(v);
    }
  }
}

template <class T>
void fill(T* dst, std::size_t count, float lo, float hi, std::mt19937& rng) {
  fill_kernel<<<1024, 256>>>(dst, count, lo, hi, static_cast<std::uint32_t>(rng()));
  CHECK_CUDA(cudaGetLastError());
}

// Device-to-device copy bandwidth (bytes read + written per second), best of 5, 1 GiB buffers.
double copy_bandwidth() {
  const std::size_t bytes = std::size_t(1) << 30;
  void *src = nullptr, *dst = nullptr;
  CHECK_CUDA(cudaMalloc(&src, bytes));
  CHECK_CUDA(cudaMalloc(&dst, bytes));
  CHECK_CUDA(cudaMemset(src, 1, bytes));
  cudaEvent_t e0, e1;
  CHECK_CUDA(cudaEventCreate(&e0));
  CHECK_CUDA(cudaEventCreate(&e1));
  double best = 0;
  for (int r = 0; r < 6; ++r) {
    CHECK_CUDA(cudaEventRecord(e0));
    CHECK_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice));
    CHECK_CUDA(cudaEventRecord(e1));
    CHECK_CUDA(cudaEventSynchronize(e1));
    float ms = 0;
    CHECK_CUDA(cudaEventElapsedTime(&ms, e0, e1));
    if (r > 0) best = std::max(best, 2.0 * double(bytes) / (ms * 1e-3));
  }
  CHECK_CUDA(cudaEventDestroy(e0));
  CHECK_CUDA(cudaEventDestroy(e1));
  CHECK_CUDA(cudaFree(src));
  CHECK_CUDA(cudaFree(dst));
  return best;
}

// C: the chunk; tile: the CTA's column tile (0 = the launcher's choice, 64, 128); split: the
// split schedule (chunk groups: the plan's choice) with its workspace, else the fused one.
template <class Tout, int C, rc::ScanPrecision P = rc::ScanPrecision::Split>
void bench_shape(int B, int T, int n, int E, int tile, bool split, int reps, double bw,
                 std::mt19937& rng) {
  using bf = __nv_bfloat16;
  const std::size_t N = std::size_t(B) * T;
  bf *q = nullptr, *k = nullptr, *u = nullptr;
  float *a = nullptr, *state = nullptr;
  Tout* o = nullptr;
  CHECK_CUDA(cudaMalloc(&q, N * n * sizeof(bf)));
  CHECK_CUDA(cudaMalloc(&k, N * n * sizeof(bf)));
  CHECK_CUDA(cudaMalloc(&a, N * n * sizeof(float)));
  CHECK_CUDA(cudaMalloc(&u, N * E * sizeof(bf)));
  CHECK_CUDA(cudaMalloc(&o, N * E * sizeof(Tout)));
  CHECK_CUDA(cudaMalloc(&state, std::size_t(B) * n * E * sizeof(float)));
  fill(q, N * n, -1.f, 1.f, rng);
  fill(k, N * n, -0.125f, 0.125f, rng);
  fill(a, N * n, -8.f, 0.f, rng);
  fill(u, N * E, -1.f, 1.f, rng);
  fill(state, std::size_t(B) * n * E, -1.f, 1.f, rng);

  cudaEvent_t e0, e1;
  CHECK_CUDA(cudaEventCreate(&e0));
  CHECK_CUDA(cudaEventCreate(&e1));
  rc::GlaChunkScanOptions opts;
  opts.column_tile = tile;
  opts.schedule = split ? rc::ScanSchedule::Split : rc::ScanSchedule::Fused;
  if (tile < 0) opts.schedule = rc::ScanSchedule::Recurrent, opts.column_tile = 0;
  if (const char* env = std::getenv("RODIMUS_BENCH_GROUPS")) opts.groups = std::atoi(env);
  const rc::GlaChunkScanPlan plan = rc::gla_chunk_scan_plan<C, P, bf>(B, T, n, E, false, opts);
  void* ws = nullptr;
  if (split) {
    CHECK_CUDA(cudaMalloc(&ws, plan.workspace_bytes));
    opts.workspace = ws;
    opts.workspace_bytes = plan.workspace_bytes;
  }
  auto launch = [&] {
    rc::gla_chunk_scan<bf, Tout, C, P>(q, k, a, u, state, o, B, T, n, E, nullptr, nullptr, opts);
  };
  for (int w = 0; w < 3; ++w) launch();
  CHECK_CUDA(cudaDeviceSynchronize());
  std::vector<float> times;
  for (int r = 0; r < reps; ++r) {
    CHECK_CUDA(cudaEventRecord(e0));
    launch();
    CHECK_CUDA(cudaEventRecord(e1));
    CHECK_CUDA(cudaEventSynchronize(e1));
    float ms = 0;
    CHECK_CUDA(cudaEventElapsedTime(&ms, e0, e1));
    times.push_back(ms);
  }
  CHECK_CUDA(cudaGetLastError());
  std::sort(times.begin(), times.end());
  const double ms = times[times.size() / 2];
  const double bytes =
      double(N) * n * (2 + 2 + 4) + double(N) * E * (2 + sizeof(Tout)) + 2.0 * B * n * E * 4;
  const double flops = double(N) * 2.0 * (2.0 * C + 2.0 * n) * E;
  const double s = ms * 1e-3;
  const double floor_ms = bytes / bw * 1e3;
  const char* out = std::is_same_v<Tout, float> ? "f32" : "bf16";
  const char* prec = P == rc::ScanPrecision::Split ? "" : "f";  // f: ScanPrecision::Bf16
  // schedule: tile (fused) or s<tile>G<groups> (split)
  char sched[32];
  if (plan.recurrent)
    std::snprintf(sched, sizeof sched, "recur");
  else if (split)
    std::snprintf(sched, sizeof sched, "s%dG%d", plan.column_tile, plan.groups);
  else
    std::snprintf(sched, sizeof sched, "%d", plan.column_tile);
  std::printf("%3d %6d %3d %5d %5s %3d %8s%1s %9.3f %10.1f %8.1f %6.1f%% %8.1f %6.2f%% %9.3f\n",
              B, T, n, E, out, C, sched, prec, ms, double(N) / s / 1e6, bytes / s / 1e9,
              100.0 * bytes / s / bw, flops / s / 1e12, 100.0 * flops / s / kPeakBf16, floor_ms);
  std::printf("CSV,rodimus,%d,%d,%d,%d,%s,%.5f,%.5f,C%d/%s%s\n", B, T, n, E, out, ms, floor_ms, C,
              sched, prec);
  if (ws) CHECK_CUDA(cudaFree(ws));
  CHECK_CUDA(cudaEventDestroy(e0));
  CHECK_CUDA(cudaEventDestroy(e1));
  CHECK_CUDA(cudaFree(q));
  CHECK_CUDA(cudaFree(k));
  CHECK_CUDA(cudaFree(a));
  CHECK_CUDA(cudaFree(u));
  CHECK_CUDA(cudaFree(o));
  CHECK_CUDA(cudaFree(state));
}

}  // namespace

int main() {
  int reps = 25;
  if (const char* env = std::getenv("RODIMUS_BENCH_REPS")) reps = std::max(1, std::atoi(env));
  cudaDeviceProp prop{};
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  const double bw = copy_bandwidth();
  std::printf(
      "bench_gla_chunk_scan: %s, %d SMs, L2 %d MB; copy bandwidth %.0f GB/s (read + "
      "write, measured); tensor peak %.0f TFLOP/s (datasheet, dense bf16); median of %d\n",
      prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20, bw / 1e9, kPeakBf16 / 1e12,
      reps);
  std::printf("%3s %6s %3s %5s %5s %3s %9s %9s %10s %8s %7s %8s %7s %9s\n", "B", "T", "n", "E",
              "out", "C", "schedule", "ms", "Mtok/s", "GB/s", "%copy", "TFLOP/s", "%peak", "floor_ms");
  std::mt19937 rng(1);
  const int n = 64, E = 4096;
  // RODIMUS_BENCH_ONLY=B,T: that shape alone (for profilers)
  int only_b = 0, only_t = 0;
  if (const char* env = std::getenv("RODIMUS_BENCH_ONLY")) std::sscanf(env, "%d,%d", &only_b, &only_t);
  for (int B : {1, 8})
    for (int T : {2048, 8192, 32768}) {
      if (only_b > 0 && (B != only_b || T != only_t)) continue;
      bench_shape<__nv_bfloat16, 64>(B, T, n, E, 128, false, reps, bw, rng);
      bench_shape<__nv_bfloat16, 32>(B, T, n, E, 64, false, reps, bw, rng);
      bench_shape<__nv_bfloat16, 64>(B, T, n, E, 128, true, reps, bw, rng);
      bench_shape<__nv_bfloat16, 64>(B, T, n, E, 64, true, reps, bw, rng);
      bench_shape<__nv_bfloat16, 32>(B, T, n, E, 128, true, reps, bw, rng);
      bench_shape<__nv_bfloat16, 64, rc::ScanPrecision::Bf16>(B, T, n, E, 128, true, reps, bw,
                                                              rng);
      bench_shape<float, 64>(B, T, n, E, 128, true, reps, bw, rng);
    }
  // decode-sized calls (one token per sequence, fp32 output as in the model): the fused
  // schedule (chunk 32, the launcher's tile) against the recurrent one (tile -1)
  for (int B : {1, 16, 128}) {
    if (only_b > 0 && (B != only_b || only_t != 1)) continue;
    bench_shape<float, 32>(B, 1, n, E, 0, false, reps, bw, rng);
    bench_shape<float, 32>(B, 1, n, E, -1, false, reps, bw, rng);
  }
  return 0;
}
