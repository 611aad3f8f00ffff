// ddts_gate (SPEC 2 steps 5-6) and channel_gate (step 4) on every backend against fp64.
#include "op_test_util.hpp"
#include "rodimus/ops/ddts_gate.hpp"
#include "rodimus/ops/ddts_gla_scan.hpp"
#include "rodimus/reference/ddts_gate.hpp"

using namespace rodimus;
using test::TestRng;

namespace {
// softplus / sigmoid / exp(tau log s) / the L2 norm: each a few fp32 roundings (the pow form
// amplifies log's rounding by tau < 1, so no loss there).
constexpr double kTol = 1e-5;

/// Random operands of ddts_gla_scan_gated for nt tokens of state height n, width E and channel
/// gate rank R.
struct GatedScanInputs {
  int n, E, R, nt;
  std::vector<double> q, k, s_raw, tau_raw, x, zr, w2, b2;

  GatedScanInputs(TestRng& rng, int n_, int E_, int R_, int nt_)
      : n(n_), E(E_), R(R_), nt(nt_) {
    const auto tn = std::size_t(nt) * n, te = std::size_t(nt) * E;
    q = rng.vec(tn, -1, 1), k = rng.vec(tn, -2, 2);
    s_raw = rng.vec(tn, -6, 6), tau_raw = rng.vec(tn, -4, 4);
    x = rng.vec(te, -1, 1), zr = rng.vec(std::size_t(nt) * R, -1, 1);
    w2 = rng.vec(std::size_t(E) * R, -1, 1), b2 = rng.vec(E, -1, 1);
  }

  /// The operands on Space (fresh: the parts overwrite k), with zeroed a, z_e, u and o.
  template <class Space>
  struct OnSpace {
    ChannelGateWeights<bf16, Space> cw;
    View2<float, Space> q, k, s_raw, tau_raw, a, x, zr, ze, u, o;
  };
  template <class Space>
  OnSpace<Space> upload() const {
    OnSpace<Space> d;
    d.cw.up.w = test::upload2<bf16, Space>(w2, E, R);
    d.cw.up.b = test::upload1<Space>(b2);
    d.q = test::upload2<float, Space>(q, nt, n);
    d.k = test::upload2<float, Space>(k, nt, n);
    d.s_raw = test::upload2<float, Space>(s_raw, nt, n);
    d.tau_raw = test::upload2<float, Space>(tau_raw, nt, n);
    d.a = test::upload2<float, Space>({}, nt, n);
    d.x = test::upload2<float, Space>(x, nt, E);
    d.zr = test::upload2<float, Space>(zr, nt, R);
    d.ze = test::upload2<float, Space>({}, nt, E);
    d.u = test::upload2<float, Space>({}, nt, E);
    d.o = test::upload2<float, Space>({}, nt, E);
    return d;
  }
};
}  // namespace

TEST_CASE("ddts_gate matches the fp64 reference", "[ops][ddts_gate]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  double worst_a = 0, worst_k = 0;
  for (auto [n_tok, n] : std::vector<std::pair<int, int>>{
           {1, 1}, {1, 64}, {9, 16}, {31, 33}, {40, 100}, {5, 257},
           {rng.integer(1, 50), rng.integer(2, 130)}}) {
    for (bool in_place : {false, true}) {
      INFO("N=" << n_tok << " n=" << n << " in place " << in_place);
      const float eps = 1e-12f;
      const auto s_raw = rng.vec(std::size_t(n_tok) * n, -12, 12);
      const auto tau_raw = rng.vec(std::size_t(n_tok) * n, -8, 8);
      auto k = rng.vec(std::size_t(n_tok) * n, -3, 3);
      // one key whose norm is under eps: the floor max(||k||, eps) must apply
      if (n_tok > 1)
        for (int i = 0; i < n; ++i) k[i] = static_cast<float>(k[i] * 1e-14);
      std::vector<double> z;  // [T, 2n] = [s_raw | tau_raw]
      z = test::hcat(s_raw, tau_raw, n_tok);
      const auto gates = reference::ddts_gates(z, n_tok, n);
      const auto ref_k = reference::l2_normalize_scale(k, gates.beta, double(eps), n_tok, n);
      test::for_each_space([&]<class Space>() {
        INFO("backend " << Space::name());
        using CV = View2<const float, Space>;
        auto ds = test::upload2<float, Space>(s_raw, n_tok, n);
        auto dt = test::upload2<float, Space>(tau_raw, n_tok, n);
        auto dk = test::upload2<float, Space>(k, n_tok, n);
        auto a = test::upload2<float, Space>({}, n_tok, n);
        auto k_out = in_place ? dk : test::upload2<float, Space>({}, n_tok, n);
        ddts_gate(Space{}, CV(ds), CV(dt), CV(dk), a, k_out, n_tok, eps);
        const auto got_a = test::download2(a);
        const auto got_k = test::download2(k_out);
        const double ea = test::rel_err(got_a, gates.a);
        // rows differ in scale (the tiny key): compare row by row
        double ek = 0;
        for (int t = 0; t < n_tok; ++t)
          ek = std::max(
              ek, test::rel_err(test::rows_of(got_k, t, 1, n), test::rows_of(ref_k, t, 1, n)));
        worst_a = std::max(worst_a, ea);
        worst_k = std::max(worst_k, ek);
        CHECK(ea <= kTol);
        CHECK(ek <= kTol);
        CHECK(std::all_of(got_a.begin(), got_a.end(), [](double v) { return v <= 0.0; }));
      });
    }
  }
  WARN("ddts_gate max rel err: a " << worst_a << ", k' " << worst_k);
}

