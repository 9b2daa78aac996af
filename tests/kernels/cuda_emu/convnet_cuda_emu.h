// A CPU stand-in for the parts of CUDA that csrc/cuda uses, so the kernels can run (slowly,
// on host threads) where there is no GPU: tests/kernels/test_cuda_emulated.py compiles
// csrc/cuda/*.cu and csrc/bind_cuda.cpp with g++ against this header and runs the CUDA
// tests' comparisons through it. "Device" pointers are host pointers.
//
// It is strict where a lenient stand-in would hide bugs that real hardware shows:
// - each block runs as blockDim real threads (__syncthreads and warp shuffles are real
//   barriers), several blocks at once, in a shuffled order (CONVNET_EMU_SEED,
//   CONVNET_EMU_BLOCKS_IN_FLIGHT): a kernel that depends on block order, or that updates
//   memory another block updates without an atomic, is exposed (built with
//   -fsanitize=thread, every such race is reported, see test_cuda_emulated.py);
// - __shared__ memory is per block and starts as NaN (all bits set) at each block's
//   start, so a read of a slot nobody wrote poisons the result; more than 48 KiB of static
//   shared memory per block is a launch error, as is a block larger than the kernel's
//   __launch_bounds__;
// - cp.async copies land only at cp.async.wait_all: a missing wait reads stale or NaN data.
// The test build rewrites each `__shared__ T name[...];` into a reference to this block's
// arena (convnet_emu::shared) and each `__launch_bounds__(...)` into a check at kernel
// entry (convnet_emu::launch_bounds); see _rewrite in test_cuda_emulated.py.
//
// What this cannot show: timing, the memory model beyond "no ordering between blocks
// without atomics", or warp-synchronous behaviour the kernels do not rely on.
#pragma once

