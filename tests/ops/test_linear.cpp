// linear (y = x W^T + b) on every backend against the fp64 reference, fp32/bf16/fp16 weights.
#include <array>

#include "op_test_util.hpp"
#include "rodimus/backend/cuda/context.hpp"
#include "rodimus/ops/linear.hpp"
#include "rodimus/ops/linear_residual_norm.hpp"
#include "rodimus/ops/swiglu.hpp"
#include "rodimus/reference/linear.hpp"

using namespace rodimus;
using test::TestRng;

namespace {

// fp32 accumulation of `in` products of values in [-1, 1]: the rounding error grows like
// sqrt(in) * 2^-24 times the output scale (~sqrt(in / 9)); in <= 300 stays well under 1e-5.
constexpr double kTol = 1e-5;

template <class W>
void check_linear(TestRng& rng, int n_tok, int in, int out, bool bias, double& worst) {
  RODIMUS_SEED_INFO(rng);
  INFO("weights " << dtype_traits<W>::name << " N=" << n_tok << " in=" << in << " out=" << out
                  << " bias=" << bias);
  const int rows = n_tok + 2;  // two spare rows the op must leave alone
  const auto x = rng.vec(std::size_t(n_tok) * in);
  const auto w = rng.vec(std::size_t(out) * in);
  const auto b = rng.vec(out);
  const auto wq = test::dequantised<W>(w);
  // the storage type rounds to its precision (fp32 24 bits, fp16 11, bf16 8; fp16 subnormals
  // below 2^-14 keep an absolute 2^-24), so the reference really runs on the stored weights
  const double ulp = std::is_same_v<W, float>  ? 0.0
                     : std::is_same_v<W, fp16> ? std::ldexp(1.0, -11)
                                               : std::ldexp(1.0, -8);
  int off = 0;
  for (std::size_t i = 0; i < w.size(); ++i)
    off += std::fabs(wq[i] - w[i]) >
           std::max(ulp * std::fabs(w[i]), std::is_same_v<W, fp16> ? std::ldexp(1.0, -25) : 0.0);
  CHECK(off == 0);
  const auto ref = reference::linear(x, wq, n_tok, in, out, bias ? &b : nullptr);
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    // Kokkos::Cuda runs bf16 / fp16 weights on the tensor cores with the activations split in
    // two halves of the weight type (about 2^-18 relative each): a few times 1e-6
    const double tol = is_cuda_space_v<Space> && !std::is_same_v<W, float> ? 3e-5 : kTol;
    LinearWeights<W, Space> lw;
    lw.w = test::upload2<W, Space>(w, out, in);
    if (bias) lw.b = test::upload1<Space>(b);
    const auto dx = test::upload2<float, Space>(x, rows, in, 3.0);
    auto dy = test::upload2<float, Space>({}, rows, out, 7.0);
    // (on a GPU with 4 rows per GEMV block at 3-8 tokens, the session-24 setting)
    test::with_decode_fusions<Space>(
        [&] { linear(Space{}, View2<const float, Space>(dx), lw, dy, n_tok); });
    const auto got = test::download2(dy);
    const double e = test::rel_err(test::slice(got, 0, std::size_t(n_tok) * out), ref);
    worst = std::max(worst, e);
    CHECK(e <= tol);
    // rows past n_tokens untouched
    int touched = 0;
    for (std::size_t i = std::size_t(n_tok) * out; i < got.size(); ++i) touched += got[i] != 7.0;
    CHECK(touched == 0);
  });
}

}  // namespace