TEST_CASE("channel_gate matches the fp64 reference", "[ops][ddts_gate][channel_gate]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  double worst = 0;
  for (auto [n_tok, e, r] : std::vector<std::tuple<int, int, int>>{
           {1, 8, 1},
           {7, 33, 16},
           {20, 128, 16},
           {17, 257, 8},
           {rng.integer(1, 30), rng.integer(1, 200), rng.integer(1, 40)}}) {
    INFO("N=" << n_tok << " E=" << e << " R=" << r);
    const auto x = rng.vec(std::size_t(n_tok) * e, -2, 2);
    const auto w1 = rng.vec(std::size_t(r) * e);
    const auto w2 = rng.vec(std::size_t(e) * r);
    const auto b2 = rng.vec(e);
    const auto ref = reference::channel_gate(x, w1, w2, b2, n_tok, e, r);
    test::for_each_space([&]<class Space>() {
      INFO("backend " << Space::name());
      ChannelGateWeights<float, Space> cw;
      cw.down.w = test::upload2<float, Space>(w1, r, e);
      cw.up.w = test::upload2<float, Space>(w2, e, r);
      cw.up.b = test::upload1<Space>(b2);
      auto dx = test::upload2<float, Space>(x, n_tok, e);
      auto zr = test::upload2<float, Space>({}, n_tok, r);
      auto ze = test::upload2<float, Space>({}, n_tok, e);
      auto u = test::upload2<float, Space>({}, n_tok, e);
      channel_gate(Space{}, View2<const float, Space>(dx), cw, zr, ze, u, n_tok);
      const double err = test::rel_err(test::download2(u), ref);
      worst = std::max(worst, err);
      CHECK(err <= kTol);
    });
  }
  WARN("channel_gate max rel err " << worst);
}

TEST_CASE("channel_gate with bf16 weights keeps the pre-activation it gates",
          "[ops][ddts_gate][channel_gate]") {
  // On Kokkos::Cuda up to 8 tokens take the decode GEMV with the product as its epilogue, more
  // take cuBLAS with the product in the bias's pass (the split halves stacked below 256 tokens,
  // two GEMMs from there); z_e must still hold z_r W2^T + b2 (what the backward reads), and u
  // its gate.
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  for (auto [n_tok, e, r] : std::vector<std::tuple<int, int, int>>{
           {1, 64, 32}, {3, 200, 16}, {8, 96, 8}, {9, 40, 32}, {rng.integer(1, 12), 72, 24},
           {rng.integer(256, 300), 48, 16}}) {
    INFO("N=" << n_tok << " E=" << e << " R=" << r);
    const auto x = rng.vec(std::size_t(n_tok) * e, -2, 2);
    const auto w1 = rng.vec(std::size_t(r) * e);
    const auto w2 = rng.vec(std::size_t(e) * r);
    const auto b2 = rng.vec(e);
    const auto ref = reference::channel_gate(x, test::dequantised<bf16>(w1),
                                             test::dequantised<bf16>(w2), b2, n_tok, e, r);
    test::for_each_space([&]<class Space>() {
      INFO("backend " << Space::name());
      ChannelGateWeights<bf16, Space> cw;
      cw.down.w = test::upload2<bf16, Space>(w1, r, e);
      cw.up.w = test::upload2<bf16, Space>(w2, e, r);
      cw.up.b = test::upload1<Space>(b2);
      auto dx = test::upload2<float, Space>(x, n_tok, e);
      auto zr = test::upload2<float, Space>({}, n_tok, r);
      auto ze = test::upload2<float, Space>({}, n_tok, e, 5.0);
      auto u = test::upload2<float, Space>({}, n_tok, e);
      channel_gate(Space{}, View2<const float, Space>(dx), cw, zr, ze, u, n_tok);
      // bf16 weights with split activations on the GPU: a few times 1e-6 (test_linear)
      CHECK(test::rel_err(test::download2(u), ref) <= 3e-5);
      auto ze2 = test::upload2<float, Space>({}, n_tok, e, 6.0);
      linear(Space{}, View2<const float, Space>(zr), cw.up, ze2, n_tok);
      CHECK(test::download2(ze) == test::download2(ze2));
    });
  }
}

