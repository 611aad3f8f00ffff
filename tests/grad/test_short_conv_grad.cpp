// grad::short_conv_backward over packed batches: fp64 against finite differences (no gradient
// across sequence boundaries), fp32 against fp64, argument errors.
#include <cmath>

#include "grad_test_util.hpp"
#include "rodimus/grad/short_conv.hpp"
#include "rodimus/reference/short_conv.hpp"

using namespace rodimus;
using test::TestRng;

namespace {

// The forward of every sequence from a zero state, packed back into [N, E].
std::vector<double> packed_forward(const std::vector<double>& x, const std::vector<double>& w,
                                   const std::vector<double>& b, const std::vector<int>& lengths,
                                   int e, int k) {
  std::vector<double> y;
  std::size_t off = 0;
  for (int len : lengths) {
    const auto r = reference::short_conv(test::rows_of(x, off, len, e), w, b, len, e, k);
    y.insert(y.end(), r.y.begin(), r.y.end());
    off += len;
  }
  return y;
}

// The pre-activations p = b + conv(x) of every sequence from a zero state, packed [N, E].
std::vector<double> packed_preact(const std::vector<double>& x, const std::vector<double>& w,
                                  const std::vector<double>& b, const std::vector<int>& lengths,
                                  int e, int k) {
  std::vector<double> p;
  int off = 0;
  for (int len : lengths) {
    for (int t = 0; t < len; ++t)
      for (int c = 0; c < e; ++c) {
        double acc = b[c];
        for (int j = 0; j < k; ++j) {
          const int m = t - (k - 1) + j;
          if (m >= 0) acc += w[std::size_t(c) * k + j] * x[std::size_t(off + m) * e + c];
        }
        p.push_back(acc);
      }
    off += len;
  }
  return p;
}

struct ConvGrads {
  std::vector<double> dx, dw, db;
};

template <class Real, class Space>
ConvGrads run_conv(const std::vector<double>& x, const std::vector<double>& w,
                   const std::vector<double>& b, const std::vector<double>& dxs,
                   const std::vector<double>& dx0, const std::vector<int>& lengths, int e, int k,
                   grad::GradMode mode) {
  test::Batch<Space> batch(lengths, std::vector<int>(lengths.size(), 0),
                           std::vector<int>(lengths.size(), 0));
  const int n = batch.tokens();
  auto vx = test::upload2r<Real, Space>(x, n, e);
  auto vw = test::upload2r<Real, Space>(w, e, k);
  auto vb = test::upload1r<Real, Space>(b);
  auto vdxs = test::upload2r<Real, Space>(dxs, n, e);
  auto vdx = test::upload2r<Real, Space>(dx0, n, e);
  auto vdw = test::upload2r<Real, Space>({}, e, k);
  auto vdb = test::upload1r<Real, Space>(std::vector<double>(e, 0.0));
  grad::short_conv_backward<Real>(Space{}, vx, vw, vb, batch.seq, vdxs, vdx, vdw, vdb, mode);
  Space().fence();
  return {test::download_r(vdx), test::download_r(vdw), test::download_r(vdb)};
}

}  // namespace

