// gla_scan (SPEC 2 step 7, SPEC 2.1): the recurrence and the chunk scanner for C = 16..128 on
// every backend against the fp64 recurrence, per sequence of a packed batch with carried
// state, for decays from none (a = 0) to very strong (a = -60 per step).
#include "op_test_util.hpp"
#include "rodimus/ops/gla_scan.hpp"
#include "rodimus/reference/gla_scan.hpp"

using namespace rodimus;
using test::TestRng;

namespace {

// The scan is a sum of decayed rank-1 updates; every path (recurrence, chunk prep with exp of
// accumulated log decays, inter-chunk carry) costs O(1) fp32 roundings per term, so the error
// relative to the output's scale grows like sqrt(T) * 2^-24 (T <= 300: ~1e-6). 1e-5 leaves room
// for the worst sequence while any real defect (a lost term, a wrong decay) is >> 1e-3.
constexpr double kTol = 1e-5;
/// Kokkos::Cuda runs the tensor-core chunk kernel, whose operands other than the inputs are fp32
/// values split into two bf16 halves (about 2^-16 relative each): a few times 1e-5.
template <class Space>
constexpr double scan_tol = is_cuda_space_v<Space> ? 4e-5 : kTol;

/// Test-only tags: the generic Kokkos kernels called directly (on host spaces RecurrentScan runs
/// backend/host/gla_scan.hpp and ChunkedScan<C> backend/host/gla_chunk_scan.hpp for prefill;
/// these keep the portable GPU kernels tested on the host too).
struct GenericRecurrent {};
template <int C>
struct GenericChunked {
  static constexpr int chunk_size = C;
};
template <class T>
struct is_generic_chunked : std::false_type {};
template <int C>
struct is_generic_chunked<GenericChunked<C>> : std::true_type {};

/// Calls f.template operator()<Algo>(name) for the recurrence and every chunk size.
template <class F>
void for_each_algo(F&& f) {
  f.template operator()<RecurrentScan>("recurrent");
  f.template operator()<GenericRecurrent>("generic Kokkos recurrence");
  f.template operator()<GenericChunked<32>>("generic Kokkos chunk scanner C=32");
  f.template operator()<ChunkedScan<16>>("chunked C=16");
  f.template operator()<ChunkedScan<32>>("chunked C=32");
  f.template operator()<ChunkedScan<64>>("chunked C=64");
  f.template operator()<ChunkedScan<128>>("chunked C=128");
}

enum class Decay { Strong, Weak, Mid, Mixed, Zero };

/// Log decays a: [T, n]; slot i follows regime[i]: strong a in [-60, -10], weak [-0.1, 0],
/// mid [-3, 0], mixed (each step picks one of the three, or -60, or exactly 0), zero (a = 0).
std::vector<double> log_decays(TestRng& rng, int T, int n, const std::vector<Decay>& regime) {
  std::vector<double> a(std::size_t(T) * n);
  for (int t = 0; t < T; ++t)
    for (int i = 0; i < n; ++i) {
      Decay r = regime[i];
      double v = 0;
      if (r == Decay::Mixed) {
        const int pick = rng.integer(0, 4);
        if (pick == 3) {
          a[std::size_t(t) * n + i] = -60.0;
          continue;
        }
        if (pick == 4) {
          a[std::size_t(t) * n + i] = 0.0;
          continue;
        }
        r = static_cast<Decay>(pick);
      }
      switch (r) {
        case Decay::Strong:
          v = rng.f32(-60, -10);
          break;
        case Decay::Weak:
          v = rng.f32(-0.1, 0);
          break;
        case Decay::Mid:
          v = rng.f32(-3, 0);
          break;
        default:
          v = 0;
          break;
      }
      a[std::size_t(t) * n + i] = v;
    }
  return a;
}

/// Every slot's regime drawn from all four (each present when n >= 4).
std::vector<Decay> mixed_regimes(TestRng& rng, int n) {
  std::vector<Decay> r(n);
  for (int i = 0; i < n; ++i)
    r[i] = i < 4 ? static_cast<Decay>(i) : static_cast<Decay>(rng.integer(0, 3));
  std::shuffle(r.begin(), r.end(), rng.gen);
  return r;
}

/// Inputs of one packed scan and its fp64 answer.
struct ScanCase {
  int n = 0, e = 0, slots = 0;
  std::vector<int> lengths, pos0, slot;
  std::vector<double> q, k, a, u, state0;  // [N, n] x3, [N, E], [S, n, E]
  std::vector<double> ref_o, ref_state;
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

ScanCase make_case(TestRng& rng, int n, int e, std::vector<int> lengths,
                   const std::vector<Decay>& regime, double state_scale = 1.0) {
  ScanCase c;
  c.n = n;
  c.e = e;
  c.lengths = std::move(lengths);
  const int nseq = static_cast<int>(c.lengths.size());
  c.slots = nseq + 2;
  c.slot = test::shuffled_slots(rng, nseq, c.slots);
  for (int i = 0; i < nseq; ++i) c.pos0.push_back(rng.integer(1, 5000));
  const int nt = c.tokens();
  c.q = rng.vec(std::size_t(nt) * n);
  c.k = rng.vec(std::size_t(nt) * n);
  c.u = rng.vec(std::size_t(nt) * e);
  c.a = log_decays(rng, nt, n, regime);
  c.state0 = rng.vec(std::size_t(c.slots) * n * e, -state_scale, state_scale);
  // fp64 recurrence, sequence by sequence, each from its slot's state
  c.ref_o.assign(std::size_t(nt) * e, 0.0);
  c.ref_state = c.state0;
  const std::size_t ss = std::size_t(n) * e;
  for (int s = 0; s < nseq; ++s) {
    const int off = c.offset(s), len = c.lengths[s];
    std::vector<double> S = test::slice(c.state0, c.slot[s] * ss, ss);
    const auto o = reference::gla_scan_recurrent(
        test::rows_of(c.q, off, len, n), test::rows_of(c.k, off, len, n),
        test::rows_of(c.u, off, len, e), test::rows_of(c.a, off, len, n), len, n, e, S);
    std::copy(o.begin(), o.end(), c.ref_o.begin() + std::ptrdiff_t(off) * e);
    std::copy(S.begin(), S.end(), c.ref_state.begin() + std::ptrdiff_t(c.slot[s] * ss));
  }
  return c;
}

/// Result of the Kokkos scan on one case: outputs [N, E] and the whole state [S, n, E].
struct ScanResult {
  std::vector<double> o, state;
};

template <class Algo, class Space>
void call_scan(const View2<const float, Space>& q, const View2<const float, Space>& k,
               const View2<const float, Space>& a, const View2<const float, Space>& u,
               const View3<float, Space>& state, const SeqBatch<Space>& batch,
               const View2<float, Space>& o, float scale, GlaScanWorkspace<Space>& ws) {
  if constexpr (std::is_same_v<Algo, GenericRecurrent>) {
    detail::ensure_capacity(ws.decay, batch.num_tokens, q.extent(1), "test.decay");
    detail::exp_generic<Space>(Space{}, a, ws.decay, batch.num_tokens);
    detail::gla_recurrent_generic<Space>(Space{}, q, k, ws.decay, u, state, batch, o, scale);
  } else if constexpr (is_generic_chunked<Algo>::value) {
    detail::gla_chunked_generic<Algo::chunk_size, Space>(Space{}, q, k, a, u, state, batch, o,
                                                         scale, ws.chunk);
  } else {
    gla_scan<Algo>(Space{}, q, k, a, u, state, batch, o, scale, ws);
  }
}

template <class Algo, class Space>
ScanResult run_scan(const ScanCase& c, GlaScanWorkspace<Space>& ws) {
  using CV = View2<const float, Space>;
  const int nt = c.tokens();
  test::Batch<Space> batch(c.lengths, c.pos0, c.slot);
  auto q = test::upload2<float, Space>(c.q, nt + 1, c.n, 1.0);
  auto k = test::upload2<float, Space>(c.k, nt + 1, c.n, 1.0);
  auto a = test::upload2<float, Space>(c.a, nt + 1, c.n, -1.0);
  auto u = test::upload2<float, Space>(c.u, nt + 1, c.e, 1.0);
  auto state = test::upload3<Space>(c.state0, c.slots, c.n, c.e);
  auto o = test::upload2<float, Space>({}, nt + 1, c.e, 7.0);
  call_scan<Algo, Space>(CV(q), CV(k), CV(a), CV(u), state, batch.seq, o,
                         static_cast<float>(1.0 / std::sqrt(double(c.n))), ws);
  ScanResult r;
  const auto all_o = test::download2(o);
  r.o = test::rows_of(all_o, 0, nt, c.e);
  CHECK(test::rows_of(all_o, nt, 1, c.e) == std::vector<double>(c.e, 7.0));
  r.state = test::download3(state);
  return r;
}

/// Max over sequences of the error relative to that sequence's output scale, and over slots of
/// the error relative to that slot's state scale. Non-finite values give infinity.
struct Errors {
  double o = 0, state = 0;
};

Errors compare(const ScanCase& c, const std::vector<double>& o, const std::vector<double>& state,
               const std::vector<double>& ref_o, const std::vector<double>& ref_state) {
  Errors err;
  for (int s = 0; s < int(c.lengths.size()); ++s) {
    if (c.lengths[s] == 0) continue;
    const auto off = std::size_t(c.offset(s)) * c.e, cnt = std::size_t(c.lengths[s]) * c.e;
    err.o = std::max(err.o, test::rel_err(test::slice(o, off, cnt), test::slice(ref_o, off, cnt)));
  }
  const std::size_t ss = std::size_t(c.n) * c.e;
  for (int sl = 0; sl < c.slots; ++sl)
    err.state = std::max(err.state, test::rel_err(test::slice(state, sl * ss, ss),
                                                  test::slice(ref_state, sl * ss, ss)));
  return err;
}

/// Runs every algorithm on every backend; checks against fp64 and against the fp32 recurrence.
/// `row_groups` > 0 forces the host decode kernel's groups of state rows per sequence.
void check_all(const ScanCase& c, const char* what, int row_groups = 0) {
  Errors worst;
  test::for_each_space([&]<class Space>() {
    GlaScanWorkspace<Space> ws;  // reused across algorithms and calls: it only grows
    ws.decode_row_groups = row_groups;
    ScanResult rec;
    for_each_algo([&]<class Algo>(const char* algo) {
      INFO(what << ": backend " << Space::name() << ", " << algo << ", n=" << c.n << " E=" << c.e);
      const ScanResult r = run_scan<Algo, Space>(c, ws);
      CHECK(test::all_finite(r.o));
      CHECK(test::all_finite(r.state));
      const Errors e = compare(c, r.o, r.state, c.ref_o, c.ref_state);
      worst.o = std::max(worst.o, e.o);
      worst.state = std::max(worst.state, e.state);
      CHECK(e.o <= scan_tol<Space>);
      CHECK(e.state <= scan_tol<Space>);
      if constexpr (std::is_same_v<Algo, RecurrentScan>) {
        rec = r;
      } else {
        // the chunk scanner against the fp32 recurrence
        const Errors ec = compare(c, r.o, r.state, rec.o, rec.state);
        CHECK(ec.o <= scan_tol<Space>);
        CHECK(ec.state <= scan_tol<Space>);
      }
    });
  });
  WARN(what << ": max rel err vs fp64, output " << worst.o << ", state " << worst.state);
}

}  // namespace

TEST_CASE("gla_scan: recurrence and chunk scanner match the fp64 recurrence, mixed decays",
          "[ops][gla_scan]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  // lengths that are not multiples of any chunk, plus an empty and a one-token sequence
  const std::vector<int> lengths = {1, 15, 0, 17, 100, 130, 300};
  SECTION("n=16 E=24") {
    const auto c = make_case(rng, 16, 24, lengths, mixed_regimes(rng, 16));
    check_all(c, "mixed decays");
  }
  SECTION("n=33 E=37 (odd sizes)") {
    const auto c =
        make_case(rng, 33, 37, {130, 1, 64, 65, rng.integer(0, 200)}, mixed_regimes(rng, 33));
    check_all(c, "mixed decays, odd sizes");
  }
  SECTION("n=64 E=8, every slot strong, large carried state") {
    const auto c =
        make_case(rng, 64, 8, {300, 17, 128}, std::vector<Decay>(64, Decay::Strong), 1e3);
    check_all(c, "strong decays");
  }
  // the shapes of the tensor-core chunk kernel that Kokkos::Cuda runs (n = 32 / 64, E % 64 == 0)
  SECTION("n=64 E=128, mixed decays (CUDA tensor-core kernel shape)") {
    const auto c = make_case(rng, 64, 128, {1, 33, 0, 100, 64}, mixed_regimes(rng, 64));
    check_all(c, "mixed decays, kernel shape");
  }
  SECTION("n=32 E=64, every slot strong (CUDA tensor-core kernel shape)") {
    const auto c =
        make_case(rng, 32, 64, {70, 5, 130}, std::vector<Decay>(32, Decay::Strong), 1e3);
    check_all(c, "strong decays, kernel shape");
  }
  // long sequences: on Kokkos::Cuda the chunk kernel's split schedule (chunk groups in
  // parallel), on the host the host kernel
  SECTION("n=64 E=128, long sequences, mixed decays (CUDA split schedule)") {
    const auto c = make_case(rng, 64, 128, {300, 7, 450, 0}, mixed_regimes(rng, 64));
    check_all(c, "mixed decays, long sequences");
  }
  SECTION("n=32 E=64, long sequences, every slot strong (CUDA split schedule)") {
    const auto c =
        make_case(rng, 32, 64, {400, 260}, std::vector<Decay>(32, Decay::Strong), 1e3);
    check_all(c, "strong decays, long sequences");
  }
  SECTION("n=4 E=5, every slot weak") {
    const auto c = make_case(rng, 4, 5, {300, 129, 2}, std::vector<Decay>(4, Decay::Weak));
    check_all(c, "weak decays");
  }
}

TEST_CASE("gla_scan: decode calls with the state rows split into groups", "[ops][gla_scan]") {
  // decode calls (<= 4 tokens a sequence) run (sequence, row group) items on host spaces, the
  // last item of a sequence adding the groups' parts of o; each group count twice in a row
  // (the merge counters must be zero again after a call)
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  const int n = 64, e = rng.integer(40, 72);
  for (const int groups : {1, 2, 3, 5, 16, 64, 0}) {
    for (int call = 0; call < 2; ++call) {
      std::vector<int> lengths;
      const int nseq = rng.integer(1, 5);
      for (int i = 0; i < nseq; ++i) lengths.push_back(rng.integer(1, 4));
      if (call == 1) lengths.push_back(0);
      INFO("row groups " << groups << " (0 = automatic), call " << call << ", E=" << e);
      const auto c = make_case(rng, n, e, lengths, mixed_regimes(rng, n));
      check_all(c, "decode row groups", groups);
    }
  }
  // odd height: n=7 in 3 groups (rows 2, 2, 3: no 4-row pass)
  const auto c = make_case(rng, 7, 33, {1, 3, 2}, mixed_regimes(rng, 7));
  check_all(c, "decode row groups, n=7", 3);
}

TEST_CASE("gla_scan: the decode row-group plan", "[ops][gla_scan]") {
  using backend::host::gla_scan_decode_row_groups;
  CHECK(gla_scan_decode_row_groups(64, 1, 1) == 1);
  CHECK(gla_scan_decode_row_groups(64, 1, 2) == 2);   // one sequence: both threads, rows split
  CHECK(gla_scan_decode_row_groups(64, 2, 2) == 1);   // a sequence per thread
  CHECK(gla_scan_decode_row_groups(64, 3, 2) == 2);   // 6 items: 3 half-states each
  CHECK(gla_scan_decode_row_groups(64, 1, 32) == 16); // at least 4 rows a group
  CHECK(gla_scan_decode_row_groups(64, 4, 16) == 4);
  CHECK(gla_scan_decode_row_groups(64, 9, 2) == 1);   // >= 4 sequences a thread: no split
  CHECK(gla_scan_decode_row_groups(2, 1, 8) == 1);    // too few rows to split
}

TEST_CASE("gla_scan: decays exactly 0 (no forgetting) over hundreds of steps", "[ops][gla_scan]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  const auto c = make_case(rng, 16, 20, {300, 257, 1, 16}, std::vector<Decay>(16, Decay::Zero));
  check_all(c, "zero decay");
}

TEST_CASE("gla_scan: the state carried across two calls equals one call", "[ops][gla_scan]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  const int n = 16, e = 12;
  const auto c = make_case(rng, n, e, {200, 150, 64, 3}, mixed_regimes(rng, n));
  // cut every sequence somewhere (a cut of 0 or len: one call is empty for that sequence)
  std::vector<int> cut;
  for (int l : c.lengths) cut.push_back(rng.integer(0, l));
  INFO("cuts " << cut[0] << " " << cut[1] << " " << cut[2] << " " << cut[3]);
  ScanCase first = c, second = c;
  first.q.clear();
  first.k.clear();
  first.a.clear();
  first.u.clear();
  second.q.clear();
  second.k.clear();
  second.a.clear();
  second.u.clear();
  for (int s = 0; s < int(c.lengths.size()); ++s) {
    const int off = c.offset(s), len = c.lengths[s];
    auto take = [&](ScanCase& dst, int from, int count) {
      auto ins = [&](std::vector<double>& d, const std::vector<double>& src, int cols) {
        const auto r = test::rows_of(src, off + from, count, cols);
        d.insert(d.end(), r.begin(), r.end());
      };
      ins(dst.q, c.q, n);
      ins(dst.k, c.k, n);
      ins(dst.a, c.a, n);
      ins(dst.u, c.u, e);
    };
    take(first, 0, cut[s]);
    first.lengths[s] = cut[s];
    take(second, cut[s], len - cut[s]);
    second.lengths[s] = len - cut[s];
    second.pos0[s] = c.pos0[s] + cut[s];
  }
  test::for_each_space([&]<class Space>() {
    for_each_algo([&]<class Algo>(const char* algo) {
      INFO("backend " << Space::name() << ", " << algo);
      GlaScanWorkspace<Space> ws;
      const ScanResult one = run_scan<Algo, Space>(c, ws);
      const ScanResult r1 = run_scan<Algo, Space>(first, ws);
      second.state0 = r1.state;
      const ScanResult r2 = run_scan<Algo, Space>(second, ws);
      // reassemble the outputs of the two calls in the order of the one call
      std::vector<double> o(one.o.size());
      for (int s = 0; s < int(c.lengths.size()); ++s) {
        std::copy_n(r1.o.begin() + std::ptrdiff_t(first.offset(s)) * e,
                    std::size_t(first.lengths[s]) * e, o.begin() + std::ptrdiff_t(c.offset(s)) * e);
        std::copy_n(r2.o.begin() + std::ptrdiff_t(second.offset(s)) * e,
                    std::size_t(second.lengths[s]) * e,
                    o.begin() + std::ptrdiff_t(c.offset(s) + cut[s]) * e);
      }
      const Errors err = compare(c, o, r2.state, one.o, one.state);
      CHECK(err.o <= kTol);
      CHECK(err.state <= kTol);
      // and both against fp64
      const Errors ref = compare(c, o, r2.state, c.ref_o, c.ref_state);
      CHECK(ref.o <= kTol);
      CHECK(ref.state <= kTol);
      if constexpr (std::is_same_v<Algo, RecurrentScan>) {
        // the recurrence does the same arithmetic either way: bit-identical on host spaces,
        // within test::split_tol (1e-6) on GPU spaces, where a kernel may reduce in parallel
        // (err: per sequence and per slot, relative to its own scale)
        CHECK(err.o <= test::split_tol<Space>);
        CHECK(err.state <= test::split_tol<Space>);
      }
    });
  });
}

TEST_CASE("gla_scan rejects wrong extents", "[ops][gla_scan][errors]") {
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    using CV = View2<const float, Space>;
    test::Batch<Space> batch({3}, {0}, {0});
    auto q = test::upload2<float, Space>({}, 3, 8, 0.5);
    auto u = test::upload2<float, Space>({}, 3, 6, 0.5);
    auto o = test::upload2<float, Space>({}, 3, 6);
    auto bad_state =
        test::upload3<Space>(std::vector<double>(1 * 8 * 5, 0.0), 1, 8, 5);  // E = 5 != 6
    GlaScanWorkspace<Space> ws;
    CHECK_THROWS_AS(gla_scan<ChunkedScan<64>>(Space{}, CV(q), CV(q), CV(q), CV(u), bad_state,
                                              batch.seq, o, 0.25f, ws),
                    ArgumentError);
    auto state = test::upload3<Space>(std::vector<double>(1 * 8 * 6, 0.0), 1, 8, 6);
    auto a7 = test::upload2<float, Space>({}, 3, 7, -0.5);
    CHECK_THROWS_AS(gla_scan<RecurrentScan>(Space{}, CV(q), CV(q), CV(a7), CV(u), state, batch.seq,
                                            o, 0.25f, ws),
                    ArgumentError);
    auto q_short = test::upload2<float, Space>({}, 2, 8, 0.5);  // 2 rows for 3 tokens
    CHECK_THROWS_AS(gla_scan<RecurrentScan>(Space{}, CV(q_short), CV(q), CV(q), CV(u), state,
                                            batch.seq, o, 0.25f, ws),
                    ArgumentError);
  });
}
