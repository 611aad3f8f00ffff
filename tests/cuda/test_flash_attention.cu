// Test of the flash window attention (backend/cuda/flash_attention.cuh) on a GPU against the
// fp64 attention of the same rounded inputs (tests/cuda/flash_attention_cases.hpp): the host
// emulation's cases, then the Rodimus+-1.6B shape (16 heads of 128, one shared key head,
// window 2048 back) at T = 4096 and a packed batch of four sequences, every 61st row checked.
// Tolerances: flash_attention_cases.hpp. Needs a CUDA GPU.
//
// Seed: fresh each run, printed; RODIMUS_TEST_SEED=<n> replays one. RODIMUS_TEST_QUICK=1 runs
// the small cases only (for compute-sanitizer). Exit status 0 = all pass.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "flash_attention_cases.hpp"

namespace {

namespace rc = rodimus::backend::cuda;
namespace ct = rodimus::cuda_test;
using ct::DeviceBuffer;
using bf = __nv_bfloat16;

template <class T>
void upload(DeviceBuffer<T>& d, const std::vector<T>& h) {
  CHECK_CUDA(cudaMemcpy(d.ptr, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
}

template <class Tq, class Tout>
bool run(const ct::FlashCase& c, std::mt19937_64& rng) {
  auto d = ct::make_flash_case<Tq, Tout>(c, rng);
  DeviceBuffer<Tq> q(d.q.size());
  DeviceBuffer<bf> kh(d.k_hi.size()), kl(d.k_lo.size()), vh(d.v_hi.size()), vl(d.v_lo.size());
  DeviceBuffer<Tout> out(d.out.size());
  DeviceBuffer<int> offsets(d.offsets.size()), pos0(c.pos0.size() + 1);
  upload(q, d.q);
  upload(kh, d.k_hi);
  upload(kl, d.k_lo);
  upload(vh, d.v_hi);
  upload(vl, d.v_lo);
  upload(out, d.out);  // NaN poison
  upload(offsets, d.offsets);
  upload(pos0, c.pos0);
  rc::flash_attention(d.args(q.ptr, kh.ptr, kl.ptr, vh.ptr, vl.ptr, out.ptr, offsets.ptr, pos0.ptr),
                      c.precision, nullptr);
  CHECK_CUDA(cudaDeviceSynchronize());
  CHECK_CUDA(cudaMemcpy(d.out.data(), out.ptr, d.out.size() * sizeof(Tout),
                        cudaMemcpyDeviceToHost));
  return ct::flash_report(d);
}

}  // namespace

int main() {
  std::uint64_t seed = std::random_device{}();
  if (const char* env = std::getenv("RODIMUS_TEST_SEED")) seed = std::strtoull(env, nullptr, 10);
  std::printf("test_flash_attention: seed %llu (replay: RODIMUS_TEST_SEED=%llu)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  int count = 0;
  CHECK_CUDA(cudaGetDeviceCount(&count));
  if (count == 0) {
    std::printf("test_flash_attention: no CUDA device\n");
    return 1;
  }
  std::mt19937_64 rng(seed);
  const bool quick = std::getenv("RODIMUS_TEST_QUICK") != nullptr;
  int failed = 0, total = 0;
  auto tally = [&](bool ok) {
    ++total;
    failed += ok ? 0 : 1;
  };
  using P = rc::AttnPrecision;
  tally(run<float, float>({"T=150 window 40", {150}, {0}, 2, 1, 2, 64, 40, 0, P::Split}, rng));
  tally(run<float, float>({"T=140 no window", {140}, {0}, 2, 1, 2, 64, -1, 0, P::Split}, rng));
  tally(run<float, float>({"packed 70/0/33/1 window 90", {70, 0, 33, 1}, {0, 0, 0, 0}, 2, 1, 2,
                           32, 90, 0, P::Split},
                          rng));
  tally(run<float, float>({"continued: pos0 50/7/0, pad 20", {40, 66, 9}, {50, 7, 0}, 2, 1, 2, 64,
                           20, 20, P::Split},
                          rng));
  tally(run<float, float>({"Hk=2 Hv=1", {80}, {0}, 4, 2, 1, 32, 25, 0, P::Split}, rng));
  tally(run<bf, bf>({"bf16 in/out (FlashAttention's)", {130}, {0}, 2, 1, 2, 128, 64, 0, P::Bf16},
                    rng));
  if (!quick) {
    tally(run<float, float>({"Rodimus+ T=4096", {4096}, {0}, 16, 1, 16, 128, 2048, 0, P::Split, 61},
                            rng));
    tally(run<bf, bf>({"Rodimus+ T=4096 bf16", {4096}, {0}, 16, 1, 16, 128, 2048, 0, P::Bf16, 61},
                      rng));
    tally(run<float, float>({"Rodimus+ packed, continued", {700, 1500, 3, 2600}, {0, 3000, 9, 100},
                             16, 1, 16, 128, 2048, 2048, P::Split, 61},
                            rng));
    tally(run<float, bf>({"hd=64 H=8 T=3000 window 500", {3000}, {0}, 8, 1, 8, 64, 500, 0,
                          P::Split, 29},
                         rng));
  }
  std::printf("test_flash_attention: %d of %d cases passed\n", total - failed, total);
  return failed == 0 ? 0 : 1;
}
