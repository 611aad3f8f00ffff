// The training loop with the bigram model (n_layer = 0): its gradient against finite differences
// of an fp64 host forward, the loss falling on a small corpus, exact resume, micro-batches equal
// to one large batch, the time budget, and the inference Model agreeing with the trained model.
#include <cmath>
#include <functional>

#include "rodimus/io/checkpoint.hpp"
#include "rodimus/io/tokenizer.hpp"
#include "rodimus/model/model.hpp"
#include "rodimus/train/bigram_model.hpp"
#include "rodimus/train/corpus.hpp"
#include "rodimus/train/evaluate.hpp"
#include "rodimus/train/trainer.hpp"
#include "train_test_util.hpp"

using namespace rodimus;
namespace fs = std::filesystem;

namespace {

using Host = Kokkos::DefaultHostExecutionSpace;

ModelConfig bigram_config(int vocab, int d, bool tied, bool norm_embedding, bool scale) {
  ModelConfig c;
  c.block_type = BlockType::Rodimus;
  c.n_layer = 0;
  c.d_model = d;
  c.vocab_size = vocab;
  c.tie_word_embeddings = tied;
  c.use_norm_embedding = norm_embedding;
  c.use_scale_embedding = scale;
  c.mixer.mem_size = 8;
  c.bos_token_id = -1;
  c.eos_token_id = -1;
  c.eos_token_ids.clear();
  return c;
}

/// fp64 host forward of the bigram model on host copies of the parameters: mean cross-entropy.
double reference_loss(const ModelConfig& c, const std::map<std::string, std::vector<double>>& p,
                      const train::TrainBatch& b) {
  const int d = c.d_model, v = c.vocab_size;
  const auto& e = p.at("model.embeddings.weight");
  const auto& w = c.tie_word_embeddings ? e : p.at("lm_head.weight");
  const double s = c.use_scale_embedding ? std::sqrt(double(c.mem_size())) : 1.0;
  const auto norm = [&](std::vector<double> x, const std::vector<double>& g) {
    double ss = 0;
    for (double xi : x) ss += xi * xi;
    const double r = 1.0 / std::sqrt(ss / d + c.norm_epsilon);
    for (int i = 0; i < d; ++i) x[std::size_t(i)] *= r * g[std::size_t(i)];
    return x;
  };
  double total = 0;
  for (int r = 0; r < b.batch; ++r)
    for (int t = 0; t < b.seq_len; ++t) {
      const int id = b.inputs(r)[std::size_t(t)], y = b.targets(r)[std::size_t(t)];
      std::vector<double> h(static_cast<std::size_t>(d));
      for (int i = 0; i < d; ++i) h[std::size_t(i)] = e[std::size_t(id) * d + i] * s;
      if (c.use_norm_embedding) h = norm(h, p.at("model.embed_norm.weight"));
      h = norm(h, p.at("model.norm_f.weight"));
      std::vector<double> l(static_cast<std::size_t>(v));
      double mx = -1e300;
      for (int o = 0; o < v; ++o) {
        double acc = 0;
        for (int i = 0; i < d; ++i) acc += h[std::size_t(i)] * w[std::size_t(o) * d + i];
        l[std::size_t(o)] = acc;
        mx = std::max(mx, acc);
      }
      double se = 0;
      for (double x : l) se += std::exp(x - mx);
      total += std::log(se) + mx - l[std::size_t(y)];
    }
  return total / double(b.num_targets());
}

/// Callbacks with only on_step.
train::TrainerCallbacks on_steps(std::function<void(const train::StepReport&)> f) {
  train::TrainerCallbacks cb;
  cb.on_step = std::move(f);
  return cb;
}

train::TrainBatch random_batch(test::TestRng& rng, int batch, int t, int vocab) {
  train::TrainBatch b;
  b.batch = batch;
  b.seq_len = t;
  for (int i = 0; i < batch * (t + 1); ++i) b.tokens.push_back(rng.integer(0, vocab - 1));
  return b;
}

std::vector<float> all_values(const train::ParameterSet<Host>& ps) {
  std::vector<float> out;
  for (const auto& p : ps) {
    const auto h = test::host_floats(p.value);
    out.insert(out.end(), h.begin(), h.end());
  }
  return out;
}

struct SmallCorpus {
  test::TempDir dir{"trainer"};
  io::Tokenizer tok = io::Tokenizer::from_file(test::small_tokenizer_file());
  train::Corpus corpus;
  explicit SmallCorpus(std::uint32_t seed, int files = 40) {
    test::write_markov_corpus(dir.path, files, seed);
    train::CorpusOptions o;
    o.filter.extensions = {".py"};
    o.filter.exclude_dirs = {"test"};
    corpus = train::load_corpus(dir.path, tok, o);
  }
};

}  // namespace

