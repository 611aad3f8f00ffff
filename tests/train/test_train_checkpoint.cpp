// train::save_training_checkpoint / load_training_checkpoint: the inference loader accepts the
// model, resume is bit-identical, broken files give CheckpointErrors naming the file.
#include <fstream>
#include <functional>
#include <memory>

#include "rodimus/io/config_json.hpp"
#include "rodimus/model/model.hpp"
#include "rodimus/train/checkpoint.hpp"
#include "train_test_util.hpp"

using namespace rodimus;
namespace fs = std::filesystem;

namespace {

// `steps` AdamW steps with the gradients grads[first + s].
template <class Space>
void run_steps(train::ParameterSet<Space>& ps, train::AdamW<Space>& opt,
               const std::vector<std::vector<std::vector<float>>>& grads, int first, int steps) {
  for (int s = first; s < first + steps; ++s) {
    for (std::size_t i = 0; i < ps.size(); ++i) test::set_floats(ps[i].grad, grads[s][i]);
    opt.step(ps, 1e-2 / (1 + s));
  }
  Space().fence();
}

template <class Space>
std::vector<std::vector<std::vector<float>>> make_grads(const train::ParameterSet<Space>& ps,
                                                        int steps, test::TestRng& rng) {
  std::vector<std::vector<std::vector<float>>> g(steps);
  for (auto& step : g)
    for (const auto& p : ps) {
      std::vector<float> h(std::size_t(p.numel()));
      for (auto& x : h) x = static_cast<float>(rng.uniform(-1, 1));
      step.push_back(std::move(h));
    }
  return g;
}

float bf16_round(float x) { return to_f32(from_f32<bf16>(x)); }

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "(no CheckpointError)";
}

}  // namespace

TEST_CASE("training checkpoint: Model::load reads the saved model", "[train]") {
  using Space = Kokkos::DefaultHostExecutionSpace;
  test::TestRng rng;
  RODIMUS_SEED_INFO(rng);
  for (bool plus : {false, true})
    for (auto dtype : {io::StDType::BF16, io::StDType::F32}) {
      const bool tied = plus;
      INFO("plus " << plus << " dtype " << io::st_dtype_name(dtype));
      const ModelConfig cfg = test::tiny_train_config(plus, tied);
      train::InitOptions init;
      init.seed = rng.seed;
      auto ps = train::make_parameters<Space>(cfg, init);
      train::AdamW<Space> opt(ps);
      test::TempDir dir("model_load");
      train::save_training_checkpoint(dir.path, cfg, ps, opt, 0, nullptr, {dtype});

      const auto model = Model<Space, float>::load(dir.path);
      CHECK(model.parameter_count() == ps.numel());
      CHECK(io::config_to_json(io::load_config(dir.path)) == io::config_to_json(cfg));
      CHECK(train::initializer_range(dir.path) == init.std);
      const auto ckpt = io::Checkpoint::open(dir.path);
      CHECK(ckpt.names().size() == ps.size());
      for (const auto& p : ps) {
        INFO(p.name);
        auto want = test::host_floats(p.value);
        if (dtype == io::StDType::BF16)
          for (auto& x : want) x = bf16_round(x);
        REQUIRE(ckpt.read_f32(p.name, std::span<const std::int64_t>(p.shape)) == want);
      }
      // spot checks of the bound model weights
      const auto& w = model.weights();
      const auto nf = test::host_floats(ps.at("model.norm_f.weight").value);
      for (std::size_t j = 0; j < nf.size(); ++j)
        CHECK(w.norm_f(j) == nf[j]);  // 1.0: exact in bf16
      const auto fc = test::host_floats(ps.at("model.layers.1.mixer.fc.weight").value);
      const int e = cfg.d_inner(), d = cfg.d_model;
      for (int r = 0; r < e; r += 7)
        for (int c = 0; c < d; c += 5) {
          const float x = fc[std::size_t(r) * d + c], g = fc[std::size_t(e + r) * d + c];
          CHECK(w.layers[1].mixer.fc_x.w(r, c) == (dtype == io::StDType::BF16 ? bf16_round(x) : x));
          CHECK(w.layers[1].mixer.fc_g.w(r, c) == (dtype == io::StDType::BF16 ? bf16_round(g) : g));
        }
      const auto gb =
          test::host_floats(ps.at("model.layers.0.mixer.inner_mixer.mem_gate_proj.bias").value);
      const int n = cfg.mem_size();
      for (int j = 0; j < n; ++j) {
        CHECK(w.layers[0].mixer.mem_s.b(j) ==
              (dtype == io::StDType::BF16 ? bf16_round(gb[j]) : gb[j]));
        CHECK(w.layers[0].mixer.mem_t.b(j) ==
              (dtype == io::StDType::BF16 ? bf16_round(gb[n + j]) : gb[n + j]));
      }
    }
}

