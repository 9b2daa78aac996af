// GELU and its derivative, written once for csrc/cpu (g++) and csrc/cuda (nvcc): PyTorch's
// approximate='none' (x * Phi(x), Phi through erf) and approximate='tanh'.
#pragma once

#include <cmath>

#if defined(__CUDACC__)
#define CONVNET_HD __host__ __device__
#else
#define CONVNET_HD
#endif

namespace convnet {
namespace math {

// p: 0 exact (erf), 1 tanh approximation; the saved tensor for backward is x.
struct Gelu {
  // 0.5 x (1 + erf(x / sqrt 2)), or 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  template <typename T>
  CONVNET_HD static T forward(T x, T p) {
    using std::erf;
    using std::tanh;
    if (p != T(0)) return T(0.5) * x * (T(1) + tanh(T(0.7978845608028654) * (x + T(0.044715) * x * x * x)));
    return T(0.5) * x * (T(1) + erf(x * T(0.7071067811865476)));
  }
  // dy/dx: Phi(x) + x phi(x), or the derivative of the tanh form
  template <typename T>
  CONVNET_HD static T derivative(T x, T p) {
    using std::erf;
    using std::exp;
    using std::tanh;
    if (p != T(0)) {
      const T k = T(0.7978845608028654);
      const T t = tanh(k * (x + T(0.044715) * x * x * x));
      return T(0.5) * (T(1) + t) +
             T(0.5) * x * (T(1) - t * t) * k * (T(1) + T(3) * T(0.044715) * x * x);
    }
    return T(0.5) * (T(1) + erf(x * T(0.7071067811865476))) +
           x * exp(T(-0.5) * x * x) * T(0.3989422804014327);
  }
};

}  // namespace math
}  // namespace convnet
