// Declarations of every CPU kernel (csrc/cpu/*.cpp); csrc/cuda mirrors the names.
#pragma once

#include "convnet/activation_table.h"
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
// y = act(conv(x, w) + b) with the bias and activation applied in registers; act: the
// codes of convnet/epilogue_math.h, p1/p2 its parameters.
template <typename T>
void conv2d_forward_act(const ConvGeom& g, const T* x, const T* w, const T* b, T* y, int act,
                        T p1, T p2);
// x (M,K), w (N,K), b (N) or null -> y (M,N) = act(x w^T + b), the same epilogue (linear.cpp)
template <typename T>
void linear_forward_act(index_t M, index_t N, index_t K, const T* x, const T* w, const T* b,
                        T* y, int act, T p1, T p2, int nthreads);
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
// The formula activations of convnet/activation_table.h (Op a struct of convnet::math):
// x -> y = Op::forward(x, p); dy, x -> dx = dy * Op::derivative(x, p)
template <typename Op, typename T>
void formula_forward(index_t n, const T* x, T* y, T p);
template <typename Op, typename T>
void formula_backward(index_t n, const T* dy, const T* x, T* dx, T p);

// Recurrent cells (rnn.cpp), one time step over a batch; gate order as PyTorch's.
// gates (B,4H) pre-activations i,f,g,o less the bias (4H); c_prev (B,H) -> h, c (B,H),
// act (B,4H) (may alias gates)
template <typename T>
void lstm_cell_forward(index_t B, index_t H, const T* gates, const T* bias, const T* c_prev, T* h,
                       T* c, T* act);
// act (B,4H), c_prev, c, dh, dc (B,H) -> dgates (B,4H), dc_prev (B,H) (may alias dc), db (4H)
template <typename T>
void lstm_cell_backward(index_t B, index_t H, const T* act, const T* c_prev, const T* c,
                        const T* dh, const T* dc, T* dgates, T* dc_prev, T* db,
                        bool accumulate);
// gx, gh (B,3H), b_ih, b_hh (3H), h_prev (B,H) -> h (B,H), act (B,4H): r, z, n, W_hn h + b_hn
template <typename T>
void gru_cell_forward(index_t B, index_t H, const T* gx, const T* gh, const T* b_ih,
                      const T* b_hh, const T* h_prev, T* h, T* act);
// act (B,4H), h_prev, dh (B,H) -> dgx, dgh (B,3H), dh_prev (B,H), dbx, dbh (3H)
template <typename T>
void gru_cell_backward(index_t B, index_t H, const T* act, const T* h_prev, const T* dh,
                       T* dgx, T* dgh, T* dh_prev, T* dbx, T* dbh, bool accumulate);
// pre (B,H), bias (H) -> h (B,H) = tanh or relu of pre + bias (may alias pre)
template <typename T>
void rnn_cell_forward(index_t B, index_t H, const T* pre, const T* bias, T* h, bool relu);
// h, dh (B,H) -> dpre (B,H), db (H)
template <typename T>
void rnn_cell_backward(index_t B, index_t H, const T* h, const T* dh, T* dpre, T* db, bool relu,
                       bool accumulate);

// Whole-sequence recurrence (mode 0 lstm, 1 gru, 2 rnn_tanh, 3 rnn_relu; G = 4, 3, 1, 1):
// xproj (T,B,G*H) in/out, w_hh (G*H,H), b_ih, b_hh (G*H), hbuf/cbuf (T+1,B,H), act (T,B,4H) GRU
template <typename T>
void rnn_recurrence_forward(int mode, index_t Tn, index_t B, index_t H, T* xproj, const T* w_hh,
                            const T* b_ih, const T* b_hh, T* hbuf, T* cbuf, T* act, bool reverse,
                            int nthreads);
// w_hh, hbuf, cbuf, act as above, dH (T+1,B,H) in/out, dc (B,H) in/out -> dgx, dgh (T,B,G*H),
// dbx, dbh (G*H)
template <typename T>
void rnn_recurrence_backward(int mode, index_t Tn, index_t B, index_t H, const T* w_hh,
                             const T* hbuf, const T* cbuf, const T* act, T* dH, T* dc, T* dgx,
                             T* dgh, T* dbx, T* dbh, bool reverse, int nthreads);

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
