// The output epilogue of the fused kernels (conv2d_forward_act, linear_forward_act) as one
// element-wise pass after the product: y = act(y + bias). The formulas are the CPU's
// (convnet/epilogue_math.h); the CPU applies them in registers (csrc/cpu/epilogue.h).
#include <cuda_runtime.h>

#include "convnet/cuda_utils.cuh"
#include "convnet/epilogue_math.h"
#include "kernels.cuh"

namespace convnet {
namespace cuda {

namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void bias_act_kernel(index_t n, T* y, const T* bias, index_t inner, index_t count,
                                int act, T p1, T p2) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n;
       i += index_t(gridDim.x) * blockDim.x) {
    T v = y[i];
    if (bias) v += bias[(i / inner) % count];
    y[i] = math::epilogue_act(act, v, p1, p2);
  }
}

}  // namespace

// y (n) in place: y[i] = act(y[i] + bias[(i / inner) % count]) (bias may be null)
template <typename T>
void bias_act(index_t n, T* y, const T* bias, index_t inner, index_t count, int act, T p1, T p2,
              cudaStream_t stream) {
  if (n <= 0 || (bias == nullptr && act == kActNone)) return;
  const unsigned grid = grid_for(n, kThreads, 16 * index_t(sm_count()));
  CONVNET_LAUNCH(grid, kThreads, 0, stream, bias_act_kernel<T>)(n, y, bias, inner, count, act,
                                                                 p1, p2);
  CUDA_CHECK_LAUNCH();
}

template void bias_act<float>(index_t, float*, const float*, index_t, index_t, int, float, float,
                              cudaStream_t);
template void bias_act<double>(index_t, double*, const double*, index_t, index_t, int, double,
                               double, cudaStream_t);

}  // namespace cuda
}  // namespace convnet
