// train::ModelTrainer: the loss and the gradient of every parameter of whole tiny Rodimus and
// Rodimus+ models, against central differences of the fp64 loss and the fp64 reference model;
// fp32 against fp64; gradient accumulation; argument errors.
#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "../grad/grad_test_util.hpp"
#include "rodimus/reference/model.hpp"
#include "rodimus/train/adamw.hpp"
#include "rodimus/train/grad_norm.hpp"
#include "rodimus/train/model_grad.hpp"
#include "train_test_util.hpp"

using namespace rodimus;

namespace {

using Host = Kokkos::DefaultHostExecutionSpace;

/// A tiny Rodimus (untied LM head, scaled embeddings) or Rodimus+ (tied, normed embeddings).
ModelConfig grad_config(bool plus) {
  ModelConfig c = test::tiny_train_config(plus, /*tied=*/plus);
  c.d_model = 16;
  c.vocab_size = 23;
  c.mixer.mem_size = 4;  // E = 32, R = 16
  if (!plus) c.use_scale_embedding = true;
  if (plus) c.attn.window_size = 8;  // window_back 4 < T
  return c;
}

/// More layouts: Rodimus of 3 layers with a conv of width 1 (no taps into the past) and
/// R = 4; Rodimus+ untied, unbounded attention, rotary on half the head, 4 heads on 2 key heads
/// and 1 value head, conv width 2.
ModelConfig variant_config(bool plus) {
  ModelConfig c = grad_config(plus);
  if (!plus) {
    c.n_layer = 3;
    c.mixer.d_conv = 1;
    c.mixer.input_gate_low_rank = 4;
  } else {
    c.tie_word_embeddings = false;
    c.use_norm_embedding = false;
    c.use_scale_embedding = true;
    c.attn.window_size = 0;
    c.attn.num_heads = 4;
    c.attn.num_heads_k = 2;
    c.attn.num_heads_v = 1;
    c.attn.rotary_emb_dim = 2;
    c.mixer.d_conv = 2;
  }
  return c;
}

/// Random parameters: matrices N(0, 1/sqrt(cols)), embeddings N(0, 1), norm weights, w_res and
/// biases around their initial values, the gate bias at its initialisation plus noise.
template <class Space>
train::ParameterSet<Space> random_parameters(const ModelConfig& cfg, test::TestRng& rng) {
  auto ps = train::make_parameters<Space>(cfg, {0.02, rng.gen()});
  std::normal_distribution<double> nd(0.0, 1.0);
  for (auto& p : ps) {
    auto h = test::host_floats(p.value);
    const double sd = 1.0 / std::sqrt(double(p.cols()));
    for (auto& x : h) {
      switch (p.role) {
        case TensorRole::Matrix:
          x = static_cast<float>(sd * nd(rng.gen));
          break;
        case TensorRole::Embedding:
          x = static_cast<float>(nd(rng.gen));
          break;
        case TensorRole::ConvWeight:
        case TensorRole::ConvBias:
          break;
        default:  // norms, w_res, biases, gate bias
          x = static_cast<float>(x + 0.3 * nd(rng.gen));
      }
    }
    test::set_floats(p.value, h);
  }
  return ps;
}

/// tokens [B, T + 1] in [0, V); a few targets (tokens[:, 1:]) set to -100 when `ignore`.
std::vector<int> random_tokens(test::TestRng& rng, int b, int t1, int vocab, bool ignore) {
  std::vector<int> tok(std::size_t(b) * t1);
  for (auto& x : tok) x = rng.integer(0, vocab - 1);
  if (ignore)
    for (int s = 0; s < b; ++s) tok[std::size_t(s) * t1 + 1 + rng.integer(0, t1 - 2)] = -100;
  return tok;
}

template <class Space>
View2<int, Space> upload_ints(const std::vector<int>& v, int rows, int cols) {
  View2<int, Space> d("test.tokens", rows, cols);
  auto h = Kokkos::create_mirror_view(d);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) h(r, c) = v[std::size_t(r) * cols + c];
  Kokkos::deep_copy(d, h);
  return d;
}

