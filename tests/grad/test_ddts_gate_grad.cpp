// grad::ddts_gate_backward, sigmoid_gate_backward and channel_gate_backward: fp64 against finite
// differences (moderate and strong pre-activations), fp32 against fp64, argument errors.
#include <cmath>

#include "grad_test_util.hpp"
#include "rodimus/grad/ddts_gate.hpp"
#include "rodimus/reference/ddts_gate.hpp"

using namespace rodimus;
using test::TestRng;

namespace {

struct DdtsGrads {
  std::vector<double> ds, dtau, dk;
};

template <class Real, class Space>
DdtsGrads run_ddts(const std::vector<double>& s_raw, const std::vector<double>& tau_raw,
                   const std::vector<double>& k, const std::vector<double>& da,
                   const std::vector<double>& dkp, int t, int n, double eps) {
  auto up = [&](const std::vector<double>& v) { return test::upload2r<Real, Space>(v, t, n); };
  auto vs = up(s_raw), vtau = up(tau_raw), vk = up(k), vda = up(da), vdkp = up(dkp);
  auto vds = up({}), vdtau = up({}), vdk = up({});
  grad::ddts_gate_backward<Real>(Space{}, vs, vtau, vk, vda, vdkp, vds, vdtau, vdk, t, eps);
  Space().fence();
  return {test::download_r(vds), test::download_r(vdtau), test::download_r(vdk)};
}

// L = da . a + dk' . k' through the fp64 reference gates.
double ddts_loss(const std::vector<double>& s_raw, const std::vector<double>& tau_raw,
                 const std::vector<double>& k, const std::vector<double>& da,
                 const std::vector<double>& dkp, int t, int n, double eps) {
  const auto z = test::hcat(s_raw, tau_raw, t);  // [T, 2n], s_raw first
  const auto g = reference::ddts_gates(z, t, n);
  return test::dot(da, g.a) + test::dot(dkp, reference::l2_normalize_scale(k, g.beta, eps, t, n));
}

}  // namespace

TEST_CASE("ddts_gate_backward matches finite differences in fp64 and fp64 in fp32",
          "[grad][ddts_gate]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  struct Case {
    int t, n;
    double s_lo, s_hi, tau_lo, tau_hi, k_scale, eps;
    const char* what;
  };
  for (const auto& cs : std::vector<Case>{
           {1, 1, -3, 3, -3, 3, 1, 1e-12, "one slot"},
           {5, 8, -3, 3, -3, 3, 1, 1e-12, "moderate"},
           {6, 16, -60, 40, -30, 30, 1, 1e-12, "strong pre-activations"},
           {4, 8, -200, -100, -4, 4, 1, 1e-12, "s underflows in fp32"},
           {7, 6, -3, 3, -3, 3, 0.05, 0.3, "rows clipped at normalize_eps"},
           {rng.integer(1, 9), rng.integer(1, 24), -8, 8, -8, 8, 1, 1e-12, "random sizes"}}) {
    INFO(cs.what << ": T=" << cs.t << " n=" << cs.n);
    const int t = cs.t, n = cs.n;
    const std::size_t sz = std::size_t(t) * n;
    auto s_raw = rng.vec(sz, cs.s_lo, cs.s_hi);
    auto tau_raw = rng.vec(sz, cs.tau_lo, cs.tau_hi);
    auto k = rng.vec(sz, -cs.k_scale, cs.k_scale);
    const auto da = rng.vec(sz);
    const auto dkp = rng.vec(sz);
    const auto loss = [&] { return ddts_loss(s_raw, tau_raw, k, da, dkp, t, n, cs.eps); };
    const auto fd_s = test::fd_grad(s_raw, loss);
    const auto fd_tau = test::fd_grad(tau_raw, loss);
    const auto fd_k = test::fd_grad(k, loss);
    test::for_each_space([&]<class Space>() {
      INFO("backend " << Space::name());
      const auto g = run_ddts<double, Space>(s_raw, tau_raw, k, da, dkp, t, n, cs.eps);
      CHECK(test::grad_err(g.ds, fd_s) < test::kFdTol);
      CHECK(test::grad_err(g.dtau, fd_tau) < test::kFdTol);
      if (n > 1) {
        CHECK(test::grad_err(g.dk, fd_k) < test::kFdTol);
      } else {  // one slot: k' = beta sign(k) does not depend on k (outside the clipped rows)
        // (rows whose |k| is within the differences' steps, 1e-5 and 2e-5, of 0 straddle the
        // jump of sign(k): 1.3e4 at seed 1592658825)
        for (int r = 0; r < t; ++r)
          if (std::fabs(k[r]) > 4e-5) CHECK(std::fabs(fd_k[r]) < 1e-9);
        // dk = dk' beta / |k| - k (dk' beta k) / |k|^3: two equal terms, so what is left is
        // their rounding, relative to their size (which grows without bound as |k| -> 0)
        const auto gates = reference::ddts_gates(test::hcat(s_raw, tau_raw, t), t, n);
        for (int r = 0; r < t; ++r) {
          const double term = std::fabs(dkp[r]) * gates.beta[r] / std::fabs(k[r]);
          CHECK(std::fabs(g.dk[r]) <= 1e-14 * term);
        }
      }
      const auto g32 = run_ddts<float, Space>(s_raw, tau_raw, k, da, dkp, t, n, cs.eps);
      CHECK(test::all_finite(g32.ds));
      CHECK(test::all_finite(g32.dtau));
      CHECK(test::all_finite(g32.dk));
      // ds and dtau each sum a term from da and one from dk': fp32 is held to the terms' size
      const std::vector<double> zero(sz, 0.0);
      const auto from_da = run_ddts<double, Space>(s_raw, tau_raw, k, da, zero, t, n, cs.eps);
      const auto from_dk = run_ddts<double, Space>(s_raw, tau_raw, k, zero, dkp, t, n, cs.eps);
      CHECK(test::grad_err_parts(g32.ds, g.ds, {from_da.ds, from_dk.ds}) < test::kF32Tol);
      CHECK(test::grad_err_parts(g32.dtau, g.dtau, {from_da.dtau, from_dk.dtau}) < test::kF32Tol);
      if (n > 1) CHECK(test::grad_err(g32.dk, g.dk) < test::kF32Tol);
    });
  }
}

