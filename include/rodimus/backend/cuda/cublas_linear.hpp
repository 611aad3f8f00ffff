// Linear layers on Kokkos::Cuda through cuBLAS: y = x W^T + b with bf16 / fp16 weights as
// tensor-core GEMMs (fp32 activations split into two halves of the weight type, fp32
// accumulation and output) and fp32 weights as a plain fp32 SGEMM (no TF32, so fp32 models
// keep fp32 accuracy).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "rodimus/backend/cuda/context.hpp"
#include "rodimus/backend/cuda/split_operands.hpp"
#include "rodimus/backend/exec_space_traits.hpp"
#include "rodimus/core/dtype.hpp"
#include "rodimus/core/error.hpp"

#if RODIMUS_CUDA_KERNELS
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#endif

namespace rodimus::backend::cuda {

#if RODIMUS_CUDA_KERNELS
namespace detail {

/// x = hi + lo with hi = T(x), lo = T(x - hi): xs[r] = hi of row r, xs[rows + r] = its lo, for
/// r < rows, c < cols; xs dense [2 rows, cols]. Two halves carry about 16 bits of mantissa.
template <class T>
__global__ void split_rows(const float* __restrict__ x, std::int64_t ldx, T* __restrict__ xs,
                           std::int64_t rows, std::int64_t cols) {
  const std::int64_t n = rows * cols;
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t r = i / cols, c = i - r * cols;
    const float v = x[r * ldx + c];
    split_halves(v, xs[i], xs[n + i]);
  }
}

/// xs[r, c] = T(x[r * ldx + c]) (rounded to nearest), xs dense [rows, cols].
template <class T>
__global__ void round_rows(const float* __restrict__ x, std::int64_t ldx, T* __restrict__ xs,
                           std::int64_t rows, std::int64_t cols) {
  const std::int64_t n = rows * cols;
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t r = i / cols, c = i - r * cols;
    xs[i] = from_f32<T>(x[r * ldx + c]);
  }
}

/// y[r * ldy + c] = ys[r, c] + ys[rows + r, c] (+ b[c]); ys dense [2 rows, cols].
template <class T>
__global__ void sum_halves(T* __restrict__ y, std::int64_t ldy, const T* __restrict__ ys,
                           const T* __restrict__ b, std::int64_t rows, std::int64_t cols) {
  const std::int64_t n = rows * cols;
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t r = i / cols, c = i - r * cols;
    y[r * ldy + c] = ys[i] + ys[n + i] + (b ? b[c] : T(0));
  }
}

/// Fewer tokens than this: the halves stacked as 2N rows of one GEMM (weights read once: the
/// product is memory-bound below the tensor cores' ridge, ~230 FLOP per weight byte on an
/// H200); this many or more: two GEMMs accumulating into y (no partial buffer, no summing pass).
inline constexpr int kStackedHalvesMaxTokens = 256;

