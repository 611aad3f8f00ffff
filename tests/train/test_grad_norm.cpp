// train::grad_norm / clip_grad_norm / scale_grads against host computations.
#include <cmath>
#include <limits>

#include "rodimus/train/grad_norm.hpp"
#include "train_test_util.hpp"

using namespace rodimus;

namespace {

template <class Space>
std::vector<std::vector<float>> random_grads(train::ParameterSet<Space>& ps, test::TestRng& rng) {
  std::vector<std::vector<float>> g;
  for (auto& p : ps) {
    std::vector<float> h(std::size_t(p.numel()));
    for (auto& x : h) x = static_cast<float>(rng.uniform(-1, 1));
    test::set_floats(p.grad, h);
    g.push_back(h);
  }
  return g;
}

double host_norm(const std::vector<std::vector<float>>& g) {
  double s = 0;
  for (const auto& v : g)
    for (float x : v) s += double(x) * x;
  return std::sqrt(s);
}

template <class Space>
std::vector<std::vector<float>> grads_of(const train::ParameterSet<Space>& ps) {
  std::vector<std::vector<float>> g;
  for (const auto& p : ps) g.push_back(test::host_floats(p.grad));
  return g;
}

}  // namespace

TEST_CASE("grad_norm, clip_grad_norm, scale_grads", "[train]") {
  test::TestRng rng;
  RODIMUS_SEED_INFO(rng);
  test::for_each_space([&]<class Space>() {
    INFO(Space::name());
    auto ps = train::make_parameters<Space>(test::tiny_train_config(true, false));

    // zero gradients: norm 0, nothing scaled, no NaN
    CHECK(train::clip_grad_norm(ps, 1.0) == 0.0);
    for (const auto& g : grads_of(ps)) CHECK(g == std::vector<float>(g.size(), 0.f));

    // the norm
    auto g = random_grads(ps, rng);
    const double norm = host_norm(g);
    CHECK(train::grad_norm(ps) == Approx(norm).epsilon(1e-12));

    // below and at the threshold: unchanged, bit for bit
    CHECK(train::clip_grad_norm(ps, 2 * norm) == Approx(norm).epsilon(1e-12));
    CHECK(grads_of(ps) == g);
    const double at = train::grad_norm(ps);
    CHECK(train::clip_grad_norm(ps, at) == at);
    CHECK(grads_of(ps) == g);

    // above: scaled by max_norm / norm, the new norm is max_norm
    const double max_norm = norm / 3;
    const double pre = train::clip_grad_norm(ps, max_norm);
    CHECK(pre == Approx(norm).epsilon(1e-12));
    const float f = static_cast<float>(max_norm / pre);
    const auto clipped = grads_of(ps);
    for (std::size_t i = 0; i < g.size(); ++i)
      for (std::size_t j = 0; j < g[i].size(); ++j) REQUIRE(clipped[i][j] == g[i][j] * f);
    CHECK(train::grad_norm(ps) == Approx(max_norm).epsilon(1e-6));

    // scale_grads (gradient accumulation: 1 / micro_batches)
    g = random_grads(ps, rng);
    train::scale_grads(ps, 0.25);
    Space().fence();
    const auto scaled = grads_of(ps);
    for (std::size_t i = 0; i < g.size(); ++i)
      for (std::size_t j = 0; j < g[i].size(); ++j) REQUIRE(scaled[i][j] == g[i][j] * 0.25f);

    // a non-finite gradient: returned, nothing scaled
    g[2][1] = std::numeric_limits<float>::quiet_NaN();
    test::set_floats(ps[2].grad, g[2]);
    CHECK(std::isnan(train::clip_grad_norm(ps, 1e-3)));
    const auto after = grads_of(ps);
    CHECK(after[0] == scaled[0]);
  });
}