#include <math.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __align__(n) __attribute__((aligned(n)))
#define __restrict__ __restrict
// Left in a source the test build did not rewrite, these stop the compilation: a plain
// static would be shared by the blocks that now run concurrently.
#define __shared__ static_assert(false, "__shared__ must be rewritten by the emulated build");
#define __launch_bounds__(...) \
  static_assert(false, "__launch_bounds__ must be rewritten by the emulated build");

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
struct alignas(16) uint4 {
  unsigned x, y, z, w;
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

inline int env_int(const char* name, int fallback) {
  const char* s = std::getenv(name);
  return s && *s ? std::atoi(s) : fallback;
}

// SM count the launch heuristics see (CONVNET_EMU_SMS, default 4: small grids, so the
// 128x128 tiles and the split-K paths are reached with small problems).
inline int sms() { return env_int("CONVNET_EMU_SMS", 4); }

// The static shared memory a block may declare without opting in (sm_70 and later).
constexpr std::size_t kSharedLimit = 48 * 1024;

struct Block {
  explicit Block(int n)
      : bar(n), warps((n + 31) / 32), slots(((n + 31) / 32) * 32), lanes(slots.size()),
        lane_ptr(slots.size()) {
    for (int w = 0; w < (n + 31) / 32; ++w)
      warps[w] = std::make_unique<std::barrier<>>(std::min(32, n - 32 * w));
    std::memset(smem, 0xff, sizeof(smem));  // every float and double slot is a NaN
  }
  std::barrier<> bar;
  std::vector<std::unique_ptr<std::barrier<>>> warps;
  std::vector<std::uint64_t> slots;
  std::vector<std::array<std::uint32_t, 10>> lanes;  // tensor-core operands, per thread
  std::vector<const void*> lane_ptr;                  // ldmatrix row addresses, per thread
  std::mutex smem_lock;
  std::vector<std::pair<const void*, std::size_t>> smem_vars;  // declaration -> offset
  std::size_t smem_used = 0;
  alignas(128) unsigned char smem[kSharedLimit];
};

struct PendingCopy {
  void* dst;
  const void* src;
  int bytes;
  long group;  // -1 until cp.async.commit_group closes it
};

inline thread_local uint3 thread_idx, block_idx;
inline thread_local dim3 block_dim, grid_dim;
inline thread_local Block* block = nullptr;
inline thread_local std::vector<PendingCopy> pending_copies;
inline thread_local long committed_groups = 0;
inline std::mutex atomic_lock;

// The storage of one `__shared__ T name` declaration (`key` tells declarations apart) in
// this block's arena: the first thread to reach it places it, the others find it.
template <typename T, std::size_t Align = alignof(T)>
T& shared(const void* key) {
  Block& b = *block;
  std::lock_guard<std::mutex> g(b.smem_lock);
  for (const auto& [k, off] : b.smem_vars)
    if (k == key) return *reinterpret_cast<T*>(b.smem + off);
  constexpr std::size_t align = Align > 16 ? Align : 16;
  const std::size_t off = (b.smem_used + align - 1) / align * align;
  if (off + sizeof(T) > kSharedLimit)
    throw std::runtime_error("too much static shared memory: " +
                             std::to_string(off + sizeof(T)) + " bytes in one block, the "
                             "limit is 49152");
  b.smem_used = off + sizeof(T);
  b.smem_vars.emplace_back(key, off);
  return *reinterpret_cast<T*>(b.smem + off);
}

// __launch_bounds__(max_threads[, min_blocks]): a larger block fails to launch on a GPU.
inline void launch_bounds(long max_threads, long = 0, long = 0) {
  const long n = long(block_dim.x) * block_dim.y * block_dim.z;
  if (n > max_threads)
    throw std::runtime_error("launch of " + std::to_string(n) + " threads per block exceeds "
                             "the kernel's __launch_bounds__(" + std::to_string(max_threads) +
                             ")");
}

// cp.async: queued by the issuing thread, landed (the bytes past `bytes` zero-filled) only
// when that thread waits.
inline void cp_async16(void* smem, const void* gmem, int bytes) {
  if (bytes < 0 || bytes > 16) throw std::runtime_error("cp.async: src-size outside [0, 16]");
  if (reinterpret_cast<std::uintptr_t>(smem) % 16 || (bytes && reinterpret_cast<std::uintptr_t>(gmem) % 16))
    throw std::runtime_error("cp.async.cg of 16 bytes from or to an address not 16-byte aligned");
  pending_copies.push_back({smem, gmem, bytes, -1});
}
inline void land(const PendingCopy& c) {
  std::memcpy(c.dst, c.src, std::size_t(c.bytes));
  std::memset(static_cast<char*>(c.dst) + c.bytes, 0, std::size_t(16 - c.bytes));
}
inline void cp_async_wait_all() {
  for (const PendingCopy& c : pending_copies) land(c);
  pending_copies.clear();
}
// cp.async.commit_group: the copies issued since the last commit become one group.
inline void cp_async_commit() {
  for (PendingCopy& c : pending_copies)
    if (c.group < 0) c.group = committed_groups;
  ++committed_groups;
}
// cp.async.wait_group n: every group but the n most recent ones lands (copies not yet
// committed are not waited for, as on the GPU).
inline void cp_async_wait_group(int n) {
  std::vector<PendingCopy> still;
  for (const PendingCopy& c : pending_copies) {
    if (c.group >= 0 && c.group < committed_groups - n)
      land(c);
    else
      still.push_back(c);
  }
  pending_copies.swap(still);
}

// Launches are numbered so that each one shuffles its blocks differently, reproducibly
// for a given CONVNET_EMU_SEED.
inline std::atomic<std::uint64_t> launch_count{0};

// CONVNET_LAUNCH(grid, block, smem, stream, kernel)(args...): the blocks in a shuffled
// order, CONVNET_EMU_BLOCKS_IN_FLIGHT (default 4) at a time, each as blockDim threads
// that call the kernel on their own copies of the arguments. The first error a thread
// throws is rethrown here, after every block has stopped.
template <class F>
struct Launcher {
  dim3 grid, blk;
  F f;
  Launcher(dim3 g, dim3 b, F fn) : grid(g), blk(b), f(fn) {}
  template <class... A>
  void operator()(const A&... args) const {
    const int n = int(blk.x * blk.y * blk.z);
    std::vector<uint3> order;
    for (unsigned bz = 0; bz < grid.z; ++bz)
      for (unsigned by = 0; by < grid.y; ++by)
        for (unsigned bx = 0; bx < grid.x; ++bx) order.push_back(uint3{bx, by, bz});
    std::mt19937_64 rng(std::uint64_t(env_int("CONVNET_EMU_SEED", 0)) * 1000003u +
                        launch_count++);
    std::shuffle(order.begin(), order.end(), rng);
    const int in_flight = std::max(
        1, std::min(env_int("CONVNET_EMU_BLOCKS_IN_FLIGHT", 4), int(order.size())));
    std::atomic<std::size_t> next{0};
    std::mutex err_lock;
    std::string error;
    auto run_block = [&](uint3 bidx) {
      auto ctx = std::make_unique<Block>(n);
      std::vector<std::thread> threads;
      threads.reserve(n);
      for (int t = 0; t < n; ++t)
        threads.emplace_back([&, t] {
          thread_idx = uint3{unsigned(t) % blk.x, (unsigned(t) / blk.x) % blk.y,
                             unsigned(t) / (blk.x * blk.y)};
          block_idx = bidx;
          block_dim = blk;
          grid_dim = grid;
          block = ctx.get();
          pending_copies.clear();
          committed_groups = 0;
          try {
            std::tuple<A...> copies(args...);
            std::apply(f, copies);
          } catch (const std::exception& e) {
            {
              std::lock_guard<std::mutex> g(err_lock);
              if (error.empty()) error = e.what();
            }
            // The rest of the block must not wait for this thread at a barrier.
            ctx->warps[t / 32]->arrive_and_drop();
            ctx->bar.arrive_and_drop();
          }
        });
      for (auto& th : threads) th.join();
    };
    std::vector<std::thread> lanes;
    for (int s = 0; s < in_flight; ++s)
      lanes.emplace_back([&] {
        for (std::size_t i; (i = next++) < order.size();) {
          {
            std::lock_guard<std::mutex> g(err_lock);
            if (!error.empty()) return;
          }
          run_block(order[i]);
        }
      });
    for (auto& th : lanes) th.join();
    if (!error.empty()) throw std::runtime_error("emulated kernel launch: " + error);
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

// Tensor-core warp instructions (csrc/cuda/tc_ops.cuh), with the fragment layouts of the
// PTX ISA. Each is a warp collective, as on the GPU: every lane posts its operands, the
// warp meets at a barrier, each lane computes its own part of the result from the others'
// operands, and a second barrier keeps a lane from posting again before all have read.
namespace convnet_emu {

inline std::uint32_t warp_base() { return (threadIdx.x / 32) * 32; }

// A lane's address for ldmatrix must be a 16-byte row inside this block's shared memory.
inline bool in_shared(const void* p) {
  const auto* c = static_cast<const unsigned char*>(p);
  return c >= block->smem && c + 16 <= block->smem + kSharedLimit &&
         reinterpret_cast<std::uintptr_t>(p) % 16 == 0;
}

// ldmatrix.sync.aligned.m8n8.x{count}[.trans].shared.b16
inline void ldmatrix(std::uint32_t* r, int count, bool trans, const void* addr) {
  Block& b = *block;
  const unsigned t = threadIdx.x, lane = t % 32, base = warp_base();
  b.lane_ptr[t] = addr;
  b.warps[t / 32]->arrive_and_wait();
  for (int i = 0; i < 8 * count; ++i)
    if (!in_shared(b.lane_ptr[base + i]))
      throw std::runtime_error("ldmatrix: lane " + std::to_string(i) + "'s row address is "
                               "not a 16-byte aligned row of shared memory");
  for (int j = 0; j < count; ++j) {
    if (!trans) {
      const auto* row = static_cast<const unsigned char*>(b.lane_ptr[base + 8 * j + lane / 4]);
      std::memcpy(&r[j], row + (lane % 4) * 4, 4);
    } else {
      std::uint16_t lo, hi;
      const auto* r0 =
          static_cast<const unsigned char*>(b.lane_ptr[base + 8 * j + 2 * (lane % 4)]);
      const auto* r1 =
          static_cast<const unsigned char*>(b.lane_ptr[base + 8 * j + 2 * (lane % 4) + 1]);
      std::memcpy(&lo, r0 + (lane / 4) * 2, 2);
      std::memcpy(&hi, r1 + (lane / 4) * 2, 2);
      r[j] = std::uint32_t(lo) | (std::uint32_t(hi) << 16);
    }
  }
  b.warps[t / 32]->arrive_and_wait();
}

// kind 0: float16, 1: bfloat16 (the compiler's _Float16 decodes float16: an implementation
// independent of the kernels' own conversions).
inline float decode16(int kind, std::uint16_t h) {
  if (kind == 1) {
    const std::uint32_t u = std::uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  _Float16 f;
  std::memcpy(&f, &h, 2);
  return float(f);
}

inline void post_mma(const std::uint32_t* a, const std::uint32_t* b, const float* d) {
  auto& mine = block->lanes[threadIdx.x];
  for (int i = 0; i < 4; ++i) mine[i] = a[i];
  mine[4] = b[0];
  mine[5] = b[1];
  std::memcpy(&mine[6], d, 16);
  block->warps[threadIdx.x / 32]->arrive_and_wait();
}

// The accumulation runs in float, in k order (each product of two 16-bit or TF32 values is
// exact in float): the rounding a float32 accumulator gives, which the tests' bounds cover.
inline void mma_16816(int kind, float* d, const std::uint32_t* a, const std::uint32_t* b) {
  post_mma(a, b, d);
  const auto& L = block->lanes;
  const unsigned base = warp_base(), lane = threadIdx.x % 32, g = lane / 4, tq = lane % 4;
  auto half = [](std::uint32_t reg, int k) { return std::uint16_t(k % 2 ? reg >> 16 : reg); };
  auto A = [&](int r, int k) {
    return decode16(kind, half(L[base + (r % 8) * 4 + (k % 8) / 2][(r >= 8) + 2 * (k >= 8)], k));
  };
  auto B = [&](int k, int n) {
    return decode16(kind, half(L[base + n * 4 + (k % 8) / 2][4 + (k >= 8)], k));
  };
  float out[4];
  for (int i = 0; i < 4; ++i) {
    const int r = int(g) + 8 * (i / 2), n = int(2 * tq) + i % 2;
    float acc = d[i];
    for (int k = 0; k < 16; ++k) acc += A(r, k) * B(k, n);
    out[i] = acc;
  }
  block->warps[threadIdx.x / 32]->arrive_and_wait();
  std::memcpy(d, out, 16);
}

// TF32 operands are float bit patterns of which the tensor core reads the top 19 bits.
inline void mma_1688_tf32(float* d, const std::uint32_t* a, const std::uint32_t* b) {
  post_mma(a, b, d);
  const auto& L = block->lanes;
  const unsigned base = warp_base(), lane = threadIdx.x % 32, g = lane / 4, tq = lane % 4;
  auto tf32 = [](std::uint32_t u) {
    u &= 0xffffe000u;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  };
  auto A = [&](int r, int k) { return tf32(L[base + (r % 8) * 4 + k % 4][(r >= 8) + 2 * (k >= 4)]); };
  auto B = [&](int k, int n) { return tf32(L[base + n * 4 + k % 4][4 + (k >= 4)]); };
  float out[4];
  for (int i = 0; i < 4; ++i) {
    const int r = int(g) + 8 * (i / 2), n = int(2 * tq) + i % 2;
    float acc = d[i];
    for (int k = 0; k < 8; ++k) acc += A(r, k) * B(k, n);
    out[i] = acc;
  }
  block->warps[threadIdx.x / 32]->arrive_and_wait();
  std::memcpy(d, out, 16);
}

}  // namespace convnet_emu
