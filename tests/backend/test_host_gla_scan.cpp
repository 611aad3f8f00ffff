// The host GLA scan kernel (backend/host/gla_scan.hpp) in every build this CPU can run (generic,
// AVX2, AVX-512) against the fp64 recurrence: packed batches of sequences with carried state in
// shuffled slots, state heights with and without a tail of fewer than 16 rows, widths with and
// without a tail of fewer than 16 columns, token blocks of 1..128, both kernels (streaming decode
// and register-blocked tile groups of 1..16 tiles), decays from 0 to exp(-60) and exp(-inf).
// The host chunk kernel (backend/host/gla_chunk_scan.hpp) against the same references: chunk
// sizes 1..128 (multiples of its 8-token sub-chunks and not), sequences of 0, 1, 7, C, C + 1 and
// 300 tokens, n = 32 / 64 / 128 and tails, widths that are not a multiple of its column blocks.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "rodimus/backend/host/gla_chunk_scan.hpp"
#include "rodimus/backend/host/gla_scan.hpp"
#include "rodimus/reference/gla_scan.hpp"

namespace hb = rodimus::backend::host;

namespace {

struct Case {
  int n, e, slots, ld_pad;
  std::vector<int> lengths, offsets, slot;
  std::vector<float> q, k, a, decay, u, state0;
  std::vector<double> ref_o, ref_state;

  Case(int n_, int e_, std::vector<int> lengths_, std::mt19937& rng)
      : n(n_), e(e_), ld_pad(3), lengths(std::move(lengths_)) {
    const int b = static_cast<int>(lengths.size());
    slots = b + 1;
    slot.resize(b);
    std::vector<int> perm(slots);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    std::copy_n(perm.begin(), b, slot.begin());
    offsets.assign(b + 1, 0);
    for (int s = 0; s < b; ++s) offsets[s + 1] = offsets[s] + lengths[s];
    const int nt = offsets[b];
    std::uniform_real_distribution<float> d(-1.f, 1.f), pick(0.f, 1.f);
    auto fill = [&](std::vector<float>& v, std::size_t count) {
      v.resize(count);
      for (auto& x : v) x = d(rng);
    };
    // rows of q, k, a, u carry ld_pad extra columns (strided inputs)
    fill(q, std::size_t(nt) * (n + ld_pad));
    fill(k, std::size_t(nt) * (n + ld_pad));
    fill(u, std::size_t(nt) * (e + ld_pad));
    fill(state0, std::size_t(slots) * n * e);
    a.resize(std::size_t(nt) * (n + ld_pad));
    for (auto& x : a) {
      const float p = pick(rng);  // strong, weak, none, mid
      x = p < 0.02f   ? -INFINITY
          : p < 0.25f ? -10.f - 50.f * pick(rng) : p < 0.5f ? -0.1f * pick(rng) : p < 0.6f ? 0.f
                                                                               : -3.f * pick(rng);
    }
    decay.resize(a.size());
    for (std::size_t i = 0; i < a.size(); ++i) decay[i] = std::exp(a[i]);
    ref_o.assign(std::size_t(nt) * e, 0.0);
    ref_state.assign(state0.begin(), state0.end());
    const std::size_t ss = std::size_t(n) * e;
    for (int s = 0; s < b; ++s) {
      const int len = lengths[s], off = offsets[s];
      auto rows = [&](const std::vector<float>& v, int cols) {
        std::vector<double> r(std::size_t(len) * cols);
        for (int t = 0; t < len; ++t)
          for (int c = 0; c < cols; ++c)
            r[std::size_t(t) * cols + c] = v[std::size_t(off + t) * (cols + ld_pad) + c];
        return r;
      };
      std::vector<double> S(ref_state.begin() + std::ptrdiff_t(slot[s] * ss),
                            ref_state.begin() + std::ptrdiff_t((slot[s] + 1) * ss));
      const auto o = rodimus::reference::gla_scan_recurrent(rows(q, n), rows(k, n), rows(u, e),
                                                            rows(a, n), len, n, e, S);
      std::copy(o.begin(), o.end(), ref_o.begin() + std::ptrdiff_t(off) * e);
      std::copy(S.begin(), S.end(), ref_state.begin() + std::ptrdiff_t(slot[s] * ss));
    }
  }