TEST_CASE("bigram model: gradient against fp64 finite differences", "[train][trainer]") {
  test::TestRng rng;
  RODIMUS_SEED_INFO(rng);
  for (const bool tied : {false, true})
    for (const bool norm_embedding : {false, true}) {
      INFO("tied " << tied << " embed_norm " << norm_embedding);
      const auto cfg = bigram_config(23, 12, tied, norm_embedding, /*scale=*/!tied);
      auto ps = train::make_parameters<Host>(cfg, {0.5, rng.seed});
      // norm weights away from 1 so their gradients matter
      for (auto& p : ps)
        if (p.role == TensorRole::Norm) {
          std::vector<float> h(std::size_t(p.numel()));
          for (auto& x : h) x = static_cast<float>(rng.uniform(0.5, 1.5));
          test::set_floats(p.value, h);
        }
      const auto batch = random_batch(rng, 3, 5, cfg.vocab_size);
      train::BigramModel<Host> model(cfg);
      ps.zero_grad();
      const double loss = model(ps, batch);
      std::map<std::string, std::vector<double>> hp;
      for (const auto& p : ps) {
        const auto h = test::host_floats(p.value);
        hp[p.name] = std::vector<double>(h.begin(), h.end());
      }
      CHECK(loss == Approx(reference_loss(cfg, hp, batch)).epsilon(1e-5));
      CHECK(model.loss(ps, batch) == Approx(loss).epsilon(1e-6));
      for (const auto& p : ps) {
        INFO(p.name);
        const auto g = test::host_floats(p.grad);
        auto& x = hp[p.name];
        double err = 0, ref = 0;
        for (std::size_t i = 0; i < x.size(); ++i) {
          const double x0 = x[i], h = 1e-5;
          x[i] = x0 + h;
          const double lp = reference_loss(cfg, hp, batch);
          x[i] = x0 - h;
          const double lm = reference_loss(cfg, hp, batch);
          x[i] = x0;
          const double fd = (lp - lm) / (2 * h);
          err += (g[i] - fd) * (g[i] - fd);
          ref += fd * fd;
        }
        CHECK(ref > 0);
        CHECK(std::sqrt(err / ref) < 1e-4);
      }
    }
}

TEST_CASE("trainer: the loss falls on a small corpus", "[train][trainer]") {
  test::TestRng rng;
  RODIMUS_SEED_INFO(rng);
  SmallCorpus sc(rng.seed);
  const auto cfg = bigram_config(512, 32, /*tied=*/true, false, false);
  auto ps = train::make_parameters<Host>(cfg, {0.02, rng.seed});
  train::TrainerOptions o;
  o.batch = 8;
  o.seq_len = 32;
  o.steps = 120;
  o.lr = 2e-2;
  o.min_lr = 2e-3;
  o.warmup_steps = 10;
  o.eval_every = 40;
  o.eval_windows = -1;
  o.seed = rng.seed;
  train::Trainer<Host> trainer(ps, sc.corpus.train, &sc.corpus.heldout, o);
  train::BigramModel<Host> model(cfg);
  const double before = trainer.evaluate(model, -1).loss();
  std::vector<double> losses, evals;
  train::TrainerCallbacks cb;
  cb.on_step = [&](const train::StepReport& r) {
    losses.push_back(r.loss);
    CHECK(r.step == std::int64_t(losses.size()));
    CHECK(r.total_steps == 120);
    CHECK(r.tokens == r.step * 8 * 32);
    CHECK(std::isfinite(r.grad_norm));
  };
  cb.on_eval = [&](const train::EvalReport& r) { evals.push_back(r.result.loss()); };
  const auto s = trainer.run(model, cb);
  CHECK(s.steps == 120);
  CHECK(s.skipped_steps == 0);
  REQUIRE(losses.size() == 120u);
  REQUIRE(evals.size() == 3u);  // steps 40, 80 and the final one
  double head = 0, tail = 0;
  for (int i = 0; i < 10; ++i) head += losses[std::size_t(i)] / 10;
  for (int i = 110; i < 120; ++i) tail += losses[std::size_t(i)] / 10;
  INFO("train loss " << head << " -> " << tail << ", held-out " << before << " -> "
                     << evals.back());
  CHECK(losses[0] > 5.5);  // ~ ln 512 = 6.24 at the start
  CHECK(tail < losses[0] - 3.0);
  CHECK(tail < head);
  CHECK(evals.back() < before - 2.5);
  CHECK(s.last_eval->bits_per_byte() > 0);
}

