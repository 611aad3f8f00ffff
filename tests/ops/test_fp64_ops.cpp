// The forward ops in fp64 (Real = double, the training forward of the gradient checks) on every
// backend against the fp64 reference: agreement to rounding.
#include "../grad/grad_test_util.hpp"
#include "op_test_util.hpp"
#include "rodimus/grad/rope.hpp"
#include "rodimus/ops/ddts_gate.hpp"
#include "rodimus/ops/embedding.hpp"
#include "rodimus/ops/gated_rms_norm.hpp"
#include "rodimus/ops/gla_scan.hpp"
#include "rodimus/ops/linear.hpp"
#include "rodimus/ops/rms_norm.hpp"
#include "rodimus/ops/rope.hpp"
#include "rodimus/ops/short_conv.hpp"
#include "rodimus/ops/sliding_window_attention.hpp"
#include "rodimus/ops/swiglu.hpp"
#include "rodimus/reference/ddts_gate.hpp"
#include "rodimus/reference/gla_scan.hpp"
#include "rodimus/reference/linear.hpp"
#include "rodimus/reference/rms_norm.hpp"
#include "rodimus/reference/rope.hpp"
#include "rodimus/reference/short_conv.hpp"
#include "rodimus/reference/sliding_window_attention.hpp"
#include "rodimus/reference/swiglu.hpp"

using namespace rodimus;
using test::TestRng;

namespace {

// fp64 against fp64: only rounding (and the order of sums) differs.
constexpr double kTol = 1e-12;

template <class Space>
using D2 = View2<double, Space>;
template <class Space>
using CD2 = View2<const double, Space>;
template <class Space>
using CD1 = View1<const double, Space>;

double err(const std::vector<double>& got, const std::vector<double>& ref) {
  return test::grad_err(got, ref);
}

/// Unlimited random inputs (no fp32 rounding: the op sees full fp64 values).
std::vector<double> rvec(TestRng& rng, std::size_t n, double lo = -1, double hi = 1) {
  std::vector<double> v(n);
  for (auto& x : v) x = rng.uniform(lo, hi);
  return v;
}

}  // namespace

