// sliding_window_attention (SPEC 3 steps 3-4): windowed and unbounded causal softmax attention
// with shared key/value heads and a rolling K/V cache, over packed batches continuing earlier
// context, on every backend against the fp64 reference over the whole sequence.
#include "op_test_util.hpp"
#include "rodimus/ops/sliding_window_attention.hpp"
#include "rodimus/reference/sliding_window_attention.hpp"

using namespace rodimus;
using test::TestRng;

namespace {

// hd-term dot products, exp of scores of size O(1), a weighted mean of values in [-1, 1]:
// a few fp32 roundings per term, relative to the output's scale.
constexpr double kTol = 1e-5;
/// On Kokkos::Cuda, sequences of >= 64 tokens with one shared key head run on the bf16 tensor
/// cores with every operand split into two bf16 halves (~16 significant bits, like the scan):
/// their outputs agree with fp64 to a few 1e-5, and with the fp32 split-key path likewise.
template <class Space>
constexpr double attn_tol = is_cuda_space_v<Space> ? 5e-5 : kTol;
template <class Space>
constexpr double split_path_tol = is_cuda_space_v<Space> ? 5e-5 : test::split_tol<Space>;

/// One sequence's whole history: positions 0 .. pos0 + len - 1; the call sees the last len.
struct Seq {
  int pos0 = 0, len = 0, slot = 0;
  std::vector<double> q, k, v;  // [pos0 + len, H*hd], [.., Hk*hd], [.., Hv*hd]
};

struct AttnCase {
  AttentionShape shape;
  int cache_rows = 0, slots = 0;
  std::vector<Seq> seqs;
  std::vector<double> k_cache0, v_cache0;  // [S, Wc, Hk*hd], [S, Wc, Hv*hd]
  int kd() const { return shape.heads_k * shape.head_dim; }
  int vd() const { return shape.heads_v * shape.head_dim; }
  int qd() const { return shape.heads * shape.head_dim; }
};

AttentionShape make_shape(int heads, int hk, int hv, int hd, int window_back) {
  AttentionShape s;
  s.heads = heads;
  s.heads_k = hk;
  s.heads_v = hv;
  s.head_dim = hd;
  s.window_back = window_back;
  s.scale = static_cast<float>(1.0 / std::sqrt(double(hd)));
  return s;
}

/// Random sequences; each slot's cache holds garbage except the rows of the keys/values its
/// sequence's earlier positions left there (row = position % Wc), as the op's contract says.
AttnCase make_case(TestRng& rng, const AttentionShape& shape, int cache_rows,
                   const std::vector<int>& lengths, const std::vector<int>& pos0) {
  AttnCase c;
  c.shape = shape;
  c.cache_rows = cache_rows;
  c.slots = static_cast<int>(lengths.size()) + 1;
  const auto slots = test::shuffled_slots(rng, static_cast<int>(lengths.size()), c.slots);
  c.k_cache0 = rng.vec(std::size_t(c.slots) * cache_rows * c.kd(), -50, 50);  // garbage
  c.v_cache0 = rng.vec(std::size_t(c.slots) * cache_rows * c.vd(), -50, 50);
  for (std::size_t i = 0; i < lengths.size(); ++i) {
    Seq s;
    s.pos0 = pos0[i];
    s.len = lengths[i];
    s.slot = slots[i];
    const int total = s.pos0 + s.len;
    s.q = rng.vec(std::size_t(total) * c.qd());
    s.k = rng.vec(std::size_t(total) * c.kd());
    s.v = rng.vec(std::size_t(total) * c.vd());
    for (int j = std::max(0, s.pos0 - cache_rows); j < s.pos0; ++j) {
      const int r = j % cache_rows;
      std::copy_n(s.k.begin() + std::ptrdiff_t(j) * c.kd(), c.kd(),
                  c.k_cache0.begin() + (std::ptrdiff_t(s.slot) * cache_rows + r) * c.kd());
      std::copy_n(s.v.begin() + std::ptrdiff_t(j) * c.vd(), c.vd(),
                  c.v_cache0.begin() + (std::ptrdiff_t(s.slot) * cache_rows + r) * c.vd());
    }
    c.seqs.push_back(std::move(s));
  }
  return c;
}

/// fp64 outputs of the call's tokens, packed like the call: [N, H*hd].
std::vector<double> reference_out(const AttnCase& c) {
  std::vector<double> out;
  const auto& sh = c.shape;
  for (const auto& s : c.seqs) {
    const int total = s.pos0 + s.len;
    const auto o =
        reference::sliding_window_attention(s.q, s.k, s.v, total, sh.heads, sh.heads_k, sh.heads_v,
                                            sh.head_dim, sh.window_back, double(sh.scale));
    const auto r = test::rows_of(o, s.pos0, s.len, c.qd());
    out.insert(out.end(), r.begin(), r.end());
  }
  return out;
}

struct AttnResult {
  std::vector<double> out, k_cache, v_cache;
};

/// The op on the call's tokens of every sequence, starting from the case's caches (or `caches`).
template <class Space>
AttnResult run_attn(const AttnCase& c, const std::vector<double>* k_cache = nullptr,
                    const std::vector<double>* v_cache = nullptr) {
  using CV = View2<const float, Space>;
  std::vector<int> lengths, pos0, slots;
  std::vector<double> q, k, v;
  for (const auto& s : c.seqs) {
    lengths.push_back(s.len);
    pos0.push_back(s.pos0);
    slots.push_back(s.slot);
    auto ins = [&](std::vector<double>& d, const std::vector<double>& src, int cols) {
      const auto r = test::rows_of(src, s.pos0, s.len, cols);
      d.insert(d.end(), r.begin(), r.end());
    };
    ins(q, s.q, c.qd());
    ins(k, s.k, c.kd());
    ins(v, s.v, c.vd());
  }
  test::Batch<Space> batch(lengths, pos0, slots);
  const int nt = batch.tokens();
  auto dq = test::upload2<float, Space>(q, nt + 1, c.qd(), 1.0);
  auto dk = test::upload2<float, Space>(k, nt + 1, c.kd(), 1.0);
  auto dv = test::upload2<float, Space>(v, nt + 1, c.vd(), 1.0);
  auto kc = test::upload3<Space>(k_cache ? *k_cache : c.k_cache0, c.slots, c.cache_rows, c.kd());
  auto vc = test::upload3<Space>(v_cache ? *v_cache : c.v_cache0, c.slots, c.cache_rows, c.vd());
  auto out = test::upload2<float, Space>({}, nt + 1, c.qd(), 7.0);
  sliding_window_attention(Space{}, CV(dq), CV(dk), CV(dv), kc, vc, batch.seq, out, c.shape);
  AttnResult r;
  const auto all = test::download2(out);
  r.out = test::rows_of(all, 0, nt, c.qd());
  CHECK(test::rows_of(all, nt, 1, c.qd()) == std::vector<double>(c.qd(), 7.0));
  r.k_cache = test::download3(kc);
  r.v_cache = test::download3(vc);
  return r;
}

/// After a call, the cache of each sequence's slot holds the keys/values of its last Wc
/// positions at row position % Wc, and every other row and slot is as before.
void check_caches(const AttnCase& c, const AttnResult& r) {
  auto expect_k = c.k_cache0, expect_v = c.v_cache0;
  for (const auto& s : c.seqs) {
    const int total = s.pos0 + s.len;
    for (int j = std::max(0, total - c.cache_rows); j < total; ++j) {
      const int row = j % c.cache_rows;
      std::copy_n(s.k.begin() + std::ptrdiff_t(j) * c.kd(), c.kd(),
                  expect_k.begin() + (std::ptrdiff_t(s.slot) * c.cache_rows + row) * c.kd());
      std::copy_n(s.v.begin() + std::ptrdiff_t(j) * c.vd(), c.vd(),
                  expect_v.begin() + (std::ptrdiff_t(s.slot) * c.cache_rows + row) * c.vd());
    }
  }
  CHECK(r.k_cache == expect_k);
  CHECK(r.v_cache == expect_v);
}

std::string describe(const AttentionShape& s, int wc) {
  return "H=" + std::to_string(s.heads) + " Hk=" + std::to_string(s.heads_k) +
         " Hv=" + std::to_string(s.heads_v) + " hd=" + std::to_string(s.head_dim) +
         " window_back=" + std::to_string(s.window_back) + " cache rows=" + std::to_string(wc);
}

}  // namespace

