// Shared helpers for the CPU kernels: index type, threading, aligned scratch memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace convnet {

using index_t = std::int64_t;

inline index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }
inline index_t round_up(index_t a, index_t b) { return ceil_div(a, b) * b; }

int get_num_threads();
void set_num_threads(int n);
// get_num_threads(), or fewer while other processes keep cores busy (runtime.cpp)
int available_threads();
bool has_openmp();
// Denormals can make FMAs 5-50x slower, so kernels flush them to zero. MXCSR is
// per thread and the caller's (NumPy's) mode must survive, hence a scoped guard that
// every kernel entry point and every OpenMP region opens.
class FlushToZero {
 public:
  FlushToZero();
  ~FlushToZero();
  FlushToZero(const FlushToZero&) = delete;
  FlushToZero& operator=(const FlushToZero&) = delete;

 private:
  unsigned saved_ = 0;
};
const char* simd_level();

// 64-byte aligned scratch buffer, owned; the packing buffers of GEMM live here.
template <typename T>
class Scratch {
 public:
  Scratch() = default;
  explicit Scratch(std::size_t n) { resize(n); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { std::free(ptr_); }
  void resize(std::size_t n) {
    if (n <= cap_) return;
    std::free(ptr_);
    std::size_t bytes = ((n * sizeof(T) + 63) / 64) * 64;
    ptr_ = static_cast<T*>(std::aligned_alloc(64, bytes));
    if (!ptr_) throw std::bad_alloc();
    cap_ = n;
  }
  T* data() { return ptr_; }

 private:
  T* ptr_ = nullptr;
  std::size_t cap_ = 0;
};

// This thread's index in the enclosing OpenMP team (0 outside one or without OpenMP).
inline int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// Size of the enclosing OpenMP team (1 outside one or without OpenMP).
inline int team_size() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

// Number of threads to use for `work` units of roughly `grain` cost each.
inline int threads_for(double work, double min_work_per_thread = 32768.0) {
  int nt = available_threads();
  int useful = static_cast<int>(work / min_work_per_thread);
  if (useful < 1) useful = 1;
  return useful < nt ? useful : nt;
}

}  // namespace convnet
