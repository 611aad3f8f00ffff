// grad::sliding_window_attention_backward (SPEC 3 steps 3-4): the fp64 backward against central
// differences of the fp64 reference attention, per sequence of a packed batch, for windows
// smaller and larger than the sequences and shared key/value heads; fp32 against fp64 on every
// backend; shape errors.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "grad_scan_test_util.hpp"
#include "rodimus/grad/sliding_window_attention.hpp"
#include "rodimus/reference/sliding_window_attention.hpp"

using namespace rodimus;
using test::TestRng;
namespace tg = rodimus::test::grad;

namespace {

// Central differences with h = 1e-5 max(1, |x|) of a smooth loss: truncation ~h^2 |L'''| and
// rounding ~eps sum|terms| / h, both ~1e-10 of an O(1) gradient; the floor of each block's scale
// is that rounding noise (kFdNoise x the estimate) so tiny blocks are judged by what the
// differences can resolve.
constexpr double kFdTol = 1e-6;
constexpr double kFdNoise = 30.0;
// fp32 against fp64: a window of W keys costs O(W + hd) roundings per term.
constexpr double kF32Tol = 2e-5;

struct SwaCase {
  int heads = 0, heads_k = 0, heads_v = 0, hd = 0, window_back = -1;
  float scale = 1.f;
  std::vector<int> lengths;
  std::vector<double> q, k, v, d_out;  // [N, H*hd], [N, Hk*hd], [N, Hv*hd], [N, H*hd]
  int tokens() const {
    int s = 0;
    for (int l : lengths) s += l;
    return s;
  }
  int offset(int b) const {
    int s = 0;
    for (int i = 0; i < b; ++i) s += lengths[i];
    return s;
  }
  AttentionShape shape() const { return {heads, heads_k, heads_v, hd, window_back, scale}; }
};

SwaCase make_case(TestRng& rng, int h, int hk, int hv, int hd, int wb, std::vector<int> lengths,
                  double q_range = 1.0) {
  SwaCase c;
  c.heads = h;
  c.heads_k = hk;
  c.heads_v = hv;
  c.hd = hd;
  c.window_back = wb;
  c.scale = static_cast<float>(1.0 / std::sqrt(double(hd)));
  c.lengths = std::move(lengths);
  const std::size_t nt = c.tokens();
  c.q = rng.vec(nt * h * hd, -q_range, q_range);
  c.k = rng.vec(nt * hk * hd, -q_range, q_range);
  c.v = rng.vec(nt * hv * hd);
  c.d_out = rng.vec(nt * h * hd);
  return c;
}

struct Grads {
  std::vector<double> dq, dk, dv;
  std::vector<double> fd_noise;  // per sequence, finite differences only
};

/// sum(d_out * o) of sequence b by the fp64 reference; `abs_sum` gets sum|terms|.
double seq_loss(const SwaCase& c, int b, const std::vector<double>& q,
                const std::vector<double>& k, const std::vector<double>& v,
                double* abs_sum = nullptr) {
  const int len = c.lengths[b];
  const auto o = reference::sliding_window_attention(q, k, v, len, c.heads, c.heads_k, c.heads_v,
                                                     c.hd, c.window_back, double(c.scale));
  const std::size_t base = std::size_t(c.offset(b)) * c.heads * c.hd;
  double loss = 0, mag = 0;
  for (std::size_t i = 0; i < o.size(); ++i) {
    loss += c.d_out[base + i] * o[i];
    mag += std::fabs(c.d_out[base + i] * o[i]);
  }
  if (abs_sum) *abs_sum = mag;
  return loss;
}

Grads finite_differences(const SwaCase& c) {
  const std::size_t nt = c.tokens();
  const int wq = c.heads * c.hd, wk = c.heads_k * c.hd, wv = c.heads_v * c.hd;
  Grads g;
  g.dq.assign(nt * wq, 0.0);
  g.dk.assign(nt * wk, 0.0);
  g.dv.assign(nt * wv, 0.0);
  for (int b = 0; b < int(c.lengths.size()); ++b) {
    const int off = c.offset(b), len = c.lengths[b];
    std::vector<double> x[3] = {test::rows_of(c.q, off, len, wq), test::rows_of(c.k, off, len, wk),
                                test::rows_of(c.v, off, len, wv)};
    std::vector<double>* out[3] = {&g.dq, &g.dk, &g.dv};
    const std::size_t base[3] = {std::size_t(off) * wq, std::size_t(off) * wk,
                                 std::size_t(off) * wv};
    double mag = 0;
    seq_loss(c, b, x[0], x[1], x[2], &mag);
    g.fd_noise.push_back(kFdNoise * std::numeric_limits<double>::epsilon() * mag / 2e-5);
    for (int which = 0; which < 3; ++which)
      for (std::size_t i = 0; i < x[which].size(); ++i) {
        const double x0 = x[which][i], h = tg::fd_step(x0);
        const double xp = x0 + h, xm = x0 - h;
        x[which][i] = xp;
        const double lp = seq_loss(c, b, x[0], x[1], x[2]);
        x[which][i] = xm;
        const double lm = seq_loss(c, b, x[0], x[1], x[2]);
        x[which][i] = x0;
        (*out[which])[base[which] + i] = (lp - lm) / (xp - xm);
      }
  }
  return g;
}

constexpr double kSentinel = 7.0;

/// The Kokkos backward in Real on Space; checks that the padding row is left alone.
template <class Real, class Space>
Grads run_backward(const SwaCase& c, grad::SlidingWindowAttentionGradWorkspace<Real, Space>& ws) {
  using CV = View2<const Real, Space>;
  const int nt = c.tokens();
  const int wq = c.heads * c.hd, wk = c.heads_k * c.hd, wv = c.heads_v * c.hd;
  test::Batch<Space> batch(c.lengths, std::vector<int>(c.lengths.size(), 0),
                           std::vector<int>(c.lengths.size(), 0));
  auto q = tg::upload2r<Real, Space>(c.q, nt + 1, wq, 1.0);
  auto k = tg::upload2r<Real, Space>(c.k, nt + 1, wk, 1.0);
  auto v = tg::upload2r<Real, Space>(c.v, nt + 1, wv, 1.0);
  auto d_out = tg::upload2r<Real, Space>(c.d_out, nt + 1, wq, 1.0);
  auto dq = tg::upload2r<Real, Space>({}, nt + 1, wq, kSentinel);
  auto dk = tg::upload2r<Real, Space>({}, nt + 1, wk, kSentinel);
  auto dv = tg::upload2r<Real, Space>({}, nt + 1, wv, kSentinel);
  grad::sliding_window_attention_backward<Real>(Space{}, CV(q), CV(k), CV(v), batch.seq, CV(d_out),
                                                dq, dk, dv, c.shape(), ws);
  const auto aq = tg::download(dq), ak = tg::download(dk), av = tg::download(dv);
  CHECK(test::rows_of(aq, nt, 1, wq) == std::vector<double>(wq, kSentinel));
  CHECK(test::rows_of(ak, nt, 1, wk) == std::vector<double>(wk, kSentinel));
  CHECK(test::rows_of(av, nt, 1, wv) == std::vector<double>(wv, kSentinel));
  Grads g;
  g.dq = test::rows_of(aq, 0, nt, wq);
  g.dk = test::rows_of(ak, 0, nt, wk);
  g.dv = test::rows_of(av, 0, nt, wv);
  return g;
}

struct GradErrors {
  double q = 0, k = 0, v = 0;
};

GradErrors compare(const SwaCase& c, const Grads& got, const Grads& ref) {
  GradErrors err;
  const std::size_t wq = c.heads * c.hd, wk = c.heads_k * c.hd, wv = c.heads_v * c.hd;
  for (int b = 0; b < int(c.lengths.size()); ++b) {
    const std::size_t off = c.offset(b), len = c.lengths[b];
    // Against finite differences: their rounding noise. fp32 against fp64: 1 % of the block's
    // largest gradient entry (dq, dk or dv). Where every query sees one key (window_back = 0)
    // the exact dq and dk vanish, and a kernel that forms the softmax term dP - rowsum(dO O)
    // in another summation order than dP leaves fp32 rounding residue (~1e-7 of the gradient
    // scale; seen on CUDA): relative to a zero reference that would read as an error of 1.
    double floor = 1e-300;
    if (!ref.fd_noise.empty()) {
      floor = ref.fd_noise[b] / kFdTol;
    } else {
      auto max_abs = [](const std::vector<double>& v, std::size_t begin, std::size_t count) {
        double m = 0;
        for (std::size_t i = begin; i < begin + count; ++i) m = std::max(m, std::fabs(v[i]));
        return m;
      };
      floor = 1e-2 * std::max({max_abs(ref.dq, off * wq, len * wq),
                               max_abs(ref.dk, off * wk, len * wk),
                               max_abs(ref.dv, off * wv, len * wv), 1e-300});
    }
    err.q = std::max(err.q, tg::block_err(got.dq, ref.dq, off * wq, len * wq, floor));
    err.k = std::max(err.k, tg::block_err(got.dk, ref.dk, off * wk, len * wk, floor));
    err.v = std::max(err.v, tg::block_err(got.dv, ref.dv, off * wv, len * wv, floor));
  }
  return err;
}

bool all_finite(const Grads& g) {
  return test::all_finite(g.dq) && test::all_finite(g.dk) && test::all_finite(g.dv);
}

void check_all(const SwaCase& c, const char* what) {
  const Grads fd = finite_differences(c);
  REQUIRE(all_finite(fd));
  double worst_fd = 0, worst_f32 = 0;
  test::for_each_space([&]<class Space>() {
    INFO(what << ": backend " << Space::name() << ", H=" << c.heads << " Hk=" << c.heads_k
              << " Hv=" << c.heads_v << " hd=" << c.hd << " window_back=" << c.window_back);
    grad::SlidingWindowAttentionGradWorkspace<double, Space> ws64;
    grad::SlidingWindowAttentionGradWorkspace<float, Space> ws32;
    const Grads g64 = run_backward<double, Space>(c, ws64);
    const Grads g32 = run_backward<float, Space>(c, ws32);
    REQUIRE(all_finite(g64));
    REQUIRE(all_finite(g32));
    const GradErrors efd = compare(c, g64, fd);
    INFO("fp64 vs finite differences: dq " << efd.q << " dk " << efd.k << " dv " << efd.v);
    CHECK(efd.q <= kFdTol);
    CHECK(efd.k <= kFdTol);
    CHECK(efd.v <= kFdTol);
    const GradErrors e32 = compare(c, g32, g64);
    INFO("fp32 vs fp64: dq " << e32.q << " dk " << e32.k << " dv " << e32.v);
    CHECK(e32.q <= kF32Tol);
    CHECK(e32.k <= kF32Tol);
    CHECK(e32.v <= kF32Tol);
    worst_fd = std::max({worst_fd, efd.q, efd.k, efd.v});
    worst_f32 = std::max({worst_f32, e32.q, e32.k, e32.v});
  });
  WARN(what << " (window_back " << c.window_back << "): max block error, fp64 vs finite "
            << "differences " << worst_fd << ", fp32 vs fp64 " << worst_f32);
}

}  // namespace