TEST_CASE("linear matches the fp64 reference (fp32, bf16, fp16 weights)", "[ops][linear]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  struct Shape {
    int n, in, out;
  };
  std::vector<Shape> shapes = {{1, 1, 1},
                               {1, 64, 97},
                               {7, 3, 5},
                               {8, 67, 64},
                               {9, 130, 33},
                               {17, 31, 1},
                               {33, 257, 19},
                               // the CUDA decode GEMV: 1..8 tokens, in % 8 == 0; one row
                               // per block (few rows), a partial second slice (2736), ...
                               {3, 256, 40},
                               {8, 2048, 17},
                               {5, 1024, 65},
                               {1, 4096, 64},
                               {3, 4096, 33},
                               {8, 2736, 130},
                               // ... two and four rows per block, rows past the last block's end,
                               // more than one step of two slices (in 8200)
                               {2, 4096, 601},
                               {1, 2048, 2048},
                               {4, 1000, 1299},
                               {6, 2048, 1100},  // 3-8 tokens: 4 rows per block on 132 SMs
                               {1, 8200, 70},
                               // short rows (in <= 256): a few threads per row, 1..32 of them
                               {1, 32, 300},
                               {4, 8, 70},
                               {7, 200, 50},
                               {2, 48, 513},
                               // one token on the host: rows shorter than 512 take the
                               // row-blocked kernel, longer ones the row-wise kernel
                               {1, 511, 7},
                               {1, 512, 6},
                               // the CUDA tensor-core path (> 8 tokens) with rows of 4-float
                               // vectors (the vectorised conversion and bias passes), stacked
                               // halves (< 256 tokens) and two GEMMs (>= 256)
                               {12, 64, 40},
                               {40, 256, 132},
                               {300, 128, 36}};
  for (int i = 0; i < 3; ++i)
    shapes.push_back({rng.integer(1, 40), rng.integer(1, 300), rng.integer(1, 150)});
  double worst_f32 = 0, worst_bf16 = 0, worst_f16 = 0;
  for (const auto& s : shapes) {
    for (bool bias : {false, true}) {
      check_linear<float>(rng, s.n, s.in, s.out, bias, worst_f32);
      check_linear<bf16>(rng, s.n, s.in, s.out, bias, worst_bf16);
      check_linear<fp16>(rng, s.n, s.in, s.out, bias, worst_f16);
    }
  }
  WARN("linear max rel err: f32 " << worst_f32 << ", bf16 " << worst_bf16 << ", f16 " << worst_f16);
}

TEST_CASE("linear with zero tokens writes nothing", "[ops][linear]") {
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    LinearWeights<float, Space> lw;
    lw.w = test::upload2<float, Space>({1, 2, 3, 4, 5, 6}, 2, 3);
    auto x = test::upload2<float, Space>({}, 1, 3, 1.0);
    auto y = test::upload2<float, Space>({}, 1, 2, 7.0);
    linear(Space{}, View2<const float, Space>(x), lw, y, 0);
    for (double v : test::download2(y)) CHECK(v == 7.0);
  });
}

TEST_CASE("linear rejects wrong extents", "[ops][linear][errors]") {
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    LinearWeights<float, Space> lw;
    lw.w = test::upload2<float, Space>(std::vector<double>(12, 1.0), 4, 3);
    auto x = test::upload2<float, Space>({}, 2, 5, 1.0);  // in = 5, weight wants 3
    auto y = test::upload2<float, Space>({}, 2, 4);
    CHECK_THROWS_AS(linear(Space{}, View2<const float, Space>(x), lw, y, 2), ArgumentError);
    auto x3 = test::upload2<float, Space>({}, 2, 3, 1.0);
    CHECK_THROWS_AS(linear(Space{}, View2<const float, Space>(x3), lw, y, 3),
                    ArgumentError);  // N > rows
    auto y5 = test::upload2<float, Space>({}, 2, 5);
    CHECK_THROWS_AS(linear(Space{}, View2<const float, Space>(x3), lw, y5, 2), ArgumentError);
    lw.b = test::upload1<Space>({1, 2});  // bias of 2 for 4 outputs
    CHECK_THROWS_AS(linear(Space{}, View2<const float, Space>(x3), lw, y, 2), ArgumentError);
  });
}

