// Threading and floating-point environment shared by all CPU kernels.
#include "convnet/common.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace convnet {

namespace {
int default_threads() {
#ifdef _OPENMP
  return omp_get_num_procs();
#else
  return 1;
#endif
}
int g_num_threads = 0;
}  // namespace

int get_num_threads() {
  if (g_num_threads <= 0) g_num_threads = default_threads();
  return g_num_threads;
}

void set_num_threads(int n) {
  g_num_threads = n > 0 ? n : default_threads();
#ifdef _OPENMP
  omp_set_num_threads(g_num_threads);
#endif
}

bool has_openmp() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

#if defined(__x86_64__) || defined(_M_X64)
FlushToZero::FlushToZero() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040); }  // FTZ|DAZ
FlushToZero::~FlushToZero() { _mm_setcsr(saved_); }
#else
FlushToZero::FlushToZero() {}
FlushToZero::~FlushToZero() {}
#endif

const char* simd_level() {
#if defined(__AVX512F__)
  return "AVX-512";
#elif defined(__AVX2__) && defined(__FMA__)
  return "AVX2+FMA";
#elif defined(__AVX__)
  return "AVX";
#elif defined(__SSE2__)
  return "SSE2";
#elif defined(__ARM_NEON)
  return "NEON";
#else
  return "scalar";
#endif
}

}  // namespace convnet
