// rope (SPEC 3 step 2, non-interleaved "rotate half") over packed batches at nonzero absolute
// positions, on every backend against the fp64 reference run per sequence.
#include "op_test_util.hpp"
#include "rodimus/ops/rope.hpp"
#include "rodimus/reference/rope.hpp"

using namespace rodimus;
using test::TestRng;

namespace {

// SPEC 3.2 computes the angle pos * inv_freq in fp32: its absolute error is up to about
// pos * 2^-23 (inv_freq's rounding plus the product's), which moves the output by that much
// relative to |x| (measured: about 0.1 of it). Allow 2x that plus 2e-6 for the rotation itself.
double tolerance(int max_pos) { return 2.0 * max_pos * std::ldexp(1.0, -23) + 2e-6; }

}  // namespace

TEST_CASE("rope matches the fp64 reference per sequence at absolute positions", "[ops][rope]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  double worst = 0, worst_ratio = 0;
  struct Geo {
    int heads, hd, rd;
    double base;
  };
  const std::vector<Geo> geos = {{1, 2, 2, 10000.0},
                                 {4, 16, 16, 10000.0},
                                 {3, 10, 6, 500.0},
                                 {2, 64, 32, 1e6},
                                 {5, 40, 40, 10000.0},  // half = 20: a vector tail per head
                                 {1, 8, 0, 10000.0}};
  for (const auto& g : geos) {
    INFO("heads=" << g.heads << " hd=" << g.hd << " rd=" << g.rd << " base=" << g.base);
    const std::vector<int> lengths = {0, 1, 9, 40, rng.integer(0, 30)};
    const int nseq = static_cast<int>(lengths.size());
    std::vector<int> pos0(nseq);
    for (auto& p : pos0) p = rng.integer(1, 2000);
    pos0[1] = 0;  // one sequence starts fresh
    const auto slot = test::shuffled_slots(rng, nseq, nseq);
    int nt = 0, max_pos = 1;
    for (int s = 0; s < nseq; ++s) {
      nt += lengths[s];
      max_pos = std::max(max_pos, pos0[s] + lengths[s]);
    }
    const int width = g.heads * g.hd;
    const auto x = rng.vec(std::size_t(nt) * width, -2, 2);
    std::vector<double> ref;
    for (int s = 0, off = 0; s < nseq; off += lengths[s], ++s) {
      const auto r = reference::rope(test::rows_of(x, off, lengths[s], width), lengths[s], g.heads,
                                     g.hd, g.rd, g.base, pos0[s]);
      ref.insert(ref.end(), r.begin(), r.end());
    }
    test::for_each_space([&]<class Space>() {
      INFO("backend " << Space::name());
      test::Batch<Space> batch(lengths, pos0, slot);
      const auto inv = rope_inv_freq<Space>(g.rd, g.base);
      auto dx = test::upload2<float, Space>(x, nt + 1, width, 3.0);
      rope(Space{}, dx, g.heads, g.hd, View1<const float, Space>(inv), g.rd, batch.seq);
      const auto got = test::download2(dx);
      const double e = test::rel_err(test::rows_of(got, 0, nt, width), ref);
      worst = std::max(worst, e);
      worst_ratio = std::max(worst_ratio, e / tolerance(max_pos));
      CHECK(e <= tolerance(max_pos));
      CHECK(test::rows_of(got, nt, 1, width) == std::vector<double>(width, 3.0));
      if (g.rd < g.hd) {  // dims past rd pass through untouched
        double moved = 0;
        for (int t = 0; t < nt; ++t)
          for (int h = 0; h < g.heads; ++h)
            for (int c = g.rd; c < g.hd; ++c) {
              const std::size_t i = std::size_t(t) * width + h * g.hd + c;
              moved = std::max(moved, std::fabs(got[i] - x[i]));
            }
        CHECK(moved == 0.0);
      }
    });
  }
  WARN("rope max rel err " << worst << " (" << worst_ratio << " of the position-aware tolerance)");
}