TEST_CASE("ddts_gate and channel_gate reject wrong extents", "[ops][ddts_gate][errors]") {
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    using CV = View2<const float, Space>;
    auto s = test::upload2<float, Space>({}, 2, 8, 1.0);
    auto t5 = test::upload2<float, Space>({}, 2, 5, 1.0);  // n = 5 != 8
    auto a = test::upload2<float, Space>({}, 2, 8);
    CHECK_THROWS_AS(ddts_gate(Space{}, CV(s), CV(t5), CV(s), a, a, 2, 1e-12f), ArgumentError);
    CHECK_THROWS_AS(ddts_gate(Space{}, CV(s), CV(s), CV(s), a, a, 3, 1e-12f),
                    ArgumentError);  // N > rows

    ChannelGateWeights<float, Space> cw;
    cw.down.w = test::upload2<float, Space>(std::vector<double>(4 * 8, 0.1), 4, 8);
    cw.up.w = test::upload2<float, Space>(std::vector<double>(8 * 4, 0.1), 8, 4);
    auto zr = test::upload2<float, Space>({}, 2, 4);
    auto ze = test::upload2<float, Space>({}, 2, 8);
    auto u7 = test::upload2<float, Space>({}, 2, 7);
    CHECK_THROWS_AS(channel_gate(Space{}, CV(s), cw, zr, ze, u7, 2), ArgumentError);
  });
}

TEST_CASE("ddts_gate with strong gate inputs (saturated softplus and sigmoid)", "[ops][ddts_gate]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  double worst_a = 0, worst_k = 0;
  // n = 37: two full vectors of 16 and a tail; s_raw down to -60 (s ~ 1e-26, beta = s^tau of a
  // tiny s) and up to 60 (s = s_raw), tau_raw to +-20 (tau ~ 2e-9 .. 1)
  for (auto [n_tok, n] : std::vector<std::pair<int, int>>{{19, 37}, {4, 200}}) {
    INFO("N=" << n_tok << " n=" << n);
    const float eps = 1e-12f;
    const auto s_raw = rng.vec(std::size_t(n_tok) * n, -60, 60);
    const auto tau_raw = rng.vec(std::size_t(n_tok) * n, -20, 20);
    const auto k = rng.vec(std::size_t(n_tok) * n, -50, 50);
    const auto gates = reference::ddts_gates(test::hcat(s_raw, tau_raw, n_tok), n_tok, n);
    const auto ref_k = reference::l2_normalize_scale(k, gates.beta, double(eps), n_tok, n);
    test::for_each_space([&]<class Space>() {
      INFO("backend " << Space::name());
      using CV = View2<const float, Space>;
      auto ds = test::upload2<float, Space>(s_raw, n_tok, n);
      auto dt = test::upload2<float, Space>(tau_raw, n_tok, n);
      auto dk = test::upload2<float, Space>(k, n_tok, n);
      auto a = test::upload2<float, Space>({}, n_tok, n);
      auto k_out = test::upload2<float, Space>({}, n_tok, n);
      ddts_gate(Space{}, CV(ds), CV(dt), CV(dk), a, k_out, n_tok, eps);
      const auto got_k = test::download2(k_out);
      const double ea = test::rel_err(test::download2(a), gates.a);
      double ek = 0;
      for (int t = 0; t < n_tok; ++t)
        ek = std::max(
            ek, test::rel_err(test::rows_of(got_k, t, 1, n), test::rows_of(ref_k, t, 1, n)));
      worst_a = std::max(worst_a, ea);
      worst_k = std::max(worst_k, ek);
      CHECK(ea <= kTol);
      CHECK(ek <= kTol);
    });
  }
  WARN("ddts_gate (strong inputs) max rel err a " << worst_a << ", k " << worst_k);
}

