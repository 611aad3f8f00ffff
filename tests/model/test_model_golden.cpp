// The Kokkos model against the authors' golden vectors: prefill, decode, split prefill, chunk
// sizes, traces.
#include <catch2/catch.hpp>
#include <random>

#include "golden_fixture.hpp"

using namespace rodimus;
using test::Golden;

namespace {

using Host = Kokkos::DefaultHostExecutionSpace;
const char* kCases[] = {"tiny_rodimus", "tiny_rodimus_plus", "strong_decay_rodimus"};

template <class M>
void check_prefill(const std::string& name) {
  Golden g(name);
  const M model = M::load(test::golden_dir(name));
  auto state = model.make_state(g.batch);
  Workspace<Host> ws;
  std::map<std::string, double> trace_err;
  TraceFn<Host> trace = [&](int layer, std::string_view what, const View2<const float, Host>& x,
                            int) {
    const std::string key = "layers." + std::to_string(layer) + "." + std::string(what);
    double e = 0;
    for (int b = 0; b < g.batch; ++b)
      for (int t = 0; t < g.tokens; ++t)
        e = std::max(e, test::max_err_row(x, b * g.tokens + t, g, key, b, t));
    trace_err[key] = e / g.abs_max(key);
  };
  auto logits = model.forward(state, ws, TokenBatch::of(g.ids), LogitsMode::All, trace);
  REQUIRE(int(logits.extent(0)) == g.batch * g.tokens);
  const double scale = g.abs_max("logits");
  double err = 0;
  for (int b = 0; b < g.batch; ++b)
    for (int t = 0; t < g.tokens; ++t)
      err = std::max(err, test::max_err_row(logits, b * g.tokens + t, g, "logits", b, t));
  INFO(name << " prefill max err / scale = " << err / scale);
  CHECK(err <= 1e-4 * scale);
  REQUIRE(!trace_err.empty());
  for (auto& [k, e] : trace_err) {
    INFO(name << " trace " << k << " rel err " << e);
    CHECK(e <= 1e-4);
  }
  for (int b = 0; b < g.batch; ++b) CHECK(state.position(b) == g.tokens);
}

}  // namespace

TEST_CASE("prefill matches the golden logits and per-layer outputs", "[model][golden]") {
  for (const char* name : kCases) {
    SECTION(name) { check_prefill<Model<Host, float>>(name); }
  }
}

TEST_CASE("prefill matches the golden logits for every chunk size", "[model][golden][scan]") {
  struct P16 {
    using prefill_scan = ChunkedScan<16>;
    using decode_scan = RecurrentScan;
  };
  struct P32 {
    using prefill_scan = ChunkedScan<32>;
    using decode_scan = RecurrentScan;
  };
  struct P128 {
    using prefill_scan = ChunkedScan<128>;
    using decode_scan = RecurrentScan;
  };
  struct PRec {
    using prefill_scan = RecurrentScan;
    using decode_scan = RecurrentScan;
  };
  for (const char* name : {"tiny_rodimus", "strong_decay_rodimus"}) {
    SECTION(std::string(name) + " C=16") { check_prefill<Model<Host, float, P16>>(name); }
    SECTION(std::string(name) + " C=32") { check_prefill<Model<Host, float, P32>>(name); }
    SECTION(std::string(name) + " C=128") { check_prefill<Model<Host, float, P128>>(name); }
    SECTION(std::string(name) + " recurrent") { check_prefill<Model<Host, float, PRec>>(name); }
  }
}

TEST_CASE("decode token by token matches the golden logits at every position",
          "[model][golden][decode]") {
  for (const char* name : kCases) {
    SECTION(name) {
      Golden g(name);
      const auto model = Model<Host, float>::load(test::golden_dir(name));
      auto state = model.make_state(g.batch);
      Workspace<Host> ws;
      const double scale = g.abs_max("logits");
      double err = 0;
      for (int t = 0; t < g.tokens; ++t) {
        std::vector<std::int32_t> next(g.batch);
        for (int b = 0; b < g.batch; ++b) next[b] = g.ids[b][t];
        auto logits = model.decode(state, ws, next);
        for (int b = 0; b < g.batch; ++b)
          err = std::max(err, test::max_err_row(logits, b, g, "logits", b, t));
      }
      INFO(name << " decode max err / scale = " << err / scale);
      CHECK(err <= 1e-4 * scale);
    }
  }
}

TEST_CASE("prefill of a prefix, then decode, then prefill of the rest equals the golden",
          "[model][golden]") {
  std::mt19937 rng(std::random_device{}());
  for (const char* name : kCases) {
    SECTION(name) {
      Golden g(name);
      const auto model = Model<Host, float>::load(test::golden_dir(name));
      auto state = model.make_state(g.batch);
      Workspace<Host> ws;
      const double scale = g.abs_max("logits");
      // different split points per sequence, all in one batched call each
      std::vector<int> cut(g.batch);
      for (auto& c : cut) c = std::uniform_int_distribution<int>(1, g.tokens - 3)(rng);
      TokenBatch first, second;
      for (int b = 0; b < g.batch; ++b) first.add(std::span(g.ids[b]).first(cut[b]), b);
      auto l1 = model.forward(state, ws, first, LogitsMode::All);
      double err = 0;
      for (int b = 0, row = 0; b < g.batch; ++b)
        for (int t = 0; t < cut[b]; ++t, ++row)
          err = std::max(err, test::max_err_row(l1, row, g, "logits", b, t));
      // one decode step for every sequence
      std::vector<std::int32_t> next(g.batch);
      for (int b = 0; b < g.batch; ++b) next[b] = g.ids[b][cut[b]];
      auto l2 = model.decode(state, ws, next);
      for (int b = 0; b < g.batch; ++b)
        err = std::max(err, test::max_err_row(l2, b, g, "logits", b, cut[b]));
      for (int b = 0; b < g.batch; ++b) second.add(std::span(g.ids[b]).subspan(cut[b] + 1), b);
      auto l3 = model.forward(state, ws, second, LogitsMode::All);
      for (int b = 0, row = 0; b < g.batch; ++b)
        for (int t = cut[b] + 1; t < g.tokens; ++t, ++row)
          err = std::max(err, test::max_err_row(l3, row, g, "logits", b, t));
      INFO(name << " split max err / scale = " << err / scale << " cuts " << cut[0]);
      CHECK(err <= 1e-4 * scale);
    }
  }
}