  // Checks outputs and states (against fp64) of a run that wrote `o` and `state`.
  void compare(const std::vector<float>& o, const std::vector<float>& state) {
    const int nt = offsets.back();
    const float guard = 4321.f;
    double worst_o = 0, worst_s = 0, o_scale = 1e-30, s_scale = 1e-30;
    for (double v : ref_o) o_scale = std::max(o_scale, std::fabs(v));
    for (double v : ref_state) s_scale = std::max(s_scale, std::fabs(v));
    for (int t = 0; t < nt; ++t) {
      for (int c = 0; c < e; ++c)
        worst_o = std::max(worst_o, std::fabs(o[std::size_t(t) * (e + ld_pad) + c] -
                                              ref_o[std::size_t(t) * e + c]));
      for (int c = e; c < e + ld_pad; ++c) CHECK(o[std::size_t(t) * (e + ld_pad) + c] == guard);
    }
    for (std::size_t i = 0; i < state.size(); ++i)
      worst_s = std::max(worst_s, std::fabs(state[i] - ref_state[i]));
    CHECK(worst_o / o_scale < 1e-5);
    CHECK(worst_s / s_scale < 1e-5);
  }

  // The chunk kernel: every prep item (in reverse order), then every column item (in reverse).
  template <class Prep, class Item>
  void check_chunk(Prep&& prep, Item&& item, int chunk, int group_cols, const char* isa) {
    const int nt = offsets.back(), b = static_cast<int>(lengths.size());
    std::vector<float> o(std::size_t(nt) * (e + ld_pad), 4321.f), state = state0;
    std::vector<int> first(b + 1);
    const int chunks = hb::gla_chunk_index(offsets.data(), b, chunk, first.data());
    const std::int64_t ld_prep = hb::gla_chunk_prep_floats(n, chunk);
    std::vector<float> ws(std::size_t(std::max(chunks, 1)) * ld_prep, NAN);
    hb::GlaChunkArgs g{};
    g.q = q.data();
    g.k = k.data();
    g.a = a.data();
    g.u = u.data();
    g.o = o.data();
    g.state = state.data();
    g.ldq = g.ldk = g.lda = n + ld_pad;
    g.ldu = g.ldo = e + ld_pad;
    g.n = n;
    g.e = e;
    g.scale = 1.f / std::sqrt(float(n));
    g.offsets = offsets.data();
    g.slot = slot.data();
    g.num_seqs = b;
    g.chunk = chunk;
    g.first_chunk = first.data();
    g.prep = ws.data();
    g.ld_prep = ld_prep;
    g.group_cols = group_cols;
    for (std::int64_t ci = chunks - 1; ci >= 0; --ci) prep(g, ci);
    for (std::int64_t i = hb::gla_chunk_items(g) - 1; i >= 0; --i) item(g, i);
    INFO(isa << " n=" << n << " e=" << e << " chunk=" << chunk << " group_cols=" << group_cols);
    compare(o, state);
  }

  // Runs every work item through `item` and checks outputs and states against fp64.
  template <class Item>
  void check(Item&& item, int token_block, int tiles_per_item, const char* isa) {
    const int nt = offsets.back();
    const float guard = 4321.f;
    std::vector<float> o(std::size_t(nt) * (e + ld_pad), guard), state = state0;
    hb::GlaScanArgs args{};
    args.q = q.data();
    args.k = k.data();
    args.decay = decay.data();
    args.u = u.data();
    args.o = o.data();
    args.state = state.data();
    args.ldq = args.ldk = args.ldd = n + ld_pad;
    args.ldu = args.ldo = e + ld_pad;
    args.n = n;
    args.e = e;
    args.scale = 1.f / std::sqrt(float(n));
    args.offsets = offsets.data();
    args.slot = slot.data();
    args.num_seqs = static_cast<int>(lengths.size());
    args.token_block = token_block;
    args.tiles_per_item = tiles_per_item;
    // items in reverse order: none may depend on another having run
    for (std::int64_t i = hb::gla_scan_items(args) - 1; i >= 0; --i) item(args, i);
    INFO(isa << " n=" << n << " e=" << e << " token_block=" << token_block
             << " tiles_per_item=" << tiles_per_item);
    compare(o, state);
  }
};

}  // namespace

