// The RMS norms (residual add + norm, gated norm) on a CUDA GPU in raw CUDA: one CTA of 256
// threads per row, the whole row held in registers (float4 loads where the rows allow), one
// block reduction, then the scaled row written. A decode step normalises one row per token,
// so a norm is one CTA: every load of the row and its weights is issued at once and the kernel
// is one memory round trip, one reduction and the stores (Kokkos' team kernels walk the row
// twice with a team reduction between). Only in CUDA translation units.
#pragma once

#include <cstdint>

#include "rodimus/backend/exec_space_traits.hpp"
#include "rodimus/backend/norm_args.hpp"

#if RODIMUS_CUDA_KERNELS
#include <cuda_runtime.h>

#include "rodimus/backend/cuda/context.hpp"
#include "rodimus/backend/cuda/dependent_launch.cuh"
#include "rodimus/backend/cuda/float_vec.cuh"
#include "rodimus/backend/cuda/launch.cuh"
#include "rodimus/core/math.hpp"
#endif

namespace rodimus::backend::cuda {

#if RODIMUS_CUDA_KERNELS
namespace detail {

inline constexpr int kNormThreads = 256;
inline constexpr int kNormMaxVecs = 8;  // vectors per thread: rows up to 8192 floats (float4)

/// Sum over the CTA (kNormThreads threads) through `red` (one float per warp).
__device__ inline float norm_block_sum(float x, float* red) {
  for (int o = 16; o > 0; o /= 2) x += __shfl_xor_sync(0xffffffffu, x, o);
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = x;
  __syncthreads();
  float s = 0.f;
#pragma unroll
  for (int w = 0; w < kNormThreads / 32; ++w) s += red[w];
  return s;
}

// grid (rows), block kNormThreads. Thread i holds vectors i, i + 256, ... of its row.
template <int V, int NV>
__global__ void __launch_bounds__(kNormThreads) rms_norm_kernel(RmsNormArgs a) {
  allow_dependents();  // the projection after the norm may start loading its weights
  __shared__ float red[kNormThreads / 32];
  using Vec = FloatVec<V>;
  const std::int64_t t = blockIdx.x;
  const float* h = a.h + t * a.ldh;
  float* r = a.r ? a.r + t * a.ldr : nullptr;
  float* out = a.out + t * a.ldo;
  const int nvec = a.d / V;
  float z[NV][V], w[NV][V];
  float ss = 0.f;
#pragma unroll
  for (int i = 0; i < NV; ++i) {  // the weights are no earlier kernel's output
    const int c = (threadIdx.x + i * kNormThreads) * V;
    if (c < nvec * V) Vec::get(a.w + c, w[i]);
  }
  grid_dependency_wait();  // h and r come from the kernels before (a dependent launch)
#pragma unroll
  for (int i = 0; i < NV; ++i) {
    const int c = (threadIdx.x + i * kNormThreads) * V;
    if (c < nvec * V) {
      Vec::get(h + c, z[i]);
      if (a.mode != 0) {
        float rv[V];
        Vec::get(r + c, rv);
#pragma unroll
        for (int j = 0; j < V; ++j) z[i][j] += rv[j];
      }
#pragma unroll
      for (int j = 0; j < V; ++j) ss += z[i][j] * z[i][j];
    }
  }
  const float inv = 1.f / sqrtf(norm_block_sum(ss, red) / float(a.d) + a.eps);
#pragma unroll
  for (int i = 0; i < NV; ++i) {
    const int c = (threadIdx.x + i * kNormThreads) * V;
    if (c < nvec * V) {
      float y[V];
#pragma unroll
      for (int j = 0; j < V; ++j) y[j] = z[i][j] * inv * w[i][j];
      Vec::put(out + c, y);
      if (r && a.mode != 2) Vec::put(r + c, z[i]);
    }
  }
}

// grid (rows), block kNormThreads: z = (o + xs * w_res) * silu(g), y = z / rms(z) * w.
template <int V, int NV>
__global__ void __launch_bounds__(kNormThreads) gated_rms_norm_kernel(GatedRmsNormArgs a) {
  allow_dependents();  // the projection after the norm may start loading its weights
  __shared__ float red[kNormThreads / 32];
  using Vec = FloatVec<V>;
  const std::int64_t t = blockIdx.x;
  const float* o = a.o + t * a.ldo;
  const float* xs = a.xs ? a.xs + t * a.ldxs : nullptr;
  const float* g = a.g + t * a.ldg;
  float* y = a.y + t * a.ldy;
  const int nvec = a.e / V;
  float z[NV][V], w[NV][V], wr[NV][V];
  float ss = 0.f;
#pragma unroll
  for (int i = 0; i < NV; ++i) {  // the weights are no earlier kernel's output
    const int c = (threadIdx.x + i * kNormThreads) * V;
    if (c < nvec * V) {
      Vec::get(a.w + c, w[i]);
      if (xs) Vec::get(a.w_res + c, wr[i]);
    }
  }
  grid_dependency_wait();  // o, xs and g come from the kernels before (a dependent launch)
#pragma unroll
  for (int i = 0; i < NV; ++i) {
    const int c = (threadIdx.x + i * kNormThreads) * V;
    if (c < nvec * V) {
      float gv[V];
      Vec::get(o + c, z[i]);
      Vec::get(g + c, gv);
      if (xs) {
        float xv[V];
        Vec::get(xs + c, xv);
#pragma unroll
        for (int j = 0; j < V; ++j) z[i][j] += xv[j] * wr[i][j];
      }
#pragma unroll
      for (int j = 0; j < V; ++j) {
        z[i][j] *= rodimus::detail::silu(gv[j]);
        ss += z[i][j] * z[i][j];
      }
    }
  }
  const float inv = 1.f / sqrtf(norm_block_sum(ss, red) / float(a.e) + a.eps);
#pragma unroll
  for (int i = 0; i < NV; ++i) {
    const int c = (threadIdx.x + i * kNormThreads) * V;
    if (c < nvec * V) {
      float v[V];
#pragma unroll
      for (int j = 0; j < V; ++j) v[j] = z[i][j] * inv * w[i][j];
      Vec::put(y + c, v);
    }
  }
}

/// Launches a norm kernel, one CTA per row: as a programmatic dependent of the kernel before
/// (its weight loads overlap that kernel's tail) when CudaContext::dependent_norms is set.
template <class Args>
void launch_norm_kernel(void (*kernel)(Args), int rows, cudaStream_t st, const char* what,
                        const Args& a) {
  if (CudaContext::get().dependent_norms)
    launch_dependent(kernel, dim3(rows), dim3(kNormThreads), 0, st, what, a);
  else
    kernel<<<rows, kNormThreads, 0, st>>>(a);
}

/// Calls launch.template operator()<V, NV>() for the smallest power-of-two NV covering a row of
/// `d` floats, V = 4 (float4 vectors) when `vec4`, else 1; false (nothing launched) when the
/// row is too long.
template <class Launch>
bool launch_norm(int d, bool vec4, const Launch& launch) {
  const int v = vec4 ? 4 : 1;
  const int need = (d / v + kNormThreads - 1) / kNormThreads;
  if (d <= 0 || need > kNormMaxVecs || (vec4 && d % 4 != 0)) return false;
  auto by_nv = [&]<int V>() {
    if (need <= 1) return launch.template operator()<V, 1>();
    if (need <= 2) return launch.template operator()<V, 2>();
    if (need <= 4) return launch.template operator()<V, 4>();
    return launch.template operator()<V, 8>();
  };
  if (vec4)
    by_nv.template operator()<4>();
  else
    by_nv.template operator()<1>();
  return true;
}

}  // namespace detail
#endif

/// Runs the (residual-add) RMSNorm of `rows` rows on `stream` and returns true; false (nothing
/// done) outside CUDA translation units or for rows longer than 8192 floats.
inline bool rms_norm_rows([[maybe_unused]] const RmsNormArgs& a, [[maybe_unused]] int rows,
                          [[maybe_unused]] void* stream) {
#if RODIMUS_CUDA_KERNELS
  if (rows <= 0) return true;
  using detail::aligned16;
  const bool vec4 = a.d % 4 == 0 && aligned16(a.h) && aligned16(a.w) && aligned16(a.out) &&
                    a.ldh % 4 == 0 && a.ldo % 4 == 0 &&
                    (!a.r || (aligned16(a.r) && a.ldr % 4 == 0));
  const auto st = static_cast<cudaStream_t>(stream);
  if (!detail::launch_norm(a.d, vec4, [&]<int V, int NV>() {
        detail::launch_norm_kernel(detail::rms_norm_kernel<V, NV>, rows, st, "rms_norm kernel", a);
      }))
    return false;
  detail::check_cuda_call(cudaGetLastError(), "rms_norm kernel");
  return true;
#else
  return false;
#endif
}

/// Runs the gated RMSNorm of `rows` rows on `stream` and returns true; false (nothing done)
/// outside CUDA translation units or for rows longer than 8192 floats.
inline bool gated_rms_norm_rows([[maybe_unused]] const GatedRmsNormArgs& a,
                                [[maybe_unused]] int rows, [[maybe_unused]] void* stream) {
#if RODIMUS_CUDA_KERNELS
  if (rows <= 0) return true;
  using detail::aligned16;
  const bool vec4 = a.e % 4 == 0 && aligned16(a.o) && aligned16(a.g) && aligned16(a.w) &&
                    aligned16(a.y) && a.ldo % 4 == 0 && a.ldg % 4 == 0 && a.ldy % 4 == 0 &&
                    (!a.xs || (aligned16(a.xs) && aligned16(a.w_res) && a.ldxs % 4 == 0));
  const auto st = static_cast<cudaStream_t>(stream);
  if (!detail::launch_norm(a.e, vec4, [&]<int V, int NV>() {
        detail::launch_norm_kernel(detail::gated_rms_norm_kernel<V, NV>, rows, st,
                                   "gated_rms_norm kernel", a);
      }))
    return false;
  detail::check_cuda_call(cudaGetLastError(), "gated_rms_norm kernel");
  return true;
#else
  return false;
#endif
}

}  // namespace rodimus::backend::cuda
