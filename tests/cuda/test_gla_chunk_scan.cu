// Test of the tensor-core chunk scan (backend/cuda/gla_chunk_scan.cuh) against the fp64
// recurrence (reference::gla_scan_recurrent), on random inputs. Needs a CUDA GPU to run.
//
// Inputs are drawn in fp32, rounded to the kernel's input type, and the reference runs in fp64
// on the very same rounded values, so the only differences are the kernel's own arithmetic and
// the rounding of its output. Error = ||o - o_ref||_2 / ||o_ref||_2 over all outputs (and the
// same for the final state).
// Tolerances: the brief's bf16 budget is 2e-3. A bf16 output alone costs ~1.5e-3 (rounding to
// 8 significant bits, norm-wise), so bf16-output cases get 2e-3. The kernel splits every
// non-bf16 tensor-core operand into two bf16 halves (~2^-16 relative), so with an fp32 output
// it is fp32-accurate; those cases (and every final state) get 2e-4, which a plain bf16
// operand (~1.6e-3 per rounding) anywhere in the pipeline would fail. Two cases run
// ScanPrecision::Bf16 (each operand rounded once: ~2e-3 measured by the host emulation, so it
// would not meet 2e-3 with a bf16 output) against 1e-2.
//
// Seed: fresh each run, printed; RODIMUS_TEST_SEED=<n> replays one. RODIMUS_TEST_QUICK=1 runs
// three small cases only (for compute-sanitizer). Exit status 0 = all pass.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "rodimus/backend/cuda/gla_chunk_scan.cuh"
#include "rodimus/reference/gla_scan.hpp"
#include "cuda_util.hpp"