TEST_CASE("sliding_window_attention matches the fp64 reference over a packed batch with context",
          "[ops][sliding_window_attention]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  double worst = 0;
  // lengths include an empty and a one-token sequence; pos0 = tokens already in each cache
  const std::vector<int> lengths = {0, 1, 17, 40, 5, 3};
  const std::vector<int> pos0 = {3, 0, 25, 7, 100, rng.integer(1, 60)};
  int longest = 0;
  for (std::size_t i = 0; i < lengths.size(); ++i)
    longest = std::max(longest, lengths[i] + pos0[i]);
  struct Geo {
    int heads, hk, hv, hd, wb, wc;
  };
  const std::vector<Geo> geos = {
      {4, 1, 4, 16, 5, 5},         // window_back < T, shared key, Hv = H, cache = window
      {4, 1, 2, 8, 6, 11},         // Hv = 2, cache larger than the window
      {2, 2, 2, 12, 12, 12},       // no sharing
      {4, 1, 4, 16, -1, longest},  // unbounded, cache = capacity
      {4, 1, 2, 6, -1, longest + 9}, {3, 1, 3, 5, 0, 1},  // window of the token itself
      // head sizes of the host kernel's vector blocks (64-column and 16-column value blocks,
      // scalar tails); windows across several key tiles of 64 and the cache
      {4, 1, 4, 128, 70, 70}, {2, 1, 2, 64, -1, longest}, {3, 1, 1, 80, 33, 40},
      {2, 2, 2, 20, 90, 90},
  };
  for (const auto& g : geos) {
    const auto shape = make_shape(g.heads, g.hk, g.hv, g.hd, g.wb);
    INFO(describe(shape, g.wc));
    const auto c = make_case(rng, shape, g.wc, lengths, pos0);
    const auto ref = reference_out(c);
    test::for_each_space([&]<class Space>() {
      INFO("backend " << Space::name());
      const auto r = run_attn<Space>(c);
      const double e = test::rel_err(r.out, ref);
      worst = std::max(worst, e);
      CHECK(e <= attn_tol<Space>);
      check_caches(c, r);
    });
  }
  WARN("sliding_window_attention max rel err " << worst);
}

