// Host emulation of the one-kernel decode attention (backend/cuda/decode_attention.cuh): the
// kernel's own source, compiled by the host compiler, one std::thread per CUDA thread, against
// the fp64 windowed attention. Cases reach every branch: one or several chunks per CTA,
// tokens whose window fits one split (direct output) and tokens merged from several splits,
// windows that start inside a chunk, keys from the call and from the rolling cache (wrapped
// rows), several tokens of one sequence, a shared key head and several, head sizes 64, 128
// (one float4 per lane) and 256 (two), and splits past a token's keys (a grid sized for more
// keys, as in a recorded graph). Every case runs with the first chunk's cache rows loaded
// before the dependency wait (DecodeScratch::early) and after it: the outputs must be
// bit-identical. Decode steps (one token per sequence) also write the token's key and value
// into its cache row, checked against the rows it must hold.
//
// The emulation itself: tests/cuda/emulator.hpp. This kernel keeps its shared memory in
// static __shared__ arrays: here they become function statics, which the emulator's blocks,
// run one after another, share as a block's shared memory.
//
// Seed: fresh each run, printed; RODIMUS_TEST_SEED=<n> replays one. Exit status 0 = all pass.
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "emulator.hpp"
#include "rodimus/reference/sliding_window_attention.hpp"

// What the decode kernel uses beyond the emulator's set: read-only and L2 loads, the
// completion counters' atomics and fences, the fast exponential.
inline float4 __ldg(const float4* p) { return *p; }
inline float4 __ldcg(const float4* p) { return *p; }
inline float2 __ldcg(const float2* p) { return *p; }
inline unsigned atomicAdd(unsigned* p, unsigned v) {
  return std::atomic_ref<unsigned>(*p).fetch_add(v);
}
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline float __expf(float x) { return std::exp(x); }
inline int min(int a, int b) { return a < b ? a : b; }

#undef __forceinline__
#define __forceinline__ inline
#undef __shared__
#define __shared__ static
#include "rodimus/backend/cuda/decode_attention.cuh"
#undef __shared__
#define __shared__

namespace {

namespace rd = rodimus::backend::cuda::detail;

struct Seq {
  int len, pos0, slot;
};

struct Case {
  std::string name;
  std::vector<Seq> seqs;
  int heads, heads_k, heads_v, hd, window_back, wc, slots, splits;
};

/// Runs `c` twice (late and early loads); true when both match the fp64 attention and each
/// other, and a decode step's cache rows hold what they must.
template <int NV>
bool run(const Case& c, std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.f, 1.f);
  const int B = static_cast<int>(c.seqs.size());
  std::vector<int> offsets(B + 1, 0), pos0(B), slot(B);
  for (int s = 0; s < B; ++s) {
    offsets[s + 1] = offsets[s] + c.seqs[s].len;
    pos0[s] = c.seqs[s].pos0;
    slot[s] = c.seqs[s].slot;
  }
  const int nt = offsets[B];
  std::vector<int> token_seq(nt);
  for (int s = 0; s < B; ++s)
    for (int t = offsets[s]; t < offsets[s + 1]; ++t) token_seq[t] = s;
  const int qd = c.heads * c.hd, kd = c.heads_k * c.hd, vd = c.heads_v * c.hd;
  auto fill = [&](std::size_t n) {
    std::vector<float> v(n);
    for (auto& x : v) x = normal(rng);
    return v;
  };
  const auto q = fill(std::size_t(nt) * qd), k = fill(std::size_t(nt) * kd),
             v = fill(std::size_t(nt) * vd);
  const auto kc0 = fill(std::size_t(c.slots) * c.wc * kd),
             vc0 = fill(std::size_t(c.slots) * c.wc * vd);
  const bool step = nt == B;  // one token per sequence: the kernel writes the caches
  const float scale = 1.f / std::sqrt(float(c.hd));

  // fp64 reference (reference::sliding_window_attention) over each sequence's whole history:
  // positions before pos0 from its cache rows (j % wc; those outside every window of the call
  // are never attended), its own tokens' rows after; earlier queries zero, their outputs unused
  std::vector<double> ref(std::size_t(nt) * qd);
  for (int s = 0; s < B; ++s) {
    const int T = pos0[s] + c.seqs[s].len;
    std::vector<double> hq(std::size_t(T) * qd, 0.0), hk(std::size_t(T) * kd),
        hv(std::size_t(T) * vd);
    for (int j = 0; j < T; ++j) {
      const bool call = j >= pos0[s];
      const std::size_t kr = call ? std::size_t(offsets[s] + j - pos0[s]) * kd
                                  : (std::size_t(slot[s]) * c.wc + j % c.wc) * kd;
      const std::size_t vr = call ? std::size_t(offsets[s] + j - pos0[s]) * vd
                                  : (std::size_t(slot[s]) * c.wc + j % c.wc) * vd;
      for (int x = 0; x < kd; ++x) hk[std::size_t(j) * kd + x] = (call ? k : kc0)[kr + x];
      for (int x = 0; x < vd; ++x) hv[std::size_t(j) * vd + x] = (call ? v : vc0)[vr + x];
      if (call)
        for (int x = 0; x < qd; ++x)
          hq[std::size_t(j) * qd + x] = q[std::size_t(offsets[s] + j - pos0[s]) * qd + x];
    }
    const auto o = rodimus::reference::sliding_window_attention(
        hq, hk, hv, T, c.heads, c.heads_k, c.heads_v, c.hd, c.window_back, scale);
    for (int t = offsets[s]; t < offsets[s + 1]; ++t)
      for (int x = 0; x < qd; ++x)
        ref[std::size_t(t) * qd + x] = o[std::size_t(pos0[s] + t - offsets[s]) * qd + x];
  }

