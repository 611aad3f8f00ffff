// grad::linear_backward: fp64 against finite differences, fp32 against fp64, argument errors.
#include "grad_test_util.hpp"
#include "rodimus/grad/linear.hpp"
#include "rodimus/reference/linear.hpp"

using namespace rodimus;
using test::TestRng;

namespace {

struct LinearGrads {
  std::vector<double> dx, dw, db;
};

// The backward on Space in Real. dw and db start from `acc0` (checks that they accumulate);
// dx starts from `dx0` (checked to be overwritten or added to, per `mode`).
template <class Real, class Space>
LinearGrads run_linear_backward(const std::vector<double>& x, const std::vector<double>& w,
                                const std::vector<double>& dy, const std::vector<double>& dx0,
                                const std::vector<double>& dw0, const std::vector<double>& db0,
                                int n, int in, int out, grad::GradMode mode) {
  auto vx = test::upload2r<Real, Space>(x, n, in);
  auto vw = test::upload2r<Real, Space>(w, out, in);
  auto vdy = test::upload2r<Real, Space>(dy, n, out);
  auto vdx = test::upload2r<Real, Space>(dx0, n, in);
  auto vdw = test::upload2r<Real, Space>(dw0, out, in);
  auto vdb = test::upload1r<Real, Space>(db0);
  grad::linear_backward<Real>(Space{}, vx, vw, vdy, vdx, vdw, vdb, n, mode);
  Space().fence();
  return {test::download_r(vdx), test::download_r(vdw), test::download_r(vdb)};
}

std::vector<double> minus(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> d(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  return d;
}

}  // namespace

TEST_CASE("linear_backward matches finite differences in fp64 and fp64 in fp32", "[grad][linear]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  for (const auto& cfg : std::vector<std::tuple<int, int, int>>{
           {1, 1, 1},
           {3, 5, 4},
           {9, 17, 11},
           {rng.integer(1, 20), rng.integer(1, 24), rng.integer(1, 24)}}) {
    const int n = std::get<0>(cfg);
    const int in = std::get<1>(cfg);
    const int out = std::get<2>(cfg);
    INFO("N=" << n << " in=" << in << " out=" << out);
    auto x = rng.vec(std::size_t(n) * in, -2, 2);
    auto w = rng.vec(std::size_t(out) * in);
    auto b = rng.vec(out);
    const auto dy = rng.vec(std::size_t(n) * out);
    const auto loss = [&] { return test::dot(dy, reference::linear(x, w, n, in, out, &b)); };
    const auto fd_x = test::fd_grad(x, loss);
    const auto fd_w = test::fd_grad(w, loss);
    const auto fd_b = test::fd_grad(b, loss);
    // non-zero starting values: weight grads must accumulate, dx must be overwritten or added to
    const auto dx0 = rng.vec(std::size_t(n) * in);
    const auto dw0 = rng.vec(std::size_t(out) * in);
    const auto db0 = rng.vec(out);
    test::for_each_space([&]<class Space>() {
      INFO("backend " << Space::name());
      const auto g = run_linear_backward<double, Space>(x, w, dy, dx0, dw0, db0, n, in, out,
                                                        grad::GradMode::Overwrite);
      CHECK(test::grad_err(g.dx, fd_x) < test::kFdTol);
      CHECK(test::grad_err(minus(g.dw, dw0), fd_w) < test::kFdTol);
      CHECK(test::grad_err(minus(g.db, db0), fd_b) < test::kFdTol);
      const auto ga = run_linear_backward<double, Space>(x, w, dy, dx0, dw0, db0, n, in, out,
                                                         grad::GradMode::Accumulate);
      CHECK(test::grad_err(minus(ga.dx, dx0), fd_x) < test::kFdTol);
      const auto gf = run_linear_backward<float, Space>(x, w, dy, dx0, dw0, db0, n, in, out,
                                                        grad::GradMode::Overwrite);
      CHECK(test::grad_err(gf.dx, g.dx) < test::kF32Tol);
      // the weight gradients are added to dw0 / db0: held to the size of the two addends, which
      // can nearly cancel (N = in = out = 1: 2.1e-5 of the sum, seed 2231981141)
      CHECK(test::grad_err_parts(gf.dw, g.dw, {dw0, minus(g.dw, dw0)}) < test::kF32Tol);
      CHECK(test::grad_err_parts(gf.db, g.db, {db0, minus(g.db, db0)}) < test::kF32Tol);
    });
  }
}

TEST_CASE("linear_backward weight gradients are exact sums over many tokens", "[grad][linear]") {
  // More tokens than one chunk of the two-stage column sum, so the chunked path is exercised.
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  const int n = 700, in = 6, out = 5;
  const auto x = rng.vec(std::size_t(n) * in);
  const auto w = rng.vec(std::size_t(out) * in);
  const auto dy = rng.vec(std::size_t(n) * out);
  std::vector<double> dw_ref(std::size_t(out) * in, 0.0), db_ref(out, 0.0);
  for (int t = 0; t < n; ++t)
    for (int o = 0; o < out; ++o) {
      db_ref[o] += dy[std::size_t(t) * out + o];
      for (int i = 0; i < in; ++i)
        dw_ref[std::size_t(o) * in + i] +=
            dy[std::size_t(t) * out + o] * x[std::size_t(t) * in + i];
    }
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    const auto g = run_linear_backward<double, Space>(
        x, w, dy, std::vector<double>(std::size_t(n) * in, 0.0),
        std::vector<double>(std::size_t(out) * in, 0.0), std::vector<double>(out, 0.0), n, in, out,
        grad::GradMode::Overwrite);
    CHECK(test::grad_err(g.dw, dw_ref) < 1e-13);
    CHECK(test::grad_err(g.db, db_ref) < 1e-13);
  });
}

TEST_CASE("linear_backward rejects wrong extents, naming the argument", "[grad][linear][errors]") {
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    using V2 = View2<float, Space>;
    using V1 = View1<float, Space>;
    V2 x("x", 4, 3), w("w", 5, 3), dy("dy", 4, 5), dx("dx", 4, 3), dw("dw", 5, 3);
    V1 db("db", 5);
    const auto call = [&](V2 x_, V2 dy_, V2 dx_, V2 dw_, V1 db_, int n) {
      grad::linear_backward<float>(Space{}, x_, w, dy_, dx_, dw_, db_, n);
    };
    REQUIRE_NOTHROW(call(x, dy, dx, dw, db, 4));
    CHECK_THROWS_WITH(call(x, V2("dy", 4, 4), dx, dw, db, 4),
                      Catch::Contains("linear_backward: dy:"));
    CHECK_THROWS_AS(call(x, V2("dy", 4, 4), dx, dw, db, 4), ArgumentError);
    CHECK_THROWS_AS(call(x, dy, dx, dw, db, 5), ArgumentError);  // more tokens than rows
    CHECK_THROWS_WITH(call(x, dy, V2("dx", 4, 2), dw, db, 4),
                      Catch::Contains("linear_backward: dx:"));
    CHECK_THROWS_WITH(call(x, dy, dx, V2("dw", 3, 5), db, 4),
                      Catch::Contains("linear_backward: dw:"));
    CHECK_THROWS_WITH(call(V2("x", 4, 2), dy, dx, dw, db, 4),
                      Catch::Contains("linear_backward: x:"));
    CHECK_THROWS_WITH(call(x, dy, dx, dw, V1("db", 4), 4), Catch::Contains("linear_backward: db:"));
    CHECK_THROWS_AS(call(x, dy, dx, dw, V1("db", 4), 4), ArgumentError);
  });
}
