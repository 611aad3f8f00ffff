// grad::gla_scan_backward (SPEC 2 step 7, SPEC 2.1): the fp64 chunked backward against central
// differences of the fp64 recurrence, per sequence of a packed batch, for decays from none
// (a = 0) to extreme (a = -1e4 per step); the fp32 backward against the fp64 one on every
// backend; shape errors.
#include <limits>
#include <string>

#include "grad_scan_test_util.hpp"
#include "rodimus/grad/gla_scan.hpp"
#include "rodimus/reference/gla_scan.hpp"
#include "rodimus/reference/gla_scan_backward.hpp"

using namespace rodimus;
using test::TestRng;
namespace tg = rodimus::test::grad;

namespace {

// Central differences with h = 1e-5 max(1, |x|) of a loss affine in each element of q, k, u, S0
// and in exp(a) err by ~ eps sum|terms of L| / h + h^2 / 6 (relative, from a): ~1e-10 of an O(1)
// gradient, so 1e-6 of each sequence's gradient scale catches any lost or wrong term. Where decays
// are strong a whole block of gradients can be ~exp(-30) small, below the differences' own noise
// eps sum|terms| / h; there the check asks |error| <= that noise (kFdNoise x the estimate) and the
// per-element check is the one against the fp64 reference backward (no differences, no noise).
constexpr double kFdTol = 1e-6;
constexpr double kFdNoise = 30.0;
// The chunked fp64 backward against the fp64 reversed recurrence, relative to each block's scale.
constexpr double kRefTol = 1e-11;
// fp32 against fp64: O(C + T / C) roundings per term.
constexpr double kF32Tol = 2e-5;

enum class Decay { Mild, Strong, Extreme, Zero, Mixed };

/// One log decay drawn from the regime: mild [-0.1, 0], strong [-30, -10], extreme around -1e4,
/// zero, or mixed (each step picks one of the four).
double draw_decay(TestRng& rng, Decay r) {
  if (r == Decay::Mixed) r = static_cast<Decay>(rng.integer(0, 3));
  switch (r) {
    case Decay::Mild:
      return rng.f32(-0.1, 0.0);
    case Decay::Strong:
      return rng.f32(-30.0, -10.0);
    case Decay::Extreme:
      return rng.f32(-1.0e4, -0.9e4);
    default:
      return 0.0;
  }
}

/// Inputs of one packed backward: activations, initial states, the loss' output gradients.
struct GlaCase {
  int n = 0, e = 0, slots = 0;
  bool has_final = true;
  std::vector<int> lengths, slot;
  std::vector<double> q, k, a, u, d_o;  // [N, n] x3, [N, E] x2
  std::vector<double> state0, d_final;  // [S, n, E]
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
};

GlaCase make_case(TestRng& rng, int n, int e, std::vector<int> lengths,
                  const std::vector<Decay>& regime, bool zero_state0, bool has_final) {
  GlaCase c;
  c.n = n;
  c.e = e;
  c.has_final = has_final;
  c.lengths = std::move(lengths);
  const int nseq = static_cast<int>(c.lengths.size());
  c.slots = nseq + 2;
  c.slot = test::shuffled_slots(rng, nseq, c.slots);
  const int nt = c.tokens();
  c.q = rng.vec(std::size_t(nt) * n);
  c.k = rng.vec(std::size_t(nt) * n);
  c.u = rng.vec(std::size_t(nt) * e);
  c.d_o = rng.vec(std::size_t(nt) * e);
  c.a.resize(std::size_t(nt) * n);
  for (int t = 0; t < nt; ++t)
    for (int i = 0; i < n; ++i) c.a[std::size_t(t) * n + i] = draw_decay(rng, regime[i]);
  const std::size_t ss = std::size_t(c.slots) * n * e;
  c.state0 = zero_state0 ? std::vector<double>(ss, 0.0) : rng.vec(ss);
  c.d_final = has_final ? rng.vec(ss) : std::vector<double>();
  return c;
}

/// Gradients [N, n] x3, [N, E], [S, n, E]; fd_noise[b]: the noise of sequence b's central
/// differences, kFdNoise eps sum|terms of L_b| / (2 1e-5) (finite differences only).
struct Grads {
  std::vector<double> dq, dk, da, du, ds0;
  std::vector<double> fd_noise;
};

/// The loss of sequence b by the fp64 recurrence: sum(do * o) + sum(dS_T * S_T). `abs_sum`, when
/// given, receives the sum of the terms' magnitudes (the scale of the loss' rounding error).
double seq_loss(const GlaCase& c, int b, const std::vector<double>& q, const std::vector<double>& k,
                const std::vector<double>& a, const std::vector<double>& u,
                const std::vector<double>& s0, double* abs_sum = nullptr) {
  const int len = c.lengths[b], off = c.offset(b);
  std::vector<double> S = s0;
  const auto o = reference::gla_scan_recurrent(q, k, u, a, len, c.n, c.e, S);
  double loss = 0, mag = 0;
  for (std::size_t i = 0; i < o.size(); ++i) {
    loss += c.d_o[std::size_t(off) * c.e + i] * o[i];
    mag += std::fabs(c.d_o[std::size_t(off) * c.e + i] * o[i]);
  }
  if (c.has_final) {
    const std::size_t ss = std::size_t(c.n) * c.e, base = std::size_t(c.slot[b]) * ss;
    for (std::size_t i = 0; i < ss; ++i) {
      loss += c.d_final[base + i] * S[i];
      mag += std::fabs(c.d_final[base + i] * S[i]);
    }
  }
  if (abs_sum) *abs_sum = mag;
  return loss;
}

/// Central differences of every input of every sequence (the loss is a sum over sequences and an
/// input reaches only its own sequence's term).
Grads finite_differences(const GlaCase& c) {
  const int nt = c.tokens(), n = c.n, e = c.e;
  const std::size_t ss = std::size_t(n) * e;
  Grads g;
  g.dq.assign(std::size_t(nt) * n, 0.0);
  g.dk = g.dq;
  g.da = g.dq;
  g.du.assign(std::size_t(nt) * e, 0.0);
  g.ds0.assign(std::size_t(c.slots) * ss, 0.0);
  for (int b = 0; b < int(c.lengths.size()); ++b) {
    const int off = c.offset(b), len = c.lengths[b];
    std::vector<double> x[5] = {test::rows_of(c.q, off, len, n), test::rows_of(c.k, off, len, n),
                                test::rows_of(c.a, off, len, n), test::rows_of(c.u, off, len, e),
                                test::slice(c.state0, c.slot[b] * ss, ss)};
    std::vector<double>* out[5] = {&g.dq, &g.dk, &g.da, &g.du, &g.ds0};
    double mag = 0;
    seq_loss(c, b, x[0], x[1], x[2], x[3], x[4], &mag);
    g.fd_noise.push_back(kFdNoise * std::numeric_limits<double>::epsilon() * mag / 2e-5);
    const std::size_t base[5] = {std::size_t(off) * n, std::size_t(off) * n, std::size_t(off) * n,
                                 std::size_t(off) * e, std::size_t(c.slot[b]) * ss};
    for (int which = 0; which < 5; ++which) {
      for (std::size_t i = 0; i < x[which].size(); ++i) {
        const double x0 = x[which][i], h = tg::fd_step(x0);
        const double xp = x0 + h, xm = x0 - h;
        x[which][i] = xp;
        const double lp = seq_loss(c, b, x[0], x[1], x[2], x[3], x[4]);
        x[which][i] = xm;
        const double lm = seq_loss(c, b, x[0], x[1], x[2], x[3], x[4]);
        x[which][i] = x0;
        (*out[which])[base[which] + i] = (lp - lm) / (xp - xm);
      }
    }
  }
  return g;
}

/// The fp64 reversed recurrence (reference/gla_scan_backward.hpp), sequence by sequence.
Grads reference_backward(const GlaCase& c) {
  const int nt = c.tokens(), n = c.n, e = c.e;
  const std::size_t ss = std::size_t(n) * e;
  Grads g;
  g.dq.assign(std::size_t(nt) * n, 0.0);
  g.dk = g.dq;
  g.da = g.dq;
  g.du.assign(std::size_t(nt) * e, 0.0);
  g.ds0.assign(std::size_t(c.slots) * ss, 0.0);
  for (int b = 0; b < int(c.lengths.size()); ++b) {
    const int off = c.offset(b), len = c.lengths[b];
    const auto r = reference::gla_scan_backward_recurrent(
        test::rows_of(c.q, off, len, n), test::rows_of(c.k, off, len, n),
        test::rows_of(c.u, off, len, e), test::rows_of(c.a, off, len, n), len, n, e,
        test::slice(c.state0, c.slot[b] * ss, ss), test::rows_of(c.d_o, off, len, e),
        c.has_final ? test::slice(c.d_final, c.slot[b] * ss, ss) : std::vector<double>());
    std::copy(r.dq.begin(), r.dq.end(), g.dq.begin() + std::ptrdiff_t(off) * n);
    std::copy(r.dk.begin(), r.dk.end(), g.dk.begin() + std::ptrdiff_t(off) * n);
    std::copy(r.da.begin(), r.da.end(), g.da.begin() + std::ptrdiff_t(off) * n);
    std::copy(r.du.begin(), r.du.end(), g.du.begin() + std::ptrdiff_t(off) * e);
    std::copy(r.d_state0.begin(), r.d_state0.end(), g.ds0.begin() + std::ptrdiff_t(c.slot[b] * ss));
  }
  return g;
}

constexpr double kSentinel = 7.0;

/// The Kokkos backward in Real on Space with chunks of C; checks that it leaves the padding row
/// and the slots outside the batch alone and returns the batch's rows.
template <int C, class Real, class Space>
Grads run_backward(const GlaCase& c, grad::GlaScanGradWorkspace<Real, Space>& ws) {
  using CV2 = View2<const Real, Space>;
  using CV3 = View3<const Real, Space>;
  const int nt = c.tokens();
  test::Batch<Space> batch(c.lengths, std::vector<int>(c.lengths.size(), 0), c.slot);
  auto q = tg::upload2r<Real, Space>(c.q, nt + 1, c.n, 1.0);
  auto k = tg::upload2r<Real, Space>(c.k, nt + 1, c.n, 1.0);
  auto a = tg::upload2r<Real, Space>(c.a, nt + 1, c.n, -1.0);
  auto u = tg::upload2r<Real, Space>(c.u, nt + 1, c.e, 1.0);
  auto d_o = tg::upload2r<Real, Space>(c.d_o, nt + 1, c.e, 1.0);
  auto s0 = tg::upload3r<Real, Space>(c.state0, c.slots, c.n, c.e);
  auto d_final = c.has_final ? tg::upload3r<Real, Space>(c.d_final, c.slots, c.n, c.e)
                             : View3<Real, Space>();
  auto dq = tg::upload2r<Real, Space>({}, nt + 1, c.n, kSentinel);
  auto dk = tg::upload2r<Real, Space>({}, nt + 1, c.n, kSentinel);
  auto da = tg::upload2r<Real, Space>({}, nt + 1, c.n, kSentinel);
  auto du = tg::upload2r<Real, Space>({}, nt + 1, c.e, kSentinel);
  auto ds0 = tg::upload3r<Real, Space>({}, c.slots, c.n, c.e, kSentinel);
  const Real scale = static_cast<Real>(1.0 / std::sqrt(double(c.n)));
  grad::gla_scan_backward<ChunkedScan<C>, Real>(Space{}, CV2(q), CV2(k), CV2(a), CV2(u), CV3(s0),
                                                batch.seq, CV2(d_o), CV3(d_final), dq, dk, da,
                                                du, ds0, scale, ws);
  Grads g;
  const auto all_q = tg::download(dq), all_k = tg::download(dk), all_a = tg::download(da);
  const auto all_u = tg::download(du);
  for (const auto* v : {&all_q, &all_k, &all_a})
    CHECK(test::rows_of(*v, nt, 1, c.n) == std::vector<double>(c.n, kSentinel));
  CHECK(test::rows_of(all_u, nt, 1, c.e) == std::vector<double>(c.e, kSentinel));
  g.dq = test::rows_of(all_q, 0, nt, c.n);
  g.dk = test::rows_of(all_k, 0, nt, c.n);
  g.da = test::rows_of(all_a, 0, nt, c.n);
  g.du = test::rows_of(all_u, 0, nt, c.e);
  g.ds0 = tg::download(ds0);
  const std::size_t ss = std::size_t(c.n) * c.e;
  for (int sl = 0; sl < c.slots; ++sl) {
    if (std::find(c.slot.begin(), c.slot.end(), sl) != c.slot.end()) continue;
    CHECK(test::slice(g.ds0, sl * ss, ss) == std::vector<double>(ss, kSentinel));
    std::fill(g.ds0.begin() + std::ptrdiff_t(sl * ss), g.ds0.begin() + std::ptrdiff_t((sl + 1) * ss),
              0.0);
  }
  return g;
}

/// Worst block error of each gradient, every block one sequence's rows (or its state slot).
struct GradErrors {
  double q = 0, k = 0, a = 0, u = 0, s0 = 0;
  double worst() const { return std::max({q, k, a, u, s0}); }
};

/// Block errors of `got` against `ref`; when `ref` holds finite differences, each block's scale is
/// at least fd_noise / kFdTol, so an error within the differences' noise passes.
GradErrors compare(const GlaCase& c, const Grads& got, const Grads& ref) {
  GradErrors err;
  const std::size_t ss = std::size_t(c.n) * c.e;
  for (int b = 0; b < int(c.lengths.size()); ++b) {
    const std::size_t off = c.offset(b), len = c.lengths[b];
    const double kFloor = ref.fd_noise.empty() ? 1e-300 : ref.fd_noise[b] / kFdTol;
    err.q = std::max(err.q, tg::block_err(got.dq, ref.dq, off * c.n, len * c.n, kFloor));
    err.k = std::max(err.k, tg::block_err(got.dk, ref.dk, off * c.n, len * c.n, kFloor));
    err.a = std::max(err.a, tg::block_err(got.da, ref.da, off * c.n, len * c.n, kFloor));
    err.u = std::max(err.u, tg::block_err(got.du, ref.du, off * c.e, len * c.e, kFloor));
    err.s0 = std::max(err.s0, tg::block_err(got.ds0, ref.ds0, c.slot[b] * ss, ss, kFloor));
  }
  return err;
}

bool all_finite(const Grads& g) {
  return test::all_finite(g.dq) && test::all_finite(g.dk) && test::all_finite(g.da) &&
         test::all_finite(g.du) && test::all_finite(g.ds0);
}

#define RODIMUS_CHECK_GRAD_ERRORS(err, tol) \
  do {                                      \
    CHECK((err).q <= (tol));                \
    CHECK((err).k <= (tol));                \
    CHECK((err).a <= (tol));                \
    CHECK((err).u <= (tol));                \
    CHECK((err).s0 <= (tol));               \
  } while (0)

void take_max(GradErrors& worst, const GradErrors& e) {
  worst.q = std::max(worst.q, e.q);
  worst.k = std::max(worst.k, e.k);
  worst.a = std::max(worst.a, e.a);
  worst.u = std::max(worst.u, e.u);
  worst.s0 = std::max(worst.s0, e.s0);
}

/// Worst errors over a case: fp64 chunked vs differences, vs the reference, fp32 vs fp64.
struct Worst {
  GradErrors fd, ref, f32;
};

/// fp64 backward vs central differences and the fp64 reference, and fp32 vs fp64, for chunk
/// size C, on every backend.
template <int C>
void check_chunk(const GlaCase& c, const Grads& fd, const Grads& ref, const char* what,
                 Worst& worst) {
  test::for_each_space([&]<class Space>() {
    INFO(what << ": backend " << Space::name() << ", C=" << C << ", n=" << c.n << " E=" << c.e);
    grad::GlaScanGradWorkspace<double, Space> ws64;
    grad::GlaScanGradWorkspace<float, Space> ws32;
    const Grads g64 = run_backward<C, double, Space>(c, ws64);
    const Grads g32 = run_backward<C, float, Space>(c, ws32);
    REQUIRE(all_finite(g64));
    REQUIRE(all_finite(g32));
    const GradErrors efd = compare(c, g64, fd);
    INFO("fp64 vs finite differences: dq " << efd.q << " dk " << efd.k << " da " << efd.a
                                           << " du " << efd.u << " dS0 " << efd.s0);
    RODIMUS_CHECK_GRAD_ERRORS(efd, kFdTol);
    const GradErrors eref = compare(c, g64, ref);
    INFO("fp64 vs reference backward: dq " << eref.q << " dk " << eref.k << " da " << eref.a
                                           << " du " << eref.u << " dS0 " << eref.s0);
    RODIMUS_CHECK_GRAD_ERRORS(eref, kRefTol);
    const GradErrors e32 = compare(c, g32, g64);
    INFO("fp32 vs fp64: dq " << e32.q << " dk " << e32.k << " da " << e32.a << " du " << e32.u
                             << " dS0 " << e32.s0);
    RODIMUS_CHECK_GRAD_ERRORS(e32, kF32Tol);
    take_max(worst.fd, efd);
    take_max(worst.ref, eref);
    take_max(worst.f32, e32);
    // a second call reuses the grown workspace and gives the same answer
    const Grads again = run_backward<C, double, Space>(c, ws64);
    CHECK(compare(c, again, g64).worst() == 0.0);
  });
}

void check_all(const GlaCase& c, const char* what) {
  const Grads fd = finite_differences(c);
  const Grads ref = reference_backward(c);
  REQUIRE(all_finite(fd));
  REQUIRE(all_finite(ref));
  {
    // the referee itself against the differences
    const GradErrors e = compare(c, ref, fd);
    INFO(what << ": reference backward vs finite differences: dq " << e.q << " dk " << e.k
              << " da " << e.a << " du " << e.u << " dS0 " << e.s0);
    RODIMUS_CHECK_GRAD_ERRORS(e, kFdTol);
  }
  Worst worst;
  check_chunk<8>(c, fd, ref, what, worst);
  check_chunk<16>(c, fd, ref, what, worst);
  check_chunk<64>(c, fd, ref, what, worst);
  WARN(what << ": max block error, fp64 vs finite differences " << worst.fd.worst() << " (da "
            << worst.fd.a << "), fp64 vs reference " << worst.ref.worst() << " (da "
            << worst.ref.a << "), fp32 vs fp64 " << worst.f32.worst() << " (da " << worst.f32.a
            << ")");
}

std::vector<Decay> mixed_regimes(TestRng& rng, int n) {
  std::vector<Decay> r(n);
  for (int i = 0; i < n; ++i) r[i] = i < 5 ? static_cast<Decay>(i) : Decay::Mixed;
  std::shuffle(r.begin(), r.end(), rng.gen);
  return r;
}

}  // namespace

