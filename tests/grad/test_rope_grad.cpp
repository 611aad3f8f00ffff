// grad::rope_backward over packed batches at offset positions: fp64 against finite
// differences, fp32 against fp64, argument errors.
#include "grad_test_util.hpp"
#include "rodimus/grad/rope.hpp"
#include "rodimus/ops/rope.hpp"
#include "rodimus/reference/rope.hpp"

using namespace rodimus;
using test::TestRng;

TEST_CASE("rope_backward matches finite differences in fp64 and fp64 in fp32", "[grad][rope]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  struct Case {
    std::vector<int> lengths, pos0;
    int heads, hd, rd;
  };
  for (const auto& cs : std::vector<Case>{{{3}, {0}, 1, 2, 2},
                                          {{4, 2}, {0, 5}, 2, 8, 8},
                                          {{5, 1, 3}, {0, 17, 2}, 3, 10, 6},  // partial rotary dim
                                          {{rng.integer(1, 6), rng.integer(1, 6)},
                                           {rng.integer(0, 40), 0},
                                           rng.integer(1, 3),
                                           8,
                                           4}}) {
    const int width = cs.heads * cs.hd;
    int n = 0;
    for (int l : cs.lengths) n += l;
    INFO("N=" << n << " heads=" << cs.heads << " hd=" << cs.hd << " rd=" << cs.rd);
    const double base = 10000.0;
    auto x = rng.vec(std::size_t(n) * width, -2, 2);
    const auto dy = rng.vec(std::size_t(n) * width);
    const auto loss = [&] {
      std::vector<double> y;
      std::size_t off = 0;
      for (std::size_t s = 0; s < cs.lengths.size(); ++s) {
        const auto r = reference::rope(test::rows_of(x, off, cs.lengths[s], width), cs.lengths[s],
                                       cs.heads, cs.hd, cs.rd, base, cs.pos0[s]);
        y.insert(y.end(), r.begin(), r.end());
        off += cs.lengths[s];
      }
      return test::dot(dy, y);
    };
    const auto fd_x = test::fd_grad(x, loss);
    test::for_each_space([&]<class Space>() {
      INFO("backend " << Space::name());
      test::Batch<Space> batch(cs.lengths, cs.pos0, std::vector<int>(cs.lengths.size(), 0));
      const auto run = [&]<class Real>() {
        auto g = test::upload2r<Real, Space>(dy, n, width);
        const auto inv = grad::rope_inv_freq<Real, Space>(cs.rd, base);
        grad::rope_backward<Real>(Space{}, g, cs.heads, cs.hd, View1<const Real, Space>(inv), cs.rd,
                                  batch.seq);
        Space().fence();
        return test::download_r(g);
      };
      const auto g = run.template operator()<double>();
      CHECK(test::grad_err(g, fd_x) < test::kFdTol);
      CHECK(test::grad_err(run.template operator()<float>(), g) < test::kF32Tol);
    });
  }
}

TEST_CASE("rope_backward float table is the forward's table", "[grad][rope]") {
  const auto a = grad::rope_inv_freq<float, Kokkos::DefaultHostExecutionSpace>(64, 10000.0);
  const auto b = rope_inv_freq<Kokkos::DefaultHostExecutionSpace>(64, 10000.0);
  REQUIRE(a.extent(0) == b.extent(0));
  for (std::size_t i = 0; i < a.extent(0); ++i) CHECK(a(i) == b(i));
}

TEST_CASE("rope_backward rejects bad arguments, naming them", "[grad][rope][errors]") {
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    test::Batch<Space> batch({3}, {0}, {0});
    View2<float, Space> g("g", 3, 16);
    const auto inv = grad::rope_inv_freq<float, Space>(8, 10000.0);
    const View1<const float, Space> cinv(inv);
    REQUIRE_NOTHROW(grad::rope_backward<float>(Space{}, g, 2, 8, cinv, 8, batch.seq));
    CHECK_THROWS_AS(grad::rope_backward<float>(Space{}, g, 2, 8, cinv, 7, batch.seq),
                    ArgumentError);
    CHECK_THROWS_WITH(grad::rope_backward<float>(Space{}, g, 3, 8, cinv, 8, batch.seq),
                      Catch::Contains("rope_backward: dx:"));
    CHECK_THROWS_WITH(grad::rope_backward<float>(Space{}, View2<float, Space>("g", 2, 16), 2, 8,
                                                 cinv, 8, batch.seq),
                      Catch::Contains("rope_backward: dx:"));
    CHECK_THROWS_WITH(grad::rope_backward<float>(Space{}, View2<float, Space>("g", 3, 20), 2, 10,
                                                 cinv, 10, batch.seq),
                      Catch::Contains("rope_backward: inv_freq:"));
  });
}
