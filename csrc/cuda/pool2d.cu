// Max and average pooling (NCHW), one thread per output (forward) or per input
// (average backward) element, in grid-stride loops; consecutive threads take consecutive
// columns so loads and stores coalesce. Mirrors csrc/cpu/pool2d.cpp and keeps its rules:
// windows scanned in row-major order, the first maximum wins, NaN wins (the last one),
// indices are flat h*W+w in the plane, divisors as PyTorch's.
#include <cuda_runtime.h>

#include <cmath>

#include "convnet/cuda_utils.cuh"
#include "convnet/kernel_math.h"
#include "kernels.cuh"

namespace convnet {
namespace cuda {

namespace {

constexpr int kThreads = 256;

struct PoolDims {
  int H, W, P, Q, kh, kw, sh, sw, ph, pw;
};

PoolDims dims_of(const PoolGeom& g) {
  return PoolDims{int(g.H),  int(g.W),  int(g.P),  int(g.Q),  int(g.kh),
                  int(g.kw), int(g.sh), int(g.sw), int(g.ph), int(g.pw)};
}

template <typename T>
__global__ void max_pool_forward_kernel(const T* __restrict__ x, T* __restrict__ y,
                                        std::int64_t* __restrict__ indices, index_t total,
                                        PoolDims d) {
  for (index_t o = blockIdx.x * index_t(blockDim.x) + threadIdx.x; o < total;
       o += index_t(gridDim.x) * blockDim.x) {
    const int q = int(o % d.Q);
    const index_t t = o / d.Q;
    const int p = int(t % d.P);
    const index_t plane = t / d.P;
    const T* src = x + plane * d.H * d.W;
    const auto rw = math::pool_window(p, d.H, d.kh, d.sh, d.ph);
    const auto cw = math::pool_window(q, d.W, d.kw, d.sw, d.pw);
    const int h0 = rw.lo, h1 = rw.hi, w0 = cw.lo, w1 = cw.hi;
    // As PyTorch: start from -inf at the window's first real element.
    T best = -INFINITY;
    index_t best_i = index_t(h0) * d.W + w0;
    for (int h = h0; h < h1; ++h)
      for (int w = w0; w < w1; ++w) {
        const T v = src[h * d.W + w];
        if (v > best || v != v) {
          best = v;
          best_i = index_t(h) * d.W + w;
        }
      }
    y[o] = best;
    indices[o] = best_i;
  }
}

template <typename T>
__global__ void max_pool_backward_kernel(const T* __restrict__ dy,
                                         const std::int64_t* __restrict__ indices,
                                         T* __restrict__ dx, index_t total, index_t out_plane,
                                         index_t in_plane) {
  for (index_t o = blockIdx.x * index_t(blockDim.x) + threadIdx.x; o < total;
       o += index_t(gridDim.x) * blockDim.x) {
    const std::int64_t i = indices[o];
    // Overlapping windows can pick the same input: accumulate atomically.
    if (i >= 0 && i < in_plane) atomicAdd(dx + (o / out_plane) * in_plane + i, dy[o]);
  }
}

__device__ inline int avg_divisor(const PoolDims& d, int p, int q, bool cip) {
  return math::pool_divisor(math::pool_window(p, d.H, d.kh, d.sh, d.ph),
                            math::pool_window(q, d.W, d.kw, d.sw, d.pw), cip);
}

template <typename T>
__global__ void avg_pool_forward_kernel(const T* __restrict__ x, T* __restrict__ y,
                                        index_t total, PoolDims d, bool cip) {
  for (index_t o = blockIdx.x * index_t(blockDim.x) + threadIdx.x; o < total;
       o += index_t(gridDim.x) * blockDim.x) {
    const int q = int(o % d.Q);
    const index_t t = o / d.Q;
    const int p = int(t % d.P);
    const index_t plane = t / d.P;
    const T* src = x + plane * d.H * d.W;
    const auto rw = math::pool_window(p, d.H, d.kh, d.sh, d.ph);
    const auto cw = math::pool_window(q, d.W, d.kw, d.sw, d.pw);
    T sum = T(0);
    for (int h = rw.lo; h < rw.hi; ++h)
      for (int w = cw.lo; w < cw.hi; ++w) sum += src[h * d.W + w];
    y[o] = sum * (T(1) / T(math::pool_divisor(rw, cw, cip)));
  }
}

// dx[h, w] = sum of dy[p, q] / divisor over the windows (p, q) that contain (h, w):
// a gather, so every dx element is written once and no atomics are needed.
template <typename T>
__global__ void avg_pool_backward_kernel(const T* __restrict__ dy, T* __restrict__ dx,
                                         index_t total, PoolDims d, bool cip) {
  for (index_t o = blockIdx.x * index_t(blockDim.x) + threadIdx.x; o < total;
       o += index_t(gridDim.x) * blockDim.x) {
    const int w = int(o % d.W);
    const index_t t = o / d.W;
    const int h = int(t % d.H);
    const index_t plane = t / d.H;
    const T* g = dy + plane * d.P * d.Q;
    int p0, p1, q0, q1;
    math::windows_containing(h, d.kh, d.sh, d.ph, d.P, p0, p1);
    math::windows_containing(w, d.kw, d.sw, d.pw, d.Q, q0, q1);
    T sum = T(0);
    for (int p = p0; p <= p1; ++p)
      for (int q = q0; q <= q1; ++q) sum += g[p * d.Q + q] * (T(1) / T(avg_divisor(d, p, q, cip)));
    dx[o] = sum;
  }
}

}  // namespace

// x (N,C,H,W) -> y (N,C,P,Q), indices (N,C,P,Q)
template <typename T>
void max_pool2d_forward(const PoolGeom& g, const T* x, T* y, std::int64_t* indices,
                        cudaStream_t stream) {
  const index_t total = g.N * g.C * g.P * g.Q;
  if (total <= 0) return;
  CONVNET_LAUNCH(grid_for(total, kThreads), kThreads, 0, stream, max_pool_forward_kernel<T>)(
      x, y, indices, total, dims_of(g));
  CUDA_CHECK_LAUNCH();
}

// dy (N,C,P,Q), indices (N,C,P,Q) -> dx (N,C,H,W)
template <typename T>
void max_pool2d_backward(const PoolGeom& g, const T* dy, const std::int64_t* indices, T* dx,
                         cudaStream_t stream) {
  const index_t in_total = g.N * g.C * g.H * g.W, total = g.N * g.C * g.P * g.Q;
  if (in_total <= 0) return;
  CUDA_CHECK(cudaMemsetAsync(dx, 0, sizeof(T) * in_total, stream));
  if (total <= 0) return;
  CONVNET_LAUNCH(grid_for(total, kThreads), kThreads, 0, stream, max_pool_backward_kernel<T>)(
      dy, indices, dx, total, g.P * g.Q, g.H * g.W);
  CUDA_CHECK_LAUNCH();
}

// x (N,C,H,W) -> y (N,C,P,Q)
template <typename T>
void avg_pool2d_forward(const PoolGeom& g, const T* x, T* y, bool count_include_pad,
                        cudaStream_t stream) {
  const index_t total = g.N * g.C * g.P * g.Q;
  if (total <= 0) return;
  CONVNET_LAUNCH(grid_for(total, kThreads), kThreads, 0, stream, avg_pool_forward_kernel<T>)(
      x, y, total, dims_of(g), count_include_pad);
  CUDA_CHECK_LAUNCH();
}

// dy (N,C,P,Q) -> dx (N,C,H,W)
template <typename T>
void avg_pool2d_backward(const PoolGeom& g, const T* dy, T* dx, bool count_include_pad,
                         cudaStream_t stream) {
  const index_t total = g.N * g.C * g.H * g.W;
  if (total <= 0) return;
  CONVNET_LAUNCH(grid_for(total, kThreads), kThreads, 0, stream, avg_pool_backward_kernel<T>)(
      dy, dx, total, dims_of(g), count_include_pad);
  CUDA_CHECK_LAUNCH();
}

#define INSTANTIATE(T)                                                                        \
  template void max_pool2d_forward<T>(const PoolGeom&, const T*, T*, std::int64_t*,           \
                                      cudaStream_t);                                          \
  template void max_pool2d_backward<T>(const PoolGeom&, const T*, const std::int64_t*, T*,    \
                                       cudaStream_t);                                         \
  template void avg_pool2d_forward<T>(const PoolGeom&, const T*, T*, bool, cudaStream_t);     \
  template void avg_pool2d_backward<T>(const PoolGeom&, const T*, T*, bool, cudaStream_t);
INSTANTIATE(float)
INSTANTIATE(double)
#undef INSTANTIATE

}  // namespace cuda
}  // namespace convnet
