// short_conv (causal depthwise conv + SiLU, SPEC 2 step 2) over packed batches with carried
// state, on every backend against the fp64 reference run per sequence.
#include <utility>

#include "op_test_util.hpp"
#include "rodimus/ops/linear_short_conv.hpp"
#include "rodimus/ops/short_conv.hpp"
#include "rodimus/reference/linear.hpp"
#include "rodimus/reference/short_conv.hpp"

using namespace rodimus;
using test::TestRng;

namespace {
// K products + bias in fp32, then SiLU: a handful of roundings per element.
constexpr double kTol = 1e-5;
}  // namespace

TEST_CASE("short_conv matches the fp64 reference per sequence, with carried state",
          "[ops][short_conv]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  double worst = 0;
  for (int k : {1, 2, 4, 7}) {
    for (int e : {1, 13, 37, 64, 200}) {  // 37, 200: vector tails
      // sequences shorter than K-1 take part of their new state from the old one
      const std::vector<int> lengths = {0, 1, 2, 17, 5, rng.integer(0, 40)};
      const int nseq = static_cast<int>(lengths.size());
      const int slots = nseq + 2;  // two slots nobody touches
      const auto slot = test::shuffled_slots(rng, nseq, slots);
      std::vector<int> pos0(nseq);
      for (auto& p : pos0) p = rng.integer(1, 1000);
      INFO("K=" << k << " E=" << e);
      const auto w = rng.vec(std::size_t(e) * k);
      const auto b = rng.vec(e, -0.5, 0.5);
      const auto state0 = rng.vec(std::size_t(slots) * (k - 1) * e, -2, 2);
      int n = 0;
      for (int l : lengths) n += l;
      const auto x = rng.vec(std::size_t(n) * e, -2, 2);

      // fp64 reference, sequence by sequence, each from its slot's state
      std::vector<double> ref_y(std::size_t(n) * e), ref_state = state0;
      const std::size_t ss = std::size_t(k - 1) * e;  // state elements per slot
      for (int s = 0, off = 0; s < nseq; off += lengths[s], ++s) {
        const auto st = test::slice(state0, slot[s] * ss, ss);
        const auto r = reference::short_conv(test::rows_of(x, off, lengths[s], e), w, b, lengths[s],
                                             e, k, &st);
        std::copy(r.y.begin(), r.y.end(), ref_y.begin() + std::ptrdiff_t(off) * e);
        std::copy(r.state.begin(), r.state.end(), ref_state.begin() + std::ptrdiff_t(slot[s] * ss));
      }

      test::for_each_space([&]<class Space>() {
        INFO("backend " << Space::name());
        using CV = View2<const float, Space>;
        test::Batch<Space> batch(lengths, pos0, slot);
        const auto dx = test::upload2<float, Space>(x, n + 1, e, 9.0);
        const auto dw = test::upload2<float, Space>(w, e, k);
        const auto db = test::upload1<Space>(b);
        auto state = test::upload3<Space>(state0, slots, k - 1, e);
        auto xs = test::upload2<float, Space>({}, n + 1, e, 7.0);
        for (bool update : {false, true}) {
          INFO("update_state " << update);
          short_conv(Space{}, CV(dx), CV(dw), View1<const float, Space>(db), state, batch.seq, xs,
                     update);
          const auto got = test::download2(xs);
          const double err = test::rel_err(test::rows_of(got, 0, n, e), ref_y);
          worst = std::max(worst, err);
          CHECK(err <= kTol);
          CHECK(test::rows_of(got, n, 1, e) == std::vector<double>(e, 7.0));
          // the new state holds the last K-1 inputs exactly; untouched slots keep theirs
          CHECK(test::download3(state) == (update ? ref_state : state0));
        }
      });
    }
  }
  WARN("short_conv max rel err " << worst);
}

