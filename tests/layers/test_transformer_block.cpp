// transformer_block (x += Attn(RMSNorm(x)); x += SwiGLU(RMSNorm(x))) over packed batches of
// several sequences continuing earlier context, on every backend against the fp64 reference.
#include "op_test_util.hpp"
#include "rodimus/layers/transformer_block.hpp"
#include "rodimus/model/transformer_weights.hpp"
#include "rodimus/reference/transformer.hpp"

using namespace rodimus;
using test::TestRng;

namespace {

TransformerConfig small_config(int heads, int kv_heads) {
  TransformerConfig c;
  c.d_model = 48;
  c.n_layer = 2;
  c.heads = heads;
  c.kv_heads = kv_heads;
  c.head_dim = 12;
  c.ffn_dim = 40;
  c.vocab = 16;
  return c;
}

reference::Weights to_reference(const HostTensors& t) {
  reference::Weights w;
  for (const auto& [name, v] : t) w[name] = std::vector<double>(v.begin(), v.end());
  return w;
}

}  // namespace

TEST_CASE("transformer_block matches the fp64 reference block over a packed batch",
          "[layers][transformer_block]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  double worst = 0;
  for (const auto& [heads, kv_heads] : {std::pair{4, 4}, std::pair{4, 2}, std::pair{4, 1}}) {
    const auto cfg = small_config(heads, kv_heads);
    INFO("H=" << heads << " Hkv=" << kv_heads);
    const auto tensors = random_transformer_tensors(cfg, rng.gen());
    const auto ref_w = to_reference(tensors);
    const int D = cfg.d_model;
    // three sequences, each in two calls: a first chunk, then a second chunk (one token for one
    // of them); the second call runs layer 1 with a residual stream split into h + r
    const std::vector<int> first = {rng.integer(1, 20), 37, 6};
    const std::vector<int> second = {1, rng.integer(2, 30), 0};
    std::vector<std::vector<double>> x(3);  // whole input stream of each sequence [T, D]
    for (int s = 0; s < 3; ++s) x[s] = rng.vec(std::size_t(first[s] + second[s]) * D, -2, 2);
    test::for_each_space([&]<class Space>() {
      INFO("backend " << Space::name());
      const auto tw = bind_transformer_weights<float, Space>(cfg, tensors);
      const int layer = 1;
      const std::vector<int> slots = {2, 0, 1};
      int longest = 0;  // the cache holds every sequence's whole history
      for (int s = 0; s < 3; ++s) longest = std::max(longest, first[s] + second[s]);
      KvCache<Space> cache(3, cfg.kv_heads * cfg.head_dim, longest);
      TransformerBlockWorkspace<Space> ws;
      std::vector<double> got_all, ref_all;
      for (int call = 0; call < 2; ++call) {
        const auto& lens = call == 0 ? first : second;
        std::vector<int> pos0(3);
        std::vector<double> h, r;
        for (int s = 0; s < 3; ++s) {
          pos0[s] = call == 0 ? 0 : first[s];
          for (int t = pos0[s]; t < pos0[s] + lens[s]; ++t)
            for (int c = 0; c < D; ++c) {
              // x = h + r with a random split
              const double xv = x[s][std::size_t(t) * D + c];
              const double hv = static_cast<float>(xv * rng.uniform(0.2, 0.8));
              h.push_back(hv);
              r.push_back(static_cast<float>(xv - hv));
            }
        }
        test::Batch<Space> batch(lens, pos0, slots);
        const int nt = batch.tokens();
        auto dh = test::upload2<float, Space>(h, nt, D);
        auto dr = test::upload2<float, Space>(r, nt, D);
        transformer_block(Space{}, cfg, tw.layers[layer], tw.rope_inv_freq, layer, dh, dr, cache,
                          batch.seq, ws, {});
        const auto gh = test::download2(dh, nt), gr = test::download2(dr, nt);
        for (int s = 0; s < 3; ++s) {
          // the whole history of the sequence; the op saw it as h + r (equal up to rounding)
          const auto xin = test::rows_of(x[s], 0, pos0[s] + lens[s], D);
          const auto ref = reference::transformer_block(cfg, ref_w, layer, xin, pos0[s] + lens[s]);
          for (int t = pos0[s]; t < pos0[s] + lens[s]; ++t)
            for (int c = 0; c < D; ++c) {
              const std::size_t row = std::size_t(batch.offset(s) + t - pos0[s]) * D + c;
              got_all.push_back(gh[row] + gr[row]);  // x after the block = h + r
              ref_all.push_back(ref[std::size_t(t) * D + c]);
            }
        }
      }
      const double e = test::rel_err(got_all, ref_all);
      worst = std::max(worst, e);
      CHECK(e <= 1e-5);
    });
  }
  WARN("transformer_block max rel err " << worst);
}

TEST_CASE("transformer_block: the first layer starts the residual stream",
          "[layers][transformer_block]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  const auto cfg = small_config(4, 2);
  const auto tensors = random_transformer_tensors(cfg, rng.gen());
  const auto ref_w = to_reference(tensors);
  const int D = cfg.d_model, T = 23;
  const auto x = rng.vec(std::size_t(T) * D, -2, 2);
  const auto ref = reference::transformer_block(cfg, ref_w, 0, x, T);
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    const auto tw = bind_transformer_weights<float, Space>(cfg, tensors);
    KvCache<Space> cache(1, cfg.kv_heads * cfg.head_dim, T);
    TransformerBlockWorkspace<Space> ws;
    test::Batch<Space> batch({T}, {0}, {0});
    auto dh = test::upload2<float, Space>(x, T, D);
    auto dr = test::upload2<float, Space>({}, T, D, 123.0);  // garbage: layer 0 ignores r
    std::vector<std::string> traced;
    transformer_block(
        Space{}, cfg, tw.layers[0], tw.rope_inv_freq, 0, dh, dr, cache, batch.seq, ws,
        [&](int, std::string_view name, const auto&, int) { traced.emplace_back(name); });
    CHECK(traced == std::vector<std::string>{"attn_out", "ffn_out"});
    const auto gh = test::download2(dh), gr = test::download2(dr);
    std::vector<double> got(gh.size());
    for (std::size_t i = 0; i < got.size(); ++i) got[i] = gh[i] + gr[i];
    CHECK(test::rel_err(got, ref) <= 1e-5);
  });
}
