// rope (SPEC 3 step 2, non-interleaved "rotate half") over packed batches at nonzero absolute
// positions, on every backend against the fp64 reference run per sequence.
#include <array>
#include <utility>

#include "op_test_util.hpp"
#include "rodimus/ops/linear_rope.hpp"
#include "rodimus/ops/rope.hpp"
#include "rodimus/reference/linear.hpp"
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
  const std::vector<Geo> geos = {
      {1, 2, 2, 10000.0}, {4, 16, 16, 10000.0}, {3, 10, 6, 500.0},
      {2, 64, 32, 1e6},   {5, 40, 40, 10000.0},  // half = 20: a vector tail per head
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
    auto gq = test::upload2<float, Space>(q, nt, hq * hd),
         gk = test::upload2<float, Space>(k, nt, hk * hd);
    detail::rope_generic<float>(Space{}, gq, hq, gk, hk, hd, inv, rd / 2, batch.seq);
    auto sq = test::upload2<float, Space>(q, nt, hq * hd),
         sk = test::upload2<float, Space>(k, nt, hk * hd);
    detail::rope_generic<float>(Space{}, sq, hq, View2<float, Space>(), 0, hd, inv, rd / 2,
                                batch.seq);
    detail::rope_generic<float>(Space{}, sk, hk, View2<float, Space>(), 0, hd, inv, rd / 2,
                                batch.seq);
    CHECK(test::download2(gq) == test::download2(sq));
    CHECK(test::download2(gk) == test::download2(sk));
    CHECK(test::rel_err(test::download2(gk), ref_k) <= tolerance(max_pos));
  });
}

namespace {
struct QkvGeo {
  int hq, hk, hv, hd, rd;
};

// linear_rope of three projections (q and k rotated, v not) against the fp64 projections and
// rope per sequence. Calls of at most 8 tokens with bf16 / fp16 weights take the CUDA GEMV with
// the rotation in its epilogue; d (the input width) a multiple of 8 for it.
template <class W>
void check_linear_rope(TestRng& rng, const std::vector<int>& lengths, int d, const QkvGeo& g,
                       bool bias) {
  RODIMUS_SEED_INFO(rng);
  const int nseq = static_cast<int>(lengths.size());
  int n = 0, max_pos = 1;
  std::vector<int> pos0(nseq);
  for (auto& p : pos0) p = rng.integer(0, 3000);
  for (int s = 0; s < nseq; ++s) {
    n += lengths[s];
    max_pos = std::max(max_pos, pos0[s] + lengths[s]);
  }
  const double base = 10000.0;
  INFO("weights " << dtype_traits<W>::name << " N=" << n << " D=" << d << " heads " << g.hq << "/"
                  << g.hk << "/" << g.hv << " hd=" << g.hd << " rd=" << g.rd << " bias " << bias);
  const std::array<int, 3> outs = {g.hq * g.hd, g.hk * g.hd, g.hv * g.hd};
  // h = RMSNorm(raw) * w: the op also runs on the raw rows with the norm pending (NormedRows)
  const test::PendingNorm pn(rng, n, d);
  const auto& h = pn.normed;
  std::array<std::vector<double>, 3> w, b, ref;
  for (int i = 0; i < 3; ++i) {
    w[i] = test::dequantised<W>(rng.vec(std::size_t(outs[i]) * d));
    b[i] = rng.vec(outs[i], -0.5, 0.5);
    const auto y = reference::linear(h, w[i], n, d, outs[i], bias ? &b[i] : nullptr);
    if (i == 2) {
      ref[i] = y;
      continue;
    }
    for (int s = 0, off = 0; s < nseq; off += lengths[s], ++s) {
      const auto r = reference::rope(test::rows_of(y, off, lengths[s], outs[i]), lengths[s],
                                     i == 0 ? g.hq : g.hk, g.hd, g.rd, base, pos0[s]);
      ref[i].insert(ref[i].end(), r.begin(), r.end());
    }
  }
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    // the projections' error (cuBLAS's split activations past 8 tokens) plus rope's
    const double tol =
        tolerance(max_pos) + (is_cuda_space_v<Space> && !std::is_same_v<W, float> ? 3e-5 : 1e-5);
    test::Batch<Space> batch(lengths, pos0, test::shuffled_slots(rng, nseq, nseq));
    std::array<LinearWeights<W, Space>, 3> lw;
    for (int i = 0; i < 3; ++i) {
      lw[i].w = test::upload2<W, Space>(w[i], outs[i], d);
      if (bias) lw[i].b = test::upload1<Space>(b[i]);
    }
    const auto inv = rope_inv_freq<Space>(g.rd, base);
    const auto dh = test::upload2<float, Space>(h, n + 1, d, 3.0);
    const auto pending = pn.pending<Space>(n + 1, d);
    test::for_each_gemv_epilogue_mode<Space>([&](bool epilogues) {
      for (const bool pend : {false, true}) {
        INFO("GEMV epilogues " << epilogues << ", norm pending " << pend);
        std::array<View2<float, Space>, 3> y;
        for (int i = 0; i < 3; ++i) y[i] = test::upload2<float, Space>({}, n + 1, outs[i], 5.0);
        linear_rope(Space{}, pend ? pending : NormedRows<Space>(View2<const float, Space>(dh)),
                    std::array{&std::as_const(lw[0]), &std::as_const(lw[1]), &std::as_const(lw[2])},
                    y, std::array{true, true, false}, g.hd, View1<const float, Space>(inv), g.rd,
                    batch.seq);
        for (int i = 0; i < 3; ++i) {
          INFO("projection " << i);
          const auto got = test::download2(y[i]);
          CHECK(test::rel_err(test::rows_of(got, 0, n, outs[i]), ref[i]) <= tol);
          CHECK(test::rows_of(got, n, 1, outs[i]) == std::vector<double>(outs[i], 5.0));
        }
      }
    });
  });
}
}  // namespace

