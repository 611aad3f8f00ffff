// TransformerModel: logits against the fp64 reference for packed batches of several sequences,
// prefill in chunks and token-by-token decode against one call, KV cache growth past the
// initial capacity, GQA with H / Hkv = 1, 2, 4, bf16 weights, and errors.
#include "op_test_util.hpp"
#include "rodimus/model/transformer.hpp"
#include "rodimus/reference/transformer.hpp"

using namespace rodimus;
using test::TestRng;

namespace {

// fp32 arithmetic through two blocks and the head, fp32 RoPE angles: relative to the logit scale
constexpr double kTol = 1e-4;

TransformerConfig small_config(int heads, int kv_heads, bool tied) {
  TransformerConfig c;
  c.d_model = 64;
  c.n_layer = 2;
  c.heads = heads;
  c.kv_heads = kv_heads;
  c.head_dim = 16;
  c.ffn_dim = 88;
  c.vocab = 97;
  c.tie_embeddings = tied;
  return c;
}

reference::Weights to_reference(const HostTensors& t) {
  reference::Weights w;
  for (const auto& [name, v] : t) w[name] = std::vector<double>(v.begin(), v.end());
  return w;
}

std::vector<std::int32_t> random_ids(TestRng& rng, int n, int vocab) {
  std::vector<std::int32_t> ids(n);
  for (auto& x : ids) x = rng.integer(0, vocab - 1);
  return ids;
}

std::vector<int> as_int(const std::vector<std::int32_t>& v) { return {v.begin(), v.end()}; }

}  // namespace

TEST_CASE("TransformerModel matches the fp64 reference; prefill in chunks and decode agree",
          "[model][transformer]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  double worst = 0;
  for (const auto& [heads, kv_heads] : {std::pair{4, 4}, std::pair{4, 2}, std::pair{4, 1}}) {
    const bool tied = heads == kv_heads;
    const auto cfg = small_config(heads, kv_heads, tied);
    INFO("H=" << heads << " Hkv=" << kv_heads << " tied=" << tied);
    const auto tensors = random_transformer_tensors(cfg, rng.gen());
    const auto ref_w = to_reference(tensors);
    // three sequences of different lengths (one longer than a key tile of 32)
    const std::vector<int> lens = {rng.integer(2, 9), 45, rng.integer(10, 30)};
    std::vector<std::vector<std::int32_t>> seqs;
    std::vector<std::vector<double>> ref;
    for (int len : lens) {
      seqs.push_back(random_ids(rng, len, cfg.vocab));
      ref.push_back(reference::transformer_forward(cfg, ref_w, as_int(seqs.back())));
    }
    test::for_each_space([&]<class Space>() {
      INFO("backend " << Space::name());
      const TransformerModel<Space, float> model(cfg, tensors);
      TransformerWorkspace<Space> ws;
      const int V = cfg.vocab;
      // (a) every sequence whole, in one call, from a state of capacity 4: grows during the call
      {
        auto state = model.make_state(3, 4);
        CHECK(state.capacity() == 4);
        TokenBatch b;
        for (int s = 0; s < 3; ++s) b.add(seqs[s], 2 - s);  // slots in reverse order
        const auto all = test::download2(model.forward(state, ws, b, LogitsMode::All));
        CHECK(state.capacity() >= 45);
        int off = 0;
        for (int s = 0; s < 3; ++s) {
          const double e = test::rel_err(test::rows_of(all, off, lens[s], V), ref[s]);
          worst = std::max(worst, e);
          CHECK(e <= kTol);
          CHECK(state.position(2 - s) == lens[s]);
          off += lens[s];
        }
      }
      // (b) prefill a prefix of each in two chunks, then decode the rest of all three together
      //     token by token (a sequence that has ended keeps decoding its own last token and is
      //     not compared); the state starts with capacity 3 and grows while decoding.
      {
        auto state = model.make_state(3, 3);
        std::vector<int> pre(3);
        for (int s = 0; s < 3; ++s) pre[s] = std::min(lens[s] - 1, rng.integer(1, 8));
        TokenBatch first, second;
        for (int s = 0; s < 3; ++s) {
          const int cut = rng.integer(0, pre[s] - 1);  // the second chunk is not empty
          first.add(std::span(seqs[s]).subspan(0, cut), s);
          second.add(std::span(seqs[s]).subspan(cut, pre[s] - cut), s);
        }
        model.prefill(state, ws, first);
        const auto last = test::download2(model.prefill(state, ws, second));  // [3, V]
        for (int s = 0; s < 3; ++s)
          CHECK(test::rel_err(test::rows_of(last, s, 1, V),
                              test::rows_of(ref[s], pre[s] - 1, 1, V)) <= kTol);
        int grew = 0;
        std::vector<std::int32_t> next(3);
        for (int step = 0;; ++step) {
          bool any = false;
          for (int s = 0; s < 3; ++s) {
            const int p = pre[s] + step;
            any = any || p < lens[s];
            next[s] = p < lens[s] ? seqs[s][p] : 0;
          }
          if (!any) break;
          const int cap = state.capacity();
          const auto out = test::download2(model.decode(state, ws, next));
          grew += state.capacity() != cap;
          for (int s = 0; s < 3; ++s) {
            const int p = pre[s] + step;
            if (p >= lens[s]) continue;
            const double e =
                test::rel_err(test::rows_of(out, s, 1, V), test::rows_of(ref[s], p, 1, V));
            worst = std::max(worst, e);
            CHECK(e <= kTol);
          }
        }
        CHECK(grew >= 2);  // the prefills leave at most 16 rows; 45 need 2 doublings more
        CHECK(state.capacity() >= 45);
        CHECK(state.bytes() == std::size_t(state.capacity()) * 3 * state.bytes_per_token());
        CHECK(state.bytes_used(1) == std::size_t(45) * state.bytes_per_token());
      }
    });
  }
  WARN("TransformerModel max rel err vs reference " << worst);
}

