// Linear layers on Kokkos::Cuda through cuBLAS: y = x W^T + b with bf16 / fp16 weights as
// tensor-core GEMMs (fp32 activations split into two halves of the weight type, or rounded once
// under OperandPrecision::Bf16; fp32 accumulation and output) and fp32 weights as a plain fp32
// SGEMM (no TF32, so fp32 models keep fp32 accuracy). Projections that read the same input
// convert it once (cublas_linear_shared).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "rodimus/backend/cuda/aligned.hpp"
#include "rodimus/backend/cuda/context.hpp"
#include "rodimus/backend/cuda/projection.hpp"
#include "rodimus/backend/cuda/split_operands.hpp"
#include "rodimus/backend/exec_space_traits.hpp"
#include "rodimus/core/dtype.hpp"
#include "rodimus/core/error.hpp"
#include "rodimus/core/parallel.hpp"
#include "rodimus/core/precision.hpp"

#if RODIMUS_CUDA_KERNELS
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "rodimus/backend/cuda/float_vec.cuh"
#include "rodimus/core/math.hpp"
#endif

namespace rodimus::backend::cuda {

#if RODIMUS_CUDA_KERNELS
namespace detail {

/// V consecutive operands (one store of 2 V bytes for bf16 / fp16).
template <class T, int V>
struct alignas(V * sizeof(T)) OperandVec {
  T v[V];
};

/// The activations x [rows, cols] (leading dimension ldx) as tensor-core operands in T, xs
/// dense: Split: x = hi + lo with hi = T(x), lo = T(x - hi) (~16 bits of mantissa), xs[r] = hi
/// of row r, xs[rows + r] = its lo; else xs[r] = T(x[r]) (rounded to nearest). With xg (leading
/// dimension ldxg; SwiGLU's down-projection) the activations are silu(xg) * x, the swiglu
/// kernel's product, formed here instead of in a pass of its own. V columns per thread
/// (FloatVec): V = 4 requires cols % 4 == 0 and 16-byte aligned rows of x (and xg), ldx (ldxg)
/// % 4 == 0; the values do not depend on V.
template <class T, bool Split, int V>
__global__ void operand_rows(const float* __restrict__ x, std::int64_t ldx, T* __restrict__ xs,
                             std::int64_t rows, std::int64_t cols,
                             const float* __restrict__ xg = nullptr, std::int64_t ldxg = 0) {
  using Vec = FloatVec<V>;
  const std::int64_t cv = cols / V, nv = rows * cv, n = rows * cols;
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < nv;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    const auto rc = ::rodimus::detail::split_index(i, static_cast<int>(cv));
    const std::int64_t r = rc.row, c = V * std::int64_t(rc.col);
    float v[V];
    Vec::get(x + r * ldx + c, v);
    if (xg) {
      float g[V];
      Vec::get(xg + r * ldxg + c, g);
#pragma unroll
      for (int j = 0; j < V; ++j) v[j] = ::rodimus::detail::silu(g[j]) * v[j];
    }
    OperandVec<T, V> hi, lo;
#pragma unroll
    for (int j = 0; j < V; ++j) {
      if constexpr (Split) {
        split_halves(v[j], hi.v[j], lo.v[j]);
      } else {
        hi.v[j] = from_f32<T>(v[j]);
      }
    }
    reinterpret_cast<OperandVec<T, V>*>(xs)[i] = hi;
    if constexpr (Split) reinterpret_cast<OperandVec<T, V>*>(xs + n)[i] = lo;
  }
}

/// Converts x (and xg) to the operands xs on stream s: four columns per thread where the rows
/// allow (the same values), one otherwise.
template <class T, bool Split>
void launch_operand_rows(const float* x, std::int64_t ldx, T* xs, std::int64_t rows,
                         std::int64_t cols, const float* xg, std::int64_t ldxg, cudaStream_t s) {
  const std::int64_t n = rows * cols;
  const bool vec4 = cols % 4 == 0 && ldx % 4 == 0 && aligned16(x) &&
                    (!xg || (ldxg % 4 == 0 && aligned16(xg)));
  if (vec4)
    operand_rows<T, Split, 4><<<grid_for(n / 4), 256, 0, s>>>(x, ldx, xs, rows, cols, xg, ldxg);
  else
    operand_rows<T, Split, 1><<<grid_for(n), 256, 0, s>>>(x, ldx, xs, rows, cols, xg, ldxg);
}

/// y[r * ldy + c] = ys[r, c] + ys[rows + r, c] (+ b[c]); ys dense [2 rows, cols].
template <class T>
__global__ void sum_halves(T* __restrict__ y, std::int64_t ldy, const T* __restrict__ ys,
                           const T* __restrict__ b, std::int64_t rows, std::int64_t cols) {
  const std::int64_t n = rows * cols;
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    const auto rc = ::rodimus::detail::split_index(i, static_cast<int>(cols));
    const std::int64_t r = rc.row, c = rc.col;
    y[r * ldy + c] = ys[i] + ys[n + i] + (b ? b[c] : T(0));
  }
}

