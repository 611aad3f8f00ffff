// causal_attention: causal MHA / GQA softmax attention over a KV cache holding every past
// position, over packed batches continuing earlier context, on every backend against the fp64
// reference over the whole sequence.
#include "op_test_util.hpp"
#include "rodimus/ops/causal_attention.hpp"
#include "rodimus/reference/causal_attention.hpp"

using namespace rodimus;
using test::TestRng;

namespace {

// hd-term dot products, exp of scores of size O(1), a weighted mean of values in [-1, 1]:
// a few fp32 roundings per term, relative to the output's scale.
constexpr double kTol = 1e-5;
/// Decode against the one-call result of the same tokens: a few fp32 ulps of the output's scale
/// (the decode kernels sum keys in ranges and blocks, the prefill kernel in tiles from key 0).
constexpr double kDecodeTol = 1e-6;

/// One sequence's whole history: positions 0 .. pos0 + len - 1; the call sees the last len.
struct Seq {
  int pos0 = 0, len = 0, slot = 0;
  std::vector<double> q, k, v;  // [pos0 + len, H*hd], [.., Hkv*hd], [.., Hkv*hd]
};

struct AttnCase {
  CausalAttentionShape shape;
  int capacity = 0, slots = 0;
  std::vector<Seq> seqs;
  std::vector<double> k_cache0, v_cache0;  // [S, C, Hkv*hd]
  int qd() const { return shape.q_dim(); }
  int kd() const { return shape.kv_dim(); }
};

CausalAttentionShape make_shape(int heads, int kv_heads, int hd) {
  CausalAttentionShape s;
  s.heads = heads;
  s.kv_heads = kv_heads;
  s.head_dim = hd;
  s.scale = static_cast<float>(1.0 / std::sqrt(double(hd)));
  return s;
}

/// Random sequences in shuffled slots (one spare slot). Each slot's cache holds garbage except
/// rows 0 .. pos0 - 1, which hold its sequence's earlier keys/values, as the op's contract says.
AttnCase make_case(TestRng& rng, const CausalAttentionShape& shape, int capacity,
                   const std::vector<int>& lengths, const std::vector<int>& pos0) {
  AttnCase c;
  c.shape = shape;
  c.capacity = capacity;
  c.slots = static_cast<int>(lengths.size()) + 1;
  const auto slots = test::shuffled_slots(rng, static_cast<int>(lengths.size()), c.slots);
  c.k_cache0 = rng.vec(std::size_t(c.slots) * capacity * c.kd(), -50, 50);  // garbage
  c.v_cache0 = rng.vec(std::size_t(c.slots) * capacity * c.kd(), -50, 50);
  for (std::size_t i = 0; i < lengths.size(); ++i) {
    Seq s;
    s.pos0 = pos0[i];
    s.len = lengths[i];
    s.slot = slots[i];
    const int total = s.pos0 + s.len;
    // scores of a few units: softmax neither uniform nor one-hot
    s.q = rng.vec(std::size_t(total) * c.qd(), -2, 2);
    s.k = rng.vec(std::size_t(total) * c.kd(), -2, 2);
    s.v = rng.vec(std::size_t(total) * c.kd());
    for (int j = 0; j < s.pos0; ++j) {
      std::copy_n(s.k.begin() + std::ptrdiff_t(j) * c.kd(), c.kd(),
                  c.k_cache0.begin() + (std::ptrdiff_t(s.slot) * capacity + j) * c.kd());
      std::copy_n(s.v.begin() + std::ptrdiff_t(j) * c.kd(), c.kd(),
                  c.v_cache0.begin() + (std::ptrdiff_t(s.slot) * capacity + j) * c.kd());
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
    const auto o = reference::causal_attention(s.q, s.k, s.v, total, sh.heads, sh.kv_heads,
                                               sh.head_dim, double(sh.scale));
    const auto r = test::rows_of(o, s.pos0, s.len, c.qd());
    out.insert(out.end(), r.begin(), r.end());
  }
  return out;
}

struct AttnResult {
  std::vector<double> out, k_cache, v_cache;
};

/// The op on the call's tokens of every sequence, starting from the case's caches (or the given
/// ones).
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
    ins(v, s.v, c.kd());
  }
  test::Batch<Space> batch(lengths, pos0, slots);
  const int nt = batch.tokens();
  auto dq = test::upload2<float, Space>(q, nt + 1, c.qd(), 1.0);
  auto dk = test::upload2<float, Space>(k, nt + 1, c.kd(), 1.0);
  auto dv = test::upload2<float, Space>(v, nt + 1, c.kd(), 1.0);
  auto kc = test::upload3<Space>(k_cache ? *k_cache : c.k_cache0, c.slots, c.capacity, c.kd());
  auto vc = test::upload3<Space>(v_cache ? *v_cache : c.v_cache0, c.slots, c.capacity, c.kd());
  auto out = test::upload2<float, Space>({}, nt + 1, c.qd(), 7.0);
  causal_attention(Space{}, CV(dq), CV(dk), CV(dv), kc, vc, batch.seq, out, c.shape);
  AttnResult r;
  const auto all = test::download2(out);
  r.out = test::rows_of(all, 0, nt, c.qd());
  CHECK(test::rows_of(all, nt, 1, c.qd()) == std::vector<double>(c.qd(), 7.0));
  r.k_cache = test::download3(kc);
  r.v_cache = test::download3(vc);
  return r;
}

