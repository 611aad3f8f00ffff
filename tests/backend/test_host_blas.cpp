// The host CBLAS fast path of `linear` against the generic Kokkos kernel, for fp32 and
// reduced-precision weights, single tokens (sgemv) and token blocks (sgemm, panel widening).
#include <catch2/catch.hpp>
#include <random>

#include "rodimus/ops/linear.hpp"

using namespace rodimus;
using Host = Kokkos::DefaultHostExecutionSpace;

namespace {

template <class W>
void compare_paths(int n, int in, int out, bool bias, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  View2<float, Host> x("x", n + 3, in), y_fast("yf", n + 3, out), y_ref("yr", n + 3, out);
  View2<W, Host> w("w", out, in);
  View1<float, Host> b("b", bias ? out : 0);
  for (int t = 0; t < n + 3; ++t)
    for (int i = 0; i < in; ++i) x(t, i) = d(rng);
  for (int o = 0; o < out; ++o)
    for (int i = 0; i < in; ++i) w(o, i) = from_f32<W>(d(rng));
  for (int o = 0; o < (bias ? out : 0); ++o) b(o) = d(rng);
  LinearWeights<W, Host> lw;
  lw.w = w;
  lw.b = b;
  linear(Host(), View2<const float, Host>(x), lw, y_fast, n);
  detail::linear_generic<Host, W>(Host(), x, lw.w, lw.b, y_ref, n);
  Host().fence();
  double err = 0, scale = 0;
  for (int t = 0; t < n; ++t)
    for (int o = 0; o < out; ++o) {
      err = std::max(err, double(std::fabs(y_fast(t, o) - y_ref(t, o))));
      scale = std::max(scale, double(std::fabs(y_ref(t, o))));
    }
  INFO("n " << n << " in " << in << " out " << out << " bias " << bias << " err/scale "
            << err / scale);
  CHECK(err <= 1e-5 * scale);
}

}  // namespace

TEST_CASE("host linear: CBLAS path equals the generic kernel", "[backend][host][linear]") {
  if (!backend::host::has_cblas) {
    WARN("built without a CBLAS: only the generic kernel exists");
    return;
  }
  const auto seed = std::random_device{}();
  CAPTURE(seed);
  std::mt19937 rng(seed);
  for (int n : {1, 5, 16, 33}) {
    compare_paths<float>(n, 70, 300, n % 2 == 1, rng);
    compare_paths<bf16>(n, 64, 513, true, rng);  // > one widening panel of 256 rows
    compare_paths<fp16>(n, 33, 100, false, rng);
  }
}
