// Host emulation of the flash window attention (backend/cuda/flash_attention.cuh): the kernel's
// own source run by tests/cuda/emulator.hpp against the fp64 attention, on small shapes that
// reach every branch: several query tiles and key blocks, a window shorter than a tile (blocks
// skipped by some warps, masked at both edges), no window, packed sequences of different
// lengths (one empty), continued sequences reading earlier keys from their pad rows (the other
// pad rows NaN), every head dimension, Hk = 1 and Hk > 1, Hv = 1, both precisions and outputs.
//
// Seed: fresh each run, printed; RODIMUS_TEST_SEED=<n> replays one. Exit status 0 = all pass.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "emulator.hpp"
#include "flash_attention_cases.hpp"

namespace {

namespace rc = rodimus::backend::cuda;
namespace ct = rodimus::cuda_test;
using bf = __nv_bfloat16;

template <class Tq, class Tout>
bool run(const ct::FlashCase& c, std::mt19937_64& rng) {
  auto d = ct::make_flash_case<Tq, Tout>(c, rng);
  const auto a = d.args(d.q.data(), d.k_hi.data(), d.k_lo.data(), d.v_hi.data(), d.v_lo.data(),
                        d.out.data(), d.offsets.data(), c.pos0.data());
  rc::detail::check_flash_arguments(a, c.precision);
  rc::detail::launch_flash_any(emu::EmuLaunch{}, a, c.precision);
  return ct::flash_report(d);
}

}  // namespace

int main() {
  std::uint64_t seed = std::random_device{}();
  if (const char* env = std::getenv("RODIMUS_TEST_SEED")) seed = std::strtoull(env, nullptr, 10);
  std::printf("emulate_flash_attention: seed %llu\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  int failed = 0, total = 0;
  auto tally = [&](bool ok) {
    ++total;
    failed += ok ? 0 : 1;
  };
  using P = rc::AttnPrecision;
  // name, lengths, pos0, H, Hk, Hv, hd, window_back, key_pad, precision
  tally(run<float, float>({"T=150 window 40", {150}, {0}, 2, 1, 2, 64, 40, 0, P::Split}, rng));
  tally(run<float, float>({"T=140 no window", {140}, {0}, 2, 1, 2, 64, -1, 0, P::Split}, rng));
  tally(run<float, float>({"packed 70/0/33/1 window 90", {70, 0, 33, 1}, {0, 0, 0, 0}, 2, 1, 2,
                           32, 90, 0, P::Split},
                          rng));
  tally(run<float, float>({"continued: pos0 50/7/0, pad 20", {40, 66, 9}, {50, 7, 0}, 2, 1, 2, 64,
                           20, 20, P::Split},
                          rng));
  tally(run<float, float>({"continued, no window, pad 12", {30, 20}, {12, 3}, 2, 1, 2, 32, -1, 12,
                           P::Split},
                          rng));
  tally(run<float, float>({"Hk=2 Hv=1", {80}, {0}, 4, 2, 1, 32, 25, 0, P::Split}, rng));
  tally(run<float, float>({"hd=128 window 70", {100}, {0}, 1, 1, 1, 128, 70, 0, P::Split}, rng));
  tally(run<float, bf>({"bf16 out", {90}, {0}, 2, 1, 2, 64, 50, 0, P::Split}, rng));
  tally(run<bf, bf>({"bf16 in/out (FlashAttention's)", {130}, {0}, 2, 1, 2, 128, 64, 0, P::Bf16},
                    rng));
  tally(run<float, float>({"f32 in, bf16 operands", {75}, {0}, 2, 1, 2, 64, 30, 0, P::Bf16}, rng));
  std::printf("emulate_flash_attention: %d of %d cases passed\n", total - failed, total);
  return failed == 0 ? 0 : 1;
}