namespace {

// linear_shared_input against one linear() per projection on the same input: the same kernels
// on the same operands, so the results must be bit-identical (on a GPU also with the bf16
// tensor-core operands, under which the shared conversion is rounding, not splitting).
template <class W>
void check_shared_input(TestRng& rng, int n_tok, int in) {
  RODIMUS_SEED_INFO(rng);
  const int outs[3] = {rng.integer(1, 140), rng.integer(1, 70), rng.integer(1, 40)};
  INFO("weights " << dtype_traits<W>::name << " N=" << n_tok << " in=" << in << " out=" << outs[0]
                  << "," << outs[1] << "," << outs[2]);
  const int rows = n_tok + 1;
  const auto x = rng.vec(std::size_t(rows) * in);
  // The outputs' fill: no projection can produce it (|x|, |w|, |b| <= 1 bound every output by
  // in + 1). A fill inside that range, such as 7, is a legitimate output now and then (seed
  // 1136838413 gave two fp16 outputs of exactly 7.0f, which read as "not written").
  constexpr double kUnwritten = 0x1p100;  // exact in float
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    std::array<LinearWeights<W, Space>, 3> lw;
    std::array<View2<float, Space>, 3> shared, single;
    for (int i = 0; i < 3; ++i) {
      lw[i].w = test::upload2<W, Space>(rng.vec(std::size_t(outs[i]) * in), outs[i], in);
      if (i != 1) lw[i].b = test::upload1<Space>(rng.vec(outs[i]));  // the middle one: no bias
      shared[i] = test::upload2<float, Space>({}, rows, outs[i], kUnwritten);
      single[i] = test::upload2<float, Space>({}, rows, outs[i], kUnwritten);
    }
    const View2<const float, Space> dx = test::upload2<float, Space>(x, rows, in);
    auto run = [&] {
      linear_shared_input(Space{}, dx, std::array{&lw[0], &lw[1], &lw[2]}, shared, n_tok);
      for (int i = 0; i < 3; ++i) linear(Space{}, dx, lw[i], single[i], n_tok);
      for (int i = 0; i < 3; ++i) {
        const auto a = test::download2(shared[i]), b = test::download2(single[i]);
        int differ = 0, untouched = 0;
        for (std::size_t j = 0; j < a.size(); ++j) differ += a[j] != b[j];
        for (std::size_t j = 0; j < std::size_t(n_tok) * outs[i]; ++j)
          untouched += a[j] == kUnwritten;
        for (std::size_t j = std::size_t(n_tok) * outs[i]; j < a.size(); ++j)
          differ += a[j] != kUnwritten;
        CHECK(differ == 0);
        CHECK(untouched == 0);
      }
    };
    run();
    if constexpr (is_cuda_space_v<Space>) {
      const backend::cuda::detail::OperandPrecisionScope bf16_operands(OperandPrecision::Bf16);
      run();
    }
  });
}

}  // namespace

TEST_CASE("linear_shared_input matches one linear per projection", "[ops][linear]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  // 3 tokens: the CUDA decode GEMV; 20: the stacked halves; 300: two GEMMs (cuBLAS)
  for (int n : {3, 20, 300, rng.integer(1, 400)}) {
    check_shared_input<float>(rng, n, 64);
    check_shared_input<bf16>(rng, n, 96);
    check_shared_input<fp16>(rng, n, rng.integer(1, 50) * 8);
  }
}

TEST_CASE("linear_shared_input rejects wrong extents", "[ops][linear][errors]") {
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    LinearWeights<float, Space> a, b;
    a.w = test::upload2<float, Space>(std::vector<double>(12, 1.0), 4, 3);
    b.w = test::upload2<float, Space>(std::vector<double>(10, 1.0), 2, 5);  // in = 5, not 3
    const View2<const float, Space> x = test::upload2<float, Space>({}, 2, 3, 1.0);
    auto ya = test::upload2<float, Space>({}, 2, 4), yb = test::upload2<float, Space>({}, 2, 2);
    CHECK_THROWS_AS(linear_shared_input(Space{}, x, std::array{&a, &b}, std::array{ya, yb}, 2),
                    ArgumentError);
  });
}

