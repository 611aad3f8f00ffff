// One training step (forward + backward of the whole model, train::ModelTrainer<float>) at the
// shape of the default model models/tiny-coder (Rodimus+, D = 256, 4 layers, vocab 8192) and a
// pure Rodimus of the same width, on random parameters and random tokens; no optimiser (AdamW
// is a few element-wise passes over the parameters).
//
//   bench_train                      tokens/s of forward_backward and of forward_loss alone
//   RODIMUS_PROFILE=1 bench_train    instead: a per-kernel table of one training step
//                                    (bench/kernel_profile.hpp, every kernel fenced)
//
// Roofline: a step does about 6 x (matrix parameters) FLOPs per token in its matrix products
// (2 forward, 4 backward); `roofline_fraction` = that work at the sgemm rate measured in the same
// binary (bench/roofline.hpp) over the measured time. The scan, attention and element-wise work
// come on top, so this is an upper bound on what the products alone could reach.
#include <random>
#include <string>

#include "bench_main.hpp"
#include "kernel_profile.hpp"
#include "rodimus/io/config_json.hpp"
#include "rodimus/train/model_grad.hpp"
#include "roofline.hpp"

namespace {

using Space = Kokkos::DefaultExecutionSpace;
using namespace rodimus;

// models/tiny-coder/config.json (Rodimus+; RODIMUS_TINY_CODER_CONFIG, set by CMake) and its
// pure-Rodimus twin (the same config with Rodimus blocks)
ModelConfig tiny_coder(bool plus) {
  ModelConfig cfg = io::load_config(RODIMUS_TINY_CODER_CONFIG);
  if (!plus) cfg.block_type = BlockType::Rodimus;
  return cfg;
}

struct Setup {
  ModelConfig cfg;
  train::ParameterSet<Space> params;
  View2<int, Space> tokens;  // [B, T + 1]
  double matrix_params = 0;

  Setup(const ModelConfig& c, int b, int t)
      : cfg(c), params(train::make_parameters<Space>(cfg)), tokens("tokens", b, t + 1) {
    std::mt19937 rng(3);
    auto h = Kokkos::create_mirror_view(tokens);
    for (int i = 0; i < b; ++i)
      for (int j = 0; j <= t; ++j) h(i, j) = static_cast<int>(rng() % unsigned(cfg.vocab_size));
    Kokkos::deep_copy(tokens, h);
    // every linear weight, and the embedding as the (tied) LM head's matrix
    for (const auto& p : params)
      if (p.role == TensorRole::Matrix || p.role == TensorRole::Embedding)
        matrix_params += double(p.numel());
  }
};

void BM_train_step(benchmark::State& st, bool plus, bool backward) {
  const int b = static_cast<int>(st.range(0)), t = static_cast<int>(st.range(1));
  Setup s(tiny_coder(plus), b, t);
  train::ModelTrainer<float, Space> trainer(s.cfg);
  const View2<const int, Space> tok(s.tokens);
  double loss = 0;
  for (auto _ : st) {
    if (backward) {
      s.params.zero_grad();
      loss = trainer.forward_backward(s.params, tok);
    } else {
      loss = trainer.forward_loss(s.params, tok);
    }
    Space().fence();
  }
  const double tokens = double(b) * t;
  st.counters["tokens_per_s"] =
      benchmark::Counter(tokens * st.iterations(), benchmark::Counter::kIsRate);
  const double flops = (backward ? 6.0 : 2.0) * s.matrix_params * tokens;
  const double peak = bench::sgemm_peak();  // FLOP/s (0 without a BLAS)
  st.counters["roofline_fraction"] = benchmark::Counter(
      peak > 0 ? flops / peak * st.iterations() : 0.0, benchmark::Counter::kIsRate);
  st.counters["loss"] = loss;
  st.counters["params_M"] = s.matrix_params * 1e-6;
}

void register_all() {
  for (bool backward : {true, false})
    for (bool plus : {true, false})
      benchmark::RegisterBenchmark(
          (std::string(backward ? "train_step/" : "forward_loss/") +
           (plus ? "tiny-coder" : "tiny-rodimus"))
              .c_str(),
          [plus, backward](benchmark::State& st) { BM_train_step(st, plus, backward); })
          ->Args({16, 256})
          ->ArgNames({"B", "T"})
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
}

// RODIMUS_PROFILE=1: one warm-up step, then the per-kernel table of one step of the tiny-coder
// shape (B = 16, T = 256).
int profile_run() {
  Setup s(tiny_coder(true), 16, 256);
  train::ModelTrainer<float, Space> trainer(s.cfg);
  const View2<const int, Space> tok(s.tokens);
  s.params.zero_grad();
  trainer.forward_backward(s.params, tok);
  bench::profile::enable();
  bench::profile::reset();
  s.params.zero_grad();
  trainer.forward_backward(s.params, tok);
  bench::profile::report("tiny-coder training step, B = 16, T = 256", 40);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // OpenMP's idle threads and the BLAS's must not spin against each other (blas_threads.hpp);
  // libgomp reads its variables as it loads, so a setenv of OMP_WAIT_POLICY here would be too late
  rodimus::backend::host::reexec_with_quiet_idle_threads(argv);
  setenv("OMP_PROC_BIND", "false", 0);
  Kokkos::ScopeGuard guard(argc, argv);
  if (std::getenv("RODIMUS_PROFILE")) return profile_run();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  for (auto& f : bench_cleanups()) f();
  return 0;
}