TEST_CASE("short_conv_backward matches finite differences in fp64 and fp64 in fp32",
          "[grad][short_conv]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  struct Case {
    std::vector<int> lengths;
    int e, k;
  };
  for (const auto& cs : std::vector<Case>{
           {{1}, 1, 1},
           {{5}, 3, 4},
           {{2, 7, 1, 4}, 5, 4},  // sequences shorter than K
           {{9, 3}, 4, 2},
           {{rng.integer(1, 12), rng.integer(1, 12)}, rng.integer(1, 9), rng.integer(1, 6)}}) {
    const int e = cs.e, k = cs.k;
    int n = 0;
    for (int l : cs.lengths) n += l;
    INFO("N=" << n << " sequences " << cs.lengths.size() << " E=" << e << " K=" << k);
    auto x = rng.vec(std::size_t(n) * e, -2, 2);
    auto w = rng.vec(std::size_t(e) * k);
    auto b = rng.vec(e);
    const auto dxs = rng.vec(std::size_t(n) * e);
    const auto loss = [&] { return test::dot(dxs, packed_forward(x, w, b, cs.lengths, e, k)); };
    const auto fd_x = test::fd_grad(x, loss);
    const auto fd_w = test::fd_grad(w, loss);
    const auto fd_b = test::fd_grad(b, loss);
    const auto dx0 = rng.vec(std::size_t(n) * e);
    const auto p = packed_preact(x, w, b, cs.lengths, e, k);
    test::for_each_space([&]<class Space>() {
      INFO("backend " << Space::name());
      const auto g =
          run_conv<double, Space>(x, w, b, dxs, dx0, cs.lengths, e, k, grad::GradMode::Overwrite);
      CHECK(test::grad_err(g.dx, fd_x) < test::kFdTol);
      CHECK(test::grad_err(g.dw, fd_w) < test::kFdTol);
      CHECK(test::grad_err(g.db, fd_b) < test::kFdTol);
      const auto ga =
          run_conv<double, Space>(x, w, b, dxs, dx0, cs.lengths, e, k, grad::GradMode::Accumulate);
      std::vector<double> added(ga.dx.size());
      for (std::size_t i = 0; i < added.size(); ++i) added[i] = ga.dx[i] - dx0[i];
      CHECK(test::grad_err(added, fd_x) < test::kFdTol);
      const auto g32 =
          run_conv<float, Space>(x, w, b, dxs, dx0, cs.lengths, e, k, grad::GradMode::Overwrite);
      // Held to the size of silu'(p) = s + p s (1 - s)'s two terms (s = sigmoid(p)): near its
      // root (p ~ -1.28) they cancel and fp32 rounding is relative to the terms (E = K = N = 1
      // gave 3.5e-5, seed 2984262249). Each term's gradients: the fp64 backward with the
      // upstream gradient scaled by term / silu'(p) (the backward is linear in it).
      std::vector<double> up_s(dxs.size()), up_z(dxs.size());
      for (std::size_t i = 0; i < dxs.size(); ++i) {
        const auto t = test::silu_prime_terms(p[i]);
        const double d = t.s + t.z;
        up_s[i] = d != 0.0 ? dxs[i] * t.s / d : dxs[i];
        up_z[i] = d != 0.0 ? dxs[i] * t.z / d : 0.0;
      }
      const auto gs =
          run_conv<double, Space>(x, w, b, up_s, dx0, cs.lengths, e, k, grad::GradMode::Overwrite);
      const auto gz =
          run_conv<double, Space>(x, w, b, up_z, dx0, cs.lengths, e, k, grad::GradMode::Overwrite);
      CHECK(test::grad_err_parts(g32.dx, g.dx, {gs.dx, gz.dx}) < test::kF32Tol);
      CHECK(test::grad_err_parts(g32.dw, g.dw, {gs.dw, gz.dw}) < test::kF32Tol);
      CHECK(test::grad_err_parts(g32.db, g.db, {gs.db, gz.db}) < test::kF32Tol);
    });
  }
}

TEST_CASE("short_conv_backward rejects bad arguments, naming them", "[grad][short_conv][errors]") {
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    using V2 = View2<float, Space>;
    using V1 = View1<float, Space>;
    test::Batch<Space> batch({3, 2}, {0, 0}, {0, 1});
    V2 x("x", 5, 4), w("w", 4, 3), dxs("dxs", 5, 4), dx("dx", 5, 4), dw("dw", 4, 3);
    V1 b("b", 4), db("db", 4);
    const auto call = [&](V2 x_, V2 w_, V1 b_, const SeqBatch<Space>& bt, V2 dw_) {
      grad::short_conv_backward<float>(Space{}, x_, w_, b_, bt, dxs, dx, dw_, db);
    };
    REQUIRE_NOTHROW(call(x, w, b, batch.seq, dw));
    CHECK_THROWS_WITH(call(x, w, V1("b", 3), batch.seq, dw),
                      Catch::Contains("short_conv_backward: b:"));
    CHECK_THROWS_WITH(call(V2("x", 4, 4), w, b, batch.seq, dw),
                      Catch::Contains("short_conv_backward: x:"));
    CHECK_THROWS_WITH(call(x, w, b, batch.seq, V2("dw", 4, 2)),
                      Catch::Contains("short_conv_backward: dw:"));
    test::Batch<Space> continuing({3, 2}, {0, 7}, {0, 1});  // the second sequence has a state
    CHECK_THROWS_WITH(call(x, w, b, continuing.seq, dw),
                      Catch::Contains("short_conv_backward: batch:"));
    CHECK_THROWS_AS(call(x, w, b, continuing.seq, dw), ArgumentError);
  });
}