TEST_CASE("TransformerModel: Last logits are the last rows of All; decode equals one call",
          "[model][transformer]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  const auto cfg = small_config(4, 2, false);
  const auto tensors = random_transformer_tensors(cfg, rng.gen());
  const auto ids = random_ids(rng, 40, cfg.vocab);
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    const TransformerModel<Space, float> model(cfg, tensors);
    TransformerWorkspace<Space> ws;
    auto s1 = model.make_state(1, 64);
    const auto all = test::download2(model.forward(s1, ws, TokenBatch::single(ids)));
    auto s2 = model.make_state(1, 64);
    const auto last =
        test::download2(model.forward(s2, ws, TokenBatch::single(ids), LogitsMode::Last));
    // the head runs as a GEMV on one row and as a GEMM on 40: a few fp32 ulps apart
    CHECK(test::rel_err(last, test::rows_of(all, 39, 1, cfg.vocab)) <= 1e-5);
    // token by token: every op computes each row the same way whatever the split
    auto s3 = model.make_state(1, 64);
    std::vector<double> steps;
    for (int t = 0; t < 40; ++t) {
      const std::vector<std::int32_t> id = {ids[t]};
      const auto o = test::download2(model.decode(s3, ws, id));
      steps.insert(steps.end(), o.begin(), o.end());
    }
    // linear kernels differ between one token (GEMV) and a block (GEMM): a few fp32 ulps
    CHECK(test::rel_err(steps, all) <= 1e-5);
  });
}

TEST_CASE("TransformerModel with bf16 weights matches the reference on the rounded weights",
          "[model][transformer][bf16]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  const auto cfg = small_config(4, 1, false);
  const auto tensors = random_transformer_tensors(cfg, rng.gen());
  // the reference multiplies with what bf16 holds for every matrix; norm weights stay fp32
  reference::Weights ref_w;
  for (const auto& [name, v] : tensors) {
    std::vector<double> d(v.begin(), v.end());
    ref_w[name] = name.find("norm") != std::string::npos ? d : test::dequantised<bf16>(d);
  }
  const auto ids = random_ids(rng, 21, cfg.vocab);
  const auto ref = reference::transformer_forward(cfg, ref_w, as_int(ids));
  using Host = Kokkos::DefaultHostExecutionSpace;
  const TransformerModel<Host, bf16> model(cfg, tensors);
  TransformerWorkspace<Host> ws;
  auto state = model.make_state(1);
  const auto all = test::download2(model.forward(state, ws, TokenBatch::single(ids)));
  CHECK(test::rel_err(all, ref) <= kTol);
}

TEST_CASE("TransformerModel rejects bad configs and bad calls", "[model][transformer][errors]") {
  auto cfg = small_config(4, 2, true);
  cfg.kv_heads = 3;
  CHECK_THROWS_AS(random_transformer_tensors(cfg, 1), ConfigError);
  cfg = small_config(4, 2, true);
  cfg.head_dim = 15;
  CHECK_THROWS_AS(cfg.validate(), ConfigError);
  cfg = small_config(4, 2, true);
  cfg.ffn_dim = 0;
  CHECK_THROWS_AS(cfg.validate(), ConfigError);

  using Host = Kokkos::DefaultHostExecutionSpace;
  cfg = small_config(4, 2, true);
  auto tensors = random_transformer_tensors(cfg, 7);
  {
    auto missing = tensors;
    missing.erase("model.layers.1.ffn.fc.weight");
    CHECK_THROWS_AS((TransformerModel<Host, float>(cfg, missing)), CheckpointError);
    auto short_one = tensors;
    short_one["model.layers.0.attn.k_proj.weight"].pop_back();
    CHECK_THROWS_AS((TransformerModel<Host, float>(cfg, short_one)), CheckpointError);
  }
  const TransformerModel<Host, float> model(cfg, tensors);
  TransformerWorkspace<Host> ws;
  auto state = model.make_state(2);
  const std::vector<std::int32_t> ok = {1, 2, 3};
  const std::vector<std::int32_t> bad = {1, cfg.vocab, 3};
  CHECK_THROWS_AS(model.forward(state, ws, TokenBatch::single(bad)), ArgumentError);
  CHECK_THROWS_AS(model.forward(state, ws, TokenBatch::single(ok, 2)), ArgumentError);
  TokenBatch twice;
  twice.add(ok, 1).add(ok, 1);
  CHECK_THROWS_AS(model.forward(state, ws, twice), ArgumentError);
  TokenBatch lying = TokenBatch::single(ok);
  lying.lengths[0] = 4;
  CHECK_THROWS_AS(model.forward(state, ws, lying), ArgumentError);
  auto other_cfg = cfg;
  other_cfg.n_layer = 3;
  TransformerState<Host> other(other_cfg, 1, 8);
  CHECK_THROWS_AS(model.forward(other, ws, TokenBatch::single(ok)), ArgumentError);
  CHECK_THROWS_AS(model.make_state(0), ArgumentError);
  // nothing ran: the slots are where they were
  CHECK(state.position(0) == 0);
  CHECK(state.position(1) == 0);
  CHECK_NOTHROW(model.forward(state, ws, TokenBatch::single(ok)));
  CHECK(state.position(0) == 3);
}