TEST_CASE("gla_scan_backward: chunked fp64 gradients match central differences, mixed decays",
          "[grad][gla_scan]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  SECTION("n=8 E=36, given S0 and final-state gradient, 5 packed sequences") {
    // lengths: one token, not multiples of any C, exactly one C=64 chunk, several chunks
    const auto c =
        make_case(rng, 8, 36, {1, 37, 131, 64, 5}, mixed_regimes(rng, 8), false, true);
    check_all(c, "mixed decays");
  }
  SECTION("n=5 E=7, zero S0, no final-state gradient") {
    const auto c = make_case(rng, 5, 7, {100, 3, 8, 1}, mixed_regimes(rng, 5), true, false);
    check_all(c, "zero S0");
  }
}

TEST_CASE("gla_scan_backward: strong and extreme decays stay finite and exact",
          "[grad][gla_scan]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  SECTION("every slot strong or extreme") {
    std::vector<Decay> r = {Decay::Strong, Decay::Extreme, Decay::Extreme, Decay::Strong};
    const auto c = make_case(rng, 4, 6, {150, 17}, r, false, true);
    check_all(c, "strong/extreme decays");
  }
  SECTION("every slot zero (no forgetting), large states") {
    const auto c = make_case(rng, 4, 6, {150, 9}, std::vector<Decay>(4, Decay::Zero), false, true);
    check_all(c, "zero decays");
  }
}

