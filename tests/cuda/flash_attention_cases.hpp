// Test cases of the flash window attention (backend/cuda/flash_attention.cuh), shared by its GPU
// test (test_flash_attention.cu) and its host emulation (emulate_flash_attention.cpp): random
// inputs laid out as the kernel takes them, and the fp64 reference on the same rounded values.
//
// A case is a packed batch of sequences; sequence s has len[s] queries at positions pos0[s] ..
// and key_pad rows before its own keys, of which the last min(pos0[s], key_pad) hold its
// earlier keys (a continued sequence); the other pad rows are NaN, which the kernel must never
// read. Error = ||o - o_ref||_2 / ||o_ref||_2 over the checked rows (every row, or every
// `stride`-th for the large cases).
#pragma once

#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "rodimus/backend/cuda/flash_attention.cuh"
#include "cuda_util.hpp"

namespace rodimus::cuda_test {

struct FlashCase {
  std::string name;
  std::vector<int> len, pos0;
  int heads = 2, heads_k = 1, heads_v = 2, hd = 64, window_back = -1, key_pad = 0;
  backend::cuda::AttnPrecision precision = backend::cuda::AttnPrecision::Split;
  int check_stride = 1;  // check every n-th query row
};

/// Host data of a case: q as Tq, keys and values as bf16 hi / lo rows, the output poisoned.
template <class Tq, class Tout>
struct FlashData {
  FlashCase c;
  std::vector<int> offsets;
  std::vector<Tq> q;
  std::vector<__nv_bfloat16> k_hi, k_lo, v_hi, v_lo;
  std::vector<double> k_val, v_val;  // the values the kernel sees (hi + lo), fp64
  std::vector<Tout> out;
  int rows = 0, key_rows = 0;
  std::int64_t ldq = 0, ldk = 0, ldv = 0;