TEST_CASE("ddts_gla_scan equals ddts_gate then gla_scan", "[ops][ddts_gate][gla_scan]") {
  // The fused op against its two parts on the same backend: on Kokkos::Cuda decode-sized
  // calls (<= 4 tokens per sequence) take the one-kernel path (one or four threads per state
  // column), longer ones the parts themselves; elsewhere the op is the parts.
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  struct Case {
    int n, E;
    std::vector<int> lengths;
  };
  const std::vector<Case> cases = {
      {64, 192, {1, 1, 1}},                          // batch 3 of decode tokens
      {32, 128, {2, 4, 1}},                          // a few tokens per sequence
      {64, 4096, {1, 1, 1}},                         // the 1.6B width: one thread per column
      {128, 256, {1, rng.integer(1, 4)}},            // n = 128
      {64, 128, {rng.integer(9, 40), 3}},            // longer: the parts
  };
  for (const auto& c : cases) {
    const int B = static_cast<int>(c.lengths.size()), n = c.n, E = c.E;
    const auto slots = test::shuffled_slots(rng, B, B + 1);
    int nt = 0;
    for (int l : c.lengths) nt += l;
    INFO("n=" << n << " E=" << E << " tokens " << nt);
    const float eps = 1e-6f, scale = static_cast<float>(1.0 / std::sqrt(double(n)));
    const auto q = rng.vec(std::size_t(nt) * n, -1, 1), k = rng.vec(std::size_t(nt) * n, -2, 2);
    const auto s_raw = rng.vec(std::size_t(nt) * n, -6, 6);
    const auto tau_raw = rng.vec(std::size_t(nt) * n, -4, 4);
    const auto u = rng.vec(std::size_t(nt) * E, -1, 1);
    const auto s0 = rng.vec(std::size_t(B + 1) * n * E, -1, 1);
    test::for_each_space([&]<class Space>() {
      INFO("backend " << Space::name());
      using CV = View2<const float, Space>;
      test::Batch<Space> batch(c.lengths, std::vector<int>(B, 5), slots);
      auto run = [&](bool fused) {
        auto dq = test::upload2<float, Space>(q, nt, n);
        auto dk = test::upload2<float, Space>(k, nt, n);
        auto ds = test::upload2<float, Space>(s_raw, nt, n);
        auto dt = test::upload2<float, Space>(tau_raw, nt, n);
        auto du = test::upload2<float, Space>(u, nt, E);
        auto da = test::upload2<float, Space>({}, nt, n);
        auto dout = test::upload2<float, Space>({}, nt, E);
        auto state = test::upload3<Space>(s0, B + 1, n, E);
        GlaScanWorkspace<Space, float> ws;
        if (fused) {
          ddts_gla_scan<RecurrentScan>(Space{}, CV(dq), CV(ds), CV(dt), dk, da, CV(du), state,
                                       batch.seq, dout, scale, eps, ws);
        } else {
          ddts_gate(Space{}, CV(ds), CV(dt), CV(dk), da, dk, nt, eps);
          gla_scan<RecurrentScan>(Space{}, CV(dq), CV(dk), CV(da), CV(du), state, batch.seq, dout,
                                  scale, ws);
        }
        return std::pair{test::download2(dout), test::download3(state)};
      };
      const auto [o_f, s_f] = run(true);
      const auto [o_p, s_p] = run(false);
      // the same formulas; the key norm's reduction order may differ: a few fp32 roundings
      CHECK(test::rel_err(o_f, o_p) <= 1e-5);
      CHECK(test::rel_err(s_f, s_p) <= 1e-5);
      CHECK(test::rel_err(s_f, s0) > 1e-3);  // the state moved
    });
  }
}

