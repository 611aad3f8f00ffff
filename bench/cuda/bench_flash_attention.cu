// Times the flash window attention (backend/cuda/flash_attention.cuh) at the Rodimus+-1.6B
// attention shape: one sequence of T tokens, 16 query heads of 128, one shared key head, 16
// value heads, window 2048 back. Needs a CUDA GPU; its peer is PyTorch SDPA
// (scripts/device_attn_peer.py), in the same run of scripts/device_bench.sh (stage attn).
//
// Rows per T (4096, 16384): bf16 q, k, v and output with bf16 products (what FlashAttention
// computes, the comparison with SDPA), and fp32 q and output with split products (the model's
// path; keys and values already split), each with the default warps per CTA (8 bf16, 4 split;
// flash_warps) and the other choice (-w4, -w8).
// Each row: 3 warm-up launches, then the median of RODIMUS_BENCH_REPS (default 25) launches
// timed one by one with CUDA events. Inputs random (a hash of the index; never zeros).
// `TFLOP/s` counts the useful work inside the window: 4 hd H sum_p min(p + 1, 2049) flops
// (the split products do 3x that on the tensor cores), as bench_window_attention and the peer.
// Output: a table, with one `CSV,rodimus,<variant>,<T>,<ms>` line per row.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "rodimus/backend/cuda/flash_attention.cuh"
#include "../../tests/cuda/cuda_util.hpp"

namespace {

namespace rc = rodimus::backend::cuda;
using bf = __nv_bfloat16;
constexpr int kHeads = 16, kHd = 128, kWindowBack = 2048;

template <class T>
__global__ void fill_kernel(T* dst, std::size_t count, std::uint32_t seed) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < count;
       i += std::size_t(gridDim.x) * blockDim.x) {
    std::uint32_t h = static_cast<std::uint32_t>(i) * 0x9e3779b9u ^ seed;
    h ^= h >> 16;
    h *= 0x7feb352du;
    h ^= h >> 15;
    h *= 0x846ca68bu;
    h ^= h >> 16;
    const float v = -2.f + 4.f * static_cast<float>(h >> 8) * (1.f / 16777216.f);
    if constexpr (std::is_same_v<T, float>) {
      dst[i] = v;
    } else {
      dst[i] = __float2bfloat16_rn(v);
    }
  }
}

template <class T>
T* alloc_random(std::size_t count, std::uint32_t seed) {
  T* p = nullptr;
  CHECK_CUDA(cudaMalloc(&p, count * sizeof(T) + 16));
  fill_kernel<<<1024, 256>>>(p, count, seed);
  CHECK_CUDA(cudaGetLastError());
  return p;
}

template <int W, bool Split, class Tq, class Tout>
void bench_row(const char* variant, int T, int reps) {
  const std::size_t N = T;
  Tq* q = alloc_random<Tq>(N * kHeads * kHd, 1);
  bf* kh = alloc_random<bf>(N * kHd, 2);
  bf* kl = alloc_random<bf>(N * kHd, 3);
  bf* vh = alloc_random<bf>(N * kHeads * kHd, 4);
  bf* vl = alloc_random<bf>(N * kHeads * kHd, 5);
  Tout* out = nullptr;
  CHECK_CUDA(cudaMalloc(&out, N * kHeads * kHd * sizeof(Tout)));
  int* offsets = nullptr;
  CHECK_CUDA(cudaMalloc(&offsets, 2 * sizeof(int)));
  const int h_off[2] = {0, T};
  CHECK_CUDA(cudaMemcpy(offsets, h_off, sizeof h_off, cudaMemcpyHostToDevice));
  rc::FlashAttentionArgs<Tq, Tout> a;
  a.q = q;
  a.k_hi = kh;
  a.k_lo = Split ? kl : nullptr;
  a.v_hi = vh;
  a.v_lo = Split ? vl : nullptr;
  a.out = out;
  a.ldq = a.ldo = kHeads * kHd;
  a.ldk = kHd;
  a.ldv = kHeads * kHd;
  a.heads = kHeads;
  a.heads_k = 1;
  a.heads_v = kHeads;
  a.head_dim = kHd;
  a.window_back = kWindowBack;
  a.scale = 0.08838834764831845f;
  a.offsets = offsets;
  a.num_seqs = 1;
  a.max_len = T;
  rc::detail::check_flash_arguments(a, Split ? rc::AttnPrecision::Split : rc::AttnPrecision::Bf16);
  const rc::detail::CudaLaunch launch{nullptr, "bench_flash_attention"};
  cudaEvent_t e0, e1;
  CHECK_CUDA(cudaEventCreate(&e0));
  CHECK_CUDA(cudaEventCreate(&e1));
  for (int r = 0; r < 3; ++r) rc::detail::launch_flash<kHd, Split, W>(launch, a);
  std::vector<float> ms(reps);
  for (int r = 0; r < reps; ++r) {
    CHECK_CUDA(cudaEventRecord(e0));
    rc::detail::launch_flash<kHd, Split, W>(launch, a);
    CHECK_CUDA(cudaEventRecord(e1));
    CHECK_CUDA(cudaEventSynchronize(e1));
    CHECK_CUDA(cudaEventElapsedTime(&ms[r], e0, e1));
  }
  std::sort(ms.begin(), ms.end());
  const double med = ms[reps / 2];
  double pairs = 0;
  for (int p = 0; p < T; ++p) pairs += std::min(p + 1, kWindowBack + 1);
  const double flops = 4.0 * kHd * kHeads * pairs;
  std::printf("%-28s %6d %9.3f %12.0f %8.1f\n", variant, T, med, T / med * 1e3,
              flops / (med * 1e-3) * 1e-12);
  std::printf("CSV,rodimus,%s,%d,%.4f\n", variant, T, med);
  CHECK_CUDA(cudaEventDestroy(e0));
  CHECK_CUDA(cudaEventDestroy(e1));
  for (void* p : {static_cast<void*>(q), static_cast<void*>(kh), static_cast<void*>(kl),
                  static_cast<void*>(vh), static_cast<void*>(vl), static_cast<void*>(out),
                  static_cast<void*>(offsets)})
    CHECK_CUDA(cudaFree(p));
}

}  // namespace

int main() {
  int reps = 25;
  if (const char* env = std::getenv("RODIMUS_BENCH_REPS")) reps = std::max(1, std::atoi(env));
  cudaDeviceProp prop{};
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("bench_flash_attention: %s, H=%d (one key head), hd=%d, window %d back\n", prop.name,
              kHeads, kHd, kWindowBack);
  std::printf("%-28s %6s %9s %12s %8s\n", "variant", "T", "ms", "tok/s", "TFLOP/s");
  for (const int T : {4096, 16384}) {
    bench_row<8, false, bf, bf>("flash-bf16", T, reps);
    bench_row<4, false, bf, bf>("flash-bf16-w4", T, reps);
    bench_row<4, true, float, float>("flash-split-f32", T, reps);
    bench_row<8, true, float, float>("flash-split-f32-w8", T, reps);
  }
  return 0;
}
