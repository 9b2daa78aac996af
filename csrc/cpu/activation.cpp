// Element-wise activations and their gradients, over flat contiguous arrays.
// float32 uses a vectorised exp (Cephes' polynomial, ~1 ulp) so tanh, sigmoid and ELU run at
// SIMD width; the rest is the formulas of convnet/kernel_math.h, shared with the CUDA
// kernels (float64 through the C library's functions: gradient checks, not speed).
#include <cmath>
#include <cstring>

#include "convnet/activation_table.h"
#include "convnet/kernel_math.h"
#include "vec_math.h"

namespace convnet {

namespace {

using namespace vecmath;

int ew_threads(index_t n) { return threads_for(double(n), 1 << 16); }

// Applies f to [0, n) in SIMD blocks with a padded tail, over threads.
template <typename F>
void map_f32(index_t n, F&& f) {
  const index_t blocks = ceil_div(n, kLanesF);
#pragma omp parallel for schedule(static) num_threads(ew_threads(n))
  for (index_t b = 0; b < blocks; ++b) f(b * kLanesF, std::min<index_t>(kLanesF, n - b * kLanesF));
}

// One SIMD block: full width from memory, or a zero-padded copy for the tail.
template <typename G>
inline void block1(const float* x, float* y, index_t i, index_t len, G&& g) {
  if (len == kLanesF) {
    store(y + i, g(load(x + i)));
    return;
  }
  alignas(64) float tx[kLanesF] = {}, ty[kLanesF];
  std::memcpy(tx, x + i, sizeof(float) * len);
  store(ty, g(load(tx)));
  std::memcpy(y + i, ty, sizeof(float) * len);
}

template <typename G>
inline void block2(const float* a, const float* b, float* y, index_t i, index_t len, G&& g) {
  if (len == kLanesF) {
    store(y + i, g(load(a + i), load(b + i)));
    return;
  }
  alignas(64) float ta[kLanesF] = {}, tb[kLanesF] = {}, ty[kLanesF];
  std::memcpy(ta, a + i, sizeof(float) * len);
  std::memcpy(tb, b + i, sizeof(float) * len);
  store(ty, g(load(ta), load(tb)));
  std::memcpy(y + i, ty, sizeof(float) * len);
}

// f captures by value and each thread runs its own copy: a scalar read through the shared
// closure is a load through a pointer the stores may alias, which stops GCC vectorising.
template <typename T, typename F>
void map_scalar(index_t n, const F& f) {
#pragma omp parallel num_threads(ew_threads(n))
  {
    const F local = f;
#pragma omp for simd schedule(static)
    for (index_t i = 0; i < n; ++i) local(i);
  }
}

}  // namespace

// x (n) -> y (n)
template <typename T>
void tanh_forward(index_t n, const T* x, T* y) {
  if constexpr (std::is_same_v<T, float>) {
    map_f32(n, [&](index_t i, index_t len) { block1(x, y, i, len, vtanh); });
  } else {
    map_scalar<T>(n, [=](index_t i) { y[i] = math::tanh_(x[i]); });
  }
}

// dy, y (n) -> dx (n) = dy * (1 - y^2)
template <typename T>
void tanh_backward(index_t n, const T* dy, const T* y, T* dx) {
  map_scalar<T>(n, [=](index_t i) { dx[i] = math::tanh_grad(dy[i], y[i]); });
}

// x (n) -> y (n)
template <typename T>
void sigmoid_forward(index_t n, const T* x, T* y) {
  if constexpr (std::is_same_v<T, float>) {
    map_f32(n, [&](index_t i, index_t len) { block1(x, y, i, len, vsigmoid); });
  } else {
    map_scalar<T>(n, [=](index_t i) { y[i] = math::sigmoid(x[i]); });
  }
}

// dy, y (n) -> dx (n) = dy * y * (1 - y)
template <typename T>
void sigmoid_backward(index_t n, const T* dy, const T* y, T* dx) {
  map_scalar<T>(n, [=](index_t i) { dx[i] = math::sigmoid_grad(dy[i], y[i]); });
}

// x (n) -> y (n) = x > 0 ? x : slope * x   (ReLU when slope = 0)
template <typename T>
void leaky_relu_forward(index_t n, const T* x, T* y, T slope) {
  // one load, then a select: vectorises where a branch would not
  map_scalar<T>(n, [=](index_t i) { y[i] = math::leaky_relu(x[i], slope); });
}

// dy, x (n) -> dx (n) = x > 0 ? dy : slope * dy
template <typename T>
void leaky_relu_backward(index_t n, const T* dy, const T* x, T* dx, T slope) {
  map_scalar<T>(n, [=](index_t i) { dx[i] = math::leaky_relu_grad(dy[i], x[i], slope); });
}

// x (n) -> y (n) = scale * (x > 0 ? x : alpha * (e^x - 1))   (SELU: its alpha and scale)
template <typename T>
void elu_forward(index_t n, const T* x, T* y, T alpha, T scale) {
  if constexpr (std::is_same_v<T, float>) {
    const VF va = splat(alpha), vs = splat(scale);
    map_f32(n, [&](index_t i, index_t len) {
      block1(x, y, i, len, [&](VF v) {
        const VF neg = va * vexpm1(v < splat(0.f) ? v : splat(0.f));
        VF out = vs * (v > splat(0.f) ? v : neg);
        return v != v ? v : out;
      });
    });
  } else {
    map_scalar<T>(n, [=](index_t i) { y[i] = math::elu(x[i], alpha, scale); });
  }
}

// dy, x (n) -> dx (n) = dy * scale * (x > 0 ? 1 : alpha * e^x)
template <typename T>
void elu_backward(index_t n, const T* dy, const T* x, T* dx, T alpha, T scale) {
  if constexpr (std::is_same_v<T, float>) {
    const VF va = splat(alpha), vs = splat(scale);
    map_f32(n, [&](index_t i, index_t len) {
      block2(dy, x, dx, i, len, [&](VF g, VF v) {
        const VF d = v <= splat(0.f) ? va * vexp(v < splat(0.f) ? v : splat(0.f)) : splat(1.f);
        return g * vs * d;
      });
    });
  } else {
    map_scalar<T>(n, [=](index_t i) { dx[i] = math::elu_grad(dy[i], x[i], alpha, scale); });
  }
}

// The formula activations (convnet/activation_table.h): x (n) -> y (n) = Op(x, p)
template <typename Op, typename T>
void formula_forward(index_t n, const T* x, T* y, T p) {
  map_scalar<T>(n, [=](index_t i) { y[i] = Op::forward(x[i], p); });
}

// dy, x (n) -> dx (n) = dy * Op'(x, p)
template <typename Op, typename T>
void formula_backward(index_t n, const T* dy, const T* x, T* dx, T p) {
  map_scalar<T>(n, [=](index_t i) { dx[i] = dy[i] * Op::derivative(x[i], p); });
}

#define INSTANTIATE_FORMULA(name, Op)                                                     \
  template void formula_forward<math::Op, float>(index_t, const float*, float*, float);   \
  template void formula_forward<math::Op, double>(index_t, const double*, double*, double); \
  template void formula_backward<math::Op, float>(index_t, const float*, const float*,    \
                                                  float*, float);                         \
  template void formula_backward<math::Op, double>(index_t, const double*, const double*, \
                                                   double*, double);
CONVNET_FORMULA_ACTIVATIONS(INSTANTIATE_FORMULA)
#undef INSTANTIATE_FORMULA

#define INSTANTIATE(T)                                                              \
  template void tanh_forward<T>(index_t, const T*, T*);                             \
  template void tanh_backward<T>(index_t, const T*, const T*, T*);                  \
  template void sigmoid_forward<T>(index_t, const T*, T*);                          \
  template void sigmoid_backward<T>(index_t, const T*, const T*, T*);               \
  template void leaky_relu_forward<T>(index_t, const T*, T*, T);                    \
  template void leaky_relu_backward<T>(index_t, const T*, const T*, T*, T);         \
  template void elu_forward<T>(index_t, const T*, T*, T, T);                        \
  template void elu_backward<T>(index_t, const T*, const T*, T*, T, T);
INSTANTIATE(float)
INSTANTIATE(double)
#undef INSTANTIATE

}  // namespace convnet