TEST_CASE("ddts_gla_scan: decode steps in a row carry the state as the parts do",
          "[ops][ddts_gate][gla_scan]") {
  // Three decode steps of batch 3 on one state. On Kokkos::Cuda the fused kernel is a dependent
  // launch that loads the state before waiting for the kernel before it, except right after a
  // kernel that wrote recurrent states (step 2 follows step 1 directly); step 3 comes after a
  // decode GEMV (linear), so it takes the dependent launch with the state written two kernels
  // back. Each step's output and the final state against ddts_gate + gla_scan step by step.
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  const int n = 64, E = 4096, B = 3, steps = 3, in = 64;
  const auto slots = test::shuffled_slots(rng, B, B + 1);
  const float eps = 1e-6f, scale = 0.125f;
  std::vector<std::vector<double>> q, k, sr, tr, u;
  for (int s = 0; s < steps; ++s) {
    q.push_back(rng.vec(std::size_t(B) * n, -1, 1));
    k.push_back(rng.vec(std::size_t(B) * n, -2, 2));
    sr.push_back(rng.vec(std::size_t(B) * n, -6, 6));
    tr.push_back(rng.vec(std::size_t(B) * n, -4, 4));
    u.push_back(rng.vec(std::size_t(B) * E, -1, 1));
  }
  const auto s0 = rng.vec(std::size_t(B + 1) * n * E, -1, 1);
  const auto xw = rng.vec(std::size_t(B) * in), ww = rng.vec(std::size_t(E) * in);
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    using CV = View2<const float, Space>;
    LinearWeights<bf16, Space> lw;
    lw.w = test::upload2<bf16, Space>(ww, E, in);
    const CV lx = test::upload2<float, Space>(xw, B, in);
    auto run = [&](bool fused) {
      auto state = test::upload3<Space>(s0, B + 1, n, E);
      auto ly = test::upload2<float, Space>({}, B, E);
      std::vector<std::vector<double>> outs;
      GlaScanWorkspace<Space, float> ws;
      for (int s = 0; s < steps; ++s) {
        test::Batch<Space> batch(std::vector<int>(B, 1), std::vector<int>(B, 7 + s), slots);
        auto dq = test::upload2<float, Space>(q[s], B, n);
        auto dk = test::upload2<float, Space>(k[s], B, n);
        auto ds = test::upload2<float, Space>(sr[s], B, n);
        auto dt = test::upload2<float, Space>(tr[s], B, n);
        auto du = test::upload2<float, Space>(u[s], B, E);
        auto da = test::upload2<float, Space>({}, B, n);
        auto dout = test::upload2<float, Space>({}, B, E);
        if (s == 2) linear(Space{}, lx, lw, ly, B);  // a GEMV launch between steps 2 and 3
        if (fused) {
          ddts_gla_scan<RecurrentScan>(Space{}, CV(dq), CV(ds), CV(dt), dk, da, CV(du), state,
                                       batch.seq, dout, scale, eps, ws);
        } else {
          ddts_gate(Space{}, CV(ds), CV(dt), CV(dk), da, dk, B, eps);
          gla_scan<RecurrentScan>(Space{}, CV(dq), CV(dk), CV(da), CV(du), state, batch.seq, dout,
                                  scale, ws);
        }
        outs.push_back(test::download2(dout));
      }
      outs.push_back(test::download3(state));
      return outs;
    };
    std::vector<std::vector<double>> f;
    test::with_decode_fusions<Space>([&] { f = run(true); });
    const auto p = run(false);
    for (int s = 0; s <= steps; ++s) {
      INFO((s < steps ? "output of step " : "final state, after step ") << s);
      CHECK(test::rel_err(f[s], p[s]) <= 1e-5);
    }
    CHECK(test::rel_err(f[steps], s0) > 1e-3);
  });
}