TEST_CASE("short_conv over a split sequence equals one call", "[ops][short_conv]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  const int k = 4, e = 24, len = 50;
  const auto x = rng.vec(std::size_t(len) * e);
  const auto w = rng.vec(std::size_t(e) * k);
  const auto b = rng.vec(e);
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    using CV = View2<const float, Space>;
    const auto dw = test::upload2<float, Space>(w, e, k);
    const auto db = test::upload1<Space>(b);
    auto one_state =
        test::upload3<Space>(std::vector<double>(std::size_t(k - 1) * e, 0.0), 1, k - 1, e);
    auto one_out = test::upload2<float, Space>({}, len, e);
    test::Batch<Space> whole({len}, {0}, {0});
    short_conv(Space{}, CV(test::upload2<float, Space>(x, len, e)), CV(dw),
               View1<const float, Space>(db), one_state, whole.seq, one_out);
    // prefix, then single tokens, then the rest
    auto st = test::upload3<Space>(std::vector<double>(std::size_t(k - 1) * e, 0.0), 1, k - 1, e);
    std::vector<double> split;
    const int cut = rng.integer(1, len - 5);
    std::vector<int> pieces = {cut, 1, 1, 2, len - cut - 4};
    for (int p = 0, off = 0; p < int(pieces.size()); off += pieces[p], ++p) {
      test::Batch<Space> bt({pieces[p]}, {off}, {0});
      auto out = test::upload2<float, Space>({}, pieces[p], e);
      short_conv(Space{},
                 CV(test::upload2<float, Space>(test::rows_of(x, off, pieces[p], e), pieces[p], e)),
                 CV(dw), View1<const float, Space>(db), st, bt.seq, out);
      const auto o = test::download2(out);
      split.insert(split.end(), o.begin(), o.end());
    }
    INFO("cut " << cut);
    // the same K-term sum per element either way: bit-identical on host spaces, within
    // test::split_tol (1e-6) on GPU spaces, where a kernel may reduce in parallel
    CHECK(test::rel_err(split, test::download2(one_out)) <= test::split_tol<Space>);
    // the state is a copy of the last K-1 inputs: bit-identical everywhere
    CHECK(test::download3(st) == test::download3(one_state));
  });
}

TEST_CASE("short_conv rejects wrong extents", "[ops][short_conv][errors]") {
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    using CV = View2<const float, Space>;
    test::Batch<Space> batch({2}, {0}, {0});
    auto x = test::upload2<float, Space>({}, 2, 8, 1.0);
    auto w = test::upload2<float, Space>({}, 8, 4, 1.0);
    auto b = test::upload1<Space>(std::vector<double>(8, 0.0));
    auto bad_state =
        test::upload3<Space>(std::vector<double>(1 * 2 * 8, 0.0), 1, 2, 8);  // K-1 = 3 rows needed
    auto xs = test::upload2<float, Space>({}, 2, 8);
    CHECK_THROWS_AS(
        short_conv(Space{}, CV(x), CV(w), View1<const float, Space>(b), bad_state, batch.seq, xs),
        ArgumentError);
    auto state = test::upload3<Space>(std::vector<double>(1 * 3 * 8, 0.0), 1, 3, 8);
    auto x7 = test::upload2<float, Space>({}, 2, 7, 1.0);
    CHECK_THROWS_AS(
        short_conv(Space{}, CV(x7), CV(w), View1<const float, Space>(b), state, batch.seq, xs),
        ArgumentError);
    auto x_short = test::upload2<float, Space>({}, 1, 8, 1.0);  // batch has 2 tokens
    CHECK_THROWS_AS(
        short_conv(Space{}, CV(x_short), CV(w), View1<const float, Space>(b), state, batch.seq, xs),
        ArgumentError);
  });
}

namespace {
template <int K>
void check_blocked(TestRng& rng) {
  // long sequences (blocks inside one sequence), short ones (several sequences in a block, one
  // shorter than K-1 reaching into its state), block boundaries at random places
  const std::vector<int> lengths = {rng.integer(20, 70), 1,  2,
                                    rng.integer(0, 5),   33, rng.integer(1, 50)};
  const int nseq = static_cast<int>(lengths.size()), slots = nseq + 1;
  const int e = rng.integer(1, 70);
  INFO("K=" << K << " E=" << e);
  const auto slot = test::shuffled_slots(rng, nseq, slots);
  std::vector<int> pos0(nseq);
  for (auto& p : pos0) p = rng.integer(0, 100);
  int n = 0;
  for (int l : lengths) n += l;
  const auto x = rng.vec(std::size_t(n) * e, -2, 2);
  const auto w = rng.vec(std::size_t(e) * K);
  const auto b = rng.vec(e);
  const auto state0 = rng.vec(std::size_t(slots) * (K - 1) * e, -2, 2);
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    using CV = View2<const float, Space>;
    test::Batch<Space> batch(lengths, pos0, slot);
    const auto dx = test::upload2<float, Space>(x, n, e);
    const auto dw = test::upload2<float, Space>(w, e, K);
    const auto db = test::upload1<Space>(b);
    const View3<const float, Space> state = test::upload3<Space>(state0, slots, K - 1, e);
    auto blocked = test::upload2<float, Space>({}, n, e, 7.0);
    auto generic = test::upload2<float, Space>({}, n, e, 9.0);
    detail::short_conv_blocked<K, Space>(Space{}, CV(dx), CV(dw), View1<const float, Space>(db),
                                         state, batch.seq, blocked);
    detail::short_conv_generic<Space>(Space{}, CV(dx), CV(dw), View1<const float, Space>(db), state,
                                      batch.seq, generic);
    CHECK(test::download2(blocked) == test::download2(generic));
  });
}
}  // namespace

