// grad::rms_norm_backward and grad::add_rms_norm_backward (every residual mode): fp64 against
// finite differences, fp32 against fp64, argument errors.
#include "grad_test_util.hpp"
#include "rodimus/grad/rms_norm.hpp"
#include "rodimus/reference/rms_norm.hpp"

using namespace rodimus;
using test::TestRng;

namespace {

// Rows of different magnitudes (the finite-difference step, 1e-5 * max(1, |x|), stays well
// below the row scale). The cases with a large eps are the ones where eps is not negligible
// next to mean(x^2), which checks where it enters. D = 1 runs with a large eps only: with a
// small one y = x / rms(x) * w is nearly sign(x) w, and its gradient w eps / (x^2 + eps)^1.5
// is below what central differences (or fp32) resolve.
std::vector<double> scaled_rows(TestRng& rng, int rows, int d) {
  std::vector<double> x = rng.vec(std::size_t(rows) * d);
  for (int r = 0; r < rows; ++r) {
    const double s = std::pow(10.0, rng.uniform(-1, 1.5));
    for (int c = 0; c < d; ++c)
      x[std::size_t(r) * d + c] = static_cast<float>(x[std::size_t(r) * d + c] * s);
  }
  return x;
}

std::vector<double> add(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> s(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) s[i] = a[i] + b[i];
  return s;
}

std::vector<double> minus(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> s(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) s[i] = a[i] - b[i];
  return s;
}

template <class Real, class Space>
std::pair<std::vector<double>, std::vector<double>> run_rms(const std::vector<double>& x,
                                                            const std::vector<double>& w,
                                                            const std::vector<double>& dy,
                                                            const std::vector<double>& dw0, int n,
                                                            int d, double eps) {
  auto vx = test::upload2r<Real, Space>(x, n, d);
  auto vw = test::upload1r<Real, Space>(w);
  auto vdy = test::upload2r<Real, Space>(dy, n, d);
  auto vdx = test::upload2r<Real, Space>({}, n, d, 3.0);
  auto vdw = test::upload1r<Real, Space>(dw0);
  grad::rms_norm_backward<Real>(Space{}, vx, vw, vdy, vdx, vdw, n, eps);
  Space().fence();
  return {test::download_r(vdx), test::download_r(vdw)};
}

struct AddGrads {
  std::vector<double> dh, dr, dw;
};

template <class Real, class Space>
AddGrads run_add_rms(const std::vector<double>& h, const std::vector<double>& r_after,
                     const std::vector<double>& w, const std::vector<double>& dout,
                     const std::vector<double>& dr_carry, const std::vector<double>& dw0, int n,
                     int d, double eps, ResidualMode mode) {
  auto vh = test::upload2r<Real, Space>(h, n, d);
  auto vr = test::upload2r<Real, Space>(r_after, n, d);
  auto vw = test::upload1r<Real, Space>(w);
  auto vdout = test::upload2r<Real, Space>(dout, n, d);
  auto vdr = test::upload2r<Real, Space>(dr_carry, n, d);
  auto vdh = test::upload2r<Real, Space>({}, n, d, 5.0);
  auto vdw = test::upload1r<Real, Space>(dw0);
  grad::add_rms_norm_backward<Real>(Space{}, vh, vr, vw, vdout, vdr, vdh, vdw, n, eps, mode);
  Space().fence();
  return {test::download_r(vdh), test::download_r(vdr), test::download_r(vdw)};
}

}  // namespace