namespace {

// linear_two_inputs against one linear() per projection: bit-identical, as linear_shared_input
// (every output row is summed in the same order whichever launch it rides in). The two inputs
// have different row strides; in2 != in1 takes the two launches in turn.
template <class W>
void check_two_inputs(TestRng& rng, int n_tok, int in1, int in2) {
  RODIMUS_SEED_INFO(rng);
  const int outs[4] = {rng.integer(1, 140), rng.integer(1, 40), rng.integer(1, 70),
                       rng.integer(1, 40)};
  INFO("weights " << dtype_traits<W>::name << " N=" << n_tok << " in=" << in1 << "," << in2
                  << " out=" << outs[0] << "," << outs[1] << " | " << outs[2] << "," << outs[3]);
  constexpr double kUnwritten = 0x1p100;  // no projection of values in [-1, 1] gives it
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    std::array<LinearWeights<W, Space>, 4> lw;
    std::array<View2<float, Space>, 4> both, single;
    for (int i = 0; i < 4; ++i) {
      const int in = i < 2 ? in1 : in2;
      lw[i].w = test::upload2<W, Space>(rng.vec(std::size_t(outs[i]) * in), outs[i], in);
      if (i != 1) lw[i].b = test::upload1<Space>(rng.vec(outs[i]));
      both[i] = test::upload2<float, Space>({}, n_tok + 1, outs[i], kUnwritten);
      single[i] = test::upload2<float, Space>({}, n_tok + 1, outs[i], kUnwritten);
    }
    const View2<const float, Space> x1 =
        test::upload2<float, Space>(rng.vec(std::size_t(n_tok + 1) * in1), n_tok + 1, in1);
    const View2<const float, Space> x2 =
        test::upload2<float, Space>(rng.vec(std::size_t(n_tok + 3) * in2), n_tok + 3, in2);
    auto run = [&] {
      // pointers to mutable weights (the overload that forwards to the const one)
      linear_two_inputs(Space{}, x1, std::array{&lw[0], &lw[1]}, std::array{both[0], both[1]}, x2,
                        std::array{&lw[2], &lw[3]}, std::array{both[2], both[3]}, n_tok);
      for (int i = 0; i < 4; ++i) linear(Space{}, i < 2 ? x1 : x2, lw[i], single[i], n_tok);
      for (int i = 0; i < 4; ++i) {
        INFO("projection " << i);
        const auto a = test::download2(both[i]), b = test::download2(single[i]);
        int differ = 0, untouched = 0;
        for (std::size_t j = 0; j < a.size(); ++j) differ += a[j] != b[j];
        for (std::size_t j = 0; j < std::size_t(n_tok) * outs[i]; ++j)
          untouched += a[j] == kUnwritten;
        for (std::size_t j = std::size_t(n_tok) * outs[i]; j < a.size(); ++j)
          differ += a[j] != kUnwritten;
        CHECK(differ == 0);
        CHECK(untouched == 0);
      }
    };
    test::with_decode_fusions<Space>(run);
    if constexpr (is_cuda_space_v<Space>) {
      const backend::cuda::detail::OperandPrecisionScope bf16_operands(OperandPrecision::Bf16);
      test::with_decode_fusions<Space>(run);
    }
  });
}

}  // namespace

TEST_CASE("linear_two_inputs matches one linear per projection", "[ops][linear]") {
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  // 1 and 5 tokens: one decode GEMV launch for both inputs (the host GEMV on the host); 40: in
  // turn; in = 512: the wide GEMV kernel, 64 / 96: its short-row kernel
  for (int n : {1, 5, 40, rng.integer(1, 8)}) {
    check_two_inputs<bf16>(rng, n, 512, 512);
    check_two_inputs<fp16>(rng, n, 96, 96);
    check_two_inputs<float>(rng, n, 64, 64);
    check_two_inputs<bf16>(rng, n, 64, 128);  // different widths: two launches
  }
}

TEST_CASE("linear_two_inputs rejects wrong extents", "[ops][linear][errors]") {
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    LinearWeights<float, Space> wa, wb;
    wa.w = test::upload2<float, Space>(std::vector<double>(12, 1.0), 4, 3);
    wb.w = test::upload2<float, Space>(std::vector<double>(10, 1.0), 2, 5);
    const std::array<const LinearWeights<float, Space>*, 1> a{&wa}, b{&wb};
    const View2<const float, Space> x3 = test::upload2<float, Space>({}, 2, 3, 1.0);
    const View2<const float, Space> x5 = test::upload2<float, Space>({}, 2, 5, 1.0);
    auto ya = test::upload2<float, Space>({}, 2, 4), yb = test::upload2<float, Space>({}, 2, 2);
    CHECK_NOTHROW(linear_two_inputs(Space{}, x3, a, std::array{ya}, x5, b, std::array{yb}, 2));
    // b's input is 5 wide, x3 is 3 wide
    CHECK_THROWS_AS(linear_two_inputs(Space{}, x3, a, std::array{ya}, x3, b, std::array{yb}, 2),
                    ArgumentError);
    // more tokens than the inputs' rows
    CHECK_THROWS_AS(linear_two_inputs(Space{}, x3, a, std::array{ya}, x5, b, std::array{yb}, 3),
                    ArgumentError);
  });
}

