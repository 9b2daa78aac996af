// Shared helpers for the CUDA kernels (csrc/cuda/*.cu): error checks that name the file and
// line, integer helpers, warp and block reductions.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace convnet {
namespace cuda {

using index_t = std::int64_t;

// Errors become C++ exceptions (pybind11 turns them into RuntimeError), never an abort.
inline void check(cudaError_t err, const char* expr, const char* file, int line) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("CUDA error ") + cudaGetErrorName(err) + " (" +
                             cudaGetErrorString(err) + ") in " + expr + " at " + file + ":" +
                             std::to_string(line));
}

}  // namespace cuda
}  // namespace convnet

#define CUDA_CHECK(expr) ::convnet::cuda::check((expr), #expr, __FILE__, __LINE__)
// kernel<<<grid, block, smem, stream>>>(args) written so that the test emulator
// (tests/kernels/cuda_emu, which runs the kernels on CPU threads) can take the launch over.
#ifdef CONVNET_CUDA_EMULATE
#define CONVNET_LAUNCH(grid, block, smem, stream, ...)                                \
  ::convnet_emu::Launcher(grid, block, [](auto&&... args) { __VA_ARGS__(args...); })
#else
#define CONVNET_LAUNCH(grid, block, smem, stream, ...) \
  __VA_ARGS__<<<grid, block, smem, stream>>>
#endif

// After every launch: a bad configuration shows up here, not at some later call.
#define CUDA_CHECK_LAUNCH() \
  ::convnet::cuda::check(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)

// The rest is device code, for nvcc only (bind_cuda.cpp, built by the host compiler,
// needs just the checks above).
#if defined(__CUDACC__) || defined(CONVNET_CUDA_EMULATE)
namespace convnet {
namespace cuda {

__host__ __device__ inline index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }

// Grid size for a grid-stride loop over n items: enough blocks to fill the device, capped
// so huge arrays do not launch millions of blocks that each do one item.
inline unsigned grid_for(index_t n, int threads, index_t max_blocks = 65535) {
  index_t b = ceil_div(n, threads);
  if (b < 1) b = 1;
  return static_cast<unsigned>(b < max_blocks ? b : max_blocks);
}

template <typename T>
__device__ inline T warp_reduce_sum(T v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// Sum over the block; the result is valid in every thread. `shared` holds 32 values.
// Every thread of the block must call it (it synchronises).
template <typename T>
__device__ inline T block_reduce_sum(T v, T* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int warps = (blockDim.x + 31) >> 5;
  v = warp_reduce_sum(v);
  __syncthreads();  // `shared` may still be read by a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : T(0);
  return warp_reduce_sum(v);
}

// SM count of the current device, cached per device (launch heuristics).
int sm_count();

}  // namespace cuda
}  // namespace convnet
#endif  // __CUDACC__ || CONVNET_CUDA_EMULATE
