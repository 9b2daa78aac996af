// Element-wise activations and their gradients over flat contiguous arrays, in grid-stride
// loops. The formulas are csrc/cpu/activation.cpp's, from convnet/kernel_math.h (sigmoid
// through e^{-|x|} so it never overflows, ELU through expm1), with the precise libdevice
// functions (this file is compiled without --use_fast_math).
#include <cuda_runtime.h>

#include "convnet/activation_table.h"
#include "convnet/cuda_utils.cuh"
#include "convnet/kernel_math.h"
#include "kernels.cuh"

namespace convnet {
namespace cuda {

namespace {

constexpr int kThreads = 256;

template <typename F>
__global__ void map_kernel(index_t n, F f) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n;
       i += index_t(gridDim.x) * blockDim.x)
    f(i);
}

template <typename F>
void launch(index_t n, F f, cudaStream_t stream) {
  if (n <= 0) return;
  const unsigned grid = grid_for(n, kThreads, 16 * index_t(sm_count()));
  CONVNET_LAUNCH(grid, kThreads, 0, stream, map_kernel)(n, f);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
struct TanhF {
  const T* x;
  T* y;
  __device__ void operator()(index_t i) const { y[i] = math::tanh_(x[i]); }
};
template <typename T>
struct TanhB {
  const T *dy, *y;
  T* dx;
  __device__ void operator()(index_t i) const { dx[i] = math::tanh_grad(dy[i], y[i]); }
};
template <typename T>
struct SigmoidF {
  const T* x;
  T* y;
  __device__ void operator()(index_t i) const { y[i] = math::sigmoid(x[i]); }
};
template <typename T>
struct SigmoidB {
  const T *dy, *y;
  T* dx;
  __device__ void operator()(index_t i) const { dx[i] = math::sigmoid_grad(dy[i], y[i]); }
};
template <typename T>
struct LeakyF {
  const T* x;
  T* y;
  T slope;
  __device__ void operator()(index_t i) const { y[i] = math::leaky_relu(x[i], slope); }
};
template <typename T>
struct LeakyB {
  const T *dy, *x;
  T* dx;
  T slope;
  __device__ void operator()(index_t i) const { dx[i] = math::leaky_relu_grad(dy[i], x[i], slope); }
};
template <typename T>
struct EluF {
  const T* x;
  T* y;
  T alpha, scale;
  __device__ void operator()(index_t i) const { y[i] = math::elu(x[i], alpha, scale); }
};
template <typename T>
struct EluB {
  const T *dy, *x;
  T* dx;
  T alpha, scale;
  __device__ void operator()(index_t i) const {
    dx[i] = math::elu_grad(dy[i], x[i], alpha, scale);
  }
};

template <typename Op, typename T>
struct FormulaF {
  const T* x;
  T* y;
  T p;
  __device__ void operator()(index_t i) const { y[i] = Op::forward(x[i], p); }
};
template <typename Op, typename T>
struct FormulaB {
  const T *dy, *x;
  T* dx;
  T p;
  __device__ void operator()(index_t i) const { dx[i] = dy[i] * Op::derivative(x[i], p); }
};

}  // namespace

// The formula activations (convnet/activation_table.h): x (n) -> y (n)
template <typename Op, typename T>
void formula_forward(index_t n, const T* x, T* y, T p, cudaStream_t stream) {
  launch(n, FormulaF<Op, T>{x, y, p}, stream);
}
// dy, x (n) -> dx (n)
template <typename Op, typename T>
void formula_backward(index_t n, const T* dy, const T* x, T* dx, T p, cudaStream_t stream) {
  launch(n, FormulaB<Op, T>{dy, x, dx, p}, stream);
}

#define INSTANTIATE_FORMULA(name, Op)                                                       \
  template void formula_forward<math::Op, float>(index_t, const float*, float*, float,      \
                                                 cudaStream_t);                             \
  template void formula_forward<math::Op, double>(index_t, const double*, double*, double,  \
                                                  cudaStream_t);                            \
  template void formula_backward<math::Op, float>(index_t, const float*, const float*,      \
                                                  float*, float, cudaStream_t);             \
  template void formula_backward<math::Op, double>(index_t, const double*, const double*,   \
                                                   double*, double, cudaStream_t);
CONVNET_FORMULA_ACTIVATIONS(INSTANTIATE_FORMULA)
#undef INSTANTIATE_FORMULA

// x (n) -> y (n)
template <typename T>
void tanh_forward(index_t n, const T* x, T* y, cudaStream_t stream) {
  launch(n, TanhF<T>{x, y}, stream);
}
// dy, y (n) -> dx (n)
template <typename T>
void tanh_backward(index_t n, const T* dy, const T* y, T* dx, cudaStream_t stream) {
  launch(n, TanhB<T>{dy, y, dx}, stream);
}
// x (n) -> y (n)
template <typename T>
void sigmoid_forward(index_t n, const T* x, T* y, cudaStream_t stream) {
  launch(n, SigmoidF<T>{x, y}, stream);
}
// dy, y (n) -> dx (n)
template <typename T>
void sigmoid_backward(index_t n, const T* dy, const T* y, T* dx, cudaStream_t stream) {
  launch(n, SigmoidB<T>{dy, y, dx}, stream);
}
// x (n) -> y (n)
template <typename T>
void leaky_relu_forward(index_t n, const T* x, T* y, T slope, cudaStream_t stream) {
  launch(n, LeakyF<T>{x, y, slope}, stream);
}
// dy, x (n) -> dx (n)
template <typename T>
void leaky_relu_backward(index_t n, const T* dy, const T* x, T* dx, T slope,
                         cudaStream_t stream) {
  launch(n, LeakyB<T>{dy, x, dx, slope}, stream);
}
// x (n) -> y (n)
template <typename T>
void elu_forward(index_t n, const T* x, T* y, T alpha, T scale, cudaStream_t stream) {
  launch(n, EluF<T>{x, y, alpha, scale}, stream);
}
// dy, x (n) -> dx (n)
template <typename T>
void elu_backward(index_t n, const T* dy, const T* x, T* dx, T alpha, T scale,
                  cudaStream_t stream) {
  launch(n, EluB<T>{dy, x, dx, alpha, scale}, stream);
}

#define INSTANTIATE(T)                                                                       \
  template void tanh_forward<T>(index_t, const T*, T*, cudaStream_t);                        \
  template void tanh_backward<T>(index_t, const T*, const T*, T*, cudaStream_t);             \
  template void sigmoid_forward<T>(index_t, const T*, T*, cudaStream_t);                     \
  template void sigmoid_backward<T>(index_t, const T*, const T*, T*, cudaStream_t);          \
  template void leaky_relu_forward<T>(index_t, const T*, T*, T, cudaStream_t);               \
  template void leaky_relu_backward<T>(index_t, const T*, const T*, T*, T, cudaStream_t);    \
  template void elu_forward<T>(index_t, const T*, T*, T, T, cudaStream_t);                   \
  template void elu_backward<T>(index_t, const T*, const T*, T*, T, T, cudaStream_t);
INSTANTIATE(float)
INSTANTIATE(double)
#undef INSTANTIATE

}  // namespace cuda
}  // namespace convnet
