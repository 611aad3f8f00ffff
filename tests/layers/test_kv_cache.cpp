// KvCache: growth by doubling that keeps every row, no reallocation within capacity, copy_slot,
// bytes, errors.
#include "op_test_util.hpp"
#include "rodimus/layers/kv_cache.hpp"

using namespace rodimus;
using test::TestRng;

TEST_CASE("KvCache grows by doubling and keeps what it holds", "[layers][kv_cache]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    const int slots = 3, d = 10, cap0 = 5;
    KvCache<Space> cache(slots, d, cap0);
    CHECK(cache.capacity() == cap0);
    CHECK(cache.bytes() == std::size_t(2) * slots * cap0 * d * sizeof(float));
    const auto k0 = rng.vec(std::size_t(slots) * cap0 * d);
    const auto v0 = rng.vec(std::size_t(slots) * cap0 * d);
    Kokkos::deep_copy(cache.k(), test::upload3<Space>(k0, slots, cap0, d));
    Kokkos::deep_copy(cache.v(), test::upload3<Space>(v0, slots, cap0, d));
    const float* data = cache.k().data();
    CHECK_FALSE(cache.reserve(cap0));  // fits: nothing happens
    CHECK(cache.k().data() == data);
    CHECK(cache.reserve(cap0 + 1));  // doubles
    CHECK(cache.capacity() == 2 * cap0);
    CHECK(cache.reserve(7 * cap0));  // more than double: exactly what was asked
    CHECK(cache.capacity() == 7 * cap0);
    const auto k1 = test::download3(cache.k()), v1 = test::download3(cache.v());
    for (int s = 0; s < slots; ++s)
      for (int r = 0; r < cap0; ++r)
        for (int c = 0; c < d; ++c) {
          const std::size_t old = (std::size_t(s) * cap0 + r) * d + c;
          const std::size_t now = (std::size_t(s) * cache.capacity() + r) * d + c;
          REQUIRE(k1[now] == k0[old]);
          REQUIRE(v1[now] == v0[old]);
        }
    // copy_slot: the first 4 rows of slot 2 into slot 0 of another cache, which grows to fit
    KvCache<Space> other(2, d, 2);
    other.copy_slot(0, cache, 2, 4);
    CHECK(other.capacity() >= 4);
    const auto k2 = test::download3(other.k());
    for (int r = 0; r < 4; ++r)
      for (int c = 0; c < d; ++c)
        REQUIRE(k2[std::size_t(r) * d + c] == k0[(std::size_t(2) * cap0 + r) * d + c]);
    CHECK_THROWS_AS(other.copy_slot(2, cache, 0, 1), ArgumentError);
    CHECK_THROWS_AS(KvCache<Space>(0, d, 4), ArgumentError);
    CHECK_THROWS_AS(KvCache<Space>(1, 0, 4), ArgumentError);
  });
}