/// After a call, the cache of each sequence's slot holds the keys/values of positions
/// 0 .. pos0 + len - 1 at row = position, and every other row and slot is as before.
void check_caches(const AttnCase& c, const AttnResult& r) {
  auto expect_k = c.k_cache0, expect_v = c.v_cache0;
  for (const auto& s : c.seqs) {
    for (int j = s.pos0; j < s.pos0 + s.len; ++j) {
      std::copy_n(s.k.begin() + std::ptrdiff_t(j) * c.kd(), c.kd(),
                  expect_k.begin() + (std::ptrdiff_t(s.slot) * c.capacity + j) * c.kd());
      std::copy_n(s.v.begin() + std::ptrdiff_t(j) * c.kd(), c.kd(),
                  expect_v.begin() + (std::ptrdiff_t(s.slot) * c.capacity + j) * c.kd());
    }
  }
  CHECK(r.k_cache == expect_k);
  CHECK(r.v_cache == expect_v);
}

std::string describe(const CausalAttentionShape& s, int capacity) {
  return "H=" + std::to_string(s.heads) + " Hkv=" + std::to_string(s.kv_heads) +
         " hd=" + std::to_string(s.head_dim) + " capacity=" + std::to_string(capacity);
}

}  // namespace

TEST_CASE("causal_attention matches the fp64 reference over a packed batch with context",
          "[ops][causal_attention]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  double worst = 0;
  // an empty and a one-token sequence; sequences longer than a key tile (32) and than a team's
  // query block; pos0 = tokens already in each cache
  const std::vector<int> lengths = {0, 1, 17, 70, 5, 3, 40};
  const std::vector<int> pos0 = {3, 0, 25, 7, 100, rng.integer(1, 60), 0};
  int longest = 0;
  for (std::size_t i = 0; i < lengths.size(); ++i)
    longest = std::max(longest, lengths[i] + pos0[i]);
  struct Geo {
    int heads, kv_heads, hd;
  };
  // H / Hkv = 1 (MHA), 2, 4, and 8 (all query heads of a team's block share one KV head)
  const std::vector<Geo> geos = {{4, 4, 16}, {4, 2, 8}, {8, 2, 12}, {8, 1, 6}, {2, 2, 40}};
  for (const auto& g : geos) {
    const auto shape = make_shape(g.heads, g.kv_heads, g.hd);
    const int capacity = longest + rng.integer(0, 9);
    INFO(describe(shape, capacity));
    const auto c = make_case(rng, shape, capacity, lengths, pos0);
    const auto ref = reference_out(c);
    test::for_each_space([&]<class Space>() {
      INFO("backend " << Space::name());
      const auto r = run_attn<Space>(c);
      const double e = test::rel_err(r.out, ref);
      worst = std::max(worst, e);
      CHECK(e <= kTol);
      check_caches(c, r);
    });
  }
  WARN("causal_attention max rel err " << worst);
}