TEST_CASE("sliding_window_attention_backward: fp64 gradients match central differences",
          "[grad][attention]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  const std::vector<int> lengths = {1, 9, 30, 4};
  SECTION("one shared key head, per-head values (the published layout)") {
    for (int wb : {-1, 0, 3, 16, 100}) {
      const auto c = make_case(rng, 4, 1, 4, 8, wb, lengths);
      check_all(c, "Hk=1 Hv=H");
    }
  }
  SECTION("two key heads, one shared value head, odd head_dim") {
    for (int wb : {-1, 5}) {
      const auto c = make_case(rng, 4, 2, 1, 5, wb, {17, 2, 25});
      check_all(c, "Hk=2 Hv=1");
    }
  }
  SECTION("peaked softmax (large scores)") {
    const auto c = make_case(rng, 3, 1, 3, 8, 12, {24, 7}, 4.0);
    check_all(c, "large scores");
  }
}

TEST_CASE("sliding_window_attention_backward: bad arguments throw ArgumentError naming them",
          "[grad][attention]") {
  using Space = Kokkos::DefaultHostExecutionSpace;
  using V2 = View2<double, Space>;
  using CV = View2<const double, Space>;
  const int h = 4, hk = 1, hv = 2, hd = 4, nt = 7;
  test::Batch<Space> batch({3, 4}, {0, 0}, {0, 0});
  const AttentionShape shape{h, hk, hv, hd, 2, 0.5f};
  struct Args {
    V2 q, k, v, d_out, dq, dk, dv;
  };
  const Args good{V2("q", nt, h * hd),  V2("k", nt, hk * hd),  V2("v", nt, hv * hd),
                  V2("do", nt, h * hd), V2("dq", nt, h * hd), V2("dk", nt, hk * hd),
                  V2("dv", nt, hv * hd)};
  grad::SlidingWindowAttentionGradWorkspace<double, Space> ws;
  auto call = [&](const Args& x, const SeqBatch<Space>& b, const AttentionShape& s) {
    grad::sliding_window_attention_backward<double>(Space{}, CV(x.q), CV(x.k), CV(x.v), b,
                                                    CV(x.d_out), x.dq, x.dk, x.dv, s, ws);
  };
  REQUIRE_NOTHROW(call(good, batch.seq, shape));
  auto expect = [&](const Args& x, const std::string& name) {
    INFO("argument " << name);
    CHECK_THROWS_AS(call(x, batch.seq, shape), ArgumentError);
    CHECK_THROWS_WITH(call(x, batch.seq, shape),
                      Catch::Contains("sliding_window_attention_backward: " + name));
  };
  Args x = good;
  x.q = V2("q", nt, h * hd + 1);
  expect(x, "q");
  x = good;
  x.k = V2("k", nt, 2 * hd);
  expect(x, "k");
  x = good;
  x.v = V2("v", nt - 1, hv * hd);
  expect(x, "v");
  x = good;
  x.d_out = V2("do", nt, hd);
  expect(x, "d_out");
  x = good;
  x.dq = V2("dq", nt - 1, h * hd);
  expect(x, "dq");
  x = good;
  x.dk = V2("dk", nt, hk * hd + 1);
  expect(x, "dk");
  x = good;
  x.dv = V2("dv", nt, hd);
  expect(x, "dv");
  AttentionShape bad = shape;
  bad.heads_k = 0;
  CHECK_THROWS_WITH(call(good, batch.seq, bad),
                    Catch::Contains("sliding_window_attention_backward: shape"));
  test::Batch<Space> cached({3, 4}, {0, 5}, {0, 1});
  CHECK_THROWS_WITH(call(good, cached.seq, shape),
                    Catch::Contains("sliding_window_attention_backward: batch.pos0"));
}
