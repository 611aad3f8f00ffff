// train::AdamW against an fp64 host AdamW (torch.optim.AdamW's formula); the lr schedule.
#include <cmath>

#include "rodimus/train/adamw.hpp"
#include "rodimus/train/schedule.hpp"
#include "train_test_util.hpp"

using namespace rodimus;

namespace {

// torch.optim.AdamW, one step, fp64.
struct RefAdamW {
  double beta1, beta2, eps, wd;
  std::vector<std::vector<double>> p, m, v;
  long t = 0;
  void step(const std::vector<std::vector<double>>& g, const std::vector<bool>& decay, double lr) {
    ++t;
    const double bc1 = 1 - std::pow(beta1, double(t)), bc2 = 1 - std::pow(beta2, double(t));
    for (std::size_t i = 0; i < p.size(); ++i)
      for (std::size_t j = 0; j < p[i].size(); ++j) {
        const double x = p[i][j];
        m[i][j] = beta1 * m[i][j] + (1 - beta1) * g[i][j];
        v[i][j] = beta2 * v[i][j] + (1 - beta2) * g[i][j] * g[i][j];
        const double mhat = m[i][j] / bc1, vhat = v[i][j] / bc2;
        p[i][j] = x - lr * (mhat / (std::sqrt(vhat) + eps) + (decay[i] ? wd : 0.0) * x);
      }
  }
};

}  // namespace

TEST_CASE("AdamW matches an fp64 AdamW over several steps", "[train]") {
  test::TestRng rng;
  RODIMUS_SEED_INFO(rng);
  test::for_each_space([&]<class Space>() {
    INFO(Space::name());
    const ModelConfig cfg = test::tiny_train_config(true, false);
    train::InitOptions init;
    init.seed = rng.seed;
    auto ps = train::make_parameters<Space>(cfg, init);
    train::AdamWConfig ac;
    ac.beta1 = 0.9;
    ac.beta2 = 0.95;
    ac.eps = 1e-8;
    ac.weight_decay = 0.1;
    train::AdamW<Space> opt(ps, ac);
    RefAdamW ref{ac.beta1, ac.beta2, ac.eps, ac.weight_decay, {}, {}, {}};
    std::vector<bool> decay;
    std::vector<double> gmax(ps.size(), 0.0);  // largest |g| per parameter over the steps
    for (const auto& p : ps) {
      const auto h = test::host_floats(p.value);
      ref.p.emplace_back(h.begin(), h.end());
      ref.m.emplace_back(h.size(), 0.0);
      ref.v.emplace_back(h.size(), 0.0);
      decay.push_back(p.decay);
    }
    const train::CosineSchedule sched{1e-2, 1e-3, 2, 6};
    for (int s = 0; s < 6; ++s) {
      std::vector<std::vector<double>> g;
      for (std::size_t i = 0; i < ps.size(); ++i) {
        std::vector<float> gf(std::size_t(ps[i].numel()));
        const double scale = std::pow(10.0, rng.uniform(-4, 1));  // gradients of many scales
        for (auto& x : gf) x = static_cast<float>(scale * rng.uniform(-1, 1));
        if (i == 3) std::fill(gf.begin(), gf.end(), 0.f);  // a parameter without gradient
        test::set_floats(ps[i].grad, gf);
        g.emplace_back(gf.begin(), gf.end());
        for (float x : gf) gmax[i] = std::max(gmax[i], double(std::abs(x)));
      }
      const double lr = sched.lr(s);
      opt.step(ps, lr);
      ref.step(g, decay, lr);
    }
    Space().fence();
    CHECK(opt.step_count() == 6);
    double worst = 0;
    for (std::size_t i = 0; i < ps.size(); ++i) {
      const auto h = test::host_floats(ps[i].value);
      const auto m = test::host_floats(opt.exp_avg(i));
      const auto v = test::host_floats(opt.exp_avg_sq(i));
      for (std::size_t j = 0; j < h.size(); ++j) {
        // fp32 update: a few ulps of p plus a few ulps of the step size (lr <= 1e-2)
        const double err = std::abs(h[j] - ref.p[i][j]) / (std::abs(ref.p[i][j]) + 1e-2);
        worst = std::max(worst, err);
        REQUIRE(std::isfinite(h[j]));
        // m may cancel to near 0: its error is relative to the gradient scale
        REQUIRE(std::abs(m[j] - ref.m[i][j]) <= 1e-6 * (std::abs(ref.m[i][j]) + gmax[i]) + 1e-30);
        REQUIRE(std::abs(v[j] - ref.v[i][j]) <= 1e-5 * std::abs(ref.v[i][j]) + 1e-30);
      }
    }
    INFO("worst relative error of p: " << worst);
    CHECK(worst < 2e-6);
  });
}

TEST_CASE("AdamW: weight decay only where decay is set; argument errors", "[train]") {
  using Space = Kokkos::DefaultHostExecutionSpace;
  const ModelConfig cfg = test::tiny_train_config(false, true);
  auto ps = train::make_parameters<Space>(cfg);
  train::AdamW<Space> opt(ps, {0.1, 0.9, 0.999, 1e-8, 0.5});
  std::vector<std::vector<float>> before;
  for (const auto& p : ps) before.push_back(test::host_floats(p.value));
  opt.step(ps);  // zero gradients: only decay moves a weight, p <- p (1 - lr wd)
  Space().fence();
  for (std::size_t i = 0; i < ps.size(); ++i) {
    INFO(ps[i].name);
    const auto h = test::host_floats(ps[i].value);
    for (std::size_t j = 0; j < h.size(); ++j)
      CHECK(h[j] == (ps[i].decay ? float(before[i][j] * float(1 - 0.1 * 0.5)) : before[i][j]));
  }
  auto other = train::make_parameters<Space>(test::tiny_train_config(false, false));
  CHECK_THROWS_AS(opt.step(other, 1e-3), ArgumentError);
}

TEST_CASE("CosineSchedule: warm-up, cosine decay, floor", "[train]") {
  const train::CosineSchedule s{1.0, 0.1, 4, 14};
  CHECK(s.lr(0) == Approx(0.25));
  CHECK(s.lr(1) == Approx(0.5));
  CHECK(s.lr(3) == Approx(1.0));
  CHECK(s.lr(4) == Approx(1.0));   // start of the decay
  CHECK(s.lr(9) == Approx(0.55));  // half way: (max + min) / 2
  CHECK(s.lr(14) == Approx(0.1));
  CHECK(s.lr(1000) == Approx(0.1));
  for (int i = 4; i < 14; ++i) CHECK(s.lr(i + 1) <= s.lr(i));
  for (int i = 4; i <= 14; ++i) {
    const double x = (i - 4) / 10.0;
    CHECK(s.lr(i) == Approx(0.1 + 0.45 * (1 + std::cos(M_PI * x))).epsilon(1e-12));
  }
  const train::CosineSchedule nowarm{2.0, 0.0, 0, 10};
  CHECK(nowarm.lr(0) == Approx(2.0));
  CHECK(nowarm(10) == 0.0);
}
