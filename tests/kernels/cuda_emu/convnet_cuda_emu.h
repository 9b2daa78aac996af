// A CPU stand-in for the parts of CUDA that csrc/cuda uses, so the kernels can run (slowly,
// on host threads) where there is no GPU: tests/kernels/test_cuda_emulated.py compiles
// csrc/cuda/*.cu and csrc/bind_cuda.cpp with g++ against this header and runs the CUDA
// tests' comparisons through it. Each block runs as blockDim real threads (so
// __syncthreads and warp shuffles are real barriers); blocks run one after another, which
// lets __shared__ be a plain static. "Device" pointers are host pointers.
//
// What this cannot show: anything about the GPU's memory model, timing, or warp-synchronous
// behaviour the kernels do not rely on. It checks the index arithmetic, the tile mappings,
// the edge handling and the reductions.
#pragma once

#include <math.h>

#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <tuple>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
#define __restrict__ __restrict

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
  unsigned x = 0, y = 0, z = 0;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(16) double2 {
  double x, y;
};
struct alignas(16) int4 {
  int x, y, z, w;
};

typedef int cudaError_t;
typedef struct CUstream_st* cudaStream_t;
constexpr cudaError_t cudaSuccess = 0;
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16 };
struct cudaDeviceProp {
  char name[256];
  int major, minor, multiProcessorCount;
  std::size_t totalGlobalMem;
};

namespace convnet_emu {

// SM count the launch heuristics see (CONVNET_EMU_SMS, default 4: small grids, so the
// 128x128 tiles and the split-K paths are reached with small problems).
inline int sms() {
  const char* s = std::getenv("CONVNET_EMU_SMS");
  return s ? std::atoi(s) : 4;
}

struct Block {
  explicit Block(int n) : bar(n), warps((n + 31) / 32), slots(((n + 31) / 32) * 32) {
    for (int w = 0; w < (n + 31) / 32; ++w)
      warps[w] = std::make_unique<std::barrier<>>(std::min(32, n - 32 * w));
  }
  std::barrier<> bar;
  std::vector<std::unique_ptr<std::barrier<>>> warps;
  std::vector<std::uint64_t> slots;
};

inline thread_local uint3 thread_idx, block_idx;
inline thread_local Block* block = nullptr;
inline dim3 block_dim, grid_dim;
inline std::mutex atomic_lock;

// CONVNET_LAUNCH(grid, block, smem, stream, kernel)(args...): every block in turn, each
// with blockDim threads that call the kernel on their own copies of the arguments.
template <class F>
struct Launcher {
  dim3 grid, blk;
  F f;
  Launcher(dim3 g, dim3 b, F fn) : grid(g), blk(b), f(fn) {}
  template <class... A>
  void operator()(const A&... args) const {
    const int n = int(blk.x * blk.y * blk.z);
    block_dim = blk;
    grid_dim = grid;
    for (unsigned bz = 0; bz < grid.z; ++bz)
      for (unsigned by = 0; by < grid.y; ++by)
        for (unsigned bx = 0; bx < grid.x; ++bx) {
          Block ctx(n);
          std::vector<std::thread> threads;
          threads.reserve(n);
          for (int t = 0; t < n; ++t)
            threads.emplace_back([&, t] {
              thread_idx = uint3{unsigned(t) % blk.x, (unsigned(t) / blk.x) % blk.y,
                                 unsigned(t) / (blk.x * blk.y)};
              block_idx = uint3{bx, by, bz};
              block = &ctx;
              std::tuple<A...> copies(args...);
              std::apply(f, copies);
            });
          for (auto& th : threads) th.join();
        }
  }
};

}  // namespace convnet_emu

#define threadIdx (::convnet_emu::thread_idx)
#define blockIdx (::convnet_emu::block_idx)
#define blockDim (::convnet_emu::block_dim)
#define gridDim (::convnet_emu::grid_dim)

inline void __syncthreads() { convnet_emu::block->bar.arrive_and_wait(); }

template <typename T>
inline T __shfl_xor_sync(unsigned, T v, int lane_mask) {
  static_assert(sizeof(T) <= 8, "one slot per lane");
  auto* b = convnet_emu::block;
  const unsigned t = threadIdx.x, warp = t / 32, lane = t % 32;
  std::uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  b->slots[t] = bits;
  b->warps[warp]->arrive_and_wait();
  const std::uint64_t other = b->slots[warp * 32 + (lane ^ unsigned(lane_mask))];
  b->warps[warp]->arrive_and_wait();  // nobody overwrites a slot before all have read
  T out;
  std::memcpy(&out, &other, sizeof(T));
  return out;
}

template <typename T>
inline T __ldg(const T* p) {
  return *p;
}

template <typename T>
inline T atomicAdd(T* p, T v) {
  std::lock_guard<std::mutex> g(convnet_emu::atomic_lock);
  const T old = *p;
  *p = old + v;
  return old;
}

using std::fma;
using std::max;
using std::min;

inline const char* cudaGetErrorName(cudaError_t) { return "cudaErrorEmulated"; }
inline const char* cudaGetErrorString(cudaError_t) { return "emulated error"; }
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaSetDevice(int) { return cudaSuccess; }
inline cudaError_t cudaGetDevice(int* d) {
  *d = 0;
  return cudaSuccess;
}
inline cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr, int) {
  *v = convnet_emu::sms();
  return cudaSuccess;
}
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int) {
  std::memset(p, 0, sizeof(*p));
  std::strcpy(p->name, "convnet CPU emulator");
  p->major = 9;
  p->multiProcessorCount = convnet_emu::sms();
  p->totalGlobalMem = std::size_t(1) << 30;
  return cudaSuccess;
}
inline cudaError_t cudaDriverGetVersion(int* v) {
  *v = 13000;
  return cudaSuccess;
}
inline cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = 13000;
  return cudaSuccess;
}
// Fills the bytes before returning; the emulated "stream" is the caller's thread.
inline cudaError_t cudaMemsetAsync(void* p, int value, std::size_t n, cudaStream_t) {
  std::memset(p, value, n);
  return cudaSuccess;
}