TEST_CASE("ddts_gla_scan_gated equals channel_gate_up then ddts_gla_scan",
          "[ops][ddts_gate][gla_scan]") {
  // On Kokkos::Cuda decode-sized calls with bf16 / fp16 gate weights compute u inside the scan
  // kernel (the short-row GEMV's operations in its order), elsewhere the op is its parts.
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  struct Case {
    int n, E, R;
    std::vector<int> lengths;
  };
  const std::vector<Case> cases = {
      {64, 4096, 32, {1}},                     // the 1.6B shape at batch 1
      {64, 256, 16, {1, 1, 1}},                // R = 16 (two groups of 8)
      {32, 128, 24, {2, 4, 1}},                // three groups: a butterfly over 4 lanes, one empty
      {128, 256, 64, {1, 3}},                  // R = 64, the most the fused kernel takes
      {64, 128, 32, {rng.integer(9, 30), 1}},  // longer: the parts
  };
  for (const auto& c : cases) {
    const int B = static_cast<int>(c.lengths.size()), n = c.n, E = c.E, R = c.R;
    const auto slots = test::shuffled_slots(rng, B, B + 1);
    int nt = 0;
    for (int l : c.lengths) nt += l;
    INFO("n=" << n << " E=" << E << " R=" << R << " tokens " << nt);
    const GatedScanInputs in(rng, n, E, R, nt);
    const auto s0 = rng.vec(std::size_t(B + 1) * n * E, -1, 1);
    test::for_each_space([&]<class Space>() {
      INFO("backend " << Space::name());
      using CV = View2<const float, Space>;
      test::Batch<Space> batch(c.lengths, std::vector<int>(B, 3), slots);
      auto run = [&](bool fused) {
        auto d = in.upload<Space>();
        auto state = test::upload3<Space>(s0, B + 1, n, E);
        GlaScanWorkspace<Space, float> ws;
        const float scale = 0.2f, eps = 1e-6f;
        if (fused) {
          ddts_gla_scan_gated<RecurrentScan>(Space{}, CV(d.q), CV(d.s_raw), CV(d.tau_raw), d.k,
                                             d.a, CV(d.x), d.cw, CV(d.zr), d.ze, d.u, state,
                                             batch.seq, d.o, scale, eps, ws);
        } else {
          channel_gate_up(Space{}, CV(d.x), d.cw, CV(d.zr), d.ze, d.u, nt);
          ddts_gla_scan<RecurrentScan>(Space{}, CV(d.q), CV(d.s_raw), CV(d.tau_raw), d.k, d.a,
                                       CV(d.u), state, batch.seq, d.o, scale, eps, ws);
        }
        return std::pair{test::download2(d.o), test::download3(state)};
      };
      std::pair<std::vector<double>, std::vector<double>> fused;
      test::with_decode_fusions<Space>([&] { fused = run(true); });
      const auto& [o_f, s_f] = fused;
      const auto [o_p, s_p] = run(false);
      CHECK(test::rel_err(o_f, o_p) <= 1e-6);
      CHECK(test::rel_err(s_f, s_p) <= 1e-6);
      CHECK(test::rel_err(s_f, s0) > 1e-3);
    });
  }
}