TEST_CASE("rms_norm_backward matches finite differences in fp64 and fp64 in fp32",
          "[grad][rms_norm]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  for (const auto& cfg :
       std::vector<std::tuple<int, int, double>>{{1, 1, 0.2},
                                                 {1, 8, 0.2},
                                                 {6, 5, 1e-5},
                                                 {11, 64, 1e-5},
                                                 {9, 20, 0.5},
                                                 {rng.integer(1, 12), rng.integer(2, 70), 1e-5}}) {
    const int n = std::get<0>(cfg);
    const int d = std::get<1>(cfg);
    const double eps = std::get<2>(cfg);
    INFO("N=" << n << " D=" << d << " eps=" << eps);
    auto x = scaled_rows(rng, n, d);
    auto w = rng.vec(d, -1.5, 1.5);
    const auto dy = rng.vec(std::size_t(n) * d);
    const auto loss = [&] { return test::dot(dy, reference::rms_norm(x, w, eps, n, d)); };
    const auto fd_x = test::fd_grad(x, loss);
    const auto fd_w = test::fd_grad(w, loss);
    const auto dw0 = rng.vec(d);
    test::for_each_space([&]<class Space>() {
      INFO("backend " << Space::name());
      const auto [dx, dw] = run_rms<double, Space>(x, w, dy, dw0, n, d, eps);
      CHECK(test::grad_err(dx, fd_x) < test::kFdTol);
      CHECK(test::grad_err(minus(dw, dw0), fd_w) < test::kFdTol);
      const auto [dx32, dw32] = run_rms<float, Space>(x, w, dy, dw0, n, d, eps);
      // D = 1: dx = dy w eps / (x^2 + eps)^1.5 comes out of 1 - x^2 / (x^2 + eps), whose fp32
      // rounding is amplified by x^2 / eps; only the fp64 check is meaningful there.
      if (d > 1) CHECK(test::grad_err(dx32, dx) < test::kF32NormTol);
      CHECK(test::grad_err(dw32, dw) < test::kF32NormTol);
    });
  }
}

TEST_CASE("rms_norm_backward allows dx to alias dy", "[grad][rms_norm]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  const int n = 7, d = 33;
  const auto x = scaled_rows(rng, n, d);
  const auto w = rng.vec(d, 0.5, 1.5);
  const auto dy = rng.vec(std::size_t(n) * d);
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    const auto [dx_ref, dw_ref] =
        run_rms<double, Space>(x, w, dy, std::vector<double>(d, 0.0), n, d, 1e-6);
    auto vx = test::upload2r<double, Space>(x, n, d);
    auto vw = test::upload1r<double, Space>(w);
    auto vg = test::upload2r<double, Space>(dy, n, d);
    auto vdw = test::upload1r<double, Space>(std::vector<double>(d, 0.0));
    grad::rms_norm_backward<double>(Space{}, vx, vw, vg, vg, vdw, n, 1e-6);
    CHECK(test::grad_err(test::download_r(vg), dx_ref) < 1e-14);
    CHECK(test::grad_err(test::download_r(vdw), dw_ref) < 1e-14);
  });
}