/// Fewer tokens than this: the halves stacked as 2N rows of one GEMM (weights read once: the
/// product is memory-bound below the tensor cores' ridge, ~230 FLOP per weight byte on an
/// H200); this many or more: two GEMMs accumulating into y (no partial buffer, no summing pass).
inline constexpr int kStackedHalvesMaxTokens = 256;

/// y[r * ldy + c] += b[c] (b may be null when gate is set); with gate (the channel gate's
/// up-projection) also gated[r, c] = sigmoid(y[r, c]) * gate[r, c]: the bias and the gate's
/// product in one pass over y instead of two. V columns per thread (FloatVec): V = 4 requires
/// cols % 4 == 0 and 16-byte aligned rows of y, b, gate and gated (leading dimensions % 4 ==
/// 0); the values do not depend on V. (A template, as every kernel of a header: one instance
/// however many units include it.)
template <int V>
__global__ void add_bias_rows(float* __restrict__ y, std::int64_t ldy, const float* __restrict__ b,
                              std::int64_t rows, std::int64_t cols,
                              const float* __restrict__ gate = nullptr, std::int64_t ldgate = 0,
                              float* __restrict__ gated = nullptr, std::int64_t ldgated = 0) {
  using Vec = FloatVec<V>;
  const std::int64_t cv = cols / V, nv = rows * cv;
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < nv;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    const auto rc = ::rodimus::detail::split_index(i, static_cast<int>(cv));
    const std::int64_t r = rc.row, c = V * std::int64_t(rc.col);
    float v[V];
    Vec::get(y + r * ldy + c, v);
    if (b) {
      float bv[V];
      Vec::get(b + c, bv);
#pragma unroll
      for (int j = 0; j < V; ++j) v[j] += bv[j];
      Vec::put(y + r * ldy + c, v);
    }
    if (gate) {
      float g[V];
      Vec::get(gate + r * ldgate + c, g);
#pragma unroll
      for (int j = 0; j < V; ++j) g[j] = ::rodimus::detail::sigmoid(v[j]) * g[j];
      Vec::put(gated + r * ldgated + c, g);
    }
  }
}

template <class W>
struct CudaWeightType;
template <>
struct CudaWeightType<bf16> {
  using type = __nv_bfloat16;
  static constexpr cudaDataType_t id = CUDA_R_16BF;
};
template <>
struct CudaWeightType<fp16> {
  using type = __half;
  static constexpr cudaDataType_t id = CUDA_R_16F;
};

}  // namespace detail
#endif  // RODIMUS_CUDA_KERNELS