TEST_CASE("short_conv's token-blocked kernel equals the generic one", "[ops][short_conv]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  for (int rep = 0; rep < 3; ++rep) {
    check_blocked<2>(rng);
    check_blocked<3>(rng);
    check_blocked<4>(rng);
  }
}

TEST_CASE("short_conv's decode-step kernel equals the reference and shifts the state",
          "[ops][short_conv]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  for (int k : {2, 3, 4, 7}) {
    const int nseq = rng.integer(1, 6), slots = nseq + 2, e = rng.integer(1, 90);
    INFO("K=" << k << " E=" << e << " sequences " << nseq);
    const std::vector<int> lengths(nseq, 1);  // one token each: a decode step
    const auto slot = test::shuffled_slots(rng, nseq, slots);
    std::vector<int> pos0(nseq);
    for (auto& p : pos0) p = rng.integer(k, 500);
    const auto w = rng.vec(std::size_t(e) * k);
    const auto b = rng.vec(e, -0.5, 0.5);
    const auto state0 = rng.vec(std::size_t(slots) * (k - 1) * e, -2, 2);
    const auto x = rng.vec(std::size_t(nseq) * e, -2, 2);
    std::vector<double> ref_y(std::size_t(nseq) * e), ref_state = state0;
    const std::size_t ss = std::size_t(k - 1) * e;
    for (int s = 0; s < nseq; ++s) {
      const auto st = test::slice(state0, slot[s] * ss, ss);
      const auto r = reference::short_conv(test::rows_of(x, s, 1, e), w, b, 1, e, k, &st);
      std::copy(r.y.begin(), r.y.end(), ref_y.begin() + std::ptrdiff_t(s) * e);
      std::copy(r.state.begin(), r.state.end(), ref_state.begin() + std::ptrdiff_t(slot[s] * ss));
    }
    test::for_each_space([&]<class Space>() {
      INFO("backend " << Space::name());
      using CV = View2<const float, Space>;
      test::Batch<Space> batch(lengths, pos0, slot);
      const auto dx = test::upload2<float, Space>(x, nseq, e);
      const auto dw = test::upload2<float, Space>(w, e, k);
      const auto db = test::upload1<Space>(b);
      // the kernel itself (host spaces take their own kernel through short_conv), then the op
      for (bool direct : {true, false}) {
        INFO("direct " << direct);
        auto state = test::upload3<Space>(state0, slots, k - 1, e);
        auto xs = test::upload2<float, Space>({}, nseq, e, 7.0);
        if (direct)
          detail::short_conv_step_generic<Space>(
              Space{}, CV(dx), CV(dw), View1<const float, Space>(db), state, batch.seq, xs);
        else
          short_conv(Space{}, CV(dx), CV(dw), View1<const float, Space>(db), state, batch.seq, xs);
        CHECK(test::rel_err(test::download2(xs), ref_y) <= kTol);
        CHECK(test::download3(state) == ref_state);
      }
    });
  }
}