TEST_CASE("sliding_window_attention of a decode step matches the fp64 reference",
          "[ops][sliding_window_attention]") {
  // one token per sequence: the host's decode kernel (groups of up to 16 heads over chunks of
  // 128 keys, one shared key head) and the GPU's decode kernel (splits of 32 keys merged in
  // the kernel, the caches written by it); positions past the cache (its rows wrap), windows
  // over several key chunks, more than 16 heads (two groups)
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  double worst = 0;
  const std::vector<int> pos0 = {0, 1, 130, 300, rng.integer(2, 400), 17};
  const std::vector<int> lengths(pos0.size(), 1);
  int longest = 0;
  for (int p : pos0) longest = std::max(longest, p + 1);
  struct Geo {
    int heads, hk, hv, hd, wb, wc;
  };
  const std::vector<Geo> geos = {
      {4, 1, 4, 16, 5, 6},   {16, 1, 16, 128, 140, 141}, {20, 1, 20, 32, -1, longest},
      {3, 1, 1, 80, 33, 40}, {5, 1, 5, 12, 200, 256},     {2, 2, 2, 20, 90, 90},  // Hk > 1
      {3, 1, 3, 10, 70, 70},  // rows not 16-byte aligned: the GPU's two-kernel split path
      {2, 1, 2, 192, 100, 100},  // two float4s per lane in the GPU's decode kernel
      {4, 1, 4, 16, 7, 7},  // cache rows = window: the GPU kernel's cache write waits for reads
  };
  for (const auto& g : geos) {
    const auto shape = make_shape(g.heads, g.hk, g.hv, g.hd, g.wb);
    INFO(describe(shape, g.wc));
    const auto c = make_case(rng, shape, g.wc, lengths, pos0);
    const auto ref = reference_out(c);
    test::for_each_space([&]<class Space>() {
      INFO("backend " << Space::name());
      const auto r = run_attn<Space>(c);
      const double e = test::rel_err(r.out, ref);
      worst = std::max(worst, e);
      CHECK(e <= attn_tol<Space>);
      check_caches(c, r);
#if RODIMUS_CUDA_KERNELS
      if constexpr (is_cuda_space_v<Space>) {
        // the GPU's other decode schedules: each CTA walking several chunks of keys (a grid
        // of one CTA per SM), the two-kernel split-key path; the one-kernel path with the
        // caches settled (the launch record cleared after a fence: the first chunk's cache rows
        // loaded before the wait, also with several chunks per CTA) and with those loads after
        // the wait, which must give the same bits
        const char* names[] = {"several chunks per CTA", "two-kernel path",
                               "cache rows before the wait", "the same, several chunks per CTA",
                               "every load after the wait"};
        std::vector<std::vector<double>> outs;
        for (int variant = 0; variant < 5; ++variant) {
          INFO(names[variant]);
          const auto rv = [&] {  // the settings changed for this run only
            const backend::cuda::detail::DecodeSettingsScope scope;
            auto& ctx = scope.context();
            if (variant == 0 || variant == 3) ctx.decode_attention_ctas_per_sm = 1;
            if (variant == 1) ctx.one_kernel_decode_attention = false;
            ctx.decode_attention_early_loads = variant != 4;
            if (variant >= 2) {
              Kokkos::fence();
              ctx.launches.clear();
            }
            return run_attn<Space>(c);
          }();
          CHECK(test::rel_err(rv.out, ref) <= attn_tol<Space>);
          check_caches(c, rv);
          outs.push_back(rv.out);
        }
        CHECK(outs[2] == outs[4]);  // early or late loads: the same arithmetic
        CHECK(outs[3] == outs[0]);
      }
#endif
    });
  }
  WARN("decode-step attention max rel err " << worst);
}

