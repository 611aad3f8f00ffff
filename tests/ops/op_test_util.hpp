// Shared helpers of the op tests: seeded random inputs, host <-> device views, error measures,
// and the list of backends every op runs on (ggml test-backend-ops style).
#pragma once

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "rodimus/backend/cuda/context.hpp"
#include "rodimus/backend/exec_space_traits.hpp"
#include "rodimus/core/dtype.hpp"
#include "rodimus/core/seq_batch.hpp"
#include "rodimus/core/views.hpp"
#include "rodimus/ops/normed_rows.hpp"
#include "rodimus/reference/rms_norm.hpp"

namespace rodimus::test {

/// A generator seeded from std::random_device, fresh each run; `seed` goes into INFO so a
/// failure can be replayed (set RODIMUS_TEST_SEED=<seed> to force it).
struct TestRng {
  std::uint32_t seed;
  std::mt19937 gen;

  TestRng() : seed(initial_seed()), gen(seed) {}

  static std::uint32_t initial_seed() {
    if (const char* s = std::getenv("RODIMUS_TEST_SEED"))
      return static_cast<std::uint32_t>(std::stoul(s));
    return std::random_device{}();
  }
  double uniform(double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(gen);
  }
  int integer(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(gen); }
  /// A value exactly representable in fp32, so the op and the fp64 reference see the same input.
  double f32(double lo, double hi) { return static_cast<float>(uniform(lo, hi)); }
  /// n fp32-representable values in [lo, hi).
  std::vector<double> vec(std::size_t n, double lo = -1.0, double hi = 1.0) {
    std::vector<double> v(n);
    for (auto& x : v) x = f32(lo, hi);
    return v;
  }
};

/// Records the seed with every assertion of the enclosing scope.
#define RODIMUS_SEED_INFO(rng) \
  INFO("seed " << (rng).seed << " (replay: RODIMUS_TEST_SEED=" << (rng).seed << ")")

// ---- host -> device ---------------------------------------------------------------------------
// Every upload fills a host mirror and deep_copies it into a view of Space's memory space. For
// host spaces the mirror *is* the view (create_mirror_view aliases it) and the copy is a no-op;
// for GPU spaces the view lives in device memory and is never indexed on the host.

/// A [rows, cols] device view holding `v` (row-major) converted to T; extra rows (rows >
/// v.size() / cols) are filled with `pad` so ops that must not read or write them are caught.
template <class T, class Space>
View2<T, Space> upload2(const std::vector<double>& v, std::size_t rows, std::size_t cols,
                        double pad = 0.0) {
  View2<T, Space> d("rodimus::test.v2", rows, cols);
  auto h = Kokkos::create_mirror_view(d);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c) {
      const std::size_t i = r * cols + c;
      h(r, c) = from_f32<T>(static_cast<float>(i < v.size() ? v[i] : pad));
    }
  Kokkos::deep_copy(d, h);
  return d;
}

template <class Space>
View1<float, Space> upload1(const std::vector<double>& v) {
  View1<float, Space> d("rodimus::test.v1", v.size());
  auto h = Kokkos::create_mirror_view(d);
  for (std::size_t i = 0; i < v.size(); ++i) h(i) = static_cast<float>(v[i]);
  Kokkos::deep_copy(d, h);
  return d;
}

template <class Space>
View1<int, Space> upload_ids(const std::vector<int>& v) {
  View1<int, Space> d("rodimus::test.ids", v.size() > 0 ? v.size() : 1);
  auto h = Kokkos::create_mirror_view(d);
  for (std::size_t i = 0; i < v.size(); ++i) h(i) = v[i];
  Kokkos::deep_copy(d, h);
  return d;
}

template <class Space>
View3<float, Space> upload3(const std::vector<double>& v, std::size_t n0, std::size_t n1,
                            std::size_t n2) {
  View3<float, Space> d("rodimus::test.v3", n0, n1, n2);
  auto h = Kokkos::create_mirror_view(d);
  for (std::size_t a = 0; a < n0; ++a)
    for (std::size_t b = 0; b < n1; ++b)
      for (std::size_t c = 0; c < n2; ++c)
        h(a, b, c) = static_cast<float>(v[(a * n1 + b) * n2 + c]);
  Kokkos::deep_copy(d, h);
  return d;
}

// ---- device -> host ---------------------------------------------------------------------------
// create_mirror_view_and_copy aliases a view already in host memory, so each download copies
// the values into a std::vector at once: the result is owned and later calls on the view do
// not change it.

/// The first `rows` rows of a 2-D view (any element type convertible through to_f32), as doubles.
template <class V>
std::vector<double> download2(const V& d, std::size_t rows) {
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), d);
  const std::size_t cols = d.extent(1);
  std::vector<double> out(rows * cols);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c) out[r * cols + c] = to_f32(h(r, c));
  return out;
}
template <class V>
std::vector<double> download2(const V& d) {
  return download2(d, d.extent(0));
}

