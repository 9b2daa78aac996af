// Batch normalisation over x viewed as (N,C,L), mirroring csrc/cpu/batchnorm.cpp and its
// arithmetic: sums around a per-channel shift, added in double (so the one-pass variance
// does not cancel in float32), the per-channel coefficients computed in double and rounded
// to T, then one element-wise pass.
//
// A channel's N*L values are split over several blocks so that narrow layers still fill
// the device: each block reduces a contiguous range (warp shuffles, then shared memory)
// into a partial pair in `work`; a per-channel pass adds the partials in a fixed order
// (deterministic) and computes the coefficients the element-wise kernel applies.
#include <algorithm>
#include <cstdint>

#include "convnet/cuda_utils.cuh"
#include "kernels.cuh"

namespace convnet {
namespace cuda {

namespace {

constexpr int kReduceThreads = 256, kUnroll = 4, kThreads = 256;

// Blocks per channel: about four blocks per SM in all, each with at least 16 values per
// thread, and at most 1024.
index_t splits_for(index_t N, index_t C, index_t L) {
  const index_t count = N * L;
  index_t s = ceil_div(4 * index_t(sm_count()), C);
  s = std::min<index_t>(s, ceil_div(count, 16 * kReduceThreads));
  return std::max<index_t>(std::min<index_t>(s, 1024), 1);
}

// mode 0 (forward): u = x - shift[c], v = u*u.  mode 1 (backward): u = dy, v = dy*(x - mean[c]).
template <typename T, int MODE>
__global__ void __launch_bounds__(kReduceThreads)
    partial_sums_kernel(const T* __restrict__ x, const T* __restrict__ dy,
                        const T* __restrict__ mean, index_t N, index_t C, index_t L,
                        index_t splits, double* __restrict__ partial) {
  __shared__ double shared[32];
  const index_t c = blockIdx.x, s = blockIdx.y;
  const index_t count = N * L, chunk = ceil_div(count, splits);
  const index_t i0 = s * chunk, i1 = min(count, i0 + chunk);
  const T shift = MODE == 0 ? x[c * L] : mean[c];
  double a1 = 0.0, a2 = 0.0;
  // (n, l) of this thread's flat index i = n*L + l, advanced without divisions.
  index_t i = i0 + threadIdx.x;
  index_t n = i / L, l = i - n * L;
  const index_t step = blockDim.x, dn = step / L, dl = step - dn * L;
  while (i < i1) {
    T u[kUnroll], v[kUnroll];
    // Loads first, then the arithmetic: several loads in flight per thread.
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) {
      const bool in = i < i1;
      const index_t at = (n * C + c) * L + l;
      if (MODE == 0) {
        u[k] = in ? x[at] : shift;
        v[k] = T(0);
      } else {
        u[k] = in ? dy[at] : T(0);
        v[k] = in ? x[at] : shift;
      }
      i += step;
      n += dn;
      l += dl;
      if (l >= L) {
        l -= L;
        ++n;
      }
    }
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) {
      if (MODE == 0) {
        const T d = u[k] - shift;
        a1 += double(d);
        a2 += double(d * d);
      } else {
        a1 += double(u[k]);
        a2 += double(u[k] * (v[k] - shift));
      }
    }
  }
  a1 = block_reduce_sum(a1, shared);
  a2 = block_reduce_sum(a2, shared);
  if (threadIdx.x == 0) {
    partial[(c * splits + s) * 2] = a1;
    partial[(c * splits + s) * 2 + 1] = a2;
  }
}

// Forward: mean, var, invstd and the affine coefficients (scale, offset) per channel.
template <typename T>
__global__ void forward_coefficients_kernel(const T* __restrict__ x, const T* __restrict__ weight,
                                            const T* __restrict__ bias,
                                            const double* __restrict__ partial, index_t C,
                                            index_t L, index_t splits, double count, double eps,
                                            T* __restrict__ mean, T* __restrict__ var,
                                            T* __restrict__ invstd, double* __restrict__ coef) {
  const index_t c = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (c >= C) return;
  double s1 = 0.0, s2 = 0.0;
  for (index_t s = 0; s < splits; ++s) {
    s1 += partial[(c * splits + s) * 2];
    s2 += partial[(c * splits + s) * 2 + 1];
  }
  const double shift = double(x[c * L]);
  const double m = s1 / count;
  const double v = fmax(s2 / count - m * m, 0.0);
  const double is = 1.0 / sqrt(v + eps);
  mean[c] = T(m + shift);
  var[c] = T(v);
  invstd[c] = T(is);
  coef[c] = double(T(is * weight[c]));
  coef[C + c] = double(T(bias[c] - (m + shift) * is * weight[c]));
}

template <typename T>
__global__ void inference_coefficients_kernel(const T* __restrict__ weight,
                                              const T* __restrict__ bias,
                                              const T* __restrict__ running_mean,
                                              const T* __restrict__ running_var, index_t C,
                                              double eps, double* __restrict__ coef) {
  const index_t c = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (c >= C) return;
  const double is = 1.0 / sqrt(double(running_var[c]) + eps);
  coef[c] = double(T(is * weight[c]));
  coef[C + c] = double(T(bias[c] - running_mean[c] * is * weight[c]));
}

// Backward: dbias, dweight and dx = ka*dy + kb*(x - mean) + kk per channel.
template <typename T>
__global__ void backward_coefficients_kernel(const T* __restrict__ weight,
                                             const T* __restrict__ invstd,
                                             const double* __restrict__ partial, index_t C,
                                             index_t splits, double count,
                                             T* __restrict__ dweight, T* __restrict__ dbias,
                                             double* __restrict__ coef) {
  const index_t c = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (c >= C) return;
  double s1 = 0.0, s2 = 0.0;
  for (index_t s = 0; s < splits; ++s) {
    s1 += partial[(c * splits + s) * 2];
    s2 += partial[(c * splits + s) * 2 + 1];
  }
  const double is = invstd[c];
  dbias[c] = T(s1);
  dweight[c] = T(s2 * is);
  const double a = weight[c] * is;
  coef[c] = double(T(a));
  coef[C + c] = double(T(-a * is * is * s2 / count));
  coef[2 * C + c] = double(T(-a * s1 / count));
}

// y = x * scale[c] + offset[c], four (float) or two (double) values per 128-bit access
// when every vector lies in one channel row.
template <typename T, bool VEC>
__global__ void affine_kernel(const T* __restrict__ x, const double* __restrict__ coef,
                              T* __restrict__ y, index_t total, index_t C, index_t L) {
  using V = typename std::conditional<sizeof(T) == 4, float4, double2>::type;
  constexpr int VW = VEC ? int(16 / sizeof(T)) : 1;
  const index_t vectors = total / VW;
  for (index_t v = blockIdx.x * index_t(blockDim.x) + threadIdx.x; v < vectors;
       v += index_t(gridDim.x) * blockDim.x) {
    const index_t i = v * VW, c = (i / L) % C;
    const T a = T(coef[c]), b = T(coef[C + c]);
    if constexpr (VEC) {
      V in = reinterpret_cast<const V*>(x)[v];
      T* e = reinterpret_cast<T*>(&in);
#pragma unroll
      for (int k = 0; k < VW; ++k) e[k] = e[k] * a + b;
      reinterpret_cast<V*>(y)[v] = in;
    } else {
      y[i] = x[i] * a + b;
    }
  }
}

// dx = ka[c]*dy + kb[c]*(x - mean[c]) + kk[c]
template <typename T, bool VEC>
__global__ void backward_dx_kernel(const T* __restrict__ dy, const T* __restrict__ x,
                                   const T* __restrict__ mean, const double* __restrict__ coef,
                                   T* __restrict__ dx, index_t total, index_t C, index_t L) {
  using V = typename std::conditional<sizeof(T) == 4, float4, double2>::type;
  constexpr int VW = VEC ? int(16 / sizeof(T)) : 1;
  const index_t vectors = total / VW;
  for (index_t v = blockIdx.x * index_t(blockDim.x) + threadIdx.x; v < vectors;
       v += index_t(gridDim.x) * blockDim.x) {
    const index_t i = v * VW, c = (i / L) % C;
    const T a = T(coef[c]), b = T(coef[C + c]), k = T(coef[2 * C + c]), m = mean[c];
    if constexpr (VEC) {
      V g = reinterpret_cast<const V*>(dy)[v];
      const V xv = reinterpret_cast<const V*>(x)[v];
      T* ge = reinterpret_cast<T*>(&g);
      const T* xe = reinterpret_cast<const T*>(&xv);
#pragma unroll
      for (int e = 0; e < VW; ++e) ge[e] = a * ge[e] + b * (xe[e] - m) + k;
      reinterpret_cast<V*>(dx)[v] = g;
    } else {
      dx[i] = a * dy[i] + b * (x[i] - m) + k;
    }
  }
}

template <typename T>
bool vectorisable(index_t L, std::initializer_list<const void*> ptrs) {
  if (L % (16 / index_t(sizeof(T))) != 0) return false;
  for (const void* p : ptrs)
    if (reinterpret_cast<std::uintptr_t>(p) % 16 != 0) return false;
  return true;
}

unsigned channel_blocks(index_t C) { return static_cast<unsigned>(ceil_div(C, kThreads)); }

// Enough blocks for a grid-stride loop to fill the device with 256-thread blocks.
unsigned stream_grid(index_t items) {
  return grid_for(items, kThreads, std::max<index_t>(16 * index_t(sm_count()), 1));
}

template <typename T>
void launch_affine(const T* x, const double* coef, T* y, index_t N, index_t C, index_t L,
                   cudaStream_t stream) {
  const index_t total = N * C * L;
  if (vectorisable<T>(L, {x, y})) {
    const unsigned grid = stream_grid(total / (16 / sizeof(T)));
    CONVNET_LAUNCH(grid, kThreads, 0, stream, affine_kernel<T, true>)(x, coef, y, total, C, L);
  } else {
    const unsigned grid = stream_grid(total);
    CONVNET_LAUNCH(grid, kThreads, 0, stream, affine_kernel<T, false>)(x, coef, y, total, C, L);
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace

index_t batch_norm_workspace(index_t N, index_t C, index_t L) {
  return C * (2 * splits_for(N, C, L) + 3);
}

// x (N,C,L), weight/bias (C) -> y (N,C,L), mean/var(biased)/invstd (C)
template <typename T>
void batch_norm_forward_training(index_t N, index_t C, index_t L, const T* x, const T* weight,
                                 const T* bias, T* y, T* mean, T* var, T* invstd, double eps,
                                 double* work, cudaStream_t stream) {
  if (C <= 0 || N * L <= 0) return;
  const index_t splits = splits_for(N, C, L);
  double* coef = work + 2 * C * splits;
  const dim3 reduce_grid{unsigned(C), unsigned(splits), 1u};
  CONVNET_LAUNCH(reduce_grid, kReduceThreads, 0, stream, partial_sums_kernel<T, 0>)(
      x, nullptr, nullptr, N, C, L, splits, work);
  CUDA_CHECK_LAUNCH();
  CONVNET_LAUNCH(channel_blocks(C), kThreads, 0, stream, forward_coefficients_kernel<T>)(
      x, weight, bias, work, C, L, splits, double(N) * double(L), eps, mean, var, invstd, coef);
  CUDA_CHECK_LAUNCH();
  launch_affine(x, coef, y, N, C, L, stream);
}

// x (N,C,L), weight/bias/running_mean/running_var (C) -> y (N,C,L)
template <typename T>
void batch_norm_forward_inference(index_t N, index_t C, index_t L, const T* x, const T* weight,
                                  const T* bias, const T* running_mean, const T* running_var,
                                  T* y, double eps, double* work, cudaStream_t stream) {
  if (C <= 0 || N * L <= 0) return;
  CONVNET_LAUNCH(channel_blocks(C), kThreads, 0, stream, inference_coefficients_kernel<T>)(
      weight, bias, running_mean, running_var, C, eps, work);
  CUDA_CHECK_LAUNCH();
  launch_affine(x, work, y, N, C, L, stream);
}

// dy, x (N,C,L), weight/mean/invstd (C) -> dx (N,C,L), dweight/dbias (C)
template <typename T>
void batch_norm_backward(index_t N, index_t C, index_t L, const T* dy, const T* x,
                         const T* weight, const T* mean, const T* invstd, T* dx, T* dweight,
                         T* dbias, double* work, cudaStream_t stream) {
  if (C <= 0) return;
  if (N * L <= 0) {
    CUDA_CHECK(cudaMemsetAsync(dweight, 0, sizeof(T) * C, stream));
    CUDA_CHECK(cudaMemsetAsync(dbias, 0, sizeof(T) * C, stream));
    return;
  }
  const index_t splits = splits_for(N, C, L);
  double* coef = work + 2 * C * splits;
  const dim3 reduce_grid{unsigned(C), unsigned(splits), 1u};
  CONVNET_LAUNCH(reduce_grid, kReduceThreads, 0, stream, partial_sums_kernel<T, 1>)(
      x, dy, mean, N, C, L, splits, work);
  CUDA_CHECK_LAUNCH();
  CONVNET_LAUNCH(channel_blocks(C), kThreads, 0, stream, backward_coefficients_kernel<T>)(
      weight, invstd, work, C, splits, double(N) * double(L), dweight, dbias, coef);
  CUDA_CHECK_LAUNCH();
  const index_t total = N * C * L;
  if (vectorisable<T>(L, {dy, x, dx})) {
    const unsigned grid = stream_grid(total / (16 / sizeof(T)));
    CONVNET_LAUNCH(grid, kThreads, 0, stream, backward_dx_kernel<T, true>)(dy, x, mean, coef, dx,
                                                                            total, C, L);
  } else {
    const unsigned grid = stream_grid(total);
    CONVNET_LAUNCH(grid, kThreads, 0, stream, backward_dx_kernel<T, false>)(dy, x, mean, coef,
                                                                             dx, total, C, L);
  }
  CUDA_CHECK_LAUNCH();
}

#define INSTANTIATE(T)                                                                         \
  template void batch_norm_forward_training<T>(index_t, index_t, index_t, const T*, const T*,  \
                                               const T*, T*, T*, T*, T*, double, double*,      \
                                               cudaStream_t);                                  \
  template void batch_norm_forward_inference<T>(index_t, index_t, index_t, const T*, const T*, \
                                                const T*, const T*, const T*, T*, double,      \
                                                double*, cudaStream_t);                        \
  template void batch_norm_backward<T>(index_t, index_t, index_t, const T*, const T*,          \
                                       const T*, const T*, const T*, T*, T*, T*, double*,      \
                                       cudaStream_t);
INSTANTIATE(float)
INSTANTIATE(double)
#undef INSTANTIATE

}  // namespace cuda
}  // namespace convnet
