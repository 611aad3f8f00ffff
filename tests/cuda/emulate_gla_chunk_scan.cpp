// Host emulation of the CUDA chunk-scan kernel (backend/cuda/gla_chunk_scan.cuh): the kernel's
// own source, compiled by the host compiler, one std::thread per CUDA thread, against the fp64
// recurrence. It checks the kernel's index math, fragment layouts, barriers and decay algebra
// on machines without a GPU (CI); speed and the real tensor cores are the GPU test's business.
//
// The emulation itself: tests/cuda/emulator.hpp.
//
// Seed: fresh each run, printed; RODIMUS_TEST_SEED=<n> replays one. Exit status 0 = all pass.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "emulator.hpp"
#include "rodimus/backend/cuda/gla_chunk_scan.cuh"
#include "rodimus/reference/gla_scan.hpp"
#include "cuda_util.hpp"

namespace {

namespace rd = rodimus::backend::cuda::detail;
using rodimus::cuda_test::from_float;
using rodimus::cuda_test::to_double;

// How a case is scheduled: fused, split with `groups` chunk groups per sequence, or recurrent.
struct Sched {
  bool split = false;
  int groups = 1;
  bool recurrent = false;
};

template <int N, int C, int TE, class Tin, class Tout,
          rodimus::backend::cuda::ScanPrecision P = rodimus::backend::cuda::ScanPrecision::Split>
bool run_case(const char* name, std::vector<int> lengths, bool varlen, int E, double a_lo,
              double a_hi, std::mt19937_64& rng, bool reversed_slots = false, Sched sched = {}) {
  const int B = static_cast<int>(lengths.size());
  const int n = N;
  std::vector<int> offs(B + 1, 0);
  for (int b = 0; b < B; ++b) offs[b + 1] = offs[b] + lengths[b];
  const int Ntok = offs[B];
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_real_distribution<double> decay(a_lo, a_hi);
  std::vector<Tin> q(std::size_t(Ntok) * n), k(q.size()), u(std::size_t(Ntok) * E);
  std::vector<float> a(q.size()), s0(std::size_t(B) * n * E);
  const float kscale = 1.f / std::sqrt(float(n));
  for (auto& x : q) x = from_float<Tin>(normal(rng));
  for (auto& x : k) x = from_float<Tin>(normal(rng) * kscale);
  for (auto& x : u) x = from_float<Tin>(normal(rng));
  for (auto& x : a) x = a_lo == a_hi ? float(a_lo) : float(decay(rng));
  for (auto& x : s0) x = normal(rng);
  std::vector<Tout> out(std::size_t(Ntok) * E);
  std::memset(static_cast<void*>(out.data()), 0xff, out.size() * sizeof(Tout));  // NaN poison
  // sequence b continues state slot slots[b] (reversed: B-1-b) or b
  std::vector<int> slots(B);
  for (int b = 0; b < B; ++b) slots[b] = reversed_slots ? B - 1 - b : b;
  std::vector<float> s1(s0.size());
  for (int b = 0; b < B; ++b)
    std::copy_n(s0.begin() + std::ptrdiff_t(b) * n * E, std::size_t(n) * E,
                s1.begin() + std::ptrdiff_t(slots[b]) * n * E);
  namespace rc = rodimus::backend::cuda;
  rc::GlaChunkScanOptions opts;
  opts.column_tile = TE;
  opts.slots = reversed_slots ? slots.data() : nullptr;
  opts.schedule = sched.recurrent ? rc::ScanSchedule::Recurrent
                  : sched.split   ? rc::ScanSchedule::Split
                                  : rc::ScanSchedule::Fused;
  opts.total_tokens = Ntok;
  opts.groups = sched.groups;
  rc::GlaChunkScanPlan plan =
      rd::make_plan(B, lengths[0], n, E, C, varlen, opts, /*sms=*/132);
  std::vector<uint4> ws((plan.workspace_bytes + 15) / 16);
  opts.workspace = ws.data();
  opts.workspace_bytes = ws.size() * 16;
  plan = rd::make_plan(B, lengths[0], n, E, C, varlen, opts, 132);
  if (plan.recurrent != sched.recurrent || plan.split != sched.split ||
      (!sched.recurrent && plan.column_tile != TE)) {
    std::printf("FAIL %s: the plan is not the one asked for\n", name);
    return false;
  }
  std::memset(static_cast<void*>(ws.data()), 0xff, ws.size() * 16);  // NaN poison
  rd::launch_any_n<C, P>(emu::EmuLaunch{}, plan, q.data(), k.data(), a.data(), u.data(), s1.data(),
                         out.data(), varlen ? offs.data() : nullptr, opts.slots, B, lengths[0], n,
                         E, rd::scan_scale(opts, n), opts.workspace);

  double no = 0, do_ = 0, ns = 0, ds = 0;
  bool finite = true;
  for (int b = 0; b < B; ++b) {
    const int L = lengths[b];
    const std::size_t r0 = offs[b];
    std::vector<double> qd(std::size_t(L) * n), kd(qd.size()), ad(qd.size()),
        ud(std::size_t(L) * E);
    for (std::size_t i = 0; i < qd.size(); ++i) {
      qd[i] = to_double(q[r0 * n + i]);
      kd[i] = to_double(k[r0 * n + i]);
      ad[i] = a[r0 * n + i];
    }
    for (std::size_t i = 0; i < ud.size(); ++i) ud[i] = to_double(u[r0 * E + i]);
    std::vector<double> S(s0.begin() + std::ptrdiff_t(b) * n * E,
                          s0.begin() + std::ptrdiff_t(b + 1) * n * E);
    const auto o_ref = rodimus::reference::gla_scan_recurrent(qd, kd, ud, ad, L, n, E, S);
    for (std::size_t i = 0; i < o_ref.size(); ++i) {
      const double x = to_double(out[r0 * E + i]);
      finite = finite && std::isfinite(x);
      no += (x - o_ref[i]) * (x - o_ref[i]);
      do_ += o_ref[i] * o_ref[i];
    }
    for (std::size_t i = 0; i < S.size(); ++i) {
      const double x = s1[std::size_t(slots[b]) * n * E + i];
      finite = finite && std::isfinite(x);
      ns += (x - S[i]) * (x - S[i]);
      ds += S[i] * S[i];
    }
  }
  const double eo = std::sqrt(no / (do_ > 0 ? do_ : 1)), es = std::sqrt(ns / (ds > 0 ? ds : 1));
  constexpr bool fast = P == rodimus::backend::cuda::ScanPrecision::Bf16;
  const double tol_o = fast ? 1e-2 : std::is_same_v<Tout, float> ? 2e-4 : 2e-3;
  const double tol_s = fast ? 1e-2 : 2e-4;
  const bool ok = finite && eo <= tol_o && es <= tol_s;
  std::printf(
      "%s %-28s %s n=%d C=%d TE=%d in=%s out=%s a=[%g,%g]  o_err=%.2e (tol %.0e)  S_err=%.2e%s\n",
      ok ? "ok  " : "FAIL", name,
      sched.recurrent ? "recur  " : sched.split ? (sched.groups > 1 ? "split/G" : "split  ") : "fused  ",
      N, C, TE, std::is_same_v<Tin, float> ? "f32" : "bf16",
      std::is_same_v<Tout, float> ? "f32" : "bf16", a_lo, a_hi, eo, tol_o, es,
      finite ? "" : "  NON-FINITE");
  return ok;
}

}  // namespace

