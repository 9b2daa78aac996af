// Planted kernels that check the emulator itself (tests/kernels/test_cuda_emulator.py):
// each mode runs one small kernel through CONVNET_LAUNCH and prints what it saw, so the
// test can assert that the emulator exposes the bug a GPU would show (or refuses the
// launch a GPU would refuse). Built like csrc/cuda (rewritten __shared__ and
// __launch_bounds__), once plainly and once with -fsanitize=thread for the race modes.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cuda/tile_gemm.cuh"  // cp_async16, cp_async_wait_all: the kernels' own wrappers

namespace convnet {
namespace cuda {
int sm_count() { return 4; }
}  // namespace cuda
}  // namespace convnet

namespace {

using convnet::cuda::cp_async16;
using convnet::cuda::cp_async_wait_all;

// The last thread writes nothing, yet every thread reads its own slot back.
__global__ void read_unwritten_shared(float* out) {
  __shared__ float tile[64];
  if (threadIdx.x < 63) tile[threadIdx.x] = float(threadIdx.x);
  __syncthreads();
  out[blockIdx.x * 64 + threadIdx.x] = tile[threadIdx.x];
}

__global__ void too_much_shared(float* out) {
  __shared__ double big[6200];  // 49,600 bytes
  big[threadIdx.x] = 1.0;
  __syncthreads();
  out[threadIdx.x] = float(big[threadIdx.x]);
}

__global__ void __launch_bounds__(64) bounded(float* out) { out[threadIdx.x] = 1.f; }

// Copies 64 floats global -> shared with cp.async, optionally without waiting.
template <bool WAIT>
__global__ void async_copy(const float* in, float* out) {
  __shared__ __align__(16) float stage[64];
  if (threadIdx.x < 16) cp_async16(&stage[4 * threadIdx.x], in + 4 * threadIdx.x, 16);
  if (WAIT) cp_async_wait_all();
  __syncthreads();
  out[threadIdx.x] = stage[threadIdx.x];
}

// Each block adds 1 to every element: atomically, or with a plain (racy) +=.
template <bool ATOMIC>
__global__ void add_one(float* acc) {
  if (ATOMIC)
    atomicAdd(acc + threadIdx.x, 1.f);
  else
    acc[threadIdx.x] += 1.f;
}

std::atomic<int> running{0}, most{0}, started{0};
int start_order[64];

// Notes the order blocks start in and how many run at once.
__global__ void log_blocks(int) {
  __shared__ int slot[1];
  if (threadIdx.x == 0) {
    slot[0] = started++;
    start_order[slot[0]] = int(blockIdx.x);
    const int now = ++running;
    int m = most.load();
    while (now > m && !most.compare_exchange_weak(m, now)) {
    }
  }
  __syncthreads();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  __syncthreads();
  if (threadIdx.x == 0) --running;
}

void print(const char* what, const float* v, int n) {
  std::printf("%s", what);
  for (int i = 0; i < n; ++i) std::printf(" %g", v[i]);
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  std::vector<float> in(64), out(256, -1.f);
  for (int i = 0; i < 64; ++i) in[i] = float(i);
  try {
    if (mode == "unwritten-shared") {
      CONVNET_LAUNCH(2, 64, 0, nullptr, read_unwritten_shared)(out.data());
      print("out", out.data(), 128);
    } else if (mode == "too-much-shared") {
      CONVNET_LAUNCH(1, 64, 0, nullptr, too_much_shared)(out.data());
      print("out", out.data(), 64);
    } else if (mode == "within-bounds" || mode == "beyond-bounds") {
      CONVNET_LAUNCH(1, mode == "within-bounds" ? 64 : 128, 0, nullptr, bounded)(out.data());
      print("out", out.data(), 1);
    } else if (mode == "cp-async-wait") {
      CONVNET_LAUNCH(1, 64, 0, nullptr, async_copy<true>)(in.data(), out.data());
      print("out", out.data(), 64);
    } else if (mode == "cp-async-no-wait") {
      CONVNET_LAUNCH(1, 64, 0, nullptr, async_copy<false>)(in.data(), out.data());
      print("out", out.data(), 64);
    } else if (mode == "atomic-add" || mode == "plain-add") {
      std::vector<float> acc(32, 0.f);
      for (int rep = 0; rep < 8; ++rep) {
        if (mode == "atomic-add")
          CONVNET_LAUNCH(16, 32, 0, nullptr, add_one<true>)(acc.data());
        else
          CONVNET_LAUNCH(16, 32, 0, nullptr, add_one<false>)(acc.data());
      }
      print("out", acc.data(), 32);
    } else if (mode == "block-order") {
      CONVNET_LAUNCH(16, 32, 0, nullptr, log_blocks)(0);
      std::printf("order");
      for (int i = 0; i < 16; ++i) std::printf(" %d", start_order[i]);
      std::printf("\nmost %d\n", most.load());
    } else {
      std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
      return 2;
    }
  } catch (const std::exception& e) {
    std::printf("error %s\n", e.what());
  }
  return 0;
}
