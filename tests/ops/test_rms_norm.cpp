// rms_norm and add_rms_norm (all three residual modes) on every backend against fp64.
#include "op_test_util.hpp"
#include "rodimus/ops/rms_norm.hpp"
#include "rodimus/reference/rms_norm.hpp"

using namespace rodimus;
using test::TestRng;

namespace {

// The sum of D squares in fp32 has relative error ~ sqrt(D) * 2^-24; the output inherits it.
constexpr double kTol = 1e-5;

// Rows of very different magnitudes: the norm must be scale-invariant, whatever the row scale.
std::vector<double> scaled_rows(TestRng& rng, int rows, int d) {
  std::vector<double> x = rng.vec(std::size_t(rows) * d);
  for (int r = 0; r < rows; ++r) {
    const double s = std::pow(10.0, rng.uniform(-2, 2));
    for (int c = 0; c < d; ++c)
      x[std::size_t(r) * d + c] = static_cast<float>(x[std::size_t(r) * d + c] * s);
  }
  return x;
}

}  // namespace

TEST_CASE("rms_norm matches the fp64 reference", "[ops][rms_norm]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  double worst = 0;
  for (auto [n, d] : std::vector<std::pair<int, int>>{
           {1, 1}, {1, 64}, {5, 3}, {13, 127}, {33, 100}, {4, 1000},  // vector tails: D % 16 != 0
           {2, 1500}, {1, 601},  // the CUDA kernel's float4 and scalar rows, 2 and 4 per thread
           {rng.integer(1, 40), rng.integer(1, 400)}}) {
    INFO("N=" << n << " D=" << d);
    const float eps = 1e-5f;
    const auto x = scaled_rows(rng, n, d);
    const auto w = rng.vec(d, 0.5, 1.5);
    const auto ref = reference::rms_norm(x, w, double(eps), n, d);
    test::for_each_space([&]<class Space>() {
      INFO("backend " << Space::name());
      auto dx = test::upload2<float, Space>(x, n + 1, d, 5.0);
      auto dw = test::upload1<Space>(w);
      auto out = test::upload2<float, Space>({}, n + 1, d, 7.0);
      rms_norm(Space{}, View2<const float, Space>(dx), View1<const float, Space>(dw), out, n, eps);
      const auto got = test::download2(out);
      const double e = test::rel_err(test::rows_of(got, 0, n, d), ref);
      worst = std::max(worst, e);
      CHECK(e <= kTol);
      CHECK(test::rows_of(got, n, 1, d) == std::vector<double>(d, 7.0));
      // in place: out aliases x
      rms_norm(Space{}, View2<const float, Space>(dx), View1<const float, Space>(dw), dx, n, eps);
      CHECK(test::rel_err(test::rows_of(test::download2(dx), 0, n, d), ref) <= kTol);
    });
  }
  WARN("rms_norm max rel err " << worst);
}

TEST_CASE("add_rms_norm matches the fp64 reference in every residual mode", "[ops][rms_norm]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  double worst = 0;
  for (auto [n, d] : std::vector<std::pair<int, int>>{
           {1, 7}, {9, 64}, {17, 31}, {40, 257}, {rng.integer(1, 30), rng.integer(2, 300)},
           // the CUDA kernel: float4 rows of 2 / 4 / 8 vectors per thread, a scalar row too
           // long for it (9 per thread) and a row past 8192 floats (the generic kernel)
           {2, 2048}, {1, 4096}, {2, 6000}, {3, 2050}, {1, 9000}}) {
    INFO("N=" << n << " D=" << d);
    const float eps = 1e-6f;
    const auto h = scaled_rows(rng, n, d);
    const auto r = rng.vec(std::size_t(n) * d, -3, 3);
    const auto w = rng.vec(d, -1.5, 1.5);
    std::vector<double> sum(h.size());
    for (std::size_t i = 0; i < h.size(); ++i) sum[i] = h[i] + r[i];
    for (auto mode : {ResidualMode::Start, ResidualMode::Add, ResidualMode::AddNoStore}) {
      INFO("mode " << int(mode));
      const auto& z = mode == ResidualMode::Start ? h : sum;  // what gets normalised
      const auto ref = reference::rms_norm(z, w, double(eps), n, d);
      const auto& r_after = mode == ResidualMode::AddNoStore ? r : z;
      test::for_each_space([&]<class Space>() {
        INFO("backend " << Space::name());
        auto dh = test::upload2<float, Space>(h, n, d);
        auto dr = test::upload2<float, Space>(r, n, d);
        auto dw = test::upload1<Space>(w);
        auto out = test::upload2<float, Space>({}, n, d);
        add_rms_norm(Space{}, View2<const float, Space>(dh), dr, View1<const float, Space>(dw), out,
                     n, eps, mode);
        const double e = test::rel_err(test::download2(out), ref);
        worst = std::max(worst, e);
        CHECK(e <= kTol);
        // r = fl(h + r) exactly (one fp32 rounding) or untouched
        const auto got_r = test::download2(dr);
        double er = 0;
        for (std::size_t i = 0; i < got_r.size(); ++i)
          er = std::max(er, std::fabs(got_r[i] - double(float(r_after[i]))));
        CHECK(er == 0.0);
      });
    }
  }
  WARN("add_rms_norm max rel err " << worst);
}

TEST_CASE("rms_norm and add_rms_norm reject wrong extents", "[ops][rms_norm][errors]") {
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    auto x = test::upload2<float, Space>({}, 2, 8, 1.0);
    auto r = test::upload2<float, Space>({}, 2, 8, 1.0);
    auto w = test::upload1<Space>(std::vector<double>(7, 1.0));  // D = 7 but rows have 8
    auto out = test::upload2<float, Space>({}, 2, 8);
    CHECK_THROWS_AS(rms_norm(Space{}, View2<const float, Space>(x), View1<const float, Space>(w),
                             out, 2, 1e-5f),
                    ArgumentError);
    CHECK_THROWS_AS(add_rms_norm(Space{}, View2<const float, Space>(x), r,
                                 View1<const float, Space>(w), out, 2, 1e-5f, ResidualMode::Add),
                    ArgumentError);
    auto w8 = test::upload1<Space>(std::vector<double>(8, 1.0));
    CHECK_THROWS_AS(rms_norm(Space{}, View2<const float, Space>(x), View1<const float, Space>(w8),
                             out, 3, 1e-5f),
                    ArgumentError);
  });
}
