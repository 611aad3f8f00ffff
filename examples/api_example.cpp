// A complete program using the rodimus API: load a checkpoint, prefill two prompts of different
// lengths in one call, greedy-decode both together, snapshot and restore a sequence's state.
//
//   api_example [MODEL_DIR]      (default: the tiny Rodimus+ golden model in tests/data)
#include <cstdio>
#include <cstdlib>
#include <rodimus/rodimus.hpp>
#include <vector>

namespace {

// argmax over one row of a logits view [rows, V] (host-accessible copy)
template <class V>
int argmax_row(const V& logits, int row) {
  int best = 0;
  for (int c = 1; c < static_cast<int>(logits.extent(1)); ++c)
    if (logits(row, c) > logits(row, best)) best = c;
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  setenv("OMP_PROC_BIND", "false", 0);
  Kokkos::ScopeGuard kokkos(argc, argv);
  const char* dir = argc > 1 ? argv[1] : RODIMUS_EXAMPLE_MODEL;
  using Space = Kokkos::DefaultExecutionSpace;
  try {
    // Weights are shared and read-only; fp32 arithmetic on bf16-stored weights.
    const auto model = rodimus::Model<Space, rodimus::bf16>::load(dir);
    const auto& cfg = model.config();
    std::printf("loaded %s: %d layers, d_model %d, %lld parameters\n",
                cfg.is_plus() ? "Rodimus+" : "Rodimus", cfg.n_layer, cfg.d_model,
                static_cast<long long>(model.parameter_count()));

    // One state slot per sequence, one workspace per thread.
    auto state = model.make_state(/*slots=*/2);
    rodimus::Workspace<Space> ws;

    // Two prompts of different lengths in one prefill call (slot 0 and slot 1).
    const std::vector<std::int32_t> a = {5, 17, 3, 42, 8, 11};
    const std::vector<std::int32_t> b = {7, 1};
    rodimus::TokenBatch prompts;
    prompts.add(a, 0).add(b, 1);
    auto logits = model.prefill(state, ws, prompts);  // [2, V]: last token of each prompt

    std::vector<std::int32_t> next(2);
    std::vector<std::vector<std::int32_t>> out(2);
    for (int step = 0; step < 8; ++step) {
      auto host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), logits);
      for (int s = 0; s < 2; ++s) out[s].push_back(next[s] = argmax_row(host, s));
      if (step == 3) {
        // Snapshot sequence 0 mid-stream (e.g. to resume later or fork a conversation).
        const auto saved = state.serialize(0);
        auto copy = model.make_state(1);
        copy.restore(0, saved);
        std::printf("snapshot of sequence 0: %zu bytes at position %lld\n", saved.size(),
                    static_cast<long long>(copy.position(0)));
      }
      logits = model.decode(state, ws, next);  // one token per slot, O(1) work for Rodimus
    }
    for (int s = 0; s < 2; ++s) {
      std::printf("sequence %d continues with:", s);
      for (int t : out[s]) std::printf(" %d", t);
      std::printf("\n");
    }
    std::printf("decode state: %zu bytes per sequence\n", state.bytes_per_sequence());
  } catch (const rodimus::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
