// Declarations of the tensor-core launchers (gemm_tc.cu, conv2d_tc.cu), beside kernels.cuh:
// the same arguments as the CUDA-core kernels of the same name without `_tc`, for
//   T = f16, bf16: 16-bit storage, float32 accumulation, results rounded once to T;
//   T = float: TF32 tensor cores (inputs rounded to TF32, float32 accumulation), the
//       opt-in of convnet.backends.cuda.matmul.allow_tf32 / cudnn.allow_tf32.
// They need sm_80 or later (the binding checks the device first).
#pragma once

#include "kernels.cuh"
#include "tc_ops.cuh"

namespace convnet {
namespace cuda {

// a: op(A) (M,K), b: op(B) (K,N), c: (M,N) row-major; c is T or float32 (TC).
// beta == 0 never reads c.
template <typename T, typename TC>
void gemm_tc(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha,
             const T* a, index_t lda, const T* b, index_t ldb, float beta, TC* c, index_t ldc,
             cudaStream_t stream);

// x (N,C,H,W), w (K,C,R,S), b (K, float32) or null -> y (N,K,P,Q)
template <typename T>
void conv2d_forward_tc(const ConvGeom& g, const T* x, const T* w, const float* b, T* y,
                       const int4* conv_table, cudaStream_t stream);
// dy (N,K,P,Q), w (K,C,R,S) -> dx (N,C,H,W)
template <typename T>
void conv2d_backward_data_tc(const ConvGeom& g, const T* dy, const T* w, T* dx,
                             const int4* dgrad_table, cudaStream_t stream);
// dy (N,K,P,Q), x (N,C,H,W) -> dw (K,C,R,S) in T or float32 (TO). `work`: K*C*R*S floats
// of scratch where the split reduction adds up (16-bit TO; a float32 dw is its own sum).
template <typename T, typename TO>
void conv2d_backward_weight_tc(const ConvGeom& g, const T* dy, const T* x, TO* dw,
                               const int4* conv_table, float* work, cudaStream_t stream);

}  // namespace cuda
}  // namespace convnet
