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
using convnet::UpsampleGeom;
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
// The fused kernels' epilogue as a pass (epilogue.cu): y (n) in place,
// y[i] = act(y[i] + bias[(i / inner) % count]), act a code of convnet/epilogue_math.h
template <typename T>
void bias_act(index_t n, T* y, const T* bias, index_t inner, index_t count, int act, T p1, T p2,
              cudaStream_t stream);
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
// The formula activations of convnet/activation_table.h (see csrc/cpu/kernels.h).
template <typename Op, typename T>
void formula_forward(index_t n, const T* x, T* y, T p, cudaStream_t stream);
template <typename Op, typename T>
void formula_backward(index_t n, const T* dy, const T* x, T* dx, T p, cudaStream_t stream);

// Recurrent cells, one time step over a batch (see csrc/cpu/rnn.cpp for the layouts).
// gates (B,4H), bias (4H), c_prev (B,H) -> h, c (B,H), act (B,4H) (act may be gates)
template <typename T>
void lstm_cell_forward(index_t B, index_t H, const T* gates, const T* bias, const T* c_prev, T* h,
                       T* c, T* act, cudaStream_t stream);
// act (B,4H), c_prev, c, dh, dc (B,H) -> dgates (B,4H), dc_prev (B,H), db (4H)
template <typename T>
void lstm_cell_backward(index_t B, index_t H, const T* act, const T* c_prev, const T* c,
                        const T* dh, const T* dc, T* dgates, T* dc_prev, T* db, bool accumulate,
                        cudaStream_t stream);
// gx, gh (B,3H), b_ih, b_hh (3H), h_prev (B,H) -> h (B,H), act (B,4H)
template <typename T>
void gru_cell_forward(index_t B, index_t H, const T* gx, const T* gh, const T* b_ih,
                      const T* b_hh, const T* h_prev, T* h, T* act, cudaStream_t stream);
// act (B,4H), h_prev, dh (B,H) -> dgx, dgh (B,3H), dh_prev (B,H), dbx, dbh (3H)
template <typename T>
void gru_cell_backward(index_t B, index_t H, const T* act, const T* h_prev, const T* dh, T* dgx,
                       T* dgh, T* dh_prev, T* dbx, T* dbh, bool accumulate, cudaStream_t stream);
// pre (B,H), bias (H) -> h (B,H)
template <typename T>
void rnn_cell_forward(index_t B, index_t H, const T* pre, const T* bias, T* h, bool relu,
                      cudaStream_t stream);
// h, dh (B,H) -> dpre (B,H), db (H)
template <typename T>
void rnn_cell_backward(index_t B, index_t H, const T* h, const T* dh, T* dpre, T* db, bool relu,
                       bool accumulate, cudaStream_t stream);
// The recurrence of one layer direction (mode 0 lstm, 1 gru, 2 rnn_tanh, 3 rnn_relu):
// xproj (T,B,G*H) consumed, w_hh (G*H,H), b_ih, b_hh (G*H), hbuf (T+1,B,H), cbuf (T+1,B,H)
// LSTM, act (T,B,4H) GRU. Per step: the gemm above on `stream`, then the fused cell.
template <typename T>
void rnn_recurrence_forward(int mode, index_t Tn, index_t B, index_t H, T* xproj, const T* w_hh,
                            const T* b_ih, const T* b_hh, T* hbuf, T* cbuf, T* act, bool reverse,
                            cudaStream_t stream);
// dH (T+1,B,H) and dc (B,H) in/out -> dgx, dgh (T,B,G*H), dbx, dbh (G*H)
template <typename T>
void rnn_recurrence_backward(int mode, index_t Tn, index_t B, index_t H, const T* w_hh,
                             const T* hbuf, const T* cbuf, const T* act, T* dH, T* dc, T* dgx,
                             T* dgh, T* dbx, T* dbh, bool reverse, cudaStream_t stream);

// Upsampling (see csrc/cpu/upsample.cpp); scale_h/w: the scale factors given, or <= 0.
// x (N,C,H,W) -> y (N,C,P,Q)
template <typename T>
void upsample_nearest2d_forward(const UpsampleGeom& g, const T* x, T* y, double scale_h,
                                double scale_w, cudaStream_t stream);
// dy (N,C,P,Q) -> dx (N,C,H,W)
template <typename T>
void upsample_nearest2d_backward(const UpsampleGeom& g, const T* dy, T* dx, double scale_h,
                                 double scale_w, cudaStream_t stream);
// x (N,C,H,W) -> y (N,C,P,Q)
template <typename T>
void upsample_bilinear2d_forward(const UpsampleGeom& g, const T* x, T* y, bool align_corners,
                                 double scale_h, double scale_w, cudaStream_t stream);
// dy (N,C,P,Q) -> dx (N,C,H,W)
template <typename T>
void upsample_bilinear2d_backward(const UpsampleGeom& g, const T* dy, T* dx, bool align_corners,
                                  double scale_h, double scale_w, cudaStream_t stream);

// Device facts for convnet.backends(): name, compute capability, SMs, runtime version.
const char* compiled_archs();
int runtime_version();

}  // namespace cuda
}  // namespace convnet
