// Linear layers on Kokkos::Cuda through cuBLAS: y = x W^T + b with bf16 / fp16 weights as
// tensor-core GEMMs (activations rounded to the weight type, fp32 accumulation and output) and
// fp32 weights as a plain fp32 SGEMM (no TF32, so fp32 models keep fp32 accuracy).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

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

inline void check_cublas(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw BackendError(std::string("rodimus::backend::cuda::linear: ") + what + " failed (" +
                       cublasGetStatusString(status) + ")");
}

inline void check_cuda_call(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw BackendError(std::string("rodimus::backend::cuda::linear: ") + what + ": " +
                       cudaGetErrorString(err));
}

/// The process's cuBLAS handle and the device scratch that holds activations rounded to the
/// weight type (grows only; decode steps of a fixed batch allocate nothing). Created on first
/// use, released by a Kokkos finalize hook, before the CUDA context goes away. Guarded by the
/// callers' launch discipline: one host thread launches a model's kernels at a time.
struct CublasContext {
  cublasHandle_t handle = nullptr;
  void* scratch = nullptr;
  std::size_t scratch_bytes = 0;

  static CublasContext& get() {
    static CublasContext* ctx = [] {
      auto* c = new CublasContext;
      check_cublas(cublasCreate(&c->handle), "cublasCreate");
      // fp32 GEMMs stay fp32: no TF32 tensor cores unless the caller's data is bf16 / fp16
      check_cublas(cublasSetMathMode(c->handle, CUBLAS_PEDANTIC_MATH), "cublasSetMathMode");
      Kokkos::push_finalize_hook([c] {
        if (c->scratch) cudaFree(c->scratch);
        cublasDestroy(c->handle);
        c->handle = nullptr;
        c->scratch = nullptr;
        c->scratch_bytes = 0;
      });
      return c;
    }();
    if (!ctx->handle) check_cublas(cublasCreate(&ctx->handle), "cublasCreate");
    return *ctx;
  }

  void* scratch_for(std::size_t bytes) {
    if (bytes > scratch_bytes) {
      if (scratch) check_cuda_call(cudaFree(scratch), "cudaFree");
      scratch = nullptr;
      scratch_bytes = 0;
      check_cuda_call(cudaMalloc(&scratch, bytes), "cudaMalloc of the activation scratch");
      scratch_bytes = bytes;
    }
    return scratch;
  }
};

template <class T>
__device__ inline T from_f32(float x) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return __float2bfloat16_rn(x);
  } else {
    return __float2half_rn(x);
  }
}

/// y[r, c] = T(x[r * ldx + c]) for r < rows, c < cols; y dense [rows, cols].
template <class T>
__global__ void round_rows(const float* __restrict__ x, std::int64_t ldx, T* __restrict__ y,
                           std::int64_t rows, std::int64_t cols) {
  const std::int64_t n = rows * cols;
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t r = i / cols, c = i - r * cols;
    y[i] = from_f32<T>(x[r * ldx + c]);
  }
}

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

inline unsigned grid_for(std::int64_t n) {
  const std::int64_t blocks = (n + 255) / 256;
  return static_cast<unsigned>(blocks < 4096 ? (blocks > 0 ? blocks : 1) : 4096);
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

/// y[0:N] = x[0:N] W^T + b on `stream` with cuBLAS, all pointers device memory, row-major:
/// x: [N, in] (leading dimension ldx), w: [out, in] dense, b: [out] or null,
/// y: [N, out] (leading dimension ldy). bf16 / fp16 weights: tensor-core GEMM on activations
/// rounded to the weight type, fp32 accumulation; fp32 weights: fp32 SGEMM. Asynchronous.
/// Throws BackendError on a CUDA or cuBLAS error. Only in CUDA translation units.
template <StorageType W>
void cublas_linear([[maybe_unused]] const float* x, [[maybe_unused]] std::int64_t ldx,
                   [[maybe_unused]] const W* w, [[maybe_unused]] const float* b,
                   [[maybe_unused]] float* y, [[maybe_unused]] std::int64_t ldy,
                   [[maybe_unused]] int n_tokens, [[maybe_unused]] int in, [[maybe_unused]] int out,
                   [[maybe_unused]] void* stream) {
#if RODIMUS_CUDA_KERNELS
  auto& ctx = detail::CublasContext::get();
  const auto s = static_cast<cudaStream_t>(stream);
  detail::check_cublas(cublasSetStream(ctx.handle, s), "cublasSetStream");
  const float one = 1.f, zero = 0.f;
  // Column-major view: y^T [out, N] = W [in, out]^T x^T [in, N].
  if constexpr (std::is_same_v<W, float>) {
    detail::check_cublas(
        cublasSgemm(ctx.handle, CUBLAS_OP_T, CUBLAS_OP_N, out, n_tokens, in, &one, w, in, x,
                    static_cast<int>(ldx), &zero, y, static_cast<int>(ldy)),
        "cublasSgemm");
  } else {
    using T = typename detail::CudaWeightType<W>::type;
    constexpr cudaDataType_t kType = detail::CudaWeightType<W>::id;
    auto* xr = static_cast<T*>(ctx.scratch_for(std::size_t(n_tokens) * in * sizeof(T)));
    const std::int64_t nx = std::int64_t(n_tokens) * in;
    detail::round_rows<T><<<detail::grid_for(nx), 256, 0, s>>>(x, ldx, xr, n_tokens, in);
    detail::check_cuda_call(cudaGetLastError(), "rounding the activations");
    detail::check_cublas(
        cublasGemmEx(ctx.handle, CUBLAS_OP_T, CUBLAS_OP_N, out, n_tokens, in, &one, w, kType, in,
                     xr, kType, in, &zero, y, CUDA_R_32F, static_cast<int>(ldy), CUBLAS_COMPUTE_32F,
                     CUBLAS_GEMM_DEFAULT),
        "cublasGemmEx");
  }
  if (b) {
    const std::int64_t ny = std::int64_t(n_tokens) * out;
    detail::add_bias_rows<float><<<detail::grid_for(ny), 256, 0, s>>>(y, ldy, b, n_tokens, out);
    detail::check_cuda_call(cudaGetLastError(), "adding the bias");
  }
#endif
}

/// y = x W^T on `stream` for activations already in the weight type (no rounding pass): the
/// plain tensor-core GEMM, for roofline measurements. x: [N, in], w: [out, in], y: [N, out],
/// all dense, device memory, fp32 accumulation and output.
template <StorageType W>
void cublas_gemm_rows([[maybe_unused]] const W* x, [[maybe_unused]] const W* w,
                      [[maybe_unused]] float* y, [[maybe_unused]] int n_tokens,
                      [[maybe_unused]] int in, [[maybe_unused]] int out,
                      [[maybe_unused]] void* stream) {
#if RODIMUS_CUDA_KERNELS
  auto& ctx = detail::CublasContext::get();
  detail::check_cublas(cublasSetStream(ctx.handle, static_cast<cudaStream_t>(stream)),
                       "cublasSetStream");
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

}  // namespace rodimus::backend::cuda