TEST_CASE("ddts_gla_scan_gated_norm equals ddts_gla_scan_gated then gated_rms_norm",
          "[ops][ddts_gate][gla_scan][rms_norm]") {
  // With GatedNorm::defer, on Kokkos::Cuda at 1 to 2 tokens, the fused decode kernel applies
  // the gated norm's gate to its output and leaves the norm pending (NormedRows over o, for the
  // output projection's GEMV); elsewhere the op is its parts. Read through the returned rows
  // (written out where pending), y = RMSNorm((o + xs w_res) silu(g)) * w either way.
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  struct Case {
    int n, E, R;
    std::vector<int> lengths;
    bool res;  // the residual term xs * w_res
  };
  const std::vector<Case> cases = {
      {64, 4096, 32, {1}, true},                  // the 1.6B shape at batch 1
      {64, 512, 16, {1, 1}, true},                // two sequences
      {32, 384, 24, {2}, false},                  // two tokens of one sequence, no w_res
      {64, 256, 32, {1, 2}, true},                // three tokens: the norm's own kernel
      {64, 128, 32, {rng.integer(9, 30)}, true},  // longer: the parts
  };
  for (const auto& c : cases) {
    const int B = static_cast<int>(c.lengths.size()), n = c.n, E = c.E, R = c.R;
    int nt = 0;
    for (int l : c.lengths) nt += l;
    INFO("n=" << n << " E=" << E << " R=" << R << " tokens " << nt << " w_res " << c.res);
    const GatedScanInputs in(rng, n, E, R, nt);
    const auto xs = rng.vec(std::size_t(nt) * E, -1, 1), g = rng.vec(std::size_t(nt) * E, -3, 3);
    const auto w_res = rng.vec(E, -1, 1), w = rng.vec(E, 0.5, 1.5);
    const auto s0 = rng.vec(std::size_t(B) * n * E, -1, 1);
    const auto slots = test::shuffled_slots(rng, B, B);
    test::for_each_space([&]<class Space>() {
      INFO("backend " << Space::name());
      using CV = View2<const float, Space>;
      test::Batch<Space> batch(c.lengths, std::vector<int>(B, 3), slots);
      const CV dxs = test::upload2<float, Space>(xs, nt, E);
      const CV dg = test::upload2<float, Space>(g, nt, E);
      const View1<const float, Space> dwr =
          c.res ? test::upload1<Space>(w_res) : View1<const float, Space>();
      const View1<const float, Space> dw = test::upload1<Space>(w);
      bool was_pending = false;
      auto run = [&](int mode) {  // 0: the parts, 1: the op, 2: the op, deferred
        auto d = in.upload<Space>();
        auto dy = test::upload2<float, Space>({}, nt, E, 7.0);
        auto state = test::upload3<Space>(s0, B, n, E);
        GlaScanWorkspace<Space, float> ws;
        const float scale = 0.125f, eps = 1e-6f, norm_eps = 1e-5f;
        View2<const float, Space> y;
        if (mode == 0) {
          ddts_gla_scan_gated<RecurrentScan>(Space{}, CV(d.q), CV(d.s_raw), CV(d.tau_raw), d.k,
                                             d.a, CV(d.x), d.cw, CV(d.zr), d.ze, d.u, state,
                                             batch.seq, d.o, scale, eps, ws);
          gated_rms_norm(Space{}, CV(d.o), dxs, dwr, dg, dw, dy, nt, norm_eps);
          y = dy;
        } else {
          const NormedRows<Space> rows = ddts_gla_scan_gated_norm<RecurrentScan>(
              Space{}, CV(d.q), CV(d.s_raw), CV(d.tau_raw), d.k, d.a, CV(d.x), d.cw, CV(d.zr),
              d.ze, d.u, state, batch.seq, d.o, scale, eps, ws,
              GatedNorm<Space>{dxs, dwr, dg, dw, dy, norm_eps, mode == 2});
          if (mode == 2) was_pending = rows.pending();
          CHECK((rows.pending() || rows.x.data() == dy.data()));
          y = detail::materialize(Space{}, rows, nt);
        }
        return std::pair{test::download2(y), test::download3(state)};
      };
      const auto [y_p, s_p] = run(0);
      CHECK(test::rel_err(s_p, s0) > 1e-3);
      for (const int mode : {1, 2}) {
        INFO("deferred " << (mode == 2));
        std::pair<std::vector<double>, std::vector<double>> got;
        test::with_decode_fusions<Space>([&] { got = run(mode); });
        CHECK(test::rel_err(got.first, y_p) <= 1e-5);
        CHECK(test::rel_err(got.second, s_p) <= 1e-6);
      }
      CHECK(was_pending == (is_cuda_space_v<Space> && nt <= 2));
    });
  }
}

TEST_CASE("ddts_gla_scan_gated rejects wrong extents", "[ops][ddts_gate][errors]") {
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    using CV = View2<const float, Space>;
    const int n = 32, E = 128, R = 16, nt = 2;
    test::Batch<Space> batch({1, 1}, {0, 0}, {0, 1});
    ChannelGateWeights<bf16, Space> cw;
    cw.up.w = test::upload2<bf16, Space>(std::vector<double>(E * R, 0.1), E, R);
    auto v = [](int r, int c) { return test::upload2<float, Space>({}, r, c, 0.5); };
    auto q = v(nt, n), k = v(nt, n), a = v(nt, n), x = v(nt, E), ze = v(nt, E), u = v(nt, E);
    auto o = v(nt, E), zr = v(nt, R), zr_bad = v(nt, R + 8);
    auto state = test::upload3<Space>(std::vector<double>(2 * n * E, 0.0), 2, n, E);
    GlaScanWorkspace<Space, float> ws;
    auto call = [&](const View2<float, Space>& zrv, const View2<float, Space>& uv) {
      ddts_gla_scan_gated<RecurrentScan>(Space{}, CV(q), CV(q), CV(q), k, a, CV(x), cw, CV(zrv), ze,
                                         uv, state, batch.seq, o, 0.1f, 1e-6f, ws);
    };
    CHECK_NOTHROW(call(zr, u));
    CHECK_THROWS_AS(call(zr_bad, u), ArgumentError);         // z_r wider than W2's R
    CHECK_THROWS_AS(call(zr, v(nt, E + 4)), ArgumentError);  // u narrower / wider than x
  });
}