TEST_CASE("host bf16 operands: linear and linear_shared_input round the activations once",
          "[ops][linear]") {
  // OperandPrecision::Bf16 on the host: bf16 weights, more than kGemvMaxTokens tokens -> the
  // activations rounded to bf16, then vdpbf16ps (AVX512_BF16) or, without it, the fp32 path on
  // the rounded values. Either way the reference is the fp64 product of the rounded operands.
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  struct Shape {
    int n, in, out;
  };
  // tails of every kind: tokens % 6, outputs % 64 and % 16, inputs odd / past one 512 block
  std::vector<Shape> shapes = {{17, 1, 1},    {23, 33, 65},   {50, 1030, 130},
                               {97, 513, 64}, {200, 96, 200}, {18, 2049, 17}};
  shapes.push_back({rng.integer(17, 300), rng.integer(1, 1100), rng.integer(1, 300)});
  double worst = 0;
  test::for_each_space([&]<class Space>() {
    if constexpr (is_host_space_v<Space>) {
      for (const auto& s : shapes) {
        INFO("backend " << Space::name() << " N=" << s.n << " in=" << s.in << " out=" << s.out);
        const auto x = rng.vec(std::size_t(s.n) * s.in);
        const auto w = rng.vec(std::size_t(s.out) * s.in), w2 = rng.vec(std::size_t(7) * s.in);
        const auto b = rng.vec(s.out);
        const auto xq = test::dequantised<bf16>(x);
        const auto wq = test::dequantised<bf16>(w), w2q = test::dequantised<bf16>(w2);
        const auto ref = reference::linear(xq, wq, s.n, s.in, s.out, &b);
        const auto ref_fp32x = reference::linear(x, wq, s.n, s.in, s.out, &b);
        const auto ref2 = reference::linear(xq, w2q, s.n, s.in, 7, nullptr);
        LinearWeights<bf16, Space> lw, lw2;
        lw.w = test::upload2<bf16, Space>(w, s.out, s.in);
        lw.b = test::upload1<Space>(b);
        lw2.w = test::upload2<bf16, Space>(w2, 7, s.in);
        const auto dx = test::upload2<float, Space>(x, s.n + 2, s.in, 3.0);
        auto dy = test::upload2<float, Space>({}, s.n + 2, s.out, 7.0);
        auto dy2 = test::upload2<float, Space>({}, s.n, 7, 7.0);
        {
          const backend::host::HostOperandScope scope(OperandPrecision::Bf16);
          linear(Space{}, View2<const float, Space>(dx), lw, dy, s.n);
        }
        CHECK(backend::host::host_operands() == OperandPrecision::Split);  // restored
        const auto got = test::download2(dy);
        const double e = test::rel_err(test::slice(got, 0, std::size_t(s.n) * s.out), ref);
        worst = std::max(worst, e);
        CHECK(e <= 2e-5);
        // the rounding took effect: 8-bit activations move the result far beyond fp32 error
        if (s.in >= 8)
          CHECK(test::rel_err(test::slice(got, 0, std::size_t(s.n) * s.out), ref_fp32x) > 1e-4);
        int touched = 0;
        for (std::size_t i = std::size_t(s.n) * s.out; i < got.size(); ++i)
          touched += got[i] != 7.0;
        CHECK(touched == 0);
        // two projections of one input in one call
        {
          const backend::host::HostOperandScope scope(OperandPrecision::Bf16);
          linear_shared_input(Space{}, View2<const float, Space>(dx), std::array{&lw, &lw2},
                              std::array{dy, dy2}, s.n);
        }
        CHECK(test::rel_err(test::slice(test::download2(dy), 0, std::size_t(s.n) * s.out), ref) <=
              2e-5);
        CHECK(test::rel_err(test::download2(dy2), ref2) <= 2e-5);
      }
      // decode-sized calls keep fp32 activations (the GEMV) under Bf16
      const int in = rng.integer(8, 300), out = rng.integer(1, 100), n = rng.integer(1, 16);
      const auto x = rng.vec(std::size_t(n) * in), w = rng.vec(std::size_t(out) * in);
      const auto ref = reference::linear(x, test::dequantised<bf16>(w), n, in, out, nullptr);
      LinearWeights<bf16, Space> lw;
      lw.w = test::upload2<bf16, Space>(w, out, in);
      const auto dx = test::upload2<float, Space>(x, n, in, 3.0);
      auto dy = test::upload2<float, Space>({}, n, out, 7.0);
      const backend::host::HostOperandScope scope(OperandPrecision::Bf16);
      linear(Space{}, View2<const float, Space>(dx), lw, dy, n);
      CHECK(test::rel_err(test::download2(dy), ref) <= kTol);
    }
  });
  WARN("host bf16 operands: max rel err "
       << worst << " (avx512_bf16: " << backend::host::host_has_avx512_bf16() << ")");
}

