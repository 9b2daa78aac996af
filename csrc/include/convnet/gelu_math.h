// GELU and its derivative, written once for csrc/cpu (g++) and csrc/cuda (nvcc): PyTorch's
// approximate='none' (x * Phi(x), Phi through erf) and approximate='tanh'.
#pragma once

#include <cmath>

#include "convnet/kernel_math.h"  // CONVNET_HD and the math:: namespace

namespace convnet {
namespace math {

// p: 0 exact, 1 tanh approximation; the saved tensor for backward is x. Written without
// the cancellation of 1 + erf(x / sqrt 2) and 1 + tanh(u) for negative x, where float32
// would keep few correct digits: Phi(x) = erfc(-x / sqrt 2) / 2 and
// (1 + tanh(u)) / 2 = sigmoid(2u).
struct Gelu {
  // x * Phi(x), or x * sigmoid(2u) with u = sqrt(2/pi) (x + 0.044715 x^3)
  template <typename T>
  CONVNET_HD static T forward(T x, T p) {
    using std::erfc;
    using std::exp;
    if (p != T(0)) return x / (T(1) + exp(T(-2) * u(x)));
    return T(0.5) * x * erfc(x * T(-0.7071067811865476));
  }
  // Phi(x) + x phi(x), or s + 2 x s (1 - s) u'(x) with s = sigmoid(2u)
  template <typename T>
  CONVNET_HD static T derivative(T x, T p) {
    using std::erfc;
    using std::exp;
    if (p != T(0)) {
      const T s = T(1) / (T(1) + exp(T(-2) * u(x)));
      return s + T(2) * x * s * (T(1) - s) * T(0.7978845608028654) *
                     (T(1) + T(3) * T(0.044715) * x * x);
    }
    return T(0.5) * erfc(x * T(-0.7071067811865476)) +
           x * exp(T(-0.5) * x * x) * T(0.3989422804014327);
  }
  template <typename T>
  CONVNET_HD static T u(T x) {
    return T(0.7978845608028654) * (x + T(0.044715) * x * x * x);
  }
};

}  // namespace math
}  // namespace convnet
