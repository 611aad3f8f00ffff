// grad::cross_entropy: the loss against an fp64 log-sum-exp, dlogits against finite
// differences (moderate and huge logits, ignored rows), fp32 against fp64, bad targets.
#include <cmath>

#include "grad_test_util.hpp"
#include "rodimus/grad/cross_entropy.hpp"

using namespace rodimus;
using test::TestRng;

namespace {

// Mean over counted rows of logsumexp(l_t) - l_t[y_t], in long double for headroom.
double ce_loss(const std::vector<double>& logits, const std::vector<int>& y, int v) {
  long double sum = 0;
  int count = 0;
  for (std::size_t t = 0; t < y.size(); ++t) {
    if (y[t] == grad::kIgnoreIndex) continue;
    const double* l = logits.data() + t * v;
    long double mx = l[0];
    for (int c = 0; c < v; ++c) mx = std::max<long double>(mx, l[c]);
    long double s = 0;
    for (int c = 0; c < v; ++c) s += std::exp(static_cast<long double>(l[c]) - mx);
    sum += std::log(s) + mx - l[y[t]];
    ++count;
  }
  return count > 0 ? static_cast<double>(sum / count) : 0.0;
}

template <class Real, class Space>
std::pair<grad::CrossEntropyResult, std::vector<double>> run_ce(const std::vector<double>& logits,
                                                                const std::vector<int>& y, int v,
                                                                bool alias = false,
                                                                double normalizer = 0.0) {
  const int n = static_cast<int>(y.size());
  auto vl = test::upload2r<Real, Space>(logits, n, v);
  auto vy = test::upload_ids<Space>(y);
  auto dl = alias ? vl : test::upload2r<Real, Space>({}, n, v, 9.0);
  const auto r = grad::cross_entropy<Real>(Space{}, View2<const Real, Space>(vl),
                                           View1<const int, Space>(vy), dl, n, normalizer);
  Space().fence();
  return {r, test::download_r(dl)};
}

}  // namespace

TEST_CASE("cross_entropy loss and dlogits match fp64 and finite differences",
          "[grad][cross_entropy]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  struct Case {
    int n, v;
    double scale;
    double ignore_frac;
    const char* what;
  };
  for (const auto& cs :
       std::vector<Case>{{1, 1, 1, 0, "one class"},
                         {4, 7, 3, 0, "moderate"},
                         {6, 33, 3, 0.4, "ignored rows"},
                         {5, 20, 200, 0, "huge logits (exp overflows unshifted)"},
                         {3, 300, 60, 0.2, "large vocabulary, strong logits"},
                         {rng.integer(1, 12), rng.integer(2, 80), 10, 0.2, "random sizes"}}) {
    INFO(cs.what << ": N=" << cs.n << " V=" << cs.v << " logit scale " << cs.scale);
    auto logits = rng.vec(std::size_t(cs.n) * cs.v, -cs.scale, cs.scale);
    if (cs.scale >= 100)  // offset rows too, so exp(l) over- or underflows without the shift
      for (int t = 0; t < cs.n; ++t)
        for (int c = 0; c < cs.v; ++c)
          logits[std::size_t(t) * cs.v + c] =
              static_cast<float>(logits[std::size_t(t) * cs.v + c] + (t % 2 ? 900 : -900));
    std::vector<int> y(cs.n);
    for (auto& id : y)
      id = rng.uniform(0, 1) < cs.ignore_frac ? grad::kIgnoreIndex : rng.integer(0, cs.v - 1);
    if (cs.ignore_frac > 0 && cs.n > 1) y[0] = grad::kIgnoreIndex;  // at least one ignored row
    y[cs.n - 1] = rng.integer(0, cs.v - 1);                         // and one counted
    int count = 0;
    for (int id : y) count += id != grad::kIgnoreIndex;
    const double ref = ce_loss(logits, y, cs.v);
    // rows offset by +-900: a step proportional to |logit| would be ~0.01, far coarser than the
    // softmax's curvature scale; the loss is shift-invariant and summed in long double
    const auto fd = test::fd_grad(
        logits, [&] { return ce_loss(logits, y, cs.v); }, cs.scale >= 100);
    test::for_each_space([&]<class Space>() {
      INFO("backend " << Space::name());
      const auto [r, dl] = run_ce<double, Space>(logits, y, cs.v);
      CHECK(r.count == count);
      CHECK(std::fabs(r.loss - ref) <= 1e-12 * std::max(1.0, std::fabs(ref)));
      CHECK(std::fabs(r.loss_sum - ref * count) <= 1e-12 * std::max(1.0, std::fabs(ref * count)));
      if (cs.v > 1) {
        CHECK(test::grad_err(dl, fd) < test::kFdTol);
      } else {  // one class: the loss is 0 whatever the logit
        CHECK(test::abs_max(dl) == 0.0);
        CHECK(r.loss == 0.0);
      }
      for (int t = 0; t < cs.n; ++t)  // ignored rows: zero gradient
        if (y[t] == grad::kIgnoreIndex) CHECK(test::abs_max(test::rows_of(dl, t, 1, cs.v)) == 0.0);
      const auto [r_alias, dl_alias] = run_ce<double, Space>(logits, y, cs.v, true);
      CHECK(dl_alias == dl);  // dlogits may overwrite logits
      CHECK(r_alias.loss == r.loss);
      const auto [r32, dl32] = run_ce<float, Space>(logits, y, cs.v);
      CHECK(test::all_finite(dl32));
      CHECK(std::fabs(r32.loss - ref) <= 1e-5 * std::max(1.0, std::fabs(ref)));
      if (cs.v > 1) {
        // dl = (softmax - onehot) / count: held to the size of the two terms, which cancel in
        // a confident row's target entry (V = 4 at logit scale 10: 1.5e-5, seed 3749719774)
        std::vector<double> d_p(dl.size(), 0.0), d_y(dl.size(), 0.0);
        for (int t = 0; t < cs.n; ++t) {
          if (y[t] == grad::kIgnoreIndex) continue;
          const double* lr = logits.data() + std::size_t(t) * cs.v;
          double mx = lr[0], z = 0.0;
          for (int c = 1; c < cs.v; ++c) mx = std::max(mx, lr[c]);
          for (int c = 0; c < cs.v; ++c) z += std::exp(lr[c] - mx);
          for (int c = 0; c < cs.v; ++c)
            d_p[std::size_t(t) * cs.v + c] = std::exp(lr[c] - mx) / z / count;
          d_y[std::size_t(t) * cs.v + y[t]] = -1.0 / count;
        }
        CHECK(test::grad_err_parts(dl32, dl, {d_p, d_y}) < test::kF32Tol);
      }
      // a batch-wide normaliser scales the gradient, not the loss
      const auto [r_norm, dl_norm] = run_ce<double, Space>(logits, y, cs.v, false, 4.0 * count);
      CHECK(r_norm.loss == r.loss);
      std::vector<double> scaled(dl.size());
      for (std::size_t i = 0; i < dl.size(); ++i) scaled[i] = dl[i] / 4.0;
      if (cs.v > 1) CHECK(test::grad_err(dl_norm, scaled) < 1e-14);
    });
  }
}