TEST_CASE("sliding_window_attention: long sequences across query blocks and key tiles",
          "[ops][sliding_window_attention]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  // Longer than the host kernel's query blocks (32) and key tiles (64), windows that start and
  // end inside tiles, contexts from the cache, and a head larger than its stack scratch (260).
  const std::vector<int> lengths = {130, 1, 77, rng.integer(33, 99)};
  const std::vector<int> pos0 = {90, 200, 0, rng.integer(0, 150)};
  int longest = 0;
  for (std::size_t i = 0; i < lengths.size(); ++i)
    longest = std::max(longest, lengths[i] + pos0[i]);
  struct Geo {
    int heads, hk, hv, hd, wb, wc;
  };
  const std::vector<Geo> geos = {
      {4, 1, 4, 64, 100, 100},      // Rodimus+-like: shared key, window across tiles
      {2, 1, 2, 128, -1, longest},  // unbounded, the published head size
      {8, 2, 4, 32, 63, 64},        // grouped keys and values, window of 63 back
      {1, 1, 1, 260, 20, 20},       // beyond the blocked kernel: the generic one
  };
  for (const auto& g : geos) {
    const auto shape = make_shape(g.heads, g.hk, g.hv, g.hd, g.wb);
    INFO(describe(shape, g.wc));
    const auto c = make_case(rng, shape, g.wc, lengths, pos0);
    const auto ref = reference_out(c);
    test::for_each_space([&]<class Space>() {
      INFO("backend " << Space::name());
      const auto r = run_attn<Space>(c);
      CHECK(test::rel_err(r.out, ref) <= attn_tol<Space>);
      check_caches(c, r);
    });
  }
}

TEST_CASE("sliding_window_attention of one sequence's decode step splits its keys across threads",
          "[ops][sliding_window_attention]") {
  // one sequence with hundreds of keys: on a host of several threads the decode kernel cuts its
  // keys into ranges whose partial softmax results the last range to finish merges
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  const int pos = rng.integer(300, 700);
  const std::vector<int> pos0 = {pos}, lengths = {1};
  struct Geo {
    int heads, hv, hd, wb, wc;
  };
  const std::vector<Geo> geos = {{16, 16, 128, -1, pos + 1},
                                 {8, 8, 64, 400, 401},
                                 {40, 40, 32, -1, pos + 1},  // three groups of heads
                                 {3, 1, 24, 290, 300}};
  for (const auto& g : geos) {
    const auto shape = make_shape(g.heads, 1, g.hv, g.hd, g.wb);
    INFO(describe(shape, g.wc) << " position " << pos);
    const auto c = make_case(rng, shape, g.wc, lengths, pos0);
    const auto ref = reference_out(c);
    test::for_each_space([&]<class Space>() {
      INFO("backend " << Space::name());
      if constexpr (is_host_space_v<Space>) {
        backend::host::AttentionArgs a{};
        a.heads = g.heads;
        a.window_back = g.wb;
        a.pos0 = pos0.data();
        a.num_seqs = 1;
        const auto plan = backend::host::attention_decode_plan(a, Space().concurrency());
        if (plan.groups < Space().concurrency()) CHECK(plan.splits > 1);  // the path under test
      }
      const auto r = run_attn<Space>(c);
      CHECK(test::rel_err(r.out, ref) <= attn_tol<Space>);
      check_caches(c, r);
      const auto again = run_attn<Space>(c);  // the counters are zero again after a call
      CHECK(again.out == r.out);
    });
  }
}