template <class V>
std::vector<double> download1(const V& d) {
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), d);
  std::vector<double> out(d.extent(0));
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = h(i);
  return out;
}

template <class V>
std::vector<double> download3(const V& d) {
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), d);
  std::vector<double> out(d.size());
  for (std::size_t a = 0; a < d.extent(0); ++a)
    for (std::size_t b = 0; b < d.extent(1); ++b)
      for (std::size_t c = 0; c < d.extent(2); ++c)
        out[(a * d.extent(1) + b) * d.extent(2) + c] = h(a, b, c);
  return out;
}

// ---- comparisons ------------------------------------------------------------------------------

inline double abs_max(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

inline bool all_finite(const std::vector<double>& v) {
  return std::all_of(v.begin(), v.end(), [](double x) { return std::isfinite(x); });
}

/// max |got - ref| / max(max |ref|, floor): the error relative to the output's scale. Any
/// non-finite value in `got` counts as an infinite error.
inline double rel_err(const std::vector<double>& got, const std::vector<double>& ref,
                      double floor = 1e-30) {
  REQUIRE(got.size() == ref.size());
  double e = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    e = std::max(e, std::fabs(got[i] - ref[i]));
  }
  return e / std::max(abs_max(ref), floor);
}

/// Elements [begin, begin + count) of v.
inline std::vector<double> slice(const std::vector<double>& v, std::size_t begin,
                                 std::size_t count) {
  return std::vector<double>(v.begin() + static_cast<std::ptrdiff_t>(begin),
                             v.begin() + static_cast<std::ptrdiff_t>(begin + count));
}

/// Rows [r0, r0 + rows) of a row-major [*, cols] array.
inline std::vector<double> rows_of(const std::vector<double>& v, std::size_t r0, std::size_t rows,
                                   std::size_t cols) {
  return slice(v, r0 * cols, rows * cols);
}

/// Columns [c0, c0 + count) of a row-major [rows, cols] array.
inline std::vector<double> cols_of(const std::vector<double>& v, std::size_t rows, std::size_t cols,
                                   std::size_t c0, std::size_t count) {
  std::vector<double> out(rows * count);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < count; ++c) out[r * count + c] = v[r * cols + c0 + c];
  return out;
}

/// [A | B] row by row: A [rows, ca], B [rows, cb] -> [rows, ca + cb].
inline std::vector<double> hcat(const std::vector<double>& a, const std::vector<double>& b,
                                std::size_t rows) {
  const std::size_t ca = rows ? a.size() / rows : 0, cb = rows ? b.size() / rows : 0;
  std::vector<double> out;
  out.reserve(a.size() + b.size());
  for (std::size_t r = 0; r < rows; ++r) {
    out.insert(out.end(), a.begin() + r * ca, a.begin() + (r + 1) * ca);
    out.insert(out.end(), b.begin() + r * cb, b.begin() + (r + 1) * cb);
  }
  return out;
}

/// The values a storage type W holds for `v` (what the op really multiplies with).
template <class W>
std::vector<double> dequantised(const std::vector<double>& v) {
  std::vector<double> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = to_f32(from_f32<W>(static_cast<float>(v[i])));
  return out;
}

// ---- packed batches ---------------------------------------------------------------------------

/// A packed batch of sequences: lengths, pos0 and slots, plus the SeqBatch built from them.
template <class Space>
struct Batch {
  std::vector<int> lengths, pos0, slots;
  detail::SeqBatchBuffers<Space> buffers;
  SeqBatch<Space> seq;

  Batch(std::vector<int> l, std::vector<int> p, std::vector<int> s)
      : lengths(std::move(l)), pos0(std::move(p)), slots(std::move(s)) {
    seq = buffers.build(lengths, pos0, slots);
  }
  int offset(int b) const { return seq.h_offsets[b]; }
  int tokens() const { return seq.num_tokens; }
};

/// Runs fn(epilogues) with CudaContext::gemv_epilogues and gemv_norm_in set each way on a CUDA
/// space (the decode GEMV's fused RoPE / ShortConv epilogues and input norm, then the separate
/// kernels), once (true) elsewhere.
template <class Space, class F>
void for_each_gemv_epilogue_mode(F&& fn) {
#if RODIMUS_CUDA_KERNELS
  if constexpr (is_cuda_space_v<Space>) {
    for (const bool on : {true, false}) {
      backend::cuda::detail::DecodeSettingsScope scope;
      scope.context().gemv_epilogues = on;
      scope.context().gemv_norm_in = on;  // a pending input norm in the GEMV
      fn(on);
    }
    return;
  }
#endif
  fn(true);
}