/// Mean next-token cross-entropy of the fp64 reference model (one sequence at a time).
double reference_loss(const ModelConfig& cfg, const reference::Weights& w,
                      const std::vector<int>& tok, int b, int t1) {
  double sum = 0;
  int count = 0;
  for (int s = 0; s < b; ++s) {
    std::vector<int> ids(tok.begin() + std::ptrdiff_t(s) * t1,
                         tok.begin() + std::ptrdiff_t(s) * t1 + t1 - 1);
    for (auto& id : ids) id = id < 0 ? 0 : id;  // an ignored target is never an input here
    const auto logits = reference::forward(cfg, w, ids);
    const int v = cfg.vocab_size;
    for (int t = 0; t + 1 < t1; ++t) {
      const int y = tok[std::size_t(s) * t1 + t + 1];
      if (y == -100) continue;
      const double* l = &logits[std::size_t(t) * v];
      const double mx = *std::max_element(l, l + v);
      double z = 0;
      for (int c = 0; c < v; ++c) z += std::exp(l[c] - mx);
      sum += std::log(z) + mx - l[y];
      ++count;
    }
  }
  return sum / count;
}

template <class Space>
reference::Weights reference_weights(const train::ParameterSet<Space>& ps) {
  reference::Weights w;
  for (const auto& p : ps) {
    const auto h = test::host_floats(p.value);
    w[p.name] = std::vector<double>(h.begin(), h.end());
  }
  return w;
}

template <class V>
std::vector<double> host_doubles(const V& v) {
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), v);
  return std::vector<double>(h.data(), h.data() + h.extent(0));
}

/// The ids / targets halves of tokens [B, T + 1], as [B, T] views (ignored inputs become 0).
template <class Space>
std::pair<View2<int, Space>, View2<int, Space>> split(const std::vector<int>& tok, int b, int t1) {
  std::vector<int> ids, tg;
  for (int s = 0; s < b; ++s)
    for (int t = 0; t + 1 < t1; ++t) {
      const int x = tok[std::size_t(s) * t1 + t];
      ids.push_back(x < 0 ? 0 : x);
      tg.push_back(tok[std::size_t(s) * t1 + t + 1]);
    }
  return {upload_ints<Space>(ids, b, t1 - 1), upload_ints<Space>(tg, b, t1 - 1)};
}

}  // namespace

TEST_CASE("ModelTrainer: fp64 gradients of every parameter against central differences",
          "[train][model_grad]") {
  test::TestRng rng;
  RODIMUS_SEED_INFO(rng);
  for (int variant : {0, 1, 2, 3}) {
    const bool plus = variant % 2 == 1;
    const ModelConfig cfg = variant < 2 ? grad_config(plus) : variant_config(plus);
    const std::string label =
        std::string(plus ? "Rodimus+" : "Rodimus") + (variant < 2 ? "" : " (variant)");
    INFO(label);
    auto ps = random_parameters<Host>(cfg, rng);
    const int b = 2, t1 = 14;  // T = 13: two chunks of 8 tokens
    const auto tok = random_tokens(rng, b, t1, cfg.vocab_size, /*ignore=*/true);
    const auto io = split<Host>(tok, b, t1);  // no structured bindings: lambdas capture them
    const auto& ids = io.first;
    const auto& targets = io.second;
    using Trainer = train::ModelTrainer<double, Host, ChunkedScan<8>>;
    Trainer trainer(cfg);
    auto w = train::RealParameters<double, Host>::copy_of(ps);

    // the fp64 forward against the fp64 reference model
    const double loss = trainer.forward_backward(w, ids, targets);
    const double ref = reference_loss(cfg, reference_weights(ps), tok, b, t1);
    INFO("loss " << loss << " reference " << ref);
    CHECK(std::fabs(loss - ref) <= 1e-11 * std::fabs(ref));
    CHECK(trainer.last().count == b * (t1 - 1) - b);
    CHECK(trainer.forward_loss(w, ids, targets) == loss);

    // every parameter: the largest 3 gradient entries and 5 random ones, central differences
    double worst = 0;
    std::string worst_name;
    for (std::size_t i = 0; i < w.size(); ++i) {
      const auto& p = w[i];
      const auto g = host_doubles(p.grad);
      auto hv = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), p.value);
      std::vector<std::size_t> idx(g.size());
      std::iota(idx.begin(), idx.end(), std::size_t(0));
      std::partial_sort(idx.begin(), idx.begin() + std::min<std::size_t>(3, idx.size()), idx.end(),
                        [&](auto a, auto c) { return std::fabs(g[a]) > std::fabs(g[c]); });
      std::vector<std::size_t> pick(idx.begin(),
                                    idx.begin() + std::min<std::size_t>(3, idx.size()));
      for (int r = 0; r < 5; ++r) pick.push_back(std::size_t(rng.integer(0, int(g.size()) - 1)));
      std::vector<double> got, fd;
      for (std::size_t j : pick) {
        const double x0 = hv(j), h = 1e-5 * std::max(1.0, std::fabs(x0));
        auto eval = [&](double x) {
          hv(j) = x;
          Kokkos::deep_copy(p.value, hv);
          return trainer.forward_loss(w, ids, targets);
        };
        const double xp = x0 + h, xm = x0 - h;
        const double lp = eval(xp), lm = eval(xm);
        hv(j) = x0;
        Kokkos::deep_copy(p.value, hv);
        got.push_back(g[j]);
        fd.push_back((lp - lm) / (xp - xm));
      }
      const double err = test::grad_err(got, fd);
      INFO(p.name << ": error " << err);
      CHECK(err < test::kFdTol);
      if (err > worst) {
        worst = err;
        worst_name = p.name;
      }
    }
    WARN(label << ": worst fp64 gradient error " << worst << " (" << worst_name << "), seed "
               << rng.seed);
  }
}