TEST_CASE("linear_residual_norm matches linear then add_rms_norm", "[ops][linear][rms_norm]") {
  // Without ResidualNorm::defer the call is the two ops everywhere: bit-identical outputs and
  // residual stream (the deferred norm: the next test case). Every residual mode.
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  struct Case {
    int n, in, d;
  };
  const std::vector<Case> cases = {{1, 256, 2048}, {3, 64, 64},  {8, 136, 260},
                                   {2, 64, 130},   {40, 32, 64}, {rng.integer(1, 8), 512, 1024}};
  for (const auto& c : cases)
    for (const auto mode : {ResidualMode::Start, ResidualMode::Add, ResidualMode::AddNoStore}) {
      INFO("N=" << c.n << " in=" << c.in << " D=" << c.d << " mode " << int(mode));
      const auto x = rng.vec(std::size_t(c.n) * c.in), w = rng.vec(std::size_t(c.d) * c.in);
      const auto b = rng.vec(c.d), r0 = rng.vec(std::size_t(c.n + 1) * c.d);
      const auto nw = rng.vec(c.d, 0.5, 1.5);
      test::for_each_space([&]<class Space>() {
        INFO("backend " << Space::name());
        LinearWeights<bf16, Space> lw;
        lw.w = test::upload2<bf16, Space>(w, c.d, c.in);
        lw.b = test::upload1<Space>(b);
        const View2<const float, Space> dx = test::upload2<float, Space>(x, c.n, c.in);
        const View1<const float, Space> dnw = test::upload1<Space>(nw);
        auto run = [&](bool fused) {
          auto y = test::upload2<float, Space>({}, c.n + 1, c.d, 5.0);
          auto r = test::upload2<float, Space>(r0, c.n + 1, c.d);
          auto out = test::upload2<float, Space>({}, c.n + 1, c.d, 5.0);
          if (fused) {
            linear_residual_norm(Space{}, dx, lw, y, ResidualNorm<Space>{r, dnw, out, 1e-5f, mode},
                                 c.n);
          } else {
            linear(Space{}, dx, lw, y, c.n);
            add_rms_norm(Space{}, View2<const float, Space>(y), r, dnw, out, c.n, 1e-5f, mode);
          }
          return std::array{test::download2(y), test::download2(r), test::download2(out)};
        };
        std::array<std::vector<double>, 3> f;
        test::with_decode_fusions<Space>([&] { f = run(true); });
        const auto p = run(false);
        for (int i = 0; i < 3; ++i) {
          INFO("y, r, out: " << i);
          int differ = 0;
          for (std::size_t j = 0; j < f[i].size(); ++j) differ += f[i][j] != p[i][j];
          CHECK(differ == 0);
        }
        // the norm happened: out is not y, and r moved unless the mode leaves it
        CHECK(test::rel_err(f[2], f[0]) > 1e-3);
        CHECK((test::rel_err(f[1], r0) > 1e-3) == (mode != ResidualMode::AddNoStore));
      });
    }
}