namespace {
// linear_short_conv against the fp64 projections and conv, per sequence from each slot's state:
// lengths give the batch (all ones: a decode step, the CUDA GEMV's conv epilogue when at most
// 8 sequences with bf16 / fp16 weights); d: the input width (a multiple of 8 for the GEMV).
template <class W>
void check_linear_short_conv(TestRng& rng, const std::vector<int>& lengths, int d, int e, int k,
                             bool bias) {
  RODIMUS_SEED_INFO(rng);
  const int nseq = static_cast<int>(lengths.size()), slots = nseq + 2, g_out = e + 3;
  int n = 0;
  for (int l : lengths) n += l;
  INFO("weights " << dtype_traits<W>::name << " N=" << n << " sequences " << nseq << " D=" << d
                  << " E=" << e << " K=" << k << " bias " << bias);
  const auto slot = test::shuffled_slots(rng, nseq, slots);
  std::vector<int> pos0(nseq);
  for (auto& p : pos0) p = rng.integer(k, 500);
  // h = RMSNorm(raw) * w: the op also runs on the raw rows with the norm pending (NormedRows)
  const test::PendingNorm pn(rng, n, d);
  const auto& h = pn.normed;
  const auto wx = test::dequantised<W>(rng.vec(std::size_t(e) * d));
  const auto wg = test::dequantised<W>(rng.vec(std::size_t(g_out) * d));
  const auto bx = rng.vec(e, -0.5, 0.5);
  const auto cw = rng.vec(std::size_t(e) * k);
  const auto cb = rng.vec(e, -0.5, 0.5);
  const auto state0 = rng.vec(std::size_t(slots) * (k - 1) * e, -2, 2);
  const auto ref_x = reference::linear(h, wx, n, d, e, bias ? &bx : nullptr);
  const auto ref_g = reference::linear(h, wg, n, d, g_out);
  std::vector<double> ref_xs(std::size_t(n) * e), ref_state = state0;
  const std::size_t ss = std::size_t(k - 1) * e;
  for (int s = 0, off = 0; s < nseq; off += lengths[s], ++s) {
    const auto st = test::slice(state0, slot[s] * ss, ss);
    const auto r = reference::short_conv(test::rows_of(ref_x, off, lengths[s], e), cw, cb,
                                         lengths[s], e, k, &st);
    std::copy(r.y.begin(), r.y.end(), ref_xs.begin() + std::ptrdiff_t(off) * e);
    std::copy(r.state.begin(), r.state.end(), ref_state.begin() + std::ptrdiff_t(slot[s] * ss));
  }
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    using CV = View2<const float, Space>;
    // more tokens than the GEMV serves go to cuBLAS with split activations (see test_linear)
    const double tol = is_cuda_space_v<Space> && !std::is_same_v<W, float> ? 3e-5 : kTol;
    test::Batch<Space> batch(lengths, pos0, slot);
    LinearWeights<W, Space> lx, lg;
    lx.w = test::upload2<W, Space>(wx, e, d);
    if (bias) lx.b = test::upload1<Space>(bx);
    lg.w = test::upload2<W, Space>(wg, g_out, d);
    const auto dh = test::upload2<float, Space>(h, n + 1, d, 3.0);
    const auto dcw = test::upload2<float, Space>(cw, e, k);
    const auto dcb = test::upload1<Space>(cb);
    const auto pending = pn.pending<Space>(n + 1, d);
    test::for_each_gemv_epilogue_mode<Space>([&](bool epilogues) {
      for (const bool pend : {false, true}) {
        INFO("GEMV epilogues " << epilogues << ", norm pending " << pend);
        auto x = test::upload2<float, Space>({}, n + 1, e, 5.0);
        auto g = test::upload2<float, Space>({}, n + 1, g_out, 5.0);
        auto xs = test::upload2<float, Space>({}, n + 1, e, 7.0);
        auto state = test::upload3<Space>(state0, slots, k - 1, e);
        linear_short_conv(Space{}, pend ? pending : NormedRows<Space>(CV(dh)),
                          std::array{&std::as_const(lx), &std::as_const(lg)}, std::array{x, g},
                          CV(dcw), View1<const float, Space>(dcb), state, batch.seq, xs);
        const auto gx = test::download2(x), gg = test::download2(g), gxs = test::download2(xs);
        CHECK(test::rel_err(test::rows_of(gx, 0, n, e), ref_x) <= tol);
        CHECK(test::rel_err(test::rows_of(gg, 0, n, g_out), ref_g) <= tol);
        CHECK(test::rel_err(test::rows_of(gxs, 0, n, e), ref_xs) <= tol);
        // the state now holds the projection's last inputs (fp32 values of ref_x); other slots as
        // they were
        CHECK(test::rel_err(test::download3(state), ref_state) <= tol);
        CHECK(test::rows_of(gx, n, 1, e) == std::vector<double>(e, 5.0));
        CHECK(test::rows_of(gg, n, 1, g_out) == std::vector<double>(g_out, 5.0));
        CHECK(test::rows_of(gxs, n, 1, e) == std::vector<double>(e, 7.0));
      }
    });
  });
}
}  // namespace