/// Runs fn() with the decode fusions switched on on a CUDA space, whatever an enclosing scope set
/// (CudaContext::gemv_two_inputs, gemv_norm_in, gemv_swiglu_epilogue, scan_channel_gate,
/// dependent_scan, scan_output_gate, gemv_batch_rows = 4); elsewhere fn() as it is.
template <class Space, class F>
void with_decode_fusions(F&& fn) {
#if RODIMUS_CUDA_KERNELS
  if constexpr (is_cuda_space_v<Space>) {
    backend::cuda::detail::DecodeSettingsScope scope;
    auto& c = scope.context();
    c.gemv_two_inputs = c.gemv_norm_in = c.gemv_swiglu_epilogue = true;
    c.scan_channel_gate = c.dependent_scan = c.scan_output_gate = true;
    c.gemv_batch_rows = 4;
    fn();
    return;
  }
#endif
  fn();
}

/// A random permutation of 0..n-1 (slot assignments that differ from the sequence order).
inline std::vector<int> shuffled_slots(TestRng& rng, int n, int slots) {
  std::vector<int> all(slots);
  for (int i = 0; i < slots; ++i) all[i] = i;
  std::shuffle(all.begin(), all.end(), rng.gen);
  all.resize(n);
  return all;
}

// ---- backends ---------------------------------------------------------------------------------

/// A list of execution space types.
template <class... Spaces>
struct SpaceList {};

/// SpaceList<T..., S>, or SpaceList<T...> when S is already in it.
template <class List, class S>
struct space_list_add;
template <class... T, class S>
struct space_list_add<SpaceList<T...>, S> {
  using type =
      std::conditional_t<(std::is_same_v<T, S> || ...), SpaceList<T...>, SpaceList<T..., S>>;
};

/// Spaces... in order, each once.
template <class List, class... Spaces>
struct space_list_unique {
  using type = List;
};
template <class List, class S, class... Rest>
struct space_list_unique<List, S, Rest...>
    : space_list_unique<typename space_list_add<List, S>::type, Rest...> {};

/// Every backend the op tests run on, each once: DefaultHostExecutionSpace (OpenMP or Serial),
/// Serial when enabled, and DefaultExecutionSpace when it is neither (Cuda, HIP, ...).
using TestSpaces = typename space_list_unique<SpaceList<>, Kokkos::DefaultHostExecutionSpace,
#if defined(KOKKOS_ENABLE_SERIAL)
                                              Kokkos::Serial,
#endif
                                              Kokkos::DefaultExecutionSpace>::type;

template <class F, class... Spaces>
void for_each_space_in(SpaceList<Spaces...>, F& f) {
  (f.template operator()<Spaces>(), ...);
}

/// Calls `f.template operator()<Space>()` for every Space of TestSpaces, in order. The body
/// builds its views with the upload helpers and reads them back with the download helpers, so
/// it works unchanged when Space's memory is on a GPU; `Space::name()` names the backend.
template <class F>
void for_each_space(F&& f) {
  for_each_space_in(TestSpaces{}, f);
}

/// How far apart (rel_err) an op's outputs may be when the same tokens go through it in one
/// call or split over several. Host spaces: 0, bit-identical, since every output element comes
/// from one work item in a fixed order whatever the split. GPU spaces: a tight 1e-6 of the
/// output's scale (a few fp32 ulps) instead, since a GPU kernel may reduce across threads in
/// an order that depends on the launch shape (token count, team size), so bit-identity is not
/// promised there. Pure copies (caches, conv state) stay bit-identical on every space.
template <class Space>
inline constexpr double split_tol = is_gpu_space_v<Space> ? 1e-6 : 0.0;

/// Rows that still owe their pre-norm (NormedRows): raw rows, the norm's weight, and the fp64
/// RMSNorm(raw) * w a consumer must see. `normed` is the input of an op's reference; pending()
/// uploads the other two for the op.
struct PendingNorm {
  std::vector<double> raw, w, normed;
  static constexpr float kEps = 1e-5f;

  PendingNorm(TestRng& rng, int n, int d)
      : raw(rng.vec(std::size_t(n) * d, -2.0, 2.0)), w(rng.vec(d, 0.5, 1.5)) {
    normed = reference::rms_norm(raw, w, kEps, n, d);
  }
  /// NormedRows over the raw rows in `rows` rows (rows past n filled with 3, as the ops' spare
  /// rows are) with a scratch output for consumers that cannot fuse the norm.
  template <class Space>
  NormedRows<Space> pending(int rows, int d) const {
    return NormedRows<Space>(View2<const float, Space>(upload2<float, Space>(raw, rows, d, 3.0)),
                             View1<const float, Space>(upload1<Space>(w)), kEps,
                             upload2<float, Space>({}, rows, d, 9.0));
  }
};
}  // namespace rodimus::test