TEST_CASE("causal_attention: prefix then rest, and token by token, equal one call",
          "[ops][causal_attention]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  struct Geo {
    int heads, kv_heads, hd;
  };
  for (const auto& g : std::vector<Geo>{{4, 4, 8}, {4, 2, 8}, {8, 2, 16}}) {
    const auto shape = make_shape(g.heads, g.kv_heads, g.hd);
    const int total = rng.integer(40, 90);
    INFO(describe(shape, total) << " sequence of " << total);
    const auto whole = make_case(rng, shape, total, {total}, {0});
    const auto ref = reference_out(whole);
    test::for_each_space([&]<class Space>() {
      INFO("backend " << Space::name());
      const auto one = run_attn<Space>(whole);
      CHECK(test::rel_err(one.out, ref) <= kTol);
      auto run_pieces = [&](const std::vector<int>& pieces) {
        std::vector<double> out, kc = whole.k_cache0, vc = whole.v_cache0;
        int p0 = 0;
        for (int len : pieces) {
          AttnCase part = whole;
          part.seqs[0].pos0 = p0;
          part.seqs[0].len = len;
          part.seqs[0].q.resize(std::size_t(p0 + len) * whole.qd());
          part.seqs[0].k.resize(std::size_t(p0 + len) * whole.kd());
          part.seqs[0].v.resize(std::size_t(p0 + len) * whole.kd());
          const auto r = run_attn<Space>(part, &kc, &vc);
          out.insert(out.end(), r.out.begin(), r.out.end());
          kc = r.k_cache;
          vc = r.v_cache;
          p0 += len;
        }
        return AttnResult{out, kc, vc};
      };
      // both pieces longer than one token: a one-token piece is a decode step, which the
      // token-by-token run covers (and which sums in another order, see kDecodeTol)
      const int cut = rng.integer(2, total - 2);
      INFO("cut " << cut);
      const auto split = run_pieces({cut, total - cut});
      const auto steps = run_pieces(std::vector<int>(total, 1));
      for (const auto* r : {&split, &steps}) {
        CHECK(test::rel_err(r->out, ref) <= kTol);
        CHECK(r->k_cache == one.k_cache);
        CHECK(r->v_cache == one.v_cache);
      }
      // a row's key tiles start at position 0 whatever the split: bit-identical on host
      // spaces, within test::split_tol on GPU spaces
      CHECK(test::rel_err(split.out, one.out) <= test::split_tol<Space>);
      // token by token is decode: on host spaces backend/host/causal_decode.hpp, which sums in
      // another order than the prefill kernel
      CHECK(test::rel_err(steps.out, one.out) <= kDecodeTol);
    });
  }
}

TEST_CASE("causal_attention decode steps at long contexts match the fp64 reference",
          "[ops][causal_attention][decode]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  // one token per sequence: the host decode kernel, its keys split into ranges (a context past
  // 4 x 256 keys) including ranges a short sequence leaves empty (position 0), a head size that
  // is no multiple of 16, G = 1, 2 and 4 query heads per KV head
  // (one sequence alone splits its keys on every backend; four split only on several threads)
  const int longest = rng.integer(1100, 1400);
  const int capacity = 1400 + rng.integer(1, 20);
  struct Geo {
    int heads, kv_heads, hd;
  };
  double worst = 0;
  for (const auto& pos0 :
       std::vector<std::vector<int>>{{longest}, {longest, 0, rng.integer(200, 400), 37}})
    for (const auto& g : std::vector<Geo>{{4, 1, 40}, {8, 4, 32}, {2, 2, 24}}) {
      const auto shape = make_shape(g.heads, g.kv_heads, g.hd);
      INFO(describe(shape, capacity) << " sequences " << pos0.size());
      const auto c = make_case(rng, shape, capacity, std::vector<int>(pos0.size(), 1), pos0);
      // the reference of each sequence's last row only (the whole-sequence reference is O(T^2))
      std::vector<double> ref;
      for (const auto& s : c.seqs) {
        const int p = s.pos0, hd = g.hd, grp = g.heads / g.kv_heads;
        for (int h = 0; h < g.heads; ++h) {
          const int kh = h / grp;
          std::vector<double> w(std::size_t(p) + 1);
          double mx = -1e300;
          for (int j = 0; j <= p; ++j) {
            double d = 0;
            for (int e = 0; e < hd; ++e)
              d += s.q[std::size_t(p) * c.qd() + std::size_t(h) * hd + e] *
                   s.k[std::size_t(j) * c.kd() + std::size_t(kh) * hd + e];
            w[j] = d * double(shape.scale);
            mx = std::max(mx, w[j]);
          }
          double den = 0;
          for (auto& x : w) den += (x = std::exp(x - mx));
          for (int e = 0; e < hd; ++e) {
            double o = 0;
            for (int j = 0; j <= p; ++j)
              o += w[j] * s.v[std::size_t(j) * c.kd() + std::size_t(kh) * hd + e];
            ref.push_back(o / den);
          }
        }
      }
      test::for_each_space([&]<class Space>() {
        INFO("backend " << Space::name());
        const auto r = run_attn<Space>(c);
        const double e = test::rel_err(r.out, ref);
        worst = std::max(worst, e);
        CHECK(e <= kTol);
        check_caches(c, r);
      });
    }
  WARN("causal_attention decode max rel err " << worst);
}