TEST_CASE("gla_scan_backward: empty sequences pass the final-state gradient to dS0",
          "[grad][gla_scan]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  const auto c = make_case(rng, 3, 4, {0, 5, 0}, mixed_regimes(rng, 3), false, true);
  check_all(c, "empty sequences");
  using Space = Kokkos::DefaultHostExecutionSpace;
  grad::GlaScanGradWorkspace<double, Space> ws;
  const Grads g = run_backward<16, double, Space>(c, ws);
  const std::size_t ss = std::size_t(c.n) * c.e;
  for (int b : {0, 2})
    CHECK(test::slice(g.ds0, c.slot[b] * ss, ss) == test::slice(c.d_final, c.slot[b] * ss, ss));
}

TEST_CASE("gla_scan_backward: d_state0 may alias d_state_final", "[grad][gla_scan]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  using Space = Kokkos::DefaultHostExecutionSpace;
  using CV2 = View2<const double, Space>;
  using CV3 = View3<const double, Space>;
  const auto c = make_case(rng, 6, 40, {70, 1, 33}, mixed_regimes(rng, 6), false, true);
  grad::GlaScanGradWorkspace<double, Space> ws;
  const Grads apart = run_backward<16, double, Space>(c, ws);
  const int nt = c.tokens();
  test::Batch<Space> batch(c.lengths, std::vector<int>(c.lengths.size(), 0), c.slot);
  auto q = tg::upload2r<double, Space>(c.q, nt, c.n);
  auto k = tg::upload2r<double, Space>(c.k, nt, c.n);
  auto a = tg::upload2r<double, Space>(c.a, nt, c.n);
  auto u = tg::upload2r<double, Space>(c.u, nt, c.e);
  auto d_o = tg::upload2r<double, Space>(c.d_o, nt, c.e);
  auto s0 = tg::upload3r<double, Space>(c.state0, c.slots, c.n, c.e);
  auto dstate = tg::upload3r<double, Space>(c.d_final, c.slots, c.n, c.e);  // in: dS_fin, out: dS0
  View2<double, Space> dq("dq", nt, c.n), dk("dk", nt, c.n), da("da", nt, c.n), du("du", nt, c.e);
  grad::gla_scan_backward<ChunkedScan<16>, double>(
      Space{}, CV2(q), CV2(k), CV2(a), CV2(u), CV3(s0), batch.seq, CV2(d_o), CV3(dstate), dq, dk,
      da, du, dstate, 1.0 / std::sqrt(double(c.n)), ws);
  const auto got = tg::download(dstate);
  const std::size_t ss = std::size_t(c.n) * c.e;
  for (int b = 0; b < int(c.lengths.size()); ++b)
    CHECK(test::slice(got, c.slot[b] * ss, ss) == test::slice(apart.ds0, c.slot[b] * ss, ss));
  CHECK(tg::download(da) == apart.da);
}

