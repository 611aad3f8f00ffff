// gated_rms_norm (SPEC 2 steps 8-9, gate before the norm) on every backend against fp64.
#include "op_test_util.hpp"
#include "rodimus/ops/gated_rms_norm.hpp"
#include "rodimus/reference/rms_norm.hpp"

using namespace rodimus;
using test::TestRng;

namespace {
// A few fp32 roundings per element (o + xs * w_res, silu, the product) plus the sum of E squares.
constexpr double kTol = 1e-5;
}  // namespace

TEST_CASE("gated_rms_norm matches the fp64 reference, with and without the residual term",
          "[ops][gated_rms_norm]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  double worst = 0;
  for (auto [n, e] : std::vector<std::pair<int, int>>{
           {1, 1}, {1, 128}, {6, 5}, {17, 129}, {40, 257}, {3, 1031},
           {1, 4096}, {2, 4100}, {1, 2049},  // the CUDA kernel: float4 x4, x8; scalar too long
           {rng.integer(1, 40), rng.integer(1, 300)}}) {
    for (bool with_res : {true, false}) {
      INFO("N=" << n << " E=" << e << " residual=" << with_res);
      const float eps = 1e-5f;
      const auto o = rng.vec(std::size_t(n) * e, -2, 2);
      const auto xs = rng.vec(std::size_t(n) * e, -2, 2);
      const auto g = rng.vec(std::size_t(n) * e, -6, 6);
      const auto w_res = rng.vec(e);
      const auto w = rng.vec(e, 0.2, 2);
      std::vector<double> o_res = o;  // SPEC 2.8: o + xs * w_res
      if (with_res)
        for (int t = 0; t < n; ++t)
          for (int c = 0; c < e; ++c)
            o_res[std::size_t(t) * e + c] += xs[std::size_t(t) * e + c] * w_res[c];
      const auto ref = reference::gated_rms_norm(o_res, g, w, double(eps), n, e);
      test::for_each_space([&]<class Space>() {
        INFO("backend " << Space::name());
        using CV = View2<const float, Space>;
        auto d_o = test::upload2<float, Space>(o, n + 1, e, 1.0);
        auto d_xs = test::upload2<float, Space>(xs, n + 1, e, 1.0);
        auto d_g = test::upload2<float, Space>(g, n + 1, e, 1.0);
        auto d_wr = with_res ? test::upload1<Space>(w_res) : View1<float, Space>();
        auto d_w = test::upload1<Space>(w);
        auto y = test::upload2<float, Space>({}, n + 1, e, 7.0);
        gated_rms_norm(Space{}, CV(d_o), CV(d_xs), View1<const float, Space>(d_wr), CV(d_g),
                       View1<const float, Space>(d_w), y, n, eps);
        const auto got = test::download2(y);
        const double err = test::rel_err(test::rows_of(got, 0, n, e), ref);
        worst = std::max(worst, err);
        CHECK(err <= kTol);
        CHECK(test::rows_of(got, n, 1, e) == std::vector<double>(e, 7.0));
      });
    }
  }
  WARN("gated_rms_norm max rel err " << worst);
}

TEST_CASE("gated_rms_norm with strong gates and rows of very different scales",
          "[ops][gated_rms_norm]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  double worst = 0;
  // E = 100, 203: full vectors and tails; g to +-40 (silu's saturated tails), rows scaled by
  // 10^[-3, 3]
  for (auto [n, e] : std::vector<std::pair<int, int>>{{23, 100}, {5, 203}}) {
    INFO("N=" << n << " E=" << e);
    const float eps = 1e-6f;
    auto o = rng.vec(std::size_t(n) * e, -2, 2);
    auto xs_scaled = rng.vec(std::size_t(n) * e, -2, 2);
    const auto g = rng.vec(std::size_t(n) * e, -40, 40);
    const auto w_res = rng.vec(e);
    const auto w = rng.vec(e, -2, 2);
    std::vector<double> o_res(o.size());
    for (int t = 0; t < n; ++t) {
      const double sc = std::pow(10.0, rng.uniform(-3, 3));
      for (int c = 0; c < e; ++c) {
        const std::size_t i = std::size_t(t) * e + c;
        o[i] = static_cast<float>(o[i] * sc);
        xs_scaled[i] = static_cast<float>(xs_scaled[i] * sc);
        o_res[i] = o[i] + xs_scaled[i] * w_res[c];
      }
    }
    const auto ref = reference::gated_rms_norm(o_res, g, w, double(eps), n, e);
    test::for_each_space([&]<class Space>() {
      INFO("backend " << Space::name());
      using CV = View2<const float, Space>;
      auto d_o = test::upload2<float, Space>(o, n, e);
      auto d_xs = test::upload2<float, Space>(xs_scaled, n, e);
      auto d_g = test::upload2<float, Space>(g, n, e);
      auto d_wr = test::upload1<Space>(w_res);
      auto d_w = test::upload1<Space>(w);
      auto y = test::upload2<float, Space>({}, n, e);
      gated_rms_norm(Space{}, CV(d_o), CV(d_xs), View1<const float, Space>(d_wr), CV(d_g),
                     View1<const float, Space>(d_w), y, n, eps);
      const auto got = test::download2(y);
      // rows differ in scale only before the norm: compare row by row
      double err = 0;
      for (int t = 0; t < n; ++t)
        err = std::max(err, test::rel_err(test::rows_of(got, t, 1, e), test::rows_of(ref, t, 1, e)));
      worst = std::max(worst, err);
      CHECK(err <= kTol);
    });
  }
  WARN("gated_rms_norm (strong inputs) max rel err " << worst);
}

TEST_CASE("gated_rms_norm rejects wrong extents", "[ops][gated_rms_norm][errors]") {
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    using CV = View2<const float, Space>;
    auto o = test::upload2<float, Space>({}, 2, 8, 1.0);
    auto g = test::upload2<float, Space>({}, 2, 8, 1.0);
    auto w = test::upload1<Space>(std::vector<double>(8, 1.0));
    auto w_res = test::upload1<Space>(std::vector<double>(6, 1.0));  // 6 != E = 8
    auto y = test::upload2<float, Space>({}, 2, 8);
    CHECK_THROWS_AS(gated_rms_norm(Space{}, CV(o), CV(o), View1<const float, Space>(w_res), CV(g),
                                   View1<const float, Space>(w), y, 2, 1e-5f),
                    ArgumentError);
    auto g7 = test::upload2<float, Space>({}, 2, 7, 1.0);
    CHECK_THROWS_AS(gated_rms_norm(Space{}, CV(o), CV(o), View1<const float, Space>(), CV(g7),
                                   View1<const float, Space>(w), y, 2, 1e-5f),
                    ArgumentError);
  });
}
