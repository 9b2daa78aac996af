// Declarations of every CPU kernel (csrc/cpu/*.cpp); csrc/cuda mirrors the names.
#pragma once

#include "convnet/common.h"

namespace convnet {

// a: op(A) (M,K), b: op(B) (K,N), c: (M,N); row-major with leading dimensions.
template <typename T>
void gemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, T alpha, const T* a,
          index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc, int nthreads);

// Convolution geometry. Padding is given as top/left only; the output size (P,Q) is
// chosen by the caller, which is how asymmetric ("same" with an even kernel) padding works.
struct ConvGeom {
  index_t N, C, H, W;  // input
  index_t K, R, S;     // filters
  index_t P, Q;        // output
  index_t sh, sw, ph, pw, dh, dw;
  index_t crs() const { return C * R * S; }
  bool pointwise() const {
    return R == 1 && S == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0 && P == H && Q == W;
  }
};

// x (N,C,H,W), w (K,C,R,S), b (K) or null -> y (N,K,P,Q)
template <typename T>
void conv2d_forward(const ConvGeom& g, const T* x, const T* w, const T* b, T* y);
// dy (N,K,P,Q), w (K,C,R,S) -> dx (N,C,H,W)
template <typename T>
void conv2d_backward_data(const ConvGeom& g, const T* dy, const T* w, T* dx);
// dy (N,K,P,Q), x (N,C,H,W) -> dw (K,C,R,S)
template <typename T>
void conv2d_backward_weight(const ConvGeom& g, const T* dy, const T* x, T* dw);
// dy (N,K,P,Q) -> db (K)
template <typename T>
void conv2d_backward_bias(const ConvGeom& g, const T* dy, T* db);

struct PoolGeom {
  index_t N, C, H, W;  // input
  index_t P, Q;        // output
  index_t kh, kw, sh, sw, ph, pw;
};

// x (N,C,H,W) -> y (N,C,P,Q), indices (N,C,P,Q): flat h*W+w of the maximum in its plane
template <typename T>
void max_pool2d_forward(const PoolGeom& g, const T* x, T* y, std::int64_t* indices);
// dy (N,C,P,Q), indices (N,C,P,Q) -> dx (N,C,H,W)
template <typename T>
void max_pool2d_backward(const PoolGeom& g, const T* dy, const std::int64_t* indices, T* dx);
// x (N,C,H,W) -> y (N,C,P,Q); divisor as PyTorch (count_include_pad counts the zero padding)
template <typename T>
void avg_pool2d_forward(const PoolGeom& g, const T* x, T* y, bool count_include_pad);
// dy (N,C,P,Q) -> dx (N,C,H,W)
template <typename T>
void avg_pool2d_backward(const PoolGeom& g, const T* dy, T* dx, bool count_include_pad);

// Batch norm over x viewed as (N,C,L): statistics per channel over N*L values.
// x (N,C,L), weight/bias (C) -> y (N,C,L), mean/var(biased)/invstd (C)
template <typename T>
void batch_norm_forward_training(index_t N, index_t C, index_t L, const T* x, const T* weight,
                                 const T* bias, T* y, T* mean, T* var, T* invstd, double eps);
// x (N,C,L), weight/bias/running_mean/running_var (C) -> y (N,C,L)
template <typename T>
void batch_norm_forward_inference(index_t N, index_t C, index_t L, const T* x, const T* weight,
                                  const T* bias, const T* running_mean, const T* running_var,
                                  T* y, double eps);
// dy, x (N,C,L), weight/mean/invstd (C) -> dx (N,C,L), dweight/dbias (C)
template <typename T>
void batch_norm_backward(index_t N, index_t C, index_t L, const T* dy, const T* x,
                         const T* weight, const T* mean, const T* invstd, T* dx, T* dweight,
                         T* dbias);

// Element-wise activations over n contiguous values. Forward: x -> y; backward: dy and the
// saved y (tanh, sigmoid) or x (the ReLU family, ELU) -> dx.
template <typename T>
void tanh_forward(index_t n, const T* x, T* y);
template <typename T>
void tanh_backward(index_t n, const T* dy, const T* y, T* dx);
template <typename T>
void sigmoid_forward(index_t n, const T* x, T* y);
template <typename T>
void sigmoid_backward(index_t n, const T* dy, const T* y, T* dx);
template <typename T>
void leaky_relu_forward(index_t n, const T* x, T* y, T slope);
template <typename T>
void leaky_relu_backward(index_t n, const T* dy, const T* x, T* dx, T slope);
template <typename T>
void elu_forward(index_t n, const T* x, T* y, T alpha, T scale);
template <typename T>
void elu_backward(index_t n, const T* dy, const T* x, T* dx, T alpha, T scale);

// Upsampling (csrc/cpu/upsample.cpp) with PyTorch's coordinate rules. scale_h/scale_w are
// the user's scale factors (> 0), or <= 0 when the output size was given (the source step
// is then H/P, W/Q).
struct UpsampleGeom {
  index_t N, C, H, W;  // input
  index_t P, Q;        // output
};

// x (N,C,H,W) -> y (N,C,P,Q)
template <typename T>
void upsample_nearest2d_forward(const UpsampleGeom& g, const T* x, T* y, double scale_h,
                                double scale_w);
// dy (N,C,P,Q) -> dx (N,C,H,W)
template <typename T>
void upsample_nearest2d_backward(const UpsampleGeom& g, const T* dy, T* dx, double scale_h,
                                 double scale_w);
// x (N,C,H,W) -> y (N,C,P,Q)
template <typename T>
void upsample_bilinear2d_forward(const UpsampleGeom& g, const T* x, T* y, bool align_corners,
                                 double scale_h, double scale_w);
// dy (N,C,P,Q) -> dx (N,C,H,W)
template <typename T>
void upsample_bilinear2d_backward(const UpsampleGeom& g, const T* dy, T* dx, bool align_corners,
                                  double scale_h, double scale_w);

}  // namespace convnet
