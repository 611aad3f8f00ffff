// swiglu and swiglu_ffn (SPEC 4) on every backend against the fp64 reference.
#include "op_test_util.hpp"
#include "rodimus/ops/swiglu.hpp"
#include "rodimus/reference/linear.hpp"
#include "rodimus/reference/swiglu.hpp"

using namespace rodimus;
using test::TestRng;

namespace {
// silu(g) * a: a few roundings per element; the FFN adds two fp32 dot products (see test_linear).
constexpr double kTol = 1e-5;
}  // namespace

TEST_CASE("swiglu matches the fp64 reference", "[ops][swiglu]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  double worst = 0;
  for (auto [n, f] : std::vector<std::pair<int, int>>{
           {1, 1}, {3, 7}, {16, 176}, {33, 257}, {rng.integer(1, 40), rng.integer(1, 300)}}) {
    for (bool in_place : {false, true}) {
      INFO("N=" << n << " F=" << f << " in place " << in_place);
      const auto a = rng.vec(std::size_t(n) * f, -3, 3);
      const auto g = rng.vec(std::size_t(n) * f, -20, 20);  // silu's both tails
      const auto ref = reference::swiglu(test::hcat(a, g, n), n, f);
      test::for_each_space([&]<class Space>() {
        INFO("backend " << Space::name());
        using CV = View2<const float, Space>;
        auto da = test::upload2<float, Space>(a, n + 1, f, 2.0);
        auto dg = test::upload2<float, Space>(g, n + 1, f, 2.0);
        auto out = in_place ? da : test::upload2<float, Space>({}, n + 1, f, 2.0);
        swiglu(Space{}, CV(da), CV(dg), out, n);
        const auto got = test::download2(out);
        const double e = test::rel_err(test::rows_of(got, 0, n, f), ref);
        worst = std::max(worst, e);
        CHECK(e <= kTol);
        CHECK(test::rows_of(got, n, 1, f) == std::vector<double>(f, 2.0));
      });
    }
  }
  WARN("swiglu max rel err " << worst);
}

TEST_CASE("swiglu_ffn matches the fp64 reference (fp32 and bf16 weights)", "[ops][swiglu]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  double worst = 0;
  auto check = [&]<class W>(int n, int d, int f) {
    INFO("weights " << dtype_traits<W>::name << " N=" << n << " D=" << d << " F=" << f);
    // h = RMSNorm(raw) * w: the FFN also runs on the raw rows with the norm pending
    const test::PendingNorm pn(rng, n, d);
    const auto& h = pn.normed;
    const auto w_fc =
        test::dequantised<W>(rng.vec(std::size_t(2 * f) * d));  // [2F, D]: a rows, then g rows
    const auto w_out = test::dequantised<W>(rng.vec(std::size_t(d) * f));
    const auto z = reference::linear(h, w_fc, n, d, 2 * f);
    const auto ref = reference::linear(reference::swiglu(z, n, f), w_out, n, f, d);
    const auto ref_a = reference::linear(h, test::rows_of(w_fc, 0, f, d), n, d, f);
    test::for_each_space([&]<class Space>() {
      INFO("backend " << Space::name());
      // Kokkos::Cuda: bf16 projections on activations split in two bf16 halves (see test_linear)
      const double tol = is_cuda_space_v<Space> && !std::is_same_v<W, float> ? 3e-5 : kTol;
      SwigluWeights<W, Space> fw;
      fw.fc_a.w = test::upload2<W, Space>(test::rows_of(w_fc, 0, f, d), f, d);
      fw.fc_g.w = test::upload2<W, Space>(test::rows_of(w_fc, f, f, d), f, d);
      fw.out.w = test::upload2<W, Space>(w_out, d, f);
      auto dh = test::upload2<float, Space>(h, n, d);
      auto a = test::upload2<float, Space>({}, n, f);
      auto g = test::upload2<float, Space>({}, n, f);
      auto y = test::upload2<float, Space>({}, n, d);
      swiglu_ffn(Space{}, View2<const float, Space>(dh), fw, a, g, y, n);
      const double e = test::rel_err(test::download2(y), ref);
      worst = std::max(worst, e);
      CHECK(e <= tol);
      // on a GPU also with SwiGLU's product in the gate / up GEMV (off by default)
      test::with_decode_fusions<Space>(
          [&] { swiglu_ffn(Space{}, View2<const float, Space>(dh), fw, a, g, y, n); });
      CHECK(test::rel_err(test::download2(y), ref) <= tol);
      // the norm pending (NormedRows): in the gate / up GEMV on a GPU at 1 to 2 tokens of more
      // than 256 features, else rms_norm first
      for (const bool fusions : {false, true}) {
        INFO("norm pending, decode fusions " << fusions);
        const auto pending = pn.pending<Space>(n, d);
        auto run = [&] { swiglu_ffn(Space{}, pending, fw, a, g, y, n); };
        if (fusions)
          test::with_decode_fusions<Space>(run);
        else
          run();
        CHECK(test::rel_err(test::download2(y), ref) <= tol);
      }
      if constexpr (is_cuda_space_v<Space> && !std::is_same_v<W, float>) {
        // cuBLAS's operand pass forms the product without writing it: `a` keeps the
        // up-projection. With activations rounded once to bf16 operands the product is good to
        // bf16's 3 digits.
        if (n > backend::cuda::kGemvMaxTokens)
          CHECK(test::rel_err(test::download2(a), ref_a) <= tol);
        const backend::cuda::detail::OperandPrecisionScope bf16_operands(OperandPrecision::Bf16);
        swiglu_ffn(Space{}, View2<const float, Space>(dh), fw, a, g, y, n);
        CHECK(test::rel_err(test::download2(y), ref) <= 2e-2);
      }
    });
  };
  check.operator()<float>(1, 8, 16);
  check.operator()<float>(9, 64, 88);
  check.operator()<bf16>(5, 33, 47);
  // decode-sized bf16 (the CUDA GEMV, with SwiGLU's product formed in the down-projection's
  // input loads when F > 256)
  check.operator()<bf16>(1, 48, 264);
  check.operator()<bf16>(rng.integer(2, 8), 56, 520);
  check.operator()<bf16>(3, 40, 128);
  // the gate / up GEMV with SwiGLU's product as its epilogue at 2 and 4 rows per block (1200
  // paired rows: 4 at 3-8 tokens on a GPU of 132 SMs)
  check.operator()<bf16>(rng.integer(3, 8), 64, 600);
  check.operator()<fp16>(2, 24, 36);
  // inputs wider than 256 at 1 to 2 tokens (a GPU's gate / up GEMV takes a pending norm)
  check.operator()<bf16>(1, 512, 264);
  check.operator()<bf16>(2, 320, 96);
  check.operator()<float>(rng.integer(1, 20), rng.integer(1, 100), rng.integer(1, 140));
  // more tokens than the GEMV serves (CUDA: cuBLAS, the product formed by the pass converting
  // the input to tensor-core operands; split halves stacked below 256 tokens, two GEMMs from
  // there)
  check.operator()<bf16>(rng.integer(9, 40), 64, 96);
  check.operator()<fp16>(rng.integer(9, 40), 40, 72);
  check.operator()<bf16>(rng.integer(256, 300), 24, 40);
  WARN("swiglu_ffn max rel err " << worst);
}

