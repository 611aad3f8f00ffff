// The sampler: greedy, temperature, top-k, top-p, min-p, repetition penalty, seeds, validation,
// on random logits.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "rodimus/generate/sampler.hpp"

using namespace rodimus;

namespace {

std::uint64_t test_seed() {
  static const std::uint64_t s = std::random_device{}();
  return s;
}

// V logits uniform in [lo, hi)
std::vector<float> random_logits(std::mt19937_64& rng, int v, float lo = -6.f, float hi = 6.f) {
  std::vector<float> out(static_cast<std::size_t>(v));
  for (auto& x : out) x = lo + (hi - lo) * float(double(rng() >> 11) * 0x1.0p-53);
  return out;
}

int argmax(const std::vector<float>& x) {
  return static_cast<int>(std::max_element(x.begin(), x.end()) - x.begin());
}

// Softmax of x / t in double.
std::vector<double> softmax(const std::vector<float>& x, double t) {
  double m = -INFINITY;
  for (float v : x) m = std::max(m, double(v) / t);
  std::vector<double> p(x.size());
  double z = 0;
  for (std::size_t i = 0; i < x.size(); ++i) z += p[i] = std::exp(double(x[i]) / t - m);
  for (auto& v : p) v /= z;
  return p;
}

// Distinct tokens drawn in n samples.
std::set<int> drawn(Sampler& s, const std::vector<float>& logits, int n) {
  std::set<int> out;
  for (int i = 0; i < n; ++i) out.insert(s.sample(logits));
  return out;
}

}  // namespace

TEST_CASE("Rng: the standard mt19937_64 stream and a 53-bit uniform", "[sampler]") {
  Rng a(5489);  // the standard's default seed: its 10000th output is fixed by [rand.predef]
  for (int i = 0; i < 9999; ++i) a.next();
  REQUIRE(a.next() == 9981545732273789042ULL);
  Rng b(test_seed()), c(test_seed());
  for (int i = 0; i < 1000; ++i) {
    const double u = b.uniform();
    REQUIRE(u >= 0.0);
    REQUIRE(u < 1.0);
    REQUIRE(u == double(c.next() >> 11) * 0x1.0p-53);
  }
}

TEST_CASE("Sampler: greedy is argmax, also after a repetition penalty", "[sampler]") {
  CAPTURE(test_seed());
  std::mt19937_64 rng(test_seed());
  Sampler greedy;  // temperature 0
  for (int trial = 0; trial < 200; ++trial) {
    const auto logits = random_logits(rng, 2 + int(rng() % 300));
    REQUIRE(greedy.sample(logits) == argmax(logits));
  }
}

TEST_CASE("Sampler: top_k = 1 and a tiny top_p are greedy at any temperature", "[sampler]") {
  CAPTURE(test_seed());
  std::mt19937_64 rng(test_seed());
  SamplerConfig k1;
  k1.temperature = 1.7;
  k1.top_k = 1;
  k1.seed = rng();
  SamplerConfig p0 = k1;
  p0.top_k = 0;
  p0.top_p = 1e-9;
  Sampler a(k1), b(p0);
  for (int trial = 0; trial < 200; ++trial) {
    const auto logits = random_logits(rng, 2 + int(rng() % 300), -2.f, 2.f);
    REQUIRE(a.sample(logits) == argmax(logits));
    REQUIRE(b.sample(logits) == argmax(logits));
  }
}

TEST_CASE("Sampler: a seed fixes the stream; another seed changes it", "[sampler]") {
  CAPTURE(test_seed());
  std::mt19937_64 rng(test_seed());
  SamplerConfig cfg;
  cfg.temperature = 1.0;
  cfg.top_k = 80;
  cfg.top_p = 0.95;
  cfg.min_p = 0.02;
  cfg.repetition_penalty = 1.1;
  cfg.seed = rng();
  SamplerConfig other = cfg;
  other.seed = cfg.seed + 1;
  Sampler a(cfg), b(cfg), c(other);
  std::vector<int> sa, sb, sc;
  for (int i = 0; i < 300; ++i) {
    const auto logits = random_logits(rng, 200, -1.f, 1.f);  // flat: many candidates
    sa.push_back(a.sample(logits));
    sb.push_back(b.sample(logits));
    sc.push_back(c.sample(logits));
    a.observe(sa.back());
    b.observe(sb.back());
    c.observe(sc.back());
  }
  REQUIRE(sa == sb);
  REQUIRE(sa != sc);
  // reseed restarts the stream
  a.reseed(cfg.seed);
  a.clear_history();
  Sampler d(cfg);
  const auto logits = random_logits(rng, 200, -1.f, 1.f);
  for (int i = 0; i < 50; ++i) REQUIRE(a.sample(logits) == d.sample(logits));
}