TEST_CASE("a deferred residual norm reaches the next sublayer's projections",
          "[ops][linear][rms_norm]") {
  // With ResidualNorm::defer, on Kokkos::Cuda at 1 to 2 tokens of D > 256 features, the
  // projection's GEMV writes z = y + r (to r for Add, to out for AddNoStore) and the norm stays
  // pending for the consumer's GEMV (here the FFN's gate / up projection). Elsewhere the call
  // is the two ops. Either way the consumer sees RMSNorm(y + r) * w and r ends as add_rms_norm
  // leaves it. The input x may owe its own norm (the mixer's gated norm): the same GEMV takes
  // it (in > 256), or it is written first; the results equal those from the normalised rows.
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  struct Case {
    int n, in, d, f;
  };
  const std::vector<Case> cases = {
      {1, 256, 512, 96}, {2, 384, 264, 40}, {rng.integer(1, 2), 320, 1032, 64}, {3, 128, 512, 40}};
  for (const auto& c : cases)
    for (const auto mode : {ResidualMode::Add, ResidualMode::AddNoStore}) {
      INFO("N=" << c.n << " in=" << c.in << " D=" << c.d << " mode " << int(mode));
      const test::PendingNorm xn(rng, c.n, c.in);
      const auto w = rng.vec(std::size_t(c.d) * c.in);
      const auto b = rng.vec(c.d), r0 = rng.vec(std::size_t(c.n + 1) * c.d);
      const auto nw = rng.vec(c.d, 0.5, 1.5);
      const auto wa = rng.vec(std::size_t(c.f) * c.d), wg = rng.vec(std::size_t(c.f) * c.d);
      const auto wo = rng.vec(std::size_t(c.d) * c.f);
      test::for_each_space([&]<class Space>() {
        INFO("backend " << Space::name());
        LinearWeights<bf16, Space> lw;
        lw.w = test::upload2<bf16, Space>(w, c.d, c.in);
        lw.b = test::upload1<Space>(b);
        SwigluWeights<bf16, Space> fw;
        fw.fc_a.w = test::upload2<bf16, Space>(wa, c.f, c.d);
        fw.fc_g.w = test::upload2<bf16, Space>(wg, c.f, c.d);
        fw.out.w = test::upload2<bf16, Space>(wo, c.d, c.f);
        const View2<const float, Space> dx = test::upload2<float, Space>(xn.normed, c.n, c.in);
        const View1<const float, Space> dnw = test::upload1<Space>(nw);
        bool was_pending = false;
        auto run = [&](bool defer, bool x_pending) {
          const NormedRows<Space> xin =
              x_pending ? xn.template pending<Space>(c.n, c.in) : NormedRows<Space>(dx);
          auto y = test::upload2<float, Space>({}, c.n + 1, c.d, 5.0);
          auto r = test::upload2<float, Space>(r0, c.n + 1, c.d);
          auto out = test::upload2<float, Space>({}, c.n + 1, c.d, 5.0);
          auto a = test::upload2<float, Space>({}, c.n, c.f),
               g = test::upload2<float, Space>({}, c.n, c.f);
          auto f = test::upload2<float, Space>({}, c.n, c.d);
          const NormedRows<Space> next = linear_residual_norm(
              Space{}, xin, lw, y, ResidualNorm<Space>{r, dnw, out, 1e-5f, mode, defer}, c.n);
          if (defer) was_pending = next.pending();
          swiglu_ffn(Space{}, next, fw, a, g, f, c.n);
          return std::array{test::download2(f), test::download2(r)};
        };
        const auto want = run(false, false);
        CHECK((test::rel_err(want[1], r0) > 1e-3) == (mode != ResidualMode::AddNoStore));
        for (const bool x_pending : {false, true}) {
          INFO("x owes its norm " << x_pending);
          std::array<std::vector<double>, 2> got;
          test::with_decode_fusions<Space>([&] { got = run(true, x_pending); });
          CHECK(was_pending == (is_cuda_space_v<Space> && c.n <= 2));
          CHECK(test::rel_err(got[0], want[0]) <= 1e-5);
          CHECK(test::rel_err(got[1], want[1]) <= (x_pending ? 1e-5 : 1e-6));
        }
        const auto eager = run(false, true);  // the pending input written first
        CHECK(test::rel_err(eager[0], want[0]) <= 1e-5);
        CHECK(test::rel_err(eager[1], want[1]) <= 1e-5);
      });
    }
}