TEST_CASE("causal_attention rejects bad geometries, wrong extents and full caches",
          "[ops][causal_attention][errors]") {
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    using CV = View2<const float, Space>;
    test::Batch<Space> batch({3}, {2}, {0});
    const auto shape = make_shape(4, 2, 8);  // q: 32 columns, k/v: 16
    auto q = test::upload2<float, Space>({}, 3, 32, 0.1);
    auto k = test::upload2<float, Space>({}, 3, 16, 0.1);
    auto v = test::upload2<float, Space>({}, 3, 16, 0.1);
    auto out = test::upload2<float, Space>({}, 3, 32);
    auto kc = test::upload3<Space>(std::vector<double>(8 * 16, 0.5), 1, 8, 16);
    auto vc = test::upload3<Space>(std::vector<double>(8 * 16, 0.5), 1, 8, 16);
    // the valid call works
    CHECK_NOTHROW(causal_attention(Space{}, CV(q), CV(k), CV(v), kc, vc, batch.seq, out, shape));
    // 4 query heads over 3 KV heads; no heads
    auto bad = make_shape(4, 3, 8);
    CHECK_THROWS_AS(causal_attention(Space{}, CV(q), CV(k), CV(v), kc, vc, batch.seq, out, bad),
                    ArgumentError);
    bad = make_shape(4, 0, 8);
    CHECK_THROWS_AS(causal_attention(Space{}, CV(q), CV(k), CV(v), kc, vc, batch.seq, out, bad),
                    ArgumentError);
    // v with 4 KV heads of columns where the shape says 2
    auto v4 = test::upload2<float, Space>({}, 3, 32, 0.1);
    CHECK_THROWS_AS(causal_attention(Space{}, CV(q), CV(k), CV(v4), kc, vc, batch.seq, out, shape),
                    ArgumentError);
    // fewer rows than tokens
    auto q2 = test::upload2<float, Space>({}, 2, 32, 0.1);
    CHECK_THROWS_AS(causal_attention(Space{}, CV(q2), CV(k), CV(v), kc, vc, batch.seq, out, shape),
                    ArgumentError);
    // a cache of 4 rows: pos0 2 + 3 tokens do not fit
    auto kc4 = test::upload3<Space>(std::vector<double>(4 * 16, 0.5), 1, 4, 16);
    auto vc4 = test::upload3<Space>(std::vector<double>(4 * 16, 0.5), 1, 4, 16);
    CHECK_THROWS_AS(causal_attention(Space{}, CV(q), CV(k), CV(v), kc4, vc4, batch.seq, out, shape),
                    ArgumentError);
    // a slot the cache does not have
    test::Batch<Space> slot1({3}, {0}, {1});
    CHECK_THROWS_AS(causal_attention(Space{}, CV(q), CV(k), CV(v), kc, vc, slot1.seq, out, shape),
                    ArgumentError);
  });
}