  /// The kernel's arguments over the given (host or device) arrays.
  backend::cuda::FlashAttentionArgs<Tq, Tout> args(const Tq* dq, const __nv_bfloat16* dkh,
                                                   const __nv_bfloat16* dkl,
                                                   const __nv_bfloat16* dvh,
                                                   const __nv_bfloat16* dvl, Tout* dout,
                                                   const int* doffsets, const int* dpos0) const {
    backend::cuda::FlashAttentionArgs<Tq, Tout> a;
    a.q = dq;
    a.k_hi = dkh;
    a.k_lo = c.precision == backend::cuda::AttnPrecision::Split ? dkl : nullptr;
    a.v_hi = dvh;
    a.v_lo = c.precision == backend::cuda::AttnPrecision::Split ? dvl : nullptr;
    a.out = dout;
    a.ldq = ldq;
    a.ldk = ldk;
    a.ldv = ldv;
    a.ldo = ldq;
    a.heads = c.heads;
    a.heads_k = c.heads_k;
    a.heads_v = c.heads_v;
    a.head_dim = c.hd;
    a.window_back = c.window_back;
    a.scale = 1.f / std::sqrt(float(c.hd));
    a.offsets = doffsets;
    a.pos0 = dpos0;
    a.key_pad = c.key_pad;
    a.num_seqs = static_cast<int>(c.len.size());
    a.max_len = c.len.empty() ? 0 : *std::max_element(c.len.begin(), c.len.end());
    return a;
  }
};

inline void split_bf16(float x, __nv_bfloat16& hi, __nv_bfloat16& lo) {
  hi = __float2bfloat16_rn(x);
  lo = __float2bfloat16_rn(x - __bfloat162float(hi));
}

template <class Tq, class Tout>
FlashData<Tq, Tout> make_flash_case(const FlashCase& c, std::mt19937_64& rng) {
  FlashData<Tq, Tout> d;
  d.c = c;
  const int B = static_cast<int>(c.len.size()), hd = c.hd;
  d.offsets.assign(B + 1, 0);
  for (int s = 0; s < B; ++s) d.offsets[s + 1] = d.offsets[s] + c.len[s];
  d.rows = d.offsets[B];
  d.key_rows = d.rows + B * c.key_pad;
  d.ldq = std::int64_t(c.heads) * hd;
  d.ldk = std::int64_t(c.heads_k) * hd;
  d.ldv = std::int64_t(c.heads_v) * hd;
  std::normal_distribution<float> normal(0.f, 1.f);
  d.q.resize(std::size_t(d.rows) * d.ldq);
  for (auto& x : d.q) x = from_float<Tq>(normal(rng));
  const bool split = c.precision == backend::cuda::AttnPrecision::Split;
  auto fill = [&](std::int64_t ld, std::vector<__nv_bfloat16>& hi, std::vector<__nv_bfloat16>& lo,
                  std::vector<double>& val) {
    const std::size_t n = std::size_t(d.key_rows) * ld;
    hi.assign(n, __float2bfloat16_rn(std::numeric_limits<float>::quiet_NaN()));
    lo = hi;
    val.assign(n, std::numeric_limits<double>::quiet_NaN());
    for (int s = 0; s < B; ++s) {
      const int pre = std::min(c.pos0[s], c.key_pad);
      const std::int64_t r0 = d.offsets[s] + std::int64_t(s + 1) * c.key_pad - pre;
      for (std::int64_t r = r0; r < r0 + pre + c.len[s]; ++r)
        for (std::int64_t i = r * ld; i < (r + 1) * ld; ++i) {
          const float x = normal(rng);
          if (split) {
            split_bf16(x, hi[i], lo[i]);
          } else {
            hi[i] = __float2bfloat16_rn(x);
            lo[i] = __float2bfloat16_rn(0.f);
          }
          val[i] = double(__bfloat162float(hi[i])) + double(__bfloat162float(lo[i]));
        }
    }
  };
  fill(d.ldk, d.k_hi, d.k_lo, d.k_val);
  fill(d.ldv, d.v_hi, d.v_lo, d.v_val);
  d.out.resize(d.q.size());
  for (auto& x : d.out) x = from_float<Tout>(std::numeric_limits<float>::quiet_NaN());
  return d;
}

/// Relative error of d.out against the fp64 attention of the same inputs (q as the kernel
/// reads it: for the bf16 precision with fp32 q, rounded to bf16 first).
template <class Tq, class Tout>
double flash_error(const FlashData<Tq, Tout>& d, bool& finite) {
  const FlashCase& c = d.c;
  const int hd = c.hd;
  const double scale = 1.0 / std::sqrt(double(hd));
  const bool round_q = c.precision == backend::cuda::AttnPrecision::Bf16;
  double num = 0, den = 0;
  finite = true;
  std::vector<double> w;
  for (int s = 0; s < static_cast<int>(c.len.size()); ++s) {
    const std::int64_t kbase = d.offsets[s] + std::int64_t(s + 1) * c.key_pad - c.pos0[s];
    for (int t = 0; t < c.len[s]; t += 1) {
      const int row = d.offsets[s] + t;
      if (row % c.check_stride != 0 && t != c.len[s] - 1) continue;
      const int p = c.pos0[s] + t;
      const int lo = (c.window_back < 0 || p - c.window_back < 0) ? 0 : p - c.window_back;
      for (int h = 0; h < c.heads; ++h) {
        const std::int64_t qc = std::int64_t(row) * d.ldq + std::int64_t(h) * hd;
        const std::int64_t kc = (h % c.heads_k) * hd, vc = (h % c.heads_v) * hd;
        w.assign(p - lo + 1, 0.0);
        double mx = -1e300;
        for (int j = lo; j <= p; ++j) {
          double dot = 0;
          for (int i = 0; i < hd; ++i) {
            double qv = to_double(d.q[qc + i]);
            if (round_q) qv = double(__bfloat162float(__float2bfloat16_rn(float(qv))));
            dot += qv * d.k_val[(kbase + j) * d.ldk + kc + i];
          }
          w[j - lo] = dot * scale;
          mx = std::max(mx, w[j - lo]);
        }
        double sum = 0;
        for (auto& x : w) sum += (x = std::exp(x - mx));
        for (int i = 0; i < hd; ++i) {
          double o = 0;
          for (int j = lo; j <= p; ++j) o += w[j - lo] * d.v_val[(kbase + j) * d.ldv + vc + i];
          o /= sum;
          const double x = to_double(d.out[qc + i]);
          finite = finite && std::isfinite(x);
          num += (x - o) * (x - o);
          den += o * o;
        }
      }
    }
  }
  return std::sqrt(num / (den > 0 ? den : 1));
}

/// Prints the case's line and returns whether it passed: split precision with an fp32 output
/// within 2e-5 (fp32-like, ~4e-6 measured; one bf16 rounding anywhere, or a dropped hi*lo
/// product, costs ~1e-3), with a bf16 output 4e-3 (its rounding alone ~1.6e-3); the bf16
/// precision 5e-3 (bf16 operands and P, as FlashAttention: 1-2e-3 measured).
template <class Tq, class Tout>
bool flash_report(const FlashData<Tq, Tout>& d) {
  bool finite = true;
  const double err = flash_error(d, finite);
  const bool split = d.c.precision == backend::cuda::AttnPrecision::Split;
  const double tol = !split ? 5e-3 : std::is_same_v<Tout, float> ? 2e-5 : 4e-3;
  const bool ok = finite && err <= tol;
  std::printf("%s %-34s hd=%d H=%d/%d/%d wb=%d %s q=%s out=%s  err=%.2e (tol %.0e)%s\n",
              ok ? "ok  " : "FAIL", d.c.name.c_str(), d.c.hd, d.c.heads, d.c.heads_k,
              d.c.heads_v, d.c.window_back, split ? "split" : "bf16 ",
              std::is_same_v<Tq, float> ? "f32" : "bf16", std::is_same_v<Tout, float> ? "f32" : "bf16",
              err, tol, finite ? "" : "  NON-FINITE");
  return ok;
}

}  // namespace rodimus::cuda_test
