// GEMM entry point: C = alpha * op(A) op(B) + beta * C (row-major).
#include "gemm.h"

namespace convnet {

// a: op(A) (M,K), b: op(B) (K,N), c: (M,N)
template <typename T>
void gemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, T alpha, const T* a,
          index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc, int nthreads) {
  FlushToZero ftz;
  // gemm_auto weighs the rows only; a narrow C (N = 64 columns: an RNN's input gradient) pads
  // the general tile's 48-column panels by a third, where the short tile's 64 fit exactly.
  using G = TileGeneral<T>;
  using S = TileShort<T>;
  const double area_g = double(round_up(M, G::MR)) * round_up(N, G::NR);
  const double area_s = double(round_up(M, S::MR)) * round_up(N, S::NR);
  if (area_s < 0.85 * area_g) {
    gemm_packed<T, S>(M, K, alpha, DenseA<T>{a, lda, trans_a}, DenseB<T>{b, ldb, trans_b, N}, beta,
                      c, ldc, nthreads);
    return;
  }
  gemm_auto<T>(M, K, alpha, DenseA<T>{a, lda, trans_a}, DenseB<T>{b, ldb, trans_b, N}, beta, c,
               ldc, nthreads);
}

template void gemm<float>(bool, bool, index_t, index_t, index_t, float, const float*, index_t,
                          const float*, index_t, float, float*, index_t, int);
template void gemm<double>(bool, bool, index_t, index_t, index_t, double, const double*, index_t,
                           const double*, index_t, double, double*, index_t, int);

}  // namespace convnet