/// y = x W^T on `stream` for activations already in the weight type (no conversion pass): the
/// plain tensor-core GEMM behind cublas_linear_shared, also timed by the roofline measurements. x:
/// [N, in], w: [out, in], y: [N, out], all dense, device memory, fp32 accumulation and output.
template <StorageType W>
void cublas_gemm_rows([[maybe_unused]] const W* x, [[maybe_unused]] const W* w,
                      [[maybe_unused]] float* y, [[maybe_unused]] int n_tokens,
                      [[maybe_unused]] int in, [[maybe_unused]] int out,
                      [[maybe_unused]] void* stream) {
#if RODIMUS_CUDA_KERNELS
  auto& ctx = detail::CudaContext::get();
  ctx.blas_on(static_cast<cudaStream_t>(stream));
  const float one = 1.f, zero = 0.f;
  if constexpr (std::is_same_v<W, float>) {
    detail::check_cublas(cublasSgemm(ctx.handle, CUBLAS_OP_T, CUBLAS_OP_N, out, n_tokens, in, &one,
                                     w, in, x, in, &zero, y, out),
                         "cublasSgemm");
  } else {
    constexpr cudaDataType_t kType = detail::CudaWeightType<W>::id;
    detail::check_cublas(
        cublasGemmEx(ctx.handle, CUBLAS_OP_T, CUBLAS_OP_N, out, n_tokens, in, &one, w, kType, in, x,
                     kType, in, &zero, y, CUDA_R_32F, out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        "cublasGemmEx");
  }
#endif
}

/// y_i[0:N] = x[0:N] W_i^T + b_i for `count` projections of the same input on `stream`, all
/// pointers device memory, row-major: x: [N, in] (leading dimension ldx). bf16 / fp16 weights:
/// x converted once for all of them to the tensor cores' operand form, then per projection
///   - OperandPrecision::Split (CudaContext::operands, the default): x as hi and lo halves of
///     the weight type (~16 bits of mantissa: the fp32-activation product to ~1e-5, the
///     host's numerics); below kStackedHalvesMaxTokens tokens (batch decode: memory-bound)
///     the halves stacked as 2N rows of one GEMM, weights read once, and a pass adding the
///     halves and the bias; from there (prefill: compute-bound) hi then lo as two GEMMs
///     accumulating into y;
///   - OperandPrecision::Bf16: x rounded once to the weight type, one GEMM;
/// fp32 weights: fp32 SGEMM (no TF32). fp32 accumulation and output. (1-8 tokens take the
/// GEMV, not this path.) A projection with a gate (Projection::gate) also gets
/// gated = sigmoid(y) * gate, in the bias's pass. With xg (bf16 / fp16 weights only; leading
/// dimension ldxg) the input is silu(xg) * x, formed by the conversion pass. Asynchronous.
/// Throws BackendError on a CUDA or cuBLAS error, or for xg with fp32 weights. Only in CUDA
/// translation units.
template <StorageType W>
void cublas_linear_shared([[maybe_unused]] const float* x, [[maybe_unused]] std::int64_t ldx,
                          [[maybe_unused]] const Projection<W>* proj, [[maybe_unused]] int count,
                          [[maybe_unused]] int n_tokens, [[maybe_unused]] int in,
                          [[maybe_unused]] void* stream, [[maybe_unused]] const float* xg = nullptr,
                          [[maybe_unused]] std::int64_t ldxg = 0) {
#if RODIMUS_CUDA_KERNELS
  for (int i = 0; i < count; ++i)
    if (proj[i].gemv_only())
      throw BackendError("cublas_linear_shared: a rotary or ShortConv epilogue needs the GEMV");
  auto& ctx = detail::CudaContext::get();
  const auto s = static_cast<cudaStream_t>(stream);
  ctx.blas_on(s);
  const float one = 1.f, zero = 0.f;
  // after the GEMM(s): the bias (unless already added) and the gate's product, one pass
  auto epilogue = [&](const Projection<W>& p, bool bias_added) {
    const float* b = bias_added ? nullptr : p.b;
    if (!b && !p.gate) return;
    const std::int64_t ny = std::int64_t(n_tokens) * p.out;
    const bool vec4 = p.out % 4 == 0 && p.ldy % 4 == 0 && aligned16(p.y) &&
                      (!b || aligned16(b)) &&
                      (!p.gate || (p.ldgate % 4 == 0 && p.ldgated % 4 == 0 &&
                                   aligned16(p.gate) && aligned16(p.gated)));
    if (vec4)
      detail::add_bias_rows<4><<<detail::grid_for(ny / 4), 256, 0, s>>>(
          p.y, p.ldy, b, n_tokens, p.out, p.gate, p.ldgate, p.gated, p.ldgated);
    else
      detail::add_bias_rows<1><<<detail::grid_for(ny), 256, 0, s>>>(
          p.y, p.ldy, b, n_tokens, p.out, p.gate, p.ldgate, p.gated, p.ldgated);
    detail::check_cuda_call(cudaGetLastError(), "adding the bias");
  };
  // Column-major view: y^T [out, N] = W [in, out]^T x^T [in, N].
  if constexpr (std::is_same_v<W, float>) {
    if (xg)
      throw BackendError("cublas_linear_shared: the SwiGLU input (xg) needs bf16 / fp16 weights");
    for (int i = 0; i < count; ++i) {
      const auto& p = proj[i];
      detail::check_cublas(
          cublasSgemm(ctx.handle, CUBLAS_OP_T, CUBLAS_OP_N, p.out, n_tokens, in, &one, p.w, in, x,
                      static_cast<int>(ldx), &zero, p.y, static_cast<int>(p.ldy)),
          "cublasSgemm");
      epilogue(p, false);
    }
  } else {
    using T = typename detail::CudaWeightType<W>::type;
    constexpr cudaDataType_t kType = detail::CudaWeightType<W>::id;
    const std::int64_t nx = std::int64_t(n_tokens) * in;
    auto gemm = [&](const Projection<W>& p, const T* xs, int rows, const float* beta, float* y,
                    std::int64_t ldy) {
      detail::check_cublas(
          cublasGemmEx(ctx.handle, CUBLAS_OP_T, CUBLAS_OP_N, p.out, rows, in, &one, p.w, kType, in,
                       xs, kType, in, beta, y, CUDA_R_32F, static_cast<int>(ldy),
                       CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
          "cublasGemmEx");
    };
    if (ctx.operands == OperandPrecision::Bf16) {
      auto* xr = static_cast<T*>(ctx.scratch(detail::kScratchLinearInput, nx * sizeof(T)));
      detail::launch_operand_rows<T, false>(x, ldx, xr, n_tokens, in, xg, ldxg, s);
      detail::check_cuda_call(cudaGetLastError(), "rounding the activations");
      for (int i = 0; i < count; ++i) {
        gemm(proj[i], xr, n_tokens, &zero, proj[i].y, proj[i].ldy);
        epilogue(proj[i], false);
      }
      return;
    }
    auto* xs = static_cast<T*>(ctx.scratch(detail::kScratchLinearInput, 2 * nx * sizeof(T)));
    detail::launch_operand_rows<T, true>(x, ldx, xs, n_tokens, in, xg, ldxg, s);
    detail::check_cuda_call(cudaGetLastError(), "splitting the activations");
    for (int i = 0; i < count; ++i) {
      const auto& p = proj[i];
      if (n_tokens < detail::kStackedHalvesMaxTokens) {
        const std::int64_t ny = std::int64_t(n_tokens) * p.out;
        auto* ys = static_cast<float*>(ctx.scratch(detail::kScratchLinearOutput, 2 * ny * 4));
        gemm(p, xs, 2 * n_tokens, &zero, ys, p.out);
        detail::sum_halves<float>
            <<<detail::grid_for(ny), 256, 0, s>>>(p.y, p.ldy, ys, p.b, n_tokens, p.out);
        detail::check_cuda_call(cudaGetLastError(), "summing the halves");
        epilogue(p, true);
      } else {
        gemm(p, xs, n_tokens, &zero, p.y, p.ldy);
        gemm(p, xs + nx, n_tokens, &one, p.y, p.ldy);
        epilogue(p, false);
      }
    }
  }
#endif
}

}  // namespace rodimus::backend::cuda