TEST_CASE("swiglu rejects wrong extents", "[ops][swiglu][errors]") {
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    using CV = View2<const float, Space>;
    auto a = test::upload2<float, Space>({}, 2, 8, 1.0);
    auto g = test::upload2<float, Space>({}, 2, 9, 1.0);
    CHECK_THROWS_AS(swiglu(Space{}, CV(a), CV(g), a, 2), ArgumentError);
    CHECK_THROWS_AS(swiglu(Space{}, CV(a), CV(a), a, 3), ArgumentError);
  });
}

TEST_CASE("swiglu_ffn rejects mismatched weights and extents", "[ops][swiglu][errors]") {
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    using CV = View2<const float, Space>;
    auto make = [](int f_a, int f_g) {
      SwigluWeights<bf16, Space> fw;
      fw.fc_a.w =
          test::upload2<bf16, Space>(std::vector<double>(std::size_t(f_a) * 16, 0.5), f_a, 16);
      fw.fc_g.w =
          test::upload2<bf16, Space>(std::vector<double>(std::size_t(f_g) * 16, 0.5), f_g, 16);
      fw.out.w =
          test::upload2<bf16, Space>(std::vector<double>(std::size_t(16) * f_a, 0.5), 16, f_a);
      return fw;
    };
    const CV h = test::upload2<float, Space>({}, 2, 16, 1.0);
    auto a = test::upload2<float, Space>({}, 2, 24), g = test::upload2<float, Space>({}, 2, 24);
    auto y = test::upload2<float, Space>({}, 2, 16);
    CHECK_NOTHROW(swiglu_ffn(Space{}, h, make(24, 24), a, g, y, 1));
    // the gate has 32 outputs, the up-projection 24 (g sized for the gate)
    auto g32 = test::upload2<float, Space>({}, 2, 32);
    CHECK_THROWS_AS(swiglu_ffn(Space{}, h, make(24, 32), a, g32, y, 1), ArgumentError);
    // g narrower than the gate's outputs; more tokens than rows
    auto g20 = test::upload2<float, Space>({}, 2, 20);
    CHECK_THROWS_AS(swiglu_ffn(Space{}, h, make(24, 24), a, g20, y, 1), ArgumentError);
    CHECK_THROWS_AS(swiglu_ffn(Space{}, h, make(24, 24), a, g, y, 3), ArgumentError);
  });
}
