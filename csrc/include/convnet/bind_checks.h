// What the pybind11 layers check before a kernel runs: only what could make C++ read or
// write out of bounds (or divide by zero) if convnet/kernels/_boundary.py were bypassed.
// The friendly checks (shapes against each other, ranges, overlap) are the boundary's.
// A binding states, per kernel, the elements each buffer must hold for the sizes the
// kernel is given (csrc/buffer_rules.h) and checks them with `need`;
// every size product is formed in checked 64-bit arithmetic. Shared by bind_cpu*.cpp and
// bind_cuda*.cpp; a new binding file uses the same helpers.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <initializer_list>
#include <string>

namespace convnet::bind {

using index_t = std::int64_t;
constexpr index_t kIntMax = (index_t(1) << 31) - 1;  // the manifest's bound on geometry ints

[[noreturn]] inline void fail(const char* kernel, const std::string& what) {
  throw pybind11::value_error(std::string(kernel) + ": " + what);
}

// The product of sizes, refused when one is negative or when the product of the nonzero
// ones overflows 64 bits (a zero extent does not make the others addressable: kernels
// still form per-image and per-plane offsets from them).
inline index_t product(const char* kernel, std::initializer_list<index_t> sizes) {
  index_t p = 1;
  bool zero = false;
  for (index_t s : sizes) {
    if (s < 0) fail(kernel, "negative size " + std::to_string(s));
    if (s == 0) zero = true;
    else if (__builtin_mul_overflow(p, s, &p)) fail(kernel, "a size product overflows 64 bits");
  }
  return zero ? 0 : p;
}

// Each value in [lo, kIntMax] (strides >= 1 guard divisions; the upper bound keeps every
// product of two geometry values inside 64 bits).
inline void in_range(const char* kernel, const char* what, std::initializer_list<index_t> v,
                     index_t lo) {
  for (index_t x : v)
    if (x < lo || x > kIntMax)
      fail(kernel, std::string(what) + " must be in [" + std::to_string(lo) + ", 2^31-1], got " +
                       std::to_string(x));
}

// One buffer of a kernel: the elements it must hold for the sizes the kernel is given.
// need < 0: this call does not use it; optional: None (or a null pointer) is allowed.
struct Need {
  const char* name;
  index_t count;
  bool optional = false;
};

// The buffers of one kernel call in argument order (the manifest's, plus scratch buffers a
// backend adds at the end).
struct Rule {
  static constexpr int kMax = 12;
  const char* kernel;
  Need need[kMax];
  int n = 0;
  Rule(const char* k, std::initializer_list<Need> needs) : kernel(k) {
    for (const Need& x : needs) need[n++] = x;
  }
  Rule& add(Need x) {
    need[n++] = x;
    return *this;
  }
};

// Checks the elements held (have[i] < 0: None or a null pointer) against the rule. Returns
// whether the kernel touches any element: when every buffer needs none, a call has nothing
// to read or write, and the bindings return without running it (its loops over empty
// extents could still be long).
inline bool check(const Rule& r, const index_t* have, std::size_t n_have) {
  if (n_have != static_cast<std::size_t>(r.n))
    fail(r.kernel, "expected " + std::to_string(r.n) + " buffers, got " + std::to_string(n_have));
  bool touches = false;
  for (int i = 0; i < r.n; ++i) {
    const Need& x = r.need[i];
    if (x.count <= 0) continue;  // not used by this call, or nothing of it is touched
    touches = true;
    if (have[i] < 0) {
      if (x.optional) continue;
      fail(r.kernel, std::string(x.name) + ": required for this call");
    }
    if (have[i] < x.count)
      fail(r.kernel, std::string(x.name) + ": holds " + std::to_string(have[i]) +
                         " elements, the sizes need " + std::to_string(x.count));
  }
  return touches;
}

}  // namespace convnet::bind