TEST_CASE("add_rms_norm_backward matches finite differences in every residual mode",
          "[grad][rms_norm]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  for (const auto& cfg : std::vector<std::tuple<int, int, double>>{
           {1, 3, 1e-6}, {5, 16, 0.3}, {rng.integer(1, 10), rng.integer(2, 50), 1e-6}}) {
    const int n = std::get<0>(cfg);
    const int d = std::get<1>(cfg);
    const double eps = std::get<2>(cfg);
    INFO("N=" << n << " D=" << d << " eps=" << eps);
    for (auto mode : {ResidualMode::Start, ResidualMode::Add, ResidualMode::AddNoStore}) {
      INFO("mode " << int(mode));
      auto h = scaled_rows(rng, n, d);
      auto r0 = rng.vec(std::size_t(n) * d, -2, 2);  // the residual stream before the op
      auto w = rng.vec(d, -1.5, 1.5);
      const auto dout = rng.vec(std::size_t(n) * d);
      const auto dr_carry = rng.vec(std::size_t(n) * d);  // dL/dr of the stream after the op
      // L = dout . RMSNorm(z) + dr_carry . r_after
      const auto loss = [&] {
        const auto z = mode == ResidualMode::Start ? h : add(h, r0);
        const auto& r_after = mode == ResidualMode::AddNoStore ? r0 : z;
        return test::dot(dout, reference::rms_norm(z, w, eps, n, d)) + test::dot(dr_carry, r_after);
      };
      const auto fd_h = test::fd_grad(h, loss);
      const auto fd_r = test::fd_grad(r0, loss);
      const auto fd_w = test::fd_grad(w, loss);
      const auto r_after =
          mode == ResidualMode::Start ? h : (mode == ResidualMode::Add ? add(h, r0) : r0);
      const auto dw0 = rng.vec(d);
      test::for_each_space([&]<class Space>() {
        INFO("backend " << Space::name());
        const auto g =
            run_add_rms<double, Space>(h, r_after, w, dout, dr_carry, dw0, n, d, eps, mode);
        CHECK(test::grad_err(g.dh, fd_h) < test::kFdTol);
        CHECK(test::grad_err(minus(g.dw, dw0), fd_w) < test::kFdTol);
        if (mode == ResidualMode::Start) {
          CHECK(test::abs_max(g.dr) == 0.0);  // the old r was overwritten
          CHECK(test::abs_max(fd_r) == 0.0);
        } else {
          CHECK(test::grad_err(g.dr, fd_r) < test::kFdTol);
        }
        const auto g32 =
            run_add_rms<float, Space>(h, r_after, w, dout, dr_carry, dw0, n, d, eps, mode);
        CHECK(test::grad_err(g32.dh, g.dh) < test::kF32NormTol);
        CHECK(test::grad_err(g32.dw, g.dw) < test::kF32NormTol);
        if (mode != ResidualMode::Start) CHECK(test::grad_err(g32.dr, g.dr) < test::kF32NormTol);
      });
    }
  }
}

TEST_CASE("rms norm backward passes reject wrong extents, naming the argument",
          "[grad][rms_norm][errors]") {
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    using V2 = View2<float, Space>;
    using V1 = View1<float, Space>;
    V2 x("x", 3, 8), dy("dy", 3, 8), dx("dx", 3, 8), r("r", 3, 8), dr("dr", 3, 8);
    V1 w("w", 8), dw("dw", 8);
    REQUIRE_NOTHROW(grad::rms_norm_backward<float>(Space{}, x, w, dy, dx, dw, 3, 1e-5));
    CHECK_THROWS_AS(grad::rms_norm_backward<float>(Space{}, x, V1("w", 7), dy, dx, dw, 3, 1e-5),
                    ArgumentError);
    CHECK_THROWS_WITH(
        grad::rms_norm_backward<float>(Space{}, x, w, V2("dy", 3, 9), dx, dw, 3, 1e-5),
        Catch::Contains("rms_norm_backward: dy:"));
    CHECK_THROWS_WITH(grad::rms_norm_backward<float>(Space{}, x, w, dy, dx, V1("dw", 9), 3, 1e-5),
                      Catch::Contains("rms_norm_backward: dw:"));
    CHECK_THROWS_WITH(grad::rms_norm_backward<float>(Space{}, x, w, dy, dx, dw, 4, 1e-5),
                      Catch::Contains("rms_norm_backward: x:"));
    REQUIRE_NOTHROW(grad::add_rms_norm_backward<float>(Space{}, x, r, w, dy, dr, dx, dw, 3, 1e-5,
                                                       ResidualMode::AddNoStore));
    CHECK_THROWS_WITH(grad::add_rms_norm_backward<float>(Space{}, V2("h", 3, 7), r, w, dy, dr, dx,
                                                         dw, 3, 1e-5, ResidualMode::AddNoStore),
                      Catch::Contains("add_rms_norm_backward: h:"));
    CHECK_THROWS_WITH(grad::add_rms_norm_backward<float>(Space{}, x, r, w, dy, V2("dr", 2, 8), dx,
                                                         dw, 3, 1e-5, ResidualMode::Add),
                      Catch::Contains("add_rms_norm_backward: dr:"));
    CHECK_THROWS_AS(grad::add_rms_norm_backward<float>(Space{}, x, r, w, dy, V2("dr", 2, 8), dx, dw,
                                                       3, 1e-5, ResidualMode::Add),
                    ArgumentError);
  });
}
