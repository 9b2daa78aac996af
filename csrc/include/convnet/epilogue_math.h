// The activation an output epilogue applies (convnet/kernels/spec.py's EPILOGUE_ACTS, in
// the same order), written once for csrc/cpu (g++) and csrc/cuda (nvcc). The codes are the
// element-wise kernels of the manifest: leaky_relu (p1 the slope; ReLU is slope 0), tanh,
// sigmoid, elu (p1 alpha, p2 scale; SELU is its constants) and, after them, the formula
// activations of convnet/activation_table.h in the table's order (p1 their parameter).
#pragma once

#include "convnet/activation_table.h"
#include "convnet/kernel_math.h"

namespace convnet {

enum EpilogueAct : int {
  kActNone = 0,
  kActLeakyRelu = 1,
  kActTanh = 2,
  kActSigmoid = 3,
  kActElu = 4,
  kActFormulaFirst = 5,  // the formula activations follow, one code each
};

namespace math {

namespace detail {
#define CONVNET_COUNT_FORMULA(name, Op) +1
constexpr int kFormulaCount = 0 CONVNET_FORMULA_ACTIVATIONS(CONVNET_COUNT_FORMULA);
#undef CONVNET_COUNT_FORMULA
}  // namespace detail

// One past the last valid code.
constexpr int kActEnd = kActFormulaFirst + detail::kFormulaCount;

// y = act(v): the same scalar formulas as the element-wise kernels.
template <typename T>
CONVNET_HD inline T epilogue_act(int act, T v, T p1, T p2) {
  switch (act) {
    case kActLeakyRelu:
      return leaky_relu(v, p1);
    case kActTanh:
      return tanh_(v);
    case kActSigmoid:
      return sigmoid(v);
    case kActElu:
      return elu(v, p1, p2);
    default:
      break;
  }
  int code = kActFormulaFirst;
#define CONVNET_FORMULA_CASE(name, Op) \
  if (act == code) return Op::forward(v, p1); \
  ++code;
  CONVNET_FORMULA_ACTIVATIONS(CONVNET_FORMULA_CASE)
#undef CONVNET_FORMULA_CASE
  return v;  // kActNone
}

}  // namespace math
}  // namespace convnet