TEST_CASE("ModelTrainer: ParameterSet entry points, accumulation, fp32 against fp64",
          "[train][model_grad]") {
  test::TestRng rng;
  RODIMUS_SEED_INFO(rng);
  test::for_each_space([&]<class Space>() {
    for (bool plus : {false, true}) {
      INFO((plus ? "Rodimus+" : "Rodimus") << " on " << Space::name());
      const ModelConfig cfg = grad_config(plus);
      auto ps = random_parameters<Space>(cfg, rng);
      const int b = 3, t1 = 21;
      const auto tok = random_tokens(rng, b, t1, cfg.vocab_size, /*ignore=*/false);
      const auto tokens = upload_ints<Space>(tok, b, t1);
      const View2<const int, Space> ctok(tokens);

      // fp64 reference gradients, kept in fp64
      train::ModelTrainer<double, Space> t64(cfg);
      auto w64 = train::RealParameters<double, Space>::copy_of(ps);
      const auto io = split<Space>(tok, b, t1);
      const double loss64 = t64.forward_backward(w64, io.first, io.second);

      // the tokens entry point in fp64: the same loss, gradients rounded into ps (from zero)
      ps.zero_grad();
      CHECK(t64.forward_backward(ps, ctok) == loss64);
      // fp32: grads accumulate in place; a second call adds the same again
      train::ModelTrainer<float, Space> t32(cfg);
      ps.zero_grad();
      const double loss32 = t32.forward_backward(ps, ctok);
      CHECK(std::fabs(loss32 - loss64) < 1e-5 * std::fabs(loss64));
      CHECK(t32.forward_loss(ps, ctok) == loss32);
      double worst = 0;
      std::string worst_name;
      std::vector<std::vector<double>> first;
      for (std::size_t i = 0; i < ps.size(); ++i) {
        const auto g32 = host_doubles(ps[i].grad);
        const auto g64 = host_doubles(w64[i].grad);
        first.push_back(g32);
        const double err = test::grad_err(g32, g64);
        INFO(ps[i].name << ": fp32 error " << err);
        CHECK(err < test::kF32NormTol);  // seen: a few 1e-6
        if (err > worst) {
          worst = err;
          worst_name = ps[i].name;
        }
      }
      WARN((plus ? "Rodimus+" : "Rodimus")
           << " on " << Space::name() << ": worst fp32 vs fp64 gradient error " << worst << " ("
           << worst_name << "), seed " << rng.seed);
      // a second call adds the same gradient again (up to the rounding of the fp32 sums)
      t32.forward_backward(ps, ctok);
      for (std::size_t i = 0; i < ps.size(); ++i) {
        std::vector<double> twice = first[i];
        for (auto& x : twice) x *= 2;
        INFO(ps[i].name);
        CHECK(test::grad_err(host_doubles(ps[i].grad), twice) < 1e-6);
      }
      // normalizer: the gradient of sum(loss) / normalizer
      ps.zero_grad();
      t32.forward_backward(ps, ctok, 2.0 * b * (t1 - 1));
      for (std::size_t i = 0; i < ps.size(); ++i) {
        std::vector<double> half = first[i];
        for (auto& x : half) x /= 2;
        INFO(ps[i].name);
        CHECK(test::grad_err(host_doubles(ps[i].grad), half) < 1e-6);
      }
    }
  });
}