TEST_CASE("linear_rope equals the projections then rope of q and k", "[ops][rope][linear]") {
  TestRng rng;
  // the Rodimus+ shape in small: one shared key head (the GPU's GEMV rotates in its epilogue)
  check_linear_rope<bf16>(rng, {1}, 64, {4, 1, 4, 32, 32}, false);
  check_linear_rope<bf16>(rng, std::vector<int>(rng.integer(2, 8), 1), 48, {2, 1, 2, 16, 16}, true);
  // partial rotation, half = 1, several heads of keys, a short prompt of several sequences
  check_linear_rope<bf16>(rng, {1, 1, 1}, 32, {3, 3, 1, 16, 8}, true);
  check_linear_rope<fp16>(rng, {1, 1}, 40, {2, 2, 2, 8, 2}, false);
  check_linear_rope<bf16>(rng, {3, 4, 1}, 56, {2, 1, 1, 24, 24}, true);
  check_linear_rope<bf16>(rng, {2}, 24, {1, 1, 1, 8, 0}, false);  // no rotation
  // fp32 weights, more tokens than the GEMV serves, an input width it does not take
  check_linear_rope<float>(rng, {1, 1}, 32, {2, 1, 2, 16, 16}, true);
  check_linear_rope<bf16>(rng, {rng.integer(5, 20), 7}, 32, {2, 1, 2, 16, 12}, true);
  check_linear_rope<bf16>(rng, {1, 1}, 20, {2, 1, 2, 16, 16}, false);
  // inputs wider than 256: the GPU's GEMV takes a pending norm at 1 to 2 tokens
  check_linear_rope<bf16>(rng, {1}, 512, {4, 1, 4, 32, 32}, false);
  check_linear_rope<bf16>(rng, {1, 1}, 264, {2, 1, 2, 16, 16}, true);
  check_linear_rope<bf16>(rng, {1, 1, 1}, 320, {2, 1, 2, 16, 16}, true);
}

TEST_CASE("linear_rope rejects wrong extents", "[ops][rope][linear][errors]") {
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    test::Batch<Space> batch({1, 1}, {4, 9}, {0, 1});
    LinearWeights<bf16, Space> lq, lk;
    lq.w = test::upload2<bf16, Space>({}, 16, 8, 0.5);
    lk.w = test::upload2<bf16, Space>({}, 12, 8, 0.5);  // 12 outputs: not whole heads of 8
    const auto h = test::upload2<float, Space>({}, 2, 8, 1.0);
    auto q = test::upload2<float, Space>({}, 2, 16, 0.0);
    auto k = test::upload2<float, Space>({}, 2, 12, 0.0);
    const auto inv = rope_inv_freq<Space>(8, 10000.0);
    const auto inv_short = rope_inv_freq<Space>(4, 10000.0);
    const auto lws = std::array{&std::as_const(lq), &std::as_const(lk)};
    using C1 = View1<const float, Space>;
    using CV = View2<const float, Space>;
    CHECK_THROWS_AS(linear_rope(Space{}, CV(h), lws, std::array{q, k}, std::array{true, true}, 8,
                                C1(inv), 8, batch.seq),
                    ArgumentError);
    CHECK_THROWS_AS(linear_rope(Space{}, CV(h), lws, std::array{q, k}, std::array{true, false}, 8,
                                C1(inv_short), 8, batch.seq),
                    ArgumentError);
    CHECK_THROWS_AS(linear_rope(Space{}, CV(h), lws, std::array{q, k}, std::array{true, false}, 8,
                                C1(inv), 10, batch.seq),  // rotary_dim past head_dim
                    ArgumentError);
    CHECK_NOTHROW(linear_rope(Space{}, CV(h), lws, std::array{q, k}, std::array{true, false}, 8,
                              C1(inv), 8, batch.seq));
  });
}