TEST_CASE("linear_short_conv equals the projections then the conv, decode steps and prefill",
          "[ops][short_conv][linear]") {
  TestRng rng;
  // decode steps of 1..8 sequences (the GPU's GEMV with the conv in its epilogue)
  check_linear_short_conv<bf16>(rng, {1}, 64, 48, 4, false);
  check_linear_short_conv<bf16>(rng, std::vector<int>(rng.integer(2, 8), 1), 48, rng.integer(1, 90),
                                rng.integer(2, 5), true);
  check_linear_short_conv<fp16>(rng, {1, 1, 1}, 56, 33, 3, true);
  check_linear_short_conv<bf16>(rng, {1, 1}, 24, 20, 4, false);    // short rows
  check_linear_short_conv<bf16>(rng, {1, 1, 1}, 32, 24, 5, true);  // wider than the GEMV's conv
  // inputs wider than 256: the GPU's GEMV takes a pending norm at 1 to 2 tokens
  check_linear_short_conv<bf16>(rng, {1}, 512, 96, 4, false);
  check_linear_short_conv<bf16>(rng, {1, 1}, 264, 40, 4, true);
  check_linear_short_conv<bf16>(rng, {1, 1, 1}, 320, 40, 3, true);
  // no state (K = 1), fp32 weights, more sequences than the GEMV serves, a prefill, a width
  // the GEMV does not take: the two ops in turn
  check_linear_short_conv<bf16>(rng, {1, 1}, 32, 17, 1, true);
  check_linear_short_conv<float>(rng, {1, 1, 1}, 40, 24, 4, true);
  check_linear_short_conv<bf16>(rng, std::vector<int>(rng.integer(9, 20), 1), 32, 40, 4, false);
  check_linear_short_conv<bf16>(rng, {3, 0, 5, 1}, 48, 29, 4, true);
  check_linear_short_conv<bf16>(rng, {1, 1}, 36, 16, 4, false);
}

TEST_CASE("linear_short_conv rejects wrong extents", "[ops][short_conv][linear][errors]") {
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    using CV = View2<const float, Space>;
    test::Batch<Space> batch({1, 1}, {4, 9}, {0, 1});
    LinearWeights<bf16, Space> lx, lg;
    lx.w = test::upload2<bf16, Space>({}, 16, 8, 0.5);
    lg.w = test::upload2<bf16, Space>({}, 16, 8, 0.5);
    const auto h = test::upload2<float, Space>({}, 2, 8, 1.0);
    auto x = test::upload2<float, Space>({}, 2, 16, 0.0);
    auto g = test::upload2<float, Space>({}, 2, 16, 0.0);
    auto xs = test::upload2<float, Space>({}, 2, 16, 0.0);
    const auto cw = test::upload2<float, Space>({}, 16, 4, 0.1);
    const auto cw_bad = test::upload2<float, Space>({}, 15, 4, 0.1);  // E != out of the first
    const auto cb = test::upload1<Space>(std::vector<double>(16, 0.0));
    auto state = test::upload3<Space>(std::vector<double>(2 * 3 * 16, 0.0), 2, 3, 16);
    auto state_bad = test::upload3<Space>(std::vector<double>(2 * 2 * 16, 0.0), 2, 2, 16);
    const auto lws = std::array{&std::as_const(lx), &std::as_const(lg)};
    using C1 = View1<const float, Space>;
    CHECK_THROWS_AS(linear_short_conv(Space{}, CV(h), lws, std::array{x, g}, CV(cw_bad), C1(cb),
                                      state, batch.seq, xs),
                    ArgumentError);
    CHECK_THROWS_AS(linear_short_conv(Space{}, CV(h), lws, std::array{x, g}, CV(cw), C1(cb),
                                      state_bad, batch.seq, xs),
                    ArgumentError);
    auto g_short = test::upload2<float, Space>({}, 1, 16, 0.0);  // fewer rows than tokens
    CHECK_THROWS_AS(linear_short_conv(Space{}, CV(h), lws, std::array{x, g_short}, CV(cw), C1(cb),
                                      state, batch.seq, xs),
                    ArgumentError);
  });
}