TEST_CASE("channel_gate_backward matches finite differences in fp64 and fp64 in fp32",
          "[grad][ddts_gate][channel_gate]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  for (const auto& cfg : std::vector<std::tuple<int, int, int, double>>{
           {1, 2, 1, 1.0},
           {5, 12, 3, 1.0},
           {6, 8, 4, 10.0},  // gate pre-activations up to ~+-40
           {rng.integer(1, 9), rng.integer(1, 20), rng.integer(1, 6), 1.0}}) {
    const int t = std::get<0>(cfg);
    const int e = std::get<1>(cfg);
    const int r = std::get<2>(cfg);
    const double gate_scale = std::get<3>(cfg);
    INFO("T=" << t << " E=" << e << " R=" << r << " gate scale " << gate_scale);
    auto x = rng.vec(std::size_t(t) * e, -2, 2);
    auto w1 = rng.vec(std::size_t(r) * e, -gate_scale, gate_scale);
    auto w2 = rng.vec(std::size_t(e) * r);
    auto b2 = rng.vec(e);
    const auto du = rng.vec(std::size_t(t) * e);
    const auto loss = [&] {
      return test::dot(du, reference::channel_gate(x, w1, w2, b2, t, e, r));
    };
    const auto fd_x = test::fd_grad(x, loss);
    const auto fd_w1 = test::fd_grad(w1, loss);
    const auto fd_w2 = test::fd_grad(w2, loss);
    const auto fd_b2 = test::fd_grad(b2, loss);
    const auto z_r = reference::linear(x, w1, t, e, r);
    const auto z_e = reference::linear(z_r, w2, t, r, e, &b2);
    const auto dx0 = rng.vec(std::size_t(t) * e);
    test::for_each_space([&]<class Space>() {
      INFO("backend " << Space::name());
      // upstream: the gradient of the gated output (du, or one element of it)
      const auto run = [&]<class Real>(grad::GradMode mode, const std::vector<double>& upstream) {
        auto vx = test::upload2r<Real, Space>(x, t, e);
        auto vw1 = test::upload2r<Real, Space>(w1, r, e);
        auto vw2 = test::upload2r<Real, Space>(w2, e, r);
        auto vzr = test::upload2r<Real, Space>(z_r, t, r);
        auto vze = test::upload2r<Real, Space>(z_e, t, e);
        auto vdu = test::upload2r<Real, Space>(upstream, t, e);
        auto dzr = test::upload2r<Real, Space>({}, t, r);
        auto dze = test::upload2r<Real, Space>({}, t, e);
        auto vdx = test::upload2r<Real, Space>(dx0, t, e);
        auto dw1 = test::upload2r<Real, Space>({}, r, e);
        auto dw2 = test::upload2r<Real, Space>({}, e, r);
        auto db2 = test::upload1r<Real, Space>(std::vector<double>(e, 0.0));
        grad::channel_gate_backward<Real>(Space{}, vx, vw1, vw2, vzr, vze, vdu, dzr, dze, vdx, dw1,
                                          dw2, db2, t, mode);
        Space().fence();
        return std::vector<std::vector<double>>{test::download_r(vdx), test::download_r(dw1),
                                                test::download_r(dw2), test::download_r(db2)};
      };
      const auto g = run.template operator()<double>(grad::GradMode::Overwrite, du);
      CHECK(test::grad_err(g[0], fd_x) < test::kFdTol);
      CHECK(test::grad_err(g[1], fd_w1) < test::kFdTol);
      CHECK(test::grad_err(g[2], fd_w2) < test::kFdTol);
      CHECK(test::grad_err(g[3], fd_b2) < test::kFdTol);
      const auto ga = run.template operator()<double>(grad::GradMode::Accumulate, du);
      std::vector<double> added(ga[0].size());
      for (std::size_t i = 0; i < added.size(); ++i) added[i] = ga[0][i] - dx0[i];
      CHECK(test::grad_err(added, fd_x) < test::kFdTol);
      const auto g32 = run.template operator()<float>(grad::GradMode::Overwrite, du);
      // held to the size of each upstream element's contribution: dz_r sums E of them, and on
      // small shapes (E = 2) two can cancel and leave dw1 to fp32 rounding (1.7e-4 of ||dw1||)
      // dx is also split by path: the direct du sigmoid(z_e) and the path through the gate,
      // which can cancel it in one element (E = 1: 6.2e-5, seed 1213029584)
      std::vector<std::vector<std::vector<double>>> parts(4);
      for (std::size_t j = 0; j < du.size(); ++j) {
        std::vector<double> one(du.size(), 0.0);
        one[j] = du[j];
        const auto p = run.template operator()<double>(grad::GradMode::Overwrite, one);
        for (int i = 1; i < 4; ++i) parts[i].push_back(p[i]);
        std::vector<double> direct(du.size(), 0.0), through(p[0]);
        direct[j] = du[j] / (1.0 + std::exp(-z_e[j]));
        through[j] -= direct[j];
        parts[0].push_back(direct);
        parts[0].push_back(through);
      }
      for (int i = 0; i < 4; ++i) {
        INFO("gradient " << i << " of dx, dw1, dw2, db2");
        CHECK(test::grad_err_parts(g32[i], g[i], parts[i]) < test::kF32Tol);
      }
    });
  }
}

