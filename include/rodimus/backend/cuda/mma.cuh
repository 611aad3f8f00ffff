// Warp-level tensor-core primitives of the raw CUDA kernels (gla_chunk_scan.cuh,
// flash_attention.cuh): mma.sync m16n8k16 bf16 with its fragment loaders (ldmatrix), cp.async,
// the MUFU exp2, and fp32 -> bf16 hi / lo splitting. Fragment layouts are the PTX ISA's:
//   A (16 x 16, row): a0 {A[g][2q..2q+1]}, a1 {A[g+8][2q..]}, a2 {A[g][2q+8..]}, a3 {A[g+8][2q+8..]}
//   B (16 x 8, col):  b0 {B[2q..2q+1][g]}, b1 {B[2q+8..2q+9][g]}
//   C / D (16 x 8):   D[g][2q], D[g][2q+1], D[g+8][2q], D[g+8][2q+1]
// with g = lane / 4, q = lane % 4; a pair of bf16 in one 32-bit word, element 0 in the low half.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>

namespace rodimus::backend::cuda::detail {

// RODIMUS_CUDA_HOST_EMULATION: the host emulators (tests/cuda/emulator.hpp) compile the kernels
// as host code (one std::thread per CUDA thread) and supply these instructions themselves.
#ifndef RODIMUS_CUDA_HOST_EMULATION
/// bf16 m16n8k16 tensor-core product, fp32 accumulate: d += a * b (PTX fragment layouts).
__device__ __forceinline__ void mma_bf16(float (&d)[4], const std::uint32_t (&a)[4],
                                         const std::uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

/// 2^x with the MUFU (relative error ~2^-22; 0 for large negative x).
__device__ __forceinline__ float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

/// 16-byte asynchronous copy global -> shared (sm_80+); zero-fills the 16 bytes when !in.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool in) {
  const auto d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src),
               "r"(in ? 16 : 0));
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

/// Waits until at most `Pending` of this thread's committed copy groups are in flight; a
/// barrier then makes every thread's finished copies visible.
template <int Pending = 0>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending) : "memory");
}
__device__ __forceinline__ void cp_async_wait_all() { cp_async_wait<0>(); }

/// ldmatrix .x4: four 8x8 bf16 tiles from shared memory; lane l gives the address of row
/// l % 8 of tile l / 8 (16 bytes); register j of lane l holds word l % 4 of row l / 4 of tile j.
__device__ __forceinline__ void ldmatrix_x4(std::uint32_t (&r)[4], const std::uint32_t* row) {
  const auto a = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}

/// ldmatrix .x4 .trans: as ldmatrix_x4, each 8x8 tile transposed: register j of lane l holds
/// elements (row 2 (l % 4), column l / 4) and (row 2 (l % 4) + 1, column l / 4) of tile j.
__device__ __forceinline__ void ldmatrix_x4_trans(std::uint32_t (&r)[4], const std::uint32_t* row) {
  const auto a = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}
#endif  // RODIMUS_CUDA_HOST_EMULATION

/// The m16n8k16 A fragment at rows r0 .. r0 + 15, words w0 .. w0 + 7 (k = 16 bf16) of a
/// row-major bf16-pair matrix with rows of `ld` words (16-byte aligned rows).
__device__ __forceinline__ void frag_a(std::uint32_t (&r)[4], const std::uint32_t* m, int ld,
                                       int r0, int w0, int lane) {
  ldmatrix_x4(r, m + (r0 + lane % 8 + 8 * ((lane / 8) % 2)) * ld + w0 + 4 * (lane / 16));
}

/// Two m16n8k16 B fragments, n-tiles n0 .. n0 + 7 (r[0], r[1]) and n0 + 8 .. n0 + 15 (r[2],
/// r[3]), k = words w0 .. w0 + 7, of B stored transposed: row-major [n][k] with rows of `ld`
/// words.
__device__ __forceinline__ void frag_b2(std::uint32_t (&r)[4], const std::uint32_t* m, int ld,
                                        int n0, int w0, int lane) {
  ldmatrix_x4(r, m + (n0 + lane % 8 + 8 * (lane / 16)) * ld + w0 + 4 * ((lane / 8) % 2));
}

/// Two m16n8k16 B fragments, n-tiles at words w0 .. w0 + 3 (r[0], r[1]) and w0 + 4 .. w0 + 7
/// (r[2], r[3]), k = rows k0 .. k0 + 15, of B stored as it is: row-major [k][n] with rows of
/// `ld` words (the value tile of an attention: k = keys, n = head dims).
__device__ __forceinline__ void frag_b2_trans(std::uint32_t (&r)[4], const std::uint32_t* m, int ld,
                                              int k0, int w0, int lane) {
  ldmatrix_x4_trans(r, m + (k0 + lane % 8 + 8 * ((lane / 8) % 2)) * ld + w0 + 4 * (lane / 16));
}

__device__ __forceinline__ std::uint32_t bits(__nv_bfloat162 v) {
  std::uint32_t r;
  memcpy(&r, &v, sizeof r);
  return r;
}

/// Two floats to packed bf16 pairs hi = bf16(x), lo = bf16(x - hi); element 0 in the low half.
__device__ __forceinline__ void split2(float x0, float x1, std::uint32_t& hi, std::uint32_t& lo) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(x0, x1);
  hi = bits(h);
  lo = bits(__floats2bfloat162_rn(x0 - __low2float(h), x1 - __high2float(h)));
}

}  // namespace rodimus::backend::cuda::detail