TEST_CASE("the decode GEMV's row blockings give identical outputs", "[ops][linear]") {
  // On Kokkos::Cuda at 1-2 tokens the GEMV's rows per block and slices in flight follow
  // CudaContext (gemv_token_rows, gemv_rows8_blocks_per_sm, gemv_rows8_slices,
  // gemv_norm_in_rows8). Every thread reads the same 16-byte groups of its rows in the same
  // order under each of them, so the outputs are bit-identical, with an input norm in the GEMV
  // (a pending input) or without, and match the fp64 reference. The shapes take 8 rows per
  // block under some settings and 4 under others on 132 SMs (H100 / H200): 2048 and 1100 rows,
  // inputs of one slice (2048), a partial second slice (2736), two (4096) and more (8200).
  TestRng rng;
  RODIMUS_SEED_INFO(rng);
  struct Case {
    int n, in, out;
  };
  const std::vector<Case> cases = {{1, 2048, 2048},
                                   {2, 2736, 2048},
                                   {1, 4096, 1100},
                                   {2, 8200, 1056},
                                   {rng.integer(1, 2), 4096, 2048}};
  struct Setting {
    int token_rows, blocks_per_sm, slices;
    bool norm_rows8;
  };
  const std::vector<Setting> settings = {
      {8, 2, 1, true}, {8, 1, 1, true}, {8, 1, 2, true}, {8, 2, 2, false}, {0, 2, 1, false}};
  for (const auto& c : cases) {
    INFO("N=" << c.n << " in=" << c.in << " out=" << c.out);
    const test::PendingNorm xn(rng, c.n, c.in);
    const auto w = rng.vec(std::size_t(c.out) * c.in);
    const auto b = rng.vec(c.out);
    const auto r0 = rng.vec(std::size_t(c.n + 1) * c.out);
    const auto nw = rng.vec(c.out, 0.5, 1.5);
    const auto wq = test::dequantised<bf16>(w);
    const auto ref = reference::linear(xn.raw, wq, c.n, c.in, c.out, &b);
    const auto ref_normed = reference::linear(xn.normed, wq, c.n, c.in, c.out, &b);
    test::for_each_space([&]<class Space>() {
      INFO("backend " << Space::name());
      LinearWeights<bf16, Space> lw;
      lw.w = test::upload2<bf16, Space>(w, c.out, c.in);
      lw.b = test::upload1<Space>(b);
      const View2<const float, Space> dx = test::upload2<float, Space>(xn.raw, c.n + 1, c.in, 3.0);
      const View1<const float, Space> dnw = test::upload1<Space>(nw);
      // y = x W^T + b, and y of the pending input's normalised rows (linear_residual_norm)
      auto run = [&] {
        auto y = test::upload2<float, Space>({}, c.n + 1, c.out, 7.0);
        linear(Space{}, dx, lw, y, c.n);
        auto yn = test::upload2<float, Space>({}, c.n + 1, c.out, 7.0);
        auto r = test::upload2<float, Space>(r0, c.n + 1, c.out);
        auto out = test::upload2<float, Space>({}, c.n + 1, c.out, 5.0);
        linear_residual_norm(Space{}, xn.template pending<Space>(c.n + 1, c.in), lw, yn,
                             ResidualNorm<Space>{r, dnw, out, 1e-5f, ResidualMode::Add}, c.n);
        return std::array{test::download2(y), test::download2(yn)};
      };
      std::vector<std::array<std::vector<double>, 2>> got;
#if RODIMUS_CUDA_KERNELS
      if constexpr (is_cuda_space_v<Space>) {
        for (const auto& st : settings) {
          backend::cuda::detail::DecodeSettingsScope scope;
          auto& ctx = scope.context();
          ctx.gemv_norm_in = true;
          ctx.gemv_token_rows = st.token_rows;
          ctx.gemv_rows8_blocks_per_sm = st.blocks_per_sm;
          ctx.gemv_rows8_slices = st.slices;
          ctx.gemv_norm_in_rows8 = st.norm_rows8;
          got.push_back(run());
        }
      }
#endif
      if (got.empty()) got.push_back(run());
      for (std::size_t k = 0; k < got.size(); ++k) {
        INFO("setting " << k);
        const std::size_t m = std::size_t(c.n) * c.out;
        CHECK(test::rel_err(test::slice(got[k][0], 0, m), ref) <= 3e-5);
        CHECK(test::rel_err(test::slice(got[k][1], 0, m), ref_normed) <= 3e-5);
        int untouched = 0;
        for (std::size_t i = m; i < got[k][0].size(); ++i) untouched += got[k][0][i] == 7.0;
        CHECK(untouched == c.out);
        for (int j = 0; j < 2; ++j) {
          int differ = 0;
          for (std::size_t i = 0; i < m; ++i) differ += got[k][j][i] != got[0][j][i];
          CHECK(differ == 0);
        }
      }
    });
  }
}

TEST_CASE("linear_residual_norm rejects wrong extents", "[ops][linear][rms_norm][errors]") {
  test::for_each_space([&]<class Space>() {
    INFO("backend " << Space::name());
    LinearWeights<bf16, Space> lw;
    lw.w = test::upload2<bf16, Space>(std::vector<double>(8 * 16, 0.5), 8, 16);
    const View2<const float, Space> x = test::upload2<float, Space>({}, 2, 16, 1.0);
    auto y = test::upload2<float, Space>({}, 2, 8), r = test::upload2<float, Space>({}, 2, 8);
    auto out = test::upload2<float, Space>({}, 2, 8);
    const View1<const float, Space> w8 = test::upload1<Space>(std::vector<double>(8, 1.0));
    const View1<const float, Space> w6 = test::upload1<Space>(std::vector<double>(6, 1.0));
    CHECK_NOTHROW(linear_residual_norm(Space{}, x, lw, y, ResidualNorm<Space>{r, w8, out}, 2));
    CHECK_THROWS_AS(linear_residual_norm(Space{}, x, lw, y, ResidualNorm<Space>{r, w6, out}, 2),
                    ArgumentError);  // norm weight of 6 for 8 outputs
    CHECK_THROWS_AS(linear_residual_norm(Space{}, x, lw, y, ResidualNorm<Space>{r, w8, out}, 3),
                    ArgumentError);  // more tokens than rows
  });
}
