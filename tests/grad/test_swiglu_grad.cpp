// grad::swiglu_backward: fp64 against finite differences, fp32 against fp64, argument errors.
#include <cmath>

#include "grad_test_util.hpp"
#include "rodimus/grad/swiglu.hpp"
#include "rodimus/reference/swiglu.hpp"

using namespace rodimus;
using test::TestRng;

TEST_CASE("swiglu_backward matches finite differences in fp64 and fp64 in fp32", "[grad][swiglu]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  for (const auto& cfg : std::vector<std::tuple<int, int, double>>{
           {1, 1, 3.0},
           {4, 7, 3.0},
           {6, 16, 40.0},  // gate pre-activations deep in both tails
           {rng.integer(1, 12), rng.integer(1, 40), 5.0}}) {
    const int n = std::get<0>(cfg);
    const int f = std::get<1>(cfg);
    const double g_scale = std::get<2>(cfg);
    INFO("N=" << n << " F=" << f << " gate scale " << g_scale);
    auto a = rng.vec(std::size_t(n) * f, -2, 2);
    auto g = rng.vec(std::size_t(n) * f, -g_scale, g_scale);
    const auto dout = rng.vec(std::size_t(n) * f);
    const auto loss = [&] { return test::dot(dout, reference::swiglu(test::hcat(a, g, n), n, f)); };
    const auto fd_a = test::fd_grad(a, loss);
    const auto fd_g = test::fd_grad(g, loss);
    test::for_each_space([&]<class Space>() {
      INFO("backend " << Space::name());
      const auto run = [&]<class Real>(bool alias) {
        auto va = test::upload2r<Real, Space>(a, n, f);
        auto vg = test::upload2r<Real, Space>(g, n, f);
        auto vd = test::upload2r<Real, Space>(dout, n, f);
        auto da = alias ? vd : test::upload2r<Real, Space>({}, n, f);
        auto dg = test::upload2r<Real, Space>({}, n, f);
        grad::swiglu_backward<Real>(Space{}, va, vg, vd, da, dg, n);
        Space().fence();
        return std::pair{test::download_r(da), test::download_r(dg)};
      };
      const auto [da, dg] = run.template operator()<double>(false);
      CHECK(test::grad_err(da, fd_a) < test::kFdTol);
      CHECK(test::grad_err(dg, fd_g) < test::kFdTol);
      const auto [da_alias, dg_alias] = run.template operator()<double>(true);  // da = dout
      CHECK(da_alias == da);
      CHECK(dg_alias == dg);
      const auto [da32, dg32] = run.template operator()<float>(false);
      CHECK(test::grad_err(da32, da) < test::kF32Tol);
      // dg = dout a silu'(g), silu'(g) = s + g s (1 - s): held to the size of the two terms,
      // which cancel near g ~ -1.28 (N = F = 1: 1.6e-5, seed 986101146)
      std::vector<double> dg_s(dg.size()), dg_z(dg.size());
      for (std::size_t i = 0; i < dg.size(); ++i) {
        const auto t = test::silu_prime_terms(g[i]);
        dg_s[i] = dout[i] * a[i] * t.s;
        dg_z[i] = dout[i] * a[i] * t.z;
      }
      CHECK(test::grad_err_parts(dg32, dg, {dg_s, dg_z}) < test::kF32Tol);
    });
  }
}

TEST_CASE("swiglu_backward rejects wrong extents, naming the argument", "[grad][swiglu][errors]") {
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    using V2 = View2<float, Space>;
    V2 a("a", 3, 5), g("g", 3, 5), d("d", 3, 5), da("da", 3, 5), dg("dg", 3, 5);
    REQUIRE_NOTHROW(grad::swiglu_backward<float>(Space{}, a, g, d, da, dg, 3));
    CHECK_THROWS_WITH(grad::swiglu_backward<float>(Space{}, a, V2("g", 3, 4), d, da, dg, 3),
                      Catch::Contains("swiglu_backward: g:"));
    CHECK_THROWS_WITH(grad::swiglu_backward<float>(Space{}, a, g, d, da, V2("dg", 2, 5), 3),
                      Catch::Contains("swiglu_backward: dg:"));
    CHECK_THROWS_AS(grad::swiglu_backward<float>(Space{}, a, g, d, da, dg, 4), ArgumentError);
  });
}
