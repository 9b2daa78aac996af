// Vectorised float32 exp, expm1, tanh and sigmoid (about 1-2 ulp) shared by the
// element-wise kernels (activation.cpp) and the recurrent cells (rnn.cpp), so that an
// activation and the same gate inside a cell give bit-identical results.
#pragma once

#include <cstring>

#include "gemm.h"  // Vec<T>, kVecBytes

namespace convnet {
namespace vecmath {

using VF = Vec<float>::type;
constexpr int kLanesF = kVecBytes / int(sizeof(float));
typedef int VI __attribute__((vector_size(kVecBytes)));

inline VF splat(float v) { return v - VF{}; }

// exp(x) for a vector: x = n*ln2 + r, |r| <= ln2/2, exp(r) by a degree-6 polynomial,
// 2^n put straight into the exponent bits. Large inputs clamp to the largest finite value;
// inputs below the normal range give 0, as a flushed-to-zero exp would.
inline VF vexp(VF x) {
  const VF hi = splat(88.3762626647949f), lo = splat(-87.3365447504f);
  const auto underflow = x < lo;
  x = x > hi ? hi : x;
  x = x < lo ? lo : x;
  VF fx = x * splat(1.44269504088896341f);
  fx = fx + (fx >= splat(0.f) ? splat(0.5f) : splat(-0.5f));
  VI n = __builtin_convertvector(fx, VI);
  VF nf = __builtin_convertvector(n, VF);
  VF r = x - nf * splat(0.693359375f) - nf * splat(-2.12194440e-4f);
  VF p = splat(1.9875691500e-4f);
  p = p * r + splat(1.3981999507e-3f);
  p = p * r + splat(8.3334519073e-3f);
  p = p * r + splat(4.1665795894e-2f);
  p = p * r + splat(1.6666665459e-1f);
  p = p * r + splat(5.0000001201e-1f);
  p = p * r * r + r + splat(1.f);
  VI bits = (n + 127) << 23;
  VF scale;
  std::memcpy(&scale, &bits, sizeof(VF));
  return underflow ? VF{} : p * scale;
}

// e^x - 1 without the cancellation of vexp(x) - 1 near 0 (Taylor series below |x| = 1/4,
// whose first dropped term is < 1e-7 relative there).
inline VF vexpm1(VF x) {
  VF p = splat(1.f / 5040);
  p = p * x + splat(1.f / 720);
  p = p * x + splat(1.f / 120);
  p = p * x + splat(1.f / 24);
  p = p * x + splat(1.f / 6);
  p = p * x + splat(0.5f);
  const VF series = (p * x) * x + x;
  const VF a = x < splat(0.f) ? -x : x;
  return a < splat(0.25f) ? series : vexp(x) - splat(1.f);
}

inline VF vtanh(VF x) {
  const VF a = x < splat(0.f) ? -x : x;
  // |x| < 0.625: odd polynomial (no cancellation near 0); otherwise 1 - 2 / (e^{2|x|} + 1).
  const VF z = x * x;
  VF p = splat(-5.70498872745e-3f);
  p = p * z + splat(2.06390887954e-2f);
  p = p * z + splat(-5.37397155531e-2f);
  p = p * z + splat(1.33314422036e-1f);
  p = p * z + splat(-3.33332819422e-1f);
  const VF small = p * z * x + x;
  VF big = splat(1.f) - splat(2.f) / (vexp(a + a) + splat(1.f));
  big = x < splat(0.f) ? -big : big;
  VF out = a < splat(0.625f) ? small : big;
  return x != x ? x : out;  // NaN stays NaN
}

inline VF vsigmoid(VF x) {
  // e^{-|x|} never overflows; the two halves are 1/(1+e) and e/(1+e).
  const VF a = x < splat(0.f) ? -x : x;
  const VF e = vexp(-a);
  const VF inv = splat(1.f) / (splat(1.f) + e);
  VF out = x >= splat(0.f) ? inv : e * inv;
  return x != x ? x : out;
}

inline VF load(const float* p) {
  VF v;
  std::memcpy(&v, p, sizeof(VF));
  return v;
}
inline void store(float* p, VF v) { std::memcpy(p, &v, sizeof(VF)); }

}  // namespace vecmath
}  // namespace convnet