TEST_CASE("ddts and channel gate backward passes reject wrong extents, naming the argument",
          "[grad][ddts_gate][errors]") {
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    using V2 = View2<float, Space>;
    using V1 = View1<float, Space>;
    V2 s("s", 3, 4), tau("tau", 3, 4), k("k", 3, 4), da("da", 3, 4), dkp("dkp", 3, 4),
        ds("ds", 3, 4), dtau("dtau", 3, 4), dk("dk", 3, 4);
    REQUIRE_NOTHROW(
        grad::ddts_gate_backward<float>(Space{}, s, tau, k, da, dkp, ds, dtau, dk, 3, 1e-12));
    CHECK_THROWS_WITH(grad::ddts_gate_backward<float>(Space{}, s, V2("tau", 3, 5), k, da, dkp, ds,
                                                      dtau, dk, 3, 1e-12),
                      Catch::Contains("ddts_gate_backward: tau_raw:"));
    CHECK_THROWS_WITH(grad::ddts_gate_backward<float>(Space{}, s, tau, k, da, dkp, ds,
                                                      V2("dtau", 2, 4), dk, 3, 1e-12),
                      Catch::Contains("ddts_gate_backward: dtau_raw:"));
    CHECK_THROWS_AS(
        grad::ddts_gate_backward<float>(Space{}, s, tau, k, da, dkp, ds, dtau, dk, 4, 1e-12),
        ArgumentError);
    // channel gate: E = 6, R = 2
    V2 x("x", 3, 6), w1("w1", 2, 6), w2("w2", 6, 2), zr("zr", 3, 2), ze("ze", 3, 6), du("du", 3, 6),
        dzr("dzr", 3, 2), dze("dze", 3, 6), dx("dx", 3, 6), dw1("dw1", 2, 6), dw2("dw2", 6, 2);
    V1 db2("db2", 6);
    const auto call = [&](V2 w2_, V2 zr_, V2 dw1_, V1 db2_) {
      grad::channel_gate_backward<float>(Space{}, x, w1, w2_, zr_, ze, du, dzr, dze, dx, dw1_, dw2,
                                         db2_, 3);
    };
    REQUIRE_NOTHROW(call(w2, zr, dw1, db2));
    CHECK_THROWS_WITH(call(V2("w2", 6, 3), zr, dw1, db2),
                      Catch::Contains("channel_gate_backward: w2:"));
    CHECK_THROWS_WITH(call(w2, V2("zr", 3, 3), dw1, db2),
                      Catch::Contains("channel_gate_backward: z_r:"));
    CHECK_THROWS_WITH(call(w2, zr, V2("dw1", 6, 2), db2),
                      Catch::Contains("channel_gate_backward: dw1:"));
    CHECK_THROWS_WITH(call(w2, zr, dw1, V1("db2", 5)),
                      Catch::Contains("channel_gate_backward: db2:"));
    CHECK_THROWS_AS(grad::sigmoid_gate_backward<float>(Space{}, V2("z", 3, 5), x, du, dze, dx, 3),
                    ArgumentError);
  });
}