TEST_CASE("gla_scan_backward: bad shapes throw ArgumentError naming the argument",
          "[grad][gla_scan]") {
  using Space = Kokkos::DefaultHostExecutionSpace;
  using V2 = View2<double, Space>;
  using V3 = View3<double, Space>;
  using CV2 = View2<const double, Space>;
  using CV3 = View3<const double, Space>;
  const int n = 4, e = 6, nt = 10, slots = 2;
  test::Batch<Space> batch({6, 4}, {0, 0}, {1, 0});
  V2 q("q", nt, n), k("k", nt, n), a("a", nt, n), u("u", nt, e), d_o("do", nt, e);
  V2 dq("dq", nt, n), dk("dk", nt, n), da("da", nt, n), du("du", nt, e);
  V3 s0("s0", slots, n, e), dfin("dfin", slots, n, e), ds0("ds0", slots, n, e);
  grad::GlaScanGradWorkspace<double, Space> ws;
  struct Args {
    V2 q, k, a, u, d_o, dq, dk, da, du;
    V3 s0, dfin, ds0;
  };
  const Args good{q, k, a, u, d_o, dq, dk, da, du, s0, dfin, ds0};
  auto call = [&](const Args& x, const SeqBatch<Space>& b) {
    grad::gla_scan_backward<ChunkedScan<16>, double>(
        Space{}, CV2(x.q), CV2(x.k), CV2(x.a), CV2(x.u), CV3(x.s0), b, CV2(x.d_o), CV3(x.dfin),
        x.dq, x.dk, x.da, x.du, x.ds0, 0.5, ws);
  };
  REQUIRE_NOTHROW(call(good, batch.seq));
  auto expect = [&](Args x, const std::string& name) {
    INFO("argument " << name);
    CHECK_THROWS_AS(call(x, batch.seq), ArgumentError);
    CHECK_THROWS_WITH(call(x, batch.seq), Catch::Contains("gla_scan_backward: " + name));
  };
  Args x = good;
  x.k = V2("k", nt, n + 1);
  expect(x, "k");
  x = good;
  x.a = V2("a", nt - 1, n);
  expect(x, "a");
  x = good;
  x.u = V2("u", nt - 1, e);
  expect(x, "u");
  x = good;
  x.d_o = V2("do", nt, e + 1);
  expect(x, "d_o");
  x = good;
  x.q = V2("q", nt - 1, n);
  expect(x, "q");
  x = good;
  x.s0 = V3("s0", slots, n, e + 1);
  expect(x, "state0");
  x = good;
  x.dfin = V3("dfin", slots + 1, n, e);
  expect(x, "d_state_final");
  x = good;
  x.dq = V2("dq", nt, n - 1);
  expect(x, "dq");
  x = good;
  x.dk = V2("dk", nt - 1, n);
  expect(x, "dk");
  x = good;
  x.da = V2("da", nt, n + 2);
  expect(x, "da");
  x = good;
  x.du = V2("du", nt, e - 1);
  expect(x, "du");
  x = good;
  x.ds0 = V3("ds0", slots - 1, n, e);
  expect(x, "d_state0");
  // a slot past state0's extent
  test::Batch<Space> bad_slot({6, 4}, {0, 0}, {2, 0});
  CHECK_THROWS_WITH(call(good, bad_slot.seq), Catch::Contains("gla_scan_backward: batch.slot"));
  // an empty d_state_final means "no final-state gradient"
  x = good;
  x.dfin = V3();
  CHECK_NOTHROW(call(x, batch.seq));
}
