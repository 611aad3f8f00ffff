// The host GEMV (decode linear layer) in every build this CPU can run (generic, AVX2, AVX-512
// row-blocked and sequential-rows, the dispatcher with either one-token kernel) against a
// double-precision sum, for fp32 / bf16 / fp16 weights, every token count 1..kGemvMaxTokens, widths
// with and without tails of fewer than 16 / 32 columns, row ranges that leave every remainder of
// the 4-row blocks (out % 4 = 0..3, also from a row range that starts inside a block), with and
// without bias, strided inputs and outputs. The seed is fresh each run and printed.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <random>
#include <utility>
#include <vector>

#include "rodimus/backend/host/gemv.hpp"

using namespace rodimus;
namespace hb = rodimus::backend::host;

namespace {

template <class W>
struct Case {
  int n, in, out, ldx, ldy;
  bool bias;
  std::vector<float> x, b;
  std::vector<W> w;
  std::vector<double> ref;  // [n, out]

  Case(int n_, int in_, int out_, bool bias_, std::mt19937& rng)
      : n(n_), in(in_), out(out_), ldx(in_ + 3), ldy(out_ + 5), bias(bias_) {
    std::uniform_real_distribution<float> d(-1.f, 1.f);
    x.resize(std::size_t(n) * ldx);
    for (auto& v : x) v = d(rng);
    w.resize(std::size_t(out) * in);
    for (auto& v : w) v = from_f32<W>(d(rng));
    if (bias) {
      b.resize(out);
      for (auto& v : b) v = d(rng);
    }
    ref.assign(std::size_t(n) * out, 0.0);
    for (int t = 0; t < n; ++t)
      for (int o = 0; o < out; ++o) {
        double s = bias ? b[o] : 0.0;
        for (int i = 0; i < in; ++i)
          s += double(x[std::size_t(t) * ldx + i]) * double(to_f32(w[std::size_t(o) * in + i]));
        ref[std::size_t(t) * out + o] = s;
      }
  }

  // Runs `f` over rows [o0, o1) in two pieces and checks every output (and that the padding
  // between rows of y was left alone).
  // (mid = 0: one call over all rows.)
  template <class F>
  void check(F&& f, const char* isa, int mid) {
    const float guard = 12345.f;
    std::vector<float> y(std::size_t(n) * ldy, guard);
    if (mid > 0)
      f(x.data(), ldx, w.data(), bias ? b.data() : nullptr, y.data(), ldy, n, in, 0, mid);
    f(x.data(), ldx, w.data(), bias ? b.data() : nullptr, y.data(), ldy, n, in, mid, out);
    double worst = 0;
    for (int t = 0; t < n; ++t) {
      for (int o = 0; o < out; ++o) {
        const double r = ref[std::size_t(t) * out + o];
        const double e = std::fabs(double(y[std::size_t(t) * ldy + o]) - r);
        worst = std::max(worst, e / (1e-3 + std::sqrt(double(in))));
      }
      for (int o = out; o < ldy; ++o) CHECK(y[std::size_t(t) * ldy + o] == guard);
    }
    INFO(isa << " W=" << dtype_traits<W>::name << " n=" << n << " in=" << in << " out=" << out
             << " split at " << mid << (bias ? " bias" : " no bias"));
    CHECK(worst < 2e-6);
  }
};

// Every kernel multiplies and sums in fp32 (for bf16 / fp16 weights, of at most 11 significant
// bits, each product is even exact), so the error is fp32 rounding of ~in terms of size <= 1: a
// few 2^-24 sqrt(in) for a random-walk sum, checked as error / sqrt(in) < 2e-6 (~30 ulps; two
// orders below what a bf16 rounding of x, 2^-9, or a bf16 hi + lo split, ~2^-17, would give).
template <class W>
void check_all_isas(std::mt19937& rng) {
  for (int n = 1; n <= hb::kGemvMaxTokens; ++n) {
    for (int in : {1, 16, 31, 32, 37, 64, 77, 128, 300, 1000, 2048}) {
      // (out, first call's rows): remainders 0..3 of 4-row blocks, also after a split inside
      // a block
      for (auto [out, mid] :
           {std::pair{1, 0}, {2, 0}, {3, 0}, {4, 0}, {13, 5}, {30, 10}, {29, 9}, {8, 3}}) {
        for (bool bias : {false, true}) {
          Case<W> c(n, in, out, bias, rng);
          c.check(hb::detail::gemv_rows_generic<W>, "generic", mid);
#if RODIMUS_HAVE_X86_DISPATCH
          const auto isa = hb::detected_host_isa();
          if (isa >= hb::HostIsa::Avx2) c.check(hb::detail::gemv_rows_avx2<W>, "avx2", mid);
          if (isa >= hb::HostIsa::Avx512) {
            c.check(hb::detail::gemv_rows_avx512<W>, "avx512", mid);
            c.check(hb::detail::gemv_rows_avx512_blocked<W>, "avx512 row-blocked", mid);
            c.check(hb::detail::gemv_rows_avx512_sequential<W>, "avx512 sequential", mid);
          }
#endif
          c.check(hb::gemv_rows<W>, "dispatched", mid);
          hb::set_gemv_one_token_sequential(!hb::gemv_one_token_sequential());
          c.check(hb::gemv_rows<W>, "dispatched, other one-token kernel", mid);
          hb::set_gemv_one_token_sequential(!hb::gemv_one_token_sequential());
        }
      }
    }
  }
}

}  // namespace

TEST_CASE("host GEMV: every ISA build equals a double-precision sum", "[backend][host][gemv]") {
  const auto seed = std::random_device{}();
  CAPTURE(seed);
  std::mt19937 rng(seed);
  std::printf("test_host_gemv seed: %u\n", unsigned(seed));
  INFO("this CPU: " << hb::host_isa_name(hb::detected_host_isa()));
  check_all_isas<float>(rng);
  check_all_isas<bf16>(rng);
  check_all_isas<fp16>(rng);
}

TEST_CASE("host ISA: requests above the CPU or unknown names are errors", "[backend][host]") {
  using hb::HostIsa;
  CHECK(hb::detail::choose_host_isa("", HostIsa::Avx2) == HostIsa::Avx2);
  CHECK(hb::detail::choose_host_isa("generic", HostIsa::Avx512) == HostIsa::Generic);
  CHECK(hb::detail::choose_host_isa("avx2", HostIsa::Avx512) == HostIsa::Avx2);
  CHECK_THROWS_WITH(hb::detail::choose_host_isa("avx512", HostIsa::Avx2),
                    Catch::Contains("supports only avx2"));
  CHECK_THROWS_WITH(hb::detail::choose_host_isa("sse9", HostIsa::Avx512),
                    Catch::Contains("expected generic, avx2 or avx512"));
}