namespace {

namespace rc = rodimus::backend::cuda;
using rodimus::cuda_test::DeviceBuffer;
using rodimus::cuda_test::from_float;
using rodimus::cuda_test::to_double;

struct Case {
  std::string name;
  std::vector<int> lengths;  // one per sequence
  bool packed_offsets;       // pass offsets (variable lengths) instead of B, T
  int n;
  int E;
  double a_lo, a_hi;  // log decay uniform in [a_lo, a_hi]
  int column_tile;    // 0 auto, 64, 128
  rc::ScanSchedule schedule = rc::ScanSchedule::Auto;  // Auto: with a workspace of the plan's size
  int groups = 0;                                        // split: chunk groups (0 auto)
};

double rel_err(const std::vector<double>& x, const std::vector<double>& ref, bool& finite) {
  double num = 0, den = 0;
  finite = true;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i])) finite = false;
    num += (x[i] - ref[i]) * (x[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// Runs one case with input type Tin, output type Tout and chunk C; returns true on success.
template <class Tin, class Tout, int C = 64, rc::ScanPrecision P = rc::ScanPrecision::Split>
bool run_case(const Case& cs, std::mt19937_64& rng) {
  const int B = static_cast<int>(cs.lengths.size());
  const int n = cs.n, E = cs.E;
  std::vector<int> offs(B + 1, 0);
  for (int b = 0; b < B; ++b) offs[b + 1] = offs[b] + cs.lengths[b];
  const int N = offs[B];
  const int T = cs.lengths[0];

  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_real_distribution<double> decay(cs.a_lo, cs.a_hi);
  std::vector<Tin> q(std::size_t(N) * n), k(q.size()), u(std::size_t(N) * E);
  std::vector<float> a(q.size()), s0(std::size_t(B) * n * E);
  // k normalised like k' of SPEC 2.6 (|k| ~ 1), q and u unit normal, state of unit scale
  const float kscale = 1.f / std::sqrt(static_cast<float>(n));
  for (auto& x : q) x = from_float<Tin>(normal(rng));
  for (auto& x : k) x = from_float<Tin>(normal(rng) * kscale);
  for (auto& x : u) x = from_float<Tin>(normal(rng));
  for (auto& x : a)
    x = cs.a_lo == cs.a_hi ? static_cast<float>(cs.a_lo) : static_cast<float>(decay(rng));
  for (auto& x : s0) x = normal(rng);

  DeviceBuffer<Tin> dq(q.size()), dk(k.size()), du(u.size());
  DeviceBuffer<float> da(a.size()), ds(s0.size());
  DeviceBuffer<Tout> dout(std::size_t(N) * E);
  DeviceBuffer<int> doffs(offs.size());
  CHECK_CUDA(cudaMemcpy(dq.ptr, q.data(), q.size() * sizeof(Tin), cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(dk.ptr, k.data(), k.size() * sizeof(Tin), cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(du.ptr, u.data(), u.size() * sizeof(Tin), cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(da.ptr, a.data(), a.size() * sizeof(float), cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(ds.ptr, s0.data(), s0.size() * sizeof(float), cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(doffs.ptr, offs.data(), offs.size() * sizeof(int), cudaMemcpyHostToDevice));
  // poison the output (NaN in fp32 and bf16) so an unwritten element fails the test
  CHECK_CUDA(cudaMemset(dout.ptr, 0xff, std::size_t(N) * E * sizeof(Tout)));

  rc::GlaChunkScanOptions opts;
  opts.column_tile = cs.column_tile;
  opts.schedule = cs.schedule;
  opts.groups = cs.groups;
  opts.total_tokens = N;
  rc::GlaChunkScanPlan plan;
  try {
    plan = rc::gla_chunk_scan_plan<C, P, Tin>(B, T, n, E, cs.packed_offsets, opts);
  } catch (const std::exception& e) {
    std::printf("FAIL %-34s plan threw: %s\n", cs.name.c_str(), e.what());
    return false;
  }
  DeviceBuffer<unsigned char> ws(plan.workspace_bytes);
  if (plan.workspace_bytes > 0) {
    CHECK_CUDA(cudaMemset(ws.ptr, 0xff, plan.workspace_bytes));  // NaN poison
    opts.workspace = ws.ptr;
    opts.workspace_bytes = plan.workspace_bytes;
    plan = rc::gla_chunk_scan_plan<C, P, Tin>(B, T, n, E, cs.packed_offsets, opts);
  }
  try {
    rc::gla_chunk_scan<Tin, Tout, C, P>(dq.ptr, dk.ptr, da.ptr, du.ptr, ds.ptr, dout.ptr, B, T, n,
                                        E, nullptr, cs.packed_offsets ? doffs.ptr : nullptr, opts);
  } catch (const std::exception& e) {
    std::printf("FAIL %-34s threw: %s\n", cs.name.c_str(), e.what());
    return false;
  }
  CHECK_CUDA(cudaGetLastError());
  CHECK_CUDA(cudaDeviceSynchronize());

  std::vector<Tout> out(std::size_t(N) * E);
  std::vector<float> s1(s0.size());
  CHECK_CUDA(cudaMemcpy(out.data(), dout.ptr, out.size() * sizeof(Tout), cudaMemcpyDeviceToHost));
  CHECK_CUDA(cudaMemcpy(s1.data(), ds.ptr, s1.size() * sizeof(float), cudaMemcpyDeviceToHost));

  // fp64 reference per sequence on the same rounded inputs
  std::vector<double> o_all, o_ref_all, s_all, s_ref_all;
  for (int b = 0; b < B; ++b) {
    const int L = cs.lengths[b];
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
    const std::vector<double> o_ref =
        rodimus::reference::gla_scan_recurrent(qd, kd, ud, ad, L, n, E, S);
    o_ref_all.insert(o_ref_all.end(), o_ref.begin(), o_ref.end());
    for (std::size_t i = 0; i < o_ref.size(); ++i) o_all.push_back(to_double(out[r0 * E + i]));
    s_ref_all.insert(s_ref_all.end(), S.begin(), S.end());
    for (std::size_t i = 0; i < S.size(); ++i) s_all.push_back(s1[std::size_t(b) * n * E + i]);
  }
  bool o_finite = true, s_finite = true;
  const double eo = rel_err(o_all, o_ref_all, o_finite);
  const double es = rel_err(s_all, s_ref_all, s_finite);
  constexpr bool fast = P == rc::ScanPrecision::Bf16;
  const double tol_o = fast ? 1e-2 : std::is_same_v<Tout, float> ? 2e-4 : 2e-3;
  const double tol_s = fast ? 1e-2 : 2e-4;
  const bool ok = o_finite && s_finite && eo <= tol_o && es <= tol_s;
  std::printf(
      "%s %-34s in=%s out=%s%s C=%d n=%d E=%d B=%d N=%d a=[%g,%g] %s G=%d tile=%d  o_err=%.2e "
      "(tol %.0e)  S_err=%.2e (tol %.0e)%s\n",
      ok ? "ok  " : "FAIL", cs.name.c_str(), std::is_same_v<Tin, float> ? "f32" : "bf16",
      std::is_same_v<Tout, float> ? "f32" : "bf16", fast ? " Bf16-precision" : "", C, n, E, B, N,
      cs.a_lo, cs.a_hi, plan.recurrent ? "recur" : plan.split ? "split" : "fused", plan.groups, plan.column_tile, eo, tol_o,
      es, tol_s,
      o_finite && s_finite ? "" : "  NON-FINITE");
  return ok;
}

// A call that must throw rodimus::ArgumentError before launching anything.
template <class F>
bool expect_argument_error(const char* name, F&& f) {
  try {
    f();
  } catch (const rodimus::ArgumentError& e) {
    std::printf("ok   %-34s ArgumentError: %s\n", name, e.what());
    return true;
  } catch (const std::exception& e) {
    std::printf("FAIL %-34s wrong exception: %s\n", name, e.what());
    return false;
  }
  std::printf("FAIL %-34s did not throw\n", name);
  return false;
}

}  // namespace

int main() {
  std::uint64_t seed = std::random_device{}();
  if (const char* env = std::getenv("RODIMUS_TEST_SEED")) seed = std::strtoull(env, nullptr, 10);
  std::printf("test_gla_chunk_scan: seed %llu (replay: RODIMUS_TEST_SEED=%llu)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  int count = 0;
  CHECK_CUDA(cudaGetDeviceCount(&count));
  if (count == 0) {
    std::printf("test_gla_chunk_scan: no CUDA device\n");
    return 1;
  }
  cudaDeviceProp prop{};
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("test_gla_chunk_scan: %s (sm_%d%d, %d SMs)\n", prop.name, prop.major, prop.minor,
              prop.multiProcessorCount);
  std::mt19937_64 rng(seed);
  const bool quick = std::getenv("RODIMUS_TEST_QUICK") != nullptr;

  const double strong_lo = -60.0, mild_lo = -0.5;
  int failed = 0, total = 0;
  auto tally = [&](bool ok) {
    ++total;
    if (!ok) ++failed;
  };
  using bf = __nv_bfloat16;
  // name, lengths, offsets?, n, E, a range, tile
  // the quick set (RODIMUS_TEST_QUICK=1, e.g. under compute-sanitizer): several chunks, both
  // column tiles, variable lengths with an empty sequence, both schedules
  tally(run_case<bf, float>({"T=100 strong", {100}, false, 64, 128, strong_lo, 0.0, 64}, rng));
  tally(run_case<bf, float>({"T=100 mild", {100}, false, 64, 128, mild_lo, 0.0, 128}, rng));
  tally(run_case<bf, float>(
      {"varlen 5/130/64/0 strong", {5, 130, 64, 0}, true, 64, 128, strong_lo, 0.0, 0}, rng));
  tally(run_case<bf, float>({"split varlen 300/0/170 G=3 strong", {300, 0, 170}, true, 64, 128,
                             strong_lo, 0.0, 0, rc::ScanSchedule::Split, 3},
                            rng));
  if (!quick) {
    tally(run_case<bf, float>({"T=1", {1}, false, 64, 64, strong_lo, 0.0, 0}, rng));
    tally(run_case<bf, float>({"T=1 B=3 mild", {1, 1, 1}, false, 64, 128, mild_lo, 0.0, 0}, rng));
    tally(run_case<bf, float>({"T=64 a=0", {64}, false, 64, 64, 0.0, 0.0, 64}, rng));
    tally(run_case<bf, float>({"T=333 a=0 B=2", {333, 333}, false, 64, 256, 0.0, 0.0, 0}, rng));
    tally(run_case<bf, float>(
        {"T=257 B=3 strong", {257, 257, 257}, false, 64, 192, strong_lo, 0.0, 0}, rng));
    tally(run_case<bf, float>(
        {"T=300 B=2 mild E=4096", {300, 300}, false, 64, 4096, mild_lo, 0.0, 0}, rng));
    tally(run_case<bf, float>(
        {"T=130 B=2 strong E=4096", {130, 130}, false, 64, 4096, strong_lo, 0.0, 128}, rng));
    tally(run_case<bf, float>({"T=1000 mild", {1000}, false, 64, 128, mild_lo, 0.0, 0}, rng));
    tally(run_case<bf, float>({"T=200 mixed decay", {200}, false, 64, 128, -8.0, 0.0, 0}, rng));
    tally(run_case<bf, float>({"varlen 77/1/200 mild", {77, 1, 200}, true, 64, 64, mild_lo, 0.0, 0},
                              rng));
    tally(run_case<bf, bf>(
        {"bf16 out T=150 B=2 mild", {150, 150}, false, 64, 4096, mild_lo, 0.0, 0}, rng));
    tally(
        run_case<bf, bf>({"bf16 out T=150 strong", {150}, false, 64, 256, strong_lo, 0.0, 0}, rng));
    tally(run_case<float, float, 32>({"f32 in T=150 mild", {150}, false, 64, 128, mild_lo, 0.0, 0},
                                     rng));
    tally(run_case<float, float, 32>(
        {"f32 in T=150 strong", {150}, false, 64, 128, strong_lo, 0.0, 0}, rng));
    tally(run_case<bf, float>({"n=32 T=140 mild", {140}, false, 32, 128, mild_lo, 0.0, 0}, rng));
    tally(
        run_case<bf, float>({"n=32 T=140 strong", {140}, false, 32, 128, strong_lo, 0.0, 0}, rng));
    tally(run_case<bf, float, 32>(
        {"C=32 n=128 T=100 mild", {100}, false, 128, 128, mild_lo, 0.0, 0}, rng));
    tally(run_case<bf, float, 32>(
        {"C=32 n=128 T=100 strong", {100}, false, 128, 128, strong_lo, 0.0, 0}, rng));
    tally(run_case<bf, float, 16>({"C=16 T=75 mild", {75}, false, 64, 64, mild_lo, 0.0, 0}, rng));
    tally(run_case<bf, float, 32>(
        {"C=32 T=300 B=2 strong", {300, 300}, false, 64, 128, strong_lo, 0.0, 0}, rng));
    // ScanPrecision::Bf16 (operands rounded to bf16 once): ~2-3e-3 expected, tolerance 1e-2
    tally(run_case<bf, float, 64, rc::ScanPrecision::Bf16>(
        {"Bf16 precision T=300 mild", {300}, false, 64, 256, mild_lo, 0.0, 0}, rng));
    tally(run_case<bf, bf, 64, rc::ScanPrecision::Bf16>(
        {"Bf16 precision T=200 B=2 strong", {200, 200}, false, 64, 4096, strong_lo, 0.0, 0}, rng));

    float* null_f = nullptr;
    bf* null_b = nullptr;
    // the split schedule forced, with chunk groups
    constexpr auto kSplit = rc::ScanSchedule::Split;
    constexpr auto kFused = rc::ScanSchedule::Fused;
    tally(run_case<bf, float>(
        {"split T=2000 G=5 mild", {2000}, false, 64, 4096, mild_lo, 0.0, 0, kSplit, 5}, rng));
    tally(run_case<bf, float>(
        {"split T=700 G=7 strong", {700}, false, 64, 256, strong_lo, 0.0, 64, kSplit, 7}, rng));
    tally(run_case<bf, bf>(
        {"split varlen G=4 bf16 out", {3, 0, 900, 64, 500}, true, 64, 512, -2.0, 0.0, 128, kSplit,
         4},
        rng));
    tally(run_case<float, float, 32>(
        {"split f32 in G=3 mixed", {400, 37}, true, 64, 256, -8.0, 0.0, 0, kSplit, 3}, rng));
    tally(run_case<float, float, 64>(
        {"split f32 in C=64 G=2 mild", {300}, false, 64, 256, mild_lo, 0.0, 0, kSplit, 2}, rng));
    tally(run_case<bf, float, 32>(
        {"split n=128 C=32 G=3", {250}, false, 128, 128, mild_lo, 0.0, 0, kSplit, 3}, rng));
    tally(run_case<bf, float, 64, rc::ScanPrecision::Bf16>(
        {"split Bf16 precision G=4", {600}, false, 64, 256, mild_lo, 0.0, 0, kSplit, 4}, rng));
    tally(run_case<bf, float>(
        {"fused forced T=1000", {1000}, false, 64, 128, mild_lo, 0.0, 0, kFused, 0}, rng));
    // the recurrent schedule (decode-sized calls; Auto takes it for the T = 1 cases above)
    constexpr auto kRecur = rc::ScanSchedule::Recurrent;
    tally(run_case<bf, float>(
        {"recurrent T=1 B=16 strong E=4096", std::vector<int>(16, 1), false, 64, 4096, strong_lo,
         0.0, 0, kRecur, 0},
        rng));
    tally(run_case<float, float, 32>(
        {"recurrent f32 varlen 1/0/3/9", {1, 0, 3, 9}, true, 64, 192, -8.0, 0.0, 0, kRecur, 0},
        rng));
    tally(run_case<bf, bf>(
        {"recurrent n=32 bf16 out", {4, 4}, false, 32, 320, mild_lo, 0.0, 0, kRecur, 0}, rng));
    tally(run_case<bf, float, 32>(
        {"recurrent n=128 a=0", {2, 1}, false, 128, 128, 0.0, 0.0, 0, kRecur, 0}, rng));
    tally(run_case<bf, float>(
        {"fused forced T=1 B=3", {1, 1, 1}, false, 64, 128, mild_lo, 0.0, 0, kFused, 0}, rng));
    tally(expect_argument_error("split without a workspace", [&] {
      rc::GlaChunkScanOptions o;
      o.schedule = kSplit;
      rc::gla_chunk_scan<bf, float>(null_b, null_b, null_f, null_b, null_f, null_f, 1, 1000, 64,
                                    64, nullptr, nullptr, o);
    }));
    tally(expect_argument_error("split varlen without total_tokens", [&] {
      rc::GlaChunkScanOptions o;
      o.schedule = kSplit;
      rc::gla_chunk_scan<bf, float>(null_b, null_b, null_f, null_b, null_f, null_f, 1, 0, 64, 64,
                                    nullptr, reinterpret_cast<const int*>(16), o);
    }));

    // argument checks
    tally(expect_argument_error("n=48 rejected", [&] {
      rc::gla_chunk_scan<bf, float>(null_b, null_b, null_f, null_b, null_f, null_f, 1, 8, 48, 64,
                                    nullptr);
    }));
    tally(expect_argument_error("E=96 rejected", [&] {
      rc::gla_chunk_scan<bf, float>(null_b, null_b, null_f, null_b, null_f, null_f, 1, 8, 64, 96,
                                    nullptr);
    }));
    tally(expect_argument_error("n=128 C=64 (shared memory)", [&] {
      rc::gla_chunk_scan<bf, float>(null_b, null_b, null_f, null_b, null_f, null_f, 1, 8, 128, 64,
                                    nullptr);
    }));
  }

  std::printf("test_gla_chunk_scan: %d of %d cases passed (seed %llu)\n", total - failed, total,
              static_cast<unsigned long long>(seed));
  return failed == 0 ? 0 : 1;
}