TEST_CASE("host GLA scan: every ISA build equals the fp64 recurrence", "[backend][host][scan]") {
  const auto seed = std::random_device{}();
  CAPTURE(seed);
  std::mt19937 rng(seed);
  INFO("this CPU: " << hb::host_isa_name(hb::detected_host_isa()));
  std::uniform_int_distribution<int> len(1, 90);
  for (auto [n, e] : {std::pair{64, 48}, std::pair{16, 16}, std::pair{33, 37}, std::pair{5, 8},
                      std::pair{70, 100}}) {
    Case c(n, e, {len(rng), 0, 1, len(rng), 130}, rng);
    // tiles_per_item 0: the streaming (decode) kernel; else register-blocked tile groups
    for (auto [tb, tiles] : {std::pair{1, 1}, std::pair{7, 2}, std::pair{16, 16},
                             std::pair{128, 3}, std::pair{16, 0}}) {
      c.check(hb::detail::scan_item_generic, tb, tiles, "generic");
#if RODIMUS_HAVE_X86_DISPATCH
      const auto isa = hb::detected_host_isa();
      if (isa >= hb::HostIsa::Avx2) c.check(hb::detail::scan_item_avx2, tb, tiles, "avx2");
      if (isa >= hb::HostIsa::Avx512) c.check(hb::detail::scan_item_avx512, tb, tiles, "avx512");
#endif
      c.check(hb::gla_scan_item, tb, tiles, "dispatched");
    }
  }
}

TEST_CASE("host GLA scan: the exp pass equals expf in every ISA build", "[backend][host][scan]") {
  const auto seed = std::random_device{}();
  CAPTURE(seed);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-87.f, 0.f);
  const int n = 37, nt = 21, ld = 40;
  std::vector<float> a(std::size_t(nt) * ld);
  for (auto& x : a) x = d(rng);
  a[0] = 0.f;
  a[1] = -60.f;
  auto check = [&](auto&& f, const char* isa) {
    std::vector<float> out(a.size(), -1.f);
    f(a.data(), ld, out.data(), ld, n, 2, nt);
    INFO(isa);
    for (int t = 0; t < nt; ++t)
      for (int i = 0; i < ld; ++i) {
        const std::size_t at = std::size_t(t) * ld + i;
        if (t < 2 || i >= n) {
          CHECK(out[at] == -1.f);  // rows and columns outside the range are left alone
        } else {
          const double want = std::exp(double(a[at]));
          CHECK(std::fabs(out[at] - want) <= 4e-7 * want);
        }
      }
  };
  check(hb::detail::exp_rows_generic, "generic");
#if RODIMUS_HAVE_X86_DISPATCH
  if (hb::detected_host_isa() >= hb::HostIsa::Avx2) check(hb::detail::exp_rows_avx2, "avx2");
  if (hb::detected_host_isa() >= hb::HostIsa::Avx512) check(hb::detail::exp_rows_avx512, "avx512");
#endif
  check(hb::gla_decay_rows, "dispatched");
}

TEST_CASE("host GLA chunk scan: every ISA build equals the fp64 recurrence",
          "[backend][host][scan]") {
  const auto seed = std::random_device{}();
  CAPTURE(seed);
  std::mt19937 rng(seed);
  INFO("this CPU: " << hb::host_isa_name(hb::detected_host_isa()));
  for (auto [n, e] : {std::pair{64, 100}, std::pair{32, 37}, std::pair{128, 70},
                      std::pair{5, 16}, std::pair{70, 130}}) {
    for (int chunk : {64, 32, 16, 13, 1, 128}) {
      Case c(n, e, {1, 7, 0, chunk, chunk + 1, 300}, rng);
      for (int group : {64, 512}) {
        c.check_chunk(hb::detail::chunk_prep_generic, hb::detail::chunk_item_generic, chunk, group,
                      "generic");
#if RODIMUS_HAVE_X86_DISPATCH
        const auto isa = hb::detected_host_isa();
        if (isa >= hb::HostIsa::Avx2)
          c.check_chunk(hb::detail::chunk_prep_avx2, hb::detail::chunk_item_avx2, chunk, group,
                        "avx2");
        if (isa >= hb::HostIsa::Avx512)
          c.check_chunk(hb::detail::chunk_prep_avx512, hb::detail::chunk_item_avx512, chunk,
                        group, "avx512");
#endif
        c.check_chunk(hb::gla_chunk_prep, hb::gla_chunk_item, chunk, group, "dispatched");
      }
    }
  }
}
