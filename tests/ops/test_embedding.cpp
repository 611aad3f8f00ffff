// embedding (SPEC 5: h = Embed[ids] * scale) on every backend, fp32/bf16/fp16 tables.
#include "op_test_util.hpp"
#include "rodimus/ops/embedding.hpp"

using namespace rodimus;
using test::TestRng;

TEST_CASE("embedding gathers and scales table rows exactly", "[ops][embedding]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  auto check = [&]<class W>(int vocab, int d, int n, float scale) {
    INFO("table " << dtype_traits<W>::name << " V=" << vocab << " D=" << d << " N=" << n
                  << " scale=" << scale);
    const auto table = test::dequantised<W>(rng.vec(std::size_t(vocab) * d, -2, 2));
    std::vector<int> ids(n);
    for (auto& id : ids) id = rng.integer(0, vocab - 1);
    if (n > 1) ids[0] = 0, ids[1] = vocab - 1;  // both ends of the vocabulary
    // expected: one fp32 product per element, the same rounding the op does
    std::vector<double> expect(std::size_t(n) * d);
    for (int t = 0; t < n; ++t)
      for (int c = 0; c < d; ++c)
        expect[std::size_t(t) * d + c] =
            static_cast<float>(static_cast<float>(table[std::size_t(ids[t]) * d + c]) * scale);
    test::for_each_space([&]<class Space>() {
      INFO("backend " << Space::name());
      const auto dt = test::upload2<W, Space>(table, vocab, d);
      const auto di = test::upload_ids<Space>(ids);
      auto h = test::upload2<float, Space>({}, n + 1, d, 7.0);
      embedding(Space{}, View1<const int, Space>(di), View2<const W, Space>(dt), scale, h, n);
      const auto got = test::download2(h);
      CHECK(test::rows_of(got, 0, n, d) == expect);
      CHECK(test::rows_of(got, n, 1, d) == std::vector<double>(d, 7.0));
    });
  };
  check.operator()<float>(1, 1, 1, 1.f);
  check.operator()<float>(97, 64, 40, 1.f);
  check.operator()<float>(61, 33, 17, std::sqrt(32.f));
  check.operator()<bf16>(50, 70, 9, 8.f);
  check.operator()<fp16>(13, 5, 30, 0.5f);
}

TEST_CASE("embedding rejects wrong extents", "[ops][embedding][errors]") {
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    const auto table = test::upload2<float, Space>(std::vector<double>(10 * 4, 1.0), 10, 4);
    const auto ids = test::upload_ids<Space>({1, 2});
    auto h5 = test::upload2<float, Space>({}, 2, 5);  // D = 4
    CHECK_THROWS_AS(embedding(Space{}, View1<const int, Space>(ids),
                              View2<const float, Space>(table), 1.f, h5, 2),
                    ArgumentError);
    auto h = test::upload2<float, Space>({}, 3, 4);
    CHECK_THROWS_AS(embedding(Space{}, View1<const int, Space>(ids),
                              View2<const float, Space>(table), 1.f, h, 3),
                    ArgumentError);  // 3 tokens, 2 ids
  });
}