TEST_CASE("Sampler: repetition penalty divides positive and multiplies negative logits",
          "[sampler]") {
  CAPTURE(test_seed());
  std::mt19937_64 rng(test_seed());
  // A hand-checked case: 3.0 / 2 = 1.5 < 2.0, so token 1 wins; 3.0 / 1.4 > 2.0 keeps token 0.
  const std::vector<float> fixed = {3.f, 2.f, -1.f, -0.5f};
  SamplerConfig cfg;
  cfg.repetition_penalty = 2.0;
  Sampler s2(cfg);
  s2.observe(0);
  REQUIRE(s2.sample(fixed) == 1);
  cfg.repetition_penalty = 1.4;
  Sampler s14(cfg);
  s14.observe(0);
  REQUIRE(s14.sample(fixed) == 0);
  // -0.5 * 3 = -1.5 < -1.0: with 0 and 1 penalised away, token 2 now beats token 3.
  const std::vector<float> neg = {-3.f, -2.f, -1.f, -0.5f};
  cfg.repetition_penalty = 3.0;
  Sampler sn(cfg);
  sn.observe(3);
  REQUIRE(sn.sample(neg) == 2);

  // Random rows against the formula, penalties below and above 1, repeated ids counted once.
  for (int trial = 0; trial < 300; ++trial) {
    const int v = 2 + int(rng() % 100);
    const auto logits = random_logits(rng, v);
    SamplerConfig c;
    c.repetition_penalty = 0.5 + 2.5 * double(rng() >> 11) * 0x1.0p-53;
    Sampler s(c);
    std::vector<float> want = logits;
    std::set<int> seen;
    const int n_seen = int(rng() % 6);
    for (int i = 0; i < n_seen; ++i) {
      const int id = int(rng() % std::uint64_t(v));
      s.observe(id);
      s.observe(id);  // twice: still one penalty
      seen.insert(id);
    }
    const auto p = float(c.repetition_penalty);
    for (int id : seen) want[id] = want[id] < 0.f ? want[id] * p : want[id] / p;
    REQUIRE(s.sample(logits) == argmax(want));
    REQUIRE(s.history().size() == seen.size());
  }
}

