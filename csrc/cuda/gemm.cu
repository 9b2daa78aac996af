// GEMM entry point: C = alpha * op(A) op(B) + beta * C (row-major), on the tiled main loop
// of tile_gemm.cuh. Mirrors csrc/cpu/gemm.cpp.
#include <cstdint>

#include "kernels.cuh"
#include "tile_gemm.cuh"

namespace convnet {
namespace cuda {

namespace {

// c[m, n] = alpha * acc + beta * c[m, n]; beta == 0 never reads c (it may hold NaN).
template <typename T>
struct GemmEpilogue {
  T* c;
  index_t ldc;
  T alpha, beta;
  template <int TM, int TN>
  __device__ void store(index_t m, index_t n, const T (&acc)[TM][TN], index_t M,
                        index_t N) const {
#pragma unroll
    for (int i = 0; i < TM; ++i) {
      if (m + i >= M) break;
      T* row = c + (m + i) * ldc;
#pragma unroll
      for (int j = 0; j < TN; ++j) {
        if (n + j >= N) break;
        const T v = alpha * acc[i][j];
        row[n + j] = beta == T(0) ? v : v + beta * row[n + j];
      }
    }
  }
};

bool aligned16(const void* p, index_t ld, int vw) {
  return (reinterpret_cast<std::uintptr_t>(p) % 16 == 0) && (ld % vw == 0);
}

template <class Cfg, bool TA, bool TB>
void run(index_t M, index_t N, index_t K, typename Cfg::value_type alpha,
         const typename Cfg::value_type* a, index_t lda, const typename Cfg::value_type* b,
         index_t ldb, typename Cfg::value_type beta, typename Cfg::value_type* c, index_t ldc,
         cudaStream_t stream) {
  using T = typename Cfg::value_type;
  constexpr int VW = Vec16<T>::W;
  // op(A) = A (M x K, k contiguous) or A^T with A (K x M, m contiguous); same for B.
  DenseLoader<T, Cfg::BM, Cfg::BK, Cfg::THREADS, !TA> la{};
  la.p = a;
  la.ld = lda;
  la.xsize = M;
  la.vec = aligned16(a, lda, VW);
  DenseLoader<T, Cfg::BN, Cfg::BK, Cfg::THREADS, TB> lb{};
  lb.p = b;
  lb.ld = ldb;
  lb.xsize = N;
  lb.vec = aligned16(b, ldb, VW);
  GemmEpilogue<T> epi{c, ldc, alpha, beta};
  launch_tile_gemm<Cfg>(la, lb, epi, M, N, K, 1, stream);
}

template <class Cfg>
void dispatch(bool ta, bool tb, index_t M, index_t N, index_t K, typename Cfg::value_type alpha,
              const typename Cfg::value_type* a, index_t lda, const typename Cfg::value_type* b,
              index_t ldb, typename Cfg::value_type beta, typename Cfg::value_type* c,
              index_t ldc, cudaStream_t stream) {
  if (!ta && !tb) run<Cfg, false, false>(M, N, K, alpha, a, lda, b, ldb, beta, c, ldc, stream);
  if (!ta && tb) run<Cfg, false, true>(M, N, K, alpha, a, lda, b, ldb, beta, c, ldc, stream);
  if (ta && !tb) run<Cfg, true, false>(M, N, K, alpha, a, lda, b, ldb, beta, c, ldc, stream);
  if (ta && tb) run<Cfg, true, true>(M, N, K, alpha, a, lda, b, ldb, beta, c, ldc, stream);
}

}  // namespace

// a: op(A) (M,K), b: op(B) (K,N), c: (M,N)
template <typename T>
void gemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, T alpha, const T* a,
          index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc, cudaStream_t stream) {
  if (M <= 0 || N <= 0) return;
  if constexpr (sizeof(T) == 4) {
    // 64x128 tiles for a few rows over many columns; 128x128 ones once they still give
    // about one block per SM; 64x64 ones before.
    const index_t big_tiles = ceil_div(M, 128) * ceil_div(N, 128);
    if (M <= 64 && ceil_div(N, 128) >= 2 * index_t(sm_count()))
      dispatch<CfgF32Wide>(trans_a, trans_b, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc,
                           stream);
    else if (big_tiles >= sm_count())
      dispatch<CfgF32Big>(trans_a, trans_b, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc, stream);
    else
      dispatch<CfgF32Small>(trans_a, trans_b, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc,
                            stream);
  } else {
    dispatch<CfgF64>(trans_a, trans_b, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc, stream);
  }
}

template void gemm<float>(bool, bool, index_t, index_t, index_t, float, const float*, index_t,
                          const float*, index_t, float, float*, index_t, cudaStream_t);
template void gemm<double>(bool, bool, index_t, index_t, index_t, double, const double*, index_t,
                           const double*, index_t, double, double*, index_t, cudaStream_t);

}  // namespace cuda
}  // namespace convnet