TEST_CASE("rope of one sequence in pieces equals one call", "[ops][rope]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  const int heads = 2, hd = 8, len = 30, p0 = rng.integer(0, 100);
  const auto x = rng.vec(std::size_t(len) * heads * hd);
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    const auto inv = rope_inv_freq<Space>(hd, 10000.0);
    auto whole = test::upload2<float, Space>(x, len, heads * hd);
    test::Batch<Space> b1({len}, {p0}, {0});
    rope(Space{}, whole, heads, hd, View1<const float, Space>(inv), hd, b1.seq);
    // the same tokens as 30 one-token sequences at their own positions, in one call
    std::vector<int> lengths(len, 1), pos0(len), slots(len);
    for (int t = 0; t < len; ++t) pos0[t] = p0 + t, slots[t] = t;
    test::Batch<Space> b2(lengths, pos0, slots);
    auto pieces = test::upload2<float, Space>(x, len, heads * hd);
    rope(Space{}, pieces, heads, hd, View1<const float, Space>(inv), hd, b2.seq);
    // element-wise, no reduction: the same angle and rotation per element on every space
    CHECK(test::download2(pieces) == test::download2(whole));
  });
}

TEST_CASE("rope rejects wrong extents", "[ops][rope][errors]") {
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    test::Batch<Space> batch({2}, {0}, {0});
    const auto inv = rope_inv_freq<Space>(8, 10000.0);
    auto x = test::upload2<float, Space>({}, 2, 15, 1.0);  // 2 heads of 8 need 16 columns
    CHECK_THROWS_AS(rope(Space{}, x, 2, 8, View1<const float, Space>(inv), 8, batch.seq),
                    ArgumentError);
    auto x16 = test::upload2<float, Space>({}, 2, 16, 1.0);
    CHECK_THROWS_AS(rope(Space{}, x16, 2, 8, View1<const float, Space>(inv), 7, batch.seq),
                    ArgumentError);  // odd rd
  });
}

TEST_CASE("rope_qk rotates queries and keys as two rope calls", "[ops][rope]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  const int hq = rng.integer(1, 6), hk = rng.integer(1, 3), hd = 16, rd = 12;
  const std::vector<int> lengths = {1, rng.integer(1, 20), 1};
  const std::vector<int> pos0 = {rng.integer(0, 900), rng.integer(0, 900), 0};
  int nt = 0, max_pos = 1;
  for (int s = 0; s < 3; ++s) nt += lengths[s], max_pos = std::max(max_pos, pos0[s] + lengths[s]);
  const auto q = rng.vec(std::size_t(nt) * hq * hd, -2, 2);
  const auto k = rng.vec(std::size_t(nt) * hk * hd, -2, 2);
  std::vector<double> ref_q, ref_k;
  for (int s = 0, off = 0; s < 3; off += lengths[s], ++s) {
    const auto rq = reference::rope(test::rows_of(q, off, lengths[s], hq * hd), lengths[s], hq, hd,
                                    rd, 10000.0, pos0[s]);
    const auto rk = reference::rope(test::rows_of(k, off, lengths[s], hk * hd), lengths[s], hk, hd,
                                    rd, 10000.0, pos0[s]);
    ref_q.insert(ref_q.end(), rq.begin(), rq.end());
    ref_k.insert(ref_k.end(), rk.begin(), rk.end());
  }
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    test::Batch<Space> batch(lengths, pos0, {2, 0, 1});
    const View1<const float, Space> inv = rope_inv_freq<Space>(rd, 10000.0);
    auto dq = test::upload2<float, Space>(q, nt, hq * hd);
    auto dk = test::upload2<float, Space>(k, nt, hk * hd);
    rope_qk(Space{}, dq, hq, dk, hk, hd, inv, rd, batch.seq);
    CHECK(test::rel_err(test::download2(dq), ref_q) <= tolerance(max_pos));
    CHECK(test::rel_err(test::download2(dk), ref_k) <= tolerance(max_pos));
    // the generic kernel over both tensors equals it over each alone (what GPUs run)
    auto gq = test::upload2<float, Space>(q, nt, hq * hd), gk = test::upload2<float, Space>(k, nt, hk * hd);
    detail::rope_generic<float>(Space{}, gq, hq, gk, hk, hd, inv, rd / 2, batch.seq);
    auto sq = test::upload2<float, Space>(q, nt, hq * hd), sk = test::upload2<float, Space>(k, nt, hk * hd);
    detail::rope_generic<float>(Space{}, sq, hq, View2<float, Space>(), 0, hd, inv, rd / 2, batch.seq);
    detail::rope_generic<float>(Space{}, sk, hk, View2<float, Space>(), 0, hd, inv, rd / 2, batch.seq);
    CHECK(test::download2(gq) == test::download2(sq));
    CHECK(test::download2(gk) == test::download2(sk));
    CHECK(test::rel_err(test::download2(gk), ref_k) <= tolerance(max_pos));
  });
}