/// y[r * ldy + c] += b[c].
template <class T>
__global__ void add_bias_rows(T* __restrict__ y, std::int64_t ldy, const T* __restrict__ b,
                              std::int64_t rows, std::int64_t cols) {
  const std::int64_t n = rows * cols;
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t r = i / cols, c = i - r * cols;
    y[r * ldy + c] += b[c];
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
/// plain tensor-core GEMM behind cublas_linear, also timed by the roofline measurements. x: [N,
/// in], w: [out, in], y: [N, out], all dense, device memory, fp32 accumulation and output.
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

#if RODIMUS_CUDA_KERNELS
namespace detail {

/// y = x W^T with the activations rounded once to the weight type: one GEMM straight into y.
template <StorageType W>
void linear_rounded(CudaContext& ctx, const float* x, std::int64_t ldx, const W* w, float* y,
                    std::int64_t ldy, int n_tokens, int in, int out, cudaStream_t s) {
  using T = typename CudaWeightType<W>::type;
  constexpr cudaDataType_t kType = CudaWeightType<W>::id;
  const float one = 1.f, zero = 0.f;
  const std::int64_t nx = std::int64_t(n_tokens) * in;
  auto* xr = static_cast<T*>(ctx.scratch(kScratchLinearInput, nx * sizeof(T)));
  round_rows<T><<<grid_for(nx), 256, 0, s>>>(x, ldx, xr, n_tokens, in);
  check_cuda_call(cudaGetLastError(), "rounding the activations");
  check_cublas(cublasGemmEx(ctx.handle, CUBLAS_OP_T, CUBLAS_OP_N, out, n_tokens, in, &one, w,
                            kType, in, xr, kType, in, &zero, y, CUDA_R_32F,
                            static_cast<int>(ldy), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
               "cublasGemmEx");
}

/// y = x W^T with the activations in two halves of the weight type: x keeps ~16 bits of
/// mantissa, so the result is the fp32-activation product to ~1e-5 (the host's numerics). Few
/// tokens (batch decode): the halves stacked as 2N rows of one GEMM, weights read once, then a
/// pass adds the halves and the bias (returns false: the bias is in y). Many tokens (prefill,
/// compute-bound): hi then lo as two GEMMs accumulating into y (beta = 0, then 1; returns
/// true: the bias is still to add). (1-8 tokens take the GEMV, not this path.)
template <StorageType W>
bool linear_split(CudaContext& ctx, const float* x, std::int64_t ldx, const W* w, const float* b,
                  float* y, std::int64_t ldy, int n_tokens, int in, int out, cudaStream_t s) {
  using T = typename CudaWeightType<W>::type;
  constexpr cudaDataType_t kType = CudaWeightType<W>::id;
  const float one = 1.f, zero = 0.f;
  const std::int64_t nx = std::int64_t(n_tokens) * in;
  auto* xs = static_cast<T*>(ctx.scratch(kScratchLinearInput, 2 * nx * sizeof(T)));
  split_rows<T><<<grid_for(nx), 256, 0, s>>>(x, ldx, xs, n_tokens, in);
  check_cuda_call(cudaGetLastError(), "splitting the activations");
  if (n_tokens < kStackedHalvesMaxTokens) {
    const std::int64_t ny = std::int64_t(n_tokens) * out;
    auto* ys = static_cast<float*>(ctx.scratch(kScratchLinearOutput, 2 * ny * 4));
    check_cublas(cublasGemmEx(ctx.handle, CUBLAS_OP_T, CUBLAS_OP_N, out, 2 * n_tokens, in, &one,
                              w, kType, in, xs, kType, in, &zero, ys, CUDA_R_32F, out,
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "cublasGemmEx");
    sum_halves<float><<<grid_for(ny), 256, 0, s>>>(y, ldy, ys, b, n_tokens, out);
    check_cuda_call(cudaGetLastError(), "summing the halves");
    return false;
  }
  for (int half = 0; half < 2; ++half)
    check_cublas(cublasGemmEx(ctx.handle, CUBLAS_OP_T, CUBLAS_OP_N, out, n_tokens, in, &one, w,
                              kType, in, xs + half * nx, kType, in, half == 0 ? &zero : &one, y,
                              CUDA_R_32F, static_cast<int>(ldy), CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT),
                 "cublasGemmEx");
  return true;
}

}  // namespace detail
#endif  // RODIMUS_CUDA_KERNELS

/// y[0:N] = x[0:N] W^T + b on `stream` with cuBLAS, all pointers device memory, row-major:
/// x: [N, in] (leading dimension ldx), w: [out, in] dense, b: [out] or null,
/// y: [N, out] (leading dimension ldy). bf16 / fp16 weights: tensor-core GEMMs on the
/// activations' hi and lo halves in the weight type (fp32 accumulation): stacked as 2N rows of
/// one GEMM below kStackedHalvesMaxTokens tokens, two GEMMs accumulating into y from there;
/// with OperandPrecision::Bf16 in the context (OperandPrecisionScope) the activations rounded
/// once to the weight type and one GEMM; fp32 weights: fp32 SGEMM. Asynchronous.
/// Throws BackendError on a CUDA or cuBLAS error. Only in CUDA translation units.
template <StorageType W>
void cublas_linear([[maybe_unused]] const float* x, [[maybe_unused]] std::int64_t ldx,
                   [[maybe_unused]] const W* w, [[maybe_unused]] const float* b,
                   [[maybe_unused]] float* y, [[maybe_unused]] std::int64_t ldy,
                   [[maybe_unused]] int n_tokens, [[maybe_unused]] int in, [[maybe_unused]] int out,
                   [[maybe_unused]] void* stream) {
#if RODIMUS_CUDA_KERNELS
  auto& ctx = detail::CudaContext::get();
  const auto s = static_cast<cudaStream_t>(stream);
  ctx.blas_on(s);
  const float one = 1.f, zero = 0.f;
  // Column-major view: y^T [out, N] = W [in, out]^T x^T [in, N].
  if constexpr (std::is_same_v<W, float>) {
    detail::check_cublas(
        cublasSgemm(ctx.handle, CUBLAS_OP_T, CUBLAS_OP_N, out, n_tokens, in, &one, w, in, x,
                    static_cast<int>(ldx), &zero, y, static_cast<int>(ldy)),
        "cublasSgemm");
  } else if (ctx.operands == OperandPrecision::Bf16) {
    detail::linear_rounded<W>(ctx, x, ldx, w, y, ldy, n_tokens, in, out, s);
  } else if (!detail::linear_split<W>(ctx, x, ldx, w, b, y, ldy, n_tokens, in, out, s)) {
    return;  // the bias is in y already
  }
  if (b) {
    const std::int64_t ny = std::int64_t(n_tokens) * out;
    detail::add_bias_rows<float><<<detail::grid_for(ny), 256, 0, s>>>(y, ldy, b, n_tokens, out);
    detail::check_cuda_call(cudaGetLastError(), "adding the bias");
  }
#endif
}

}  // namespace rodimus::backend::cuda
