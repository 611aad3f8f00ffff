// The backends the op tests run on, and the test helpers' round trip through each one's memory.
#include <string>
#include <type_traits>
#include <vector>

#include "op_test_util.hpp"

using namespace rodimus;
using test::TestRng;

namespace {

struct A {};
struct B {};
static_assert(std::is_same_v<test::space_list_unique<test::SpaceList<>, A, B, A, B>::type,
                             test::SpaceList<A, B>>,
              "space_list_unique keeps the first of each type, in order");

template <class S, class... T>
constexpr bool in_list(test::SpaceList<T...>) {
  return (std::is_same_v<S, T> || ...);
}

template <class... T>
std::vector<std::string> names(test::SpaceList<T...>) {
  return {std::string(T::name())...};
}

std::vector<double> as_doubles(const std::vector<int>& v) {
  return std::vector<double>(v.begin(), v.end());
}

}  // namespace

TEST_CASE("the op tests run on every available backend, each once", "[ops][backends]") {
  STATIC_REQUIRE(in_list<Kokkos::DefaultHostExecutionSpace>(test::TestSpaces{}));
  STATIC_REQUIRE(in_list<Kokkos::DefaultExecutionSpace>(test::TestSpaces{}));
#if defined(KOKKOS_ENABLE_SERIAL)
  STATIC_REQUIRE(in_list<Kokkos::Serial>(test::TestSpaces{}));
#endif
  const auto list = names(test::TestSpaces{});
  REQUIRE(!list.empty());
  CHECK(list.front() == Kokkos::DefaultHostExecutionSpace::name());
  std::string joined;
  for (const auto& n : list) joined += (joined.empty() ? "" : ", ") + n;
  WARN("op tests run on: " << joined);
}

TEST_CASE("upload and download round-trip through every backend's memory", "[ops][backends]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  const int rows = 5, cols = 7, filled = 3;
  const auto v = rng.vec(std::size_t(filled) * cols, -4, 4);  // fp32-exact values
  auto padded = v;
  padded.resize(std::size_t(rows) * cols, 2.5);  // rows past the data hold `pad`
  const std::vector<int> ids = {3, 0, 7, 1};
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    auto d = test::upload2<float, Space>(v, rows, cols, 2.5);
    static_assert(std::is_same_v<typename decltype(d)::memory_space, memory_space_t<Space>>);
    CHECK(test::download2(d) == padded);
    CHECK(test::download2(d, filled) == v);
    // a download owns its values: changing the view afterwards leaves them alone
    const auto before = test::download2(d);
    Kokkos::deep_copy(d, 0.f);
    CHECK(before == padded);
    CHECK(test::download2(d) == std::vector<double>(padded.size(), 0.0));
    // 16-bit storage: what comes back is what the type holds
    CHECK(test::download2(test::upload2<bf16, Space>(v, filled, cols)) ==
          test::dequantised<bf16>(v));
    CHECK(test::download2(test::upload2<fp16, Space>(v, filled, cols)) ==
          test::dequantised<fp16>(v));
    CHECK(test::download1(test::upload1<Space>(v)) == v);
    CHECK(test::download1(test::upload_ids<Space>(ids)) == as_doubles(ids));
    CHECK(test::download3(test::upload3<Space>(v, filled, 1, cols)) == v);
    CHECK(test::download3(test::upload3<Space>(v, 1, cols, filled)) == v);
    // a packed batch's index arrays, in Space's memory
    test::Batch<Space> b({2, 0, 3}, {5, 0, 9}, {1, 2, 0});
    CHECK(b.tokens() == 5);
    CHECK(b.offset(2) == 2);
    CHECK(test::download1(b.seq.offsets) == std::vector<double>{0, 2, 2, 5});
    CHECK(test::download1(b.seq.pos0) == std::vector<double>{5, 0, 9});
    CHECK(test::download1(b.seq.slot) == std::vector<double>{1, 2, 0});
    CHECK(test::download1(b.seq.token_seq) == std::vector<double>{0, 0, 2, 2, 2});
  });
}