int main() {
  std::uint64_t seed = std::random_device{}();
  if (const char* env = std::getenv("RODIMUS_TEST_SEED")) seed = std::strtoull(env, nullptr, 10);
  std::printf("emulate_gla_chunk_scan: seed %llu\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  using bf = __nv_bfloat16;
  int failed = 0, total = 0;
  auto tally = [&](bool ok) {
    ++total;
    failed += ok ? 0 : 1;
  };
  tally(run_case<64, 64, 64, bf, float>("T=1", {1}, false, 64, -60, 0, rng));
  tally(run_case<64, 64, 64, bf, float>("T=100 strong", {100}, false, 64, -60, 0, rng));
  tally(run_case<64, 64, 64, bf, float>("T=100 mild", {100}, false, 64, -0.5, 0, rng));
  tally(run_case<64, 64, 64, bf, float>("T=70 a=0", {70}, false, 64, 0, 0, rng));
  tally(
      run_case<64, 64, 128, bf, float>("T=90 B=2 mixed TE=128", {90, 90}, false, 128, -8, 0, rng));
  tally(run_case<64, 64, 64, bf, float>("varlen 5/0/75 strong", {5, 0, 75}, true, 64, -60, 0, rng));
  tally(run_case<64, 32, 64, float, float>("varlen f32 reversed slots", {33, 7, 64}, true, 64, -8,
                                           0, rng, true));
  tally(run_case<64, 64, 64, bf, bf>("bf16 out mild", {80}, false, 64, -0.5, 0, rng));
  tally(run_case<64, 32, 64, float, float>("f32 in mild", {80}, false, 64, -0.5, 0, rng));
  tally(run_case<64, 32, 128, bf, float>("C=32 TE=128 strong B=2", {50, 50}, false, 128, -60, 0,
                                         rng));
  tally(run_case<32, 64, 64, bf, float>("n=32 mild", {80}, false, 64, -0.5, 0, rng));
  tally(run_case<64, 16, 64, bf, float>("C=16 strong", {40}, false, 64, -60, 0, rng));
  tally(run_case<64, 32, 64, bf, float>("C=32 mild", {70}, false, 64, -0.5, 0, rng));
  using rodimus::backend::cuda::ScanPrecision;
  tally(run_case<64, 64, 64, bf, float, ScanPrecision::Bf16>("Bf16 precision mild", {100}, false,
                                                             64, -0.5, 0, rng));
  tally(run_case<64, 64, 128, bf, bf, ScanPrecision::Bf16>("Bf16 precision strong", {90}, false,
                                                           128, -60, 0, rng));
  // The split schedule: chunk operands once per chunk, chunk groups in parallel.
  const Sched split1{true, 1}, split3{true, 3}, split4{true, 4}, split2{true, 2};
  tally(run_case<64, 64, 64, bf, float>("T=300 strong", {300}, false, 64, -60, 0, rng, false,
                                        split1));
  tally(run_case<64, 64, 64, bf, float>("T=300 mild 2 tiles", {300}, false, 128, -0.5, 0, rng,
                                        false, split3));
  tally(run_case<64, 32, 64, float, float>("varlen f32 reversed slots", {5, 0, 200, 64}, true, 64,
                                           -8, 0, rng, true, split4));
  tally(run_case<64, 64, 128, bf, bf>("bf16 out B=2", {150, 150}, false, 128, -2, 0, rng, false,
                                      split2));
  tally(run_case<64, 64, 64, bf, float, ScanPrecision::Bf16>("Bf16 precision", {200}, false, 64,
                                                             -0.5, 0, rng, false, split3));
  tally(run_case<32, 16, 64, bf, float>("n=32 C=16 strong", {90}, false, 64, -60, 0, rng, false,
                                        split4));
  tally(run_case<128, 32, 64, bf, float>("n=128 C=32 mild", {100}, false, 64, -0.5, 0, rng, false,
                                         split2));
  tally(run_case<64, 64, 64, bf, float>("a=0 G > chunks", {70}, false, 64, 0, 0, rng, false,
                                        split4));
  // The recurrent schedule (decode-sized calls), exact fp32.
  const Sched recur{false, 1, true};
  tally(run_case<64, 64, 64, bf, float>("recurrent T=1 B=3 strong", {1, 1, 1}, false, 192, -60, 0,
                                        rng, false, recur));
  tally(run_case<64, 64, 64, float, float>("recurrent varlen f32 reversed", {1, 0, 3, 9}, true, 64,
                                           -8, 0, rng, true, recur));
  tally(run_case<32, 64, 64, bf, bf>("recurrent n=32 bf16 out", {4, 4}, false, 64, -0.5, 0, rng,
                                     false, recur));
  tally(run_case<128, 32, 64, bf, float>("recurrent n=128 a=0", {2}, false, 320, 0, 0, rng, false,
                                         recur));
  std::printf("emulate_gla_chunk_scan: %d of %d cases passed (seed %llu)\n", total - failed, total,
              static_cast<unsigned long long>(seed));
  return failed == 0 ? 0 : 1;
}