TEST_CASE("training checkpoint: resume is bit-identical", "[train]") {
  test::TestRng rng;
  RODIMUS_SEED_INFO(rng);
  test::for_each_space([&]<class Space>() {
    INFO(Space::name());
    const ModelConfig cfg = test::tiny_train_config(true, false);
    train::InitOptions init;
    init.seed = rng.seed;
    auto a = train::make_parameters<Space>(cfg, init);
    train::AdamWConfig ac;
    ac.beta2 = 0.95;
    ac.weight_decay = 0.05;
    train::AdamW<Space> opt_a(a, ac);
    const auto grads = make_grads(a, 6, rng);
    run_steps(a, opt_a, grads, 0, 3);

    test::TempDir dir("resume");
    const nlohmann::json extra = {{"seed", rng.seed},
                                  {"data_position", 12345},
                                  {"schedule", {{"max_lr", 1e-2}, {"warmup", 0}}}};
    train::save_training_checkpoint(dir.path, cfg, a, opt_a, 3, extra);  // bf16 model file
    run_steps(a, opt_a, grads, 3, 3);

    init.seed += 1;  // other initial weights, other hyper-parameters: all must be restored
    auto b = train::make_parameters<Space>(cfg, init);
    train::AdamW<Space> opt_b(b);
    const train::TrainingState st = train::load_training_checkpoint(dir.path, b, opt_b);
    CHECK(st.step == 3);
    CHECK(st.extra == extra);
    CHECK(st.model_dtype == io::StDType::BF16);
    CHECK(opt_b.step_count() == 3);
    CHECK(opt_b.config().beta2 == ac.beta2);
    CHECK(opt_b.config().weight_decay == ac.weight_decay);
    run_steps(b, opt_b, grads, 3, 3);
    CHECK(opt_b.step_count() == opt_a.step_count());
    for (std::size_t i = 0; i < a.size(); ++i) {
      INFO(a[i].name);
      REQUIRE(test::host_floats(b[i].value) == test::host_floats(a[i].value));
      REQUIRE(test::host_floats(opt_b.exp_avg(i)) == test::host_floats(opt_a.exp_avg(i)));
      REQUIRE(test::host_floats(opt_b.exp_avg_sq(i)) == test::host_floats(opt_a.exp_avg_sq(i)));
    }
  });
}

TEST_CASE("training checkpoint: broken or missing files name the file", "[train]") {
  using Space = Kokkos::DefaultHostExecutionSpace;
  const ModelConfig cfg = test::tiny_train_config(false, false);
  auto ps = train::make_parameters<Space>(cfg);
  train::AdamW<Space> opt(ps);
  auto fresh = [&] {
    auto dir = std::make_unique<test::TempDir>("errors");
    train::save_training_checkpoint(dir->path, cfg, ps, opt, 7);
    return dir;
  };
  auto q = train::make_parameters<Space>(cfg, {0.02, 99});
  train::AdamW<Space> opt_q(q);
  const auto q_before = test::host_floats(q[0].value);
  auto load = [&](const fs::path& p) {
    return [&, p] { train::load_training_checkpoint(p, q, opt_q); };
  };

  SECTION("the checkpoint loads") {
    auto d = fresh();
    CHECK(train::load_training_checkpoint(d->path, q, opt_q).step == 7);
    CHECK(test::host_floats(q[0].value) == test::host_floats(ps[0].value));
    return;
  }
  SECTION("missing files") {
    for (const char* f :
         {"optimizer.safetensors", "model.safetensors", "trainer_state.json", "config.json"}) {
      auto d = fresh();
      fs::remove(d->path / f);
      const std::string msg = message_of(load(d->path));
      INFO(msg);
      CHECK(msg.find(f) != std::string::npos);
    }
  }
  SECTION("truncated or corrupt files") {
    for (const char* f :
         {"optimizer.safetensors", "model.safetensors", "trainer_state.json", "config.json"}) {
      auto d = fresh();
      const auto size = fs::file_size(d->path / f);
      fs::resize_file(d->path / f, size / 2);
      const std::string msg = message_of(load(d->path));
      INFO(msg);
      CHECK(msg.find(f) != std::string::npos);
    }
  }
  SECTION("a tensor missing from the optimizer file") {
    auto d = fresh();
    std::vector<float> zeros(16, 0.f);
    io::TensorWrite only{"x", io::StDType::F32, {16}, zeros.data()};
    io::write_safetensors(d->path / "optimizer.safetensors", std::span(&only, 1));
    const std::string msg = message_of(load(d->path));
    INFO(msg);
    CHECK(msg.find("optimizer.safetensors") != std::string::npos);
    CHECK(msg.find("model.embeddings.weight.master") != std::string::npos);
  }
  SECTION("a checkpoint of another model") {
    auto d = fresh();
    auto other = train::make_parameters<Space>(test::tiny_train_config(true, false));
    train::AdamW<Space> opt_o(other);
    const std::string msg =
        message_of([&] { train::load_training_checkpoint(d->path, other, opt_o); });
    INFO(msg);
    CHECK(msg.find("config.json") != std::string::npos);
  }
  SECTION("no directory") {
    const std::string msg = message_of(load("/nonexistent/rodimus/ckpt"));
    CHECK(msg.find("trainer_state.json") != std::string::npos);
  }
  // A failed load leaves the parameters alone.
  CHECK(test::host_floats(q[0].value) == q_before);
}
