// grad::embedding_backward: fp64 against finite differences (repeated ids), fp32 against fp64,
// determinism, out-of-range ids.
#include "grad_test_util.hpp"
#include "rodimus/grad/embedding.hpp"

using namespace rodimus;
using test::TestRng;

namespace {

// h[t] = table[ids[t]] * scale.  table: [V, D]; returns [N, D].
std::vector<double> embed(const std::vector<double>& table, const std::vector<int>& ids, int d,
                          double scale) {
  std::vector<double> h;
  for (int id : ids)
    for (int c = 0; c < d; ++c) h.push_back(table[std::size_t(id) * d + c] * scale);
  return h;
}

template <class Real, class Space>
std::vector<double> run_embedding(const std::vector<int>& ids, const std::vector<double>& dh,
                                  const std::vector<double>& dtable0, int v, int d, double scale) {
  const int n = static_cast<int>(ids.size());
  auto vids = test::upload_ids<Space>(ids);
  auto vdh = test::upload2r<Real, Space>(dh, n, d);
  auto vdt = test::upload2r<Real, Space>(dtable0, v, d);
  grad::embedding_backward<Real>(Space{}, View1<const int, Space>(vids), vdh, Real(scale), vdt, n);
  Space().fence();
  return test::download_r(vdt);
}

}  // namespace

TEST_CASE("embedding_backward matches finite differences in fp64 and fp64 in fp32",
          "[grad][embedding]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  for (const auto& cfg : std::vector<std::tuple<int, int, int, double>>{
           {1, 1, 1, 1.0},
           {9, 4, 5, 8.0},      // ids repeat: v < n
           {30, 50, 130, 1.0},  // more columns than one host block
           {rng.integer(1, 40), rng.integer(1, 30), rng.integer(1, 100), 1.0}}) {
    const int n = std::get<0>(cfg);
    const int v = std::get<1>(cfg);
    const int d = std::get<2>(cfg);
    const double scale = std::get<3>(cfg);
    INFO("N=" << n << " V=" << v << " D=" << d << " scale=" << scale);
    std::vector<int> ids(n);
    for (auto& id : ids) id = rng.integer(0, v - 1);
    auto table = rng.vec(std::size_t(v) * d);
    const auto dh = rng.vec(std::size_t(n) * d);
    const auto fd =
        test::fd_grad(table, [&] { return test::dot(dh, embed(table, ids, d, scale)); });
    const auto dt0 = rng.vec(std::size_t(v) * d);  // accumulates onto what the caller holds
    test::for_each_space([&]<class Space>() {
      INFO("backend " << Space::name());
      const auto got = run_embedding<double, Space>(ids, dh, dt0, v, d, scale);
      std::vector<double> added(got.size());
      for (std::size_t i = 0; i < got.size(); ++i) added[i] = got[i] - dt0[i];
      CHECK(test::grad_err(added, fd) < test::kFdTol);
      const auto got32 = run_embedding<float, Space>(ids, dh, dt0, v, d, scale);
      CHECK(test::grad_err(got32, got) < test::kF32Tol);
      CHECK(run_embedding<float, Space>(ids, dh, dt0, v, d, scale) == got32);  // deterministic
    });
  }
}

TEST_CASE("embedding_backward rejects out-of-range ids and wrong extents, naming them",
          "[grad][embedding][errors]") {
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    View2<float, Space> dh("dh", 4, 3), dt("dt", 5, 3);
    const auto call = [&](const std::vector<int>& ids, View2<float, Space> dh_, int n) {
      auto v = test::upload_ids<Space>(ids);
      grad::embedding_backward<float>(Space{}, View1<const int, Space>(v), dh_, 1.f, dt, n);
    };
    REQUIRE_NOTHROW(call({0, 4, 2, 4}, dh, 4));
    const auto before = test::download_r(dt);
    CHECK_THROWS_WITH(call({0, 4, 5, 1}, dh, 4),
                      Catch::Contains("embedding_backward: ids[2] = 5 is outside [0, 5)"));
    CHECK_THROWS_WITH(call({0, -1, 2, 1}, dh, 4),
                      Catch::Contains("embedding_backward: ids[1] = -1"));
    CHECK_THROWS_AS(call({0, -1, 2, 1}, dh, 4), ArgumentError);
    CHECK(test::download_r(dt) == before);  // nothing written by a rejected call
    CHECK_THROWS_WITH(call({0, 1, 2, 3}, View2<float, Space>("dh", 4, 2), 4),
                      Catch::Contains("embedding_backward: dh:"));
    CHECK_THROWS_WITH(call({0, 1, 2}, dh, 4), Catch::Contains("embedding_backward: ids:"));
  });
}
