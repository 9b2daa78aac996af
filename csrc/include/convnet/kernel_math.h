// The formulas both devices compute, written once: csrc/cpu/*.cpp (g++) and csrc/cuda/*.cu
// (nvcc) include this file, so an activation, a recurrent cell, a pooling window or an
// upsampling coordinate cannot drift apart between the CPU and the GPU. Everything here is
// an inline __host__ __device__ function (CONVNET_HD is empty under g++).
//
// The float32 SIMD paths of the CPU keep their vectorised exp/tanh (cpu/vec_math.h); the
// cell formulas below are templates over the value type and an activation policy, so the
// CPU runs them on SIMD vectors and the GPU on scalars. The Numba and float64 reference
// versions stay separate on purpose: they are the independent oracles.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define CONVNET_HD __host__ __device__
#else
#define CONVNET_HD
#endif

namespace convnet {
namespace math {

// exp, expm1, tanh, fabs, floor: CUDA's float/double overloads in device code (libdevice,
// precise: the .cu files are built without --use_fast_math), the C++ library's on the host.
#if defined(__CUDA_ARCH__)
#define CONVNET_MATH_FN(name) \
  template <typename T>       \
  __device__ inline T name##_(T x) { return ::name(x); }
#else
#define CONVNET_MATH_FN(name) \
  template <typename T>       \
  CONVNET_HD inline T name##_(T x) { return std::name(x); }
#endif
CONVNET_MATH_FN(exp)
CONVNET_MATH_FN(expm1)
CONVNET_MATH_FN(tanh)
CONVNET_MATH_FN(fabs)
CONVNET_MATH_FN(floor)
#undef CONVNET_MATH_FN

// --------------------------------------------------------------------------- activations

// Through e^{-|x|}, which never overflows: 1/(1+e) for x >= 0, e/(1+e) below.
template <typename T>
CONVNET_HD inline T sigmoid(T x) {
  const T e = exp_(-fabs_(x));
  return x >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}
// From the saved output y = sigmoid(x).
template <typename T>
CONVNET_HD inline T sigmoid_grad(T dy, T y) {
  return dy * y * (T(1) - y);
}
// From the saved output y = tanh(x).
template <typename T>
CONVNET_HD inline T tanh_grad(T dy, T y) {
  return dy * (T(1) - y * y);
}
// ReLU when slope = 0.
template <typename T>
CONVNET_HD inline T leaky_relu(T x, T slope) {
  // ReLU (slope 0) of -inf is 0, where slope * -inf would be NaN; NaN stays NaN
  return x > T(0) || x != x ? x : (slope == T(0) ? T(0) : slope * x);
}
template <typename T>
CONVNET_HD inline T leaky_relu_grad(T dy, T x, T slope) {
  return x > T(0) ? dy : slope * dy;
}
// ELU, and SELU with its alpha and scale.
template <typename T>
CONVNET_HD inline T elu(T x, T alpha, T scale) {
  return scale * (x > T(0) ? x : alpha * expm1_(x));
}
template <typename T>
CONVNET_HD inline T elu_grad(T dy, T x, T alpha, T scale) {
  return dy * scale * (x <= T(0) ? alpha * exp_(x) : T(1));  // NaN x: 1, as PyTorch
}

// --------------------------------------------------------------------------- recurrent cells

// The activation policy of the cells for plain scalars (the GPU, the CPU's float64 path);
// the CPU's float32 path has its own over SIMD vectors (Lanes<float> in cpu/rnn.cpp).
template <typename T>
struct ScalarOps {
  using V = T;
  CONVNET_HD static T sig(T x) { return sigmoid(x); }
  CONVNET_HD static T tnh(T x) { return tanh_(x); }
  CONVNET_HD static T one() { return T(1); }
  CONVNET_HD static T zero() { return T(0); }
  CONVNET_HD static T relu(T x) { return x > T(0) ? x : T(0); }
  CONVNET_HD static T relu_grad(T g, T y) { return y > T(0) ? g : T(0); }
};

// LSTM (PyTorch's gate order i, f, g, o): pre-activations with their biases and c_{t-1}
// -> the activated gates (what backward keeps), c_t and h_t.
template <typename V>
struct LstmStep {
  V i, f, g, o, c, h;
};
template <class Ops, typename V>
CONVNET_HD inline LstmStep<V> lstm_forward(V pi, V pf, V pg, V po, V c_prev) {
  LstmStep<V> s;
  s.i = Ops::sig(pi);
  s.f = Ops::sig(pf);
  s.g = Ops::tnh(pg);
  s.o = Ops::sig(po);
  s.c = s.f * c_prev + s.i * s.g;
  s.h = s.o * Ops::tnh(s.c);
  return s;
}

// Activated gates, c_t, c_{t-1}, dh_t and dc (the gradient reaching c_t from step t+1)
// -> gradients of the four pre-activations and of c_{t-1}.
template <typename V>
struct LstmGrad {
  V di, df, dg, d_o, dc_prev;
};
template <class Ops, typename V>
CONVNET_HD inline LstmGrad<V> lstm_backward(V i, V f, V g, V o, V c, V c_prev, V dh, V dc) {
  const V one = Ops::one();
  const V tc = Ops::tnh(c);
  const V dct = dc + dh * o * (one - tc * tc);
  LstmGrad<V> d;
  d.di = dct * g * i * (one - i);
  d.df = dct * c_prev * f * (one - f);
  d.dg = dct * i * (one - g * g);
  d.d_o = dh * tc * o * (one - o);
  d.dc_prev = dct * f;
  return d;
}

// GRU (r, z, n with n = tanh(x_n + b_in + r * (W_hn h + b_hn))): pre_r, pre_z are the input
// and hidden projections plus both biases, xn = x_n + b_in, hn = W_hn h + b_hn.
template <typename V>
struct GruStep {
  V r, z, n, h;
};
template <class Ops, typename V>
CONVNET_HD inline GruStep<V> gru_forward(V pre_r, V pre_z, V xn, V hn, V h_prev) {
  GruStep<V> s;
  s.r = Ops::sig(pre_r);
  s.z = Ops::sig(pre_z);
  s.n = Ops::tnh(xn + s.r * hn);
  s.h = s.n + s.z * (h_prev - s.n);
  return s;
}

// Saved r, z, n, hn, h_{t-1} and dh_t -> gradients of pre_r, pre_z, xn, hn and the direct
// part of dh_{t-1} (W_hh's part is a GEMM).
template <typename V>
struct GruGrad {
  V dr, dz, dn, dhn, dh_prev;
};
template <class Ops, typename V>
CONVNET_HD inline GruGrad<V> gru_backward(V r, V z, V n, V hn, V h_prev, V dh) {
  const V one = Ops::one();
  GruGrad<V> d;
  d.dn = dh * (one - z) * (one - n * n);
  d.dz = dh * (h_prev - n) * z * (one - z);
  d.dr = d.dn * hn * r * (one - r);
  d.dhn = d.dn * r;
  d.dh_prev = dh * z;
  return d;
}

// Plain RNN: h = tanh(pre) or relu(pre); backward from the saved output h.
template <class Ops, typename V>
CONVNET_HD inline V rnn_forward(V pre, bool relu) {
  return relu ? Ops::relu(pre) : Ops::tnh(pre);
}
template <class Ops, typename V>
CONVNET_HD inline V rnn_backward(V h, V dh, bool relu) {
  return relu ? Ops::relu_grad(dh, h) : dh * (Ops::one() - h * h);
}

// --------------------------------------------------------------------------- pooling

// Output o's window along one axis: it starts at o*stride - pad; [lo, hi) is its part
// inside the input and `padded` its extent clipped to the padded input, which PyTorch
// divides by when count_include_pad. I is the index type (int on the GPU).
template <typename I>
struct PoolWindow {
  I lo, hi, padded;
};
template <typename I>
CONVNET_HD inline PoolWindow<I> pool_window(I o, I in, I k, I stride, I pad) {
  const I start = o * stride - pad;
  PoolWindow<I> w;
  w.lo = start > 0 ? start : I(0);
  w.hi = start + k < in ? start + k : in;
  w.padded = (start + k < in + pad ? start + k : in + pad) - start;
  return w;
}
// Average pooling's divisor for the window rows x cols.
template <typename I>
CONVNET_HD inline I pool_divisor(const PoolWindow<I>& rows, const PoolWindow<I>& cols,
                                 bool count_include_pad) {
  return count_include_pad ? rows.padded * cols.padded
                           : (rows.hi - rows.lo) * (cols.hi - cols.lo);
}
// The outputs [first, last] whose windows contain input i (window o covers i when
// o*stride - pad <= i < o*stride - pad + k), for backward passes written as gathers.
template <typename I>
CONVNET_HD inline void windows_containing(I i, I k, I stride, I pad, I out, I& first,
                                          I& last) {
  const I ip = i + pad;
  first = ip - k + 1 > 0 ? (ip - k + 1 + stride - 1) / stride : I(0);
  last = ip / stride < out - 1 ? ip / stride : out - 1;
}

// --------------------------------------------------------------------------- upsampling

// PyTorch's source coordinates. step = 1/scale when the caller gave a scale factor
// (scale > 0), else in/out.
// Nearest: src = min(floor(dst * step), in - 1), computed in float whatever the data type.
CONVNET_HD inline float nearest_step(std::int64_t in, std::int64_t out, double scale) {
  return scale > 0 ? static_cast<float>(1.0 / scale)
                   : static_cast<float>(in) / static_cast<float>(out);
}
CONVNET_HD inline std::int64_t nearest_source(std::int64_t d, std::int64_t in, std::int64_t out,
                                              float step) {
  if (out == in) return d;
  if (out == 2 * in) return d >> 1;
  const auto s = static_cast<std::int64_t>(floor_(static_cast<float>(d) * step));
  return s < in - 1 ? s : in - 1;
}

// Bilinear, per axis: with align_corners src = dst * (in - 1) / (out - 1) (0 for out == 1),
// otherwise src = max(step * (dst + 0.5) - 0.5, 0); i0 = min(floor(src), in - 1),
// i1 = i0 + 1 clamped to the input, weight of i1 = clamp(src - i0, 0, 1).
template <typename T>
CONVNET_HD inline T linear_step(std::int64_t in, std::int64_t out, bool align_corners,
                                double scale) {
  if (align_corners) return out > 1 ? static_cast<T>(in - 1) / static_cast<T>(out - 1) : T(0);
  return scale > 0 ? static_cast<T>(1.0 / scale) : static_cast<T>(in) / static_cast<T>(out);
}
template <typename T>
struct LinearSource {
  std::int64_t i0, i1;
  T l0, l1;  // weights of i0 and i1
};
template <typename T>
CONVNET_HD inline LinearSource<T> linear_source(std::int64_t d, std::int64_t in,
                                                std::int64_t out, T step, bool align_corners) {
  LinearSource<T> s;
  if (out == in) {
    s.i0 = s.i1 = d;
    s.l0 = T(1);
    s.l1 = T(0);
    return s;
  }
  T src = align_corners ? step * static_cast<T>(d) : step * (static_cast<T>(d) + T(0.5)) - T(0.5);
  if (!align_corners && src < T(0)) src = T(0);
  std::int64_t lo = static_cast<std::int64_t>(floor_(src));
  if (lo > in - 1) lo = in - 1;
  T lambda = src - static_cast<T>(lo);
  lambda = lambda < T(0) ? T(0) : (lambda > T(1) ? T(1) : lambda);
  s.i0 = lo;
  s.i1 = lo + (lo < in - 1 ? 1 : 0);
  s.l1 = lambda;
  s.l0 = T(1) - lambda;
  return s;
}

}  // namespace math
}  // namespace convnet