TEST_CASE("fp64 forward ops match the fp64 reference", "[ops][fp64]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  const std::vector<int> lengths{5, 13};
  const int nt = 18, d = 12, e = 10, n = 4, r = 3, k = 3;
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    test::Batch<Space> batch(lengths, {0, 0}, {0, 1});
    const auto& seq = batch.seq;
    auto up2 = [](const std::vector<double>& v, int rows, int cols) {
      return test::upload2r<double, Space>(v, rows, cols);
    };
    auto up1 = [](const std::vector<double>& v) { return test::upload1r<double, Space>(v); };

    // linear with bias                                       [N, D] -> [N, E]
    const auto x = rvec(rng, std::size_t(nt) * d), w = rvec(rng, std::size_t(e) * d),
               b = rvec(rng, e);
    D2<Space> y("y", nt, e);
    linear(Space{}, CD2<Space>(up2(x, nt, d)),
           LinearWeights<double, Space>{CD2<Space>(up2(w, e, d)), CD1<Space>(up1(b))}, y, nt);
    CHECK(err(test::download_r(y), reference::linear(x, w, nt, d, e, &b)) < kTol);

    // rms_norm and add_rms_norm (Add)
    const auto wn = rvec(rng, d, 0.5, 1.5), h = rvec(rng, std::size_t(nt) * d);
    D2<Space> out("out", nt, d);
    rms_norm<double>(Space{}, up2(x, nt, d), up1(wn), out, nt, 1e-5);
    CHECK(err(test::download_r(out), reference::rms_norm(x, wn, 1e-5, nt, d)) < kTol);
    auto rr = up2(x, nt, d);
    add_rms_norm<double>(Space{}, up2(h, nt, d), rr, up1(wn), out, nt, 1e-5, ResidualMode::Add);
    std::vector<double> hx(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) hx[i] = h[i] + x[i];
    CHECK(err(test::download_r(out), reference::rms_norm(hx, wn, 1e-5, nt, d)) < kTol);
    CHECK(err(test::download_r(rr), hx) < kTol);

    // gated RMSNorm with the residual term                   [N, E]
    const auto o = rvec(rng, std::size_t(nt) * e), xs = rvec(rng, std::size_t(nt) * e),
               g = rvec(rng, std::size_t(nt) * e, -4, 4), wr = rvec(rng, e), we = rvec(rng, e);
    D2<Space> yg("yg", nt, e);
    gated_rms_norm<double>(Space{}, up2(o, nt, e), up2(xs, nt, e), up1(wr), up2(g, nt, e), up1(we),
                           yg, nt, 1e-5);
    std::vector<double> om(o.size());
    for (int t = 0; t < nt; ++t)
      for (int c = 0; c < e; ++c) om[t * e + c] = o[t * e + c] + xs[t * e + c] * wr[c];
    CHECK(err(test::download_r(yg), reference::gated_rms_norm(om, g, we, 1e-5, nt, e)) < kTol);

    // ShortConv + SiLU from zero states, two sequences       [N, E]
    const auto xc = rvec(rng, std::size_t(nt) * e), wc = rvec(rng, std::size_t(e) * k),
               bc = rvec(rng, e);
    View3<double, Space> state("state", 2, k - 1, e);
    D2<Space> xsc("xsc", nt, e);
    short_conv<double>(Space{}, up2(xc, nt, e), up2(wc, e, k), up1(bc), state, seq, xsc, false);
    const auto got_conv = test::download_r(xsc);
    for (int s = 0; s < 2; ++s) {
      const int off = batch.offset(s), len = lengths[s];
      const auto ref = reference::short_conv(test::rows_of(xc, off, len, e), wc, bc, len, e, k).y;
      CHECK(err(test::rows_of(got_conv, off, len, e), ref) < kTol);
    }

    // DDTS gates and key scaling                             [N, n]
    const auto sr = rvec(rng, std::size_t(nt) * n, -6, 3),
               tr = rvec(rng, std::size_t(nt) * n, -4, 4), kk = rvec(rng, std::size_t(nt) * n);
    D2<Space> a("a", nt, n), kp("kp", nt, n);
    ddts_gate<double>(Space{}, up2(sr, nt, n), up2(tr, nt, n), up2(kk, nt, n), a, kp, nt, 1e-12);
    const auto gates = reference::ddts_gates(test::hcat(sr, tr, nt), nt, n);
    CHECK(err(test::download_r(a), gates.a) < kTol);
    CHECK(err(test::download_r(kp), reference::l2_normalize_scale(kk, gates.beta, 1e-12, nt, n)) <
          kTol);

    // channel gate                                           [N, E]
    const auto w1 = rvec(rng, std::size_t(r) * e), w2 = rvec(rng, std::size_t(e) * r),
               b2 = rvec(rng, e);
    D2<Space> zr("zr", nt, r), ze("ze", nt, e), u("u", nt, e);
    const ChannelGateWeights<double, Space> cg{{CD2<Space>(up2(w1, r, e)), CD1<Space>()},
                                               {CD2<Space>(up2(w2, e, r)), CD1<Space>(up1(b2))}};
    channel_gate(Space{}, CD2<Space>(up2(xc, nt, e)), cg, zr, ze, u, nt);
    CHECK(err(test::download_r(u), reference::channel_gate(xc, w1, w2, b2, nt, e, r)) < kTol);

    // SwiGLU                                                 [N, F]
    D2<Space> sw("sw", nt, e);
    swiglu<double>(Space{}, up2(o, nt, e), up2(g, nt, e), sw, nt);
    CHECK(err(test::download_r(sw), reference::swiglu(test::hcat(o, g, nt), nt, e)) < kTol);

    // embedding                                              [N] -> [N, D]
    std::vector<int> ids(nt);
    for (auto& id : ids) id = rng.integer(0, 6);
    View1<int, Space> dids("ids", nt);
    auto hids = Kokkos::create_mirror_view(dids);
    for (int t = 0; t < nt; ++t) hids(t) = ids[t];
    Kokkos::deep_copy(dids, hids);
    const auto table = rvec(rng, std::size_t(7) * d);
    D2<Space> he("he", nt, d);
    embedding(Space{}, View1<const int, Space>(dids), CD2<Space>(up2(table, 7, d)), 0.5, he, nt);
    std::vector<double> he_ref;
    for (int t = 0; t < nt; ++t)
      for (int c = 0; c < d; ++c) he_ref.push_back(0.5 * table[std::size_t(ids[t]) * d + c]);
    CHECK(err(test::download_r(he), he_ref) < kTol);

    // RoPE and windowed attention within the call (caches of zero rows)
    const int heads = 4, hk = 2, hv = 1, hd = 6, rd = 4;
    const auto q = rvec(rng, std::size_t(nt) * heads * hd),
               kq = rvec(rng, std::size_t(nt) * hk * hd), v = rvec(rng, std::size_t(nt) * hv * hd);
    auto dq = up2(q, nt, heads * hd);
    auto dk = up2(kq, nt, hk * hd);
    const auto inv = grad::rope_inv_freq<double, Space>(rd, 10000.0);
    rope<double>(Space{}, dq, heads, hd, inv, rd, seq);
    rope<double>(Space{}, dk, hk, hd, inv, rd, seq);
    AttentionShape shape;
    shape.heads = heads;
    shape.heads_k = hk;
    shape.heads_v = hv;
    shape.head_dim = hd;
    shape.window_back = 3;
    shape.scale = 1.0 / std::sqrt(double(hd));
    View3<double, Space> kc("kc", 2, 0, hk * hd), vc("vc", 2, 0, hv * hd);
    D2<Space> ao("ao", nt, heads * hd);
    sliding_window_attention<double>(Space{}, dq, dk, up2(v, nt, hv * hd), kc, vc, seq, ao, shape);
    const auto got_q = test::download_r(dq), got_o = test::download_r(ao);
    for (int s = 0; s < 2; ++s) {
      const int off = batch.offset(s), len = lengths[s];
      const auto qr =
          reference::rope(test::rows_of(q, off, len, heads * hd), len, heads, hd, rd, 10000.0, 0);
      const auto kr =
          reference::rope(test::rows_of(kq, off, len, hk * hd), len, hk, hd, rd, 10000.0, 0);
      CHECK(err(test::rows_of(got_q, off, len, heads * hd), qr) < kTol);
      const auto ref = reference::sliding_window_attention(
          qr, kr, test::rows_of(v, off, len, hv * hd), len, heads, hk, hv, hd, 3, shape.scale);
      CHECK(err(test::rows_of(got_o, off, len, heads * hd), ref) < kTol);
    }
    // a cache of zero rows needs every sequence to start at position 0
    test::Batch<Space> later({2}, {1}, {0});
    CHECK_THROWS_AS(sliding_window_attention<double>(Space{}, dq, dk, up2(v, nt, hv * hd), kc, vc,
                                                     later.seq, ao, shape),
                    ArgumentError);

    // the GLA scan from zero states, chunked (C = 4) and recurrent, decays down to -30
    const auto qs = rvec(rng, std::size_t(nt) * n), ks = rvec(rng, std::size_t(nt) * n),
               us = rvec(rng, std::size_t(nt) * e), as = rvec(rng, std::size_t(nt) * n, -30, 0);
    for (int algo = 0; algo < 2; ++algo) {
      View3<double, Space> st("st", 2, n, e);
      D2<Space> os("os", nt, e);
      GlaScanWorkspace<Space, double> ws;
      const double scale = 1.0 / std::sqrt(double(n));
      if (algo == 0)
        gla_scan<ChunkedScan<4>, double>(Space{}, up2(qs, nt, n), up2(ks, nt, n), up2(as, nt, n),
                                         up2(us, nt, e), st, seq, os, scale, ws);
      else
        gla_scan<RecurrentScan, double>(Space{}, up2(qs, nt, n), up2(ks, nt, n), up2(as, nt, n),
                                        up2(us, nt, e), st, seq, os, scale, ws);
      const auto got = test::download_r(os);
      auto hst = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), st);
      for (int s = 0; s < 2; ++s) {
        INFO("algo " << algo << " sequence " << s);
        const int off = batch.offset(s), len = lengths[s];
        std::vector<double> S(std::size_t(n) * e, 0.0);
        const auto ref = reference::gla_scan_recurrent(
            test::rows_of(qs, off, len, n), test::rows_of(ks, off, len, n),
            test::rows_of(us, off, len, e), test::rows_of(as, off, len, n), len, n, e, S);
        CHECK(err(test::rows_of(got, off, len, e), ref) < kTol);
        std::vector<double> sg(hst.data() + std::size_t(s) * n * e,
                               hst.data() + std::size_t(s + 1) * n * e);
        CHECK(err(sg, S) < kTol);
      }
    }
  });
}