TEST_CASE("ModelTrainer: bad input throws ArgumentError naming it, and writes nothing",
          "[train][model_grad]") {
  test::TestRng rng;
  RODIMUS_SEED_INFO(rng);
  const ModelConfig cfg = grad_config(true);
  auto ps = random_parameters<Host>(cfg, rng);
  ps.zero_grad();
  train::ModelTrainer<float, Host> tr(cfg);
  const int v = cfg.vocab_size;
  auto throws_with = [&](auto&& f, const std::string& what) {
    try {
      f();
      FAIL("no exception; expected one naming '" << what << "'");
    } catch (const ArgumentError& e) {
      INFO(e.what());
      CHECK(std::string(e.what()).find(what) != std::string::npos);
    }
  };
  auto tok = random_tokens(rng, 2, 6, v, false);
  // input ids and targets out of range
  tok[3] = v;
  throws_with([&] { tr.forward_backward(ps, upload_ints<Host>(tok, 2, 6)); }, "input ids");
  throws_with([&] { tr.forward_backward(ps, upload_ints<Host>(tok, 2, 6)); }, "= 23");
  tok[3] = 0;
  tok[5] = -7;  // the last token of sequence 0: a target only
  throws_with([&] { tr.forward_backward(ps, upload_ints<Host>(tok, 2, 6)); }, "targets");
  tok[5] = -100;  // ignored: fine
  CHECK_NOTHROW(tr.forward_loss(ps, upload_ints<Host>(tok, 2, 6)));
  tok[0] = -100;  // but not as an input
  throws_with([&] { tr.forward_backward(ps, upload_ints<Host>(tok, 2, 6)); }, "input ids");
  // shapes
  throws_with([&] { tr.forward_backward(ps, upload_ints<Host>({1, 2}, 2, 1)); }, "tokens");
  throws_with([&] { tr.forward_backward(ps, View2<int, Host>("empty", 0, 5)); }, "tokens");
  const auto io = split<Host>(random_tokens(rng, 2, 6, v, false), 2, 6);
  const auto& ids = io.first;
  const auto& targets = io.second;
  throws_with([&] { tr.forward_backward(ps, ids, View2<int, Host>("t", 2, 4)); }, "targets");
  throws_with([&] { tr.forward_backward(ps, ids, View2<int, Host>("t", 3, 5)); }, "targets");
  // parameters of another model
  auto other = train::make_parameters<Host>(grad_config(false));
  throws_with([&] { tr.forward_backward(other, ids, targets); }, "parameter");
  ModelConfig wider = cfg;
  wider.vocab_size = v + 1;
  auto other2 = train::make_parameters<Host>(wider);
  throws_with([&] { tr.forward_backward(other2, ids, targets); }, "model.embeddings.weight");
  // nothing was written into the gradients
  for (const auto& p : ps) {
    const auto g = host_doubles(p.grad);
    INFO(p.name);
    CHECK(std::all_of(g.begin(), g.end(), [](double x) { return x == 0.0; }));
  }
}

TEST_CASE("ModelTrainer + AdamW: the loss of a fixed batch falls", "[train][model_grad]") {
  // A smoke test of the whole step: zero_grad, forward_backward, clip, AdamW. Tiny models memorise
  // a fixed random batch quickly; the loss must fall to a fraction of its start.
  test::TestRng rng;
  RODIMUS_SEED_INFO(rng);
  for (bool plus : {false, true}) {
    INFO((plus ? "Rodimus+" : "Rodimus"));
    const ModelConfig cfg = test::tiny_train_config(plus, /*tied=*/plus);
    auto ps = train::make_parameters<Host>(cfg, {0.02, rng.gen()});
    train::AdamW<Host> opt(
        ps, {.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.99, .eps = 1e-8, .weight_decay = 0.0});
    train::ModelTrainer<float, Host> tr(cfg);
    const auto tok = upload_ints<Host>(random_tokens(rng, 4, 17, cfg.vocab_size, false), 4, 17);
    double first = 0, last = 0;
    for (int step = 0; step < 40; ++step) {
      ps.zero_grad();
      last = tr.forward_backward(ps, tok);
      if (step == 0) first = last;
      REQUIRE(std::isfinite(train::clip_grad_norm(ps, 1.0)));
      opt.step(ps, 1e-2);
    }
    WARN((plus ? "Rodimus+" : "Rodimus")
         << ": loss " << first << " -> " << last << " after 40 steps, seed " << rng.seed);
    CHECK(first > 0.9 * std::log(double(cfg.vocab_size)));  // ~ln V at initialisation
    CHECK(last < 0.3 * first);  // seen: ~3.9 -> 0.01-0.03
  }
}