TEST_CASE("trainer: resume is exact, micro-batches equal one batch", "[train][trainer]") {
  test::TestRng rng;
  RODIMUS_SEED_INFO(rng);
  SmallCorpus sc(rng.seed, 25);
  const auto cfg = bigram_config(512, 16, /*tied=*/false, /*norm_embedding=*/true, true);
  train::TrainerOptions o;
  o.batch = 4;
  o.seq_len = 24;
  o.steps = 10;
  o.lr = 1e-2;
  o.warmup_steps = 3;
  o.seed = rng.seed;
  o.clip = 0.5;  // clipping active
  train::BigramModel<Host> model(cfg);

  SECTION("resume") {
    test::TempDir ckpt("resume");
    std::vector<double> la, lb;
    auto a = train::make_parameters<Host>(cfg, {0.02, 1});
    train::Trainer<Host> ta(a, sc.corpus.train, nullptr, o);
    ta.run(model, on_steps([&](const train::StepReport& r) { la.push_back(r.loss); }));

    auto b = train::make_parameters<Host>(cfg, {0.02, 1});
    auto ob = o;
    ob.checkpoint_dir = ckpt.path;
    ob.model_dtype = io::StDType::F32;
    {
      train::Trainer<Host> tb(b, sc.corpus.train, nullptr, ob);
      const auto s =
          tb.run(model, on_steps([&](const train::StepReport& r) { lb.push_back(r.loss); }),
                 /*max_new_steps=*/4);
      CHECK(s.steps == 4);
      CHECK_FALSE(s.stopped_by_time);
    }
    // a fresh process: other weights, a new trainer, resumed from the checkpoint
    auto c = train::make_parameters<Host>(cfg, {0.02, 99});
    train::Trainer<Host> tc(c, sc.corpus.train, nullptr, ob);
    CHECK(tc.resume(ckpt.path).step == 4);
    CHECK(tc.step() == 4);
    tc.run(model, on_steps([&](const train::StepReport& r) { lb.push_back(r.loss); }));
    CHECK(tc.step() == 10);
    CHECK(la == lb);  // bit-identical losses
    CHECK(all_values(a) == all_values(c));
    for (std::size_t i = 0; i < a.size(); ++i) {
      CHECK(test::host_floats(ta.optimizer().exp_avg(i)) ==
            test::host_floats(tc.optimizer().exp_avg(i)));
      CHECK(test::host_floats(ta.optimizer().exp_avg_sq(i)) ==
            test::host_floats(tc.optimizer().exp_avg_sq(i)));
    }
    // a checkpoint of other batches cannot be continued exactly
    auto od = ob;
    od.seed = o.seed + 1;
    auto d = train::make_parameters<Host>(cfg, {0.02, 1});
    train::Trainer<Host> td(d, sc.corpus.train, nullptr, od);
    CHECK_THROWS_WITH(td.resume(ckpt.path), Catch::Contains("seed"));
  }

  SECTION("micro-batches") {
    // eps = 1 makes the first AdamW update ~ lr * g: the update shows the gradient itself
    o.eps = 1.0;
    o.weight_decay = 0.0;
    o.clip = 0.0;
    o.steps = 1;
    std::vector<std::vector<float>> deltas;
    std::vector<double> losses;
    for (const int micro : {1, 2, 4}) {
      auto p = train::make_parameters<Host>(cfg, {0.02, 5});
      const auto before = all_values(p);
      auto om = o;
      om.micro_batches = micro;
      train::Trainer<Host> t(p, sc.corpus.train, nullptr, om);
      t.run(model, on_steps([&](const train::StepReport& r) { losses.push_back(r.loss); }));
      auto after = all_values(p);
      for (std::size_t i = 0; i < after.size(); ++i) after[i] -= before[i];
      deltas.push_back(after);
    }
    for (int k = 1; k < 3; ++k) {
      double err = 0, ref = 0;
      for (std::size_t i = 0; i < deltas[0].size(); ++i) {
        err += std::pow(double(deltas[std::size_t(k)][i]) - deltas[0][i], 2);
        ref += std::pow(double(deltas[0][i]), 2);
      }
      CHECK(ref > 0);
      CHECK(std::sqrt(err / ref) < 1e-5);
      CHECK(losses[std::size_t(k)] == Approx(losses[0]).epsilon(1e-6));
    }
  }
}