TEST_CASE("cross_entropy with every target ignored returns 0 and a zero gradient",
          "[grad][cross_entropy]") {
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    const auto [r, dl] =
        run_ce<double, Space>({1, 2, 3, 4, 5, 6}, {grad::kIgnoreIndex, grad::kIgnoreIndex}, 3);
    CHECK(r.count == 0);
    CHECK(r.loss == 0.0);
    CHECK(dl == std::vector<double>(6, 0.0));
  });
}

TEST_CASE("cross_entropy rejects out-of-range targets and wrong extents, naming them",
          "[grad][cross_entropy][errors]") {
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    View2<float, Space> logits("logits", 3, 4), dl("dl", 3, 4);
    const auto call = [&](const std::vector<int>& y, View2<float, Space> dl_, int n) {
      auto vy = test::upload_ids<Space>(y);
      return grad::cross_entropy<float>(Space{}, View2<const float, Space>(logits),
                                        View1<const int, Space>(vy), dl_, n);
    };
    REQUIRE_NOTHROW(call({0, grad::kIgnoreIndex, 3}, dl, 3));
    CHECK_THROWS_WITH(call({0, 4, 3}, dl, 3),
                      Catch::Contains("cross_entropy: targets[1] = 4 is outside [0, 4)"));
    CHECK_THROWS_WITH(call({0, 1, -1}, dl, 3), Catch::Contains("cross_entropy: targets[2] = -1"));
    CHECK_THROWS_AS(call({0, 1, -7}, dl, 3), ArgumentError);
    CHECK_THROWS_WITH(call({0, 1, 2}, View2<float, Space>("dl", 3, 5), 3),
                      Catch::Contains("cross_entropy: dlogits:"));
    CHECK_THROWS_WITH(call({0, 1}, dl, 3), Catch::Contains("cross_entropy: targets:"));
    CHECK_THROWS_WITH(call({0, 1, 2, 3}, dl, 4), Catch::Contains("cross_entropy: logits:"));
  });
}
