// Nearest and bilinear upsampling (NCHW) with PyTorch's coordinate rules, one thread per
// output element in grid-stride loops (consecutive threads take consecutive columns, so
// loads and stores coalesce). Mirrors csrc/cpu/upsample.cpp to the rounding: the steps and
// each thread's source index and weights come from the functions the CPU tables use
// (convnet/kernel_math.h), in the same type (float for nearest, T for bilinear). Not built
// with --use_fast_math.
//
// Backward scatters each dy value to the input pixels it came from with atomicAdd (several
// outputs share an input), after the gradient is zeroed on the stream.
#include <cuda_runtime.h>

#include <cmath>

#include "convnet/cuda_utils.cuh"
#include "convnet/kernel_math.h"
#include "kernels.cuh"

namespace convnet {
namespace cuda {

namespace {

constexpr int kThreads = 256;

// One axis of the map from output to source coordinates (convnet/kernel_math.h, the
// CPU kernels' rule).
struct NearestAxis {
  index_t in, out;
  float step;
  __device__ index_t src(index_t d) const { return math::nearest_source(d, in, out, step); }
};

template <typename T>
struct LinearAxis {
  index_t in, out;
  T step;
  bool align_corners;
  // i0, i1 and the weights l0 (of i0), l1 (of i1)
  __device__ void src(index_t d, index_t& i0, index_t& i1, T& l0, T& l1) const {
    const auto s = math::linear_source(d, in, out, step, align_corners);
    i0 = s.i0;
    i1 = s.i1;
    l0 = s.l0;
    l1 = s.l1;
  }
};

template <typename T>
__global__ void nearest_forward_kernel(const T* __restrict__ x, T* __restrict__ y, index_t total,
                                       NearestAxis rows, NearestAxis cols) {
  for (index_t o = blockIdx.x * index_t(blockDim.x) + threadIdx.x; o < total;
       o += index_t(gridDim.x) * blockDim.x) {
    const index_t q = o % cols.out, t = o / cols.out;
    const index_t p = t % rows.out, plane = t / rows.out;
    y[o] = x[(plane * rows.in + rows.src(p)) * cols.in + cols.src(q)];
  }
}

template <typename T>
__global__ void nearest_backward_kernel(const T* __restrict__ dy, T* __restrict__ dx,
                                        index_t total, NearestAxis rows, NearestAxis cols) {
  for (index_t o = blockIdx.x * index_t(blockDim.x) + threadIdx.x; o < total;
       o += index_t(gridDim.x) * blockDim.x) {
    const index_t q = o % cols.out, t = o / cols.out;
    const index_t p = t % rows.out, plane = t / rows.out;
    atomicAdd(dx + (plane * rows.in + rows.src(p)) * cols.in + cols.src(q), dy[o]);
  }
}

template <typename T>
__global__ void bilinear_forward_kernel(const T* __restrict__ x, T* __restrict__ y,
                                        index_t total, LinearAxis<T> rows, LinearAxis<T> cols) {
  for (index_t o = blockIdx.x * index_t(blockDim.x) + threadIdx.x; o < total;
       o += index_t(gridDim.x) * blockDim.x) {
    const index_t q = o % cols.out, t = o / cols.out;
    const index_t p = t % rows.out, plane = t / rows.out;
    index_t h0i, h1i, a, b;
    T h0, h1, w0, w1;
    rows.src(p, h0i, h1i, h0, h1);
    cols.src(q, a, b, w0, w1);
    const T* r0 = x + (plane * rows.in + h0i) * cols.in;
    const T* r1 = x + (plane * rows.in + h1i) * cols.in;
    // the CPU kernel's association, so float32 rounds the same way
    y[o] = h0 * (w0 * r0[a] + w1 * r0[b]) + h1 * (w0 * r1[a] + w1 * r1[b]);
  }
}

template <typename T>
__global__ void bilinear_backward_kernel(const T* __restrict__ dy, T* __restrict__ dx,
                                         index_t total, LinearAxis<T> rows, LinearAxis<T> cols) {
  for (index_t o = blockIdx.x * index_t(blockDim.x) + threadIdx.x; o < total;
       o += index_t(gridDim.x) * blockDim.x) {
    const index_t q = o % cols.out, t = o / cols.out;
    const index_t p = t % rows.out, plane = t / rows.out;
    index_t h0i, h1i, a, b;
    T h0, h1, w0, w1;
    rows.src(p, h0i, h1i, h0, h1);
    cols.src(q, a, b, w0, w1);
    T* r0 = dx + (plane * rows.in + h0i) * cols.in;
    T* r1 = dx + (plane * rows.in + h1i) * cols.in;
    const T d = dy[o];
    atomicAdd(r0 + a, h0 * w0 * d);
    atomicAdd(r0 + b, h0 * w1 * d);
    atomicAdd(r1 + a, h1 * w0 * d);
    atomicAdd(r1 + b, h1 * w1 * d);
  }
}

index_t outputs(const UpsampleGeom& g) { return g.N * g.C * g.P * g.Q; }

unsigned grid_of(index_t total) { return grid_for(total, kThreads, 32 * index_t(sm_count())); }

template <typename T>
void zero(const UpsampleGeom& g, T* dx, cudaStream_t stream) {
  CUDA_CHECK(cudaMemsetAsync(dx, 0, sizeof(T) * g.N * g.C * g.H * g.W, stream));
}

}  // namespace

// x (N,C,H,W) -> y (N,C,P,Q)
template <typename T>
void upsample_nearest2d_forward(const UpsampleGeom& g, const T* x, T* y, double scale_h,
                                double scale_w, cudaStream_t stream) {
  const index_t total = outputs(g);
  if (total <= 0) return;
  const NearestAxis rows{g.H, g.P, math::nearest_step(g.H, g.P, scale_h)};
  const NearestAxis cols{g.W, g.Q, math::nearest_step(g.W, g.Q, scale_w)};
  CONVNET_LAUNCH(grid_of(total), kThreads, 0, stream, nearest_forward_kernel<T>)(x, y, total, rows,
                                                                                cols);
  CUDA_CHECK_LAUNCH();
}

// dy (N,C,P,Q) -> dx (N,C,H,W): each dy value adds to the input pixel it copied
template <typename T>
void upsample_nearest2d_backward(const UpsampleGeom& g, const T* dy, T* dx, double scale_h,
                                 double scale_w, cudaStream_t stream) {
  zero(g, dx, stream);
  const index_t total = outputs(g);
  if (total <= 0) return;
  const NearestAxis rows{g.H, g.P, math::nearest_step(g.H, g.P, scale_h)};
  const NearestAxis cols{g.W, g.Q, math::nearest_step(g.W, g.Q, scale_w)};
  CONVNET_LAUNCH(grid_of(total), kThreads, 0, stream, nearest_backward_kernel<T>)(dy, dx, total,
                                                                                 rows, cols);
  CUDA_CHECK_LAUNCH();
}

// x (N,C,H,W) -> y (N,C,P,Q)
template <typename T>
void upsample_bilinear2d_forward(const UpsampleGeom& g, const T* x, T* y, bool align_corners,
                                 double scale_h, double scale_w, cudaStream_t stream) {
  const index_t total = outputs(g);
  if (total <= 0) return;
  const LinearAxis<T> rows{g.H, g.P, math::linear_step<T>(g.H, g.P, align_corners, scale_h),
                           align_corners};
  const LinearAxis<T> cols{g.W, g.Q, math::linear_step<T>(g.W, g.Q, align_corners, scale_w),
                           align_corners};
  CONVNET_LAUNCH(grid_of(total), kThreads, 0, stream, bilinear_forward_kernel<T>)(x, y, total,
                                                                                 rows, cols);
  CUDA_CHECK_LAUNCH();
}

// dy (N,C,P,Q) -> dx (N,C,H,W): each dy value goes back to its four source pixels
template <typename T>
void upsample_bilinear2d_backward(const UpsampleGeom& g, const T* dy, T* dx, bool align_corners,
                                  double scale_h, double scale_w, cudaStream_t stream) {
  zero(g, dx, stream);
  const index_t total = outputs(g);
  if (total <= 0) return;
  const LinearAxis<T> rows{g.H, g.P, math::linear_step<T>(g.H, g.P, align_corners, scale_h),
                           align_corners};
  const LinearAxis<T> cols{g.W, g.Q, math::linear_step<T>(g.W, g.Q, align_corners, scale_w),
                           align_corners};
  CONVNET_LAUNCH(grid_of(total), kThreads, 0, stream, bilinear_backward_kernel<T>)(dy, dx, total,
                                                                                  rows, cols);
  CUDA_CHECK_LAUNCH();
}

#define INSTANTIATE(T)                                                                       \
  template void upsample_nearest2d_forward<T>(const UpsampleGeom&, const T*, T*, double,     \
                                              double, cudaStream_t);                         \
  template void upsample_nearest2d_backward<T>(const UpsampleGeom&, const T*, T*, double,    \
                                               double, cudaStream_t);                        \
  template void upsample_bilinear2d_forward<T>(const UpsampleGeom&, const T*, T*, bool,      \
                                               double, double, cudaStream_t);                \
  template void upsample_bilinear2d_backward<T>(const UpsampleGeom&, const T*, T*, bool,     \
                                                double, double, cudaStream_t);
INSTANTIATE(float)
INSTANTIATE(double)
#undef INSTANTIATE

}  // namespace cuda
}  // namespace convnet
