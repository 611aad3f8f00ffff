// Host emulation of the raw CUDA kernels (backend/cuda/*.cuh): the kernels' own source,
// compiled by the host compiler, one std::thread per CUDA thread. It checks index math,
// fragment layouts, barriers and algebra on machines without a GPU (CI); speed and the real
// tensor cores are the GPU tests' business. Include this first, then the kernel header.
//
// What is emulated: threadIdx/blockIdx/blockDim/gridDim (thread-local), __syncthreads (a std::barrier per
// block), __shfl_xor_sync, ldmatrix.x4 (plain and .trans) and mma.sync.m16n8k16 bf16 (a
// std::barrier per warp and an exchange buffer; the product is formed from the PTX fragment
// layouts of all 32 lanes, fp32 accumulate), ex2.approx.ftz (exp2f with denormals flushed),
// __uint_as_float, cp.async (a synchronous copy). Blocks run one after another; shared memory
// starts as NaN bytes. Static __shared__ arrays are not emulated (kernels use the dynamic one).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <barrier>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

// The CUDA qualifiers become plain C++.
#undef __global__
#define __global__
#undef __device__
#define __device__
#undef __launch_bounds__
#define __launch_bounds__(...)
#undef __shared__
#define __shared__

namespace emu {

struct Warp {
  std::barrier<> sync{32};
  std::uint32_t regs[32][6];
  float values[32];
  const std::uint32_t* rows[32];
};

thread_local uint3 thread_idx;
thread_local uint3 block_idx;
thread_local dim3 block_dim;
thread_local dim3 grid_dim;
std::barrier<>* block_sync = nullptr;
std::vector<std::unique_ptr<Warp>> warps;

inline Warp& my_warp() { return *warps[thread_idx.x / 32]; }
inline int my_lane() { return static_cast<int>(thread_idx.x % 32); }

inline float bf16_lo(std::uint32_t x) {
  const std::uint32_t b = x << 16;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
inline float bf16_hi(std::uint32_t x) {
  const std::uint32_t b = x & 0xffff0000u;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

}  // namespace emu

#define threadIdx emu::thread_idx
#define blockIdx emu::block_idx
#define blockDim emu::block_dim
#define gridDim emu::grid_dim

inline void __syncthreads() { emu::block_sync->arrive_and_wait(); }

inline float __shfl_xor_sync(unsigned /*mask*/, float v, int lane_mask) {
  emu::Warp& w = emu::my_warp();
  const int lane = emu::my_lane();
  w.values[lane] = v;
  w.sync.arrive_and_wait();
  const float r = w.values[lane ^ lane_mask];
  w.sync.arrive_and_wait();
  return r;
}

inline float __uint_as_float(unsigned x) {
  float f;
  std::memcpy(&f, &x, sizeof f);
  return f;
}

namespace rodimus::backend::cuda::detail {

alignas(16) unsigned char smem[232448];  // the kernel's `extern __shared__` array

// d += a * b, m16n8k16, bf16 in, fp32 accumulate; fragments as in the PTX ISA:
//   a: {A[g][2q..2q+1]}, {A[g+8][2q..]}, {A[g][2q+8..]}, {A[g+8][2q+8..]}
//   b: {B[2q..2q+1][g]}, {B[2q+8..2q+9][g]};  d: D[g][2q], D[g][2q+1], D[g+8][2q], D[g+8][2q+1]
inline void mma_bf16(float (&d)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2]) {
  emu::Warp& w = emu::my_warp();
  const int lane = emu::my_lane();
  for (int r = 0; r < 4; ++r) w.regs[lane][r] = a[r];
  for (int r = 0; r < 2; ++r) w.regs[lane][4 + r] = b[r];
  w.sync.arrive_and_wait();
  float A[16][16], B[16][8];
  for (int l = 0; l < 32; ++l) {
    const int g = l / 4, q = l % 4;
    const std::uint32_t* x = w.regs[l];
    const int rows[4] = {g, g + 8, g, g + 8};
    const int cols[4] = {2 * q, 2 * q, 2 * q + 8, 2 * q + 8};
    for (int r = 0; r < 4; ++r) {
      A[rows[r]][cols[r]] = emu::bf16_lo(x[r]);
      A[rows[r]][cols[r] + 1] = emu::bf16_hi(x[r]);
    }
    for (int r = 0; r < 2; ++r) {
      B[2 * q + 8 * r][g] = emu::bf16_lo(x[4 + r]);
      B[2 * q + 8 * r + 1][g] = emu::bf16_hi(x[4 + r]);
    }
  }
  w.sync.arrive_and_wait();
  const int g = lane / 4, q = lane % 4;
  for (int c = 0; c < 4; ++c) {
    const int row = g + 8 * (c / 2), col = 2 * q + c % 2;
    float s = 0.f;
    for (int kk = 0; kk < 16; ++kk) s += A[row][kk] * B[kk][col];
    d[c] += s;
  }
}

// ldmatrix .x4: lane l gives row l % 8 of tile l / 8; lane l gets word l % 4 of row l / 4 of
// each tile.
inline void ldmatrix_x4(std::uint32_t (&r)[4], const std::uint32_t* row) {
  emu::Warp& w = emu::my_warp();
  const int lane = emu::my_lane();
  w.rows[lane] = row;
  w.sync.arrive_and_wait();
  for (int j = 0; j < 4; ++j) r[j] = w.rows[8 * j + lane / 4][lane % 4];
  w.sync.arrive_and_wait();
}

// ldmatrix .x4 .trans: lane l gets elements (2 (l % 4), l / 4) and (2 (l % 4) + 1, l / 4) of
// each tile (row, column), the first in the low half.
inline void ldmatrix_x4_trans(std::uint32_t (&r)[4], const std::uint32_t* row) {
  emu::Warp& w = emu::my_warp();
  const int lane = emu::my_lane();
  w.rows[lane] = row;
  w.sync.arrive_and_wait();
  const int col = lane / 4, r0 = 2 * (lane % 4);
  for (int j = 0; j < 4; ++j) {
    const auto* h0 = reinterpret_cast<const std::uint16_t*>(w.rows[8 * j + r0]);
    const auto* h1 = reinterpret_cast<const std::uint16_t*>(w.rows[8 * j + r0 + 1]);
    r[j] = std::uint32_t(h0[col]) | (std::uint32_t(h1[col]) << 16);
  }
  w.sync.arrive_and_wait();
}

// cp.async: a synchronous copy (zero fill when !in); commit and wait have nothing to do.
inline void cp_async16(void* dst, const void* src, bool in) {
  if (in) {
    std::memcpy(dst, src, 16);
  } else {
    std::memset(dst, 0, 16);
  }
}
inline void cp_async_commit() {}
template <int Pending = 0>
inline void cp_async_wait() {}
inline void cp_async_wait_all() {}

inline float exp2_approx(float x) {
  const float y = std::exp2(x);
  return y < FLT_MIN ? 0.f : y;
}

}  // namespace rodimus::backend::cuda::detail

#define RODIMUS_CUDA_HOST_EMULATION 1

namespace emu {

namespace rd = rodimus::backend::cuda::detail;

// The launcher of the emulation: runs a kernel over its grid, one block at a time, one
// std::thread per CUDA thread; shared memory starts as NaN bytes for every block.
struct EmuLaunch {
  template <class... KArgs, class... Args>
  void operator()(void (*kernel)(KArgs...), dim3 grid, dim3 block, int shared,
                  Args... args) const {
    if (shared > int(sizeof(rd::smem))) {
      std::fprintf(stderr, "emulated shared memory too small: %d bytes wanted\n", shared);
      std::abort();
    }
    const int nt = static_cast<int>(block.x);
    for (unsigned bz = 0; bz < grid.z; ++bz)
      for (unsigned by = 0; by < grid.y; ++by)
        for (unsigned bx = 0; bx < grid.x; ++bx) {
          std::barrier<> blk(nt);
          emu::block_sync = &blk;
          emu::warps.clear();
          for (int w = 0; w < (nt + 31) / 32; ++w)
            emu::warps.push_back(std::make_unique<emu::Warp>());
          std::memset(rd::smem, 0xff, sizeof(rd::smem));  // NaN garbage, as a fresh GPU might hold
          std::vector<std::thread> threads;
          for (int t = 0; t < nt; ++t)
            threads.emplace_back([&, t] {
              emu::thread_idx = uint3{unsigned(t), 0u, 0u};
              emu::block_idx = uint3{bx, by, bz};
              emu::block_dim = block;
              emu::grid_dim = grid;
              kernel(static_cast<KArgs>(args)...);
            });
          for (auto& th : threads) th.join();
        }
  }
};

}  // namespace emu
