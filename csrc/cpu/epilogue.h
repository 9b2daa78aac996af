// Output epilogues: what a kernel does to its output values while they are still in
// registers, before the one store: add a bias (one value per output row, e.g. a
// convolution's filter, or per column, e.g. a linear layer's output feature), then an
// activation (convnet/epilogue_math.h). Used by the GEMM micro-kernel (gemm.h), the
// convolution's direct path and its scatter (conv2d.cpp) and the linear layer (linear.cpp);
// any other kernel that writes output tiles can take one the same way.
//
// The float32 activations are the vectorised ones of the element-wise kernels (vec_math.h)
// and the float64 ones the same scalar formulas, so that a fused output equals the unfused
// conv/linear followed by the activation kernel bit for bit.
#pragma once

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "convnet/epilogue_math.h"
#include "gemm.h"
#include "vec_math.h"

namespace convnet {

template <typename T>
struct Epilogue {
  static constexpr bool active = true;
  const T* bias = nullptr;
  bool bias_per_col = false;  // bias[col] rather than bias[row]
  int act = kActNone;
  T p1 = T(0), p2 = T(0);

  bool trivial() const { return bias == nullptr && act == kActNone; }

  // v holds the values of row `row`, columns [col, col + lanes) (lanes <= the width of V;
  // the lanes past them are ignored).
  template <typename V>
  V vec(V v, index_t row, index_t col, int lanes) const {
    if (bias) {
      if (bias_per_col) {
        V b{};
        std::memcpy(&b, bias + col, sizeof(T) * lanes);
        v += b;
      } else {
        v += bias[row] - V{};  // a broadcast (s - (+0) is s for every s)
      }
    }
    return activate(v);
  }

  template <typename V>
  V activate(V v) const {
    if (act == kActNone) return v;
    if (act == kActLeakyRelu) {  // math::leaky_relu on every lane: NaN kept, relu(-inf) = 0
      const V zero{};
      const V neg = p1 == T(0) ? zero : v * (p1 - V{});
      return (v > zero) | (v != v) ? v : neg;
    }
    if constexpr (std::is_same_v<T, float> && sizeof(V) == sizeof(vecmath::VF)) {
      using namespace vecmath;
      if (act == kActTanh) return vtanh(v);
      if (act == kActSigmoid) return vsigmoid(v);
      if (act == kActElu) {  // as elu_forward in activation.cpp
        const VF neg = splat(p1) * vexpm1(v < splat(0.f) ? v : splat(0.f));
        const VF out = splat(p2) * (v > splat(0.f) ? v : neg);
        return v != v ? v : out;
      }
    }
    constexpr int L = int(sizeof(V) / sizeof(T));
    alignas(64) T lane[L];
    std::memcpy(lane, &v, sizeof(V));
    for (int l = 0; l < L; ++l) lane[l] = math::epilogue_act(act, lane[l], p1, p2);
    std::memcpy(&v, lane, sizeof(V));
    return v;
  }

  // Applies the epilogue to n contiguous values of row `row` from column `col` on, in place
  // (for kernels that finish a row in cache rather than in registers).
  void apply_row(T* out, index_t n, index_t row, index_t col) const {
    if (trivial()) return;
    using V = typename Vec<T>::type;
    constexpr int L = kVecBytes / int(sizeof(T));
    for (index_t e = 0; e < n; e += L) {
      const int lanes = static_cast<int>(std::min<index_t>(L, n - e));
      V v{};
      std::memcpy(&v, out + e, sizeof(T) * lanes);
      v = vec(v, row, col + e, lanes);
      std::memcpy(out + e, &v, sizeof(T) * lanes);
    }
  }
};

// The forward convolution with an epilogue on its output rows (one row per filter):
// x (N,C,H,W), w (K,C,R,S) -> y (N,K,P,Q) = epilogue(conv(x, w)). conv2d_forward is this
// with the bias alone.
template <typename T>
void conv2d_forward_ep(const ConvGeom& g, const T* x, const T* w, const Epilogue<T>& ep, T* y);

}  // namespace convnet
