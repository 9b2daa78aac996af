// Declarations of every CUDA kernel launcher (csrc/cuda/*.cu), mirroring csrc/cpu/kernels.h:
// same names, same argument order, plus the stream the work is queued on. Pointers are
// device pointers; every launcher only queues work (nothing waits for the device).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "cpu/kernels.h"  // ConvGeom, PoolGeom: one geometry for both devices

namespace convnet {
namespace cuda {

using convnet::ConvGeom;
using convnet::PoolGeom;
using index_t = std::int64_t;

// a: op(A) (M,K), b: op(B) (K,N), c: (M,N); row-major with leading dimensions.
// beta == 0 never reads c (it may hold NaN), as on the CPU.
template <typename T>
void gemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, T alpha, const T* a,
          index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc, cudaStream_t stream);

// Index deltas of the implicit GEMMs, one int4 per row of the reduction, built by the caller
// (convnet/kernels/_cuda.py) once per geometry:
//   conv_table:  crs (C*R*S rows): {c*H*W + r*dh*W + s*dw, r*dh, s*dw, 0}
//   dgrad_table: krs (K*R*S rows): {k*P*Q, r*dh, s*dw, (k*C*R + r)*S + s}
// x (N,C,H,W), w (K,C,R,S), b (K) or null -> y (N,K,P,Q)
template <typename T>
void conv2d_forward(const ConvGeom& g, const T* x, const T* w, const T* b, T* y,
                    const int4* conv_table, cudaStream_t stream);
// dy (N,K,P,Q), w (K,C,R,S) -> dx (N,C,H,W)
template <typename T>
void conv2d_backward_data(const ConvGeom& g, const T* dy, const T* w, T* dx,
                          const int4* dgrad_table, cudaStream_t stream);
// dy (N,K,P,Q), x (N,C,H,W) -> dw (K,C,R,S)
template <typename T>
void conv2d_backward_weight(const ConvGeom& g, const T* dy, const T* x, T* dw,
                            const int4* conv_table, cudaStream_t stream);
// dy (N,K,P,Q) -> db (K)
template <typename T>
void conv2d_backward_bias(const ConvGeom& g, const T* dy, T* db, cudaStream_t stream);

// x (N,C,H,W) -> y (N,C,P,Q), indices (N,C,P,Q): flat h*W+w of the maximum in its plane
template <typename T>
void max_pool2d_forward(const PoolGeom& g, const T* x, T* y, std::int64_t* indices,
                        cudaStream_t stream);
// dy (N,C,P,Q), indices (N,C,P,Q) -> dx (N,C,H,W); indices outside the plane are skipped
template <typename T>
void max_pool2d_backward(const PoolGeom& g, const T* dy, const std::int64_t* indices, T* dx,
                         cudaStream_t stream);
// x (N,C,H,W) -> y (N,C,P,Q); divisor as PyTorch (count_include_pad counts the zero padding)
template <typename T>
void avg_pool2d_forward(const PoolGeom& g, const T* x, T* y, bool count_include_pad,
                        cudaStream_t stream);
// dy (N,C,P,Q) -> dx (N,C,H,W)
template <typename T>
void avg_pool2d_backward(const PoolGeom& g, const T* dy, T* dx, bool count_include_pad,
                         cudaStream_t stream);

// Batch norm over x viewed as (N,C,L). `work` is scratch device memory of
// batch_norm_workspace(N, C, L) doubles (partial sums of the split reductions).
index_t batch_norm_workspace(index_t N, index_t C, index_t L);
// x (N,C,L), weight/bias (C) -> y (N,C,L), mean/var(biased)/invstd (C)
template <typename T>
void batch_norm_forward_training(index_t N, index_t C, index_t L, const T* x, const T* weight,
                                 const T* bias, T* y, T* mean, T* var, T* invstd, double eps,
                                 double* work, cudaStream_t stream);
// x (N,C,L), weight/bias/running_mean/running_var (C) -> y (N,C,L)
template <typename T>
void batch_norm_forward_inference(index_t N, index_t C, index_t L, const T* x, const T* weight,
                                  const T* bias, const T* running_mean, const T* running_var,
                                  T* y, double eps, double* work, cudaStream_t stream);
// dy, x (N,C,L), weight/mean/invstd (C) -> dx (N,C,L), dweight/dbias (C)
template <typename T>
void batch_norm_backward(index_t N, index_t C, index_t L, const T* dy, const T* x,
                         const T* weight, const T* mean, const T* invstd, T* dx, T* dweight,
                         T* dbias, double* work, cudaStream_t stream);

// Element-wise activations over n contiguous values (see csrc/cpu/activation.cpp).
template <typename T>
void tanh_forward(index_t n, const T* x, T* y, cudaStream_t stream);
template <typename T>
void tanh_backward(index_t n, const T* dy, const T* y, T* dx, cudaStream_t stream);
template <typename T>
void sigmoid_forward(index_t n, const T* x, T* y, cudaStream_t stream);
template <typename T>
void sigmoid_backward(index_t n, const T* dy, const T* y, T* dx, cudaStream_t stream);
template <typename T>
void leaky_relu_forward(index_t n, const T* x, T* y, T slope, cudaStream_t stream);
template <typename T>
void leaky_relu_backward(index_t n, const T* dy, const T* x, T* dx, T slope,
                         cudaStream_t stream);
template <typename T>
void elu_forward(index_t n, const T* x, T* y, T alpha, T scale, cudaStream_t stream);
template <typename T>
void elu_backward(index_t n, const T* dy, const T* x, T* dx, T alpha, T scale,
                  cudaStream_t stream);

// Device facts for convnet.backends(): name, compute capability, SMs, runtime version.
const char* compiled_archs();
int runtime_version();

}  // namespace cuda
}  // namespace convnet