TEST_CASE("Sampler: top-k, top-p and min-p keep exactly the expected candidates", "[sampler]") {
  CAPTURE(test_seed());
  std::mt19937_64 rng(test_seed());
  const int v = 24;
  for (int trial = 0; trial < 8; ++trial) {
    const auto logits = random_logits(rng, v, -2.f, 2.f);
    std::vector<int> order(v);
    for (int i = 0; i < v; ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
    const double t = 0.8;
    const auto p = softmax(logits, t);
    SamplerConfig base;
    base.temperature = t;
    base.seed = rng();

    // top-k: the k largest
    SamplerConfig ck = base;
    ck.top_k = 1 + int(rng() % 6);
    Sampler sk(ck);
    REQUIRE(drawn(sk, logits, 4000) == std::set<int>(order.begin(), order.begin() + ck.top_k));

    // top-p: the most probable tokens while the mass before them is below top_p
    SamplerConfig cp = base;
    cp.top_p = 0.3 + 0.5 * double(rng() >> 11) * 0x1.0p-53;
    std::set<int> nucleus;
    double mass = 0;
    for (int id : order) {
      if (mass >= cp.top_p) break;
      nucleus.insert(id);
      mass += p[id];
    }
    Sampler sp(cp);
    REQUIRE(drawn(sp, logits, 6000) == nucleus);

    // min-p: tokens with p >= min_p * p_max
    SamplerConfig cm = base;
    cm.min_p = 0.1 + 0.3 * double(rng() >> 11) * 0x1.0p-53;
    std::set<int> kept;
    for (int i = 0; i < v; ++i)
      if (p[i] >= cm.min_p * p[order[0]]) kept.insert(i);
    Sampler sm(cm);
    REQUIRE(drawn(sm, logits, 6000) == kept);
  }
}

TEST_CASE("Sampler: temperature sampling follows softmax(logits / T)", "[sampler]") {
  // Fixed seeds: the counts are the same on every run, and the bound (6 standard deviations of
  // a binomial count, per token) holds for these draws by a wide margin.
  std::mt19937_64 rng(20240611);
  const int v = 7, n = 60000;
  const auto logits = random_logits(rng, v, -2.f, 2.f);
  for (const double t : {0.5, 1.0, 2.5}) {
    CAPTURE(t);
    SamplerConfig cfg;
    cfg.temperature = t;
    cfg.repetition_penalty = 1.3;
    cfg.seed = 777;
    Sampler s(cfg);
    s.observe(argmax(logits));  // the penalty changes the distribution too
    std::vector<float> penalised = logits;
    const int top = argmax(logits);
    penalised[top] = penalised[top] < 0 ? penalised[top] * 1.3f : penalised[top] / 1.3f;
    const auto p = softmax(penalised, t);
    std::vector<int> count(v, 0);
    for (int i = 0; i < n; ++i) ++count[s.sample(logits)];
    for (int i = 0; i < v; ++i) {
      CAPTURE(i, count[i], p[i]);
      const double sd = std::sqrt(n * p[i] * (1 - p[i]));
      REQUIRE(std::fabs(count[i] - n * p[i]) <= 6 * sd + 1);
    }
  }
}

TEST_CASE("Sampler: -inf logits are never drawn", "[sampler]") {
  CAPTURE(test_seed());
  std::mt19937_64 rng(test_seed());
  auto logits = random_logits(rng, 50, -1.f, 1.f);
  for (int i = 0; i < 50; i += 2) logits[i] = -INFINITY;
  SamplerConfig cfg;
  cfg.temperature = 1.0;
  cfg.seed = rng();
  Sampler s(cfg);
  for (int id : drawn(s, logits, 2000)) REQUIRE(id % 2 == 1);
}

TEST_CASE("SamplerConfig: bad parameters are ArgumentErrors naming them", "[sampler]") {
  const auto fails = [](auto edit, const char* word) {
    SamplerConfig c;
    edit(c);
    REQUIRE_THROWS_WITH(Sampler(c), Catch::Contains(word));
    REQUIRE_THROWS_AS(c.validate(), ArgumentError);
  };
  fails([](SamplerConfig& c) { c.temperature = -0.1; }, "temperature");
  fails([](SamplerConfig& c) { c.temperature = NAN; }, "temperature");
  fails([](SamplerConfig& c) { c.temperature = INFINITY; }, "temperature");
  fails([](SamplerConfig& c) { c.top_k = -1; }, "top_k");
  fails([](SamplerConfig& c) { c.top_p = 0.0; }, "top_p");
  fails([](SamplerConfig& c) { c.top_p = 1.01; }, "top_p");
  fails([](SamplerConfig& c) { c.top_p = NAN; }, "top_p");
  fails([](SamplerConfig& c) { c.min_p = -0.01; }, "min_p");
  fails([](SamplerConfig& c) { c.min_p = 1.5; }, "min_p");
  fails([](SamplerConfig& c) { c.repetition_penalty = 0.0; }, "repetition_penalty");
  fails([](SamplerConfig& c) { c.repetition_penalty = -2.0; }, "repetition_penalty");
  Sampler ok;
  REQUIRE_THROWS_AS(ok.sample(std::vector<float>{}), ArgumentError);
  REQUIRE_THROWS_AS(ok.observe(-3), ArgumentError);
}