  bool ok = true;
  std::vector<std::vector<float>> outs;
  for (const bool early : {false, true}) {
    auto kc = kc0, vc = vc0;
    std::vector<float> out(std::size_t(nt) * qd, NAN);
    rd::AttnDev a{q.data(),    k.data(),    v.data(),
                  kc.data(),   vc.data(),   out.data(),
                  qd,          kd,          vd,
                  qd,          c.heads,     c.heads_k,
                  c.heads_v,   c.hd,        c.window_back,
                  c.wc,        scale,       offsets.data(),
                  pos0.data(), slot.data(), token_seq.data(),
                  1 << 30};
    const std::size_t parts = std::size_t(nt) * c.heads * c.splits;
    std::vector<float> acc(parts * c.hd, NAN);
    std::vector<float2> stat(parts);
    std::vector<unsigned> done(std::size_t(nt) * (c.heads + 1), 0u);
    rd::DecodeScratch d;
    d.acc = acc.data();
    d.stat = stat.data();
    d.done = done.data();
    d.k_cache = step ? kc.data() : nullptr;
    d.v_cache = step ? vc.data() : nullptr;
    d.splits = c.splits;
    d.early = early;
    emu::EmuLaunch{}(rd::attn_decode_kernel<NV>, dim3(c.splits, c.heads, nt),
                     dim3(rd::kDecodeThreads), 0, a, d);
    double err = 0, scl = 0;
    for (std::size_t i = 0; i < out.size(); ++i) {
      err = std::max(err, std::fabs(double(out[i]) - ref[i]));
      scl = std::max(scl, std::fabs(ref[i]));
    }
    int counters = 0;  // every counter back at zero for the next launch
    for (unsigned x : done) counters += x != 0u;
    // the caches: row p % wc of each sequence's slot holds its token's key and value (a step),
    // every other row as before
    auto ek = kc0, ev = vc0;
    if (step)
      for (int s = 0; s < B; ++s) {
        const std::size_t row = std::size_t(slot[s]) * c.wc + pos0[s] % c.wc;
        for (int x = 0; x < kd; ++x) ek[row * kd + x] = k[std::size_t(offsets[s]) * kd + x];
        for (int x = 0; x < vd; ++x) ev[row * vd + x] = v[std::size_t(offsets[s]) * vd + x];
      }
    const bool case_ok = err <= 2e-5 * scl && counters == 0 && kc == ek && vc == ev;
    std::printf("%s %-44s %s loads: max err / scale %.2e%s%s\n", case_ok ? "ok  " : "FAIL",
                c.name.c_str(), early ? "early" : "late ", err / scl,
                counters ? ", counters left set" : "",
                kc == ek && vc == ev ? "" : ", caches wrong");
    ok = ok && case_ok;
    outs.push_back(out);
  }
  if (outs[0] != outs[1]) {
    std::printf("FAIL %-44s early and late loads differ\n", c.name.c_str());
    ok = false;
  }
  return ok;
}

}  // namespace

int main() {
  std::uint64_t seed = std::random_device{}();
  if (const char* env = std::getenv("RODIMUS_TEST_SEED")) seed = std::strtoull(env, nullptr, 10);
  std::printf("emulate_decode_attention: seed %llu\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> pick(40, 90);
  const std::vector<Case> cases = {
      // decode steps: one token per sequence, caches written; splits of one chunk each, and
      // more splits than a short token has chunks
      {"step, 3 seqs, window 40, hd 64, 4 splits",
       {{1, 70, 2}, {1, 5, 0}, {1, pick(rng), 1}},
       4,
       1,
       4,
       64,
       40,
       48,
       3,
       4},
      {"step, window inside a chunk, 2 splits walk 2",
       {{1, 100, 1}, {1, 130, 0}},
       2,
       1,
       2,
       128,
       75,
       80,
       2,
       2},
      {"step, no window, hd 256, Hk = Hv = 2", {{1, 50, 0}, {1, 0, 1}}, 4, 2, 2, 256, -1, 64, 2, 3},
      {"step, one split: direct output",
       {{1, 20, 0}, {1, pick(rng), 1}},
       2,
       1,
       2,
       64,
       100,
       128,
       2,
       1},
      // several tokens of a sequence (a short prompt continuing a cache): no cache write
      {"prompt of 5 and 3 tokens, window 33", {{5, 60, 1}, {3, 2, 0}}, 2, 1, 2, 64, 33, 40, 2, 3},
  };
  int failed = 0;
  for (const auto& c : cases) {
    const bool ok = c.hd <= 128 ? run<1>(c, rng) : run<2>(c, rng);
    failed += !ok;
  }
  std::printf("emulate_decode_attention: %zu cases, %d failed\n", cases.size(), failed);
  return failed == 0 ? 0 : 1;
}