TEST_CASE("trainer: time budget, options, the inference Model agrees", "[train][trainer]") {
  test::TestRng rng;
  RODIMUS_SEED_INFO(rng);
  SmallCorpus sc(rng.seed, 25);
  const auto cfg = bigram_config(512, 16, false, false, false);
  train::BigramModel<Host> model(cfg);

  SECTION("time budget fixes the schedule after the calibration steps") {
    auto ps = train::make_parameters<Host>(cfg, {0.02, 3});
    train::TrainerOptions o;
    o.batch = 2;
    o.seq_len = 16;
    o.steps = 0;
    o.max_seconds = 1.0;
    o.warmup_steps = 2;
    train::Trainer<Host> t(ps, sc.corpus.train, nullptr, o);
    std::vector<std::int64_t> totals;
    const auto s = t.run(
        model, on_steps([&](const train::StepReport& r) { totals.push_back(r.total_steps); }));
    REQUIRE(totals.size() >= 5u);
    for (std::size_t i = 0; i < 4; ++i) CHECK(totals[i] == 0);
    CHECK(totals[4] >= 5);
    CHECK(s.total_steps == totals[4]);
    CHECK(s.seconds < 5.0);
  }

  SECTION("a stop request ends the run after the step, with a checkpoint") {
    test::TempDir ckpt("stop");
    auto ps = train::make_parameters<Host>(cfg, {0.02, 3});
    train::TrainerOptions o;
    o.batch = 2;
    o.seq_len = 16;
    o.steps = 50;
    o.checkpoint_dir = ckpt.path;
    train::Trainer<Host> t(ps, sc.corpus.train, nullptr, o);
    train::TrainerCallbacks cb;
    cb.stop_requested = [&] { return t.step() >= 3; };
    const auto s = t.run(model, cb);
    CHECK(s.stopped_by_request);
    CHECK_FALSE(s.stopped_by_time);
    CHECK(s.steps == 3);
    auto ps2 = train::make_parameters<Host>(cfg, {0.02, 4});
    train::Trainer<Host> t2(ps2, sc.corpus.train, nullptr, o);
    CHECK(t2.resume(ckpt.path).step == 3);
  }

  SECTION("upload_batch") {
    test::TestRng r2;
    const auto b = random_batch(r2, 3, 5, 40);
    View2<int, Host> buf;
    const auto v = train::upload_batch(b, buf);
    REQUIRE(v.extent(0) == 3);
    REQUIRE(v.extent(1) == 6);
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 6; ++j) CHECK(v(i, j) == b.row(i)[std::size_t(j)]);
    auto bad = b;
    bad.tokens.pop_back();
    CHECK_THROWS_AS(train::upload_batch(bad, buf), ArgumentError);
  }

  SECTION("bad options") {
    auto ps = train::make_parameters<Host>(cfg, {0.02, 3});
    const auto make = [&](auto change) {
      train::TrainerOptions o;
      o.steps = 1;
      o.batch = 4;
      o.seq_len = 8;
      change(o);
      train::Trainer<Host> t(ps, sc.corpus.train, nullptr, o);
    };
    CHECK_THROWS_WITH(make([](auto& o) { o.micro_batches = 3; }),
                      Catch::Contains("must divide batch"));
    CHECK_THROWS_WITH(make([](auto& o) { o.steps = 0; }),
                      Catch::Contains("steps or a time budget"));
    CHECK_THROWS_WITH(make([](auto& o) { o.min_lr = 1.0; }), Catch::Contains("min_lr"));
    CHECK_THROWS_WITH(make([](auto& o) { o.seq_len = 1 << 20; }),
                      Catch::Contains("fewer than seq_len + 1"));
    CHECK_THROWS_AS(train::BigramModel<Host>(test::tiny_train_config(false, true)), ConfigError);
  }

  SECTION("Model (n_layer = 0) on the checkpoint gives the trainer's held-out loss") {
    test::TempDir ckpt("model_eval");
    auto ps = train::make_parameters<Host>(cfg, {0.02, 4});
    train::TrainerOptions o;
    o.batch = 4;
    o.seq_len = 32;
    o.steps = 20;
    o.lr = 1e-2;
    o.checkpoint_dir = ckpt.path;
    o.model_dtype = io::StDType::F32;
    train::Trainer<Host> t(ps, sc.corpus.train, &sc.corpus.heldout, o);
    const auto s = t.run(model);
    REQUIRE(s.last_eval);
    const auto full = t.evaluate(model, -1);
    const auto m = Model<Host, float>::load(ckpt.path);
    CHECK(m.config().n_layer == 0);
    const auto r = train::evaluate_model(m, sc.corpus.heldout, o.seq_len, 3);
    // the Model scores the partial last window too
    CHECK(r.targets == sc.corpus.heldout.targets());
    CHECK(r.bytes_exact);
    CHECK(r.bytes == double(sc.corpus.heldout.bytes));
    const auto part = train::evaluate_model(m, sc.corpus.heldout, o.seq_len, 3, full.windows);
    CHECK(part.targets == full.targets);
    CHECK(part.nats == Approx(full.nats).epsilon(1e-5));
    CHECK(r.loss() == Approx(full.loss()).epsilon(0.05));
  }
}
