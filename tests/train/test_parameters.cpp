// train::make_parameters: names, shapes and decay flags from the SPEC 6 table, initialisation.
#include <cmath>
#include <set>

#include "rodimus/io/random_checkpoint.hpp"
#include "rodimus/train/parameters.hpp"
#include "train_test_util.hpp"

using namespace rodimus;

TEST_CASE("make_parameters: names, shapes and decay flags", "[train]") {
  for (bool plus : {false, true})
    for (bool tied : {false, true}) {
      const ModelConfig cfg = test::tiny_train_config(plus, tied);
      auto ps = train::make_parameters<Kokkos::DefaultHostExecutionSpace>(cfg);
      INFO("plus " << plus << " tied " << tied);
      const auto table = checkpoint_tensors(cfg);
      REQUIRE(ps.size() == table.size());
      const std::size_t per_layer = plus ? 21 : 13;
      REQUIRE(ps.size() == 1 + (plus ? 1 : 0) + 2 * per_layer + 1 + (tied ? 0 : 1));
      CHECK((ps.find("lm_head.weight") != nullptr) == !tied);
      CHECK((ps.find("model.layers.1.attn.q_proj.weight") != nullptr) == plus);
      std::set<std::string> names;
      for (const auto& p : ps) {
        names.insert(p.name);
        CHECK(p.grad.extent(0) == p.value.extent(0));
        std::int64_t n = 1;
        for (auto d : p.shape) n *= d;
        CHECK(p.numel() == n);
        const bool vec = p.shape.size() == 1;
        const bool emb = p.name == "model.embeddings.weight";
        CHECK(p.decay == (!vec && !emb));  // matrices (and the conv kernel) only
      }
      CHECK(names.size() == ps.size());
      const auto& fc = ps.at("model.layers.0.mixer.fc.weight");
      CHECK(fc.shape == std::vector<std::int64_t>{128, 32});
      CHECK(fc.value_matrix().extent(0) == 128);
      CHECK(fc.value_matrix().extent(1) == 32);
      CHECK(ps.at("model.layers.1.mixer.inner_mixer.short_conv.conv1d.weight").shape ==
            std::vector<std::int64_t>{64, 1, 4});
      CHECK(ps.at("model.layers.1.mixer.inner_mixer.mem_gate_proj.bias").shape ==
            std::vector<std::int64_t>{16});
      CHECK_THROWS_AS(ps.at("no.such.tensor"), ArgumentError);
      // row blocks and slices alias the flat views
      const auto g = fc.grad_rows(64, 64);
      CHECK(g.data() == fc.grad.data() + 64 * 32);
      CHECK(g.extent(0) == 64);
      CHECK(fc.value_rows(0, 64).data() == fc.value.data());
      const auto& gb = ps.at("model.layers.0.mixer.inner_mixer.mem_gate_proj.bias");
      CHECK(gb.grad_slice(8, 8).data() == gb.grad.data() + 8);
      CHECK(gb.value_slice(0, 8).extent(0) == 8);
      CHECK_THROWS_AS(fc.grad_rows(100, 64), ArgumentError);
      CHECK_THROWS_AS(gb.value_slice(9, 8), ArgumentError);
    }
}

TEST_CASE("make_parameters: initialisation", "[train]") {
  test::TestRng rng;
  RODIMUS_SEED_INFO(rng);
  const ModelConfig cfg = test::tiny_train_config(true, false);
  train::InitOptions opt;
  opt.std = 0.05;
  opt.seed = rng.seed;
  auto ps = train::make_parameters<Kokkos::DefaultHostExecutionSpace>(cfg, opt);
  auto again = train::make_parameters<Kokkos::DefaultHostExecutionSpace>(cfg, opt);
  opt.seed += 1;
  auto other = train::make_parameters<Kokkos::DefaultHostExecutionSpace>(cfg, opt);
  for (std::size_t i = 0; i < ps.size(); ++i) {
    const auto& p = ps[i];
    INFO(p.name);
    const auto h = test::host_floats(p.value);
    CHECK(h == test::host_floats(again[i].value));
    CHECK(test::host_floats(p.grad) == std::vector<float>(h.size(), 0.f));
    switch (p.role) {
      case TensorRole::Norm:
      case TensorRole::ResidualWeight:
        CHECK(h == std::vector<float>(h.size(), 1.f));
        break;
      case TensorRole::LinearBias:
        CHECK(h == std::vector<float>(h.size(), 0.f));
        break;
      case TensorRole::ConvWeight:
      case TensorRole::ConvBias:
        for (float x : h) CHECK(std::abs(x) <= 0.5f);  // 1/sqrt(K), K = 4
        CHECK(h != test::host_floats(other[i].value));
        break;
      case TensorRole::MemGateBias:
        for (std::size_t j = 0; j < h.size(); ++j) {
          if (j < h.size() / 2) {
            const double s = std::log1p(std::exp(double(h[j])));  // softplus
            CHECK(s >= 1e-3 * (1 - 1e-5));
            CHECK(s <= 0.1 * (1 + 1e-5));
          } else {
            const double tau = 1 / (1 + std::exp(-double(h[j])));
            CHECK(tau >= 1.0 / 16 - 1e-6);
            CHECK(tau <= 0.9 + 1e-6);
          }
        }
        break;
      case TensorRole::Embedding:
      case TensorRole::Matrix: {
        CHECK(h != test::host_floats(other[i].value));
        if (h.size() >= 1000) {  // N(0, 0.05): sample mean and std
          double s = 0, s2 = 0;
          for (float x : h) {
            s += x;
            s2 += double(x) * x;
          }
          const double mean = s / h.size(), sd = std::sqrt(s2 / h.size() - mean * mean);
          CHECK(std::abs(mean) < 0.05 * 6 / std::sqrt(double(h.size())));
          CHECK(std::abs(sd - 0.05) < 0.05 * 0.15);
        }
        break;
      }
    }
  }
  ps.at("model.norm_f.weight").grad(3) = 2.f;
  ps.zero_grad();
  Kokkos::fence();
  CHECK(ps.at("model.norm_f.weight").grad(3) == 0.f);
}

TEST_CASE("initializer_range and load_parameters", "[train]") {
  CHECK(train::initializer_range(std::string(RODIMUS_TEST_DATA_DIR) + "/golden/tiny_rodimus",
                                 0.5) == 0.02);
  test::TempDir dir("init_range");
  const ModelConfig cfg = test::tiny_train_config(false, true);
  io::write_random_checkpoint(cfg, dir.path, 7, io::StDType::F32);
  CHECK(train::initializer_range(dir.path, 0.125) == 0.125);  // config_to_json has no such key
  CHECK_THROWS_AS(train::initializer_range(dir.path / "nope.json"), ConfigError);

  // load_parameters reads the published tensors into the master weights.
  auto ps = train::make_parameters<Kokkos::DefaultHostExecutionSpace>(cfg);
  const auto ckpt = io::Checkpoint::open(dir.path);
  train::load_parameters(ckpt, ps);
  for (const auto& p : ps) {
    INFO(p.name);
    CHECK(test::host_floats(p.value) ==
          ckpt.read_f32(p.name, std::span<const std::int64_t>(p.shape)));
  }
  auto wrong = train::make_parameters<Kokkos::DefaultHostExecutionSpace>(
      test::tiny_train_config(false, false));
  CHECK_THROWS_AS(train::load_parameters(ckpt, wrong), CheckpointError);  // lm_head missing
}