TEST_CASE("sliding_window_attention: prefix then rest, and token by token, equal one call",
          "[ops][sliding_window_attention]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  struct Geo {
    int heads, hk, hv, hd, wb, wc;
  };
  // windowed caches are wrapped around several times by sequences longer than 2x the cache
  for (const auto& g :
       std::vector<Geo>{{4, 1, 4, 8, 6, 6}, {4, 1, 2, 8, 5, 7}, {4, 1, 2, 8, -1, 64}}) {
    const auto shape = make_shape(g.heads, g.hk, g.hv, g.hd, g.wb);
    const int total = g.wb < 0 ? g.wc : 2 * g.wc + rng.integer(3, 3 * g.wc);
    INFO(describe(shape, g.wc) << " sequence of " << total);
    const auto whole = make_case(rng, shape, g.wc, {total}, {0});
    const auto ref = reference_out(whole);
    test::for_each_space([&]<class Space>() {
      INFO("backend " << Space::name());
      const auto one = run_attn<Space>(whole);
      CHECK(test::rel_err(one.out, ref) <= attn_tol<Space>);
      // the same sequence in pieces, each continuing the caches the previous one left
      auto run_pieces = [&](const std::vector<int>& pieces) {
        std::vector<double> out, kc = whole.k_cache0, vc = whole.v_cache0;
        int p0 = 0;
        for (int len : pieces) {
          AttnCase part = whole;
          part.seqs[0].pos0 = p0;
          part.seqs[0].len = len;
          part.seqs[0].q.resize(std::size_t(p0 + len) * whole.qd());
          part.seqs[0].k.resize(std::size_t(p0 + len) * whole.kd());
          part.seqs[0].v.resize(std::size_t(p0 + len) * whole.vd());
          const auto r = run_attn<Space>(part, &kc, &vc);
          out.insert(out.end(), r.out.begin(), r.out.end());
          kc = r.k_cache;
          vc = r.v_cache;
          p0 += len;
        }
        AttnResult r{out, kc, vc};
        return r;
      };
      const int cut = rng.integer(1, total - 1);
      INFO("cut " << cut);
      const auto split = run_pieces({cut, total - cut});
      const auto steps = run_pieces(std::vector<int>(total, 1));
      for (const auto* r : {&split, &steps}) {
        CHECK(test::rel_err(r->out, ref) <= attn_tol<Space>);
        CHECK(test::rel_err(r->out, one.out) <= attn_tol<Space>);
        CHECK(r->k_cache == one.k_cache);
        CHECK(r->v_cache == one.v_cache);
      }
      // every score is the same dot product whether its key comes from the call or the cache:
      // bit-identical on host spaces, within test::split_tol (1e-6) on GPU spaces, where a
      // kernel may reduce (dot products, softmax sums) in parallel (split_path_tol on CUDA,
      // where the whole sequence takes the tensor-core path and its pieces the fp32 one)
      CHECK(test::rel_err(split.out, one.out) <= split_path_tol<Space>);
      CHECK(test::rel_err(steps.out, one.out) <= split_path_tol<Space>);
    });
  }
}

TEST_CASE("sliding_window_attention rejects wrong extents and too small caches",
          "[ops][sliding_window_attention][errors]") {
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    using CV = View2<const float, Space>;
    test::Batch<Space> batch({3}, {2}, {0});
    const auto shape = make_shape(4, 1, 2, 8, 4);
    auto q = test::upload2<float, Space>({}, 3, 32, 0.1);
    auto k = test::upload2<float, Space>({}, 3, 8, 0.1);
    auto v = test::upload2<float, Space>({}, 3, 16, 0.1);
    auto out = test::upload2<float, Space>({}, 3, 32);
    auto kc = test::upload3<Space>(std::vector<double>(4 * 8, 0.0), 1, 4, 8);
    auto vc = test::upload3<Space>(std::vector<double>(4 * 16, 0.0), 1, 4, 16);
    // v has Hv = 4 heads of columns where the shape says 2
    auto v4 = test::upload2<float, Space>({}, 3, 32, 0.1);
    CHECK_THROWS_AS(
        sliding_window_attention(Space{}, CV(q), CV(k), CV(v4), kc, vc, batch.seq, out, shape),
        ArgumentError);
    // a cache of 3 rows for a window of 4
    auto kc3 = test::upload3<Space>(std::vector<double>(3 * 8, 0.0), 1, 3, 8);
    auto vc3 = test::upload3<Space>(std::vector<double>(3 * 16, 0.0), 1, 3, 16);
    CHECK_THROWS_AS(
        sliding_window_attention(Space{}, CV(q), CV(k), CV(v), kc3, vc3, batch.seq, out, shape),
        ArgumentError);
    // unbounded attention past the cache capacity: pos0 2 + 3 tokens > 4 rows
    const auto unbounded = make_shape(4, 1, 2, 8, -1);
    CHECK_THROWS_AS(
        sliding_window_attention(Space{}, CV(q), CV(k), CV(v), kc, vc, batch.seq, out, unbounded),
        ArgumentError);
  });
}
